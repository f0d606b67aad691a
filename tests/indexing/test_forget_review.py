"""Review of forgetting long-missing photos, folding late-found moves, the doctor's model-cache line and the
fsync helpers: real catalogs, real photos, the toy bundle. The defects this review found are fixed; their
tests stay as regression tests (a known defect would be marked xfail(strict=True) until fixed)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import backdate_missing, cli, sql
from typer.testing import CliRunner

from photoindex.catalog import writes as catalog
from photoindex.cli.app import app
from photoindex.config import Config, load_config
from photoindex.indexing import indexer
from photoindex.indexing.indexer import Indexer, Progress
from photoindex.library import open_library
from photoindex.testing import COLOURS
from photoindex.testing.photos import make_photo
from photoindex.vectors.index import VectorIndex

runner = CliRunner()


# ---------------------------------------------------------------- helpers








def missing_for(config: Config, path: Path, days: float) -> None:
    """Set one missing photo's updated_at to exactly `days` ago (naive UTC text, as SQLAlchemy stores it)."""
    when = datetime.now(timezone.utc) - timedelta(days=days)
    sql(config, "UPDATE photos SET updated_at = ? WHERE path = ?", when.strftime("%Y-%m-%d %H:%M:%S.%f"), str(path))


def statuses(config: Config) -> dict[str, str]:
    return dict(sql(config, "SELECT path, status FROM photos"))


def vector_count(config: Config) -> int:
    return int(sql(config, "SELECT count(*) FROM vectors")[0][0])


def index_file_vectors(config: Config) -> int:
    (path,) = (config.home / "index").glob("*.idx")
    return len(VectorIndex.load(path))


def on_disk(folder: Path) -> set[str]:
    return {str(p) for p in folder.rglob("*") if p.is_file()}


def live(config: Config) -> set[str]:
    return {p for p, st in statuses(config).items() if st == "indexed"}


def run(config: Config, *, stop_when: Any = None, dry_run: bool = False) -> indexer.IndexReport:
    """One reconciliation of every root by the real Indexer (stop_when(event) -> True sets its stop)."""
    with open_library(config) as lib:
        with lib.db.read() as s:
            roots = catalog.list_roots(s)
        ix = Indexer(lib)

        def progress(event: Progress) -> None:
            if stop_when is not None and stop_when(event):
                ix.stop.set()

        ix.progress = progress
        return ix.run(roots, dry_run=dry_run)


@pytest.fixture
def library(tmp_path: Path, config: Config) -> Path:
    """Four colours and a copy of red, indexed (4 vectors, 5 photos)."""
    root = tmp_path / "photos"
    for i, colour in enumerate(("red", "green", "blue", "yellow")):
        make_photo(root / f"{i}-{colour}.jpg", COLOURS[colour], (64, 48))
    shutil.copy(root / "0-red.jpg", root / "4-red-copy.jpg")
    assert cli("index", str(root))["encoded"] == 4
    return root


