"""Watching the roots with watchdog: events become hints, failures become trouble reports.

The watcher is an optimisation; the scan is the truth (docs/architecture.md, invariant 5). So this module
never decides anything about the catalog: handlers only put a `Hint` (a path worth looking at)
on the daemon's queue, and whatever makes the hints incomplete is put there as a `Trouble`
(the daemon answers with a reconciliation scan):

- the inotify watch limit (ENOSPC): at start watchdog raises it, but a failed watch on a *new*
  subfolder is swallowed by watchdog; a wrapper around the inotify instance sees both;
- a kernel queue overflow (`IN_Q_OVERFLOW`), which reaches no handler;
- an unmount below a root (`IN_UNMOUNT`);
- a root that disappears (its emitter dies while the observer still looks alive), comes back,
  or is replaced by another folder (a remount): `check()` compares each root's identity.

Each root has its own observer: inotify, or polling for network and FUSE filesystems (inotify
does not see writes made by other machines), chosen from the mount table or `[daemon]
polling_roots`.

Symbolic links to folders are followed (`[scan] follow_symlinks`), but each real folder is watched
once, by device and inode, under the first name met: a link back up the tree (a loop) is skipped
with one log line instead of being walked until the path is too long (watchdog's own walk does
that, and warns for every second name of a watched folder). A walk also stops when the daemon
is told to stop.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import stat as stat_mod
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver

from photoindex.config import DaemonConfig, ScanConfig
from photoindex.daemon.lograte import once
from photoindex.paths import within
from photoindex.photos.scanner import ignored_below, is_candidate

log = logging.getLogger(__name__)

MOUNTS_FILE = Path("/proc/self/mounts")
MAX_WATCHES_FILE = Path("/proc/sys/fs/inotify/max_user_watches")

# Filesystems whose changes inotify may not see (made by another machine, or by a FUSE daemon
# behind the kernel's back): watch these by polling. `fuse.*` covers sshfs, rclone, gvfs...;
# `fuseblk` (NTFS/exFAT USB drives) is a local disk and keeps inotify.
_POLLING_FSTYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "9p",
        "afs",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "virtiofs",
        "vboxsf",
        "vmhgfs",
        "davfs",
        "sshfs",
        "fuse",
    }
)

_EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    FileClosedEvent,
    DirCreatedEvent,
    DirMovedEvent,
    DirDeletedEvent,
]


@dataclass(frozen=True)
class Hint:
    """A path worth looking at; `writing` (modified) and `closed` (close-write) are settling hints."""

    path: str
    folder: bool = False
    writing: bool = False
    closed: bool = False
    partner: str | None = None  # the other end of a move inside the tree


@dataclass(frozen=True)
class Trouble:
    """Something that makes the hints for `root` incomplete: the daemon rescans it and logs `message`."""

    root: str
    # watch-limit | watch-failed | overflow | unmounted | root-vanished | root-returned | root-replaced
    # | watch-lost
    reason: str
    message: str


Event = Hint | Trouble


# ---------------------------------------------------------------- choosing inotify or polling


def _unescape_mount_field(field: str) -> str:
    # /proc/mounts escapes space, tab, newline and backslash as \ooo octal.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit() and len(field[i + 1 : i + 4]) == 3:
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def read_mounts(text: str) -> list[tuple[str, str]]:
    """Parse a mount table (`/proc/self/mounts` format) into (mount point, filesystem type) pairs."""
    mounts = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            mounts.append((_unescape_mount_field(parts[1]), parts[2]))
    return mounts


def filesystem_of(path: str, mounts: Sequence[tuple[str, str]]) -> tuple[str, str] | None:
    """The (mount point, fs type) holding `path`: the longest mount point above it (the last mounted wins)."""
    best: tuple[str, str] | None = None
    for point, fstype in mounts:
        if within(path, point) and (best is None or len(point) >= len(best[0])):
            best = (point, fstype)
    return best


def watch_mode(
    root: str, polling_roots: Iterable[str], mounts: Sequence[tuple[str, str]], requested: str = "auto"
) -> tuple[str, str]:
    """("inotify" | "polling", why): the root's own watch mode, `[daemon] polling_roots`, then the fs type."""
    if requested == "poll":
        return "polling", "watch mode `poll` set for this root"
    if requested == "inotify":
        return "inotify", "watch mode `inotify` set for this root"
    real = os.path.realpath(root)
    for listed in polling_roots:
        listed_real = os.path.realpath(os.path.expanduser(listed))
        if within(real, listed_real):
            return "polling", f"listed in [daemon] polling_roots ({listed})"
    fs = filesystem_of(real, mounts)
    if fs is not None:
        point, fstype = fs
        if fstype in _POLLING_FSTYPES or fstype.startswith("fuse."):
            return "polling", f"{fstype} filesystem at {point}: inotify does not see changes made elsewhere"
        return "inotify", f"{fstype} filesystem at {point}"
    return "inotify", "filesystem type unknown"


