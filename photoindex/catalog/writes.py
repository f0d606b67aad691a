"""The repository of roots, photos and vectors: plain functions over a `Session` that never commit.

Callers own the unit of work (`with db.write() as s:` around one batch) and get dataclasses back,
never ORM objects. Paths go in as `str` or `PathLike` and come out as `str` in the `os.fsdecode`
spelling, so a name that is not valid UTF-8 round-trips. Every change to a model's vectors bumps
its `generation` in the same transaction; deleting vectors also bumps `vectors_epoch`, which tells
an index cache to rebuild rather than catch up (ids only ever grow, so catching up is "id > N").
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Protocol, cast

import numpy as np
from sqlalchemy import (
    CursorResult,
    Table,
    and_,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql import text
from sqlalchemy.sql.elements import ColumnElement

from photoindex.catalog import reads
from photoindex.catalog.reads import IndexState, Photo
from photoindex.catalog.schema import PHOTO_STATUSES, WATCH_MODES, Base
from photoindex.errors import CatalogError
from photoindex.mounts import named_root, root_name
from photoindex.paths import within

_ROOTS: Table = Base.metadata.tables["roots"]
_PHOTOS: Table = Base.metadata.tables["photos"]
_PLACES: Table = Base.metadata.tables["places"]
_PLACE_NAMES: Table = Base.metadata.tables["place_names"]
_VECTORS: Table = Base.metadata.tables["vectors"]
_STATE: Table = Base.metadata.tables["index_state"]

# Bound parameters per statement stay far below SQLite's limit (999 before 3.32).
_IN_CHUNK = 500
ROOTS_LOCK = 0x726F6F7473  # pg_advisory_xact_lock key of root changes ("roots")
_VECTOR_DTYPE = np.dtype("<f4")

LinkOutcome = Literal["added", "updated", "restored", "moved"]
_NO_FAILURE: dict[str, Any] = dict(failure_kind=None, failure_decoders=None, failure_attempts=0)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount or 0)


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class RootRecord:
    """A folder being indexed (`id` -1: not in the catalog yet)."""

    id: int
    path: str
    present: bool = True
    added_at: datetime | None = None
    last_scan_at: datetime | None = None
    watch_mode: str = "auto"
    name: str | None = None  # registered under this name: `path` is `NAME:` (photoindex/mounts.py)


class ImageFacts(Protocol):
    """What decoding learned about a photo (`imaging.PhotoInfo` has this shape; read-only is enough)."""

    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def format(self) -> str: ...
    @property
    def taken_at(self) -> str | None: ...
    @property
    def camera_make(self) -> str | None: ...
    @property
    def camera_model(self) -> str | None: ...
    @property
    def gps_lat(self) -> float | None: ...
    @property
    def gps_lon(self) -> float | None: ...


_PHOTO_COLUMNS = [_PHOTOS.c[name] for name in Photo.__dataclass_fields__]
_INFO_FIELDS = ("width", "height", "format", "taken_at", "camera_make", "camera_model", "gps_lat", "gps_lon",
                "gps_alt", "lens")
_DERIVED_FIELDS = ("taken_local", "taken_offset", "taken_source", "place_id")
# Bumped when the metadata read from a photo's header changes: older rows are read again by the
# next scan, headers only (docs/search.md, "Metadata").
META_VERSION = 1


def _photo(row: Any) -> Photo:
    return Photo(*row)


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _upsert(session: Session, table: Table) -> Any:
    """INSERT ... ON CONFLICT in the session's dialect (both spell it alike)."""
    return (postgresql.insert if _postgres(session) else sqlite.insert)(table)


def connection(session: Session) -> sqlite3.Connection:
    """The connection under `session`, inside its transaction, for the functions of `photoindex.reads`.

    On PostgreSQL a `postgres.PgReads`, which takes the same SQL.
    """
    driver = session.connection().connection.driver_connection
    if _postgres(session):
        from photoindex.catalog.postgres import PgReads

        return cast(sqlite3.Connection, PgReads(driver))
    return cast(sqlite3.Connection, driver)


def _root(row: Any) -> RootRecord:
    return RootRecord(
        id=row.id, path=row.path, present=bool(row.present), added_at=row.added_at,
        last_scan_at=row.last_scan_at, watch_mode=row.watch_mode, name=row.name,
    )


# ---------------------------------------------------------------- roots


def list_roots(session: Session) -> list[RootRecord]:
    """All roots, by path."""
    return [_root(r) for r in session.execute(select(_ROOTS).order_by(_ROOTS.c.path))]


def root_for_path(session: Session, path: str | os.PathLike[str]) -> RootRecord | None:
    """The root that contains `path` (a file or folder), or None."""
    target = os.fspath(path)
    for root in list_roots(session):
        if within(target, root.path):
            return root
    return None


