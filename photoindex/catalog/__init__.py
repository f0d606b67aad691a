"""The catalog: SQLite (the truth) through SQLAlchemy for writes and plain `sqlite3` for the search path's reads.

Modules: `schema` (tables), `db` (engine, transactions, migrations with backup), `writes` (the
repository: functions over a session that never commit), `reads` (plain SQL, no SQLAlchemy import),
`writerlock` (the single-writer lock)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