def max_user_watches(path: Path = MAX_WATCHES_FILE) -> int | None:
    """The kernel's per-user inotify watch limit, None when unknown (not Linux)."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def count_folders(roots: Iterable[str], follow_symlinks: bool) -> int:
    """How many folders (each needs one inotify watch) are under the roots, the roots included."""
    seen: set[tuple[int, int]] = set()
    for root in roots:
        ident = _identity(root)
        if ident is None or ident in seen:
            continue
        seen.add(ident)
        for top, dirs, _ in os.walk(root, followlinks=follow_symlinks):
            dirs[:] = [d for d in dirs if _first_visit(os.path.join(top, d), seen, follow_symlinks)]
    return len(seen)


def _first_visit(path: str | bytes, seen: set[tuple[int, int]], follow_symlinks: bool) -> bool:
    """Whether a folder met in a walk is new (and record it); a link is not entered unless links are followed."""
    if not follow_symlinks and os.path.islink(path):
        return False
    ident = _identity(path)
    if ident is None or ident in seen:
        return False
    seen.add(ident)
    return True


# ---------------------------------------------------------------- handlers: only enqueue


class _Handler(FileSystemEventHandler):
    """Turns watchdog events under one root into hints; runs on watchdog's thread: filter and enqueue only."""

    def __init__(self, root: str, scan: ScanConfig, out: queue.SimpleQueue[Event], *, hints_writing: bool) -> None:
        self.root = root
        self.scan = scan
        self.out = out
        self.hints_writing = hints_writing  # polling never sees a close-write, so "still writing" means nothing there

    def _wanted(self, path: str, folder: bool) -> bool:
        if not path or path == self.root or not within(path, self.root):
            return False  # the root itself is `Watcher.check()`'s business
        if not folder and not is_candidate(os.path.basename(path), self.scan):
            return False  # `x.jpg.tmp`, `x.part`: never a photo; its rename arrives as a move
        # Hidden (also `.name.jpg.part`-style temporary files) or excluded, itself or a folder above it.
        return not ignored_below(path, self.root, self.scan)

    def dispatch(self, event: FileSystemEvent) -> None:
        """Enqueue hints for one event (called by watchdog for every event)."""
        src = os.fsdecode(event.src_path)
        folder = event.is_directory
        if isinstance(event, (FileMovedEvent, DirMovedEvent)):
            dest = os.fsdecode(event.dest_path)
            src_ok, dest_ok = self._wanted(src, folder), self._wanted(dest, folder)
            if src_ok:
                self.out.put(Hint(src, folder, partner=dest if dest_ok else None))
            if dest_ok:
                self.out.put(Hint(dest, folder, partner=src if src_ok else None))
            return
        if not self._wanted(src, folder):
            return
        if isinstance(event, FileClosedEvent):
            self.out.put(Hint(src, closed=True))
        elif isinstance(event, FileModifiedEvent):
            self.out.put(Hint(src, writing=self.hints_writing))
        else:  # created or deleted, file or folder
            self.out.put(Hint(src, folder))


# ---------------------------------------------------------------- inotify with its failures made visible


@dataclass
class _Flags:
    """Trouble seen on watchdog's threads, picked up by `Watcher.check()` on the daemon's thread."""

    limit_hit: bool = False
    overflowed: bool = False
    unmounted: bool = False


def _skip_loop(path: str | bytes, first: str | bytes | None) -> None:
    where = os.fsdecode(path)
    also = f" (it is {os.fsdecode(first)})" if first is not None else ""
    once(log, logging.INFO, ("loop", where), "%s: a link to a folder already watched%s: skipped", where, also)


