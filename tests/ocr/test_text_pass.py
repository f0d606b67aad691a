"""The text pass's place behind CLIP and its choice of what to read, with the real PP-OCRv4 models on
generated photos: a read in progress is aborted when CLIP work arrives, the models' thread runs at
lower OS priority, photos read by other OCR models are read again after the unread ones, and the
CLIP gate's threshold comes from the config both ways (docs/ocr.md).
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import ocr_config, sql

from photoindex.config import Config
from photoindex.testing import COLOURS
from photoindex.testing.photos import make_photo
from photoindex.testing.textphotos import font_path, make_text_photo

pytestmark = [pytest.mark.skipif(font_path() is None, reason="needs fonts-noto-cjk (see .ci/run)")]

OLD_MODELS = "ppocr-v3/rapidocr-1.2.3"  # what an earlier release of the OCR models stored




def _reading_now(thread_name: str = "ocr") -> bool:
    """Whether the models' thread is inside `TextReader.read` at this moment (its live stack, not a clock)."""
    frames = sys._current_frames()
    for t in threading.enumerate():
        if t.name.startswith(thread_name) and t.ident in frames:
            frame = frames[t.ident]
            while frame is not None:
                if frame.f_code.co_name == "read" and "ocr/engine" in frame.f_code.co_filename.replace(os.sep, "/"):
                    return True
                frame = frame.f_back  # type: ignore[assignment]
    return False


