"""The catalog reads a search needs, in plain SQL on a `sqlite3` connection.

A fresh `photoindex search` is latency-bound, and importing SQLAlchemy and building the ORM
mapping cost it ~0.2 s of its ~0.5 s. So the reads on the query path (the vector index's
bookkeeping, stored vectors, and the photos behind the hits) live here, without SQLAlchemy, and
the ORM's `catalog` module calls the same functions on its session's connection: one
implementation for the searcher, the daemon and the indexer alike.

Every function runs inside the caller's transaction (`Database.reads()` opens a read snapshot;
`catalog` passes the connection of its session). Paths are compared as the exact bytes they are
stored as (see `schema.FsPath`) and come back in their `os.fsdecode` spelling.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, cast

import numpy as np

if TYPE_CHECKING:
    from photoindex.search.filters import Filters

_IN_CHUNK = 500  # bound parameters per statement, far below SQLite's limit (999 before 3.32)
_VECTOR_DTYPE = np.dtype("<f4")


@dataclass(frozen=True, slots=True)
class IndexState:
    """A model's vector bookkeeping: `generation` moves on any change, `vectors_epoch` on deletions."""

    model_id: str
    generation: int = 0
    vectors_epoch: int = 0
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Photo:
    """A full photo row."""

    id: int
    root_id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str | None
    width: int | None
    height: int | None
    format: str | None
    taken_at: str | None
    camera_make: str | None
    camera_model: str | None
    gps_lat: float | None
    gps_lon: float | None
    gps_alt: float | None
    lens: str | None
    taken_local: str | None
    taken_offset: int | None
    taken_source: str | None
    place_id: int | None
    meta_version: int
    status: str
    error: str | None
    first_seen: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PhotoState:
    """What a scan diff needs to know about a cataloged file.

    `has_vector`: its content has a vector for the model the diff asked about (None: not asked).
    `failure_*`: a failure's cause, the formats decodable then, and the runs in a row that failed it.
    """

    id: int
    path: str
    size: int
    mtime_ns: int
    status: str
    content_hash: str | None
    error: str | None
    meta_version: int = 0
    failure_kind: str | None = None
    failure_decoders: str | None = None
    failure_attempts: int = 0
    has_vector: bool | None = None


PHOTO_COLUMNS: tuple[str, ...] = tuple(Photo.__dataclass_fields__)
_PHOTO_SELECT = ", ".join(f"p.{name}" for name in PHOTO_COLUMNS)


def utc(value: str | datetime | None) -> datetime | None:
    """A stored timestamp (naive UTC: text on SQLite, a timestamp on PostgreSQL) as an aware datetime."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.replace(tzinfo=timezone.utc)


def photo(row: Sequence[object]) -> Photo:
    """A Photo from a row of PHOTO_COLUMNS (timestamps as stored)."""
    values = list(row)
    values[-2] = utc(values[-2])  # type: ignore[arg-type]
    values[-1] = utc(values[-1])  # type: ignore[arg-type]
    return Photo(*values)  # type: ignore[arg-type]


def matrix(blobs: Sequence[bytes] | Sequence[np.ndarray], dim: int) -> np.ndarray:
    """Stored vectors (blobs on SQLite, arrays from pgvector) as one writable float32 [n, dim] array (one copy)."""
    if blobs and not isinstance(blobs[0], (bytes, bytearray, memoryview)):
        arrays = [v.to_numpy() if hasattr(v, "to_numpy") else v for v in blobs]  # pgvector.Vector
        return np.stack(arrays).astype(np.float32).reshape(len(blobs), dim)
    joined = b"".join(cast("Sequence[bytes]", blobs))
    return np.frombuffer(joined, dtype=_VECTOR_DTYPE).reshape(len(blobs), dim).astype(np.float32)


def _chunks(items: Sequence[int], size: int = _IN_CHUNK) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------- the vector index's bookkeeping


def index_state(con: sqlite3.Connection, model_id: str) -> IndexState:
    """The model's generation and epoch (zeros before its first vector)."""
    row = con.execute(
        "SELECT generation, vectors_epoch, updated_at FROM index_state WHERE model_id = ?", (model_id,)
    ).fetchone()
    if row is None:
        return IndexState(model_id)
    return IndexState(model_id, int(row[0]), int(row[1]), utc(row[2]))


