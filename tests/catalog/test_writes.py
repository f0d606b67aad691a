"""The catalog repository on a real SQLite file: roots, photos, vectors, generations, search lookups."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from helpers import sql
from sqlalchemy.orm import Session

from photoindex.catalog import reads
from photoindex.catalog import writes as catalog
from photoindex.catalog.db import Database, open_catalog, open_database
from photoindex.catalog.location import CatalogLocation
from photoindex.config import Config
from photoindex.errors import CatalogError
from photoindex.library import open_library

MODEL = "clip-test"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Info:
    """Shaped like imaging.PhotoInfo."""

    width: int = 640
    height: int = 480
    format: str = "JPEG"
    taken_at: str | None = "2023-07-01T10:00:00"
    camera_make: str | None = "Canon"
    camera_model: str | None = "EOS"
    gps_lat: float | None = 1.5
    gps_lon: float | None = -2.25


def states_under(s: Session, path: str | Path) -> dict[str, reads.PhotoState]:
    """What a scan sees of the catalog at or under `path` (one page holding everything), keyed by path."""
    return {p.path: p for p in reads.photo_states_under(catalog.connection(s), path, limit=1_000_000)}


@pytest.fixture
def db(catalog_location: CatalogLocation) -> Iterator[Database]:
    """A new catalog on each back end (SQLite file, PostgreSQL database)."""
    database = open_catalog(catalog_location)
    yield database
    database.close()


def indexed(
    s: Session, root: catalog.RootRecord, name: str, digest: str, *, size: int = 10, mtime_ns: int = 1
) -> str:
    """Store an indexed photo `name` under the root; returns its path."""
    path = os.path.join(root.path, name)
    catalog.store_indexed(
        s, root_id=root.id, path=path, size=size, mtime_ns=mtime_ns, content_hash=digest, info=Info()
    )
    return path


def vec(seed: int, dim: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


# ---------------------------------------------------------------- roots


def test_roots_are_resolved_unique_and_never_overlap(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "photos" / "2023").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "photos")
    monkeypatch.chdir(tmp_path)
    with db.write() as s:
        inner = catalog.add_root(s, "photos/2023", now=T0)
        assert inner.path == str(tmp_path / "photos" / "2023") and inner.added_at == T0 and inner.present
        indexed(s, inner, "a.jpg", "h1")
        assert catalog.add_root(s, tmp_path / "photos" / "2023").id == inner.id  # same folder: same root
        outer = catalog.add_root(s, tmp_path / "link")  # the parent, through a symlink
        assert outer.path == str(tmp_path / "photos")
        # The parent replaced the inner root and took over its photos.
        assert [r.path for r in catalog.list_roots(s)] == [outer.path]
        assert list(states_under(s, outer.path)) == [str(tmp_path / "photos" / "2023" / "a.jpg")]
        assert catalog.add_root(s, tmp_path / "photos" / "2023" / "deeper").id == outer.id
        sibling = catalog.add_root(s, tmp_path / "photos-old")  # a string prefix, not a subfolder
        assert sibling.id != outer.id
        assert catalog.root_for_path(s, tmp_path / "photos-old" / "x.jpg") == sibling
        assert catalog.root_for_path(s, tmp_path / "photos" / "x.jpg") == outer
        assert catalog.root_for_path(s, tmp_path / "elsewhere.jpg") is None
        with pytest.raises(CatalogError, match="watch mode"):
            catalog.add_root(s, tmp_path / "net", watch_mode="sometimes")


def test_root_scan_facts_and_watch_mode(db: Database, tmp_path: Path) -> None:
    with db.write() as s:
        a = catalog.add_root(s, tmp_path / "a")
        b = catalog.add_root(s, tmp_path / "b", watch_mode="poll")
        catalog.set_roots_scanned(s, [a.id, b.id], {a.id: True, b.id: False}, at=T0)
        catalog.update_root(s, a.id, watch_mode="inotify")
    with db.read() as s:
        got = {r.id: r for r in catalog.list_roots(s)}
    assert (got[a.id].present, got[a.id].last_scan_at, got[a.id].watch_mode) == (True, T0, "inotify")
    assert (got[b.id].present, got[b.id].last_scan_at, got[b.id].watch_mode) == (False, T0, "poll")


def test_root_summaries_and_photos_under_a_subfolder(db: Database, tmp_path: Path) -> None:
    with db.write() as s:
        a = catalog.add_root(s, tmp_path / "a")
        b = catalog.add_root(s, tmp_path / "b")
        one = indexed(s, a, "x/1.jpg", "h1")
        two = indexed(s, a, "x/2.jpg", "h2")
        indexed(s, a, "xy/3.jpg", "h3")
        catalog.mark_missing(s, [catalog.get_photo(s, two).id])  # type: ignore[union-attr]
        catalog.set_roots_scanned(s, [a.id], {a.id: True}, at=T0)
    with db.read() as s:
        summaries = catalog.root_summaries(s)
        assert set(states_under(s, tmp_path / "a" / "x")) == {one, two}
        assert list(states_under(s, one)) == [one]
        assert states_under(s, tmp_path / "b") == {}
    common = {"name": None, "present": True, "watch_mode": "auto"}
    assert summaries == [
        {"id": a.id, "path": a.path, **common, "last_scan_at": T0.isoformat(), "photos": 2},
        {"id": b.id, "path": b.path, **common, "last_scan_at": None, "photos": 0},
    ]


def test_remove_root_forgets_its_photos(db: Database, tmp_path: Path) -> None:
    with db.write() as s:
        a = catalog.add_root(s, tmp_path / "a")
        b = catalog.add_root(s, tmp_path / "b")
        indexed(s, a, "1.jpg", "h1")
        indexed(s, a, "2.jpg", "h2")
        indexed(s, b, "3.jpg", "h3")
        assert catalog.remove_root(s, a.id) == 2
    with db.read() as s:
        assert [r.id for r in catalog.list_roots(s)] == [b.id]
        assert sum(catalog.count_by_status(s).values()) == 1


# ---------------------------------------------------------------- photos


def test_non_utf8_file_names_round_trip(db: Database, tmp_path: Path) -> None:
    folder = tmp_path / os.fsdecode(b"caf\xe9")  # a Latin-1 folder name, invalid as UTF-8
    folder.mkdir()
    (folder / os.fsdecode(b"\xff\xfe photo.jpg")).write_bytes(b"jpeg")
    (folder / "plain.jpg").write_bytes(b"jpeg")
    names = sorted(os.listdir(folder))
    assert any("\udcff" in n for n in names)
    with db.write() as s:
        root = catalog.add_root(s, tmp_path)
        for name in names:
            indexed(
                s, root, os.path.join(folder.name, name), f"h-{name.encode('utf-8', 'surrogateescape').hex()}"
            )
        catalog.add_vectors(
            s,
            MODEL,
            [(f"h-{n.encode('utf-8', 'surrogateescape').hex()}", vec(i)) for i, n in enumerate(names)],
        )
    with db.read() as s:
        known = states_under(s, root.path)
        expected = {str(folder / n) for n in names}
        assert set(known) == expected
        assert [root.path] == [r.path for r in catalog.list_roots(s)]
        for path in expected:
            photo = catalog.get_photo(s, path)
            assert photo is not None and photo.path == path
            assert Path(photo.path).read_bytes() == b"jpeg"  # the stored name opens the real file
        under = reads.vector_ids_under(catalog.connection(s), MODEL, folder)
        hits = reads.live_photos_for_vectors(catalog.connection(s), MODEL, under.tolist(), folder)
        assert sorted(p.path for ps in hits.values() for p in ps) == sorted(expected)
        assert reads.vector_ids_under(catalog.connection(s), MODEL, tmp_path / "cafe").size == 0


def test_store_keeps_first_seen_and_replaces_facts(db: Database, tmp_path: Path) -> None:
    with db.write() as s:
        root = catalog.add_root(s, tmp_path)
        path = str(tmp_path / "a.jpg")
        catalog.store_pending(s, root_id=root.id, path=path, size=1, mtime_ns=1, now=T0)
        catalog.store_indexed(
            s,
            root_id=root.id,
            path=path,
            size=2,
            mtime_ns=2,
            content_hash="h1",
            info=Info(),
            now=T0 + timedelta(hours=1),
        )
    with db.read() as s:
        photo = catalog.get_photo(s, path)
    assert photo is not None
    assert (photo.status, photo.size, photo.mtime_ns, photo.content_hash, photo.error) == (
        "indexed",
        2,
        2,
        "h1",
        None,
    )
    assert (photo.width, photo.height, photo.format, photo.taken_at) == (
        640,
        480,
        "JPEG",
        "2023-07-01T10:00:00",
    )
    assert (photo.camera_make, photo.camera_model, photo.gps_lat, photo.gps_lon) == (
        "Canon",
        "EOS",
        1.5,
        -2.25,
    )
    assert (photo.first_seen, photo.updated_at) == (T0, T0 + timedelta(hours=1))

    with db.write() as s:
        catalog.store_failed(
            s,
            root_id=root.id,
            path=path,
            size=3,
            mtime_ns=3,
            content_hash=None,
            error="truncated: the file ends early",
            now=T0 + timedelta(hours=2),
        )
    with db.read() as s:
        failed = catalog.get_photo(s, path)
        assert catalog.recent_failures(s) == [failed]
    assert failed is not None
    assert (failed.status, failed.error, failed.width, failed.first_seen) == (
        "failed",
        "truncated: the file ends early",
        None,
        T0,
    )


def test_a_batch_of_indexed_photos_is_stored_as_one_by_one(db: Database, tmp_path: Path) -> None:
    """store_indexed_many: rows of different column sets (with and without metadata), new and known paths."""
    with db.write() as s:
        root = catalog.add_root(s, tmp_path)
        known = str(tmp_path / "known.jpg")
        catalog.store_pending(s, root_id=root.id, path=known, size=1, mtime_ns=1, now=T0)
        batch = [
            catalog.IndexedPhoto(root.id, known, 2, 2, "h-known", Info()),
            catalog.IndexedPhoto(root.id, str(tmp_path / "bare.png"), 3, 3, "h-bare", None),
            catalog.IndexedPhoto(root.id, str(tmp_path / "new.jpg"), 4, 4, "h-new", Info(camera_make="Nikon")),
        ]
        catalog.store_indexed_many(s, batch, now=T0 + timedelta(hours=1))
    with db.read() as s:
        photos = {p.path: catalog.get_photo(s, p.path) for p in batch}
    for p in batch:
        got = photos[p.path]
        assert got is not None
        assert (got.status, got.size, got.mtime_ns, got.content_hash) == ("indexed", p.size, p.mtime_ns, p.content_hash)
        assert got.updated_at == T0 + timedelta(hours=1)
    assert photos[known].first_seen == T0  # kept from its pending row
    assert photos[str(tmp_path / "new.jpg")].camera_make == "Nikon"
    assert photos[str(tmp_path / "bare.png")].width is None


def test_naive_timestamps_are_refused(db: Database, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="timezone-aware"):
        with db.write() as s:
            catalog.add_root(s, tmp_path, now=datetime(2024, 1, 1))


def test_scan_diff_state_missing_marks_and_counts(db: Database, tmp_path: Path) -> None:
    n = 1_234  # more than one IN (...) chunk
    with db.write() as s:
        root = catalog.add_root(s, tmp_path)
        for i in range(n):
            catalog.store_pending(
                s, root_id=root.id, path=str(tmp_path / f"{i:05}.jpg"), size=i, mtime_ns=i * 10
            )
        indexed(s, root, "x.jpg", "hx", size=7, mtime_ns=70)
    with db.read() as s:
        known = states_under(s, root.path)
    assert len(known) == n + 1
    state = known[str(tmp_path / "00005.jpg")]
    assert (state.size, state.mtime_ns, state.status, state.content_hash) == (5, 50, "pending", None)
    gone = [k.id for k in known.values() if k.size % 2 == 0 or k.size == 7]
    with db.write() as s:
        assert catalog.mark_missing(s, gone) == len(gone)
    with db.read() as s:
        counts = catalog.count_by_status(s)
        assert counts == {"pending": n - len(gone) + 1, "indexed": 0, "failed": 0, "missing": len(gone)}
        assert catalog.count_by_status(s, root_id=root.id + 1) == dict.fromkeys(counts, 0)
        assert (7, 70) in catalog.missing_stat_keys(s) and (5, 50) not in catalog.missing_stat_keys(s)
        assert [p.path for p in catalog.photos_with_hash(s, "hx")] == [str(tmp_path / "x.jpg")]
        assert len(catalog.photos_with_status(s, "missing", limit=5)) == 5
    with pytest.raises(ValueError):
        with db.write() as s:
            catalog.set_photo_status(s, gone, "lost")


def test_link_photo_outcomes(db: Database, tmp_path: Path) -> None:
    with db.write() as s:
        root = catalog.add_root(s, tmp_path)
        old = indexed(s, root, "old/a.jpg", "h1")
        old_id = catalog.get_photo(s, old).id  # type: ignore[union-attr]
        catalog.mark_missing(s, [old_id])
        new = str(tmp_path / "new" / "a.jpg")
        assert (
            catalog.link_photo(s, root_id=root.id, path=new, size=10, mtime_ns=1, content_hash="h1")
            == "moved"
        )
        moved = catalog.get_photo(s, new)
        assert moved is not None and moved.id == old_id and moved.status == "indexed" and moved.width == 640
        assert catalog.get_photo(s, old) is None
        copy = str(tmp_path / "copy.jpg")
        assert (
            catalog.link_photo(s, root_id=root.id, path=copy, size=10, mtime_ns=2, content_hash="h1")
            == "added"
        )
        catalog.mark_missing(s, [moved.id])
        assert (
            catalog.link_photo(s, root_id=root.id, path=new, size=10, mtime_ns=1, content_hash="h1")
            == "restored"
        )
        assert (
            catalog.link_photo(s, root_id=root.id, path=new, size=11, mtime_ns=3, content_hash="h2")
            == "updated"
        )
        changed = catalog.get_photo(s, new)
        assert changed is not None and (changed.content_hash, changed.size, changed.width) == ("h2", 11, None)


# ---------------------------------------------------------------- vectors


def test_vectors_round_trip_bit_exactly(db: Database) -> None:
    special = np.array(
        [0.0, -0.0, np.float32(1e-45), -np.inf, np.inf, np.nan, 3.4028235e38, 1 / 3], np.float32
    )
    if db.kind == "postgresql":  # pgvector holds finite values only (an encoder never gives others)
        special[3:6] = [-3.4028235e38, np.float32(-1e-45), 2.5]
    matrix = np.vstack([special, vec(1), vec(2)])
    with db.write() as s:
        ids = catalog.add_vectors(s, MODEL, [(f"h{i}", row) for i, row in enumerate(matrix)])
    with db.read() as s:
        ((got_ids, got),) = list(reads.iter_vectors(catalog.connection(s), MODEL))
        one = reads.vector_for_hash(catalog.connection(s), MODEL, "h0")
        assert reads.vector_for_hash(catalog.connection(s), MODEL, "nope") is None
        assert reads.vector_for_hash(catalog.connection(s), "other-model", "h0") is None
    assert got_ids.dtype == np.int64 and got_ids.tolist() == ids
    assert got.dtype == np.float32 and got.flags.writeable and got.flags.c_contiguous
    assert got.tobytes() == matrix.tobytes()
    assert one is not None and one.tobytes() == special.tobytes()


def test_add_vectors_ids_dedup_and_generation(db: Database) -> None:
    with db.read() as s:
        assert catalog.index_state(s, MODEL) == catalog.IndexState(MODEL, 0, 0, None)
    with db.write() as s:
        ids = catalog.add_vectors(s, MODEL, [("a", vec(1)), ("b", vec(2)), ("a", vec(3))], now=T0)
        assert ids[0] == ids[2] and ids[1] > ids[0]  # ids follow the input order; a repeat shares its id
        assert catalog.index_state(s, MODEL) == catalog.IndexState(MODEL, 1, 0, T0)
    with db.write() as s:
        again = catalog.add_vectors(s, MODEL, [("b", vec(9)), ("c", vec(4))])
        assert again[0] == ids[1] and again[1] > ids[1]
        assert catalog.index_state(s, MODEL).generation == 2
        assert catalog.add_vectors(s, MODEL, [("a", vec(5))]) == [ids[0]]  # nothing new: no bump
        assert catalog.add_vectors(s, MODEL, []) == []
        assert catalog.index_state(s, MODEL).generation == 2
        assert catalog.vector_ids_for_hashes(s, MODEL, ["a", "c", "zz"]) == {"a": ids[0], "c": again[1]}
        assert catalog.vector_ids_for_hashes(s, MODEL, ["b"])["b"] == ids[1]
        # Another model is a separate space with its own state.
        assert catalog.add_vectors(s, "other", [("a", vec(1, dim=4))]) != []
        assert catalog.index_state(s, "other").generation == 1
        assert catalog.vector_count(s, MODEL) == 3 and catalog.vector_count(s, "other") == 1
    with db.read() as s:
        assert reads.vector_for_hash(catalog.connection(s), MODEL, "b").tobytes() == vec(2).tobytes()  # type: ignore[union-attr]


def test_vector_dimensions_must_match_the_model(db: Database) -> None:
    with db.write() as s:
        catalog.add_vectors(s, MODEL, [("a", vec(1))])
    with pytest.raises(CatalogError, match="8 dimensions"):
        with db.write() as s:
            catalog.add_vectors(s, MODEL, [("b", vec(1, dim=4))])
    with pytest.raises(CatalogError, match="same"):
        with db.write() as s:
            catalog.add_vectors(s, "fresh", [("b", vec(1, dim=4)), ("c", vec(1, dim=5))])


def test_deleted_ids_are_never_reused_and_bump_the_epoch(db: Database, tmp_path: Path) -> None:
    with db.write() as s:
        root = catalog.add_root(s, tmp_path)
        ids = catalog.add_vectors(s, MODEL, [(h, vec(i)) for i, h in enumerate("abc")])
        indexed(s, root, "a.jpg", "a")
        indexed(s, root, "b.jpg", "b")
        assert catalog.delete_orphan_vectors(s, MODEL) == [ids[2]]  # "c" has no photo
        state = catalog.index_state(s, MODEL)
        assert (state.generation, state.vectors_epoch) == (2, 1)
        assert catalog.delete_vectors(s, MODEL, []) == 0
        assert catalog.index_state(s, MODEL) == state
        assert catalog.max_vector_id(s, MODEL) == ids[1]
    with db.write() as s:
        (new,) = catalog.add_vectors(s, MODEL, [("d", vec(7))])
        assert new > ids[2]  # AUTOINCREMENT: the deleted largest id is not handed out again
        assert catalog.index_state(s, MODEL).vectors_epoch == 1


def test_iter_vectors_in_chunks_and_after_an_id(db: Database) -> None:
    matrix = np.stack([vec(i) for i in range(25)])
    with db.write() as s:
        ids = catalog.add_vectors(s, MODEL, [(f"h{i}", row) for i, row in enumerate(matrix)])
        catalog.add_vectors(s, "other", [("h0", vec(0))])
    with db.read() as s:
        chunks = list(reads.iter_vectors(catalog.connection(s), MODEL, chunk=10))
        tail = list(reads.iter_vectors(catalog.connection(s), MODEL, after_id=ids[19], chunk=10))
        assert list(reads.iter_vectors(catalog.connection(s), MODEL, after_id=ids[-1])) == []
        assert list(reads.iter_vectors(catalog.connection(s), "nobody")) == []
    assert [len(i) for i, _ in chunks] == [10, 10, 5]
    assert np.concatenate([i for i, _ in chunks]).tolist() == ids
    assert np.concatenate([m for _, m in chunks]).tobytes() == matrix.tobytes()
    ((tail_ids, tail_matrix),) = tail
    assert tail_ids.tolist() == ids[20:] and tail_matrix.tobytes() == matrix[20:].tobytes()


def test_live_photos_for_vectors_filters_status_model_and_folder(db: Database, tmp_path: Path) -> None:
    with db.write() as s:
        root = catalog.add_root(s, tmp_path)
        va, vb, vc = catalog.add_vectors(s, MODEL, [("a", vec(1)), ("b", vec(2)), ("c", vec(3))])
        catalog.add_vectors(s, "other", [("a", vec(1))])
        a1 = indexed(s, root, "trip/a.jpg", "a")
        a2 = indexed(s, root, "trip/copy of a.jpg", "a")
        a3 = indexed(s, root, "trip2/a.jpg", "a")  # "trip" is a string prefix of "trip2", not its folder
        b1 = indexed(s, root, "trip/b.jpg", "b")
        gone = indexed(s, root, "trip/gone.jpg", "c")
        catalog.mark_missing(s, [catalog.get_photo(s, gone).id])  # type: ignore[union-attr]
        catalog.store_failed(
            s,
            root_id=root.id,
            path=str(tmp_path / "bad.jpg"),
            size=1,
            mtime_ns=1,
            content_hash="b",
            error="decode: broken",
        )
    with db.read() as s:
        hits = reads.live_photos_for_vectors(catalog.connection(s), MODEL, [vc, vb, va, 999])
        assert {v: [p.path for p in ps] for v, ps in hits.items()} == {va: sorted([a1, a2, a3]), vb: [b1]}
        assert hits[vb][0].width == 640 and hits[vb][0].taken_at == "2023-07-01T10:00:00"
        trip = tmp_path / "trip"
        in_trip = reads.live_photos_for_vectors(catalog.connection(s), MODEL, [va, vb, vc], trip)
        assert {v: [p.path for p in ps] for v, ps in in_trip.items()} == {va: sorted([a1, a2]), vb: [b1]}
        slash = reads.live_photos_for_vectors(catalog.connection(s), MODEL, [va], str(trip) + "/")
        assert [p.path for p in slash[va]] == sorted([a1, a2])
        assert reads.vector_ids_under(catalog.connection(s), MODEL, trip).tolist() == sorted([va, vb])
        assert reads.vector_ids_under(catalog.connection(s), MODEL, tmp_path / "trip2").tolist() == [va]
        assert reads.vector_ids_under(catalog.connection(s), MODEL, tmp_path / "nowhere").tolist() == []
        assert reads.live_photos_for_vectors(catalog.connection(s), "other", [va]) == {}  # other model, other ids


def test_missing_stat_keys_can_look_up_only_candidates(tmp_path: Path) -> None:
    db = open_database(tmp_path / "c.db")
    with db.write() as s:
        root = catalog.add_root(s, tmp_path)
        for i in range(5):
            catalog.store_pending(s, root_id=root.id, path=tmp_path / f"{i}.jpg", size=10 + i, mtime_ns=100 + i)
        catalog.mark_missing(s, [p.id for p in states_under(s, tmp_path).values()])
    with db.read() as s:
        assert catalog.missing_stat_keys(s) == {(10 + i, 100 + i) for i in range(5)}
        assert catalog.missing_stat_keys(s, [(11, 101), (12, 999), (99, 1)]) == {(11, 101)}
        assert catalog.missing_stat_keys(s, []) == set()
    db.close()


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
