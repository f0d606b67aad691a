"""Photos gone for longer than `[index] forget_missing_after_days` are forgotten by a full scan, with the
vectors only they held; photos of an unplugged drive are kept however long it is away (the first tests on
both catalog back ends).

Real catalogs, real photos, the toy bundle; the daemon's rescans (its in-memory index, its log) forget the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from helpers import (
    backdate_missing,
    cli,
    index_file_vectors,
    index_roots,
    live_paths,
    on_both_backends,
    on_disk,
    sql,
    statuses,
    vector_count,
)
from typer.testing import CliRunner

from photoindex.catalog import writes as catalog
from photoindex.cli.app import app
from photoindex.config import Config, load_config
from photoindex.library import open_library
from photoindex.testing import COLOURS
from photoindex.testing.photos import make_photo


@pytest.fixture
def library(tmp_path: Path, config: Config) -> Path:
    """Four colours and a copy of red, indexed (4 vectors, 5 photos)."""
    root = tmp_path / "photos"
    for i, colour in enumerate(("red", "green", "blue", "yellow")):
        make_photo(root / f"{i}-{colour}.jpg", COLOURS[colour], (64, 48))
    shutil.copy(root / "0-red.jpg", root / "4-red-copy.jpg")  # the same content twice
    assert cli("index", str(root))["encoded"] == 4
    return root


def missing_for(config: Config, path: Path, days: float) -> None:
    """Set one missing photo's updated_at to exactly `days` ago (naive UTC text, as SQLAlchemy stores it)."""
    when = datetime.now(timezone.utc) - timedelta(days=days)
    sql(config, "UPDATE photos SET updated_at = ? WHERE path = ?", when.strftime("%Y-%m-%d %H:%M:%S.%f"), str(path))


@pytest.fixture
def far_timezone() -> Iterator[None]:
    """Local time 14 hours ahead of UTC: a local timestamp mixed with a UTC one is off by more than 0.1 day."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "KIR-14"  # POSIX spelling: needs no tz database
    time.tzset()
    try:
        assert time.localtime().tm_gmtoff == 14 * 3600
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def test_long_missing_photos_are_forgotten_with_their_vectors(
    backend_env: dict[str, str], backend: str, library: Path, config: Config
) -> None:
    (library / "1-green.jpg").unlink()
    (library / "0-red.jpg").unlink()  # its copy still holds the vector
    first = cli("reindex")
    assert first["missing"] == 2 and first["forgotten"] == 0
    backdate_missing(config, 29)
    assert cli("reindex")["forgotten"] == 0  # not yet
    backdate_missing(config, 2)
    report = cli("reindex")
    assert report["forgotten"] == 2 and report["encoded"] == 0
    assert sql(config, "SELECT count(*) FROM photos WHERE status = 'missing'") == [(0,)]
    assert sql(config, "SELECT count(*) FROM vectors") == [(3,)]  # green's went; red's stays for its copy
    if backend == "sqlite":  # PostgreSQL keeps no index file: pgvector searches the catalog
        assert index_file_vectors(config) == 3
    hits = cli("search", "green", "--limit", "5")
    assert all("green" not in h["path"] for h in hits) and any("red-copy" in h["path"] for h in hits)


def test_an_unplugged_drive_keeps_its_photos_and_they_come_back_without_encoding(
    backend_env: dict[str, str], library: Path, config: Config
) -> None:
    away = library.with_name("unplugged")
    library.rename(away)
    assert cli("reindex")["missing"] == 5
    backdate_missing(config, 400)
    assert cli("reindex")["forgotten"] == 0
    away.rename(library)
    back = cli("reindex")
    assert back["encoded"] == 0 and back["updated"] + back["moved"] == 5
    assert sql(config, "SELECT count(*) FROM photos WHERE status = 'indexed'") == [(5,)]


def test_zero_days_never_forgets(
    backend_env: dict[str, str], library: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHOTOINDEX_INDEX_FORGET_MISSING_AFTER_DAYS", "0")
    (library / "2-blue.jpg").unlink()
    cli("reindex")
    backdate_missing(config, 10_000)
    assert cli("reindex")["forgotten"] == 0
    assert sql(config, "SELECT count(*) FROM photos WHERE status = 'missing'") == [(1,)]


def test_forgetting_takes_vectors_out_of_the_index_without_a_rebuild(
    library: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The forgetting run knows the ids it deleted: it removes them from the open index (no rebuild from
    SQLite, which costs a minute at a million vectors), and the file it saves is current for every reader."""
    from photoindex.library import open_library
    from photoindex.vectors.cache import IndexHandle

    (library / "2-blue.jpg").unlink()
    cli("reindex")
    backdate_missing(config, 31)
    rebuilds: list[int] = []
    real = IndexHandle._empty
    with monkeypatch.context() as patch:
        patch.setattr(IndexHandle, "_empty", lambda self: rebuilds.append(1) or real(self))
        assert cli("reindex")["forgotten"] == 1
    assert rebuilds == []
    with open_library(config) as lib:
        handle = lib.open_index()
        assert handle.reason == "loaded" and not handle.dirty
        assert sorted(handle.index.ids().tolist()) == [i for (i,) in sql(config, "SELECT id FROM vectors ORDER BY id")]
    hits = cli("search", "blue", "--limit", "5")
    assert all("blue" not in h["path"] for h in hits)


