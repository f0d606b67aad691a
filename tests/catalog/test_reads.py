"""The plain-sqlite3 catalog reads (photoindex.reads) through `Database.reads()`, on real SQLite files.

The ORM's `catalog` module delegates these reads to the same functions, so agreement between the two
paths alone would prove little: results are also checked against what was written and against the
ORM's own `catalog.get_photo`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import and_, or_, select
from typer.testing import CliRunner

from photoindex.catalog import reads
from photoindex.catalog import writes as catalog
from photoindex.catalog.db import Database, open_catalog, open_database
from photoindex.catalog.location import CatalogLocation
from photoindex.cli.app import app
from photoindex.config import Config
from photoindex.photos.imaging import PhotoInfo
from photoindex.testing import COLOURS
from photoindex.testing.photos import make_photo

MODEL = "clip-test"
# Tests of the plain sqlite3 connections themselves (PostgreSQL's side: tests/catalog/test_postgres.py).
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
T1 = T0 + timedelta(hours=1, microseconds=250_000)
T2 = T0 + timedelta(days=2, seconds=7, microseconds=1)
ODD_NAME = os.fsdecode(b"caf\xe9 \xff.jpg")  # not UTF-8: spelled with lone surrogates


# What decoding would have learned (imaging.PhotoInfo itself).
INFO = PhotoInfo(640, 480, "JPEG", "2023-07-01T10:00:00", "Canon", "EOS", 1.5, -2.25)


def vec(seed: int, dim: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


@dataclass
class Filled:
    """A catalog with photos in /a/b (one with a non-UTF-8 name), /a/bc, copies, a missing photo, a deletion."""

    db: Database
    b: Path
    bc: Path
    ids: dict[str, int]  # content hash -> vector id (the live ones)
    paths: dict[str, list[str]]  # content hash -> indexed paths, in byte order
    other: int  # the vector id of h1 under another model


@pytest.fixture
def filled(tmp_path: Path, catalog_location: CatalogLocation) -> Iterator[Filled]:
    """On each back end: `Database.reads()` is plain sqlite3 on SQLite, `postgres.PgReads` on PostgreSQL."""
    db = open_catalog(catalog_location)
    top = tmp_path / "a"
    b, bc = top / "b", top / "bc"  # "b" is a string prefix of "bc", not its folder
    layout = {
        "h1": [b / "deep" / "copy of x.jpg", b / "x.jpg"],  # two copies share one vector
        "h2": [b / ODD_NAME],
        "h3": [bc / "y.jpg"],
    }
    with db.write() as s:
        root = catalog.add_root(s, top, now=T0)
        hashes = ["h1", "h2", "h3", "h4"]
        stored = catalog.add_vectors(s, MODEL, [(h, vec(i)) for i, h in enumerate(hashes)], now=T0)
        ids = dict(zip(hashes, stored, strict=True))
        (other,) = catalog.add_vectors(s, "other", [("h1", vec(9, dim=4))], now=T0)
        for digest, paths in layout.items():
            for path in paths:
                catalog.store_pending(s, root_id=root.id, path=path, size=10, mtime_ns=1, now=T0)
                catalog.store_indexed(
                    s, root_id=root.id, path=path, size=10, mtime_ns=1, content_hash=digest, info=INFO, now=T1
                )
        gone = b / "gone.jpg"
        catalog.store_indexed(
            s, root_id=root.id, path=gone, size=10, mtime_ns=1, content_hash="h4", info=INFO, now=T1
        )
        catalog.mark_missing(s, [catalog.get_photo(s, gone).id], now=T1)  # type: ignore[union-attr]
    with db.write() as s:
        (h5,) = catalog.add_vectors(s, MODEL, [("h5", vec(5))], now=T1)
        assert catalog.delete_vectors(s, MODEL, [h5], now=T2) == 1  # the largest id, gone: bumps the epoch
    in_order = {h: sorted((str(p) for p in ps), key=os.fsencode) for h, ps in layout.items()}
    try:
        yield Filled(db, b, bc, ids, in_order, other)
    finally:
        db.close()


def test_reads_match_the_orm_path_and_what_was_written(filled: Filled) -> None:
    """Bookkeeping and vectors read through `reads()` equal those read through `read()` + catalog, and the data."""
    db, ids = filled.db, filled.ids
    with db.reads() as con:
        plain = (
            reads.index_state(con, MODEL),
            reads.vectors_anchor(con, MODEL),
            reads.max_vector_id(con, MODEL),
            reads.vector_count(con, MODEL),
            list(reads.iter_vectors(con, MODEL, chunk=3)),
            reads.vector_for_hash(con, MODEL, "h2"),
            reads.vector_for_hash(con, "other", "h1"),
            reads.vector_for_hash(con, MODEL, "nope"),
            reads.index_state(con, "nobody"),
        )
    with db.read() as s:
        orm = (
            catalog.index_state(s, MODEL),
            catalog.vectors_anchor(s, MODEL),
            catalog.max_vector_id(s, MODEL),
            catalog.vector_count(s, MODEL),
            list(reads.iter_vectors(catalog.connection(s), MODEL, chunk=3)),
            reads.vector_for_hash(catalog.connection(s), MODEL, "h2"),
            reads.vector_for_hash(catalog.connection(s), "other", "h1"),
            reads.vector_for_hash(catalog.connection(s), MODEL, "nope"),
            catalog.index_state(s, "nobody"),
        )
    state, anchor, max_id, count, chunks, h2, other, nope, nobody = plain
    assert (state, anchor, max_id, count, nope, nobody) == (orm[0], orm[1], orm[2], orm[3], orm[7], orm[8])
    # Three bumps (two adds, one delete); the time of the last one, aware UTC to the microsecond.
    assert state == reads.IndexState(MODEL, generation=3, vectors_epoch=1, updated_at=T2)
    assert state.updated_at is not None and state.updated_at.utcoffset() == timedelta(0)
    assert anchor == f"{ids['h1']}:h1:{T0}"
    assert max_id == ids["h4"] and count == 4  # the deleted larger id is not counted
    assert nope is None and nobody == reads.IndexState("nobody")
    assert [c[0].tolist() for c in chunks] == [c[0].tolist() for c in orm[4]]
    assert [c[0].tolist() for c in chunks] == [[ids["h1"], ids["h2"], ids["h3"]], [ids["h4"]]]
    assert chunks[0][0].dtype == np.int64 and chunks[0][1].dtype == np.float32
    assert np.concatenate([m for _, m in chunks]).tobytes() == np.stack([vec(i) for i in range(4)]).tobytes()
    assert all(a[1].tobytes() == o[1].tobytes() for a, o in zip(chunks, orm[4], strict=True))
    assert h2 is not None and orm[5] is not None and h2.tobytes() == orm[5].tobytes() == vec(1).tobytes()
    assert other is not None and other.tobytes() == vec(9, dim=4).tobytes()


def test_folder_filters_and_live_photos_match_the_orm_path(filled: Filled) -> None:
    """vector_ids_under and live_photos_for_vectors: non-UTF-8 names, /a/b versus /a/bc, copies, missing photos,
    aware UTC timestamps, and Photo rows equal to those the ORM's get_photo builds."""
    db, ids, b, bc = filled.db, filled.ids, filled.b, filled.bc
    every = [*ids.values(), filled.other]  # the other model's id names no photo of this model
    prefixes: list[str | Path] = [b, bc, str(b) + "/", b / ODD_NAME, b / "deep", b.parent / "none"]
    with db.reads() as con:
        under = [reads.vector_ids_under(con, MODEL, p).tolist() for p in prefixes]
        live = reads.live_photos_for_vectors(con, MODEL, every)
        live_b = reads.live_photos_for_vectors(con, MODEL, every, b)
        live_odd = reads.live_photos_for_vectors(con, MODEL, every, b / ODD_NAME)
    with db.read() as s:
        assert under == [reads.vector_ids_under(catalog.connection(s), MODEL, p).tolist() for p in prefixes]
        assert live == reads.live_photos_for_vectors(catalog.connection(s), MODEL, every)
        assert live_b == reads.live_photos_for_vectors(catalog.connection(s), MODEL, every, b)
        by_orm = {p: catalog.get_photo(s, p) for ps in filled.paths.values() for p in ps}
    assert under == [
        [ids["h1"], ids["h2"]],  # not h3 (in /a/bc) nor h4 (its only photo is missing)
        [ids["h3"]],
        [ids["h1"], ids["h2"]],
        [ids["h2"]],  # a prefix that is one file
        [ids["h1"]],
        [],
    ]
    expected = {ids[h]: ps for h, ps in filled.paths.items()}
    assert {v: [p.path for p in ps] for v, ps in live.items()} == expected
    in_b = {ids["h1"]: expected[ids["h1"]], ids["h2"]: [str(b / ODD_NAME)]}  # not /a/bc/y.jpg
    assert {v: [p.path for p in ps] for v, ps in live_b.items()} == in_b
    assert {v: [p.path for p in ps] for v, ps in live_odd.items()} == {ids["h2"]: [str(b / ODD_NAME)]}
    (odd,) = live[ids["h2"]]
    assert odd.path == str(b / ODD_NAME) and os.fsencode(odd.path) == os.fsencode(b) + b"/caf\xe9 \xff.jpg"
    assert str(bc / "y.jpg") in [p.path for p in live[ids["h3"]]]
    for photo in (p for ps in live.values() for p in ps):
        assert photo == by_orm[photo.path]  # the ORM's own row mapping: same values, same types
        assert (photo.first_seen, photo.updated_at) == (T0, T1)
        assert photo.first_seen.utcoffset() == timedelta(0) and photo.updated_at.utcoffset() == timedelta(0)
        assert (photo.status, photo.width, photo.camera_make, photo.gps_lon) == ("indexed", 640, "Canon", -2.25)