def add_root(
    session: Session, path: str | os.PathLike[str], *, watch_mode: str = "auto", now: datetime | None = None
) -> RootRecord:
    """Add a folder to index (resolved to an absolute path) and return its root.

    A path in the catalog's spelling of a named root (`NAME:`, or `NAME:/folder` inside one; see
    photoindex/mounts.py) is taken as it is, and `NAME:` registers the root under NAME.
    Roots never overlap, so a photo belongs to one root: a folder inside an existing root returns
    that root; a folder that contains existing roots takes over their photos and replaces them.
    """
    if watch_mode not in WATCH_MODES:
        raise CatalogError(f"unknown watch mode {watch_mode!r}", f"use one of: {', '.join(WATCH_MODES)}")
    name = root_name(os.fspath(path))
    if name is not None:
        resolved = os.fspath(path)
        if resolved != named_root(name):
            name = None  # a folder inside the named root: the path carries the name
    else:
        resolved = os.fspath(Path(path).expanduser().resolve())
    if _postgres(session):
        # Writers of a shared catalog run at once: one adds roots at a time (SQLite's BEGIN
        # IMMEDIATE already is that), and reads the roots another just committed.
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ROOTS_LOCK})
    roots = list_roots(session)
    for root in roots:
        if within(resolved, root.path):
            return root
    result = cast(CursorResult[Any], session.execute(
        insert(_ROOTS).values(
            path=resolved, added_at=now or _now(), present=True, watch_mode=watch_mode, name=name
        )
    ))
    (root_id,) = result.inserted_primary_key or (None,)
    row = session.execute(select(_ROOTS).where(_ROOTS.c.id == root_id)).one()
    inner = [r.id for r in roots if within(r.path, resolved)]
    if inner:
        away = [r.id for r in roots if r.id in inner and not r.present]
        if away:
            # Missing because their drive was away, not deleted: the forgetting clock
            # (`forget_missing`) starts now, under a root that is there.
            session.execute(
                update(_PHOTOS)
                .where(_PHOTOS.c.root_id.in_(away), _PHOTOS.c.status == "missing")
                .values(updated_at=now or _now())
            )
        session.execute(update(_PHOTOS).where(_PHOTOS.c.root_id.in_(inner)).values(root_id=row.id))
        session.execute(delete(_ROOTS).where(_ROOTS.c.id.in_(inner)))
    return _root(row)


def name_roots(session: Session, mounts: Mapping[str, str]) -> list[tuple[str, str]]:
    """Give every root registered by its absolute path inside a mount of `[catalog] roots` (`mounts`:
    name -> this machine's mount path) its name's spelling, `NAME:` or `NAME:/folder` (docs/scale.md,
    "Roots on several machines"); returns the (old path, new path) of each root respelled.

    Run by every writer before it reads the roots, so a mapping added to config.toml is in force for
    `reindex`, the daemon and `index PATH` alike. A root whose photos another machine already named
    is merged into the named one (`respell_root`). A mount inside a root registered by its absolute
    path raises CatalogError: the name would cover part of that root's photos.
    """
    if not mounts:
        return []
    if _postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ROOTS_LOCK})
    done: list[tuple[str, str]] = []
    for name, mount in mounts.items():
        # Roots are stored resolved (`add_root`); a mount may be written through a symlink.
        for base in dict.fromkeys((mount, os.path.realpath(mount))):
            for root in list_roots(session):
                if root_name(root.path) is not None:
                    continue
                if within(root.path, base):
                    new = named_root(name) + root.path[len(base.rstrip(os.sep)) :]
                    respell_root(session, root, new)
                    done.append((root.path, new))
                elif within(base, root.path):
                    raise CatalogError(
                        f"[catalog] roots maps {name} to {mount}, inside {root.path}, a root of this "
                        "library registered by its path: the name would cover part of that root's photos",
                        f'map the name to the whole root instead ("{name}={root.path}"), or forget that root '
                        f"(`photoindex forget {root.path}`) and index {mount}",
                    )
    return done


def respell_root(session: Session, root: RootRecord, path: str) -> int:
    """Give a root and its photos a new spelling of the same folder: `path` replaces `root.path` at the
    start of each (naming a root registered by its absolute path, photoindex/mounts.py), in one
    set-based UPDATE. Ids, vectors and everything else stay. Returns how many photo rows were respelled.

    Where the new spelling meets roots already there (another machine named the same share first),
    roots never overlap: a photo the catalog already holds under the new spelling keeps that row and
    this root's copy of it is dropped (its vector is shared by content hash); the rest join the root
    that contains `path`, or, when `path` contains other roots, those roots' photos join this one.
    The caller holds the roots lock (`name_roots`); a conflict left over raises CatalogError.
    """
    from sqlalchemy.exc import IntegrityError

    others = [r for r in list_roots(session) if r.id != root.id and (within(path, r.path) or within(r.path, path))]
    holder = next((r for r in others if within(path, r.path)), None)
    cut = len(os.fsencode(root.path)) + 1
    if _postgres(session):
        respelled = "CAST(:new AS BYTEA) || substring(photos.path FROM :cut)"
    else:
        # Byte-wise on the path's bytes (substr of TEXT would count characters), stored back as TEXT.
        respelled = "CAST(CAST(:new AS BLOB) || substr(CAST(photos.path AS BLOB), :cut) AS TEXT)"
    values = {"new": os.fsencode(path), "cut": cut, "id": root.id}
    try:
        session.execute(
            text(
                f"DELETE FROM photos WHERE root_id = :id AND EXISTS "
                f"(SELECT 1 FROM photos AS other WHERE other.path = {respelled} AND other.root_id != :id)"
            ),
            values,
        )
        moved = _rowcount(session.execute(text(f"UPDATE photos SET path = {respelled} WHERE root_id = :id"), values))
        if holder is not None:
            session.execute(update(_PHOTOS).where(_PHOTOS.c.root_id == root.id).values(root_id=holder.id))
            session.execute(delete(_ROOTS).where(_ROOTS.c.id == root.id))
            return moved
        name = root_name(path)
        session.execute(
            update(_ROOTS).where(_ROOTS.c.id == root.id)
            .values(path=path, name=name if name is not None and path == named_root(name) else None)
        )
        inner = [r.id for r in others]
        if inner:
            session.execute(update(_PHOTOS).where(_PHOTOS.c.root_id.in_(inner)).values(root_id=root.id))
            session.execute(delete(_ROOTS).where(_ROOTS.c.id.in_(inner)))
    except IntegrityError as exc:
        raise CatalogError(
            f"cannot respell the root {root.path} as {path}: {exc.orig}",
            "run `photoindex doctor`; if the conflict stays, forget one of the roots (`photoindex forget`) "
            "and index it again",
        ) from None
    return moved