def max_vector_id(con: sqlite3.Connection, model_id: str) -> int:
    """The model's largest vector id (0 when it has none)."""
    row = con.execute("SELECT max(id) FROM vectors WHERE model_id = ?", (model_id,)).fetchone()
    return int(row[0] or 0)


def vector_count(con: sqlite3.Connection, model_id: str) -> int:
    """How many vectors the model has."""
    return int(con.execute("SELECT count(*) FROM vectors WHERE model_id = ?", (model_id,)).fetchone()[0])


def vectors_anchor(con: sqlite3.Connection, model_id: str) -> str | None:
    """A fingerprint of the model's first vector (id, content hash, time): tells this catalog's ids from another's.

    An index file built from a catalog that was since replaced (a restored backup, a new file)
    may hold the same ids for other content; its anchor then differs and it is rebuilt.
    """
    row = con.execute(
        "SELECT id, content_hash, created_at FROM vectors WHERE model_id = ? ORDER BY id LIMIT 1", (model_id,)
    ).fetchone()
    return None if row is None else f"{row[0]}:{row[1]}:{utc(row[2])}"


def vector_models(con: sqlite3.Connection) -> list[str]:
    """Every model the catalog has kept vectors for (its bookkeeping row stays when they are all gone)."""
    return [str(r[0]) for r in con.execute("SELECT model_id FROM index_state ORDER BY model_id")]


def model_dim(con: sqlite3.Connection, model_id: str) -> int | None:
    """The dimension of the model's stored vectors, or None when it has none."""
    row = con.execute("SELECT dim FROM vectors WHERE model_id = ? LIMIT 1", (model_id,)).fetchone()
    return None if row is None else int(row[0])


def photos_without_vector(con: sqlite3.Connection, model_id: str) -> int:
    """How many indexed photos have no vector for `model_id` yet (the model was switched since they were indexed).

    While the catalog has only ever held this model's vectors, every indexed photo has one (a
    photo becomes 'indexed' when its vector is stored, and only vectors no photo holds are
    deleted), so the common case costs one look at `index_state`, not a scan of the photos.
    """
    others = con.execute("SELECT count(*) FROM index_state WHERE model_id != ?", (model_id,)).fetchone()[0]
    if not others:
        return 0
    row = con.execute(
        "SELECT count(*) FROM photos AS p WHERE p.status = 'indexed' AND NOT EXISTS "
        "(SELECT 1 FROM vectors AS v WHERE v.model_id = ? AND v.content_hash = p.content_hash)",
        (model_id,),
    ).fetchone()
    return int(row[0])


def photos_per_model(con: sqlite3.Connection) -> dict[str, int]:
    """For every model with vectors: how many indexed photos have a vector of that model."""
    rows = con.execute(
        "SELECT v.model_id, count(p.id) FROM vectors AS v JOIN photos AS p ON p.content_hash = v.content_hash "
        "WHERE p.status = 'indexed' GROUP BY v.model_id"
    )
    return {str(model): int(n) for model, n in rows}


def unheld_vectors(con: sqlite3.Connection) -> tuple[int, int]:
    """(count, bytes) of the vectors, of every model, that no photo holds (collected after a grace period)."""
    row = con.execute(
        "SELECT count(*), coalesce(sum(length(v.vector)), 0) FROM vectors AS v "
        "WHERE NOT EXISTS (SELECT 1 FROM photos AS p WHERE p.content_hash = v.content_hash)"
    ).fetchone()
    return int(row[0]), int(row[1])


