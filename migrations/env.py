"""Alembic environment for the photoindex catalog.

photoindex runs migrations itself (`photoindex.catalog.db.upgrade_database`): it passes, in
`config.attributes["connection"]`, a connection that already holds `BEGIN IMMEDIATE` with
foreign keys off, so every revision of one upgrade commits or rolls back together. The
`alembic` command line (developers only, see alembic.ini) gets the same kind of connection.
"""

from __future__ import annotations

from pathlib import Path

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.engine import make_url

from photoindex.catalog.schema import Base, is_text_index_table
from photoindex.errors import CatalogError

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite's ALTER TABLE is limited: recreate tables when needed
        transactional_ddl=True,  # true once BEGIN is ours (photoindex.catalog.db takes it over from pysqlite)
        compare_type=True,
        include_name=_declared,
    )
    with context.begin_transaction():
        context.run_migrations()


def _declared(name: str | None, type_: str, parent: object) -> bool:
    """Autogenerate leaves the FTS5 tables (and their shadow tables) of revision 0005 alone."""
    return not (type_ == "table" and is_text_index_table(name))


def run_migrations_offline() -> None:
    """Emit SQL to stdout (`alembic upgrade --sql`)."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate through photoindex's connection, or open one like it for the alembic command line."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from photoindex.catalog.db import create_catalog_engine

    url = make_url(config.get_main_option("sqlalchemy.url") or "")
    if not url.database:
        raise CatalogError("alembic.ini has no sqlalchemy.url", "set it to sqlite:///PATH/photoindex.db")
    engine = create_catalog_engine(Path(url.database), foreign_keys=False)
    try:
        with engine.connect() as conn, conn.begin():
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
