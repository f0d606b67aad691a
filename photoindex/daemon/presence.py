"""One daemon per home: `daemon.lock`, and on Linux a name the kernel holds for the daemon's lifetime.

`daemon.lock` is a `flock` on a file of its own (catalog/writerlock.py, `folder=False`), which
says who holds it. A file can be deleted while it is locked, though, and a second daemon would
then create a new `daemon.lock`, lock it and start. So on Linux the daemon also binds an abstract
Unix socket named after the home's device and inode: nothing on disk to delete, freed by the kernel
when the daemon exits or is killed, and a second daemon that finds the name taken learns the first
one's pid from the socket's peer credentials.

Abstract names have no permissions: any local user can bind one. So the name carries the owner's
uid, and a name held by a process of another user is not believed (the library is private to its
owner, docs/architecture.md, invariant 9): the daemon logs it and relies on `daemon.lock` alone, as
it does where the kernel refuses abstract sockets (not Linux, some sandboxes).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from photoindex.catalog.writerlock import WriterLock, lock_holder
from photoindex.errors import LockedError

logger = logging.getLogger("photoindex")


def _name(home: Path) -> bytes:
    st = os.stat(home)
    return f"\0photoindex-daemon/{os.getuid()}/{st.st_dev}:{st.st_ino}".encode()


def _claim_name(home: Path) -> socket.socket | None:
    """Bind and listen on the home's abstract socket; None where it cannot be had (not Linux, refused by the
    kernel, or held by another user's process). LockedError (with the holder's pid) when another daemon of
    this user holds it."""
    if not sys.platform.startswith("linux"):
        return None
    name = _name(home)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(name)
        sock.listen(1)
    except OSError as exc:
        sock.close()
        if exc.errno != errno.EADDRINUSE:
            logger.warning("%s: no abstract socket for the daemon (%s); daemon.lock alone keeps it single", home, exc)
            return None
        pid, uid = _holder(name)
        if uid is not None and uid != os.getuid():
            logger.warning("%s: the daemon's abstract socket is held by a process of user %d (pid %s), not by a "
                           "daemon of yours; daemon.lock alone keeps this daemon single", home, uid, pid)
            return None
        raise _already(home, pid) from None
    sock.set_inheritable(False)
    return sock


def _holder(name: bytes) -> tuple[int | None, int | None]:
    """(pid, uid) of the process listening on `name` (SO_PEERCRED); (None, None) when it cannot be told."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(name)
        creds = probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        pid, uid, _ = struct.unpack("3i", creds)
        return (pid or None), uid
    except OSError:
        return None, None
    finally:
        probe.close()


def _already(home: Path, pid: object) -> LockedError:
    return LockedError(
        f"{home}: a photoindex daemon already runs" + (f" (pid {pid})" if pid else ""),
        "stop it first (`systemctl --user stop photoindex`" + (f" or `kill {pid}`" if pid else "") + ")",
    )


@contextmanager
def only_daemon(home: Path) -> Iterator[None]:
    """Hold the home's daemon presence for the daemon's lifetime; LockedError when another daemon runs."""
    path = home / "daemon.lock"
    lock = WriterLock(path, "daemon", folder=False)  # the writer lock is on the home folder itself
    try:
        lock.acquire(wait=0.0)
    except LockedError:
        holder = lock_holder(path, folder=False) or {}
        raise _already(home, holder.get("pid")) from None
    try:
        name = _claim_name(home)
    except BaseException:
        lock.release()
        raise
    try:
        yield
    finally:
        if name is not None:
            name.close()
        lock.release()
