"""Indexing: scan -> diff -> hash/decode (worker processes) -> encode in batches -> commit -> index.

A run reconciles roots with the disk: new and changed photos are encoded, moved, renamed and
copied ones reuse their stored vector (found by content hash), vanished ones are marked missing,
and failed ones are retried only when they change. Each batch is one transaction, so a crash at
any point leaves a catalog the next run simply continues from (docs/architecture.md, invariants 2, 6, 7).
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from photoindex.catalog import reads
from photoindex.catalog import writes as catalog
from photoindex.catalog.writerlock import WriterLock
from photoindex.config import Config
from photoindex.errors import ConfigError, PhotoindexError
from photoindex.library import Library, open_library
from photoindex.mounts import Mounts, root_name
from photoindex.paths import within
from photoindex.photos.decodepool import DecodeJob, DecodePool, DecodeResult, start_server
from photoindex.photos.scanner import FileFact, ScanProblem, ignored_below, stat_fact, walk
from photoindex.photos.thumbnails import thumbnail_store

if TYPE_CHECKING:
    from concurrent.futures import Executor, Future

    from sqlalchemy.orm import Session

    from photoindex.vectors.cache import IndexHandle

log = logging.getLogger("photoindex")



@dataclass(frozen=True)
class Rounds:
    """How a run bounds its memory: `work` photos (or vanished rows) found by the scan before they are worked
    on (~0.4 KB each, so ~20 MB; below it a run knows its total, and the progress bar its ETA), and the
    catalog read beside the walk `page` rows at a time. Tests pass tiny ones to cross many boundaries."""

    work: int = 50_000
    page: int = 2000

# Runs in a row that may fail an unchanged photo by a decode timeout or a crashed worker before it
# waits for the file to change: such failures are often the machine's (load, memory), not the photo's.
RETRY_LIMIT = 3


@dataclass(frozen=True)
class Failure:
    """A photo that could not be indexed, with what to do about it."""

    path: str
    reason: str
    message: str
    hint: str | None = None


@dataclass(frozen=True)
class PlannedChange:
    """One line of `--dry-run`: what a run would do to a path."""

    action: str  # add | update | move | missing | check
    path: str
    source: str | None = None  # a move's old path


@dataclass(frozen=True)
class Progress:
    """A progress event: `stage` is scanning, hashing or encoding; `total` None when unknown."""

    stage: str
    done: int
    total: int | None
    rate: float = 0.0


@dataclass
class IndexReport:
    """What a run did; `failures` lists only photos that failed for the first time in this run."""

    added: int = 0
    updated: int = 0
    moved: int = 0
    missing: int = 0
    forgotten: int = 0  # photos missing longer than `[index] forget_missing_after_days`, deleted with their vectors
    caught_up: int = 0  # unchanged photos given a vector for the configured model (indexed under another one)
    retried: int = 0  # unchanged photos that had failed, tried again (a decoder appeared, or a timeout or crash)
    collected: int = 0  # vectors no photo held for `forget_missing_after_days`, deleted (every model)
    failed: int = 0
    unchanged: int = 0
    encoded: int = 0
    reused: int = 0
    metadata_backfilled: int = 0  # unchanged photos whose metadata was read from their headers (docs/search.md)
    seconds: float = 0.0
    interrupted: bool = False
    index_written: bool = False
    roots: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    planned: list[PlannedChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    text: dict[str, Any] | None = None  # the text pass after encoding (ocr/reader.py TextReport), when it ran

    @property
    def failed_new(self) -> int:
        """How many photos failed for the first time in this run."""
        return len(self.failures)

    def summary(self, *, changes_only: bool = False) -> str:
        """One line of counts and time, e.g. "2 added, ..., 5 encoded in 1.2 s".

        `changes_only` (the daemon's log) leaves out zero counts and the unchanged photos.
        """
        counts = [
            (self.added, "added"),
            (self.updated, "updated"),
            (self.moved, "moved"),
            (self.missing, "missing"),
            (self.forgotten, "forgotten (long missing)"),
            (self.caught_up, "caught up with the model"),
            (self.retried, "retried"),
            (self.collected, "unused vectors collected"),
            (self.failed, "failed"),
            *([] if changes_only else [(self.unchanged, "unchanged")]),
            (self.encoded, "encoded"),
            (self.metadata_backfilled, "with metadata read again"),
        ]
        always = () if changes_only else ("added", "updated", "moved", "missing", "failed", "unchanged", "encoded")
        parts = [f"{n} {what}" for n, what in counts if n or what in always]
        line = (", ".join(parts) or "no changes") + f" in {self.seconds:.1f} s"
        t = self.text
        if t and (not changes_only or t["read"] or t["skipped"] or t["failed"]):
            photos = "photo" if t["read"] == 1 else "photos"
            line += (
                f"; text: {t['read']} {photos} read ({t['with_text']} with text), {t['skipped']} skipped by the "
                f"gate, {t['failed']} failed, {t['waiting']} waiting, in {t['seconds']:.1f} s"
            )
        return line

    def to_json(self) -> dict[str, Any]:
        """The summary printed by `--json`."""
        data = asdict(self)
        data["failures"] = [asdict(f) for f in self.failures]
        data["planned"] = [asdict(p) for p in self.planned]
        return data


ProgressFn = Callable[[Progress], None]

_PROGRESS_NOTE_SECONDS = 0.5  # how often a run's progress is written where `status` and the web page read it


def noting_progress(lock: WriterLock, progress: ProgressFn | None = None) -> ProgressFn:
    """A progress callback that also records the run's progress with the writer lock it holds, at most
    twice a second (`photoindex status --json` and the web page's status show it while the run goes on)."""
    last_at, last_stage = [0.0], [""]

    def note(event: Progress) -> None:
        if progress is not None:
            progress(event)
        now = time.monotonic()
        finished = event.total is not None and event.done >= event.total
        if event.stage != last_stage[0] or finished or now - last_at[0] >= _PROGRESS_NOTE_SECONDS:
            last_at[0], last_stage[0] = now, event.stage
            lock.note({"stage": event.stage, "done": event.done, "total": event.total, "rate": round(event.rate, 2)})

    return note


@dataclass
class _Pending:
    """A path that needs work, with what the catalog knew about it."""

    fact: FileFact
    root_id: int
    known: reads.PhotoState | None
    why: str = "changed"  # "changed" (new, edited, back); "model": only lacks the model's vector; "retry"


class _Batch:
    """Photos decoded and waiting to be encoded and committed together."""

    def __init__(self) -> None:
        self.pixels: list[np.ndarray] = []
        self.new: list[tuple[_Pending, DecodeResult]] = []  # to encode
        self.linked: list[
            tuple[_Pending, DecodeResult | None, str, int]
        ] = []  # (item, result, hash, vector id)
        self.failed: list[tuple[_Pending, DecodeResult]] = []

    def __len__(self) -> int:
        return len(self.new)

    def empty(self) -> bool:
        return not (self.new or self.linked or self.failed)


@dataclass
class _Encoding:
    """A batch handed to the encoder thread: its photos to encode (`todo`) and the vectors to come."""

    batch: _Batch
    todo: list[tuple[int, _Pending, DecodeResult]]
    future: Future[np.ndarray] | None


class Indexer:
    """Reconciles roots with the disk for one open library; the caller holds the writer lock."""

    def __init__(
        self,
        lib: Library,
        progress: ProgressFn | None = None,
        stop: threading.Event | None = None,
        *,
        index: IndexHandle | None = None,
        save_index: bool = True,
        rounds: Rounds = Rounds(),
        at_tail: Callable[[], None] | None = None,
    ) -> None:
        """`index`: an open `IndexHandle` to reuse (the daemon keeps one); `save_index`: write it when the run ends;
        `rounds`: the sizes that bound a run's memory; `at_tail`: called once, when the run has no photo
        left to decode (its last batches encode and commit, the decode workers are gone): work that must
        not take the cores or the GIL from decoding starts there (docs/indexing.md)."""
        self.lib = lib
        self.rounds = rounds
        self.config = lib.config
        self.progress = progress or (lambda p: None)
        self.stop = stop or threading.Event()
        self.report = IndexReport()
        self._index = index  # opened (or refreshed) on first commit
        self._index_fresh = False
        self._save_index = save_index
        self._encoding_done = 0  # photos through the decode/encode stage in earlier rounds of this run
        self._batches_started = False  # a batch of this run has gone to the encoder
        self._at_tail = at_tail
        self._copies: list[str] = []  # paths added in this run as copies of known content (maybe moves)
        self._stale_meta: list[tuple[int, str]] = []  # unchanged photos indexed before today's metadata
        self._decoders: frozenset[str] | None = None  # image formats this process can decode (on first need)
        self._thumbnails = thumbnail_store(self.config) if self.config.thumbnails.while_indexing else None
        # On a shared (PostgreSQL) catalog new and changed photos are queued as pending rows and
        # claimed in batches by every indexer working on the library (docs/scale.md).
        self.shared = lib.db.kind == "postgresql"
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        # Catalog paths of named roots are `NAME:/...`; the disk is reached at this machine's mount of
        # NAME (photoindex/mounts.py): `_diff` spells what the walk finds the catalog's way, and every
        # file opened, and every path reported, is spelled this machine's way.
        self.mounts = self.config.mounts
        self.local = self.mounts.local

    # ------------------------------------------------------------ scanning and diffing

    def _diff(self, scopes: Sequence[tuple[catalog.RootRecord, str]]) -> Iterator[_Pending | reads.PhotoState]:
        """Work to do (`_Pending`) and vanished rows (`PhotoState`), scope by scope, in path order.

        A scope is a whole root (reconciliation) or a path inside one (a watcher hint): a folder is
        walked, a file is stat'ed, a path that is gone makes everything the catalog had there vanish.
        The walk and the catalog are two streams sorted by path, merged one entry at a time, so
        memory does not grow with the size of a root. Callers may commit between items: rows they
        add or change are at paths already passed (see `_CatalogStream`).
        """
        seen = 0
        for root, scope in scopes:
            facts: Iterator[FileFact]
            disk, disk_root = self.local(scope), self.local(root.path)
            # The walk's paths in the catalog's spelling, relative to the root being walked (a named
            # root's `NAME:`; the identity for a root registered by its absolute path).
            stored = functools.partial(_respelled, disk_root, root.path)
            problems = _Problems(stored=stored)
            if ignored_below(scope, root.path, self.config.scan):
                facts = iter(())  # a hint inside a hidden or excluded folder: a full walk never goes there
            elif os.path.isdir(disk):
                facts = walk(Path(disk), self.config.scan, problems.add, base=disk_root)
            elif os.path.isfile(disk):
                fact = stat_fact(disk, self.config.scan, base=disk_root)
                facts = iter([fact] if fact is not None else [])
            else:
                if scope == root.path:
                    self._warn(
                        f"{disk_root}: the folder is not there (unplugged drive or deleted folder); "
                        "its photos are marked missing and come back without re-encoding when it returns"
                    )
                facts = iter(())
            if disk != scope:  # a named root: the walk's paths in the catalog's spelling (same order)
                facts = (FileFact(stored(f.path), f.size, f.mtime_ns) for f in facts)
            known = _CatalogStream(self.lib, scope, self.lib.model_id, page=self.rounds.page)
            for fact in facts:
                seen += 1
                if seen % 1000 == 0:
                    if not self._encoding_done:  # once rounds of work began, progress counts the work
                        self.progress(Progress("scanning", seen, None))
                    if self.stop.is_set():
                        break  # an incomplete walk proves nothing about what vanished after this point
                key = os.fsencode(fact.path)
                k: reads.PhotoState | None = None
                for row in known.until(key):
                    if row.path == fact.path:
                        k = row
                    elif _vanished(row, problems.blind):
                        yield row
                if k is not None and k.size == fact.size and k.mtime_ns == fact.mtime_ns:
                    why = self._unchanged_needs(k)
                    if why is None:
                        self.report.unchanged += 1
                        if k.status == "indexed" and k.meta_version < catalog.META_VERSION:
                            self._stale_meta.append((k.id, k.path))
                        continue
                    yield _Pending(fact, root.id, k, why)
                    continue
                yield _Pending(fact, root.id, k)
            if self.stop.is_set():
                self.report.interrupted = True
                return
            for row in known.rest():
                if _vanished(row, problems.blind):
                    yield row
            for prob in problems.seen:
                self._warn(f"{prob.path}: {prob.message}")
            if scope == root.path and os.path.isfile(disk) and known.had_rows_below:
                self._warn(
                    f"{disk_root}: the folder is now a file; its photos are marked missing "
                    "and come back without re-encoding if the folder returns"
                )

    def _unchanged_needs(self, k: reads.PhotoState) -> str | None:
        """What an unchanged file still needs: "model" (no vector for the configured model), "retry" (a
        failure worth trying again), or None (nothing). A photo is indexed per model (docs/models.md)."""
        if k.status == "indexed":
            return "model" if k.has_vector is False else None
        if k.status == "failed":
            return "retry" if self._worth_retrying(k) else None
        return "changed"  # pending or missing: never finished here

    def _worth_retrying(self, k: reads.PhotoState) -> bool:
        """A failure for want of a decoder that is there now, or a timeout or crashed worker not yet retried
        RETRY_LIMIT times (docs/indexing.md, "Failures"); any other failure waits for the file to change."""
        if k.failure_kind == "missing-decoder":
            had = frozenset(filter(None, (k.failure_decoders or "").split(",")))
            return not self.decoders() <= had
        if k.failure_kind in ("timeout", "crashed"):
            return k.failure_attempts < RETRY_LIMIT
        return False

    def decoders(self) -> frozenset[str]:
        """The image formats this process can decode (pillow-heif installed or not), looked up once."""
        if self._decoders is None:
            from photoindex.photos.imaging import decodable_formats

            self._decoders = frozenset(decodable_formats())
        return self._decoders

    def _warnings_of(self, lines: Iterable[str]) -> None:
        for line in lines:
            self._warn(line)

    def _warn(self, line: str) -> None:
        """A problem worth one line: logged (stderr) and kept in the report (`--json`)."""
        log.warning("%s", line)
        self.report.warnings.append(line)

    # ------------------------------------------------------------ the run

    def run(self, roots: Sequence[catalog.RootRecord], *, dry_run: bool = False) -> IndexReport:
        """Reconcile the given roots; returns the report (also on interruption)."""
        if not dry_run:
            name_mapped_roots(self.lib)
            # The caller's root records may be stale (the daemon caches them): a root may have been
            # absorbed by a parent added since, or named since (`name_mapped_roots`). Map each to
            # the root that holds it now.
            with self.lib.db.read() as s:
                current = catalog.list_roots(s)
            fresh = {}
            for r in roots:
                holder = _root_of(current, self.mounts.stored(r.path))  # the daemon's are spelled locally
                if holder is not None:
                    fresh[holder.id] = holder
            roots = list(fresh.values())
        roots = self._reachable(roots)
        self.report.roots = [self.local(r.path) for r in roots]
        _check_forget_setting(self.config.index.forget_missing_after_days)
        if self.shared and not dry_run:
            return self._run_shared(roots)
        report = self.run_scopes([(r, r.path) for r in roots], dry_run=dry_run)
        if not report.interrupted:
            present = {r.id: self._root_there(r) for r in roots}
            if not dry_run:
                with self.lib.db.write() as s:
                    catalog.set_roots_scanned(s, [r.id for r in roots], present)
            self._forget_long_missing([r.id for r in roots if present[r.id]], dry_run=dry_run)
            if not dry_run:
                self._collect_unheld_vectors()
        return report

    def _collect_unheld_vectors(self) -> None:
        """After a full scan: delete the vectors no photo has held for `[index] forget_missing_after_days`
        (an edited photo's old content, a root forgotten without --purge), of every model, from SQLite
        and the index files (docs/indexing.md, "Vectors nobody uses")."""
        days = self.config.index.forget_missing_after_days
        if days <= 0:
            return
        now = datetime.now(timezone.utc)
        handle = self._open_index()  # current with the catalog before anything is deleted
        model_id = self.lib.model_id
        with self.lib.db.write() as s:
            deleted = catalog.collect_unheld_vectors(s, unheld_since=now - timedelta(days=days), now=now)
            after = (catalog.index_state(s, model_id), catalog.vectors_anchor(s, model_id),
                     catalog.max_vector_id(s, model_id))
        self.report.collected += sum(len(ids) for ids in deleted.values())
        mine = deleted.pop(model_id, [])
        if mine:
            handle.remove(np.asarray(mine, dtype=np.int64), *after)
            self.report.index_written = self._finish_index() or self.report.index_written
        if deleted and self._save_index:
            self._warnings_of(refresh_other_indexes(self.lib, deleted))

    def _run_shared(self, roots: Sequence[catalog.RootRecord]) -> IndexReport:
        """`run` on a shared catalog: scan the roots no other indexer is scanning (each under its advisory
        lock), queueing their new and changed photos, then encode pending photos of all the roots in
        claimed batches, with the other indexers, until none is left."""
        present: dict[int, bool] = {}
        with ExitStack() as locks:
            mine = [r for r in roots if locks.enter_context(self.lib.db.scan_lock(r.id))]
            if mine:
                self.run_scopes([(r, r.path) for r in mine])
                if not self.report.interrupted:
                    present = {r.id: self._root_there(r) for r in mine}
                    with self.lib.db.write() as s:
                        catalog.set_roots_scanned(s, [r.id for r in mine], present)
        if not self.report.interrupted:
            self._drain([r.id for r in roots], scanned_elsewhere=[r.id for r in roots if r not in mine])
        if present and not self.report.interrupted:
            # Forgetting waits for the queue to drain, as on SQLite it follows the encoding: a long-missing
            # photo back under a new name is queued by the scan and relinked to its stored vector only when
            # claimed; forgetting first would delete that vector and encode the photo again. Under the
            # roots' scan locks again (a root another indexer is scanning now is left to it).
            with ExitStack() as locks:
                there = [r.id for r in mine if present[r.id] and locks.enter_context(self.lib.db.scan_lock(r.id))]
                self._forget_long_missing(there, dry_run=False)
                self._collect_unheld_vectors()
        return self.report

    def _scanned_now(self, root_id: int) -> bool:
        """Whether another indexer holds the root's scan lock at this moment."""
        with self.lib.db.scan_lock(root_id) as got:
            return not got

    def _queue(self, items: list[_Pending]) -> None:
        """Record new and changed photos as pending, for whichever indexer claims them first."""
        for start in range(0, len(items), 1000):
            with self.lib.db.write() as s:
                for p in items[start : start + 1000]:
                    catalog.store_pending(s, root_id=p.root_id, path=p.fact.path, size=p.fact.size,
                                          mtime_ns=p.fact.mtime_ns)

    def _drain(self, root_ids: list[int], scanned_elsewhere: list[int]) -> None:
        """Claim pending photos of the roots in batches and encode them, until no photo is pending and no
        other indexer is still scanning one of them (it may queue more).

        Photos another indexer holds are waited for: when its lease runs out (it died), they are
        claimed here. Each claim is one short transaction; the batch's results are another.
        """
        lease = self.config.catalog.lease_seconds
        size = max(1, self.config.index.batch_size)
        while not self.stop.is_set():
            def claim() -> list[catalog.Claim]:
                with self.lib.db.write() as s:
                    return catalog.claim_pending(s, self.worker, limit=size, lease_seconds=lease, root_ids=root_ids)

            claims = self.lib.db.retrying(claim, on_retry=self._warn)
            if claims:
                self._encode_all([_Pending(FileFact(c.path, c.size, c.mtime_ns), c.root_id, None) for c in claims])
                continue
            with self.lib.db.read() as s:
                idle = not catalog.pending_count(s, root_ids)
            if idle and not any(self._scanned_now(r) for r in scanned_elsewhere):
                return
            self.stop.wait(min(1.0, lease / 10))  # held by another indexer: until it stores them or its lease ends
        self.report.interrupted = True

    def _reachable(self, roots: Sequence[catalog.RootRecord]) -> list[catalog.RootRecord]:
        """The roots this machine can reach: a named root not mapped in `[catalog] roots` is another
        machine's (skipped with a warning, never marked missing)."""
        out = []
        for r in roots:
            if self.mounts.mapped(r.path):
                out.append(r)
            else:
                self._warn(
                    f"root {r.name or r.path!r} is not mapped on this machine: skipped; to index it here add "
                    f'"{r.name or r.path.rstrip(":")}=/its/mount/path" to [catalog] roots in config.toml'
                )
        return out

    def _root_there(self, root: catalog.RootRecord) -> bool:
        """A folder root is there as a folder with something in it (an empty one is most likely the mount
        point of an unplugged drive); a one-photo root as that file (not a folder that became a file, which
        the catalog tells by the photos it has below the root's path)."""
        disk = self.local(root.path)
        if os.path.isdir(disk):
            try:
                with os.scandir(disk) as entries:
                    return any(True for _ in entries)
            except OSError:
                return False
        if not os.path.isfile(disk):
            return False

        with self.lib.db.reads() as con:
            below = reads.photo_states_under(con, root.path, after=os.fsencode(root.path), limit=1)
        return not below

    def _forget_long_missing(self, root_ids: list[int], *, dry_run: bool) -> None:
        """After a full scan: forget photos missing for longer than configured, and the vectors only they held.

        Only roots that are there: the photos of an unplugged drive wait for it however long it takes.
        A dry run lists them (action "forget").
        """
        days = self.config.index.forget_missing_after_days
        if days <= 0 or not root_ids:
            return
        since = datetime.now(timezone.utc) - timedelta(days=days)
        if dry_run:
            with self.lib.db.read() as s:
                paths = catalog.long_missing(s, root_ids, missing_since=since)
            self.report.planned.extend(PlannedChange("forget", self.local(path)) for path in paths)
            self.report.forgotten = len(paths)
            return
        handle = self._open_index()  # current with the catalog before anything is deleted
        model_id = self.lib.model_id
        with self.lib.db.write() as s:
            forgotten, deleted = catalog.forget_missing(s, root_ids, missing_since=since)
            if forgotten:
                from photoindex.catalog import text as catalog_text

                catalog_text.forget_unheld(catalog.connection(s))  # their words go with them (docs/ocr.md)
            after = (catalog.index_state(s, model_id), catalog.vectors_anchor(s, model_id),
                     catalog.max_vector_id(s, model_id))
        self.report.forgotten += forgotten
        mine = deleted.pop(model_id, [])
        if mine:
            # The ids are known: take them out of the open index rather than rebuilding it from SQLite
            # (the new epoch would otherwise make every reader rebuild).
            handle.remove(np.asarray(mine, dtype=np.int64), *after)
            self.report.index_written = self._finish_index() or self.report.index_written
        if deleted and self._save_index:
            self._warnings_of(refresh_other_indexes(self.lib, deleted))

    def run_paths(self, paths: Iterable[str]) -> IndexReport:
        """Bring specific paths (files or folders, existing or gone) up to date: the daemon's unit of work."""
        name_mapped_roots(self.lib)
        with self.lib.db.read() as s:
            roots = catalog.list_roots(s)
        scopes = []
        roots = [r for r in roots if self.mounts.mapped(r.path)]
        for path in sorted({self.mounts.stored(os.path.abspath(p)) for p in paths}):
            root = _root_of(roots, path)
            if root is not None:
                scopes.append((root, path))
        # A folder and a path inside it: the folder's walk covers the inner one.
        scopes = [sc for sc in scopes if not any(o is not sc and within(sc[1], o[1]) for o in scopes)]
        if not self.shared:
            return self.run_scopes(scopes)
        # A shared catalog: the roots' scan locks (the writer lock per root, docs/scale.md) are waited
        # for, in id order, so this never walks a root another indexer is scanning.
        root_ids = sorted({root.id for root, _ in scopes})
        with ExitStack() as locks:
            for root_id in root_ids:
                path = next(self.local(root.path) for root, _ in scopes if root.id == root_id)
                held = locks.enter_context(
                    self.lib.db.scan_lock(root_id, wait=self.stop, on_wait=functools.partial(_waiting_for, path))
                )
                if not held:  # stopped while waiting: the paths are found again by the next scan
                    self.report.interrupted = True
                    return self.report
            report = self.run_scopes(scopes)
        if not report.interrupted:  # what the paths queued, encoded with the other indexers
            self._drain(root_ids, scanned_elsewhere=[])
        return report

    def run_scopes(
        self, scopes: Sequence[tuple[catalog.RootRecord, str]], *, dry_run: bool = False
    ) -> IndexReport:
        """Diff the scopes against the catalog and do the work: the common path of every run.

        Work is done in rounds of up to `rounds.work` photos (and vanished rows) as the diff finds
        them, so neither the walk nor the work list grows with the library; a dry run lists all.
        """
        started = time.monotonic()
        started_at = datetime.now(timezone.utc)
        self._copies = []
        todo: list[_Pending] = []
        vanished: list[reads.PhotoState] = []
        rounds = 0
        for item in self._diff(scopes):
            if isinstance(item, _Pending):
                todo.append(item)
            else:
                vanished.append(item)
            if not dry_run and len(self._stale_meta) >= self.rounds.work:
                self._backfill_metadata()
            if not dry_run and (len(todo) >= self.rounds.work or len(vanished) >= self.rounds.work):
                self._work(todo, vanished, last=False)
                todo, vanished = [], []
                rounds += 1
                if self.stop.is_set():
                    self.report.interrupted = True
                if self.report.interrupted:
                    break
        if dry_run:
            if not self.report.interrupted:
                self._plan(todo, vanished)
        elif not self.report.interrupted:
            self._work(todo, vanished, last=True)
            self._tail()
            self._backfill_metadata()
            rounds += 1
            if rounds > 1:
                self._fold_late_moves(started_at)
        if not dry_run and rounds:  # a walk interrupted before any work leaves everything as it was
            self.report.index_written = self._finish_index()
        self.report.seconds = time.monotonic() - started
        return self.report

    def _backfill_metadata(self) -> None:
        """Read the headers (never the pixels) of unchanged photos indexed before the metadata the
        catalog now keeps, in the decode workers, and store it; nothing is decoded or encoded again."""
        stale, self._stale_meta = self._stale_meta, []
        if not stale:
            return
        rows: list[tuple[int, Any, int]] = []
        jobs = (DecodeJob(i, self.local(path), "probe") for i, (_, path) in enumerate(stale))
        pool = self._pool()
        for r in pool.run(jobs):
            if r.ok and r.info is not None and r.mtime_ns is not None:
                rows.append((stale[r.key][0], r.info, r.mtime_ns))
            # else: changed, gone or unreadable since the diff: the next scan sees it as such
            if len(rows) >= 2000:
                self._store_metadata(rows)
                rows = []
            if self.stop.is_set():
                pool.stop()
                self.report.interrupted = True
                break
        if rows and not self.report.interrupted:
            self._store_metadata(rows)

    def _store_metadata(self, rows: list[tuple[int, Any, int]]) -> None:
        with self.lib.db.write() as s:
            self.report.metadata_backfilled += catalog.store_metadata(s, rows)

    def _fold_late_moves(self, started_at: datetime) -> None:
        """After several rounds: copies added before their original was found gone are moves after all."""
        if not self._copies:
            return
        with self.lib.db.write() as s:
            folded = sum(catalog.merge_moved(s, path, missing_since=started_at) for path in self._copies)
        self._copies = []
        self.report.moved += folded
        self.report.added -= folded
        self.report.missing -= folded

    def _work(self, todo: list[_Pending], vanished: list[reads.PhotoState], *, last: bool) -> None:
        """One round: mark the vanished missing, relink likely moves by hash, decode and encode the rest."""
        if vanished:
            with self.lib.db.write() as s:
                catalog.mark_missing(s, [v.id for v in vanished])
            self.report.missing += len(vanished)
        if not todo:
            return
        missing_keys = self._missing_keys(vanished, todo)
        hash_first = [
            p
            for p in todo
            if (p.fact.size, p.fact.mtime_ns) in missing_keys
            or (p.known is not None and p.known.status == "missing")
        ]
        hashed = {id(p) for p in hash_first}
        decode_rest = [p for p in todo if id(p) not in hashed]
        decode_more = self._relink_by_hash(hash_first) if hash_first else []
        if self.report.interrupted:
            return
        work = decode_more + decode_rest
        if self.shared:
            self._queue([p for p in work if p.why == "changed"])
            work = [p for p in work if p.why != "changed"]
        self._encode_all(work, last=last)

    def _plan(self, todo: list[_Pending], vanished: list[reads.PhotoState]) -> None:
        moves = self._planned_moves(todo, vanished)
        for p in sorted(todo, key=lambda p: p.fact.path):
            if p.fact.path in moves:
                self.report.planned.append(
                    PlannedChange("move", self.local(p.fact.path), self.local(moves[p.fact.path]))
                )
                continue
            action = "add" if p.known is None else ("check" if p.known.status == "missing" else "update")
            self.report.planned.append(PlannedChange(action, self.local(p.fact.path)))
        moved_from = set(moves.values())
        for v in vanished:
            if v.path not in moved_from:
                self.report.planned.append(PlannedChange("missing", self.local(v.path)))
        self.report.added = sum(1 for c in self.report.planned if c.action == "add")
        self.report.updated = sum(1 for c in self.report.planned if c.action in ("update", "check"))
        self.report.moved = len(moves)
        self.report.missing = len(vanished) - len(moved_from)

    def _planned_moves(self, todo: list[_Pending], vanished: list[reads.PhotoState]) -> dict[str, str]:
        """New path -> old path of the moves a real run would find: same size and mtime, then same content.

        A dry run reads (hashes) those few candidates, as the real run does, so it reports a rename as
        the move it is, not as an add and a missing photo.
        """
        from photoindex.photos.scanner import content_hash

        by_key: dict[tuple[int, int], list[reads.PhotoState]] = {}
        for v in vanished:
            if v.content_hash:
                by_key.setdefault((v.size, v.mtime_ns), []).append(v)
        moves: dict[str, str] = {}
        for p in sorted(todo, key=lambda p: p.fact.path):
            candidates = by_key.get((p.fact.size, p.fact.mtime_ns)) if p.known is None else None
            if not candidates:
                continue
            try:
                digest = content_hash(self.local(p.fact.path))
            except OSError:
                continue
            for v in candidates:
                if v.content_hash == digest:
                    moves[p.fact.path] = v.path
                    candidates.remove(v)
                    break
        return moves

    def _missing_keys(self, vanished: list[reads.PhotoState], todo: Iterable[_Pending]) -> set[tuple[int, int]]:
        """The (size, mtime) keys of work items that match a missing or just-vanished photo."""
        wanted = {(p.fact.size, p.fact.mtime_ns) for p in todo}
        with self.lib.db.read() as s:
            keys = catalog.missing_stat_keys(s, wanted)
        keys.update(k for k in ((v.size, v.mtime_ns) for v in vanished) if k in wanted)
        return keys

    def _pool(self) -> DecodePool:
        workers = self.config.index.workers or (os.cpu_count() or 1)
        return DecodePool(
            self.lib.bundle.manifest.image,
            workers=workers,
            max_pixels=self.config.scan.max_image_pixels,
            timeout=self.config.index.decode_timeout,
            thumbnails=self._thumbnails,
        )

    def _relink_by_hash(self, items: list[_Pending]) -> list[_Pending]:
        """Hash likely moves (same size and mtime as a vanished photo); relink known content, return the rest."""
        by_key = dict(enumerate(items))
        results: list[tuple[_Pending, DecodeResult]] = []
        pool = self._pool()
        for i, r in enumerate(pool.run(DecodeJob(k, self.local(p.fact.path), "hash") for k, p in by_key.items())):
            results.append((by_key[r.key], r))
            self.progress(Progress("hashing", i + 1, len(items)))
            if self.stop.is_set():
                pool.stop()
                self.report.interrupted = True
                break
        ok = [(p, r) for p, r in results if r.ok and r.content_hash]
        rest = [p for p, r in results if not (r.ok and r.content_hash)]
        with self.lib.db.write() as s:
            hashes = {r.content_hash for _, r in ok if r.content_hash}
            vectors = catalog.vector_ids_for_hashes(s, self.lib.model_id, hashes)
            for p, r in ok:
                assert r.content_hash is not None
                if r.content_hash in vectors:
                    self._link(s, p, r, r.content_hash)
                else:
                    rest.append(p)
        return rest

    def _link(self, s: Session, p: _Pending, r: DecodeResult | None, digest: str) -> None:
        """Point a path at content whose vector is already stored (a move, a rename, a copy, a return)."""
        size = r.size if r and r.size is not None else p.fact.size
        mtime = r.mtime_ns if r and r.mtime_ns is not None else p.fact.mtime_ns
        info = r.info if r is not None else None
        outcome = catalog.link_photo(
            s, root_id=p.root_id, path=p.fact.path, size=size, mtime_ns=mtime, content_hash=digest, info=info
        )
        self.report.reused += 1
        if p.why != "changed" and outcome == "updated":
            self._count_unchanged_work(p)
        elif outcome == "moved":
            # The row marked missing at the start of this run lives on under its new path.
            self.report.moved += 1
            self.report.missing = max(0, self.report.missing - 1)
        elif outcome == "added":
            self.report.added += 1
            self._copies.append(p.fact.path)
        else:  # "restored" (back from a missing drive) or "updated"
            self.report.updated += 1

    def _encode_all(self, items: list[_Pending], *, last: bool = True) -> None:
        """Decode and encode `items` in batches; progress counts across rounds (the total is known in the last).

        Three things overlap so the CPU is never idle while there is work: the decode workers, the
        encoder (one thread: ONNX Runtime releases the GIL), and this thread, which hands out
        decoded batches and commits each encoded batch while the encoder works on the next one. The
        image model is loaded on the encoder thread at once, while the first photos decode.
        """
        if not items:
            return
        from concurrent.futures import ThreadPoolExecutor

        by_key = dict(enumerate(items))
        batch = _Batch()
        batch_hashes: set[str] = set()
        pool = self._pool()
        before = self._encoding_done
        total = before + len(items) if last else None
        done = before
        t0 = time.monotonic()
        size = max(1, self.config.index.batch_size)
        pending: _Encoding | None = None
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode") as encoder:
            # Loaded at once, while the first photos decode. A model that cannot load raises from
            # the first batch's encoding, as it would without this.
            encoder.submit(self.lib.image_encoder)
            try:
                for r in pool.run(DecodeJob(k, self.local(p.fact.path), "decode") for k, p in by_key.items()):
                    p = by_key[r.key]
                    if self._thumbnails is not None and (r.thumbnail_bytes or r.thumbnail_error):
                        self._kept_thumbnail(r)
                    if not r.ok:
                        batch.failed.append((p, r))
                    elif r.content_hash in batch_hashes:
                        batch.linked.append((p, r, r.content_hash, -1))  # a copy in this batch or the one encoding
                    else:
                        assert r.content_hash is not None and r.pixels is not None
                        batch.new.append((p, r))
                        batch.pixels.append(r.pixels)
                        batch_hashes.add(r.content_hash)
                    done += 1
                    if len(batch) >= size or len(batch.failed) + len(batch.linked) >= 4 * size:
                        started = self._start_encoding(batch, encoder)
                        if pending is not None:
                            self._finish(pending)
                        pending = started
                        # Copies of the batch being encoded are linked to it (it is committed first).
                        batch, batch_hashes = _Batch(), {r.content_hash for _, r in started.batch.new if r.content_hash}
                        self.progress(Progress("encoding", done, total, _rate(done - before, t0)))
                        if self.stop.is_set():
                            pool.stop()
                            self.report.interrupted = True
                            break
                if last and not self.report.interrupted:
                    self._tail()
                # On interruption the partial batch is dropped: the next run picks these photos up again.
                if not batch.empty() and not self.report.interrupted:
                    started = self._start_encoding(batch, encoder)
                    if pending is not None:
                        self._finish(pending)
                    pending = started
                if pending is not None:
                    self._finish(pending)
                    pending = None
            finally:
                if pending is not None and pending.future is not None:
                    pending.future.cancel()
        self._encoding_done = done
        self.progress(Progress("encoding", done, total, _rate(done - before, t0)))

    def _tail(self) -> None:
        """Call `at_tail` once: nothing is left to decode."""
        at_tail, self._at_tail = self._at_tail, None
        if at_tail is not None:
            at_tail()

    def _kept_thumbnail(self, r: DecodeResult) -> None:
        """Count the thumbnail a decode worker wrote in the cache's bound; a cache that cannot be written is
        not the run's failure (said once)."""
        assert self._thumbnails is not None
        if r.thumbnail_error is not None:
            self._warn(f"{self._thumbnails.folder}: cannot write thumbnails ({r.thumbnail_error}); indexing goes on")
            self._thumbnails = None
            return
        try:
            self._thumbnails.account(r.thumbnail_bytes)
        except OSError as exc:
            self._warn(f"{self._thumbnails.folder}: cannot prune thumbnails ({exc.strerror or exc}); indexing goes on")
            self._thumbnails = None

    def _start_encoding(self, batch: _Batch, encoder: Executor) -> _Encoding:
        """Sort out content stored meanwhile, and hand the rest of the batch to the encoder thread."""
        with self.lib.db.read() as s:
            stored = catalog.vector_ids_for_hashes(
                s, self.lib.model_id, {r.content_hash for _, r in batch.new if r.content_hash}
            )
        # Content stored since it was queued (a copy in an earlier batch, another writer) is linked, not encoded.
        todo = [(i, p, r) for i, (p, r) in enumerate(batch.new) if r.content_hash not in stored]
        batch.linked.extend(
            (p, r, r.content_hash, stored[r.content_hash]) for p, r in batch.new if r.content_hash in stored
        )
        future = None
        if todo:
            pixels = np.stack([batch.pixels[i] for i, _, _ in todo])
            # A batch too small to split over the cores opens the encoder's wide session when it is a
            # run's first (a daemon's new photo), not when it is a long run's last (docs/indexing.md).
            first = not self._batches_started
            future = encoder.submit(lambda: self.lib.image_encoder().encode(pixels, open_wide=first))
            self._batches_started = True
        batch.pixels = []
        return _Encoding(batch, todo, future)

    def _finish(self, work: _Encoding) -> None:
        """Wait for a batch's vectors, then write vectors and photos in one transaction."""
        batch, todo = work.batch, work.todo
        fresh: list[tuple[str, np.ndarray]] = []
        if work.future is not None:
            vectors = work.future.result()
            self.report.encoded += len(todo)
            fresh = [(r.content_hash, vec) for (_, _, r), vec in zip(todo, vectors, strict=False) if r.content_hash]
        index = self._open_index()

        def write() -> tuple[list[int], reads.IndexState, str | None]:
            before = copy.deepcopy(self.report)
            try:
                with self.lib.db.write() as s:
                    new_ids = catalog.add_vectors(s, self.lib.model_id, fresh) if fresh else []
                    self._store(s, [(p, r) for _, p, r in todo])
                    for p, linked, digest, _ in batch.linked:
                        self._link(s, p, linked, digest)
                    for p, r in batch.failed:
                        self._store_failure(s, p, r)
                    state = catalog.index_state(s, self.lib.model_id)
                    anchor = catalog.vectors_anchor(s, self.lib.model_id) if fresh else None
                return new_ids, state, anchor
            except BaseException:
                self.report = before  # the counts of a transaction that did not commit
                raise

        # A lost connection to a PostgreSQL catalog: the batch is written again on a new one.
        new_ids, state, anchor = self.lib.db.retrying(write, on_retry=self._warn)
        if fresh:
            # Ids only grow under the writer lock; an id at or below the index's top was already
            # there (add_vectors keeps the id of content another writer stored meanwhile).
            top = int(index.index.meta.get("max_id", 0))
            keep = [(i, v) for i, (_, v) in zip(new_ids, fresh, strict=True) if i > top]
            if keep:
                index.add(np.asarray([i for i, _ in keep], np.int64), np.stack([v for _, v in keep]), state, anchor)

    def _store(self, s: Session, encoded: list[tuple[_Pending, DecodeResult]]) -> None:
        """Record a batch's encoded photos as indexed (their vectors are stored) and count them."""
        photos = []
        for p, r in encoded:
            assert r.content_hash is not None
            photos.append(catalog.IndexedPhoto(p.root_id, p.fact.path, r.size or p.fact.size,
                                               r.mtime_ns or p.fact.mtime_ns, r.content_hash, r.info))
        catalog.store_indexed_many(s, photos)
        for p, _ in encoded:
            if p.known is None:
                self.report.added += 1
            elif p.why != "changed":
                self._count_unchanged_work(p)
            else:
                self.report.updated += 1

    def _count_unchanged_work(self, p: _Pending) -> None:
        if p.why == "model":
            self.report.caught_up += 1
        else:
            self.report.retried += 1

    def _store_failure(self, s: Session, p: _Pending, r: DecodeResult) -> None:
        if self.stop.is_set() and r.reason in ("crashed", "timeout"):
            return  # the worker may have died of our own shutdown: not the photo's fault, try it next run
        message = r.message or r.reason or "failed"
        error = f"{r.reason}: {message}"
        # Reported once: again only if the file changed and now fails differently.
        first_time = p.known is None or p.known.status != "failed" or p.known.error != error
        size, mtime = r.size or p.fact.size, r.mtime_ns or p.fact.mtime_ns
        again = (
            p.known is not None and p.known.status == "failed" and p.known.failure_kind == r.reason
            and (p.known.size, p.known.mtime_ns) == (size, mtime)
        )
        catalog.store_failed(
            s,
            root_id=p.root_id,
            path=p.fact.path,
            size=size,
            mtime_ns=mtime,
            content_hash=r.content_hash,
            error=error,
            kind=r.reason,
            decoders=",".join(sorted(self.decoders())),
            attempts=(p.known.failure_attempts + 1) if again and p.known is not None else 1,
        )
        if p.why == "retry":
            self.report.retried += 1
        self.report.failed += 1
        if first_time:
            self.report.failures.append(Failure(self.local(p.fact.path), r.reason or "failed", message, r.hint))

    # ------------------------------------------------------------ the vector index cache

    def _open_index(self) -> IndexHandle:
        if self._index is None:
            self._index = self.lib.open_index()
        elif not self._index_fresh:
            self._index.refresh()  # a handle kept across runs: another writer may have added vectors
        self._index_fresh = True
        return self._index

    def _finish_index(self) -> bool:
        """Write the index file if this run changed it, or if it was missing, stale or damaged."""
        from photoindex.errors import VectorIndexError

        handle = self._open_index()
        if not self._save_index:
            return False
        try:
            written = bool(handle.save_if_dirty())
            self._warnings_of(handle.repairs)
            handle.repairs.clear()
            return written
        except VectorIndexError as exc:
            # The index is a cache: the catalog holds every vector, so the run itself succeeded.
            self._warn(f"{exc.message} ({exc.hint})")
            return False


@dataclass
class _Problems:
    """What a walk could not read; unreadable folders and files are blind spots, not vanished photos."""

    seen: list[ScanProblem] = field(default_factory=list)
    blind: list[str] = field(default_factory=list)  # in the catalog's spelling
    stored: Callable[[str], str] = str  # the walk's path -> the catalog's (`_respelled`)

    def add(self, prob: ScanProblem) -> None:
        self.seen.append(prob)
        if prob.reason == "unreadable":
            self.blind.append(self.stored(prob.path))


def _check_forget_setting(days: float) -> None:
    if not 0 <= days <= 36_500:  # also NaN
        raise ConfigError(
            f"[index] forget_missing_after_days = {days} is not a number of days from 0 (never) to 36500",
            "fix it in the config file (or PHOTOINDEX_INDEX_FORGET_MISSING_AFTER_DAYS)",
        )


def _rate(done: int, since: float) -> float:
    elapsed = time.monotonic() - since
    return done / elapsed if elapsed > 0 else 0.0


def _vanished(row: reads.PhotoState, blind: Sequence[str]) -> bool:
    """A cataloged file the walk passed without finding: gone, unless already missing or unreadable."""
    return row.status != "missing" and not any(within(row.path, b) for b in blind)


class _CatalogStream:
    """The catalog's files at or under a scope, read page by page in the walk's order (bytes of the path).

    The indexer commits between pages: it adds or changes rows only at paths the walk has passed,
    which are never after the last row read (the walk does not pass a row before it is read), so
    a page read later never returns them. Once a read comes back short the stream is over: nothing
    it could return later would lie ahead of the walk.
    """

    def __init__(self, lib: Library, scope: str, model_id: str | None = None, *, page: int = Rounds.page) -> None:
        self._lib = lib
        self._page_size = page
        self._scope = scope
        self._model_id = model_id  # rows say whether this model has their content's vector
        self._page: list[reads.PhotoState] = []
        self._keys: list[bytes] = []  # the page's paths as bytes, the order both streams share
        self._at = 0
        self._after: bytes | None = None
        self._over = False
        self._below = reads.path_range(scope)[1]
        self.had_rows_below = False  # rows under `scope/` were read: it was a folder

    def _more(self) -> bool:
        """Whether a row is left, reading the next page when this one is used up."""
        if self._at == len(self._page) and not self._over:
            with self._lib.db.reads() as con:
                self._page = reads.photo_states_under(
                    con, self._scope, after=self._after, limit=self._page_size, model_id=self._model_id
                )
            self._keys = [os.fsencode(row.path) for row in self._page]
            self.had_rows_below = self.had_rows_below or any(k.startswith(self._below) for k in self._keys)
            self._at = 0
            self._over = len(self._page) < self._page_size
            if self._page:
                self._after = self._keys[-1]
        return self._at < len(self._page)

    def until(self, key: bytes) -> Iterator[reads.PhotoState]:
        """Rows whose path sorts at or before `key` (the path's bytes), in order."""
        while self._more() and self._keys[self._at] <= key:
            self._at += 1
            yield self._page[self._at - 1]

    def rest(self) -> Iterator[reads.PhotoState]:
        """Every row not read yet."""
        while self._more():
            self._at += 1
            yield self._page[self._at - 1]


def _root_of(roots: Sequence[catalog.RootRecord], path: str) -> catalog.RootRecord | None:
    """The innermost root that holds `path`."""
    best = None
    for r in roots:
        if within(path, r.path) and (best is None or len(r.path) > len(best.path)):
            best = r
    return best


def refresh_other_indexes(lib: Library, models: Iterable[str]) -> list[str]:
    """Bring the index files of other models than the configured one in step after their vectors were deleted.

    Each model keeps its own file (docs/models.md); one left stale would be rebuilt by the next
    search with that model, so it is rebuilt here, one model in memory at a time. A model left
    with no vectors loses its file. Returns warnings (a file that could not be written).
    """
    from photoindex.errors import VectorIndexError

    warnings: list[str] = []
    for model_id in sorted(set(models) - {lib.model_id}):
        path = lib.index_path(model_id)
        if not path.exists():
            continue  # never written: the model's next use builds it
        with lib.db.reads() as con:
            dim = reads.model_dim(con, model_id)
        try:
            if dim is None:
                path.unlink()
                continue
            lib.open_index(model_id, dim).save_if_dirty()
        except VectorIndexError as exc:
            warnings.append(f"{exc.message} ({exc.hint})")
        except OSError as exc:
            warnings.append(f"{path}: cannot remove the index file: {exc.strerror or exc}")
    return warnings


def _resolve_roots(lib: Library, paths: Iterable[Path] | None) -> list[catalog.RootRecord]:
    with lib.db.write() as s:
        catalog.name_roots(s, lib.config.mounts.paths)
        if paths is None:
            roots = catalog.list_roots(s)
            if not roots:
                raise PhotoindexError("no folders to index yet", "add one with `photoindex index PATH`")
            return roots
        out = []
        for p in paths:
            path = Path(p).expanduser()
            if not path.exists():
                raise PhotoindexError(f"{path}: no such file or folder", "check the path")
            stored = _stored_root(lib.config.mounts, path)
            if root_name(stored) is None:
                _refuse_holding_a_mount(lib.config.mounts, stored)
            out.append(catalog.add_root(s, stored))
        return out


def _refuse_holding_a_mount(mounts: Mounts, path: str) -> None:
    """A folder given to `index` that holds a mapped mount would store the mount's photos a second time,
    by their absolute paths, beside the named root (roots never overlap, docs/scale.md)."""
    for name, mount in mounts.paths.items():
        for base in dict.fromkeys((mount, os.path.realpath(mount))):
            if within(base, path):
                raise PhotoindexError(
                    f"{path} holds {mount}, the mount of root {name} ([catalog] roots): indexing it would "
                    "store that root's photos twice",
                    f'index the folders beside {mount} one by one, or map the name to the whole folder ("{name}='
                    f'{path}")',
                )


def name_mapped_roots(lib: Library) -> None:
    """Roots registered by their absolute path inside a mount of `[catalog] roots` (a library made before
    the name was mapped) take the name's spelling now, photos keeping their ids and vectors
    (`catalog.name_roots`, docs/scale.md). Every writer calls this before it reads the roots, so the
    daemon and `reindex` work right after the mapping is added; the caller holds the writer lock (SQLite)
    and `name_roots` takes the roots' advisory lock (PostgreSQL). Costs one read when nothing is to do."""
    mounts = lib.config.mounts
    if not mounts.paths:
        return
    with lib.db.read() as s:
        pending = any(mounts.touches(r.path) for r in catalog.list_roots(s) if root_name(r.path) is None)
    if pending:
        with lib.db.write() as s:
            catalog.name_roots(s, mounts.paths)


def _respelled(disk_root: str, root: str, path: str) -> str:
    """A path the walk of a root found (below `disk_root`, this machine's path of the root) in the
    catalog's spelling (below `root`)."""
    return root + path[len(disk_root.rstrip(os.sep)) :]


def _stored_root(mounts: Mounts, path: Path) -> str:
    """A root given on the command line in the catalog's spelling: `NAME:...` inside a mapped mount (as
    written, or with symlinks resolved), else its absolute path (`add_root` resolves it)."""
    absolute = os.path.abspath(path)
    for candidate in (absolute, os.path.realpath(absolute)):
        stored = mounts.stored_given(candidate)
        if stored != candidate:
            return stored
    return absolute


def run_index(
    config: Config,
    paths: Iterable[Path] | None = None,
    *,
    progress: ProgressFn | None = None,
    dry_run: bool = False,
    stop: threading.Event | None = None,
    lock_wait: float | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> IndexReport:
    """`photoindex index PATH...` (paths given) or `photoindex reindex` (every root).

    Takes the writer lock, waiting for another writer (the daemon between two batches, another
    run) for up to `lock_wait` seconds (None: as long as it takes, until `stop` is set); `on_wait`
    hears once who is being waited for.
    """
    from photoindex.catalog.writerlock import acquire_patiently

    stop = stop or threading.Event()
    if not dry_run:
        # The decode workers' server starts on the other core while this one opens the library.
        start_server()
    with open_library(config) as lib:
        if dry_run:
            roots = _resolve_roots_readonly(lib, paths)
            return Indexer(lib, progress, stop).run(roots, dry_run=True)
        if lib.db.kind == "postgresql":
            # A shared catalog: indexers here and on other machines work at once, each root's scan
            # under its advisory lock, the encoding in claimed batches (docs/scale.md).
            roots = _resolve_roots(lib, paths)
            report = Indexer(lib, progress, stop).run(roots)
            if not report.interrupted and text_pass_enabled(config):
                report.text = _read_text(lib, progress, stop).to_json()
                report.interrupted = report.interrupted or bool(report.text["interrupted"])
            report.warnings.extend(lib.warnings)
            return report
        lock = WriterLock(config.lock_path, "reindex" if paths is None else "index")
        if not acquire_patiently(lock, wait=lock_wait, stop=stop, on_wait=on_wait):
            return IndexReport(interrupted=True)
        text_copy = _TextCopy(lib)
        try:
            roots = _resolve_roots(lib, paths)
            report = Indexer(lib, noting_progress(lock, progress), stop, at_tail=text_copy.start).run(roots)
            if not report.interrupted:
                text_copy.start()  # a run with nothing to decode (no tail); once only
            if not report.interrupted and text_pass_enabled(config):
                report.text = _read_text(lib, noting_progress(lock, progress), stop).to_json()
                report.interrupted = report.interrupted or bool(report.text["interrupted"])
            report.warnings.extend(lib.warnings)
            return report
        finally:
            lock.release()
            text_copy.finish(stop.is_set())


class _TextCopy:
    """The text model's fast copy, made while indexing so that the first search afterwards loads fast.

    It is made in a process of its own, from the run's tail (nothing left to decode): its Python work
    (reading and rewriting the model with `onnx`) held this process's GIL for seconds, during which
    the decode workers waited for photos and the last batches for their commit.
    """

    def __init__(self, lib: Library) -> None:
        self._lib = lib
        self._process: Any = None
        self._started = False

    def start(self) -> None:
        """Start making the copy unless it exists or cannot be made here (no cache, no text model); once."""
        if self._started:
            return
        self._started = True
        cache, path = self._lib.config.runtime.model_cache_dir, self._lib.bundle.path("text")
        if cache is None or path is None or not path.is_file():
            return
        import onnxruntime

        from photoindex.inference import modelcache
        from photoindex.photos.decodepool import process_context

        version = onnxruntime.__version__
        if modelcache.lookup(path, cache, version) is not None:
            return
        context = self._lib.bundle.manifest.text.context_length
        # The target is modelcache's own function: the child imports that module, not the indexer's.
        self._process = process_context().Process(
            target=modelcache.ensure, args=(path, cache, version), kwargs={"text_context": context},
            name="text-model-copy", daemon=True,
        )
        self._process.start()

    def finish(self, interrupted: bool) -> None:
        """Wait for the copy, then check its short-query graph once, so that the first search
        afterwards is as quick as any (docs/search.md, "Query text"). The image model is released
        first: the check's text model then never shares the process's memory with it, and the
        run's peak stays the encoding's. An interrupted run does neither (the copy is a cache: its
        temporary files are swept)."""
        if self._process is not None:
            if interrupted:
                self._process.kill()
            self._process.join()
        if interrupted or not self._started:
            return
        self._lib.release_encoders()
        self._lib.prepare_text_model(check=True)  # nothing to do once checked: a second run pays nothing


def _waiting_for(root: str) -> None:
    log.info("waiting for %s: another indexer is scanning it", root)


def text_pass_enabled(config: Config) -> bool:
    """Whether photos are read for text after encoding: `[ocr] enabled` and the `ocr` extra installed."""
    from photoindex.ocr.engine import available

    return config.ocr.enabled and available()


def _read_text(lib: Library, progress: ProgressFn | None, stop: threading.Event) -> Any:
    """The text pass over every photo that waits for it (ocr/reader.py), reporting progress as "reading text"."""
    from photoindex.ocr.reader import TextPass

    started = time.monotonic()

    def step(done: int, total: int | None) -> None:
        if progress is not None:
            progress(Progress("reading text", done, total, _rate(done, started)))

    with TextPass(lib) as reading:
        return reading.run(stop=stop, progress=step)


def _resolve_roots_readonly(lib: Library, paths: Iterable[Path] | None) -> list[catalog.RootRecord]:
    with lib.db.read() as s:
        roots = catalog.list_roots(s)
    if paths is None:
        if not roots:
            raise PhotoindexError("no folders to index yet", "add one with `photoindex index PATH`")
        return roots
    known = {r.path: r for r in roots}
    out: dict[str, catalog.RootRecord] = {}
    for p in paths:
        # A root still registered by its absolute path inside a mapped mount is named by the next
        # writer (`name_mapped_roots`); a dry run finds it under either spelling.
        absolute = os.path.abspath(Path(p).expanduser())
        stored = _stored_root(lib.config.mounts, Path(p).expanduser())
        root = known.get(stored) or known.get(absolute) or known.get(os.path.realpath(absolute))
        out[stored] = root or catalog.RootRecord(id=-1, path=stored, present=True)
    return [out[w] for w in sorted(out)]
