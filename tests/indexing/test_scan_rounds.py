"""A scan is two sorted streams merged in constant memory, and work is done in bounded rounds.

The walk yields paths in the byte order SQLite sorts the catalog in; the indexer pages through
the catalog beside it and works in rounds of `WORK_ROUND` photos. These tests run the real
indexer with tiny rounds and pages, so a library of a few dozen photos crosses many boundaries,
and check the outcome is the one a single round gives.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from photoindex.catalog import writes as catalog
from photoindex.config import Config, ScanConfig
from photoindex.indexing import indexer
from photoindex.indexing.indexer import Indexer, Progress
from photoindex.library import open_library
from photoindex.photos.scanner import walk
from photoindex.testing.photos import make_photo, make_photo_tree


def _bytes(path: str) -> bytes:
    return os.fsencode(path)


def test_walk_yields_paths_in_byte_order(tmp_path: Path) -> None:
    """Files and folders interleave by byte order of the full path ("a-b.jpg" before the folder "a/", whose
    photos come before "a0.jpg"), non-UTF-8 names included: the order SQLite's BINARY collation gives."""
    names = ["a-b.jpg", "a/x.jpg", "a/b/y.jpg", "a0.jpg", "B.jpg", "b.jpg", "a/é.jpg", "z/a.jpg", "ab.jpg"]
    for name in names:
        make_photo(tmp_path / name, (200, 30, 30), (8, 8))
    odd = os.fsencode(str(tmp_path)) + b"/a/\xff-raw.jpg"
    with open(odd, "wb") as fh:
        fh.write((tmp_path / "b.jpg").read_bytes())
    found = [_bytes(f.path) for f in walk(tmp_path, ScanConfig())]
    assert found == sorted(found)
    assert len(found) == len(names) + 1
    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE t (p TEXT)")
    con.executemany("INSERT INTO t VALUES (CAST(? AS TEXT))", [(p,) for p in reversed(found)])
    con.text_factory = bytes
    assert [r[0] for r in con.execute("SELECT p FROM t ORDER BY p")] == found