def remove_root(session: Session, root_id: int) -> int:
    """Forget a root and its photos (vectors stay until `delete_orphan_vectors`); returns the photo count."""
    removed = _rowcount(session.execute(delete(_PHOTOS).where(_PHOTOS.c.root_id == root_id)))
    session.execute(delete(_ROOTS).where(_ROOTS.c.id == root_id))
    return removed


def update_root(
    session: Session,
    root_id: int,
    *,
    present: bool | None = None,
    last_scan_at: datetime | None = None,
    watch_mode: str | None = None,
) -> None:
    """Change a root's scan facts or watch mode (None leaves a field as it is)."""
    values: dict[str, Any] = {}
    if present is not None:
        values["present"] = present
    if last_scan_at is not None:
        values["last_scan_at"] = last_scan_at
    if watch_mode is not None:
        if watch_mode not in WATCH_MODES:
            raise CatalogError(f"unknown watch mode {watch_mode!r}", f"use one of: {', '.join(WATCH_MODES)}")
        values["watch_mode"] = watch_mode
    if values:
        session.execute(update(_ROOTS).where(_ROOTS.c.id == root_id).values(**values))


def root_summaries(session: Session) -> list[dict[str, Any]]:
    """Per root, JSON-ready: id, path, present, watch_mode, last_scan_at (ISO/None), photos (not missing)."""
    live = func.count(_PHOTOS.c.id).filter(_PHOTOS.c.status != "missing")
    query = (
        select(_ROOTS, live.label("photos"))
        .select_from(_ROOTS.outerjoin(_PHOTOS, _PHOTOS.c.root_id == _ROOTS.c.id))
        .group_by(_ROOTS.c.id)
        .order_by(_ROOTS.c.path)
    )
    return [
        {
            "id": row.id,
            "path": row.path,
            "name": row.name,
            "present": bool(row.present),
            "watch_mode": row.watch_mode,
            "last_scan_at": row.last_scan_at.isoformat() if row.last_scan_at else None,
            "photos": int(row.photos),
        }
        for row in session.execute(query)
    ]


def set_roots_scanned(
    session: Session, root_ids: Iterable[int], present: Mapping[int, bool], *, at: datetime | None = None
) -> None:
    """Record that the roots were just scanned, and whether each folder was there."""
    when = at or _now()
    for root_id in root_ids:
        update_root(session, root_id, present=present.get(root_id, True), last_scan_at=when)


# ---------------------------------------------------------------- photos


def get_photo(session: Session, path: str | os.PathLike[str]) -> Photo | None:
    """The photo at `path`, or None."""
    row = session.execute(select(*_PHOTO_COLUMNS).where(_PHOTOS.c.path == os.fspath(path))).one_or_none()
    return None if row is None else _photo(row)


def photos_with_hash(session: Session, content_hash: str) -> list[Photo]:
    """Every photo (any status) holding this content, by path."""
    rows = session.execute(
        select(*_PHOTO_COLUMNS).where(_PHOTOS.c.content_hash == content_hash).order_by(_PHOTOS.c.path)
    )
    return [_photo(r) for r in rows]


def photos_with_status(
    session: Session, status: str, *, root_id: int | None = None, limit: int | None = None
) -> list[Photo]:
    """Photos in one status (optionally of one root), most recently updated first."""
    query = select(*_PHOTO_COLUMNS).where(_PHOTOS.c.status == status)
    if root_id is not None:
        query = query.where(_PHOTOS.c.root_id == root_id)
    query = query.order_by(_PHOTOS.c.updated_at.desc(), _PHOTOS.c.id.desc()).limit(limit)
    return [_photo(r) for r in session.execute(query)]


def recent_failures(session: Session, limit: int = 20) -> list[Photo]:
    """The most recently failed photos, with their `error`."""
    return photos_with_status(session, "failed", limit=limit)


def count_by_status(session: Session, *, root_id: int | None = None) -> dict[str, int]:
    """How many photos are in each status (every status present, 0 when none)."""
    query = select(_PHOTOS.c.status, func.count()).group_by(_PHOTOS.c.status)
    if root_id is not None:
        query = query.where(_PHOTOS.c.root_id == root_id)
    counts = dict.fromkeys(PHOTO_STATUSES, 0)
    counts.update({status: int(n) for status, n in session.execute(query)})
    return counts


