"""The catalog: SQLite (the truth) through SQLAlchemy for writes and plain `sqlite3` for the search path's reads.

Modules: `schema` (tables), `db` (engine, transactions, migrations with backup), `writes` (the
repository: functions over a session that never commit), `reads` (plain SQL, no SQLAlchemy import),
`writerlock` (the single-writer lock)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from photoindex.lazy import public_names

# Public names, loaded on first use so that importing this package stays cheap
# (see docs/architecture.md, "Start-up").
_PUBLIC = {
    "Database": "db",
    "open_database": "db",
    "Photo": "reads",
    "IndexState": "reads",
    "path_range": "reads",
    "WriterLock": "writerlock",
    "acquire_patiently": "writerlock",
    "lock_holder": "writerlock",
    "RootRecord": "writes",
}

if TYPE_CHECKING:
    from photoindex.catalog.db import Database, open_database
    from photoindex.catalog.reads import IndexState, Photo, path_range
    from photoindex.catalog.writerlock import WriterLock, acquire_patiently, lock_holder
    from photoindex.catalog.writes import RootRecord

__getattr__, __all__ = public_names(__name__, _PUBLIC)