@pytest.fixture
def small_rounds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rounds of 3 photos and catalog pages of 2 rows; returns the larger of each round's two lists (work to
    do, vanished rows), each bounded by WORK_ROUND."""
    monkeypatch.setattr(indexer, "WORK_ROUND", 3)
    monkeypatch.setattr(indexer._CatalogStream, "PAGE", 2)
    sizes: list[int] = []
    real = Indexer._work

    def counting(self: Indexer, todo: list[Any], vanished: list[Any], *, last: bool) -> None:
        sizes.append(max(len(todo), len(vanished)))
        real(self, todo, vanished, last=last)

    monkeypatch.setattr(Indexer, "_work", counting)
    return sizes


def _run(config: Config, events: list[Progress] | None = None) -> Any:
    with open_library(config) as lib:
        with lib.db.read() as s:
            roots = catalog.list_roots(s)
        return Indexer(lib, progress=(events.append if events is not None else None)).run(roots)


def _state(config: Config) -> list[tuple[str, str, str | None]]:
    con = sqlite3.connect(config.db_path)
    con.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
    try:
        return sorted(con.execute("SELECT path, status, content_hash FROM photos"))
    finally:
        con.close()


def test_many_rounds_reach_the_same_catalog_as_one(
    tmp_path: Path, config: Config, small_rounds: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """First index, then deletions, edits, additions and a renamed folder, all in rounds of 3 over pages of 2:
    every round stays within its bound, and the catalog ends as a one-round run leaves it (a second home)."""
    lib_dir = tmp_path / "lib"
    make_photo_tree(lib_dir, 20, folders=4)
    with open_library(config) as lib, lib.db.write() as s:
        catalog.add_root(s, lib_dir)
    events: list[Progress] = []
    first = _run(config, events)
    assert first.encoded == 20 and first.failed == 0 and not first.interrupted
    assert len(small_rounds) >= 7 and max(small_rounds) <= 3
    encoding = [e for e in events if e.stage == "encoding"]
    assert [e.done for e in encoding] == sorted(e.done for e in encoding) and encoding[-1].done == 20
    assert encoding[-1].total == 20 and any(e.total is None for e in encoding)  # known only in the last round

    photos = sorted(p for p in lib_dir.rglob("*") if p.is_file())
    photos[0].unlink()
    photos[5].unlink()
    make_photo(photos[7], (10, 240, 10), (96, 72), seed=99)  # same path, new content
    make_photo(lib_dir / "album-00" / "0-new.jpg", (240, 240, 10), (96, 72))
    shutil.move(lib_dir / "album-03", lib_dir / "moved-03")  # a renamed folder: its photos are relinked
    small_rounds.clear()
    second = _run(config)
    assert max(small_rounds) <= 3 and len(small_rounds) > 1
    assert second.failed == 0 and second.encoded == 2  # only the edited and the new photo
    moved = len(list((lib_dir / "moved-03").rglob("*.*")))
    assert second.moved + second.added - 1 == moved  # the new photo is the one real addition
    rows = _state(config)
    on_disk = {str(p) for p in lib_dir.rglob("*") if p.is_file()}
    assert {p for p, st, _ in rows if st == "indexed"} == on_disk
    assert {p for p, st, _ in rows if st == "missing"} <= {str(photos[0]), str(photos[5])}

    # The same library indexed from scratch in one round gives the same photos and contents.
    monkeypatch.setattr(indexer, "WORK_ROUND", 10_000)
    monkeypatch.setattr(indexer._CatalogStream, "PAGE", 2000)
    other = config.__class__(**{**config.__dict__, "home": tmp_path / "other-home"})
    with open_library(other) as lib, lib.db.write() as s:
        catalog.add_root(s, lib_dir)
    _run(other)
    live = lambda st: sorted((p, h) for p, s_, h in st if s_ == "indexed")  # noqa: E731
    assert live(_state(other)) == live(rows)


def test_a_stop_during_the_walk_keeps_earlier_rounds_and_judges_nothing_after(
    tmp_path: Path, config: Config, small_rounds: list[int]
) -> None:
    """Ctrl-C in the middle of a multi-round run: rounds done are committed, photos not reached yet are not
    marked missing, and the next run finishes the job."""
    lib_dir = tmp_path / "lib"
    make_photo_tree(lib_dir, 12, folders=3)
    with open_library(config) as lib, lib.db.write() as s:
        catalog.add_root(s, lib_dir)
    assert _run(config).encoded == 12
    for p in sorted(lib_dir.rglob("*.*"))[-4:]:
        p.unlink()  # vanished photos at the end of the walk
    for i in range(9):
        make_photo(lib_dir / f"0-new-{i}.jpg", (i * 20, 10, 200), (64, 48))  # new photos at its start
    with open_library(config) as lib:
        with lib.db.read() as s:
            roots = catalog.list_roots(s)
        run = Indexer(lib)

        def stop_after_first_round(event: Progress) -> None:
            if event.stage == "encoding" and event.done >= 3:
                run.stop.set()

        run.progress = stop_after_first_round
        report = run.run(roots)
    assert report.interrupted and 3 <= report.encoded < 9
    assert report.missing == 0  # the vanished ones lie after the point the walk reached
    statuses = {p: st for p, st, _ in _state(config)}
    assert sum(1 for st in statuses.values() if st == "missing") == 0
    final = _run(config)
    assert not final.interrupted and final.missing == 4
    assert report.encoded + final.encoded == 9


def test_a_move_found_across_rounds_keeps_the_rows_identity(
    tmp_path: Path, config: Config, small_rounds: list[int]
) -> None:
    """A folder renamed to a name earlier in the walk: its photos are linked at the new paths rounds before the
    old paths are passed; at the end the old rows move there (same ids and first_seen), nothing is left missing."""
    lib_dir = tmp_path / "lib"
    for i in range(5):
        make_photo(lib_dir / "zz" / f"p{i}.jpg", (i * 40, 200, 90), (64, 48))
    with open_library(config) as lib, lib.db.write() as s:
        catalog.add_root(s, lib_dir)
    assert _run(config).encoded == 5
    con = sqlite3.connect(config.db_path)
    before = dict(con.execute("SELECT substr(path, -6), id || ' ' || first_seen FROM photos").fetchall())
    shutil.move(lib_dir / "zz", lib_dir / "aa")
    report = _run(config)
    assert len(small_rounds) > 2  # the new paths really came rounds before the old ones
    assert (report.moved, report.added, report.missing, report.encoded) == (5, 0, 0, 0)
    rows = con.execute("SELECT path, status, substr(path, -6), id || ' ' || first_seen FROM photos").fetchall()
    con.close()
    assert all(status == "indexed" and "/aa/" in path for path, status, _, _ in rows) and len(rows) == 5
    assert {name: identity for _, _, name, identity in rows} == before
