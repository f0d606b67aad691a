"""`photoindex catalog copy --to URL`: the whole catalog into another one (SQLite <-> PostgreSQL), nothing re-encoded.

Every table of the schema is copied row for row with its ids (vector ids are index ids, and a
photo keeps its first_seen), through the same SQLAlchemy models, which turn paths and vectors into
each back end's storage (docs/scale.md). Id counters are carried over too, so an id the source
handed out once (and deleted) is never handed out again by the copy. The target must be empty:
copying into a catalog that has photos would mix two libraries. The source is read in one
snapshot; the target is written in one transaction, so a failure leaves it empty.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from photoindex.catalog.db import Database, open_catalog
from photoindex.catalog.location import CatalogLocation
from photoindex.errors import CatalogError

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.orm import Session

CHUNK = 5_000  # rows per INSERT batch
_COUNTED = ("roots", "photos", "vectors")  # tables with an id counter to carry over


@dataclass
class CopyReport:
    """What a copy moved: rows per table, and where to."""

    target: str
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The summary printed by `--json`."""
        return {"target": self.target, "rows": self.rows, "seconds": round(self.seconds, 3)}


def copy_catalog(
    source: Database, target: CatalogLocation, *, progress: Callable[[str, int, int], None] | None = None
) -> CopyReport:
    """Copy every row of `source` into the empty catalog at `target` (created and migrated if new)."""
    import time

    from sqlalchemy import func, insert, select

    from photoindex.catalog.schema import Base

    started = time.monotonic()
    report = CopyReport(target.shown)
    into = open_catalog(target)
    try:
        if _same(source, into):
            raise CatalogError(f"{target.shown} is the catalog being copied", "give another --to URL")
        with source.read() as src, into.write() as dst:
            for table in Base.metadata.sorted_tables:
                if dst.execute(select(func.count()).select_from(table)).scalar_one():
                    raise CatalogError(
                        f"{target.shown} already holds a catalog (table {table.name} has rows)",
                        "copy into a new, empty database (or file); photoindex never merges two catalogs",
                    )
            for table in Base.metadata.sorted_tables:
                total = int(src.execute(select(func.count()).select_from(table)).scalar_one())
                done = 0
                for rows in _chunks(src, table):
                    dst.execute(insert(table), rows)
                    done += len(rows)
                    if progress is not None:
                        progress(table.name, done, total)
                report.rows[table.name] = done
            for name in _COUNTED:
                _set_counter(dst, name, _counter(src, name))
            from photoindex.catalog import text as catalog_text
            from photoindex.catalog.writes import connection

            catalog_text.reindex(connection(dst))  # the words' full-text index is not a table of the metadata
            if into.kind == "postgresql":
                _index_models(dst)
    finally:
        into.close()
    report.seconds = time.monotonic() - started
    return report


def _same(a: Database, b: Database) -> bool:
    if a.kind != b.kind:
        return False
    if a.kind == "sqlite":
        return a.path.resolve() == b.path.resolve()
    return getattr(a, "location", None) == getattr(b, "location", None)


def _chunks(session: Session, table: Table) -> Any:
    """The table's rows as dicts, CHUNK at a time, in primary-key order (keyset pages where the key is one id)."""
    from sqlalchemy import select

    key = list(table.primary_key.columns)
    if len(key) == 1 and key[0].name == "id":
        last: int | None = None
        while True:
            query = select(table).order_by(key[0]).limit(CHUNK)
            if last is not None:
                query = query.where(key[0] > last)
            rows = [dict(r._mapping) for r in session.execute(query)]
            if not rows:
                return
            yield rows
            last = rows[-1]["id"]
    else:
        result = session.execute(select(table).order_by(*key)).mappings()
        while rows := [dict(r) for r in result.fetchmany(CHUNK)]:
            yield rows


def _counter(session: Session, table: str) -> int:
    """The largest id `table` has handed out (deleted ones included, where the back end remembers them)."""
    from sqlalchemy import text

    top = int(session.execute(text(f"SELECT coalesce(max(id), 0) FROM {table}")).scalar_one())
    if session.get_bind().dialect.name == "postgresql":
        row = session.execute(
            text(f"SELECT last_value, is_called FROM {_sequence(session, table)}")
        ).one()
        return max(top, int(row[0]) if row[1] else 0)
    if table == "vectors":  # AUTOINCREMENT: sqlite_sequence remembers deleted ids
        seq = session.execute(text("SELECT seq FROM sqlite_sequence WHERE name = 'vectors'")).scalar()
        return max(top, int(seq or 0))
    return top


def _sequence(session: Session, table: str) -> str:
    from sqlalchemy import text

    name = session.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table}).scalar_one()
    return str(name)


def _set_counter(session: Session, table: str, value: int) -> None:
    """Make `table`'s next id larger than `value`."""
    from sqlalchemy import text

    if value <= 0:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT setval(CAST(:s AS regclass), :v)"), {"s": _sequence(session, table), "v": value})
    elif table == "vectors":
        done = session.execute(text("UPDATE sqlite_sequence SET seq = :v WHERE name = 'vectors'"), {"v": value})
        if not done.rowcount:  # type: ignore[attr-defined]
            session.execute(text("INSERT INTO sqlite_sequence (name, seq) VALUES ('vectors', :v)"), {"v": value})


def _index_models(session: Session) -> None:
    """Each model's HNSW index, built once after the bulk load (faster than growing it row by row)."""
    from sqlalchemy import text

    from photoindex.catalog.pgvectors import ensure_model_index

    session.execute(text("SET LOCAL maintenance_work_mem = '512MB'"))  # the graph built in memory, not on disk
    for model_id, dim in session.execute(text("SELECT model_id, min(dim) FROM vectors GROUP BY model_id")):
        ensure_model_index(session, str(model_id), int(dim))