def iter_vectors(
    con: sqlite3.Connection, model_id: str, *, after_id: int = 0, chunk: int = 20_000
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Chunks (ids int64 [n], vectors float32 [n, dim]) of the model's vectors with id > after_id, by id.

    Keyset pagination: each chunk is its own query, so memory stays at one chunk; run it inside
    one read transaction for a consistent snapshot.
    """
    last = after_id
    while True:
        rows = con.execute(
            "SELECT id, dim, vector FROM vectors WHERE model_id = ? AND id > ? ORDER BY id LIMIT ?",
            (model_id, last, chunk),
        ).fetchall()
        if not rows:
            return
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        yield ids, matrix([r[2] for r in rows], rows[0][1])
        last = int(ids[-1])


def vector_for_hash(con: sqlite3.Connection, model_id: str, content_hash: str) -> np.ndarray | None:
    """The stored vector (float32) of one content hash under `model_id`, or None."""
    row = con.execute(
        "SELECT dim, vector FROM vectors WHERE model_id = ? AND content_hash = ?", (model_id, content_hash)
    ).fetchone()
    return None if row is None else matrix([row[1]], row[0])[0]


# ---------------------------------------------------------------- search results


def path_range(path: str | os.PathLike[str]) -> tuple[bytes, bytes, bytes]:
    """`path` as stored (its bytes), and the byte range [low, high) of every path below it as a folder:
    names starting with `path/` lie from `path/` up to `path0` ('0' follows '/')."""
    exact = os.fsencode(path)
    low = exact.rstrip(b"/") + b"/"
    return exact, low, low[:-1] + b"0"


def _at_or_under(prefix: str | os.PathLike[str]) -> tuple[str, tuple[bytes, bytes, bytes]]:
    """SQL (and its parameters) for the photo at `prefix` itself (a root that is one file) or below the folder
    (a byte range, `path_range`, that the path index can use)."""
    sql = "(p.path = CAST(? AS TEXT) OR (p.path >= CAST(? AS TEXT) AND p.path < CAST(? AS TEXT)))"
    return sql, path_range(prefix)


def live_photos_for_vectors(
    con: sqlite3.Connection,
    model_id: str,
    vector_ids: Sequence[int],
    prefix: str | os.PathLike[str] | None = None,
    *,
    filters: Filters | None = None,
) -> dict[int, list[Photo]]:
    """For each vector id, its indexed photos (optionally only under the folder `prefix`, or only those
    passing `filters`), by path."""
    where: str = ""
    extra: tuple[object, ...] = ()
    if prefix is not None:
        clause, extra = _at_or_under(prefix)
        where = " AND " + clause
    if filters is not None and not filters.empty:
        clause, params = filter_clause(con, filters, indexed=False)
        where += " AND " + clause
        extra = (*extra, *params)
    found: dict[int, list[Photo]] = {}
    for chunk in _chunks(sorted({int(i) for i in vector_ids})):
        marks = ", ".join("?" * len(chunk))
        # Both unary +: the id list is what narrows, so the plan must start from the vectors'
        # primary key (0.1-0.5 ms at 100k photos), not walk the model's (model_id, content_hash)
        # index (7-13 ms) or every indexed photo (~1 s).
        rows = con.execute(
            f"SELECT v.id, {_PHOTO_SELECT} FROM vectors AS v JOIN photos AS p ON p.content_hash = v.content_hash "
            f"WHERE v.id IN ({marks}) AND +v.model_id = ? AND +p.status = 'indexed'{where} "
            "ORDER BY v.id, p.path",
            (*chunk, model_id, *extra),
        )
        for row in rows:
            found.setdefault(int(row[0]), []).append(photo(row[1:]))
    return found


def vector_ids_under(con: sqlite3.Connection, model_id: str, prefix: str | os.PathLike[str]) -> np.ndarray:
    """Sorted int64 ids of the model's vectors held by an indexed photo under the folder `prefix`."""
    return _vector_ids_where(con, model_id, *_at_or_under(prefix))


def vector_ids_matching(con: sqlite3.Connection, model_id: str, filters: Filters) -> np.ndarray:
    """Sorted int64 ids of the model's vectors held by an indexed photo that passes `filters`."""
    return _vector_ids_where(con, model_id, *filter_clause(con, filters))


def _vector_ids_where(con: sqlite3.Connection, model_id: str, where: str, params: Sequence[object]) -> np.ndarray:
    # The filter's own index finds the photos (a few ms for 1,000 of 100,000), then each photo's
    # vector is one lookup in the (model_id, content_hash) index. CROSS JOIN fixes that order:
    # without statistics SQLite would walk every vector of the model and look up its photos
    # (~100 ms at 100k photos, whatever the filter). The unary + keeps the status index (which
    # nearly every photo passes) from being the way in. docs/search.md, "Filters".
    rows = con.execute(
        "SELECT DISTINCT v.id FROM photos AS p CROSS JOIN vectors AS v "
        f"WHERE v.content_hash = p.content_hash AND v.model_id = ? AND +p.status = 'indexed' AND {where} "
        "ORDER BY v.id",
        (model_id, *params),
    ).fetchall()
    return np.array([r[0] for r in rows], dtype=np.int64)


def list_photos(con: sqlite3.Connection, filters: Filters, *, limit: int, offset: int = 0) -> list[Photo]:
    """A page of the indexed photos passing `filters`, newest first (undated ones last, by path)."""
    where, params = filter_clause(con, filters) if not filters.empty else ("1", ())
    rows = con.execute(
        f"SELECT {_PHOTO_SELECT} FROM photos AS p WHERE p.status = 'indexed' AND {where} "
        "ORDER BY p.taken_local IS NULL, p.taken_local DESC, p.path LIMIT ? OFFSET ?",
        (*params, limit, offset),
    )
    return [photo(r) for r in rows]


def places(con: sqlite3.Connection, place_ids: Sequence[int]) -> dict[int, Place]:
    """The places of these ids (those the catalog has)."""
    found: dict[int, Place] = {}
    for chunk in _chunks(sorted({int(i) for i in place_ids})):
        marks = ", ".join("?" * len(chunk))
        for row in con.execute(
            f"SELECT id, city, region, country_code, country, lat, lon FROM places WHERE id IN ({marks})", tuple(chunk)
        ):
            found[int(row[0])] = Place(*row)
    return found


@dataclass(frozen=True, slots=True)
class Place:
    """A GeoNames city some photo was taken nearest to."""

    id: int
    city: str
    region: str | None
    country_code: str
    country: str | None
    lat: float
    lon: float

    @property
    def label(self) -> str:
        """"City, Country" (or the country code when the name is unknown)."""
        return f"{self.city}, {self.country or self.country_code}"


def filter_clause(
    con: sqlite3.Connection, filters: Filters, *, indexed: bool = True
) -> tuple[str, tuple[object, ...]]:
    """SQL over the photos alias `p` (and its parameters) for the photos passing `filters`.

    Each filter has an index to enter by (docs/search.md, "Filters"); `--camera` and `--place`
    are first resolved to the few cameras and places the catalog knows, so they become `IN` lists.
    `indexed=False` is for a check on photos another key already narrows (vector ids, content
    hashes): every column gets a unary + so SQLite's planner does not enter by the filter's index
    instead (a camera's 1,000 photos walked for each of 40 hits: ~140 ms at 100k photos).
    """
    c = "p." if indexed else "+p."
    parts: list[str] = []
    params: list[object] = []
    if filters.folder is not None:
        clause, extra = _at_or_under(filters.folder)
        parts.append(clause if indexed else clause.replace("p.path", "+p.path"))
        params += extra
    if filters.after is not None:
        parts.append(f"{c}taken_local >= ?")
        params.append(filters.after)
    if filters.before is not None:
        parts.append(f"{c}taken_local < ?")
        params.append(filters.before)
    if filters.camera is not None:
        needle = filters.camera.casefold()
        pairs = [
            (make, model)
            for make, model in cameras(con)
            if needle in " ".join(x for x in (make, model) if x).casefold() or needle in (model or "").casefold()
        ]
        if not pairs:
            parts.append("0")
        else:
            ors = []
            for make, model in pairs:
                ors.append(f"({c}camera_make IS ? AND {c}camera_model IS ?)")
                params += [make, model]
            parts.append("(" + " OR ".join(ors) + ")")
    if filters.place is not None:
        parts.append(f"{c}place_id IN (SELECT place_id FROM place_names WHERE name = ?)")
        params.append(place_key(filters.place))
    if filters.near is not None:
        lat, lon, km = filters.near.lat, filters.near.lon, filters.near.km
        dlat = math.degrees(km / EARTH_KM)
        parts.append(f"{c}gps_lat BETWEEN ? AND ?")
        params += [lat - dlat, lat + dlat]
        cos = math.cos(math.radians(lat))
        dlon = math.degrees(km / (EARTH_KM * cos)) if cos > 1e-6 and lat - dlat > -90 and lat + dlat < 90 else 180.0
        if dlon < 180.0:
            low, high = lon - dlon, lon + dlon
            if low < -180.0 or high > 180.0:  # across the antimeridian
                parts.append(f"({c}gps_lon >= ? OR {c}gps_lon <= ?)")
                params += [low + 360.0 if low < -180.0 else low, high - 360.0 if high > 180.0 else high]
            else:
                parts.append(f"{c}gps_lon BETWEEN ? AND ?")
                params += [low, high]
        # The box above uses the index; the great-circle distance itself is exact.
        parts.append("near_km(p.gps_lat, p.gps_lon, ?, ?) <= ?")
        params += [lat, lon, km]
        _register_near_km(con)
    if filters.formats:
        parts.append(f"{c}format IN ({', '.join('?' * len(filters.formats))})")
        params += list(filters.formats)
    return " AND ".join(parts) or "1", tuple(params)


def cameras(con: sqlite3.Connection) -> list[tuple[str | None, str | None]]:
    """The distinct (make, model) pairs of the catalog's photos (not both unknown), by make then model.

    A skip scan of the (camera_make, camera_model) index: one indexed lookup per pair, so a library
    of 100,000 photos from 10 cameras costs ~20 lookups, not a walk of 100,000 index entries
    (~10 ms, paid by every `--camera` search). Plain `=` and `IS NULL` (not `IS ?`) keep the index
    usable on PostgreSQL too, whose NULLs sort last: the NULL model is asked for on its own.
    """

    def one(sql: str, params: tuple[object, ...]) -> tuple[bool, object]:
        row = con.execute(sql, params).fetchone()
        return (row is not None, None if row is None else row[0])

    makes: list[str | None] = []
    if one("SELECT 1 FROM photos WHERE camera_make IS NULL AND camera_model IS NOT NULL LIMIT 1", ())[0]:
        makes.append(None)
    found, make = one(
        "SELECT camera_make FROM photos WHERE camera_make IS NOT NULL ORDER BY camera_make LIMIT 1", ()
    )
    while found:
        makes.append(cast(str, make))
        found, make = one(
            "SELECT camera_make FROM photos WHERE camera_make > ? ORDER BY camera_make LIMIT 1", (make,)
        )
    pairs: list[tuple[str | None, str | None]] = []
    for make in makes:
        same = "camera_make IS NULL" if make is None else "camera_make = ?"
        key: tuple[object, ...] = () if make is None else (make,)
        if make is not None and one(f"SELECT 1 FROM photos WHERE {same} AND camera_model IS NULL LIMIT 1", key)[0]:
            pairs.append((make, None))
        found, model = one(
            f"SELECT camera_model FROM photos WHERE {same} AND camera_model IS NOT NULL ORDER BY camera_model LIMIT 1",
            key,
        )
        while found:
            pairs.append((make, cast(str, model)))
            found, model = one(
                f"SELECT camera_model FROM photos WHERE {same} AND camera_model > ? ORDER BY camera_model LIMIT 1",
                (*key, model),
            )
    return pairs


EARTH_KM = 6371.0088  # mean Earth radius


def place_key(name: str) -> str:
    """How a place name is looked up: case-folded, inner spaces collapsed."""
    return " ".join(name.casefold().split())


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine) in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