def _inotify_observer(flags: _Flags, watch_limit: int | None, stop: threading.Event | None) -> BaseObserver:
    """An inotify observer whose watch failures and overflows set `flags` (Linux only)."""
    from watchdog.observers.inotify import InotifyEmitter, InotifyWatchGroup
    from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent, InotifyFD, Mask

    class LoopSafeWatchGroup(InotifyWatchGroup):
        """watchdog's recursive watches, each real folder once (by device and inode), walks stoppable."""

        def __post_init__(self) -> None:
            self._identities: dict[tuple[int, int], bytes] = {}
            super().__post_init__()

        def _add_all_callbacks(self, path: bytes) -> None:
            self._add_callback(path)
            if not (self.is_recursive and os.path.isdir(path)):
                return
            for top, dirnames, _ in os.walk(path, followlinks=self.follow_symlink):
                if stop is not None and stop.is_set():
                    return  # the daemon is stopping: the watches no longer matter
                keep = []
                for name in dirnames:
                    full = os.path.join(top, name)
                    if not self.follow_symlink and os.path.islink(full):
                        continue
                    ident = _identity(full)
                    if ident is None:
                        continue
                    first = self._identities.get(ident)
                    if first is not None and first != full:
                        _skip_loop(full, first)
                        continue
                    self._add_callback(full)
                    if full in self._active_callbacks_by_path:
                        keep.append(name)
                dirnames[:] = keep

        def _add_callback(self, path: bytes) -> None:
            ident = _identity(path)
            if ident is not None and self._identities.get(ident, path) != path:
                _skip_loop(path, self._identities[ident])
                return
            super()._add_callback(path)
            if ident is not None and path in self._active_callbacks_by_path:
                self._identities[ident] = path

        def _remove_watch_internally(self, wd: Any) -> None:
            path = self._active_callbacks_by_watch.get(wd)
            super()._remove_watch_internally(wd)
            if path is not None and path not in self._active_callbacks_by_path:
                for ident, known in list(self._identities.items()):
                    if known == path:
                        del self._identities[ident]

        def _move_watches(self, move_src_path: bytes, move_dst_path: bytes) -> bool:
            moved = super()._move_watches(move_src_path, move_dst_path)
            if moved:
                prefix = move_src_path + os.sep.encode()
                for ident, known in list(self._identities.items()):
                    if known == move_src_path or known.startswith(prefix):
                        self._identities[ident] = move_dst_path + known[len(move_src_path) :]
            return moved

        def _recursive_simulate(self, src_path: bytes) -> list[InotifyEvent]:
            # As watchdog's, but entering only folders watched here (never a loop).
            events: list[InotifyEvent] = []
            for top, dirnames, filenames in os.walk(src_path, followlinks=self.follow_symlink):
                wd_root = self._active_callbacks_by_path.get(top)
                if wd_root is None or (stop is not None and stop.is_set()):
                    dirnames[:] = []
                    continue
                folder_mask = Mask(InotifyConstants.IN_CREATE | InotifyConstants.IN_ISDIR)
                events.extend(InotifyEvent(wd_root, folder_mask, 0, name) for name in dirnames)
                events.extend(InotifyEvent(wd_root, Mask(InotifyConstants.IN_CREATE), 0, name) for name in filenames)
                dirnames[:] = [d for d in dirnames if os.path.join(top, d) in self._active_callbacks_by_path]
            return events

    class LoopSafeEmitter(InotifyEmitter):
        """watchdog's inotify emitter over the loop-safe watch group."""

        def on_thread_start(self) -> None:
            self._inotify = LoopSafeWatchGroup(
                self._inotify_fd,
                os.fsencode(self.watch.path),
                is_recursive=self.watch.is_recursive,
                event_mask=self.get_event_mask_from_filter(),
                follow_symlink=self.watch.follow_symlink,
            )

    class GuardedInotifyFD(InotifyFD):
        """An inotify instance that reports ENOSPC and overflows, and can be capped for tests."""

        def __init__(self) -> None:
            super().__init__()
            self._wds: dict[Any, bytes] = {}
            self._count_lock = threading.Lock()

        def add_callback(self, path: bytes, mask: Any, callback: Any, id_: Any) -> Any:
            with self._count_lock:
                if watch_limit is not None and path not in self._wds.values() and len(self._wds) >= watch_limit:
                    flags.limit_hit = True
                    # The same error the kernel gives; watchdog swallows it for subfolders.
                    raise OSError(errno.ENOSPC, "inotify watch limit reached (PHOTOINDEX_TEST_WATCH_LIMIT)")
            try:
                wd = super().add_callback(path, mask, callback, id_)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    flags.limit_hit = True
                raise
            with self._count_lock:
                self._wds[wd] = path
            return wd

        def remove_callbacks(self, callbacks: list[tuple[Any, Any]]) -> None:
            super().remove_callbacks(callbacks)
            with self._count_lock:
                for wd, _ in callbacks:
                    self._wds.pop(wd, None)

        def handle_event(self, event: Any) -> None:
            if event.is_queue_overflow:
                flags.overflowed = True
            elif event.mask & InotifyConstants.IN_UNMOUNT:
                flags.unmounted = True
            elif event.is_ignored:
                with self._count_lock:
                    self._wds.pop(event.wd, None)
            super().handle_event(event)

    class GuardedInotifyObserver(BaseObserver):
        """watchdog's InotifyObserver, built on the guarded inotify instance."""

        def __init__(self) -> None:
            self._fd = GuardedInotifyFD()
            self._fd.start()
            super().__init__(LoopSafeEmitter, timeout=1.0, inotify_fd=self._fd)

        def on_thread_stop(self) -> None:
            super().on_thread_stop()
            self._fd.stop()
            self._fd.join(timeout=2.0)

    return GuardedInotifyObserver()


