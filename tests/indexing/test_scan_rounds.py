"""A scan is two sorted streams merged in constant memory, and work is done in bounded rounds.

The walk yields paths in the byte order SQLite sorts the catalog in; the indexer pages through
the catalog beside it and works in rounds of `Rounds.work` photos. These tests run the real
indexer with tiny rounds and pages (`SMALL`: rounds of 3; `TINY`: rounds of 2; pages of 2 rows),
so a library of a dozen photos crosses many round and page boundaries. Outcomes are checked against the
disk (every candidate photo indexed with its content hash, nothing else live) and against a one-round run
on an identical library: moves and copies across rounds, dry runs, the daemon's unit of work, gone roots,
Ctrl-C and kill -9 between rounds, symlinks and excludes, and late-found moves folded into rows.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from helpers import cli, index_roots, live_paths, on_disk, sql, statuses, vector_count

from photoindex.catalog import writes as catalog
from photoindex.config import Config, ScanConfig, load_config
from photoindex.indexing import indexer
from photoindex.indexing.indexer import Indexer, IndexReport, Progress, Rounds
from photoindex.library import open_library
from photoindex.photos.scanner import content_hash, walk
from photoindex.testing import COLOURS
from photoindex.testing.photos import make_photo, make_photo_tree

# ---------------------------------------------------------------- helpers


ONE = Rounds()  # the indexer's own: every library here is done in one round
TINY = Rounds(work=2, page=2)  # rounds of 2 photos (or vanished rows), catalog pages of 2 rows
SMALL = Rounds(work=3, page=2)


@pytest.fixture
def small_rounds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The larger of each round's two lists (work to do, vanished rows) of the runs in the test (with `SMALL`
    rounds, each bounded by 3)."""
    sizes: list[int] = []
    real = Indexer._work

    def counting(self: Indexer, todo: list[Any], vanished: list[Any], *, last: bool) -> None:
        sizes.append(max(len(todo), len(vanished)))
        real(self, todo, vanished, last=last)

    monkeypatch.setattr(Indexer, "_work", counting)
    return sizes


def _home(config: Config, home: Path, **scan: Any) -> Config:
    """The same configuration with another home (and optionally other [scan] values)."""
    return dataclasses.replace(config, home=home, scan=dataclasses.replace(config.scan, **scan))


def _add_root(config: Config, path: Path) -> None:
    with open_library(config) as lib, lib.db.write() as s:
        catalog.add_root(s, path)



def _run(
    config: Config,
    *,
    dry_run: bool = False,
    stop_after: int = 0,
    events: list[Progress] | None = None,
    rounds: Rounds = ONE,
) -> IndexReport:
    """A full run over every root; with `stop_after`, Ctrl-C (Indexer.stop) at that many progress events."""
    seen: list[Progress] = [] if events is None else events
    stop_when = (lambda event: len(seen) >= stop_after) if stop_after else None
    return index_roots(config, dry_run=dry_run, stop_when=stop_when, events=seen, rounds=rounds)


def _run_paths(config: Config, paths: list[Path], *, rounds: Rounds = ONE) -> IndexReport:
    """The daemon's unit of work."""
    with open_library(config) as lib:
        return Indexer(lib, rounds=rounds).run_paths([str(p) for p in paths])


def _rows(config: Config) -> dict[str, tuple[str, str | None]]:
    """path -> (status, content hash) of every catalog row, read with plain sqlite3."""
    con = sqlite3.connect(config.db_path)
    con.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
    try:
        return {p: (st, h) for p, st, h in con.execute("SELECT path, status, content_hash FROM photos")}
    finally:
        con.close()


def _live(config: Config) -> dict[str, str | None]:
    return {p: h for p, (st, h) in _rows(config).items() if st == "indexed"}


def _not_live(config: Config, base: Path) -> dict[str, str]:
    return {os.path.relpath(p, base): st for p, (st, _) in _rows(config).items() if st != "indexed"}


def _disk(folder: Path, scan: ScanConfig | None = None) -> dict[str, str]:
    """Every candidate photo under `folder` and the hash of its bytes: what the catalog must hold live."""
    return {f.path: content_hash(f.path) for f in walk(folder, scan or ScanConfig())}