def _near_km(lat: float | None, lon: float | None, lat0: float, lon0: float) -> float | None:
    if lat is None or lon is None:
        return None
    return distance_km(lat, lon, lat0, lon0)


def _register_near_km(con: sqlite3.Connection) -> None:
    con.create_function("near_km", 4, _near_km, deterministic=True)


# ---------------------------------------------------------------- the scan diff


def photo_states_under(
    con: sqlite3.Connection,
    scope: str | os.PathLike[str],
    *,
    after: bytes | None = None,
    limit: int = 2000,
    model_id: str | None = None,
) -> list[PhotoState]:
    """Up to `limit` cataloged files at `scope` or below it, by path in byte order, after the path `after`.

    Keyset pagination over the unique path index: the indexer pages through a root of any size
    in step with its walk (`scanner.walk` yields the same order). Each page is one range scan of
    the index (an OR of "at" and "under" would make SQLite sort, ~25 ms a page at 300k photos).
    With `model_id`, each state says whether its content has a vector for that model (one lookup
    in the vectors' (model_id, content_hash) index per row).
    """
    exact, low, high = path_range(scope)
    columns = (
        "id, path, size, mtime_ns, status, content_hash, error, meta_version, "
        "failure_kind, failure_decoders, failure_attempts"
    )
    params: tuple[object, ...] = ()
    if model_id is not None:
        columns += (
            ", EXISTS (SELECT 1 FROM vectors AS v WHERE v.model_id = ? AND v.content_hash = photos.content_hash)"
        )
        params = (model_id,)
    rows: list[tuple[object, ...]] = []
    if after is None or after < exact:  # the file at `scope` itself sorts before everything below it
        rows += con.execute(
            f"SELECT {columns} FROM photos WHERE path = CAST(? AS TEXT)", (*params, exact)
        ).fetchall()
    if after is None or after < low:
        bound, lower = "path >= CAST(? AS TEXT)", low
    else:
        bound, lower = "path > CAST(? AS TEXT)", after
    rows += con.execute(
        f"SELECT {columns} FROM photos WHERE {bound} AND path < CAST(? AS TEXT) ORDER BY path LIMIT ?",
        (*params, lower, high, limit),
    ).fetchall()
    if model_id is None:
        return [PhotoState(*row) for row in rows]  # type: ignore[arg-type]
    return [PhotoState(*row[:-1], bool(row[-1])) for row in rows]  # type: ignore[arg-type, call-arg]


