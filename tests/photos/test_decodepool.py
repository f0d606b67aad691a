"""The decode pool: real worker processes that crash, hang and stop early without losing the run."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from photoindex.inference.bundle import ImageSpec
from photoindex.photos.decodepool import DecodeJob, DecodePool
from photoindex.testing import COLOURS
from photoindex.testing.photos import make_photo

SPEC = ImageSpec(size=224)


def photos(tmp_path: Path, n: int) -> list[Path]:
    return [make_photo(tmp_path / f"p{i}.jpg", COLOURS["red"], seed=i) for i in range(n)]


def test_results_carry_hash_pixels_and_metadata(tmp_path: Path) -> None:
    paths = photos(tmp_path, 6)
    pool = DecodePool(SPEC, workers=2, max_pixels=10**8)
    results = list(pool.run(DecodeJob(i, str(p)) for i, p in enumerate(paths)))
    assert sorted(r.key for r in results) == list(range(6))
    for r in results:
        assert r.ok and r.pixels is not None and r.pixels.shape == (224, 224, 3) and r.content_hash
        assert r.info.width == 320 and r.size == os.path.getsize(r.path)
    hashed = list(pool.run([DecodeJob(0, str(paths[0]), "hash")]))
    assert hashed[0].content_hash == next(r for r in results if r.key == 0).content_hash
    assert hashed[0].pixels is None


def test_a_hanging_file_times_out_alone_and_the_worker_is_replaced(tmp_path: Path) -> None:
    paths = photos(tmp_path, 4)
    fifo = tmp_path / "stuck.jpg"
    os.mkfifo(fifo)  # opening it for reading blocks forever: a worker that hangs
    jobs = [DecodeJob(0, str(fifo))] + [DecodeJob(i + 1, str(p)) for i, p in enumerate(paths)]
    pool = DecodePool(SPEC, workers=2, max_pixels=10**8, timeout=2.0)
    results = {r.key: r for r in pool.run(jobs)}
    assert results[0].reason == "timeout" and not results[0].ok
    assert all(results[k].ok for k in range(1, 5))
    assert pool.restarts == 1


def test_a_stalled_feeder_never_times_out_finished_work(tmp_path: Path) -> None:
    """The feeder thread stalls (the caller encoding with a full queue, a model load holding the GIL) right
    after a wait that found a worker still busy: that worker finishes meanwhile and must not be timed out."""
    paths = photos(tmp_path, 8)
    pool = DecodePool(SPEC, workers=2, max_pixels=10**8, timeout=0.5)
    stalls: list[int] = []

    def stall(ready: list[object], busy: list[object]) -> None:
        if len(stalls) < 3 and any(conn not in ready for conn in busy):
            stalls.append(1)
            time.sleep(1.5)  # three times the timeout; the photos decode in milliseconds

    pool._stall = stall
    results = list(pool.run(DecodeJob(i, str(p)) for i, p in enumerate(paths)))
    assert stalls, "the feeder must have stalled while a worker was busy"
    assert [r.reason for r in results] == [None] * 8
    assert pool.restarts == 0


def test_a_crashing_worker_fails_only_its_photo(tmp_path: Path) -> None:
    paths = photos(tmp_path, 3)
    bomb = tmp_path / "crash.jpg"
    bomb.write_bytes(b"x")
    jobs = [DecodeJob(i, str(p)) for i, p in enumerate([*paths, bomb])]
    pool = DecodePool(SPEC, workers=2, max_pixels=10**8, timeout=30)
    pool._crash_on = str(bomb)  # the worker dies with SIGSEGV on this job, as a buggy decoder would
    results = {r.key: r for r in pool.run(jobs)}
    assert results[3].reason == "crashed"
    assert all(results[k].ok for k in range(3))


def test_stopping_early_returns_promptly_from_any_thread(tmp_path: Path) -> None:
    paths = photos(tmp_path, 40)
    pool = DecodePool(SPEC, workers=2, max_pixels=10**8)
    got = []
    threading.Timer(0.3, pool.stop).start()
    started = time.monotonic()
    for r in pool.run(DecodeJob(i, str(p)) for i, p in enumerate(paths * 20)):
        got.append(r)
    elapsed = time.monotonic() - started
    assert len(got) < 800
    assert elapsed < 30  # a generous bound: a hang would never return


def test_a_stop_asked_before_the_run_begins_is_kept(tmp_path: Path) -> None:
    """Another thread may stop the pool between handing it out and the run's first step (the OCR pass
    giving way to CLIP work): the run then decodes nothing, in worker processes or in-process."""
    paths = photos(tmp_path, 4)
    for workers in (2, 0):
        pool = DecodePool(SPEC, workers=workers, max_pixels=10**8)
        run = pool.run(DecodeJob(i, str(p)) for i, p in enumerate(paths))
        pool.stop()
        assert list(run) == []
        assert list(pool.run([DecodeJob(0, str(paths[0]))])) == []  # a stopped pool stays stopped


def test_a_pool_runs_again_after_a_run_that_ended(tmp_path: Path) -> None:
    paths = photos(tmp_path, 3)
    pool = DecodePool(SPEC, workers=2, max_pixels=10**8)
    first = pool.run(DecodeJob(i, str(p)) for i, p in enumerate(paths))
    next(first)
    first.close()  # the consumer leaves early: the run ends, the pool is not stopped
    assert sorted(r.key for r in pool.run(DecodeJob(i, str(p)) for i, p in enumerate(paths))) == [0, 1, 2]