@SQLITE_ONLY
def test_reads_are_read_only(filled: Filled) -> None:
    """SQLite itself refuses a write inside `reads()` (query_only); nothing is written and the next read works."""
    db = filled.db
    with db.reads() as con:
        before = con.execute("SELECT count(*) FROM vectors").fetchone()[0]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            con.execute(
                "INSERT INTO vectors (model_id, content_hash, dim, vector, created_at) "
                "VALUES (?, 'intruder', 8, ?, '2024-01-01 00:00:00')",
                (MODEL, vec(0).tobytes()),
            )
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            con.execute("DELETE FROM photos")
    with db.reads() as con:
        assert con.execute("SELECT count(*) FROM vectors").fetchone()[0] == before
        assert reads.vector_for_hash(con, MODEL, "intruder") is None
    outside = sqlite3.connect(db.path)
    try:
        assert outside.execute("SELECT count(*) FROM photos").fetchone()[0] == 5
        assert outside.execute("SELECT count(*) FROM vectors WHERE content_hash = 'intruder'").fetchone()[0] == 0
    finally:
        outside.close()


@SQLITE_ONLY
def test_reads_see_one_snapshot(filled: Filled) -> None:
    """A write committed by another Database while a `reads()` block is open (after its first read) is not seen
    in it, even between chunks of iter_vectors; the next `reads()` sees it."""
    db = filled.db
    writer = open_database(db.path)
    try:
        with db.reads() as con:
            state = reads.index_state(con, MODEL)
            chunks = reads.iter_vectors(con, MODEL, chunk=2)
            first = next(chunks)
            with writer.write() as s:
                (new,) = catalog.add_vectors(s, MODEL, [("late", vec(42))], now=T2 + timedelta(hours=1))
            rest = list(chunks)
            assert reads.index_state(con, MODEL) == state
            assert reads.vector_count(con, MODEL) == 4 and reads.vector_for_hash(con, MODEL, "late") is None
        seen = np.concatenate([first[0], *(ids for ids, _ in rest)]).tolist()
        assert seen == sorted(filled.ids.values())
        with db.reads() as con:
            assert reads.index_state(con, MODEL).generation == state.generation + 1
            assert reads.max_vector_id(con, MODEL) == new and reads.vector_count(con, MODEL) == 5
            late = reads.vector_for_hash(con, MODEL, "late")
            assert late is not None and late.tobytes() == vec(42).tobytes()
    finally:
        writer.close()


