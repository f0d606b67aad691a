"""Making writes durable: fsync a file by its path, or a folder (which makes a rename in it durable)."""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path


def fsync_file(path: Path) -> None:
    """Flush a file written earlier (by this process or a library) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries, so a rename into it survives a power loss.

    Best effort: some platforms (Windows) cannot open a folder for fsync, and there is nothing
    more to do there.
    """
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
