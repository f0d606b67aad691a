"""The text pass: after photos' CLIP vectors are stored, read the text in those that wait, once per content.

What waits is computed from the catalog (an indexed content with a vector and no `photo_text`
row), so there is no queue to lose: a `kill -9` at any point leaves at most the photo being read
unread, and the next pass reads it. Each photo's reading commits on its own (one transaction for
the row and its two full-text rows). Photos are decoded for the detector in a bounded decode
worker process (`photos/decodepool.py`, job kind "text"); the models run here. The caller holds
the writer lock; `should_yield` lets the daemon give the lock (and the CPU) back to CLIP
encoding: it is asked between photos and, from a watcher thread, every `POLL` seconds while a
photo is being decoded or read; the decoding is then stopped and the read aborted (the photo stays
unread), so new CLIP work waits for no photo's reading (docs/ocr.md, "When photos are read").

The models run in a thread of their own at lower OS priority (`[ocr] nice`, Linux: niceness is
per thread, and the threads ONNX Runtime starts from it inherit it), and the decode worker too.
Photos never read go first; photos read by other OCR models (`engine.models_id()`) are read again
after them (docs/ocr.md, "New OCR models").
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from photoindex.catalog import text as catalog_text

if TYPE_CHECKING:
    import numpy as np

    from photoindex.library import Library
    from photoindex.ocr.engine import TextLine, TextReader
    from photoindex.ocr.gate import Gate

log = logging.getLogger("photoindex")

CHUNK = 16  # contents looked up (and gated) at a time
POLL = 0.05  # seconds between two looks at `should_yield` while a photo is being decoded or read


def lower_thread_priority(nice: int) -> None:
    """Make the calling thread `nice` steps less favoured by the scheduler (Linux only: elsewhere niceness is
    per process and the call would lower the caller's whole process). Failing to is logged, not raised."""
    if nice <= 0 or not sys.platform.startswith("linux"):
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as exc:  # pragma: no cover - a seccomp profile, say
        log.debug("cannot lower the OCR thread's priority: %s", exc)


@dataclass
class TextReport:
    """What a text pass did, and what still waits after it (`index --json`'s "text")."""

    read: int = 0  # photos read in this pass (with or without text)
    reread: int = 0  # of those, read before by other OCR models
    with_text: int = 0
    skipped: int = 0  # judged not worth reading by the CLIP gate
    failed: int = 0
    waiting: int = 0  # photos still to read after the pass (a stop, a yield, or new photos meanwhile)
    outdated: int = 0  # photos read by other OCR models, still to read again after the pass
    seconds: float = 0.0
    interrupted: bool = False  # stopped (Ctrl-C, SIGTERM)
    yielded: bool = False  # gave way to other work (`should_yield`) or ran out of its time budget
    aborted: bool = False  # cut short mid-pass for other work (or a stop): a photo being decoded or read waits

    def to_json(self) -> dict[str, Any]:
        """The summary object."""
        return asdict(self)


Progress = Callable[[int, int | None], None]


class TextPass:
    """Reads the photos that wait for it; keep one per process (the models load once, on first need), and
    `close()` it when done (it stops the models' thread)."""

    def __init__(self, lib: Library, *, gate_prompts: tuple[Sequence[str], Sequence[str]] | None = None) -> None:
        """`gate_prompts`: the CLIP gate's (text-bearing, other) prompts under `gate = "clip"`, with the config's
        `gate_threshold` (default: the shipped prompts; the gate is made on first need)."""
        from photoindex.ocr.engine import models_id

        self.lib = lib
        self.config = lib.config.ocr
        self.models_id = models_id()
        # On a shared (PostgreSQL) catalog each content is claimed before it is read (`catalog.text.claim`).
        self._shared = lib.db.kind == "postgresql"
        self._worker = f"{socket.gethostname()}:{os.getpid()}"
        self._reader: TextReader | None = None
        self._gate: Gate | None = None
        self._gate_prompts = gate_prompts
        self._thread = ThreadPoolExecutor(
            1, thread_name_prefix="ocr", initializer=lower_thread_priority, initargs=(self.config.nice,)
        )

    def close(self) -> None:
        """Stop the models' thread (after the read in progress, if any)."""
        self._thread.shutdown(wait=True)

    def __enter__(self) -> TextPass:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def reader(self) -> TextReader:
        """The OCR models (loaded on first use, in the models' thread: ONNX Runtime's threads inherit its priority)."""
        if self._reader is None:
            from photoindex.ocr.engine import TextReader

            self._reader = self._thread.submit(
                TextReader, self.config, self.lib.config.runtime, self.lib.config.models_dir
            ).result()
        return self._reader

    def thread_nice(self) -> int:
        """The OS niceness the models' thread runs at."""
        return self._thread.submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())).result()

    def _gate_for(self) -> Gate | None:
        if self.config.gate == "all":
            return None
        if self._gate is None:
            from photoindex.ocr.gate import Gate

            self._gate = Gate(self.lib, self.config.gate_threshold, self._gate_prompts)
        return self._gate

    def counts(self) -> catalog_text.TextCounts:
        """What was read, and what waits (never read; read by other OCR models)."""
        with self.lib.db.reads() as con:
            return catalog_text.counts(con, self.lib.model_id, **self._which())

    def _which(self) -> dict[str, Any]:
        """What waits, as `catalog.text` asks it: skips too (`gate = "all"`) or those reaching the threshold, and
        readings by other OCR models."""
        everything = self.config.gate == "all"
        threshold = None if everything else self.config.gate_threshold
        return {"include_skipped": everything, "threshold": threshold, "engine": self.models_id}

    def waiting(self) -> int:
        """How many photos wait to be read (never read, or read by other OCR models)."""
        c = self.counts()
        return c.waiting + c.outdated

    def _read(self, pixels: np.ndarray, scale: float, gave_way: threading.Event) -> list[TextLine] | None:
        """One photo's lines, read in the models' thread; None when the pass gave way (before or during the read:
        `_GiveWay` aborts it)."""
        from photoindex.ocr.engine import ReadAborted

        reader = self.reader
        reader.resume()  # before looking at `gave_way`: an abort after this look reaches the read
        if gave_way.is_set():
            return None
        try:
            return self._thread.submit(reader.read, pixels, scale).result()
        except ReadAborted:
            return None

    def run(
        self,
        *,
        stop: threading.Event | None = None,
        should_yield: Callable[[], bool] | None = None,
        budget: float | None = None,
        progress: Progress | None = None,
    ) -> TextReport:
        """Read waiting photos until none wait, `stop` is set, `should_yield()` or `budget` seconds are up."""
        stop = stop or threading.Event()
        report = TextReport()
        started = time.monotonic()

        def enough() -> bool:
            over = budget is not None and time.monotonic() - started >= budget
            if over or watch.gave_way.is_set() or (should_yield is not None and should_yield()):
                report.yielded = True
            return stop.is_set() or report.yielded

        # Mid-photo (decoding or reading), a stop or CLIP work stops it at once; the budget waits for the photo.
        watch = _GiveWay(lambda: stop.is_set() or (should_yield is not None and should_yield()), self)
        with watch:
            self._pass(report, enough, watch, progress)
        report.aborted = watch.aborted
        report.interrupted = stop.is_set()
        left = self.counts()
        report.waiting, report.outdated = left.waiting, left.outdated
        report.seconds = time.monotonic() - started
        return report

    def _pass(
        self, report: TextReport, enough: Callable[[], bool], watch: _GiveWay, progress: Progress | None
    ) -> None:
        """The reading loop of `run`: gate a chunk of what waits, decode and read what passes, store each."""
        from photoindex.catalog.writes import connection
        from photoindex.photos.decodepool import DecodeJob, DecodePool

        mounts = self.lib.config.mounts
        tried: set[str] = set()  # contents not readable now (file changed or unreadable): left for later
        total = self.waiting() if progress is not None else None
        done = 0
        while not enough():
            with self.lib.db.reads() as con:
                batch = catalog_text.waiting(con, self.lib.model_id, limit=CHUNK + len(tried), **self._which())
            batch = [w for w in batch if w.content_hash not in tried][:CHUNK]
            if not batch:
                break
            # A photo of a named root this machine does not mount is read by a machine that does.
            away = [w for w in batch if not mounts.mapped(w.path)]
            tried.update(w.content_hash for w in away)
            batch = [w for w in batch if mounts.mapped(w.path)]
            if not batch:
                continue
            gate = self._gate_for()
            to_read: list[tuple[catalog_text.Waiting, float | None]] = []
            skipped: list[tuple[catalog_text.Waiting, float | None]] = []
            for w in batch:
                if gate is None:
                    to_read.append((w, None))
                    continue
                judged = gate.score(w.unit_vector())  # type: ignore[arg-type]
                (to_read if gate.passes(judged) else skipped).append((w, judged))
            if skipped:
                with self.lib.db.write() as s:
                    con = connection(s)
                    for w, judged_score in skipped:
                        catalog_text.store(
                            con, w.content_hash, status="skipped", engine=f"clip-gate/{self.lib.model_id}",
                            gate=judged_score,
                        )
                report.skipped += len(skipped)
                done += len(skipped)
            if not to_read:
                continue
            if self._shared:
                # Indexers sharing the catalog read each content once (docs/scale.md): what another one holds
                # is its to read, and one it read since the listing is done.
                with self.lib.db.write() as s:
                    held = catalog_text.claim(
                        connection(s), [w for w, _ in to_read], self._worker,
                        lease_seconds=self.lib.config.catalog.lease_seconds,
                    )
                tried.update(w.content_hash for w, _ in to_read if w.content_hash not in held)
                to_read = [(w, score) for w, score in to_read if w.content_hash in held]
                if not to_read:
                    continue
            stored: set[str] = set()
            pool = DecodePool(
                self.lib.bundle.manifest.image,
                workers=1,
                max_pixels=self.lib.config.scan.max_image_pixels,
                timeout=self.lib.config.index.decode_timeout,
                buffer=2,  # a decoded photo is ~6 MB at 1600 px: keep one ready, not dozens
                nice=self.config.nice,
            )
            jobs = (
                DecodeJob(i, mounts.local(w.path), "text", long_side=self.config.max_side)
                for i, (w, _) in enumerate(to_read)
            )
            engine = self.reader.engine_id
            watch.pool = pool
            for r in pool.run(jobs):
                w, score = to_read[r.key]  # score: None under `gate = "all"`
                if r.ok and r.content_hash == w.content_hash:
                    assert r.pixels is not None
                    lines = self._read(r.pixels, r.scale or 1.0, watch.gave_way)
                    if lines is None:  # gave way to CLIP work or a stop: this photo waits for the next pass
                        break
                    with self.lib.db.write() as s:
                        catalog_text.store(
                            connection(s), w.content_hash, status="text" if lines else "none", engine=engine,
                            lines=[line.to_json() for line in lines], gate=score,
                        )
                    stored.add(w.content_hash)
                    report.read += 1
                    report.reread += w.outdated
                    report.with_text += bool(lines)
                elif r.ok:
                    tried.add(w.content_hash)  # changed since its vector was stored: the CLIP pass comes first
                elif r.reason == "unreadable" or (r.reason in ("crashed", "timeout") and watch.gave_way.is_set()):
                    tried.add(w.content_hash)  # gone, locked, or our own stop: the next pass reads it
                else:
                    with self.lib.db.write() as s:
                        catalog_text.store(
                            connection(s), w.content_hash, status="failed", engine=engine, gate=score,
                            error=f"{r.reason}: {r.message}",
                        )
                    stored.add(w.content_hash)
                    report.failed += 1
                done += 1
                if progress is not None:
                    progress(done, total)
                if enough():
                    pool.stop()
                    break
            unread = [w.content_hash for w, _ in to_read if w.content_hash not in stored]
            if self._shared and unread:  # a stop, or files changed since: another indexer may read them now
                with self.lib.db.write() as s:
                    catalog_text.release(connection(s), unread, self._worker)


class _GiveWay:
    """While a text pass runs, looks at `give_way()` every `POLL` seconds from a thread of its own; once it is
    true, stops the decoding and aborts the read in progress, so CLIP work waits for no photo's reading."""

    def __init__(self, give_way: Callable[[], bool], text_pass: TextPass) -> None:
        self._give_way = give_way
        self._text_pass = text_pass
        self.gave_way = threading.Event()
        self.aborted = False  # `give_way()` turned true while the pass ran
        self.pool: Any = None  # the decode pool of the chunk in progress
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ocr-give-way", daemon=True)

    def __enter__(self) -> _GiveWay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        while not self._done.wait(POLL):
            if self._give_way():
                self.gave_way.set()  # before the abort: see TextPass._read
                self.aborted = True
                if self.pool is not None:
                    self.pool.stop()
                if self._text_pass._reader is not None:
                    self._text_pass._reader.abort()
                return