def _photo(path: Path, seed: int) -> Path:
    return make_photo(path, (30 + seed * 37 % 200, 90 + seed % 5 * 20, 160), (40, 30), seed=seed)


def _raw(folder: Path, name: bytes, seed: int) -> Path:
    """A photo whose path has exactly these bytes below `folder` (non-UTF-8 allowed)."""
    full = os.fsencode(str(folder)) + b"/" + name
    os.makedirs(os.path.dirname(full), exist_ok=True)
    return _photo(Path(os.fsdecode(full)), seed)


def _bytes(path: str) -> bytes:
    return os.fsencode(path)


def _state(config: Config) -> list[tuple[str, str, str | None]]:
    con = sqlite3.connect(config.db_path)
    con.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
    try:
        return sorted(con.execute("SELECT path, status, content_hash FROM photos"))
    finally:
        con.close()


# ---------------------------------------------------------------- byte order, bounded rounds


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
    first = _run(config, events=events, rounds=SMALL)
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
    second = _run(config, rounds=SMALL)
    assert max(small_rounds) <= 3 and len(small_rounds) > 1
    assert second.failed == 0 and second.encoded == 2  # only the edited and the new photo
    moved = len(list((lib_dir / "moved-03").rglob("*.*")))
    assert second.moved + second.added - 1 == moved  # the new photo is the one real addition
    rows = _state(config)
    on_disk = {str(p) for p in lib_dir.rglob("*") if p.is_file()}
    assert {p for p, st, _ in rows if st == "indexed"} == on_disk
    assert {p for p, st, _ in rows if st == "missing"} <= {str(photos[0]), str(photos[5])}

    # The same library indexed from scratch in one round gives the same photos and contents.
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
    assert _run(config, rounds=SMALL).encoded == 12
    for p in sorted(lib_dir.rglob("*.*"))[-4:]:
        p.unlink()  # vanished photos at the end of the walk
    for i in range(9):
        make_photo(lib_dir / f"0-new-{i}.jpg", (i * 20, 10, 200), (64, 48))  # new photos at its start
    with open_library(config) as lib:
        with lib.db.read() as s:
            roots = catalog.list_roots(s)
        run = Indexer(lib, rounds=SMALL)

        def stop_after_first_round(event: Progress) -> None:
            if event.stage == "encoding" and event.done >= 3:
                run.stop.set()

        run.progress = stop_after_first_round
        report = run.run(roots)
    assert report.interrupted and 3 <= report.encoded < 9
    assert report.missing == 0  # the vanished ones lie after the point the walk reached
    statuses = {p: st for p, st, _ in _state(config)}
    assert sum(1 for st in statuses.values() if st == "missing") == 0
    final = _run(config, rounds=SMALL)
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
    assert _run(config, rounds=SMALL).encoded == 5
    con = sqlite3.connect(config.db_path)
    before = dict(con.execute("SELECT substr(path, -6), id || ' ' || first_seen FROM photos").fetchall())
    shutil.move(lib_dir / "zz", lib_dir / "aa")
    report = _run(config, rounds=SMALL)
    assert len(small_rounds) > 2  # the new paths really came rounds before the old ones
    assert (report.moved, report.added, report.missing, report.encoded) == (5, 0, 0, 0)
    rows = con.execute("SELECT path, status, substr(path, -6), id || ' ' || first_seen FROM photos").fetchall()
    con.close()
    assert all(status == "indexed" and "/aa/" in path for path, status, _, _ in rows) and len(rows) == 5
    assert {name: identity for _, _, name, identity in rows} == before


# ---------------------------------------------------------------- names whose order is tricky