@SQLITE_ONLY
def test_nested_reads_share_the_outer_snapshot(filled: Filled) -> None:
    """An inner `reads()` in the same thread joins the outer transaction (no error, same snapshot), and leaving
    it does not end the outer one."""
    db = filled.db
    writer = open_database(db.path)
    try:
        with db.reads() as outer:
            before = reads.vector_count(outer, MODEL)
            with writer.write() as s:
                catalog.add_vectors(s, MODEL, [("nested", vec(7))], now=T2 + timedelta(hours=2))
            with db.reads() as inner:
                assert inner is outer and reads.vector_count(inner, MODEL) == before
            assert outer.in_transaction and reads.vector_count(outer, MODEL) == before
        with db.reads() as con:
            assert reads.vector_count(con, MODEL) == before + 1
    finally:
        writer.close()


@SQLITE_ONLY
def test_close_closes_the_plain_connections_and_reads_reopen(filled: Filled) -> None:
    """close() closes every thread's reading connection; a later `reads()` (any thread) opens a new one."""
    db = filled.db
    with db.reads() as mine:
        pass
    with db.reads() as again:
        assert again is mine  # one connection per thread, kept open between reads
    box: dict[str, object] = {}

    def in_thread() -> None:
        try:
            with db.reads() as con:
                box["con"], box["count"] = con, reads.vector_count(con, MODEL)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test thread
            box["error"] = exc

    worker = threading.Thread(target=in_thread)
    worker.start()
    worker.join()
    theirs = box["con"]
    assert isinstance(theirs, sqlite3.Connection) and theirs is not mine and box["count"] == 4

    db.close()
    for con in (mine, theirs):
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            con.execute("SELECT 1")
    with db.reads() as fresh:
        assert fresh is not mine
        assert reads.vector_count(fresh, MODEL) == 4
        assert fresh.execute("PRAGMA query_only").fetchone()[0] == 1
    box.clear()
    worker = threading.Thread(target=in_thread)
    worker.start()
    worker.join()
    assert "error" not in box and box["count"] == 4
    with db.read() as s:  # the ORM side reopens too
        assert catalog.vector_count(s, MODEL) == 4


