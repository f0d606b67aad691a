"""`photoindex daemon`: watch the roots, settle the changes, index them in units of work.

An adapter over the core, like `cli/`: the watcher turns filesystem events into hints, the
settler holds each path until it has stopped changing, and ready paths are indexed in units of
work (`Indexer.run_paths`) once `[index] batch_size` are ready or the oldest has waited
`[daemon] max_batch_wait` seconds. A reconciliation scan (`Indexer.run`) runs at start, every
`rescan_interval`, and at once when the watcher reports trouble: the watcher is a hint, the scan
is the truth (docs/architecture.md, invariant 5).

One writer: the writer lock is taken for each unit of work and released between them, so a
`photoindex index` or `reindex` started meanwhile waits for its turn, runs, and the daemon goes
on. SIGTERM/SIGINT set a stop event: the current unit stops between encoder batches (what it did
not commit is found again by the start-up scan) and the daemon exits 0.

It also answers `photoindex search` over a Unix socket (`search/server.py`, `[search] use_daemon`),
in a thread of its own, from the same library and in-memory index.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from photoindex.catalog import writes as catalog
from photoindex.catalog.writerlock import WriterLock
from photoindex.config import Config
from photoindex.daemon.lograte import RateLimit
from photoindex.daemon.presence import only_daemon
from photoindex.daemon.settle import Settler
from photoindex.daemon.watcher import Event, Hint, Trouble, Watcher
from photoindex.errors import ConfigError, LockedError, PhotoindexError
from photoindex.indexing.indexer import Indexer, IndexReport, noting_progress
from photoindex.library import Library, open_library
from photoindex.paths import within
from photoindex.search.server import QueryServer

if TYPE_CHECKING:
    from photoindex.vectors.cache import IndexHandle

log = logging.getLogger("photoindex.daemon")

EXIT_OK = 0
EXIT_CRASHED = 1  # an unexpected error: logged with its traceback; systemd restarts the daemon

WATCH_LIMIT_ENV = "PHOTOINDEX_TEST_WATCH_LIMIT"  # tests: fail inotify watches past this count, as the kernel does

_TICK = 0.1  # how often the loop looks at the settler when no event arrives
_CHECK_SECONDS = 1.0  # root presence, dead emitters, overflows: one stat per root
_ROOTS_SECONDS = 5.0  # roots added by `photoindex index` meanwhile: one short read
_LOCK_POLL = 0.5  # flock has no timeout; waiting in slices keeps SIGTERM prompt
_LOCK_GAP = 0.2  # released this long between units, so a waiting `reindex` gets its turn
_STATE_SECONDS = 1.0  # the status file is rewritten at most this often for queue changes
_DEFER_PERIODIC_MAX = 60.0  # a periodic rescan waits at most this long for writes in progress to settle
_SAVE_SECONDS = 60.0  # the index file is rewritten at most this often; searches catch up from SQLite
_ERROR_BACKOFF = (5.0, 600.0)  # after a failed unit of work: first delay, longest delay
_TEXT_SECONDS = 10.0  # the longest unit of text reading: then the writer lock is given back for a while


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------- logging and the status file


_SYSLOG_PRIORITY = {
    logging.DEBUG: 7,
    logging.INFO: 6,
    logging.WARNING: 4,
    logging.ERROR: 3,
    logging.CRITICAL: 2,
}


class _JournalFormatter(logging.Formatter):
    """`<priority>message`: journald files each line at its level and adds the time itself."""

    def format(self, record: logging.LogRecord) -> str:
        prio = _SYSLOG_PRIORITY.get(record.levelno, 6)
        return f"<{prio}>{super().format(record)}"


def configure_logging(level: str, environ: Mapping[str, str] | None = None) -> None:
    """Log to stderr at `level`: `<priority>message` under systemd (JOURNAL_STREAM set), else timestamped."""
    env = os.environ if environ is None else environ
    numeric = logging.getLevelName(level.strip().upper())
    if not isinstance(numeric, int):
        raise ConfigError(f"[daemon] log_level: {level!r} is not a logging level", "use DEBUG, INFO, WARNING or ERROR")
    handler = logging.StreamHandler(sys.stderr)
    if env.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    # No message can flood the log: identical warnings once a minute with a count, long ones cut.
    handler.addFilter(RateLimit())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    logging.captureWarnings(True)  # a library's `warnings.warn` goes through the same limit
    # watchdog's own debug output is per event; its warnings (an overflow) are worth keeping.
    logging.getLogger("watchdog").setLevel(max(numeric, logging.WARNING))
    logging.getLogger("faiss").setLevel(max(numeric, logging.WARNING))  # which SIMD build it loaded


class StateFile:
    """The daemon's status file (`photoindex status` reads it), replaced atomically on each write."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {
            "pid": os.getpid(),
            "since": _now_iso(),
            "state": "starting",
            "queue": 0,
            "last_batch": None,
            "last_error": None,
            "watching": None,
            "serving": None,
            "web": None,
        }
        self._written: dict[str, Any] = {}
        self._written_at = 0.0

    def update(self, *, force: bool = False, **values: Any) -> None:
        """Change some keys; written now when the state changed (or forced), else at most once a second."""
        self.data.update(values)
        if self.data == self._written:
            return
        now = time.monotonic()
        state_changed = self.data.get("state") != self._written.get("state")
        if not (force or state_changed or now - self._written_at >= _STATE_SECONDS):
            return
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # ensure_ascii: a photo path that is not UTF-8 (lone surrogates) must not stop the daemon.
            tmp.write_text(json.dumps(self.data, ensure_ascii=True) + "\n", encoding="ascii")
            # No fsync: it is a status display rewritten often (SD cards wear), not data.
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("%s: cannot write the status file (%s)", self.path, exc.strerror or exc)
            return
        self._written = dict(self.data)
        self._written_at = now


