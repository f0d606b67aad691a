"""The daemon as a real process: real files, real inotify, the toy bundle, the catalog read from outside.

Every wait polls the catalog (opened read-only) or the daemon's status file against a deadline;
nothing sleeps a fixed time and hopes. "Encoded" counts come from the daemon's own log lines
(`... N encoded ...`) and from `reindex --json`, so a photo encoded twice shows even though the
catalog dedupes its vector by content hash.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from daemonproc import (
    BLUE,
    GREEN,
    RED,
    DaemonProcess,
    _cli,
    empty_root,
    index_root,
    indexed_under,
    make_album,
    photos,
    vector_count,
    wait_for,
)

from photoindex.testing import make_photo

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the daemon tests use inotify")

@pytest.mark.slow
def test_photos_copied_in_are_all_indexed_and_searchable_and_a_new_root_is_picked_up(
    tmp_path: Path, env: dict[str, str], start: Callable[..., DaemonProcess]
) -> None:
    home = Path(env["PHOTOINDEX_HOME"])
    d = start()  # no roots yet
    root = tmp_path / "photos"
    root.mkdir()
    index_root(env, root)  # added while the daemon runs: it starts watching it by itself
    wait_for(lambda: f"watching {root} with inotify" in d.log(), "the new root to be watched", d)
    staging = tmp_path / "card"
    make_album(staging / "DCIM", 100, RED, seed=0)
    shutil.copytree(staging / "DCIM", root / "DCIM")
    wait_for(lambda: len(indexed_under(home, root)) == 100, "100 photos indexed", d)
    wait_for(lambda: d.encoded() >= 100, "the units' log lines", d)
    d.wait_quiet()
    assert d.encoded() == 100
    result = _cli(env, "search", "red", "--json", "--limit", "5")
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert hits and all(h["path"].startswith(str(root / "DCIM")) for h in hits)
    status = json.loads(_cli(env, "status", "--json").stdout)
    assert status["daemon"]["running"] and status["daemon"]["pid"] == d.proc.pid
    assert d.terminate()[0] == 0
    assert d.state()["state"] == "stopped"


@pytest.mark.slow
def test_a_big_file_written_slowly_is_indexed_once_after_it_is_complete(
    tmp_path: Path, env: dict[str, str], start: Callable[..., DaemonProcess]
) -> None:
    home, root = empty_root(tmp_path, env)
    d = start()
    # A real JPEG padded to 20 MB: decodable from the first chunk on, so an early read would index
    # it (and the later complete file again). Written in 20 chunks over about 5 s.
    source = make_photo(tmp_path / "src.jpg", BLUE, seed=7)
    data = source.read_bytes()
    data += b"\0" * (20 * 1024 * 1024 - len(data))
    target = root / "big.jpg"
    chunk = len(data) // 20
    with open(target, "wb") as fh:
        for i in range(20):
            fh.write(data[i * chunk : (i + 1) * chunk] if i < 19 else data[i * chunk :])
            fh.flush()
            time.sleep(0.25)
    wait_for(lambda: photos(home).get(str(target)) == "indexed", "the big file indexed", d)
    con = sqlite3.connect(f"file:{home / 'photoindex.db'}?mode=ro", uri=True)
    (size,) = con.execute("SELECT size FROM photos WHERE path = ?", (str(target),)).fetchone()
    con.close()
    assert size == len(data)
    wait_for(lambda: d.encoded() >= 1, "the unit's log line", d)
    d.wait_quiet()  # a second indexing of the same file would have happened by now
    assert d.encoded() == 1


@pytest.mark.slow
def test_a_temporary_name_renamed_gives_one_photo_under_its_final_name(
    tmp_path: Path, env: dict[str, str], start: Callable[..., DaemonProcess]
) -> None:
    home, root = empty_root(tmp_path, env)
    d = start()
    make_photo(root / "x.jpg.tmp", GREEN, seed=3, fmt="JPEG")
    time.sleep(0.8)  # the temporary file sits there past the settle time, as a slow camera app's would
    os.rename(root / "x.jpg.tmp", root / "x.jpg")
    wait_for(lambda: photos(home).get(str(root / "x.jpg")) == "indexed", "x.jpg indexed", d)
    # The unit logs its "N encoded" line just after its commit: under load, wait for the line too.
    wait_for(lambda: d.encoded() >= 1, "the unit's log line", d)
    d.wait_quiet()
    assert list(photos(home)) == [str(root / "x.jpg")]
    assert d.encoded() == 1


@pytest.mark.slow
def test_a_moved_folder_is_relinked_without_encoding_and_a_deleted_one_leaves_the_results(
    tmp_path: Path, env: dict[str, str], start: Callable[..., DaemonProcess]
) -> None:
    home = Path(env["PHOTOINDEX_HOME"])
    root = tmp_path / "photos"
    make_album(root / "inbox" / "trip", 50, BLUE, seed=100)
    make_album(root / "other", 3, RED, seed=500)
    (root / "2024").mkdir()
    index_root(env, root)
    vectors = vector_count(home)
    d = start()
    os.rename(root / "inbox" / "trip", root / "2024" / "trip")
    wait_for(lambda: len(indexed_under(home, root / "2024" / "trip")) == 50, "50 photos at their new paths", d)
    wait_for(lambda: not any(p.startswith(str(root / "inbox")) for p in photos(home)), "the old paths gone", d)
    d.wait_quiet()
    assert d.encoded() == 0
    assert vector_count(home) == vectors
    assert "50 moved" in d.log()

    shutil.rmtree(root / "2024" / "trip")
    wait_for(lambda: not indexed_under(home, root / "2024" / "trip"), "the deleted album's photos gone", d)
    hits = json.loads(_cli(env, "search", "blue", "--json", "--limit", "60").stdout)
    assert hits and not any("/2024/trip/" in h["path"] for h in hits)


@pytest.mark.slow
def test_a_root_removed_and_recreated_is_indexed_without_a_restart(
    tmp_path: Path, env: dict[str, str], start: Callable[..., DaemonProcess]
) -> None:
    home = Path(env["PHOTOINDEX_HOME"])
    root = tmp_path / "usb"
    old = make_album(root, 3, RED, seed=10)
    index_root(env, root)
    d = start()
    shutil.rmtree(root)
    wait_for(lambda: all(photos(home).get(str(p)) == "missing" for p in old), "the old photos marked missing", d)
    assert "the folder disappeared" in d.log()
    new = make_album(root, 4, GREEN, seed=20)
    wait_for(lambda: indexed_under(home, root) == {str(p) for p in new}, "the photos of the new folder", d)
    wait_for(lambda: d.encoded() >= 4, "the units' log lines", d)
    d.wait_quiet()
    assert "the folder is back" in d.log()
    assert d.encoded() == 4


@pytest.mark.slow
def test_when_watching_fails_the_daemon_says_so_and_rescans_find_new_photos(
    tmp_path: Path, env: dict[str, str], start: Callable[..., DaemonProcess]
) -> None:
    home = Path(env["PHOTOINDEX_HOME"])
    root = tmp_path / "photos"
    for name in ("a", "b", "c"):
        (root / name).mkdir(parents=True)
    index_root(env, root)
    # Room for the root's watch only, as with a max_user_watches below the number of folders.
    d = start(PHOTOINDEX_TEST_WATCH_LIMIT="1", PHOTOINDEX_DAEMON_POLL_INTERVAL="1")
    wait_for(lambda: "inotify watch limit reached: 4 folders under the roots" in d.log(), "the limit reported", d)
    photo = make_photo(root / "b" / "unwatched.jpg", BLUE, seed=1)
    wait_for(lambda: photos(home).get(str(photo)) == "indexed", "the photo found by a rescan", d)
    assert "watch limit reached" in (d.state().get("watching") or "")


@pytest.mark.slow
def test_sigterm_during_a_batch_stops_within_10_s_and_a_restart_loses_and_doubles_nothing(
    tmp_path: Path, env: dict[str, str], start: Callable[..., DaemonProcess]
) -> None:
    home, root = empty_root(tmp_path, env)
    d = start(PHOTOINDEX_INDEX_BATCH_SIZE="4")
    album = make_album(tmp_path / "staging", 120, GREEN, seed=1000)
    shutil.copytree(tmp_path / "staging", root / "album")
    wait_for(lambda: d.state().get("state") == "indexing", "a batch in progress", d)
    code, seconds = d.terminate(timeout=10.0)
    assert code == 0 and seconds < 10.0
    assert d.state()["state"] == "stopped"
    done_before = len(indexed_under(home, root))

    d2 = start(PHOTOINDEX_INDEX_BATCH_SIZE="4")
    wait_for(lambda: len(indexed_under(home, root)) == len(album), "every photo indexed after the restart", d2)
    d2.wait_quiet()
    assert vector_count(home) == len(album)
    assert d.encoded() + d2.encoded() == len(album), (done_before, d.log(), d2.log())


@pytest.mark.slow
def test_reindex_beside_the_daemon_waits_its_turn_and_nothing_is_lost_or_encoded_twice(
    tmp_path: Path, env: dict[str, str], start: Callable[..., DaemonProcess]
) -> None:
    home = Path(env["PHOTOINDEX_HOME"])
    root = tmp_path / "photos"
    make_album(root / "old", 5, RED, seed=1)
    index_root(env, root)
    d = start()
    make_album(tmp_path / "staging", 40, BLUE, seed=300)
    shutil.copytree(tmp_path / "staging", root / "new")
    result = _cli(env, "reindex", "--json")
    assert result.returncode == 0, result.stderr
    reindexed = json.loads(result.stdout)["encoded"]
    wait_for(lambda: len(indexed_under(home, root)) == 45, "all 45 photos indexed", d)
    wait_for(lambda: d.encoded() + reindexed >= 40, "the units' log lines", d)
    d.wait_quiet()  # the daemon's own hints for these photos have been handled too
    assert d.encoded() + reindexed == 40
    assert vector_count(home) == 45
    assert set(photos(home).values()) == {"indexed"}


@pytest.mark.slow
def test_a_second_daemon_on_the_same_home_refuses_to_start(
    tmp_path: Path, env: dict[str, str], start: Callable[..., DaemonProcess]
) -> None:
    d = start()
    result = _cli(env, "daemon", timeout=30)
    assert result.returncode == 3
    assert f"a photoindex daemon already runs (pid {d.proc.pid})" in result.stderr


@pytest.mark.slow
def test_the_daemon_waits_for_another_writer_and_still_stops_promptly(
    tmp_path: Path, env: dict[str, str], start: Callable[..., DaemonProcess]
) -> None:
    from photoindex.catalog.writerlock import WriterLock

    home, root = empty_root(tmp_path, env)
    other = WriterLock(home / "writer.lock", "reindex")
    other.acquire()
    try:
        d = DaemonProcess(env, tmp_path / "waiting.log")
        try:
            wait_for(lambda: d.state().get("state") == "waiting for the writer lock", "the daemon to wait", d)
            assert f"pid {os.getpid()} (reindex)" in d.log()
            other.release()
            wait_for(lambda: d.state().get("state") == "idle", "the daemon to go on", d)
            photo = make_photo(root / "a.jpg", RED, seed=1)
            other.acquire()
            wait_for(lambda: d.state().get("state") == "waiting for the writer lock", "the daemon to wait again", d)
            code, _ = d.terminate(timeout=10.0)
            assert code == 0
        finally:
            d.kill()
    finally:
        other.release()
    d2 = start()  # whatever the stopped daemon had not done, the start-up scan does
    wait_for(lambda: photos(home).get(str(photo)) == "indexed", "the photo indexed after the restart", d2)


def test_log_lines_carry_a_journald_priority_under_systemd(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from photoindex.daemon.loop import configure_logging
    from photoindex.errors import ConfigError

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("info", {"JOURNAL_STREAM": "8:1234"})
        logging.getLogger("photoindex.daemon").warning("watch limit reached")
        logging.getLogger("photoindex.daemon").debug("not shown at INFO")
        configure_logging("DEBUG", {})
        logging.getLogger("photoindex.daemon").info("plain")
        with pytest.raises(ConfigError, match="log_level"):
            configure_logging("loud", {})
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "<4>watch limit reached"
    assert len(err) == 2 and err[1].endswith("INFO plain") and not err[1].startswith("<")


def test_a_failing_unit_of_work_is_logged_shown_in_status_and_retried(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import threading

    from photoindex.config import load_config
    from photoindex.daemon import loop as daemon_mod
    from photoindex.errors import CatalogError
    from photoindex.indexing.indexer import Indexer
    from photoindex.library import open_library
    from photoindex.status import daemon_status

    home = Path(env["PHOTOINDEX_HOME"])
    root = tmp_path / "photos"
    make_album(root, 2, RED, seed=5)
    config = load_config(environ=env)
    with open_library(config) as lib, lib.db.write() as s:
        from photoindex.catalog import writes as catalog

        catalog.add_root(s, str(root))
    monkeypatch.setattr(daemon_mod, "_ERROR_BACKOFF", (0.2, 1.0))
    real_run = Indexer.run
    calls: list[int] = []

    def flaky_run(self: Indexer, roots: Any, **kw: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise CatalogError(f"{home / 'photoindex.db'}: disk I/O error", "check the disk")
        return real_run(self, roots, **kw)

    monkeypatch.setattr(Indexer, "run", flaky_run)
    stop = threading.Event()
    result: list[int] = []
    caplog.set_level("INFO", logger="photoindex.daemon")
    thread = threading.Thread(target=lambda: result.append(daemon_mod.run_daemon(config, stop=stop)))
    thread.start()
    try:
        wait_for(lambda: len(indexed_under(home, root)) == 2, "the photos indexed by the retried rescan")
        assert "disk I/O error" in (daemon_status(config).last_error or "")
        assert "rescan of 1 root(s) failed" in caplog.text and "retry after an error" in caplog.text
    finally:
        stop.set()
        thread.join(timeout=10)
    assert result == [0]
    assert daemon_status(config).running is False


def test_the_status_file_takes_a_path_that_is_not_utf8(tmp_path: Path) -> None:
    from photoindex.daemon.loop import StateFile

    state = StateFile(tmp_path / "daemon.json")
    name = os.fsdecode(b"/photos/caf\xe9.jpg")  # a Latin-1 name: a lone surrogate in Python
    state.update(last_batch=f"indexed {name}", force=True)
    assert json.loads((tmp_path / "daemon.json").read_text())["last_batch"] == f"indexed {name}"


def test_the_text_model_is_not_fetched_ahead_of_a_query(
    tmp_path: Path, toy_bundle: Path, home_env: dict[str, str]
) -> None:
    # A bundle still to be downloaded (first start): getting ready fetches nothing, so a stop never waits on it.
    import socket

    from photoindex.config import load_config
    from photoindex.library import open_library

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.setblocking(False)
    bundle = tmp_path / "bundle"
    shutil.copytree(toy_bundle, bundle)
    manifest = bundle / "manifest.toml"
    text = next(p for p in bundle.iterdir() if p.suffix == ".onnx" and "text" in p.name)
    text.unlink()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/{text.name}"
    manifest.write_text(manifest.read_text().replace(f'name = "{text.name}"', f'name = "{text.name}"\nurl = "{url}"'))
    try:
        with open_library(load_config(environ={**home_env, "PHOTOINDEX_MODEL_BUNDLE": str(bundle)})) as lib:
            assert lib.bundle.missing()
            lib.ready_text_model()
            assert lib._text is None and not text.exists()
        with pytest.raises(BlockingIOError):
            server.accept()  # nobody asked the bundle's server for anything
    finally:
        server.close()