# --- a fresh process -------------------------------------------------------------------------------

_SEARCH = textwrap.dedent(
    """
    import json, sys
    from photoindex.config import load_config
    from photoindex.search.query import run_search

    hits = run_search(load_config(), text="red", limit=3)
    loaded = sorted(m for m in sys.modules if m == "sqlalchemy" or m.startswith("sqlalchemy."))
    print(json.dumps({"sqlalchemy": loaded, "hits": [h.path for h in hits]}))
    """
)


def _search_in_fresh_process() -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _SEARCH], capture_output=True, text=True, timeout=60, env=dict(os.environ)
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_search_in_a_fresh_process_does_not_import_sqlalchemy(tmp_path: Path, config: Config) -> None:
    """A cold search (index file loaded, or rebuilt from SQLite) reads the catalog without SQLAlchemy."""
    root = tmp_path / "Photos"
    red = make_photo(root / "red.jpg", COLOURS["red"], size=(96, 72), seed=1)
    make_photo(root / "blue.jpg", COLOURS["blue"], size=(96, 72), seed=2)
    make_photo(root / "green.png", COLOURS["green"], size=(96, 72), seed=3)
    indexed = CliRunner().invoke(app, ["index", str(root), "--json"])
    assert indexed.exit_code == 0, indexed.output
    assert json.loads(indexed.stdout)["encoded"] == 3

    loaded = _search_in_fresh_process()
    assert loaded["sqlalchemy"] == []
    assert len(loaded["hits"]) == 3 and loaded["hits"][0] == str(red)

    (index_file,) = config.index_dir.glob("*.idx")
    index_file.unlink()  # the search rebuilds it from the stored vectors (and saves it)
    rebuilt = _search_in_fresh_process()
    assert rebuilt == loaded
    assert index_file.is_file()


@SQLITE_ONLY
def test_a_finished_thread_takes_its_connection_with_it(filled: Filled) -> None:
    """A Library used from short-lived threads (a thread per request) does not pile up open connections."""
    import gc

    db = filled.db
    counts: list[int] = []

    def one_request() -> None:
        with db.reads() as con:
            counts.append(reads.vector_count(con, MODEL))

    for _ in range(5):
        t = threading.Thread(target=one_request)
        t.start()
        t.join()
    gc.collect()
    assert counts == [4] * 5 and len(db._plain_all) == 0
    with db.reads() as con:  # a live thread's connection is kept (and closed by close())
        assert reads.vector_count(con, MODEL) == 4
    assert len(db._plain_all) == 1


def test_photo_states_under_pages_in_byte_order(filled: Filled) -> None:
    """Pages of any size, resumed after any path, give the scope's rows once each, in byte order; "/a/b"
    never includes "/a/bc", and a scope that is one file gives that file."""
    everything = [p for ps in filled.paths.values() for p in ps if p.startswith(str(filled.b) + os.sep)]
    everything.append(str(filled.b / "gone.jpg"))
    expected = sorted(everything, key=os.fsencode)
    with filled.db.reads() as con:
        for limit in (1, 2, 3, 100):
            got: list[str] = []
            after = None
            while True:
                page = reads.photo_states_under(con, filled.b, after=after, limit=limit)
                got += [r.path for r in page]
                if len(page) < limit:
                    break
                after = os.fsencode(page[-1].path)
            assert got == expected, limit
        one = str(filled.b / "x.jpg")
        assert [r.path for r in reads.photo_states_under(con, one)] == [one]
        assert reads.photo_states_under(con, one, after=os.fsencode(one)) == []
        assert [r.path for r in reads.photo_states_under(con, filled.bc)] == [str(filled.bc / "y.jpg")]
        missing = [r for r in reads.photo_states_under(con, filled.b) if r.path.endswith("gone.jpg")]
        assert [r.status for r in missing] == ["missing"]


# ---------------------------------------------------------------- --folder filtering through plain SQL