def _changed(report: IndexReport) -> bool:
    return bool(report.added or report.updated or report.moved or report.missing or report.forgotten or report.failed)


# ---------------------------------------------------------------- the daemon


class Daemon:
    """The watch -> settle -> index loop over one open library; `run()` returns when `stop` is set."""

    def __init__(
        self,
        lib: Library,
        stop: threading.Event,
        *,
        watch_limit: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lib = lib
        self.config: Config = lib.config
        self.stop = stop
        self.clock = clock
        self.events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self.watcher = Watcher(self.config.scan, self.config.daemon, self.events, watch_limit=watch_limit, stop=stop)
        self.settler = Settler(self.config.daemon.settle_seconds)
        self.ready: dict[str, float] = {}  # settled path -> when it became ready
        self.rescans: dict[str, set[str]] = {}  # root -> why it must be rescanned
        self.state = StateFile(self.config.daemon_state_path)
        self.roots: list[catalog.RootRecord] = []  # spelled as this machine reaches them (mounts.local)
        self._unmapped: set[str] = set()  # named roots of other machines, warned about once
        self._lock = WriterLock(self.config.lock_path, "daemon")
        self._errors = 0
        self._not_before = 0.0  # no unit of work before this time (backoff after an error)
        self._index: IndexHandle | None = None  # kept open across units of work
        # Held around each unit of work (and index save): the query server catches the shared
        # index up from SQLite only when no unit adds to it (see search/server.py).
        self._work = threading.Lock()
        self.queries = QueryServer(
            lib, work_lock=self._work, current_index=lambda: self._index, open_index=self._index_handle
        )
        self._saved_at = clock()
        self.web: Any = None  # photoindex.web.server.WebThread when `[web] listen` is set
        # The text pass (docs/ocr.md): it runs only when nothing else waits, and gives way between photos.
        from photoindex.indexing.indexer import text_pass_enabled

        self._text_on = text_pass_enabled(self.config)
        self._text_due = self._text_on  # photos may wait to be read: after the start and after new work
        self._text: Any = None  # ocr.reader.TextPass, its models loaded on first need

    # ------------------------------------------------------------ the loop

    def run(self) -> int:
        """Watch and index until `stop` is set; returns the exit code."""
        d = self.config.daemon
        log.info(
            "photoindex daemon starting (pid %d): settle %g s, batches of %d or %g s, rescan every %g s",
            os.getpid(),
            d.settle_seconds,
            self.config.index.batch_size,
            d.max_batch_wait,
            d.rescan_interval,
        )
        serving = self.queries.start() if self.config.search.use_daemon else False
        self.state.update(state="starting", serving=str(self.queries.path) if serving else None, force=True)
        self._start_web()
        try:
            self._refresh_roots(initial=True)
            if not self.roots:
                log.warning(
                    "no roots yet: add a folder with `photoindex index PATH`; it is watched within %g s",
                    _ROOTS_SECONDS,
                )
            self._rescan({r.path: {"start"} for r in self.roots})
            self._loop()
        finally:
            if self.web is not None:
                self.web.stop()
            if self._text is not None:
                self._text.close()
            self.queries.stop()
            self.watcher.stop()
            if self._index is not None and self._index.dirty:
                with self._writer("saving the index") as got:
                    if got:
                        self._save_index(force=True)
            self._lock.release()
            self.state.update(
                state="stopped", queue=len(self.settler) + len(self.ready), serving=None, web=None, force=True
            )
        log.info("photoindex daemon stopped")
        return EXIT_OK

    def _start_web(self) -> None:
        """Serve the web page from a thread when `[web] listen` is set; one that cannot start is logged, not fatal."""
        listen = self.config.web.listen.strip()
        if not listen:
            return
        try:
            from photoindex.web.server import WebThread
        except ImportError as exc:
            log.error("[web] listen is set but the web page needs the `web` extra (%s): pip install 'photoindex[web]'",
                      exc.name)
            return
        try:
            web = WebThread(self.lib, self.queries.index_for_query, listen)
            listening = web.start()
        except PhotoindexError as exc:
            log.error("cannot serve the web page: %s%s", exc.message, f" ({exc.hint})" if exc.hint else "")
            return
        self.web = web
        log.info("serving the web page on %s%s", listening.url, " (login with the secret)" if listening.login else "")
        self.state.update(web=listening.url)

    def _loop(self) -> None:
        d = self.config.daemon
        now = self.clock()
        next_check = now + _CHECK_SECONDS
        next_roots = now + _ROOTS_SECONDS
        next_periodic = now + d.rescan_interval
        periodic_wanted_at: float | None = None
        next_incomplete = now + d.poll_interval
        while not self.stop.is_set():
            self._pump()
            now = self.clock()
            if now >= next_check:
                self.watcher.check()
                next_check = now + _CHECK_SECONDS
            if now >= next_roots:
                self._refresh_roots()
                next_roots = now + _ROOTS_SECONDS
            if now >= next_periodic and periodic_wanted_at is None:
                periodic_wanted_at = now
            if periodic_wanted_at is not None and (
                not len(self.settler) or now - periodic_wanted_at >= _DEFER_PERIODIC_MAX
            ):
                # Waits briefly for writes in progress: a scan would read a half-written file.
                for r in self.roots:
                    self.rescans.setdefault(r.path, set()).add(f"every {d.rescan_interval:g} s")
                periodic_wanted_at = None
                next_periodic = now + d.rescan_interval
            if now >= next_incomplete:
                for root in self.watcher.incomplete():
                    self.watcher.retry(root)
                    self.rescans.setdefault(root, set()).add("watching incomplete")
                next_incomplete = now + d.poll_interval
            if self.rescans and now >= self._not_before:
                pending, self.rescans = self.rescans, {}  # a failing rescan queues its retry anew
                self._rescan(pending)
                continue
            for path in self.settler.due(now):
                self.ready.setdefault(path, now)
            if (
                self.ready
                and now >= self._not_before
                and (
                    len(self.ready) >= self.config.index.batch_size
                    or now - min(self.ready.values()) >= d.max_batch_wait
                )
            ):
                paths, self.ready = sorted(self.ready), {}
                self._index_paths(paths)
            if (
                self._index is not None
                and self._index.dirty
                and not self.ready
                and now - self._saved_at >= _SAVE_SECONDS
            ):
                with self._writer("saving the index") as got:
                    if got:
                        self._save_index(force=True)
            if self._text_due and now >= self._not_before and not self._busy():
                self._read_text()
            self.state.update(state="idle", queue=len(self.settler) + len(self.ready), watching=self.watcher.summary())

    def _busy(self) -> bool:
        """Whether CLIP work waits or may be coming (a file settling, a hint not yet taken, a rescan)."""
        return bool(len(self.settler) or self.ready or self.rescans) or not self.events.empty()

    def _read_text(self) -> None:
        """Read the text of photos that wait for it, at lower priority than CLIP encoding: only when nothing
        else waits, one photo at a time; a file event arriving meanwhile aborts the read in progress and the
        lock is given back at once (docs/ocr.md, "When photos are read")."""
        from photoindex.ocr.reader import TextPass

        with self._writer("reading text") as got:
            if not got:
                return
            self.state.update(state="reading text", force=True)
            try:
                if self._text is None:
                    self._text = TextPass(self.lib)
                report = self._text.run(stop=self.stop, should_yield=self._busy, budget=_TEXT_SECONDS)
            except PhotoindexError as exc:
                log.error("reading text failed: %s%s; tried again after new photos", exc.message,
                          f" ({exc.hint})" if exc.hint else "")
                self.state.update(last_error=f"{_now_iso()} reading text: {exc}")
                self._text_due = False
                return
        # More waits: read on at the next idle moment, unless nothing could be read now (files changed or
        # unreadable since their vectors were stored: the next scan deals with them, then they are due again).
        progressed = report.read or report.skipped or report.failed
        waits = report.waiting + report.outdated
        if report.aborted and not report.interrupted:
            log.info("reading text gave way to new work; %d photos wait to be read", waits)
        self._text_due = waits > 0 and not report.interrupted and bool(progressed or report.yielded)
        if report.read or report.skipped or report.failed:
            again = f" ({report.reread} again, for new OCR models)" if report.reread else ""
            line = (
                f"read text: {report.read} photos{again} ({report.with_text} with text), {report.skipped} skipped "
                f"by the gate, {report.failed} failed, {waits} waiting, in {report.seconds:.1f} s"
            )
            log.info("%s", line)
            self.state.update(last_batch=f"{_now_iso()} {line}")

    def _pump(self) -> None:
        """Wait a tick for events, then take everything queued: hints to the settler, trouble to a rescan."""
        try:
            event = self.events.get(timeout=_TICK)
        except queue.Empty:
            return
        while True:
            now = self.clock()
            if isinstance(event, Hint):
                self.settler.note(
                    event.path,
                    now,
                    folder=event.folder,
                    writing=event.writing,
                    closed=event.closed,
                    partner=event.partner,
                )
            elif isinstance(event, Trouble):
                log.warning("%s: rescanning it now", event.message)
                self.rescans.setdefault(event.root, set()).add(event.reason)
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return

    # ------------------------------------------------------------ roots

    def _refresh_roots(self, *, initial: bool = False) -> None:
        """Read the roots from the catalog (cheap); watch new ones, rescan those added while running."""
        try:
            with self.lib.db.read() as s:
                roots = catalog.list_roots(s)
        except PhotoindexError as exc:
            log.warning("cannot read the roots from the catalog: %s", exc)
            return
        # Roots as this machine reaches them: a named root at its mount (photoindex/mounts.py); one
        # mapped only on other machines is theirs to watch.
        mounts = self.lib.config.mounts
        for r in roots:
            if not mounts.mapped(r.path) and r.path not in self._unmapped:
                self._unmapped.add(r.path)
                log.warning(
                    "root %s is not mapped on this machine: not watched; to index it here add "
                    '"%s=/its/mount/path" to [catalog] roots in config.toml', r.name or r.path, r.name or r.path
                )
        roots = [dataclasses.replace(r, path=mounts.local(r.path)) for r in roots if mounts.mapped(r.path)]
        known = {r.path for r in self.roots}
        self.roots = roots
        added = self.watcher.sync([r.path for r in roots], {r.path: r.watch_mode for r in roots})
        if not initial:
            for root in added:
                if root not in known:
                    # Photos may have arrived between its indexing and its watch.
                    self.rescans.setdefault(root, set()).add("new root")

    # ------------------------------------------------------------ units of work

    @contextmanager
    def _writer(self, what: str) -> Iterator[bool]:
        """Hold the writer lock for one unit of work; yields False when stopped while waiting for it."""
        told = False
        while True:
            try:
                self._lock.acquire(wait=_LOCK_POLL)
                break
            except LockedError as exc:
                if not told:
                    log.info("waiting for the writer lock before %s: held by %s", what, exc.holder)
                    self.state.update(state="waiting for the writer lock")
                    told = True
                if self.stop.is_set():
                    yield False
                    return
        try:
            with self._work:
                yield True
        finally:
            self._lock.release()
            # Let a waiting `photoindex index`/`reindex` in before the next unit takes the lock back.
            self.stop.wait(_LOCK_GAP)

    def _index_handle(self) -> IndexHandle:
        """The vector index kept open across units of work (opened from its file or SQLite once)."""
        if self._index is None:
            self._index = self.lib.open_index()
        return self._index

    def _save_index(self, *, force: bool) -> None:
        """Write the index file at most every `_SAVE_SECONDS` (searches catch up from SQLite); hold the lock."""
        if self._index is None or not self._index.dirty:
            return
        now = self.clock()
        if force or now - self._saved_at >= _SAVE_SECONDS:
            from photoindex.errors import VectorIndexError

            self._saved_at = now
            try:
                self._index.refresh()  # include what `photoindex index` committed meanwhile
                self._index.save_if_dirty()
            except VectorIndexError as exc:
                log.warning("%s (%s)", exc.message, exc.hint)

    def _rescan(self, reasons: Mapping[str, Iterable[str]]) -> None:
        """Reconcile the given roots with the disk (a full scan of each)."""
        by_path = {r.path: r for r in self.roots}
        roots = [by_path[p] for p in sorted(reasons) if p in by_path]
        if not roots:
            return
        why = "; ".join(f"{r.path} ({', '.join(sorted(reasons[r.path]))})" for r in roots)
        routine = all(set(reasons[r.path]) <= {"watching incomplete"} for r in roots)
        log.log(logging.DEBUG if routine else logging.INFO, "rescan: %s", why)
        for r in roots:
            # The scan covers whatever was waiting below these roots and has already settled.
            for path in [p for p in self.ready if within(p, r.path)]:
                del self.ready[path]
        self._unit(
            f"rescan of {len(roots)} root(s)",
            "scanning",
            lambda ix: ix.run(roots),
            on_error=[r.path for r in roots],
            routine=routine,
        )

    def _index_paths(self, paths: list[str]) -> None:
        shown = ", ".join(paths) if len(paths) <= 2 else f"{len(paths)} paths"
        log.debug("indexing %s: %s", shown, ", ".join(paths[:20]))
        roots = {r.path for r in self.roots if any(within(p, r.path) for p in paths)}
        self._unit(f"indexing {shown}", "indexing", lambda ix: ix.run_paths(paths), on_error=sorted(roots))

    def _unit(
        self,
        what: str,
        state: str,
        work: Callable[[Indexer], IndexReport],
        *,
        on_error: list[str],
        routine: bool = False,
    ) -> None:
        """Run one unit of work under the writer lock, log what it did; on an expected error, rescan later."""
        with self._writer(what) as got:
            if not got:
                return
            self.state.update(state=state, queue=len(self.settler) + len(self.ready), force=True)
            try:
                indexer = Indexer(
                    self.lib,
                    noting_progress(self._lock),
                    stop=self.stop,
                    index=self._index_handle(),
                    save_index=False,
                )
                report = work(indexer)
                self._save_index(force=False)
            except PhotoindexError as exc:
                self._errors += 1
                delay = min(_ERROR_BACKOFF[0] * 2 ** (self._errors - 1), _ERROR_BACKOFF[1])
                self._not_before = self.clock() + delay
                log.error(
                    "%s failed: %s%s; retrying with a rescan in %g s",
                    what,
                    exc.message,
                    f" ({exc.hint})" if exc.hint else "",
                    delay,
                )
                self.state.update(last_error=f"{_now_iso()} {what}: {exc}")
                for root in on_error:
                    self.rescans.setdefault(root, set()).add("retry after an error")
                return
        self._errors = 0
        if self._text_on and _changed(report):
            self._text_due = True  # new or changed photos: their text waits for the next idle moment
        for f in report.failures:
            log.warning("skipped: %s: %s%s", f.path, f.message, f" ({f.hint})" if f.hint else "")
        tail = " (interrupted; the rest is picked up at the next start)" if report.interrupted else ""
        level = logging.INFO if _changed(report) or not routine else logging.DEBUG
        log.log(level, "%s: %s%s", what, report.summary(changes_only=True), tail)
        if _changed(report) or not routine:
            self.state.update(last_batch=f"{_now_iso()} {what}: {report.summary(changes_only=True)}{tail}")


# ---------------------------------------------------------------- the entry point


def _watch_limit(environ: Mapping[str, str]) -> int | None:
    raw = environ.get(WATCH_LIMIT_ENV)
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{WATCH_LIMIT_ENV}: {raw!r} is not a number", "unset it (it is a test hook)") from None


def run_daemon(config: Config, *, stop: threading.Event | None = None) -> int:
    """Run the daemon until SIGTERM/SIGINT (or until `stop` is set, when embedded); returns the exit code.

    Without `stop` this is the process's daemon: it configures logging to stderr and installs the
    signal handlers. With `stop` (tests, embedding) the caller owns both.
    """
    own_process = stop is None
    stop = stop or threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if own_process:
        configure_logging(config.daemon.log_level)

        def _on_signal(signum: int, frame: FrameType | None) -> None:
            log.info("%s received: finishing the current batch and stopping", signal.Signals(signum).name)
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _on_signal)
    try:
        # The text model's fast copy made and checked at start; the model loaded too when this
        # daemon answers searches (docs/daemon.md, "Searches served by the daemon").
        answers = config.search.use_daemon or bool(config.web.listen.strip())
        with only_daemon(config.home), open_library(config) as lib, lib.answering_queries(load=answers):
            daemon = Daemon(lib, stop, watch_limit=_watch_limit(os.environ))
            try:
                return daemon.run()
            except PhotoindexError:
                raise
            except Exception as exc:
                log.exception("the daemon stopped on an unexpected error")
                daemon.state.update(state="stopped", last_error=f"{_now_iso()} crashed: {exc!r}", force=True)
                return EXIT_CRASHED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
