"""Symbolic link loops under a root: each real folder is watched once, the daemon starts, serves and stops.

The tree of issue 11 item 3: `lib/loop/up -> ..` and `lib/loop/self -> lib/loop` (absolute).
Before, watchdog walked the loops until the path was too long (2^40 names), warned 43 KB for
each second name of a folder, and the daemon never left "starting" nor heeded SIGTERM.
"""

from __future__ import annotations

import logging
import os
import queue
import stat
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import daemonproc as td
import pytest

from photoindex.config import DaemonConfig, ScanConfig
from photoindex.daemon.lograte import MAX_CHARS, RateLimit
from photoindex.daemon.watcher import Event, Hint, Watcher, count_folders
from photoindex.testing import make_photo

env, start = td.env, td.start
DaemonProcess, wait_for, index_root = td.DaemonProcess, td.wait_for, td.index_root

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify")


def loop_tree(base: Path) -> Path:
    lib = base / "lib"
    (lib / "loop").mkdir(parents=True)
    make_photo(lib / "a.jpg", td.RED, size=(64, 48), seed=1)
    os.symlink("..", lib / "loop" / "up")
    os.symlink(lib / "loop", lib / "loop" / "self")
    return lib


@pytest.fixture
def watcher(tmp_path: Path) -> Iterator[tuple[Watcher, queue.SimpleQueue[Event]]]:
    q: queue.SimpleQueue[Event] = queue.SimpleQueue()
    w = Watcher(ScanConfig(), DaemonConfig(poll_interval=1.0), q, mounts_file=tmp_path / "no-mounts")
    yield w, q
    w.stop()


@linux_only
def test_each_real_folder_gets_one_inotify_watch_and_a_loop_one_log_line(
    tmp_path: Path, watcher: tuple[Watcher, queue.SimpleQueue[Event]], caplog: pytest.LogCaptureFixture
) -> None:
    lib = loop_tree(tmp_path)
    w, q = watcher
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # watchdog's "Callback with id ... already exists" must not happen
        with caplog.at_level(logging.INFO, logger="photoindex.daemon.watcher"):
            w.sync([str(lib)])
    group = next(iter(w._roots[str(lib)].observer.emitters))._inotify  # type: ignore[union-attr]
    assert sorted(group._active_callbacks_by_path) == [os.fsencode(lib), os.fsencode(lib / "loop")]
    skipped = [r.getMessage() for r in caplog.records if "already watched" in r.getMessage()]
    assert len(skipped) == 2 and any(str(lib / "loop" / "up") in m for m in skipped)
    assert count_folders([str(lib)], follow_symlinks=True) == 2
    # Events still arrive, through the one name of each folder.
    make_photo(lib / "loop" / "b.jpg", td.GREEN, size=(64, 48), seed=2)
    deadline = time.monotonic() + 20
    seen: set[str] = set()
    while str(lib / "loop" / "b.jpg") not in seen and time.monotonic() < deadline:
        try:
            e = q.get(timeout=0.1)
        except queue.Empty:
            continue
        if isinstance(e, Hint):
            seen.add(e.path)
    assert str(lib / "loop" / "b.jpg") in seen


@linux_only
def test_a_loop_made_after_the_start_is_not_walked(
    tmp_path: Path, watcher: tuple[Watcher, queue.SimpleQueue[Event]]
) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    w, q = watcher
    w.sync([str(lib)])
    staged = tmp_path / "staged"
    (staged / "inner").mkdir(parents=True)
    os.symlink("..", staged / "inner" / "up")
    os.rename(staged, lib / "new")  # a folder with a loop inside moves in
    (lib / "new" / "x.jpg").write_bytes(b"x")
    group = next(iter(w._roots[str(lib)].observer.emitters))._inotify  # type: ignore[union-attr]
    deadline = time.monotonic() + 20
    while os.fsencode(lib / "new" / "inner") not in group._active_callbacks_by_path and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(group._active_callbacks_by_path) == [
        os.fsencode(p) for p in (lib, lib / "new", lib / "new" / "inner")
    ]


def test_a_polling_snapshot_does_not_enter_a_loop(
    tmp_path: Path, watcher: tuple[Watcher, queue.SimpleQueue[Event]]
) -> None:
    from watchdog.utils.dirsnapshot import DirectorySnapshot

    from photoindex.daemon.watcher import _LoopSafeStat

    lib = loop_tree(tmp_path)
    snap = DirectorySnapshot(str(lib), stat=_LoopSafeStat(str(lib), True))
    assert sorted(snap.paths) == sorted(
        str(p) for p in (lib, lib / "a.jpg", lib / "loop", lib / "loop" / "up", lib / "loop" / "self")
    )
    again = DirectorySnapshot(str(lib), stat=_LoopSafeStat(str(lib), True))  # a new snapshot starts afresh
    assert again.paths == snap.paths


@pytest.mark.slow
@linux_only
def test_the_daemon_on_a_looped_tree_starts_serves_and_stops_on_sigterm(tmp_path: Path, env: dict[str, str]) -> None:
    lib = loop_tree(tmp_path)
    index_root(env, lib)
    d = DaemonProcess(env, tmp_path / "loop.log")
    try:
        d.wait_idle()
        log = d.log()
        assert "already exists" not in log and "Traceback" not in log
        assert log.count("a link to a folder already watched") == 2, log
        assert len(log.encode()) < 20_000, f"{len(log.encode())} bytes of log"
        home = Path(env["PHOTOINDEX_HOME"])  # issue 11 item 4: the daemon's files are private too
        for name in ("daemon.lock", "daemon.json", "daemon.sock", "writer.lock", "photoindex.db", "."):
            assert stat.S_IMODE(os.stat(home / name).st_mode) & 0o077 == 0, name
        code, _ = d.terminate(timeout=10.0)
        assert code == 0
    finally:
        d.kill()


@pytest.mark.slow
@linux_only
def test_sigterm_during_the_start_up_scan_stops_the_daemon(tmp_path: Path, env: dict[str, str]) -> None:
    lib = loop_tree(tmp_path)
    index_root(env, lib)
    td.make_album(lib / "loop" / "album", 150, td.BLUE, seed=10)  # new while no daemon ran: the start-up scan's
    d = DaemonProcess({**env, "PHOTOINDEX_INDEX_BATCH_SIZE": "1"}, tmp_path / "scan.log")
    try:
        wait_for(lambda: d.state().get("state") == "scanning", "the start-up scan", d)
        code, _ = d.terminate(timeout=10.0)
        assert code == 0
        assert "interrupted" in d.log()
    finally:
        d.kill()


def test_identical_warnings_are_rate_limited_with_a_count() -> None:
    now = [0.0]
    limit = RateLimit(window=60.0, clock=lambda: now[0])

    def record(msg: str, level: int = logging.WARNING) -> logging.LogRecord:
        return logging.LogRecord("x", level, __file__, 1, msg, (), None)

    assert limit.filter(record("disk full"))
    assert not any(limit.filter(record("disk full")) for _ in range(1000))
    assert limit.filter(record("another"))  # a different message is its own
    assert limit.filter(record("disk full", logging.INFO))  # info lines are not limited
    now[0] = 61.0
    r = record("disk full")
    assert limit.filter(r)
    assert r.getMessage() == "disk full (and 1000 identical before, not logged)"
    huge = record("x" * 50_000)
    assert limit.filter(huge) and len(huge.getMessage()) < MAX_CHARS + 100