_PREFIX_PHOTOS = [
    b"a/1.jpg", b"a/sub/2.jpg", b"a-b/3.jpg", b"a.b/4.jpg", b"a0/5.jpg", b"A/6.jpg", b"a b/7.jpg", b"a%/8.jpg",
    b"a_/9.jpg", "\u00e9/10.jpg".encode(), "e\u0301/11.jpg".encode(), b"\xff/12.jpg", b"\xffx/13.jpg",
    "\U0001f600/14.jpg".encode(), b"f.jpg", b"f.jpg.bak/15.jpg", b"ab/16.jpg", b"a/0/17.jpg",
    b"g.jpg", b"g.jpg/18.jpg", b"g.jpg0",  # a file and rows below the same path (it became a folder)
]
_PREFIXES = [
    b"a", b"a/", b"a//", b"a/sub", b"a-b", b"A", b"a%", b"a_", "\u00e9".encode(), "e\u0301".encode(), b"\xff",
    b"f.jpg", b"a/sub/2.jpg", b"", b"nope", b"a/0", "\U0001f600".encode(), b"g.jpg",
]


def _old_orm_ids(s: Any, model: str, prefix: str) -> list[int]:
    """vector_ids_under as the SQLAlchemy query it replaced (ccb3c65) built it."""
    photos, vectors = catalog._PHOTOS, catalog._VECTORS
    low = os.fsencode(prefix).rstrip(b"/") + b"/"
    query = (
        select(vectors.c.id)
        .select_from(vectors.join(photos, photos.c.content_hash == vectors.c.content_hash))
        .where(vectors.c.model_id == model, photos.c.status == "indexed")
        .where(or_(photos.c.path == prefix, and_(photos.c.path >= low, photos.c.path < low[:-1] + b"0")))
        .distinct()
        .order_by(vectors.c.id)
    )
    return [int(i) for i in s.execute(query).scalars()]


def test_folder_prefixes_read_through_plain_sql_match_the_old_orm_query_and_path_components(tmp_path: Path) -> None:
    """vector_ids_under and live_photos_for_vectors for prefixes next to '-', '.', ' ', '0', '%', '_', case,
    NFC/NFD, non-UTF-8 and emoji names, a trailing slash or two, a file, the library itself: the same ids as the
    replaced ORM query, and exactly the photos at the prefix or below it by path components; the scan's
    photo_states_under pages through the same rows in byte order, with pages of 1 and 2 rows."""
    top = tmp_path / "lib"
    base = os.fsencode(str(top)) + b"/"
    model, t0 = "clip-test", datetime(2024, 5, 1, tzinfo=timezone.utc)
    db = open_database(tmp_path / "home" / "photoindex.db")
    try:
        with db.write() as s:
            root = catalog.add_root(s, top, now=t0)
            hashes = [f"h{i}" for i in range(len(_PREFIX_PHOTOS))]
            rng = np.random.default_rng(0)
            ids = catalog.add_vectors(s, model, [(h, rng.standard_normal(4).astype(np.float32)) for h in hashes])
            for raw, digest in zip(_PREFIX_PHOTOS, hashes, strict=True):
                catalog.store_indexed(
                    s, root_id=root.id, path=os.fsdecode(base + raw), size=1, mtime_ns=1, content_hash=digest,
                    info=None, now=t0,
                )
        by_id = {i: os.fsdecode(base + raw) for i, raw in zip(ids, _PREFIX_PHOTOS, strict=True)}
        for prefix in [str(top), "/", *(os.fsdecode(base + raw) for raw in _PREFIXES)]:
            folder = prefix.rstrip("/") + "/"
            expected = sorted(i for i, p in by_id.items() if p == prefix or p.startswith(folder))
            with db.reads() as con:
                plain = reads.vector_ids_under(con, model, prefix).tolist()
                live = reads.live_photos_for_vectors(con, model, ids, prefix)
            with db.read() as s:
                old = _old_orm_ids(s, model, prefix)
            assert plain == old == expected, prefix
            assert {v: [p.path for p in ps] for v, ps in live.items()} == {i: [by_id[i]] for i in expected}
            for limit in (1, 2):
                paged, after = [], None
                with db.reads() as con:
                    for _ in range(len(_PREFIX_PHOTOS) + 2):
                        page = reads.photo_states_under(con, prefix, after=after, limit=limit)
                        if not page:
                            break
                        paged += [row.path for row in page]
                        after = os.fsencode(page[-1].path)
                    else:
                        pytest.fail(f"paging under {prefix!r} never ends")
                assert paged == sorted((by_id[i] for i in expected), key=os.fsencode), (prefix, limit)
    finally:
        db.close()