# Byte order and str order disagree for U+E000..U+FFFF / astral characters against escaped non-UTF-8 bytes;
# '-', '.', ' ', '0' sit around '/'; NFC and NFD spellings are different names; case matters.
_ODD = [
    "a-b.jpg", "a.jpg", "a/x.jpg", "a/0/z.jpg", "a b/y.jpg", "a./w.jpg", "a0.jpg", "A/q.jpg", "Z.jpg", "z.jpg",
    "\u00e9/n.jpg", "e\u0301/n.jpg", "caf\u00e9.jpg", "cafe\u0301.jpg", "x-/1.jpg", "x/1.jpg", "x.0/1.jpg",
    "\U0001f600.jpg", "\uff21/fw.jpg", "\ue000.jpg", "m/n/o/p.jpg", "m/n-o.jpg", "m/n.o.jpg", "m0.jpg",
]
_ODD_RAW = [b"\xff.jpg", b"a/\xe9-raw.jpg", b"\x80dir/\xfe.jpg", b"a-\xc3.jpg", b"\xf0\x9f.jpg"]


def _odd_library(lib: Path) -> None:
    for i, name in enumerate(_ODD):
        _photo(lib / name, i)
    for i, raw in enumerate(_ODD_RAW):
        _raw(lib, raw, 100 + i)


def _mutate_odd_library(lib: Path) -> None:
    """Deletions, a file that became a folder and a folder that became a file, an edit, moves to later names."""
    (lib / "a.jpg").unlink()
    _photo(lib / "a.jpg" / "inner.jpg", 300)  # a file replaced by a folder of the same name
    shutil.rmtree(lib / "m")
    _photo(lib / "m.png", 301)
    (lib / "m").write_bytes(b"not a photo")  # a folder replaced by a file (not a candidate)
    _photo(lib / "z.jpg", 302)  # same path, new content
    shutil.move(lib / "x", lib / "xx")  # a move to a later name: vanished before found again
    shutil.move(lib / "\u00e9", lib / "\u00e9\u00e9")
    os.unlink(os.fsencode(str(lib)) + b"/\xff.jpg")