# ---------------------------------------------------------------- what `photoindex status` shows

# catalog.schema.PHOTO_STATUSES, without importing SQLAlchemy (a test checks they agree)
STATUSES: tuple[str, ...] = ("pending", "indexed", "failed", "missing")


def count_by_status(con: sqlite3.Connection) -> dict[str, int]:
    """How many photos are in each status (every status present, 0 when none)."""
    counts = dict.fromkeys(STATUSES, 0)
    counts.update({str(s): int(n) for s, n in con.execute("SELECT status, count(*) FROM photos GROUP BY status")})
    return counts


def root_paths(con: sqlite3.Connection) -> list[str]:
    """Every root's catalog path (`NAME:` for a named root, photoindex/mounts.py), in byte order."""
    return [str(p) for (p,) in con.execute("SELECT path FROM roots ORDER BY path")]


def root_summaries(con: sqlite3.Connection) -> list[dict[str, object]]:
    """Per root: id, path, name, present, watch_mode, last_scan_at (aware UTC or None), photos (not missing)."""
    rows = con.execute(
        "SELECT r.id, r.path, r.name, r.present, r.watch_mode, r.last_scan_at,"
        " count(CASE WHEN p.status != 'missing' THEN 1 END)"
        " FROM roots r LEFT JOIN photos p ON p.root_id = r.id GROUP BY r.id ORDER BY r.path"
    )
    return [
        {
            "id": int(i),
            "path": path,
            "name": name,
            "present": bool(present),
            "watch_mode": mode,
            "last_scan_at": utc(scanned),
            "photos": int(n),
        }
        for i, path, name, present, mode, scanned, n in rows
    ]


