"""The text pass: after photos' CLIP vectors are stored, read the text in those that wait, once per content.

What waits is computed from the catalog (an indexed content with a vector and no `photo_text`
row), so there is no queue to lose: a `kill -9` at any point leaves at most the photo being read
unread, and the next pass reads it. Each photo's reading commits on its own (one transaction for
the row and its two full-text rows). Photos are decoded for the detector in a bounded decode
worker process (`photos/decodepool.py`, job kind "text"); the models run here. The caller holds
the writer lock; `should_yield` lets the daemon give the lock (and the CPU) back to CLIP
encoding between two photos (docs/ocr.md, "When photos are read").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from photoindex.catalog import text as catalog_text

if TYPE_CHECKING:
    from photoindex.library import Library
    from photoindex.ocr.engine import TextReader
    from photoindex.ocr.gate import Gate

log = logging.getLogger("photoindex")

CHUNK = 16  # contents looked up (and gated) at a time


@dataclass
class TextReport:
    """What a text pass did, and what still waits after it (`index --json`'s "text")."""

    read: int = 0  # photos read in this pass (with or without text)
    with_text: int = 0
    skipped: int = 0  # judged not worth reading by the CLIP gate
    failed: int = 0
    waiting: int = 0  # photos still to read after the pass (a stop, a yield, or new photos meanwhile)
    seconds: float = 0.0
    interrupted: bool = False  # stopped (Ctrl-C, SIGTERM)
    yielded: bool = False  # gave way to other work (`should_yield`) or ran out of its time budget

    def to_json(self) -> dict[str, Any]:
        """The summary object."""
        return asdict(self)


Progress = Callable[[int, int | None], None]


class TextPass:
    """Reads the photos that wait for it; keep one per process (the models load once, on first need)."""

    def __init__(self, lib: Library, *, gate: Gate | None = None) -> None:
        """`gate`: the CLIP gate to use under `gate = "clip"` (default: the shipped prompts, made on first need)."""
        self.lib = lib
        self.config = lib.config.ocr
        self._reader: TextReader | None = None
        self._gate: Gate | None = gate

    @property
    def reader(self) -> TextReader:
        """The OCR models (loaded on first use)."""
        if self._reader is None:
            from photoindex.ocr.engine import TextReader

            self._reader = TextReader(self.config, self.lib.config.runtime, self.lib.config.models_dir)
        return self._reader

    def _gate_for(self) -> Gate | None:
        if self.config.gate == "all":
            return None
        if self._gate is None:
            from photoindex.ocr.gate import Gate

            self._gate = Gate(self.lib, self.config.gate_threshold)
        return self._gate

    def waiting(self) -> int:
        """How many photos wait to be read."""
        with self.lib.db.reads() as con:
            return catalog_text.counts(con, self.lib.model_id, include_skipped=self.config.gate == "all").waiting

    def run(
        self,
        *,
        stop: threading.Event | None = None,
        should_yield: Callable[[], bool] | None = None,
        budget: float | None = None,
        progress: Progress | None = None,
    ) -> TextReport:
        """Read waiting photos until none wait, `stop` is set, `should_yield()` or `budget` seconds are up."""
        from photoindex.catalog.writes import connection
        from photoindex.photos.decodepool import DecodeJob, DecodePool

        stop = stop or threading.Event()
        report = TextReport()
        started = time.monotonic()
        include_skipped = self.config.gate == "all"
        tried: set[str] = set()  # contents not readable now (file changed or unreadable): left for later
        total = self.waiting() if progress is not None else None
        done = 0

        def enough() -> bool:
            over = budget is not None and time.monotonic() - started >= budget
            if over or (should_yield is not None and should_yield()):
                report.yielded = True
            return stop.is_set() or report.yielded

        while not enough():
            with self.lib.db.reads() as con:
                batch = catalog_text.waiting(
                    con, self.lib.model_id, include_skipped=include_skipped, limit=CHUNK + len(tried)
                )
            batch = [w for w in batch if w.content_hash not in tried][:CHUNK]
            if not batch:
                break
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
            pool = DecodePool(
                self.lib.bundle.manifest.image,
                workers=1,
                max_pixels=self.lib.config.scan.max_image_pixels,
                timeout=self.lib.config.index.decode_timeout,
                buffer=2,  # a decoded photo is ~6 MB at 1600 px: keep one ready, not dozens
            )
            jobs = (
                DecodeJob(i, w.path, "text", long_side=self.config.max_side) for i, (w, _) in enumerate(to_read)
            )
            engine = self.reader.engine_id
            for r in pool.run(jobs):
                w, score = to_read[r.key]  # score: None under `gate = "all"`
                if r.ok and r.content_hash == w.content_hash:
                    assert r.pixels is not None
                    lines = self.reader.read(r.pixels, r.scale or 1.0)
                    with self.lib.db.write() as s:
                        catalog_text.store(
                            connection(s), w.content_hash, status="text" if lines else "none", engine=engine,
                            lines=[line.to_json() for line in lines], gate=score,
                        )
                    report.read += 1
                    report.with_text += bool(lines)
                elif r.ok:
                    tried.add(w.content_hash)  # changed since its vector was stored: the CLIP pass comes first
                elif r.reason == "unreadable" or (r.reason in ("crashed", "timeout") and stop.is_set()):
                    tried.add(w.content_hash)  # gone, locked, or our own shutdown: the next pass reads it
                else:
                    with self.lib.db.write() as s:
                        catalog_text.store(
                            connection(s), w.content_hash, status="failed", engine=engine, gate=score,
                            error=f"{r.reason}: {r.message}",
                        )
                    report.failed += 1
                done += 1
                if progress is not None:
                    progress(done, total)
                if enough():
                    pool.stop()
                    break
        report.interrupted = stop.is_set()
        report.waiting = self.waiting()
        report.seconds = time.monotonic() - started
        return report