@pytest.fixture
def small_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rounds of 3 photos and catalog pages of 2 rows, so a few photos cross many round boundaries."""
    monkeypatch.setattr(indexer, "WORK_ROUND", 3)
    monkeypatch.setattr(indexer._CatalogStream, "PAGE", 2)


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


# ---------------------------------------------------------------- forgetting long-missing photos


def test_the_deadline_is_measured_in_utc_to_the_hour(library: Path, config: Config, far_timezone: None) -> None:
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
    assert vector_count(config) == 3 and index_file_vectors(config) == 3


def test_the_clock_restarts_when_a_photo_comes_back(library: Path, config: Config) -> None:
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


def test_a_long_missing_photo_back_in_the_forgetting_run_is_kept(library: Path, config: Config) -> None:
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
    assert report["forgotten"] == 0 and report["encoded"] == 0 and report["moved"] == 1
    assert live(config) == on_disk(library) and vector_count(config) == 4


def test_a_vector_shared_with_a_photo_on_an_unplugged_drive_is_kept(
    tmp_path: Path, config: Config
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
    assert back["encoded"] == 0 and live(config) == on_disk(disk) | on_disk(drive)


def test_a_one_photo_root_whose_file_is_gone_is_never_forgotten(tmp_path: Path, config: Config) -> None:
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


def test_dry_run_and_interrupted_runs_forget_nothing(
    library: Path, config: Config, monkeypatch: pytest.MonkeyPatch
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
    stopped = run(load_config(), stop_when=lambda e: e.stage == "encoding")
    assert stopped.interrupted and stopped.forgotten == 0
    assert statuses(config)[str(library / "1-green.jpg")] == "missing"
    assert vector_count(config) == 4 + stopped.encoded  # green's vector is still there
    final = cli("reindex")
    assert final["forgotten"] == 1 and live(config) == on_disk(library)


def test_forgetting_a_long_missing_photo_keeps_the_vectors_forget_root_kept_for_a_return(
    tmp_path: Path, config: Config
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


def test_a_root_folder_that_became_a_photo_file_is_not_there(tmp_path: Path, config: Config) -> None:
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


def test_when_every_photo_is_forgotten_the_index_is_empty_and_search_answers(tmp_path: Path, config: Config) -> None:
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
    assert vector_count(config) == 0 and index_file_vectors(config) == 0
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
    result = runner.invoke(app, ["reindex", "--json"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 0 or "forget_missing_after_days" in result.output


def test_adding_a_parent_folder_does_not_forget_an_unplugged_drives_photos(tmp_path: Path, config: Config) -> None:
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
        assert set(hits) == live(config) == on_disk(library)
        make_photo(library / "5-purple.jpg", (150, 40, 200), (64, 48))
        daemon._rescan(whole)
        assert len(daemon._index.index) == 4 and str(library / "5-purple.jpg") in served("purple")
        daemon._save_index(force=True)
    assert index_file_vectors(config) == vector_count(config) == 4


# ---------------------------------------------------------------- folding late-found moves


def _catalog_shape(config: Config, known_ids: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The photos (path, status, content), and the (id, first_seen) of the rows that existed before the run.

    Which of two rows of identical content ends at which path is arbitrary, in one round as in several.
    """
    rows = sorted(sql(config, "SELECT path, status, content_hash FROM photos"))
    kept = sorted(sql(config, "SELECT id, first_seen FROM photos WHERE id <= ?", known_ids))
    return rows, kept


def _other_home(config: Config, tmp_path: Path) -> Config:
    """A copy of the home (catalog and index) as it is now, to run the same change in one round."""
    shutil.copytree(config.home, tmp_path / "twin-home")
    return config.__class__(**{**config.__dict__, "home": tmp_path / "twin-home"})


def _counts(report: indexer.IndexReport) -> tuple[int, ...]:
    return (report.added, report.moved, report.missing, report.updated, report.encoded, report.forgotten)


