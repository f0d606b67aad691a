"""Settling: a watched path is worked on only once it has stopped changing.

`on_created` fires before a file is fully written, and a big copy gives one created and many
modified events (docs/daemon.md, "What the daemon does"). The robust rule, as chokidar's `awaitWriteFinish`
and immich do it: a path is due once its size and mtime have been stable for `settle_seconds`.
Close-write events are only a hint: a file that was written but not yet closed (inotify tells us
both) waits longer, so a writer that pauses between chunks is not read half-written.

A pending folder (created, moved in, deleted) is due when it and everything pending below it have
been quiet; it then covers its pending descendants, which are dropped (the indexer walks it). Both
ends of a move are released together, so the indexer sees the vanished source and the new
destination in one unit of work and relinks instead of re-encoding.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from photoindex.paths import within

# A writer that has not closed its file yet may be pausing between chunks: wait this many
# times longer before trusting a stable size (inotify only; polling never sees a close).
OPEN_WRITER_FACTOR = 3.0

Signature = tuple[int, int, int] | None  # (kind, size, mtime_ns); None when the path is gone
StatFn = Callable[[str], os.stat_result]


@dataclass
class _Entry:
    """One pending path and what has been seen of it."""

    folder: bool
    signature: Signature
    quiet_since: float  # the last event under it, or the last time its signature changed
    open_writer: bool
    partner: str | None


class Settler:
    """Pending paths; `due()` hands back those that have settled (not thread-safe: one owner)."""

    def __init__(self, settle_seconds: float, *, stat: StatFn = os.stat) -> None:
        self.settle_seconds = max(0.0, settle_seconds)
        self._stat = stat
        self._pending: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, path: object) -> bool:
        return path in self._pending

    def _signature(self, path: str) -> Signature:
        try:
            st = self._stat(path)
        except OSError:
            return None
        return (st.st_mode >> 12, st.st_size, st.st_mtime_ns)

    def note(
        self,
        path: str,
        now: float,
        *,
        folder: bool = False,
        writing: bool = False,
        closed: bool = False,
        partner: str | None = None,
    ) -> None:
        """Record an event on `path` at monotonic time `now`; `writing`/`closed` are inotify hints."""
        entry = self._pending.get(path)
        if entry is None:
            entry = _Entry(
                folder=folder,
                signature=self._signature(path),
                quiet_since=now,
                open_writer=False,
                partner=partner,
            )
            self._pending[path] = entry
        else:
            entry.quiet_since = now
            entry.folder = entry.folder or folder
            if partner is not None:
                entry.partner = partner
        if closed:
            entry.open_writer = False
        elif writing:
            entry.open_writer = True
        self._touch_ancestors(path, now)

    def _touch_ancestors(self, path: str, now: float) -> None:
        # Activity below a pending folder keeps the folder from settling (a copy into it goes on).
        parent = os.path.dirname(path)
        while parent and parent != path:
            above = self._pending.get(parent)
            if above is not None and above.folder:
                above.quiet_since = max(above.quiet_since, now)
                # The folder's own mtime moved because of this very activity: no need to wait twice.
                above.signature = self._signature(parent)
            path, parent = parent, os.path.dirname(parent)

    def _quiet_needed(self, entry: _Entry) -> float:
        return self.settle_seconds * (OPEN_WRITER_FACTOR if entry.open_writer else 1.0)

    def due(self, now: float) -> list[str]:
        """Remove and return the paths whose state has been stable long enough (sorted)."""
        ready: set[str] = set()
        for path, entry in self._pending.items():
            if now - entry.quiet_since < self._quiet_needed(entry):
                continue
            signature = self._signature(path)
            if signature != entry.signature:
                # It changed without an event (a slow writer, a network folder): start the wait again.
                entry.signature = signature
                entry.quiet_since = now
                self._touch_ancestors(path, now)
                continue
            ready.add(path)
        # A silent change found below a folder just now keeps that folder waiting too.
        ready = {p for p in ready if now - self._pending[p].quiet_since >= self._quiet_needed(self._pending[p])}
        # Both ends of a move go together, or neither does; a ready folder takes what is below it.
        while True:
            folders = [p for p in ready if self._pending[p].folder]
            covered = {p for p in self._pending if p not in ready and any(p != f and within(p, f) for f in folders)}
            held = {
                p
                for p in ready
                if (partner := self._pending[p].partner) is not None
                and partner in self._pending
                and partner not in ready
                and partner not in covered
            }
            if not held:
                break
            ready -= held
        for path in ready | covered:
            del self._pending[path]
        return sorted(p for p in ready if not any(p != f and within(p, f) for f in folders))

    def next_due(self, now: float) -> float | None:
        """Seconds until the earliest pending path may be due (0 when overdue), None when none is."""
        if not self._pending:
            return None
        return max(0.0, min(e.quiet_since + self._quiet_needed(e) - now for e in self._pending.values()))

    def drop_under(self, folder: str) -> int:
        """Forget pending paths at or below `folder` (a rescan of it covers them); returns how many."""
        gone = [p for p in self._pending if within(p, folder)]
        for p in gone:
            del self._pending[p]
        return len(gone)