def missing_stat_keys(
    session: Session, candidates: Iterable[tuple[int, int]] | None = None
) -> set[tuple[int, int]]:
    """(size, mtime_ns) of missing photos: a new file matching one is likely a move, so hash it first.

    With `candidates`, only those keys are looked up (by size, in chunks), so a daemon batch of a
    few files does not read every missing row of an unplugged drive.
    """
    base = select(_PHOTOS.c.size, _PHOTOS.c.mtime_ns).where(_PHOTOS.c.status == "missing")
    if candidates is None:
        return {(int(size), int(mtime)) for size, mtime in session.execute(base)}
    wanted = set(candidates)
    found: set[tuple[int, int]] = set()
    for chunk in _chunks(sorted({size for size, _ in wanted})):
        rows = session.execute(base.where(_PHOTOS.c.size.in_(chunk)))
        found.update(key for key in ((int(a), int(b)) for a, b in rows) if key in wanted)
    return found


def _info_values(session: Session, info: ImageFacts | None, mtime_ns: int | None = None) -> dict[str, Any]:
    """The metadata columns of a photo: what its header said, when it was taken, where (the nearest city)."""
    if info is None:
        return {**dict.fromkeys(_INFO_FIELDS), **dict.fromkeys(_DERIVED_FIELDS), "meta_version": 0}
    values = {name: getattr(info, name, None) for name in _INFO_FIELDS}
    values.update(taken_fields(values["taken_at"], getattr(info, "taken_source", None), mtime_ns))
    values["taken_at"] = values.pop("taken_iso")
    values["place_id"] = None
    if values["gps_lat"] is not None and values["gps_lon"] is not None:
        values["place_id"] = _place_id(session, values["gps_lat"], values["gps_lon"])
    values["meta_version"] = META_VERSION
    return values