@pytest.mark.slow
def test_a_read_in_progress_is_aborted_when_clip_work_arrives(tmp_path: Path, toy_bundle: Path) -> None:
    """`should_yield` turning true mid-photo stops the models at once: the photo is left unread (not failed),
    the pass says it yielded, and the next pass reads it."""
    from photoindex.indexing.indexer import run_index
    from photoindex.library import open_library
    from photoindex.ocr.reader import TextPass

    root = tmp_path / "Photos"
    make_text_photo(root / "big.jpg", ["VELVET QUARRY", "falcon garnet"], size=(4000, 3000), font_size=90, seed=1)
    config = ocr_config(tmp_path / "home", toy_bundle, PHOTOINDEX_OCR_ENABLED="0")
    run_index(config, [root])  # vectors only
    config = replace(config, ocr=replace(config.ocr, enabled=True))
    asked_mid_read: list[bool] = []

    def clip_work_arrived() -> bool:
        now = _reading_now()
        asked_mid_read.append(now)
        return now  # CLIP work "arrives" the first time it is asked while a photo is being read

    with open_library(config) as lib, TextPass(lib) as reading:
        report = reading.run(should_yield=clip_work_arrived)
        assert any(asked_mid_read), "the pass must look for CLIP work while a photo is being read"
        assert (report.read, report.failed, report.yielded, report.waiting) == (0, 0, True, 1)
        assert sql(config, "SELECT count(*) FROM photo_text")[0][0] == 0
        again = reading.run()  # the models run again after an abort
    assert (again.read, again.with_text, again.waiting) == (1, 1, 0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_the_models_thread_runs_at_lower_os_priority(tmp_path: Path, toy_bundle: Path) -> None:
    from photoindex.library import open_library
    from photoindex.ocr.reader import TextPass

    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    for nice, expected in (("0", base), ("5", min(19, base + 5))):
        config = ocr_config(tmp_path / "home", toy_bundle, PHOTOINDEX_OCR_NICE=nice)
        with open_library(config) as lib, TextPass(lib) as reading:
            assert reading.thread_nice() == expected
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # only that thread


@pytest.mark.slow
def test_photos_read_by_other_ocr_models_are_read_again_after_the_unread(tmp_path: Path, toy_bundle: Path) -> None:
    from photoindex.indexing.indexer import run_index
    from photoindex.library import open_library
    from photoindex.ocr.engine import models_id
    from photoindex.ocr.reader import TextPass
    from photoindex.status import library_status

    root = tmp_path / "Photos"
    for i, words in enumerate((["HARBOR LANTERN"], ["QUARTZ MEADOW"], ["COBALT WALNUT"])):
        make_text_photo(root / f"p{i}.jpg", words, size=(800, 400), seed=i)
    config = ocr_config(tmp_path / "home", toy_bundle)
    assert run_index(config, [root]).text["read"] == 3  # type: ignore[index]
    current = models_id()
    assert {e for (e,) in sql(config, "SELECT engine FROM photo_text")} == {current}

    def hash_of(name: str) -> str:
        return str(sql(config, "SELECT content_hash FROM photos WHERE path LIKE ?", f"%{name}")[0][0])

    # p0 and p1 were read by older models; p2 by these models on the NPU (the same models): current.
    sql(config, "UPDATE photo_text SET engine = ? WHERE content_hash IN (?, ?)", OLD_MODELS, hash_of("p0.jpg"),
        hash_of("p1.jpg"))
    sql(config, "UPDATE photo_text SET engine = ? WHERE content_hash = ?", f"{current}/npu", hash_of("p2.jpg"))
    st = library_status(config).text
    assert st is not None and (st["read"], st["waiting"], st["outdated"]) == (3, 0, 2)
    assert any("2 to read again (new OCR models)" in line for line in library_status(config).lines())
    # A new photo, never read, goes before the two to read again.
    make_text_photo(root / "new.jpg", ["PEPPER THUNDER"], size=(800, 400), seed=9)
    config_off = replace(config, ocr=replace(config.ocr, enabled=False))
    run_index(config_off, [root])
    order: list[str] = []
    with open_library(config) as lib, TextPass(lib) as reading:
        assert reading.waiting() == 3
        first = reading.run(should_yield=lambda: bool(order), progress=lambda done, total: order.append("x"))
        assert (first.read, first.reread, first.waiting, first.outdated) == (1, 0, 0, 2)
        assert sql(config, "SELECT engine FROM photo_text WHERE content_hash = ?", hash_of("new.jpg")) == [(current,)]
        rest = reading.run()
    assert (rest.read, rest.reread, rest.waiting, rest.outdated) == (2, 2, 0, 0)
    engines = dict(sql(config, "SELECT content_hash, engine FROM photo_text"))
    assert engines[hash_of("p0.jpg")] == engines[hash_of("p1.jpg")] == current
    assert engines[hash_of("p2.jpg")] == f"{current}/npu"  # not read again
    assert library_status(config).text["outdated"] == 0  # type: ignore[index]


@pytest.mark.slow
def test_the_gate_threshold_comes_from_the_config_both_ways(tmp_path: Path, toy_bundle: Path) -> None:
    """`[ocr] gate_threshold` decides which photos the CLIP gate skips (a high one: all but one); lowering it
    later makes the skipped photos whose stored score reaches the new threshold due, and only those."""
    from photoindex.catalog import reads
    from photoindex.indexing.indexer import run_index
    from photoindex.library import open_library
    from photoindex.ocr.gate import Gate
    from photoindex.ocr.reader import TextPass

    root = tmp_path / "Photos"
    for i, colour in enumerate(("red", "green", "blue", "yellow", "purple", "orange")):
        make_photo(root / f"{colour}.jpg", COLOURS[colour], size=(320, 240), seed=i)
    config = ocr_config(tmp_path / "home", toy_bundle, PHOTOINDEX_OCR_ENABLED="0")
    run_index(config, [root])
    # The toy CLIP knows colours only: "red" stands for the text-bearing prompts.
    prompts = (["something red", "a red thing"], ["something green", "something blue", "something yellow"])
    with open_library(config) as lib:
        gate = Gate(lib, 0.0, prompts)
        with lib.db.reads() as con:
            scores = {h: gate.score(reads.vector_for_hash(con, lib.model_id, h))
                      for (h,) in con.execute("SELECT content_hash FROM vectors")}
    ranked = sorted(scores.values())
    assert ranked[0] < ranked[-1]
    high = (ranked[-2] + ranked[-1]) / 2  # only the best-scored photo passes
    low = (ranked[0] + ranked[1]) / 2  # all but the worst-scored pass

    def clip_gate(threshold: float) -> Config:
        return ocr_config(tmp_path / "home", toy_bundle, PHOTOINDEX_OCR_GATE="clip",
                           PHOTOINDEX_OCR_GATE_THRESHOLD=repr(threshold))

    with open_library(clip_gate(high)) as lib, TextPass(lib, gate_prompts=prompts) as reading:
        first = reading.run()
    assert (first.read, first.skipped, first.waiting) == (1, 5, 0)
    read_now = {h for (h,) in sql(config, "SELECT content_hash FROM photo_text WHERE status <> 'skipped'")}
    assert read_now == {h for h, s in scores.items() if s >= high}
    stored = dict(sql(config, "SELECT content_hash, gate FROM photo_text"))
    assert stored == pytest.approx(scores, abs=1e-5)
    with open_library(clip_gate(low)) as lib, TextPass(lib, gate_prompts=prompts) as reading:
        assert reading.counts().skipped == 1 and reading.waiting() == 4
        second = reading.run()
    assert (second.read, second.skipped, second.waiting) == (4, 0, 0)
    skipped = {h for (h,) in sql(config, "SELECT content_hash FROM photo_text WHERE status = 'skipped'")}
    assert skipped == {h for h, s in scores.items() if s < low}


@pytest.mark.slow
def test_the_daemon_stops_reading_when_a_photo_arrives_mid_read(
    tmp_path: Path, toy_bundle: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The daemon's own wiring: a file event queued while a photo is being read (the watcher thread's hint)
    makes the text pass abort that read and give the writer lock back; the photo stays due."""
    import logging

    from photoindex.daemon.loop import Daemon
    from photoindex.daemon.watcher import Hint
    from photoindex.indexing.indexer import run_index
    from photoindex.library import open_library

    root = tmp_path / "Photos"
    make_text_photo(root / "big.jpg", ["VELVET QUARRY", "falcon garnet"], size=(4000, 3000), font_size=90, seed=1)
    config = ocr_config(tmp_path / "home", toy_bundle, PHOTOINDEX_OCR_ENABLED="0")
    run_index(config, [root])  # vectors only
    config = replace(config, ocr=replace(config.ocr, enabled=True))
    arrived = threading.Event()

    def arrive() -> None:  # the watcher's part: a new photo's hint, once the models are at work
        while not arrived.is_set():
            if _reading_now():
                daemon.events.put(Hint(str(root / "new.jpg"), closed=True))
                arrived.set()
            threading.Event().wait(0.01)

    caplog.set_level(logging.INFO, logger="photoindex.daemon")
    with open_library(config) as lib:
        daemon = Daemon(lib, threading.Event())
        assert daemon._text_due  # the text pass is on: reading is due from the start
        watcher = threading.Thread(target=arrive, daemon=True)
        watcher.start()
        try:
            daemon._read_text()
        finally:
            arrived.set()
            watcher.join()
            if daemon._text is not None:
                daemon._text.close()
        assert daemon._busy() and daemon._text_due  # CLIP work first, the text still due after it
        assert not daemon._lock.held
    assert "reading text gave way to new work; 1 photos wait to be read" in caplog.text
    assert sql(config, "SELECT count(*) FROM photo_text")[0][0] == 0
