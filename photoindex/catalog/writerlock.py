"""The single-writer lock: one photoindex process writes the catalog and the index at a time.

An exclusive `flock` on the photoindex home folder itself, which cannot be unlinked from under
its holder while it holds the catalog: deleting `writer.lock` (which only holds the details) lets
no second writer in. The kernel drops the lock when the holder's last file descriptor closes, so
a killed holder never leaves a stale lock. The holder writes its pid, purpose and start time into
`writer.lock`, for the message another process shows. Another user cannot take the lock: the
home is 0700 (photoindex.home) and the details file 0600.

A lock on a file of its own (`folder=False`, the daemon's `daemon.lock`) checks after taking it
that the path still names the locked file (same device and inode) and starts again if not, so a
file deleted and recreated between open and flock never gives two holders.

Lock holders must not fork workers that outlive them (a forked child shares the lock); the
decode pool uses forkserver/spawn, which does not inherit it.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from photoindex.errors import LockedError

_POLL_SECONDS = 0.1  # flock has no timeout: a bounded wait retries the non-blocking form


def _read_holder(fd: int) -> dict[str, Any]:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict):
        # Locked, but the holder has not written its details yet (or wrote something else).
        return {"pid": None, "purpose": "unknown", "since": None}
    holder = {"pid": data.get("pid"), "purpose": data.get("purpose", "unknown"), "since": data.get("since")}
    if isinstance(data.get("progress"), dict):
        holder["progress"] = data["progress"]
    return holder


def lock_holder(path: Path, *, folder: bool = True) -> dict[str, Any] | None:
    """Who holds the lock of `path` ({"pid", "purpose", "since"}, and "progress" once it noted some), or None."""
    try:
        fd = os.open(path.parent if folder else path, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        try:
            # The file's content outlives its holder; only the lock itself says whether it is held.
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _details(path) if folder else _read_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _details(path: Path) -> dict[str, Any]:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # deleted by hand: the lock still holds, its details are gone
        return {"pid": None, "purpose": "unknown", "since": None}
    try:
        return _read_holder(fd)
    finally:
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    """Whether `path` still names the open file `fd` (same device and inode)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _describe(holder: dict[str, Any] | None) -> str:
    if holder is None:
        return "another process"
    pid = holder.get("pid")
    who = f"pid {pid}" if pid is not None else "a process"
    since = f" since {holder['since']}" if holder.get("since") else ""
    return f"{who} ({holder.get('purpose', 'unknown')}){since}"


class WriterLock:
    """An exclusive, process-wide lock held by one photoindex writer for `purpose`; `path` names its details file.

    The lock itself is on the folder of `path` (default) or, with `folder=False`, on `path`.
    """

    def __init__(self, path: Path, purpose: str, *, folder: bool = True) -> None:
        self.path = Path(path)
        self.purpose = purpose
        self.folder = folder
        self._fd: int | None = None  # what is locked
        self._details_fd: int | None = None  # where the details go (the same fd for a file lock)
        self._record: dict[str, Any] = {}
        self._written = 0

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self, *, wait: float | None = 0.0) -> None:
        """Take the lock (`wait`: 0 tries once, None forever, else seconds); LockedError names the holder."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: this WriterLock is already held")
        from photoindex.home import make_private_folder

        make_private_folder(self.path.parent)
        deadline = None if wait is None else time.monotonic() + max(wait, 0.0)
        while True:
            fd = self._open_target()
            try:
                self._lock(fd, None if deadline is None else max(deadline - time.monotonic(), 0.0))
                if self.folder or _same_file(fd, self.path):
                    break
            except BaseException:
                os.close(fd)
                raise
            # The file was deleted (and maybe recreated) between our open and our flock: a lock on
            # it excludes nobody. Lock what the path names now.
            os.close(fd)
        if self.folder:
            try:
                details = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except BaseException:
                os.close(fd)
                raise
        else:
            details = fd
        since = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self._record = {"pid": os.getpid(), "purpose": self.purpose, "since": since}
        record = json.dumps(self._record).encode() + b"\n"
        os.ftruncate(details, 0)
        os.pwrite(details, record, 0)
        self._written = len(record)
        self._fd, self._details_fd = fd, details

    def _open_target(self) -> int:
        if self.folder:
            return os.open(self.path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)

    def note(self, progress: dict[str, Any]) -> None:
        """Add what the holder is doing now (a run's progress) to the details other processes read."""
        if self._details_fd is None:
            return
        record = json.dumps({**self._record, "progress": progress}).encode() + b"\n"
        # One write over the old record, padded with spaces (valid after JSON) instead of a
        # truncate first: a reader never finds the file empty in between.
        padded = record.ljust(self._written)
        try:
            os.pwrite(self._details_fd, padded[:4095], 0)
        except OSError:
            return  # a display detail; the lock itself is unaffected
        self._written = max(self._written, len(padded))

    def _lock(self, fd: int, wait: float | None) -> None:
        if wait is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(_POLL_SECONDS)
        holder = _details(self.path) if self.folder else _read_holder(fd)
        pid = holder.get("pid")
        error = LockedError(
            f"{self.path}: the catalog is being written by {_describe(holder)}; cannot {self.purpose} now",
            "wait for it to finish, or stop it first"
            + (f" (`kill {pid}`)" if pid is not None else "")
            + "; a running daemon indexes changes by itself",
        )
        error.holder = _describe(holder)
        raise error

    def release(self) -> None:
        """Release the lock (a no-op when not held)."""
        fd, self._fd = self._fd, None
        details, self._details_fd = self._details_fd, None
        if fd is None:
            return
        try:
            if details is not None:
                os.ftruncate(details, 0)  # the details describe a holder; there is none now
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            if details is not None and details != fd:
                os.close(details)
            os.close(fd)

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc_value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def acquire_patiently(
    lock: WriterLock,
    *,
    wait: float | None,
    stop: Any = None,
    on_wait: Any = None,
) -> bool:
    """Take `lock`, waiting for another writer up to `wait` seconds (None: until `stop` is set).

    `on_wait(message)` hears once whom it waits for; returns False when `stop` (a
    threading.Event) was set while waiting; raises LockedError when `wait` runs out.
    """
    deadline = None if wait is None else time.monotonic() + wait
    told = False
    while True:
        try:
            lock.acquire(wait=0)
            return True
        except LockedError as exc:
            if deadline is not None and time.monotonic() >= deadline:
                raise
            if not told and on_wait is not None:
                on_wait(f"the catalog is being written by {exc.holder}; {lock.purpose} goes on when it is done")
            told = True
            if stop is not None and stop.wait(0.25):
                return False
            if stop is None:
                time.sleep(0.25)