@pytest.mark.slow
def test_odd_names_in_tiny_rounds_match_the_disk_and_a_one_round_run(
    tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Non-UTF-8, NFC/NFD, case, '-', '.', ' ', '0', emoji and private-use names, in rounds of 2 over pages of 2:
    the first run indexes exactly the disk, a second changes nothing (the walk and the catalog agree on the
    order, else rows would be judged vanished and re-added), and after deletions, a file<->folder swap, an edit
    and moves the catalog is the disk and what one round makes of an identical library."""
    lib = tmp_path / "lib"
    _odd_library(lib)
    _add_root(config, lib)
    first = _run(config, rounds=TINY)
    assert (first.added, first.failed, first.missing) == (len(_ODD) + len(_ODD_RAW), 0, 0)
    assert _live(config) == _disk(lib)
    again = _run(config, rounds=TINY)
    assert (again.unchanged, again.added, again.updated, again.missing) == (len(_ODD) + len(_ODD_RAW), 0, 0, 0)

    _mutate_odd_library(lib)
    third = _run(config, rounds=TINY)
    # New: a.jpg/inner.jpg and m.png; edited: z.jpg; moved (to later names): x/1.jpg and \u00e9/n.jpg; gone: a.jpg,
    # the three photos of m/ and the non-UTF-8 \xff.jpg.
    counts = (third.added, third.updated, third.moved, third.missing, third.encoded, third.reused, third.failed)
    assert counts == (2, 1, 2, 5, 3, 2, 0)
    assert _live(config) == _disk(lib)
    # The same library indexed in one round by another home.
    other = _home(config, tmp_path / "home-one-round")
    _add_root(other, lib)
    _run(other)
    assert _live(other) == _live(config)


# ---------------------------------------------------------------- moves across round boundaries


def _moved_library(tmp_path: Path, config: Config, name: str, *, rounds: Rounds = ONE) -> tuple[Path, Config]:
    """A library with 4 photos in zz/ (a second one gets its own home), indexed; then zz/ is renamed `name`."""
    lib = tmp_path / f"lib-{name}"
    for i in range(4):
        _photo(lib / "zz" / f"p{i}.jpg", i)
    cfg = _home(config, tmp_path / f"home-{name}")
    _add_root(cfg, lib)
    assert _run(cfg, rounds=rounds).encoded == 4
    shutil.move(lib / "zz", lib / name)
    return lib, cfg


def test_a_move_to_a_later_name_across_rounds_is_relinked(tmp_path: Path, config: Config) -> None:
    """zz/ renamed zzz/: the old rows vanish in early rounds and are marked missing, so the new paths (later
    rounds) are hashed and take over those rows: moved, nothing encoded, nothing left missing."""
    lib, cfg = _moved_library(tmp_path, config, "zzz", rounds=TINY)
    report = _run(cfg, rounds=TINY)
    assert (report.moved, report.added, report.missing, report.encoded) == (4, 0, 0, 0)
    assert _not_live(cfg, lib) == {} and _live(cfg) == _disk(lib)


def test_a_move_to_an_earlier_name_across_rounds_is_relinked_like_in_one_round(
    tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """zz/ renamed aa/ (ahead of zz/ in the walk): in one round the four photos are moved rows; in rounds of 2
    the same must hold, not four additions plus four leftover missing rows (counted as both added and missing)."""
    lib1, cfg1 = _moved_library(tmp_path, config, "aa")
    single = _run(cfg1)  # in one round
    assert (single.moved, single.added, single.missing, single.encoded) == (4, 0, 0, 0)
    assert _not_live(cfg1, lib1) == {}

    lib2, cfg2 = _moved_library(tmp_path / "b", config, "aa", rounds=TINY)
    rounds = _run(cfg2, rounds=TINY)
    assert rounds.encoded == 0 and _live(cfg2) == _disk(lib2)  # vectors are reused either way
    assert (rounds.moved, rounds.added, rounds.missing) == (4, 0, 0)
    assert _not_live(cfg2, lib2) == {}


# ---------------------------------------------------------------- copies, dry runs, the daemon's unit


def test_copies_across_rounds_are_encoded_once_and_a_dry_run_writes_nothing(
    tmp_path: Path, config: Config
) -> None:
    """Seven copies of one photo in seven folders (four rounds) encode one vector; a dry run over pending
    moves writes neither the catalog nor the index file, and plans exactly what the real run then does."""
    lib = tmp_path / "lib"
    source = _photo(tmp_path / "source.jpg", 1)
    for i in range(7):
        (lib / f"f{i}").mkdir(parents=True)
        shutil.copy(source, lib / f"f{i}" / "same.jpg")
    _photo(lib / "f3" / "other.jpg", 2)
    _add_root(config, lib)
    first = _run(config, rounds=TINY)
    assert (first.added, first.encoded, first.reused) == (8, 2, 6)
    assert _live(config) == _disk(lib)

    for i in range(7):  # each copy moves to another folder and name
        shutil.move(lib / f"f{i}" / "same.jpg", lib / f"f{6 - i}" / "same2.jpg")
    (lib / "f3" / "other.jpg").unlink()
    with open_library(config) as opened:
        index_file = opened.index_path()
    stamp = lambda p: (p.stat().st_mtime_ns, p.stat().st_size) if p.exists() else None  # noqa: E731
    files = [config.db_path, Path(f"{config.db_path}-wal"), index_file]
    before = (_rows(config), [stamp(p) for p in files])
    dry = _run(config, dry_run=True, rounds=TINY)
    assert (_rows(config), [stamp(p) for p in files]) == before
    planned = sorted((c.action, os.path.relpath(c.path, lib)) for c in dry.planned)
    # The dry run reports the moves the real run makes (issue 11 item 10), not add + missing.
    assert planned == sorted([("move", f"f{i}/same2.jpg") for i in range(7)] + [("missing", "f3/other.jpg")])
    assert (dry.moved, dry.added, dry.missing) == (7, 0, 1)
    real = _run(config, rounds=TINY)
    assert (real.moved, real.added, real.missing, real.encoded) == (7, 0, 1, 0)
    assert _live(config) == _disk(lib) and _not_live(config, lib) == {"f3/other.jpg": "missing"}
    again = _run(config, rounds=TINY)  # an already missing photo is not counted again
    assert (again.missing, again.unchanged, again.added, again.updated) == (0, 7, 0, 0)


def test_the_daemon_unit_with_overlapping_paths_counts_each_photo_once(
    tmp_path: Path, config: Config
) -> None:
    """run_paths with a folder, a file inside it, a gone file, a path outside every root and a file of another
    folder: each photo is added once; then a file replaced by a folder of the same name and a deleted folder,
    given as paths, are reconciled like a full run would (which then finds nothing left to do)."""
    lib = tmp_path / "lib"
    for i in range(4):
        _photo(lib / "a" / f"p{i}.jpg", i)
        _photo(lib / "b" / f"p{i}.jpg", 10 + i)
    _add_root(config, lib)
    first = _run_paths(
        config, [lib / "a", lib / "a" / "p1.jpg", lib / "a" / "p9.jpg", lib / "b" / "p0.jpg", tmp_path], rounds=TINY
    )
    assert (first.added, first.encoded, first.unchanged, first.missing) == (5, 5, 0, 0)
    assert sorted(os.path.relpath(p, lib) for p in _live(config)) == [*(f"a/p{i}.jpg" for i in range(4)), "b/p0.jpg"]
    overlap = _run_paths(config, [lib / "b", lib / "b" / "p0.jpg", lib / "b" / "p1.jpg", lib], rounds=TINY)
    assert (overlap.added, overlap.unchanged, overlap.missing) == (3, 5, 0)

    (lib / "a" / "p1.jpg").unlink()
    _photo(lib / "a" / "p1.jpg" / "in.jpg", 50)
    shutil.rmtree(lib / "b")
    swap = _run_paths(config, [lib / "a" / "p1.jpg", lib / "b"], rounds=TINY)
    assert (swap.added, swap.missing, swap.encoded) == (1, 5, 1)
    assert _live(config) == _disk(lib)
    full = _run(config, rounds=TINY)
    assert (full.added, full.updated, full.missing, full.unchanged) == (0, 0, 0, 4)


def test_a_gone_root_is_marked_missing_and_comes_back_without_encoding(
    tmp_path: Path, config: Config
) -> None:
    """A root folder that disappeared: its photos go missing (one warning), another root is untouched, and when
    the folder returns the photos are restored without encoding."""
    lib, kept = tmp_path / "lib", tmp_path / "kept"
    for i in range(3):
        _photo(lib / "d" / f"p{i}.jpg", i)
        _photo(kept / f"k{i}.jpg", 10 + i)
    _add_root(config, lib)
    _add_root(config, kept)
    assert _run(config, rounds=TINY).encoded == 6
    shutil.move(lib, tmp_path / "away")
    gone = _run(config, rounds=TINY)
    assert gone.missing == 3 and gone.unchanged == 3 and len(gone.warnings) == 1 and str(lib) in gone.warnings[0]
    assert set(_not_live(config, tmp_path).values()) == {"missing"} and len(_live(config)) == 3
    shutil.move(tmp_path / "away", lib)
    back = _run(config, rounds=TINY)
    assert (back.updated, back.encoded, back.missing) == (3, 0, 0)
    assert _live(config) == {**_disk(lib), **_disk(kept)}


# ---------------------------------------------------------------- interruptions


def _interrupted_library(lib: Path, cfg: Config, *, rounds: Rounds = ONE) -> None:
    """4 photos in m/ and one in z/, indexed; then m/ renamed n/, z/gone.jpg deleted, 3 new photos in a/."""
    for i in range(4):
        _photo(lib / "m" / f"p{i}.jpg", i)
    _photo(lib / "z" / "gone.jpg", 9)
    _add_root(cfg, lib)
    assert _run(cfg, rounds=rounds).encoded == 5
    shutil.move(lib / "m", lib / "n")
    (lib / "z" / "gone.jpg").unlink()
    for i in range(3):
        _photo(lib / "a" / f"new{i}.jpg", 20 + i)


@pytest.mark.parametrize("stop_after", [1, 3, 5])
def test_ctrl_c_at_any_point_of_a_multi_round_run_is_repaired_by_the_next(
    tmp_path: Path, config: Config, stop_after: int
) -> None:
    """Indexer.stop after the n-th progress event (hashing or encoding, in any round): what was done stays, no
    photo on disk is missing, and the next run ends with the disk indexed, the moved photos relinked, only the
    deleted one missing, and the three new photos encoded once over both runs."""
    lib = tmp_path / "lib"
    _interrupted_library(lib, config, rounds=TINY)
    events: list[Progress] = []
    cut = _run(config, stop_after=stop_after, events=events, rounds=TINY)
    assert cut.interrupted and len(events) <= stop_after + 1  # no further round starts (one closing event)
    on_disk = set(_disk(lib))
    assert not {p for p, (st, _) in _rows(config).items() if st == "missing"} & on_disk
    final = _run(config, rounds=TINY)
    assert not final.interrupted and cut.encoded + final.encoded == 3
    assert cut.moved + final.moved == 4 and cut.added + final.added == 3
    assert _live(config) == _disk(lib) and _not_live(config, lib) == {"z/gone.jpg": "missing"}


_KILL_ME = textwrap.dedent(
    """
    import os, signal, sys
    from photoindex.catalog import writes as catalog
    from photoindex.indexing import indexer
    from photoindex.config import load_config
    from photoindex.library import open_library

    events = []

    def progress(event):
        events.append(event)
        if len(events) >= int(sys.argv[1]):
            os.kill(os.getpid(), signal.SIGKILL)

    with open_library(load_config()) as lib:
        with lib.db.read() as s:
            roots = catalog.list_roots(s)
        indexer.Indexer(lib, progress=progress, rounds=indexer.Rounds(work=2, page=2)).run(roots)
    """
)


def test_kill_9_between_rounds_is_repaired_by_the_next_run(tmp_path: Path, config: Config) -> None:
    """SIGKILL of a real indexing process after its first rounds committed: the next run converges to the disk,
    relinks the moved photos and encodes nothing twice."""
    lib = tmp_path / "lib"
    _interrupted_library(lib, config, rounds=TINY)
    proc = subprocess.run([sys.executable, "-c", _KILL_ME, "3"], env=os.environ, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    done = {os.path.relpath(p, lib) for p in _live(config)}
    assert "a/new0.jpg" in done  # the first rounds were committed before the kill
    final = _run(config, rounds=TINY)
    assert final.encoded == 3 - sum(1 for p in done if p.startswith("a/"))
    assert _live(config) == _disk(lib) and _not_live(config, lib) == {"z/gone.jpg": "missing"}


# ---------------------------------------------------------------- symlinks and excludes


def test_a_symlink_loop_and_a_hidden_folder_are_walked_once_and_skipped(
    tmp_path: Path, config: Config
) -> None:
    """A link to the root inside it (a loop) adds nothing; a hidden folder's photos are not indexed; turning
    include_hidden off again marks them missing, and the photos outside it stay indexed."""
    lib = tmp_path / "lib"
    for i in range(3):
        _photo(lib / "d" / f"p{i}.jpg", i)
    _photo(lib / ".hidden" / "h.jpg", 5)
    (lib / "d" / "loop").symlink_to(lib)
    (lib / "d-loop").symlink_to(lib / "d")
    _add_root(config, lib)
    visible = _run(config, rounds=TINY)
    assert visible.added == 3 and _live(config) == _disk(lib)
    hidden = _home(config, config.home, include_hidden=True)
    assert _run(hidden, rounds=TINY).added == 1 and len(_live(config)) == 4
    after = _run(config, rounds=TINY)
    assert after.missing == 1 and _not_live(config, lib) == {".hidden/h.jpg": "missing"}
    assert len({os.path.relpath(p, lib).split("/")[0] for p in _live(config)}) == 1  # d/ or d-loop/, once


def test_a_photo_hint_inside_an_excluded_folder_is_not_indexed(tmp_path: Path, config: Config) -> None:
    """exclude = ["skip"]: a full run leaves lib/skip/x.jpg out; the daemon's run_paths on that file must too,
    else the photo flips between indexed (each hint) and missing (each full run)."""
    cfg = _home(config, config.home, exclude=("skip",))
    lib = tmp_path / "lib"
    _photo(lib / "keep" / "k.jpg", 1)
    _photo(lib / "skip" / "x.jpg", 2)
    _add_root(cfg, lib)
    assert _run(cfg).added == 1
    hint = _run_paths(cfg, [lib / "skip" / "x.jpg"])
    assert hint.added == 0 and _live(cfg) == _disk(lib, cfg.scan)


def test_a_root_whose_folder_became_a_file_is_reported_like_a_gone_folder(
    tmp_path: Path, config: Config
) -> None:
    """The photos are marked missing (that part holds), and the run says why, as for a deleted folder."""
    lib = tmp_path / "lib"
    for i in range(3):
        _photo(lib / f"p{i}.jpg", i)
    _add_root(config, lib)
    assert _run(config, rounds=TINY).added == 3
    shutil.rmtree(lib)
    lib.write_bytes(b"a file now")
    report = _run(config, rounds=TINY)
    assert report.missing == 3 and _live(config) == {}
    with open_library(config) as opened, opened.db.read() as s:
        (root,) = catalog.list_roots(s)
    assert report.warnings and not root.present

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
    rounds: list[int] = []
    real = Indexer._work

    def counting(self: Indexer, todo: list[Any], vanished: list[Any], *, last: bool) -> None:
        rounds.append(len(todo) + len(vanished))
        real(self, todo, vanished, last=last)

    monkeypatch.setattr(Indexer, "_work", counting)
    in_rounds = _run(config, rounds=SMALL)
    assert len(rounds) > 1  # the case under test really spans rounds
    at_once = _run(twin)
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
    assert live_paths(config) == on_disk(lib_dir) and set(statuses(config).values()) == {"indexed"}
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
    assert live_paths(config) == on_disk(lib_dir) and set(statuses(config).values()) == {"indexed"}


def _six(tmp_path: Path, config: Config) -> Path:
    lib_dir = tmp_path / "lib"
    for i in range(6):
        make_photo(lib_dir / "zz" / f"p{i}.jpg", (i * 40, 200 - i * 30, 90), (64, 48))
    assert cli("index", str(lib_dir))["encoded"] == 6
    return lib_dir


def test_an_interrupted_run_in_rounds_folds_nothing_and_loses_nothing(
    tmp_path: Path, config: Config, small_rounds: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """zz renamed to aa and the run stopped in its second round (before the old paths are passed): no fold, no
    row marked missing; the next run finishes: every file indexed, nothing live without a file, nothing
    encoded; the photos linked before the stop keep new rows (their old rows stay missing: identity is lost,
    content is not), the rest are folded into moves."""
    lib_dir = _six(tmp_path, config)
    shutil.move(lib_dir / "zz", lib_dir / "aa")
    monkeypatch.setenv("PHOTOINDEX_INDEX_BATCH_SIZE", "1")
    stopped = index_roots(load_config(), stop_when=lambda e: e.stage == "encoding" and e.done >= 4, rounds=SMALL)
    assert stopped.interrupted and stopped.moved == 0 and stopped.missing == 0 and stopped.encoded == 0
    assert 3 <= stopped.added < 6 and "missing" not in statuses(config).values()
    final = _run(config, rounds=SMALL)
    assert not final.interrupted and final.encoded == 0 and final.moved == 6 - stopped.added
    assert live_paths(config) == on_disk(lib_dir)
    assert {p for p, st in statuses(config).items() if st == "missing"} == {
        str(lib_dir / "zz" / f"p{i}.jpg") for i in range(stopped.added)
    }
    assert vector_count(config) == 6


def test_a_dry_run_in_rounds_changes_nothing(
    tmp_path: Path, config: Config, small_rounds: list[int]
) -> None:
    """A dry run lists the whole change (no rounds of work, no fold): the catalog is untouched."""
    lib_dir = _six(tmp_path, config)
    shutil.move(lib_dir / "zz", lib_dir / "aa")
    before = sql(config, "SELECT * FROM photos ORDER BY id")
    report = _run(config, dry_run=True, rounds=SMALL)
    assert (report.added, report.missing, report.moved, report.forgotten) == (0, 0, 6, 0)  # as the real run
    assert len(report.planned) == 6
    assert sql(config, "SELECT * FROM photos ORDER BY id") == before