def recent_failures(con: sqlite3.Connection, limit: int) -> list[tuple[str, str]]:
    """(path, error) of the most recently failed photos."""
    rows = con.execute(
        "SELECT path, error FROM photos WHERE status = 'failed' ORDER BY updated_at DESC, id DESC LIMIT ?", (limit,)
    )
    return [(str(p), str(e or "")) for p, e in rows]

# ---------------------------------------------------------------- one photo (the web page)


def live_photo(con: sqlite3.Connection, photo_id: int) -> Photo | None:
    """The photo with this id when it is indexed (a live, searchable photo), else None."""
    row = con.execute(
        f"SELECT {_PHOTO_SELECT} FROM photos AS p WHERE p.id = ? AND p.status = 'indexed'", (photo_id,)
    ).fetchone()
    return None if row is None else photo(row)


def live_content_hashes(con: sqlite3.Connection, photo_ids: Sequence[int]) -> dict[int, str]:
    """The content hash of each indexed photo among these ids (the web page's inline thumbnails)."""
    found: dict[int, str] = {}
    for chunk in _chunks(sorted({int(i) for i in photo_ids})):
        marks = ", ".join("?" * len(chunk))
        for pid, digest in con.execute(
            f"SELECT id, content_hash FROM photos WHERE id IN ({marks}) AND status = 'indexed' "
            "AND content_hash IS NOT NULL",
            tuple(chunk),
        ):
            found[int(pid)] = str(digest)
    return found