# ---------------------------------------------------------------- the watcher


@dataclass
class RootWatch:
    """How one root is watched right now."""

    root: str
    mode: str  # inotify | polling | native
    why: str
    observer: BaseObserver | None = None
    identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the root when its watch started
    requested: str = "auto"  # the root's watch mode in the catalog: auto | inotify | poll
    state: str = "absent"  # watching | degraded (some folders unwatched) | failed (no watch) | absent | file
    flags: _Flags | None = None
    limit_reported: bool = False  # say it once per episode, not at every retry


def _identity(path: str | bytes) -> tuple[int, int] | None:
    """(device, inode) of the folder `path` names (through links), or None when it is not a folder."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino) if stat_mod.S_ISDIR(st.st_mode) else None


class _LoopSafeStat:
    """The stat function of a polling snapshot of `root`: a second name of a folder reads as a link (not entered).

    watchdog's snapshot stats the root first, then walks; that first call starts a new snapshot.
    """

    def __init__(self, root: str, follow_symlinks: bool) -> None:
        self.root = os.fsencode(root)
        self.follow = follow_symlinks
        self._seen: dict[tuple[int, int], bytes] = {}

    def __call__(self, path: str | bytes) -> os.stat_result:
        raw = os.fsencode(path)
        if raw == self.root:
            self._seen = {}
        if not self.follow:
            return os.lstat(path)
        st = os.stat(path)
        if stat_mod.S_ISDIR(st.st_mode):
            ident = (st.st_dev, st.st_ino)
            first = self._seen.setdefault(ident, raw)
            if first != raw:
                _skip_loop(raw, first)
                return os.lstat(path)
        return st


class Watcher:
    """One observer per root, feeding `Hint`s and `Trouble`s into `out`; driven from the daemon's thread."""

    def __init__(
        self,
        scan: ScanConfig,
        daemon: DaemonConfig,
        out: queue.SimpleQueue[Event],
        *,
        mounts_file: Path = MOUNTS_FILE,
        watch_limit: int | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self._stopping = stop  # set when the daemon stops: a walk setting up watches gives up
        self.scan = scan
        self.daemon = daemon
        self.out = out
        self.mounts_file = mounts_file
        self.watch_limit = watch_limit  # a test hook: fail watches past this count as the kernel would
        self._roots: dict[str, RootWatch] = {}

    # ------------------------------------------------------------ roots

    def _mounts(self) -> list[tuple[str, str]]:
        try:
            return read_mounts(self.mounts_file.read_text(encoding="utf-8", errors="surrogateescape"))
        except OSError:
            return []

    def sync(self, roots: Iterable[str], modes: Mapping[str, str] | None = None) -> list[str]:
        """Watch new roots, drop unlisted ones; `modes`: root -> auto|inotify|poll; returns the added."""
        wanted = [os.path.abspath(r) for r in roots]
        requested = {os.path.abspath(r): m for r, m in (modes or {}).items()}
        for root in list(self._roots):
            if root not in wanted or self._roots[root].requested != requested.get(root, "auto"):
                self._stop(self._roots.pop(root))
                if root not in wanted:
                    log.info("stopped watching %s (no longer a root)", root)
        added = []
        mounts: list[tuple[str, str]] | None = None
        for root in wanted:
            if root in self._roots:
                continue
            if mounts is None:
                mounts = self._mounts()
            if sys.platform.startswith("linux"):
                mode, why = watch_mode(root, self.daemon.polling_roots, mounts, requested.get(root, "auto"))
            elif requested.get(root) == "poll":
                mode, why = "polling", "watch mode `poll` set for this root"
            else:
                mode, why = "native", f"watchdog's observer for {sys.platform}"
            rw = RootWatch(root, mode, why, requested=requested.get(root, "auto"))
            self._roots[root] = rw
            added.append(root)
            if os.path.isfile(root):
                rw.state = "file"  # a single photo added as a root: rescans cover it, no folder to watch
                log.info("%s is a single file: not watched, kept up to date by rescans", root)
            elif _identity(root) is not None:
                self._start(rw, announce=True)
            else:
                log.warning("%s: the folder is not there; it is watched again when it comes back", root)
        return added

    def _start(self, rw: RootWatch, *, announce: bool = False) -> None:
        """Start watching one root; failures become trouble on the queue (never an exception)."""
        self._stop(rw)
        rw.flags = _Flags()
        rw.identity = _identity(rw.root)
        if rw.identity is None:
            rw.state = "absent"
            return
        if rw.mode == "polling":
            from watchdog.observers.polling import PollingObserverVFS

            observer: BaseObserver = PollingObserverVFS(
                _LoopSafeStat(rw.root, self.scan.follow_symlinks),
                os.scandir,
                polling_interval=max(1.0, self.daemon.poll_interval),
            )
        elif rw.mode == "inotify":
            observer = _inotify_observer(rw.flags, self.watch_limit, self._stopping)
        else:
            from watchdog.observers import Observer

            observer = Observer()
        handler = _Handler(rw.root, self.scan, self.out, hints_writing=rw.mode == "inotify")
        try:
            observer.schedule(
                handler,
                rw.root,
                recursive=True,
                event_filter=_EVENTS,
                follow_symlink=self.scan.follow_symlinks,
            )
            observer.start()
        except OSError as exc:
            _quiet_stop(observer)
            rw.observer = None
            rw.state = "failed"
            if exc.errno == errno.ENOSPC:
                rw.flags.limit_hit = True  # reported with the folder count by check()
            else:
                self.out.put(
                    Trouble(
                        rw.root,
                        "watch-failed",
                        f"{rw.root}: cannot watch the folder ({exc.strerror or exc}); "
                        f"its changes are found by rescans every {self.daemon.poll_interval:.0f} s",
                    )
                )
            return
        rw.observer = observer
        rw.state = "degraded" if rw.flags.limit_hit else "watching"
        if rw.state == "watching":
            rw.limit_reported = False
        log.log(logging.INFO if announce else logging.DEBUG, "watching %s with %s (%s)", rw.root, rw.mode, rw.why)

    def _stop(self, rw: RootWatch) -> None:
        if rw.observer is not None:
            _quiet_stop(rw.observer)
            rw.observer = None

    def retry(self, root: str) -> bool:
        """Set up a degraded or failed root's watches again; True when it is now fully watched."""
        rw = self._roots.get(root)
        if rw is None:
            return False
        self._start(rw)
        if rw.state == "watching":
            log.info("watching %s completely again", root)
        return rw.state == "watching"

    def check(self) -> None:
        """Look at every root (cheap: one stat each) and put a Trouble for each change worth a rescan."""
        for rw in self._roots.values():
            if rw.state == "file":
                continue
            now = _identity(rw.root)
            if now is None:
                if rw.state != "absent":
                    self._stop(rw)
                    rw.state = "absent"
                    self.out.put(
                        Trouble(
                            rw.root,
                            "root-vanished",
                            f"{rw.root}: the folder disappeared (unplugged drive, unmounted or deleted); "
                            "its photos are marked missing until it comes back",
                        )
                    )
                continue
            if rw.state == "absent":
                self._start(rw)
                self.out.put(Trouble(rw.root, "root-returned", f"{rw.root}: the folder is back; watching it again"))
            elif rw.identity != now:
                self._start(rw)
                self.out.put(
                    Trouble(
                        rw.root,
                        "root-replaced",
                        f"{rw.root}: the folder was replaced or remounted; watching the new one",
                    )
                )
            elif rw.observer is not None and not _alive(rw.observer):
                self._start(rw)
                self.out.put(Trouble(rw.root, "watch-lost", f"{rw.root}: the watch stopped; watching it again"))
            flags = rw.flags
            if flags is None:
                continue
            if flags.limit_hit:
                self._report_limit(rw)
            if flags.overflowed:
                flags.overflowed = False
                self.out.put(
                    Trouble(
                        rw.root,
                        "overflow",
                        f"{rw.root}: the kernel's inotify queue overflowed, events were lost",
                    )
                )
            if flags.unmounted:
                flags.unmounted = False
                self._start(rw)  # the watches below the unmounted folder are gone: set them up again
                self.out.put(Trouble(rw.root, "unmounted", f"{rw.root}: a filesystem below it was unmounted"))

    def _report_limit(self, rw: RootWatch) -> None:
        assert rw.flags is not None
        rw.flags.limit_hit = False
        if rw.state == "watching":
            rw.state = "degraded"  # a new subfolder could not be watched after the start
        if rw.limit_reported:
            return
        rw.limit_reported = True
        folders = count_folders(self._roots, self.scan.follow_symlinks)
        limit = self.watch_limit if self.watch_limit is not None else max_user_watches()
        what = "PHOTOINDEX_TEST_WATCH_LIMIT" if self.watch_limit is not None else "fs.inotify.max_user_watches"
        self.out.put(
            Trouble(
                rw.root,
                "watch-limit",
                f"{rw.root}: inotify watch limit reached: {folders} folders under the roots, {what} is "
                f"{limit if limit is not None else 'unknown'} (shared by every process of this user); "
                f"folders without a watch are rescanned every {self.daemon.poll_interval:.0f} s. "
                "Raise it (`sudo sysctl fs.inotify.max_user_watches=524288`, and in /etc/sysctl.d/) "
                "or list the root in [daemon] polling_roots",
            )
        )

    # ------------------------------------------------------------ reading the state

    def incomplete(self) -> list[str]:
        """Roots on disk but not fully watched (limit reached, watch failed): they need periodic rescans."""
        return [r.root for r in self._roots.values() if r.state in ("degraded", "failed")]

    def summary(self) -> str:
        """One line for `photoindex status`: how each root is watched."""
        if not self._roots:
            return "no roots yet"
        parts = []
        for rw in self._roots.values():
            state = {
                "watching": rw.mode,
                "degraded": f"{rw.mode}, watch limit reached",
                "failed": "not watched, rescanned",
                "absent": "not present",
                "file": "single file, rescanned",
            }.get(rw.state, rw.state)
            parts.append(f"{rw.root} ({state})")
        return "watching " + ", ".join(parts)

    def stop(self) -> None:
        """Stop every observer (bounded: a few seconds at most)."""
        for rw in self._roots.values():
            self._stop(rw)


def _alive(observer: BaseObserver) -> bool:
    """Whether the observer and every emitter still run (a deleted root kills its emitter only)."""
    return observer.is_alive() and all(e.is_alive() for e in list(observer.emitters))


def _quiet_stop(observer: BaseObserver) -> None:
    try:
        observer.stop()
        if observer.is_alive():
            observer.join(timeout=3.0)
    except Exception:  # stopping half-started watchdog threads must never take the daemon down
        log.debug("error while stopping an observer", exc_info=True)