@on_both_backends
def test_an_empty_root_folder_is_an_unplugged_drive_not_a_deletion(
    backend_env: dict[str, str], library: Path, config: Config
) -> None:
    """A root folder that is there but empty (the mount point of a drive that is not mounted) keeps its photos
    however long they are missing; once something is in it again, the clock applies."""
    for photo in list(library.iterdir()):
        photo.unlink()
    assert cli("reindex")["missing"] == 5
    backdate_missing(config, 400)
    assert cli("reindex")["forgotten"] == 0
    make_photo(library / "9-new.jpg", COLOURS["blue"], (64, 48), seed=5)
    assert cli("reindex")["forgotten"] == 5


# ---------------------------------------------------------------- forgetting long-missing photos


@on_both_backends
def test_the_deadline_is_measured_in_utc_to_the_hour(
    backend_env: dict[str, str], backend: str, library: Path, config: Config, far_timezone: None
) -> None:
    """With local time UTC+14, a photo missing 29.9 days is kept and one missing 30.1 days is forgotten: the
    cutoff and the stored times are both UTC (a local/UTC mix-up would move the boundary by 14 hours)."""
    (library / "1-green.jpg").unlink()
    (library / "2-blue.jpg").unlink()
    assert cli("reindex")["missing"] == 2
    missing_for(config, library / "1-green.jpg", 29.9)
    missing_for(config, library / "2-blue.jpg", 30.1)
    report = cli("reindex")
    assert report["forgotten"] == 1
    assert statuses(config).get(str(library / "1-green.jpg")) == "missing"
    assert str(library / "2-blue.jpg") not in statuses(config)
    assert vector_count(config) == 3
    if backend == "sqlite":  # PostgreSQL keeps no index file
        assert index_file_vectors(config) == 3


@on_both_backends
def test_the_clock_restarts_when_a_photo_comes_back(backend_env: dict[str, str], library: Path, config: Config) -> None:
    """Missing 29 days, back, gone again 2 days: 31 days in all but only 2 in a row, so it is kept."""
    green = library / "1-green.jpg"
    saved = green.read_bytes()
    green.unlink()
    cli("reindex")
    backdate_missing(config, 29)
    green.write_bytes(saved)
    back = cli("reindex")
    assert back["encoded"] == 0 and back["forgotten"] == 0 and statuses(config)[str(green)] == "indexed"
    green.unlink()
    cli("reindex")
    backdate_missing(config, 2)
    assert cli("reindex")["forgotten"] == 0
    assert statuses(config)[str(green)] == "missing"