def _in_rounds_and_at_once(config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> indexer.IndexReport:
    """Run the same change in rounds of 3 (pages of 2) and, on a twin home, in one round; both must agree."""
    twin = _other_home(config, tmp_path)
    known_ids = int(sql(config, "SELECT max(id) FROM photos")[0][0])
    monkeypatch.setattr(indexer, "WORK_ROUND", 3)
    monkeypatch.setattr(indexer._CatalogStream, "PAGE", 2)
    rounds: list[int] = []
    real = Indexer._work

    def counting(self: Indexer, todo: list[Any], vanished: list[Any], *, last: bool) -> None:
        rounds.append(len(todo) + len(vanished))
        real(self, todo, vanished, last=last)

    monkeypatch.setattr(Indexer, "_work", counting)
    in_rounds = run(config)
    assert len(rounds) > 1  # the case under test really spans rounds
    monkeypatch.setattr(indexer, "WORK_ROUND", 50_000)
    monkeypatch.setattr(indexer._CatalogStream, "PAGE", 2000)
    at_once = run(twin)
    assert _counts(in_rounds) == _counts(at_once)
    assert _catalog_shape(config, known_ids) == _catalog_shape(twin, known_ids)
    return in_rounds


def _tree(tmp_path: Path, config: Config) -> Path:
    """lib/mm holds red, green, blue; lib/zz holds a copy of red and a yellow: 4 contents, 5 photos."""
    lib_dir = tmp_path / "lib"
    for colour in ("red", "green", "blue"):
        make_photo(lib_dir / "mm" / f"{colour}.jpg", COLOURS[colour], (64, 48))
    (lib_dir / "zz").mkdir()
    shutil.copy(lib_dir / "mm" / "red.jpg", lib_dir / "zz" / "red-2.jpg")
    make_photo(lib_dir / "zz" / "yellow.jpg", COLOURS["yellow"], (64, 48))
    assert cli("index", str(lib_dir))["encoded"] == 4
    return lib_dir


def test_a_new_copy_and_an_unrelated_deletion_of_another_copy_fold_as_one_round_would(
    tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real copy of red early in the walk (with two more copies, to fill a round) and the deletion of another
    red copy late in it: folded into a move, exactly as one round links it (same rows, ids, counts); nothing is
    lost: every file on disk is indexed, no live row without a file, no vector gone, nothing encoded."""
    lib_dir = _tree(tmp_path, config)
    (lib_dir / "aa").mkdir()
    for colour in ("red", "green", "blue"):
        (lib_dir / "aa" / f"{colour}-new.jpg").write_bytes((lib_dir / "mm" / f"{colour}.jpg").read_bytes())
    (lib_dir / "zz" / "red-2.jpg").unlink()
    old_id = sql(config, "SELECT id FROM photos WHERE path LIKE '%red-2.jpg'")[0][0]
    report = _in_rounds_and_at_once(config, tmp_path, monkeypatch)
    assert (report.added, report.moved, report.missing, report.encoded) == (2, 1, 0, 0)
    assert live(config) == on_disk(lib_dir) and set(statuses(config).values()) == {"indexed"}
    assert sql(config, "SELECT path FROM photos WHERE id = ?", old_id) == [(str(lib_dir / "aa" / "red-new.jpg"),)]
    assert vector_count(config) == 4


def test_two_copies_moved_at_once_fold_into_their_two_rows(
    tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """zz (red twice, yellow) renamed to aa: three moves, no row added or left missing, the same three ids and
    first_seen dates, as one round gives."""
    lib_dir = _tree(tmp_path, config)
    shutil.copy(lib_dir / "mm" / "red.jpg", lib_dir / "zz" / "red-3.jpg")
    cli("reindex")  # zz: red-2, red-3 (the same content), yellow
    before = sql(config, "SELECT id, first_seen FROM photos WHERE path LIKE '%/zz/%' ORDER BY id")
    assert len(before) == 3
    shutil.move(lib_dir / "zz", lib_dir / "aa")
    report = _in_rounds_and_at_once(config, tmp_path, monkeypatch)
    assert (report.added, report.moved, report.missing, report.encoded) == (0, 3, 0, 0)
    assert sql(config, "SELECT id, first_seen FROM photos WHERE path LIKE '%/aa/%' ORDER BY id") == before
    assert live(config) == on_disk(lib_dir) and set(statuses(config).values()) == {"indexed"}


def test_a_row_missing_before_the_run_is_not_folded(config: Config) -> None:
    """merge_moved takes only a row that went missing at or after `missing_since` (the run's start): an older
    missing row with the same content is left alone, and the copy stays a row of its own."""
    t0 = datetime(2026, 1, 10, 12, 0, tzinfo=timezone.utc)
    base = config.home.parent / "somewhere"
    with open_library(config) as lib, lib.db.write() as s:
        root = catalog.add_root(s, str(base))
        for name in ("old.jpg", "copy.jpg"):
            catalog.store_indexed(
                s, root_id=root.id, path=str(base / name), size=10, mtime_ns=1, content_hash="h" * 64, info=None,
                now=t0 - timedelta(days=1),
            )
        old = catalog.get_photo(s, base / "old.jpg")
        assert old is not None
        catalog.mark_missing(s, [old.id], now=t0)
        assert not catalog.merge_moved(s, base / "copy.jpg", missing_since=t0 + timedelta(microseconds=1))
        assert not catalog.merge_moved(s, base / "old.jpg", missing_since=t0)  # not an indexed row
    assert sorted(sql(config, "SELECT path, status FROM photos")) == [
        (str(base / "copy.jpg"), "indexed"), (str(base / "old.jpg"), "missing")]
    with open_library(config) as lib, lib.db.write() as s:
        assert catalog.merge_moved(s, base / "copy.jpg", missing_since=t0)  # at the boundary: taken
    assert sql(config, "SELECT id, path, status FROM photos") == [(old.id, str(base / "copy.jpg"), "indexed")]


def _six(tmp_path: Path, config: Config) -> Path:
    lib_dir = tmp_path / "lib"
    for i in range(6):
        make_photo(lib_dir / "zz" / f"p{i}.jpg", (i * 40, 200 - i * 30, 90), (64, 48))
    assert cli("index", str(lib_dir))["encoded"] == 6
    return lib_dir


def test_an_interrupted_run_in_rounds_folds_nothing_and_loses_nothing(
    tmp_path: Path, config: Config, small_rounds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """zz renamed to aa and the run stopped in its second round (before the old paths are passed): no fold, no
    row marked missing; the next run finishes: every file indexed, nothing live without a file, nothing
    encoded; the photos linked before the stop keep new rows (their old rows stay missing: identity is lost,
    content is not), the rest are folded into moves."""
    lib_dir = _six(tmp_path, config)
    shutil.move(lib_dir / "zz", lib_dir / "aa")
    monkeypatch.setenv("PHOTOINDEX_INDEX_BATCH_SIZE", "1")
    stopped = run(load_config(), stop_when=lambda e: e.stage == "encoding" and e.done >= 4)
    assert stopped.interrupted and stopped.moved == 0 and stopped.missing == 0 and stopped.encoded == 0
    assert 3 <= stopped.added < 6 and "missing" not in statuses(config).values()
    final = run(config)
    assert not final.interrupted and final.encoded == 0 and final.moved == 6 - stopped.added
    assert live(config) == on_disk(lib_dir)
    assert {p for p, st in statuses(config).items() if st == "missing"} == {
        str(lib_dir / "zz" / f"p{i}.jpg") for i in range(stopped.added)
    }
    assert vector_count(config) == 6


def test_a_dry_run_in_rounds_changes_nothing(
    tmp_path: Path, config: Config, small_rounds: None
) -> None:
    """A dry run lists the whole change (no rounds of work, no fold): the catalog is untouched."""
    lib_dir = _six(tmp_path, config)
    shutil.move(lib_dir / "zz", lib_dir / "aa")
    before = sql(config, "SELECT * FROM photos ORDER BY id")
    report = run(config, dry_run=True)
    assert (report.added, report.missing, report.moved, report.forgotten) == (6, 6, 0, 0)
    assert len(report.planned) == 12
    assert sql(config, "SELECT * FROM photos ORDER BY id") == before


# ---------------------------------------------------------------- what a forget tells


def test_a_dry_run_shows_what_a_real_run_would_forget(library: Path, config: Config) -> None:
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


# ---------------------------------------------------------------- doctor: fast model copies


def _own_bundle(toy_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the toy bundle (its files may be touched), used by the home."""
    bundle = tmp_path / "bundle"
    shutil.copytree(toy_bundle, bundle)
    monkeypatch.setenv("PHOTOINDEX_MODEL_BUNDLE", str(bundle))
    return bundle


def test_doctor_sees_a_copy_go_stale_and_creates_no_cache_folder(
    home_env: dict[str, str], toy_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Doctor creates no cache folder; after indexing the image model's copy is ready; a model file rewritten
    (a new mtime) makes it "made at its first load" again, in the text and in `doctor --json`."""
    from photoindex.doctor import diagnose

    bundle = _own_bundle(toy_bundle, tmp_path, monkeypatch)
    cache = tmp_path / "model-cache"
    monkeypatch.setenv("PHOTOINDEX_RUNTIME_MODEL_CACHE", str(cache))
    cfg = load_config()
    assert diagnose(cfg).model_cache.ready == {"image_encoder.onnx": False, "text_encoder.onnx": False}
    assert not cache.exists()
    make_photo(tmp_path / "p" / "red.jpg", COLOURS["red"], (64, 48))
    assert cli("index", str(tmp_path / "p"))["encoded"] == 1
    assert diagnose(cfg).model_cache.ready["image_encoder.onnx"] is True
    image = bundle / "image_encoder.onnx"
    st = image.stat()
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    report = diagnose(cfg)
    assert report.model_cache.ready["image_encoder.onnx"] is False
    assert any("image_encoder.onnx made at its first load" in line for line in report.lines())
    result = runner.invoke(app, ["doctor", "--json"])
    data = json.loads(result.stdout)
    assert data["model_cache"] == {"directory": str(cache), "ready": {"image_encoder.onnx": False,
                                                                       "text_encoder.onnx": False}}


def test_doctor_survives_an_onnxruntime_that_cannot_be_imported(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An onnxruntime that cannot be imported (a broken wheel): doctor still reports, with no ready copies."""
    import sys

    from photoindex.doctor import diagnose

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    report = diagnose(config)
    assert report.onnxruntime_providers == []
    assert not any(report.model_cache.ready.values())


# ---------------------------------------------------------------- durable writes


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path os.fsync is called on (the real fsync still runs), in call order."""
    seen: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return seen


needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads fd paths from /proc")


@needs_proc
def test_the_index_file_and_its_folder_are_fsynced_in_that_order(tmp_path: Path, fsynced: list[str]) -> None:
    """VectorIndex.save: the temporary file is flushed before the rename, its folder after it."""
    index = VectorIndex.create(4, backend="numpy", approximate_threshold=1000)
    index.add(np.arange(1, 4, dtype=np.int64), np.eye(3, 4, dtype=np.float32))
    target = tmp_path / "x.idx"
    index.save(target)
    assert fsynced == [str(tmp_path / ".x.idx.tmp"), str(tmp_path)]
    assert len(VectorIndex.load(target)) == 3


@needs_proc
def test_a_catalog_backup_and_its_folder_are_fsynced(config: Config, fsynced: list[str]) -> None:
    """backup_database: the copy is flushed under its temporary name, then the folder after the rename."""
    from photoindex.catalog import db

    with open_library(config):
        pass
    fsynced.clear()
    target = db.backup_database(config.db_path, "rev1")
    tmp = str(target) + ".tmp"
    assert tmp in fsynced and fsynced[-1] == str(target.parent) and fsynced.index(tmp) < len(fsynced) - 1
    assert sqlite3.connect(target).execute("PRAGMA integrity_check").fetchone() == ("ok",)


@needs_proc
def test_a_downloaded_model_its_checksum_and_the_folder_are_fsynced(tmp_path: Path, fsynced: list[str]) -> None:
    """fetch_bundle from a folder, no upstream checksum: the part is flushed before its rename, the folder after
    it, and SHA256SUMS (trust on first use) is written durably too."""
    from photoindex.inference.bundle import resolve_bundle
    from photoindex.inference.download import fetch_bundle

    source = tmp_path / "source"
    source.mkdir()
    (source / "image.onnx").write_bytes(b"i" * 5000)
    (source / "text.onnx").write_bytes(b"t" * 3000)
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "manifest.toml").write_text(
        'name = "toy"\ntitle = "Toy"\nembedding_dim = 8\n[image]\nsize = 32\n[text]\ntokenizer = "clip-bpe"\n'
        'context_length = 77\n[[files]]\nrole = "image"\nname = "image.onnx"\n'
        '[[files]]\nrole = "text"\nname = "text.onnx"\n',
        encoding="utf-8",
    )
    bundle = resolve_bundle(str(folder), tmp_path / "models-home")
    fetch_bundle(bundle, str(source))
    where = str(bundle.directory)
    for name in ("image.onnx", "text.onnx"):
        part = f"{where}/{name}.part"
        assert part in fsynced and where in fsynced[fsynced.index(part) + 1:]
    sums = f"{where}/SHA256SUMS.tmp"
    assert sums in fsynced and fsynced[-1] == where
    assert (bundle.directory / "image.onnx").read_bytes() == b"i" * 5000


@needs_proc
def test_a_fast_model_copy_is_fsynced_with_its_folder(toy_bundle: Path, tmp_path: Path, fsynced: list[str]) -> None:
    """modelcache.make: the copy's three files are flushed before the rename, the cache folder after it."""
    import onnxruntime

    from photoindex.inference import modelcache

    cache = tmp_path / "cache"
    made = modelcache.make(toy_bundle / "text_encoder.onnx", cache, onnxruntime)
    assert made is not None and made.is_file()
    names = [Path(p).name for p in fsynced[:3]]
    assert names == [modelcache.MODEL, modelcache.DATA, modelcache.STAMP]
    assert all(Path(p).parent.name.startswith(".tmp-") for p in fsynced[:3])
    assert fsynced[3:] == [str(cache)]