def taken_fields(taken_at: str | None, source: str | None, mtime_ns: int | None) -> dict[str, Any]:
    """taken_iso, taken_local, taken_offset (minutes), taken_source from EXIF's ISO time, else the file's mtime.

    An EXIF time without an offset is the camera's wall clock in an unknown zone: kept as it is, offset
    None. The mtime is an instant, shown in this machine's zone (the best guess of where it was taken).
    """
    if taken_at is not None:
        try:
            moment = datetime.fromisoformat(taken_at)
        except ValueError:
            moment = None
        if moment is not None:
            offset = moment.utcoffset()
            minutes = None if offset is None else int(offset.total_seconds() // 60)
            return dict(taken_iso=taken_at, taken_local=moment.replace(tzinfo=None).isoformat(timespec="seconds"),
                        taken_offset=minutes, taken_source=source or "exif")
    if mtime_ns is None:
        return dict(taken_iso=None, taken_local=None, taken_offset=None, taken_source=None)
    try:
        local = datetime.fromtimestamp(mtime_ns / 1e9, tz=timezone.utc).astimezone()
    except (OverflowError, OSError, ValueError):
        return dict(taken_iso=None, taken_local=None, taken_offset=None, taken_source=None)
    offset = local.utcoffset()
    return dict(
        taken_iso=local.isoformat(timespec="seconds"),
        taken_local=local.replace(tzinfo=None).isoformat(timespec="seconds"),
        taken_offset=None if offset is None else int(offset.total_seconds() // 60),
        taken_source="mtime",
    )


def _place_id(session: Session, lat: float, lon: float) -> int | None:
    """The GeoNames id of the city nearest (lat, lon), its rows added to `places` on first use; None
    without the places data (the `places` extra)."""
    from photoindex.places import nearest_place

    place = nearest_place(lat, lon)
    if place is None:
        return None
    if _postgres(session):
        if session.execute(select(_PLACES.c.id).where(_PLACES.c.id == place.id)).scalar_one_or_none() is None:
            session.execute(
                insert(_PLACES).values(
                    id=place.id, city=place.city, region=place.region, country_code=place.country_code,
                    country=place.country, lat=place.lat, lon=place.lon,
                )
            )
            names = sorted({reads.place_key(n) for n in place.names if n.strip()})
            session.execute(
                postgresql.insert(_PLACE_NAMES).on_conflict_do_nothing(),
                [{"name": n, "place_id": place.id} for n in names],
            )
        return place.id
    con = connection(session)
    if con.execute("SELECT 1 FROM places WHERE id = ?", (place.id,)).fetchone() is None:
        con.execute(
            "INSERT INTO places (id, city, region, country_code, country, lat, lon) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (place.id, place.city, place.region, place.country_code, place.country, place.lat, place.lon),
        )
        keys = sorted({reads.place_key(n) for n in place.names if n.strip()})
        con.executemany("INSERT OR IGNORE INTO place_names (name, place_id) VALUES (?, ?)",
                        [(k, place.id) for k in keys])
    return place.id


def store_metadata(session: Session, rows: Sequence[tuple[int, ImageFacts, int]]) -> int:
    """Fill the metadata columns of photos (id, what the header says, mtime_ns): the backfill of rows
    written before the metadata they now carry; their content and vectors are untouched."""
    names = [n for n in (*_INFO_FIELDS, *_DERIVED_FIELDS, "meta_version") if n not in ("width", "height")]
    statement = f"UPDATE photos SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?"
    params = []
    for photo_id, info, mtime_ns in rows:
        values = _info_values(session, info, mtime_ns)
        params.append([values[n] for n in names] + [photo_id])
    # Plain sqlite3 inside the session's transaction: ~20x less overhead per row than the ORM's
    # statement building, which a backfill of 100,000s of rows would feel.
    connection(session).executemany(statement, params)
    return len(rows)


# The photo upserts, one per dialect and set of columns: building one (its `excluded` alias proxies
# every column of the table) cost more CPU than running it, once per photo in the indexer's
# committing thread, which shares the cores with the decode workers (docs/indexing.md).
_PHOTO_UPSERTS: dict[tuple[str, tuple[str, ...]], Any] = {}


def _upsert_photo(session: Session, values: dict[str, Any], now: datetime) -> None:
    """Insert the photo at values["path"], or update the columns given; first_seen is kept."""
    _upsert_photos(session, [values], now)


def _upsert_photos(session: Session, rows: Sequence[dict[str, Any]], now: datetime) -> None:
    """`_upsert_photo` for each of `rows` (distinct paths): one execution per set of columns, not per photo
    (a statement's execution costs ~0.3 ms of the committing thread's CPU, a row in an executemany far less)."""
    groups: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = {}
    dialect = "postgresql" if _postgres(session) else "sqlite"
    for values in rows:
        if values.get("status") != "pending":  # done with: no indexer's claim on it any more
            values = {**values, "claimed_by": None, "claim_until": None}
        params = {"first_seen": now, "updated_at": now, **values}
        groups.setdefault((dialect, tuple(params)), []).append(params)
    for key, params_list in groups.items():
        statement = _PHOTO_UPSERTS.get(key)
        if statement is None:
            insert = _upsert(session, _PHOTOS)
            changes = {name: insert.excluded[name] for name in key[1] if name not in ("path", "first_seen")}
            statement = _PHOTO_UPSERTS[key] = insert.on_conflict_do_update(
                index_elements=[_PHOTOS.c.path], set_=changes
            )
        session.execute(statement, params_list if len(params_list) > 1 else params_list[0])


@dataclass(frozen=True)
class IndexedPhoto:
    """A photo whose content has a stored vector, as `store_indexed_many` records it."""

    root_id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str
    info: ImageFacts | None


def store_indexed_many(session: Session, photos: Sequence[IndexedPhoto], *, now: datetime | None = None) -> None:
    """`store_indexed` for a batch of photos at distinct paths, in as few statements as their column sets allow."""
    rows = []
    for p in photos:
        values = dict(root_id=p.root_id, path=p.path, size=p.size, mtime_ns=p.mtime_ns,
                      content_hash=p.content_hash, status="indexed", error=None, **_NO_FAILURE)
        values.update(_info_values(session, p.info, p.mtime_ns))
        rows.append(values)
    if rows:
        _upsert_photos(session, rows, now or _now())


def store_indexed(
    session: Session,
    *,
    root_id: int,
    path: str | os.PathLike[str],
    size: int,
    mtime_ns: int,
    content_hash: str,
    info: ImageFacts | None,
    now: datetime | None = None,
) -> None:
    """Record a photo whose content now has a stored vector (status 'indexed')."""
    store_indexed_many(session, [IndexedPhoto(root_id, os.fspath(path), size, mtime_ns, content_hash, info)], now=now)


def store_failed(
    session: Session,
    *,
    root_id: int,
    path: str | os.PathLike[str],
    size: int,
    mtime_ns: int,
    content_hash: str | None,
    error: str,
    kind: str | None = None,
    decoders: str | None = None,
    attempts: int = 1,
    now: datetime | None = None,
) -> None:
    """Record a photo that could not be indexed: `kind` is the cause, `decoders` the formats decodable now,
    `attempts` the runs in a row that failed the unchanged file. The indexer decides from these whether an
    unchanged file is tried again (a decoder appeared; a timeout or crash not retried too often)."""
    values = dict(root_id=root_id, path=os.fspath(path), size=size, mtime_ns=mtime_ns,
                  content_hash=content_hash, status="failed", error=error, failure_kind=kind,
                  failure_decoders=decoders, failure_attempts=attempts)
    values.update(_info_values(session, None))
    _upsert_photo(session, values, now or _now())


def store_pending(
    session: Session,
    *,
    root_id: int,
    path: str | os.PathLike[str],
    size: int,
    mtime_ns: int,
    now: datetime | None = None,
) -> None:
    """Record a file seen on disk but not processed yet (status 'pending')."""
    values = dict(root_id=root_id, path=os.fspath(path), size=size, mtime_ns=mtime_ns,
                  status="pending", error=None, **_NO_FAILURE)
    _upsert_photo(session, values, now or _now())


def link_photo(
    session: Session,
    *,
    root_id: int,
    path: str | os.PathLike[str],
    size: int,
    mtime_ns: int,
    content_hash: str,
    info: ImageFacts | None = None,
    now: datetime | None = None,
) -> LinkOutcome:
    """Point `path` at content whose vector is already stored (status 'indexed'); says what happened.

    "restored": the path was missing and is back; "updated": the path was known; "moved": a
    missing photo with this content now lives at `path` (its row moves, keeping id and
    first_seen); "added": a new photo (a copy of known content), also when a shared catalog's
    scan queued its path (`store_pending`) before its content was known.
    """
    when = now or _now()
    target = os.fspath(path)
    facts: dict[str, Any] = dict(root_id=root_id, size=size, mtime_ns=mtime_ns, content_hash=content_hash,
                                 status="indexed", error=None, updated_at=when, **_NO_FAILURE,
                                 claimed_by=None, claim_until=None)
    existing = session.execute(
        select(_PHOTOS.c.id, _PHOTOS.c.status, _PHOTOS.c.content_hash).where(_PHOTOS.c.path == target)
    ).one_or_none()
    if info is not None:
        facts.update(_info_values(session, info, mtime_ns))
    elif existing is not None and existing.content_hash != content_hash:
        facts.update(_info_values(session, None))  # new content: the old metadata describes something else
    def missing_with_content() -> int | None:
        return session.execute(
            select(_PHOTOS.c.id)
            .where(_PHOTOS.c.content_hash == content_hash, _PHOTOS.c.status == "missing")
            .order_by(_PHOTOS.c.updated_at.desc(), _PHOTOS.c.id.desc())
            .limit(1)
        ).scalar_one_or_none()

    moved: int | None = None
    if existing is not None and existing.status == "pending" and existing.content_hash is None:
        # A shared catalog's scan queued the new path before its content was known (`store_pending`):
        # the queued row gives way to a missing photo with this content, which moves here (as unqueued).
        moved = missing_with_content()
        if moved is not None:
            session.execute(delete(_PHOTOS).where(_PHOTOS.c.id == existing.id))
            existing = None
    if existing is not None:
        session.execute(update(_PHOTOS).where(_PHOTOS.c.id == existing.id).values(**facts))
        if existing.status == "pending" and existing.content_hash is None:
            return "added"  # a path new to the catalog, queued by a shared catalog's scan
        return "restored" if existing.status == "missing" else "updated"
    moved = moved if moved is not None else missing_with_content()
    if moved is not None:
        session.execute(update(_PHOTOS).where(_PHOTOS.c.id == moved).values(path=target, **facts))
        return "moved"
    session.execute(insert(_PHOTOS).values(path=target, first_seen=when, **facts))
    return "added"


def merge_moved(session: Session, path: str | os.PathLike[str], *, missing_since: datetime) -> bool:
    """Fold a late-found move: the photo added at `path` as a copy of known content becomes the row of a
    photo with that content that went missing since `missing_since` (keeping its id and first_seen).

    A scan that works in rounds can link a photo at its new path before it passes the old path (a
    folder renamed to a name earlier in the walk); this gives the result `link_photo` gives when
    the old row is already missing. Returns whether a row was folded.
    """
    target = os.fspath(path)
    new = session.execute(
        select(*_PHOTO_COLUMNS).where(_PHOTOS.c.path == target, _PHOTOS.c.status == "indexed")
    ).one_or_none()
    if new is None or new.content_hash is None:
        return False
    old = session.execute(
        select(_PHOTOS.c.id)
        .where(
            _PHOTOS.c.content_hash == new.content_hash,
            _PHOTOS.c.status == "missing",
            _PHOTOS.c.updated_at >= missing_since,
        )
        .order_by(_PHOTOS.c.updated_at.desc(), _PHOTOS.c.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if old is None:
        return False
    facts = {name: getattr(new, name) for name in Photo.__dataclass_fields__ if name not in ("id", "first_seen")}
    session.execute(delete(_PHOTOS).where(_PHOTOS.c.id == new.id))
    session.execute(update(_PHOTOS).where(_PHOTOS.c.id == old).values(**facts))
    return True


def set_photo_status(
    session: Session, photo_ids: Sequence[int], status: str, *, error: str | None = None,
    now: datetime | None = None,
) -> int:
    """Set the status (and error) of many photos; returns how many rows changed."""
    if status not in PHOTO_STATUSES:
        raise ValueError(f"unknown photo status {status!r}")
    when = now or _now()
    changed = 0
    for chunk in _chunks(list(photo_ids)):
        result = session.execute(
            update(_PHOTOS).where(_PHOTOS.c.id.in_(chunk)).values(status=status, error=error, updated_at=when)
        )
        changed += _rowcount(result)
    return changed


def mark_missing(session: Session, photo_ids: Sequence[int], *, now: datetime | None = None) -> int:
    """Mark photos whose files are gone as 'missing' (their vectors stay, for when they come back)."""
    return set_photo_status(session, photo_ids, "missing", now=now)


def _long_missing(root_ids: Sequence[int], missing_since: datetime) -> ColumnElement[bool]:
    return and_(
        _PHOTOS.c.root_id.in_(list(root_ids)),
        _PHOTOS.c.status == "missing",
        _PHOTOS.c.updated_at < missing_since,
    )


def long_missing(session: Session, root_ids: Sequence[int], *, missing_since: datetime) -> list[str]:
    """Paths of these roots' photos missing since before `missing_since` (what `forget_missing` would delete)."""
    paths: list[str] = []
    for chunk in _chunks(list(root_ids)):
        query = select(_PHOTOS.c.path).where(_long_missing(chunk, missing_since)).order_by(_PHOTOS.c.path)
        paths.extend(session.execute(query).scalars())
    return paths


def forget_missing(
    session: Session, root_ids: Sequence[int], *, missing_since: datetime
) -> tuple[int, dict[str, list[int]]]:
    """Delete these roots' photos missing since before `missing_since`, and the vectors only they held,
    of every model.

    Returns (photos deleted, {model id: vector ids deleted}). Other vectors nobody holds now are
    left alone: `photoindex forget ROOT` keeps them on purpose, for the root's return (until they
    are collected, `collect_unheld_vectors`).
    """
    forgotten = 0
    hashes: set[str] = set()
    for chunk in _chunks(list(root_ids)):
        gone = _long_missing(chunk, missing_since)
        hashes.update(h for h in session.execute(select(_PHOTOS.c.content_hash).where(gone)).scalars() if h)
        forgotten += _rowcount(session.execute(delete(_PHOTOS).where(gone)))
    orphans: dict[str, list[int]] = {}
    for chunk in _chunks(sorted(hashes)):
        rows = session.execute(
            select(_VECTORS.c.model_id, _VECTORS.c.id).where(
                _VECTORS.c.content_hash.in_(chunk),
                ~exists().where(_PHOTOS.c.content_hash == _VECTORS.c.content_hash),
            )
        )
        for model_id, vector_id in rows:
            orphans.setdefault(str(model_id), []).append(int(vector_id))
    for model_id, ids in orphans.items():
        ids.sort()
        delete_vectors(session, model_id, ids)
    return forgotten, orphans


# ---------------------------------------------------------------- vectors


def _blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=_VECTOR_DTYPE).tobytes()



def vector_ids_for_hashes(session: Session, model_id: str, content_hashes: Iterable[str]) -> dict[str, int]:
    """The stored vector id of each content hash that has one under `model_id`."""
    hashes = sorted(set(content_hashes))
    found: dict[str, int] = {}
    for chunk in _chunks(hashes):
        rows = session.execute(
            select(_VECTORS.c.content_hash, _VECTORS.c.id).where(
                _VECTORS.c.model_id == model_id, _VECTORS.c.content_hash.in_(chunk)
            )
        )
        found.update({h: int(i) for h, i in rows})
    return found


def _model_dim(session: Session, model_id: str) -> int | None:
    return session.execute(select(_VECTORS.c.dim).where(_VECTORS.c.model_id == model_id).limit(1)).scalar()


def _bump(session: Session, model_id: str, *, deleted: bool, now: datetime) -> None:
    """Advance the model's generation (and epoch when vectors were deleted) in the caller's transaction."""
    epoch = 1 if deleted else 0
    statement = _upsert(session, _STATE).values(
        model_id=model_id, generation=1, vectors_epoch=epoch, updated_at=now
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[_STATE.c.model_id],
            set_={
                "generation": _STATE.c.generation + 1,
                "vectors_epoch": _STATE.c.vectors_epoch + epoch,
                "updated_at": statement.excluded.updated_at,
            },
        )
    )


def add_vectors(
    session: Session, model_id: str, items: Sequence[tuple[str, np.ndarray]], *, now: datetime | None = None
) -> list[int]:
    """Store vectors by content hash and return their ids, in input order; a hash already stored keeps its id.

    New ids are larger than every id handed out before (AUTOINCREMENT) and follow the input order.
    Bumps the model's generation when anything was added.
    """
    if not items:
        return []
    dims = {int(np.asarray(v).size) for _, v in items}
    stored_dim = _model_dim(session, model_id)
    if len(dims) != 1 or (stored_dim is not None and dims != {stored_dim}):
        raise CatalogError(
            f"vectors of model {model_id!r} must all have {stored_dim or 'the same'} dimensions, "
            f"got {sorted(dims)}",
            "the model bundle changed without changing its id; give the new bundle its own id",
        )
    dim = dims.pop()
    if stored_dim is None and _postgres(session):
        from photoindex.catalog.pgvectors import ensure_model_index

        ensure_model_index(session, model_id, dim)
    known = vector_ids_for_hashes(session, model_id, (h for h, _ in items))
    fresh: dict[str, np.ndarray] = {}
    for content_hash, vector in items:
        if content_hash not in known and content_hash not in fresh:
            fresh[content_hash] = vector
    if fresh:
        when = now or _now()
        # Indexers sharing a PostgreSQL catalog may store the same content at once: the first keeps its id.
        statement = (
            postgresql.insert(_VECTORS).on_conflict_do_nothing(index_elements=["model_id", "content_hash"])
            if _postgres(session)
            else insert(_VECTORS)
        )
        session.execute(
            statement,
            [
                dict(model_id=model_id, content_hash=h, dim=dim, vector=_blob(v), created_at=when)
                for h, v in fresh.items()
            ],
        )
        known.update(vector_ids_for_hashes(session, model_id, fresh))
        _bump(session, model_id, deleted=False, now=when)
    return [known[h] for h, _ in items]


def delete_vectors(
    session: Session, model_id: str, vector_ids: Sequence[int], *, now: datetime | None = None
) -> int:
    """Delete vectors by id; bumps generation and epoch (index caches must rebuild). Returns how many."""
    deleted = 0
    for chunk in _chunks(list(vector_ids)):
        result = session.execute(
            delete(_VECTORS).where(_VECTORS.c.model_id == model_id, _VECTORS.c.id.in_(chunk))
        )
        deleted += _rowcount(result)
    if deleted:
        _bump(session, model_id, deleted=True, now=now or _now())
    return deleted


def _held() -> Any:
    """A vector is held while some photo row (in any status) has its content."""
    return exists().where(_PHOTOS.c.content_hash == _VECTORS.c.content_hash)


def _delete_vectors_where(session: Session, condition: Any, now: datetime) -> dict[str, list[int]]:
    """Delete the vectors matching `condition`, model by model (`delete_vectors`: generations bumped); returns
    {model id: deleted ids}, ids in order."""
    found: dict[str, list[int]] = {}
    rows = session.execute(select(_VECTORS.c.model_id, _VECTORS.c.id).where(condition).order_by(_VECTORS.c.id))
    for model_id, vector_id in rows:
        found.setdefault(str(model_id), []).append(int(vector_id))
    for model_id, ids in found.items():
        delete_vectors(session, model_id, ids, now=now)
    return found


def delete_orphan_vectors(session: Session, model_id: str, *, now: datetime | None = None) -> list[int]:
    """Delete the model's vectors that no photo row (in any status) holds any more; returns their ids."""
    condition = and_(_VECTORS.c.model_id == model_id, ~_held())
    return _delete_vectors_where(session, condition, now or _now()).get(model_id, [])


def delete_unheld_vectors(session: Session, *, now: datetime | None = None) -> dict[str, list[int]]:
    """Delete every model's vectors that no photo row holds any more; returns {model id: deleted ids}."""
    return _delete_vectors_where(session, ~_held(), now or _now())


def collect_unheld_vectors(
    session: Session, *, unheld_since: datetime, now: datetime | None = None
) -> dict[str, list[int]]:
    """Mark and sweep the vectors no photo row holds, of every model; returns {model id: deleted ids}.

    A vector found unheld gets `orphaned_at` (the start of its grace period); one held again (the
    photo's old content came back) loses it; those unheld since before `unheld_since` are deleted.
    """
    when = now or _now()
    held = _held()
    session.execute(update(_VECTORS).where(_VECTORS.c.orphaned_at.is_not(None), held).values(orphaned_at=None))
    session.execute(update(_VECTORS).where(_VECTORS.c.orphaned_at.is_(None), ~held).values(orphaned_at=when))
    return _delete_vectors_where(session, _VECTORS.c.orphaned_at < unheld_since, when)


def vector_count(session: Session, model_id: str) -> int:
    """How many vectors the model has."""
    return reads.vector_count(connection(session), model_id)


def max_vector_id(session: Session, model_id: str) -> int:
    """The model's largest vector id (0 when it has none)."""
    return reads.max_vector_id(connection(session), model_id)


def index_state(session: Session, model_id: str) -> IndexState:
    """The model's generation and epoch (zeros before its first vector)."""
    return reads.index_state(connection(session), model_id)


def vectors_anchor(session: Session, model_id: str) -> str | None:
    """A fingerprint of the model's first vector (see `reads.vectors_anchor`)."""
    return reads.vectors_anchor(connection(session), model_id)


def database_bytes(session: Session) -> int:
    """The size of a PostgreSQL catalog's database on the server (the SQLite file's size is read from disk)."""
    from sqlalchemy import text

    return int(session.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


# ---------------------------------------------------------------- claims (indexers sharing a catalog)


@dataclass(frozen=True, slots=True)
class Claim:
    """A pending photo an indexer claimed: what it needs to decode it."""

    id: int
    root_id: int
    path: str
    size: int
    mtime_ns: int


def claim_pending(
    session: Session,
    worker: str,
    *,
    limit: int,
    lease_seconds: float,
    root_ids: Sequence[int] | None = None,
    now: datetime | None = None,
) -> list[Claim]:
    """Claim up to `limit` pending photos that nobody holds, or whose holder's lease ran out, for `worker`.

    On PostgreSQL the rows are picked with `FOR UPDATE SKIP LOCKED`, so indexers claiming at the
    same moment get different photos without waiting for each other; the claim lasts
    `lease_seconds` (an indexer killed mid-batch leaves it to expire and be taken by another).
    Storing the photo's outcome (`store_indexed`, `store_failed`, `link_photo`) ends the claim.
    """
    when = now or _now()
    free = (_PHOTOS.c.claim_until.is_(None)) | (_PHOTOS.c.claim_until < when)
    query = (
        select(_PHOTOS.c.id, _PHOTOS.c.root_id, _PHOTOS.c.path, _PHOTOS.c.size, _PHOTOS.c.mtime_ns)
        .where(_PHOTOS.c.status == "pending", free)
        .order_by(_PHOTOS.c.id)
        .limit(limit)
    )
    if root_ids is not None:
        query = query.where(_PHOTOS.c.root_id.in_(list(root_ids)))
    if _postgres(session):
        query = query.with_for_update(skip_locked=True)
    claims = [Claim(int(r.id), int(r.root_id), r.path, int(r.size), int(r.mtime_ns)) for r in session.execute(query)]
    if claims:
        from datetime import timedelta

        session.execute(
            update(_PHOTOS)
            .where(_PHOTOS.c.id.in_([c.id for c in claims]))
            .values(claimed_by=worker, claim_until=when + timedelta(seconds=lease_seconds))
        )
    return claims


def pending_count(session: Session, root_ids: Sequence[int] | None = None) -> int:
    """How many photos wait to be indexed (claimed or not)."""
    query = select(func.count()).select_from(_PHOTOS).where(_PHOTOS.c.status == "pending")
    if root_ids is not None:
        query = query.where(_PHOTOS.c.root_id.in_(list(root_ids)))
    return int(session.execute(query).scalar_one())
