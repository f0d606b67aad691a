"""Path names as strings: whether one lies within a folder, by path components, not string prefix."""

from __future__ import annotations

import os


def within(path: str, folder: str) -> bool:
    """Whether `path` is `folder` itself or below it (`/a/bc` is not within `/a/b`)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)