@on_both_backends
def test_a_long_missing_photo_back_in_the_forgetting_run_is_kept(
    backend_env: dict[str, str], library: Path, config: Config
) -> None:
    """Missing 400 days and back (at its own path, and a second one under a new name) in the very run that
    would forget it: both are relinked first and nothing is forgotten or re-encoded."""
    green, blue = library / "1-green.jpg", library / "2-blue.jpg"
    kept = {green: green.read_bytes(), blue: blue.read_bytes()}
    green.unlink()
    blue.unlink()
    cli("reindex")
    backdate_missing(config, 400)
    green.write_bytes(kept[green])
    (library / "renamed-blue.jpg").write_bytes(kept[blue])
    report = cli("reindex")
    assert report["forgotten"] == 0 and report["encoded"] == 0 and report["moved"] == 1, json.dumps(report)
    assert live_paths(config) == on_disk(library) and vector_count(config) == 4


@on_both_backends
def test_a_vector_shared_with_a_photo_on_an_unplugged_drive_is_kept(
    backend_env: dict[str, str], tmp_path: Path, config: Config
) -> None:
    """The same photo on the internal disk and on a drive: deleted from the disk (and forgotten) while the drive
    is away, its vector stays for the drive's copy, which comes back without encoding."""
    disk, drive = tmp_path / "disk", tmp_path / "drive"
    make_photo(disk / "red.jpg", COLOURS["red"], (64, 48))
    make_photo(disk / "green.jpg", COLOURS["green"], (64, 48))
    drive.mkdir()
    shutil.copy(disk / "red.jpg", drive / "red.jpg")
    assert cli("index", str(disk), str(drive))["encoded"] == 2
    (disk / "red.jpg").unlink()
    away = tmp_path / "away"
    drive.rename(away)
    cli("reindex")
    backdate_missing(config, 100)
    report = cli("reindex")
    assert report["forgotten"] == 1  # the disk's red; the drive's waits
    assert vector_count(config) == 2
    away.rename(drive)
    back = cli("reindex")
    assert back["encoded"] == 0 and live_paths(config) == on_disk(disk) | on_disk(drive)


@on_both_backends
def test_a_one_photo_root_whose_file_is_gone_is_never_forgotten(
    backend_env: dict[str, str], tmp_path: Path, config: Config
) -> None:
    """A root that is a single file is not there once the file is gone: its photo waits, however long."""
    photo = make_photo(tmp_path / "single.jpg", COLOURS["blue"], (64, 48))
    assert cli("index", str(photo))["encoded"] == 1
    saved = photo.read_bytes()
    photo.unlink()
    cli("reindex")
    backdate_missing(config, 400)
    assert cli("reindex")["forgotten"] == 0
    assert statuses(config) == {str(photo): "missing"} and vector_count(config) == 1
    photo.write_bytes(saved)
    assert cli("reindex")["encoded"] == 0 and statuses(config) == {str(photo): "indexed"}


@on_both_backends
def test_dry_run_and_interrupted_runs_forget_nothing(
    backend_env: dict[str, str], library: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`reindex --dry-run` and a run stopped part-way leave long-missing photos and their vectors alone; the
    next complete run forgets them."""
    (library / "1-green.jpg").unlink()
    cli("reindex")
    backdate_missing(config, 100)
    before = sql(config, "SELECT id, path, status, updated_at FROM photos ORDER BY id")
    dry = cli("reindex", "--dry-run")
    assert dry["forgotten"] == 1  # what a real run would forget, listed, not done
    assert sql(config, "SELECT id, path, status, updated_at FROM photos ORDER BY id") == before
    for i in range(3):
        make_photo(library / f"new-{i}.jpg", (i * 60, 90, 200), (64, 48))
    monkeypatch.setenv("PHOTOINDEX_INDEX_BATCH_SIZE", "1")
    stopped = index_roots(load_config(), stop_when=lambda e: e.stage == "encoding")
    assert stopped.interrupted and stopped.forgotten == 0
    assert statuses(config)[str(library / "1-green.jpg")] == "missing"
    assert vector_count(config) == 4 + stopped.encoded  # green's vector is still there
    final = cli("reindex")
    assert final["forgotten"] == 1 and live_paths(config) == on_disk(library)


@on_both_backends
def test_forgetting_a_long_missing_photo_keeps_the_vectors_forget_root_kept_for_a_return(
    backend_env: dict[str, str], tmp_path: Path, config: Config
) -> None:
    """`forget ROOT` keeps the root's vectors "for a return"; forgetting one long-missing photo of another root
    should delete only the vector that photo held, so the root added back is relinked without encoding."""
    home, trip = tmp_path / "home-photos", tmp_path / "trip"
    make_photo(home / "red.jpg", COLOURS["red"], (64, 48))
    make_photo(home / "green.jpg", COLOURS["green"], (64, 48))
    make_photo(trip / "blue.jpg", COLOURS["blue"], (64, 48))
    make_photo(trip / "yellow.jpg", COLOURS["yellow"], (64, 48))
    assert cli("index", str(home), str(trip))["encoded"] == 4
    forgot = cli("forget", str(trip))
    assert forgot["photos"] == 2 and forgot["vectors_deleted"] == 0 and vector_count(config) == 4
    (home / "green.jpg").unlink()
    cli("reindex")
    backdate_missing(config, 31)
    assert cli("reindex")["forgotten"] == 1
    assert vector_count(config) == 3  # only green's vector went
    assert cli("index", str(trip))["encoded"] == 0


@on_both_backends
def test_a_root_folder_that_became_a_photo_file_is_not_there(
    backend_env: dict[str, str], tmp_path: Path, config: Config
) -> None:
    """A root folder replaced by a file is reported and "its photos come back if the folder returns": the root
    is not present, and its photos are not forgotten while the folder is away, even when the file is a photo."""
    root = tmp_path / "album.jpg"  # a folder whose name looks like a photo
    make_photo(root / "red.jpg", COLOURS["red"], (64, 48))
    make_photo(root / "green.jpg", COLOURS["green"], (64, 48))
    assert cli("index", str(root))["encoded"] == 2
    shutil.rmtree(root)
    make_photo(root, COLOURS["blue"], (64, 48))
    report = cli("reindex")
    assert report["missing"] == 2 and any("now a file" in w for w in report["warnings"])
    backdate_missing(config, 31)
    again = cli("reindex")
    assert again["forgotten"] == 0  # fails: 2 (the photos of the folder, with their vectors)
    assert sql(config, "SELECT present FROM roots") == [(0,)]


@on_both_backends
def test_when_every_photo_is_forgotten_the_index_is_empty_and_search_answers(
    backend_env: dict[str, str], backend: str, tmp_path: Path, config: Config
) -> None:
    """A folder emptied of photos for good: all its photos and every vector are forgotten, the saved index is empty and
    a search answers with no hits; a photo added later is encoded and found."""
    root = tmp_path / "gone"
    make_photo(root / "red.jpg", COLOURS["red"], (64, 48))
    make_photo(root / "green.jpg", COLOURS["green"], (64, 48))
    cli("index", str(root))
    for p in root.iterdir():
        p.unlink()
    (root / "notes.txt").write_text("not a photo")  # an empty root would be an unplugged drive's mount point
    cli("reindex")
    backdate_missing(config, 31)
    assert cli("reindex")["forgotten"] == 2
    assert vector_count(config) == 0
    if backend == "sqlite":  # PostgreSQL keeps no index file
        assert index_file_vectors(config) == 0
    assert cli("search", "red") == []
    make_photo(root / "blue.jpg", COLOURS["blue"], (64, 48))
    assert cli("reindex")["encoded"] == 1
    assert [h["path"] for h in cli("search", "blue", "--limit", "1")] == [str(root / "blue.jpg")]


@pytest.mark.parametrize("days", ["1e6", "inf", "nan"])
def test_a_huge_forget_setting_is_never_or_a_config_error(
    library: Path, config: Config, monkeypatch: pytest.MonkeyPatch, days: str
) -> None:
    """`forget_missing_after_days = 1e6` (or inf) reads as "never"; a value that is not a number of days is
    refused as a config error; either way no traceback at the end of a reindex."""
    monkeypatch.setenv("PHOTOINDEX_INDEX_FORGET_MISSING_AFTER_DAYS", days)
    (library / "1-green.jpg").unlink()
    result = CliRunner().invoke(app, ["reindex", "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 0 or "forget_missing_after_days" in result.output


@on_both_backends
def test_adding_a_parent_folder_does_not_forget_an_unplugged_drives_photos(
    backend_env: dict[str, str], tmp_path: Path, config: Config
) -> None:
    """docs/daemon.md: "an unplugged drive's photos wait for it". The drive's root is away for 40 days; the user
    then adds the folder above it as a root: the drive's photo is still kept for its return."""
    media = tmp_path / "media"
    make_photo(media / "drive" / "red.jpg", COLOURS["red"], (64, 48))
    make_photo(media / "other" / "green.jpg", COLOURS["green"], (64, 48))
    assert cli("index", str(media / "drive"))["encoded"] == 1
    (media / "drive").rename(tmp_path / "unplugged")
    cli("reindex")
    backdate_missing(config, 40)
    assert cli("reindex")["forgotten"] == 0
    report = cli("index", str(media))
    assert report["forgotten"] == 0
    assert statuses(config)[str(media / "drive" / "red.jpg")] == "missing"


# ---------------------------------------------------------------- the daemon's in-memory index


def test_the_daemons_index_follows_a_forget_in_memory(library: Path, config: Config) -> None:
    """The daemon's rescans (its own Indexer with its kept IndexHandle, no save): after a forget that deletes a
    vector the handle is rebuilt in memory (its ids are SQLite's), searches served from it never list the
    forgotten photo, later additions land in it, and the file it saves then matches SQLite."""
    from photoindex.daemon.loop import Daemon
    from photoindex.search.protocol import SearchRequest

    green = library / "1-green.jpg"
    green.unlink()
    (library / "0-red.jpg").unlink()  # shares its content with 4-red-copy.jpg: the vector stays
    stop = threading.Event()
    with open_library(config) as lib:
        daemon = Daemon(lib, stop)
        with lib.db.read() as s:
            daemon.roots = catalog.list_roots(s)
        whole = {r.path: {"review"} for r in daemon.roots}
        daemon._rescan(whole)
        assert daemon._index is not None and len(daemon._index.index) == 4
        backdate_missing(config, 31)
        daemon._rescan(whole)
        assert sql(config, "SELECT count(*) FROM photos WHERE status = 'missing'") == [(0,)]
        stored = sorted(i for (i,) in sql(config, "SELECT id FROM vectors"))
        assert len(stored) == 3 and sorted(daemon._index.index.ids().tolist()) == stored

        def served(text: str) -> list[str]:
            return [h.path for h in daemon.queries.search(SearchRequest.build(text=text, limit=10))]

        hits = served("green")
        assert str(green) not in hits and str(library / "0-red.jpg") not in hits
        assert set(hits) == live_paths(config) == on_disk(library)
        make_photo(library / "5-purple.jpg", (150, 40, 200), (64, 48))
        daemon._rescan(whole)
        assert len(daemon._index.index) == 4 and str(library / "5-purple.jpg") in served("purple")
        daemon._save_index(force=True)
    assert index_file_vectors(config) == vector_count(config) == 4


# ---------------------------------------------------------------- what a forget tells


@on_both_backends
def test_a_dry_run_shows_what_a_real_run_would_forget(
    backend_env: dict[str, str], library: Path, config: Config
) -> None:
    """The only irreversible change of a reindex (deleting rows and vectors) is previewed by its dry run."""
    (library / "1-green.jpg").unlink()
    cli("reindex")
    backdate_missing(config, 100)
    dry = cli("reindex", "--dry-run")
    assert dry["forgotten"] == 1 or any(str(library / "1-green.jpg") == p["path"] for p in dry["planned"])


def test_the_daemon_log_says_what_a_rescan_forgot(
    library: Path, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    """A daemon rescan that forgets a photo says so in its log line, as `reindex` prints "1 forgotten"."""
    from photoindex.daemon.loop import Daemon

    (library / "1-green.jpg").unlink()
    cli("reindex")
    backdate_missing(config, 31)
    with open_library(config) as lib:
        daemon = Daemon(lib, threading.Event())
        with lib.db.read() as s:
            daemon.roots = catalog.list_roots(s)
        with caplog.at_level("DEBUG", logger="photoindex"):
            daemon._rescan({r.path: {"review"} for r in daemon.roots})
    assert sql(config, "SELECT count(*) FROM photos") == [(4,)]  # it was forgotten
    assert any("forgotten" in r.getMessage() for r in caplog.records if r.getMessage().startswith("rescan of"))
