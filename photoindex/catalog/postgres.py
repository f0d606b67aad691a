"""The catalog on a PostgreSQL server with pgvector: connections, transactions, migrations, reads.

The same SQLAlchemy models and Alembic revisions as the SQLite file (docs/scale.md). What differs:

- reads (`reads()`) run on the psycopg connection under a pooled SQLAlchemy one, in a REPEATABLE
  READ, READ ONLY transaction (one snapshot, never a write), through `PgReads`, which speaks the
  SQL of `photoindex.catalog.reads` (written for SQLite) with its three SQLite idioms rewritten;
- paths are BYTEA: a bytea loader gives back the `os.fsdecode` spelling, as SQLite's text_factory does;
- vectors are pgvector `vector`s, bound and loaded as numpy arrays (pgvector's psycopg adapters);
- a server that cannot be reached is a CatalogError naming the host, never the password;
- migrations take a transaction-level advisory lock, so one migrator runs at a time, and there is
  no file to back up first (docs/scale.md says to use pg_dump).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from photoindex.catalog.db import DEFAULT_BUSY_TIMEOUT, HEAD_REVISION, Database, _alembic_config, _check_known
from photoindex.catalog.location import CatalogLocation, masked
from photoindex.errors import CatalogError

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

T = TypeVar("T")

CONNECT_TIMEOUT = 10  # seconds libpq waits for a server before giving up
MIGRATION_LOCK = 0x70686F746F  # pg_advisory_xact_lock key of migrations ("photo")
SCAN_LOCKS = 0x7363616E  # class of the per-root scan locks, pg_try_advisory_lock(SCAN_LOCKS, root id) ("scan")
SCAN_LOCK_POLL = 0.5  # seconds between tries of a root's scan lock that is waited for
RETRIES = 5  # attempts of a write whose connection was lost (`retrying`)
RETRY_PAUSE = 1.0  # seconds before the first retry; doubles each time


class PgReads:
    """A psycopg connection that takes the SQL of `photoindex.catalog.reads` (written for sqlite3).

    SQLite idioms are rewritten: `?` placeholders become `%s`, `CAST(? AS TEXT)` (a path's bytes
    compared as TEXT) becomes a plain BYTEA parameter, `IS ?` becomes `IS NOT DISTINCT FROM`, a
    bare `1`/`0` condition becomes true/false, and the unary `+` that keeps SQLite's planner off an
    index is dropped (PostgreSQL plans those joins well without it), and `length(vector)` (a blob's
    bytes) becomes `dim * 4`. `near_km` is a SQL function
    made by migration 0006, so `create_function` has nothing to do.
    """

    dialect = "postgresql"  # catalog/text.py picks its full-text SQL by this
    _CACHE: dict[str, str] = {}
    _NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
    _PLUS = re.compile(r"(?<![\w)\]])\+(?=[A-Za-z_][\w]*\.)")
    _LENGTH = re.compile(r"length\((\w+\.)?vector\)")  # a blob's bytes: a vector's are 4 per dimension
    _BOOL = re.compile(r"((?:WHERE|AND|OR|\()\s*)([01])(?=\s*(?:$|\)|AND\b|OR\b|ORDER\b|GROUP\b|LIMIT\b))")

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    @classmethod
    def translate(cls, sql: str) -> str:
        """The PostgreSQL spelling of one statement of `reads`."""
        done = cls._CACHE.get(sql)
        if done is None:
            done = sql.replace("%", "%%").replace("CAST(? AS TEXT)", "?").replace(" IS ?", " IS NOT DISTINCT FROM ?")
            done = cls._BOOL.sub(lambda m: m.group(1) + ("true" if m.group(2) == "1" else "false"), done)
            done = cls._LENGTH.sub(lambda m: f"({m.group(1) or ''}dim * 4)", done)
            done = cls._PLUS.sub("", done).replace("?", "%s")
            cls._CACHE[sql] = done
        return done

    def create_function(self, *args: Any, **kwargs: Any) -> None:
        """SQLite's Python functions exist as SQL functions on the server (migration 0006)."""

    def executemany(self, sql: str, rows: Any) -> None:
        """Run a statement once per row of parameters (in the caller's write transaction)."""
        with self.connection.cursor() as cursor:
            cursor.executemany(self.translate(sql), [tuple(r) for r in rows])

    def execute(self, sql: str, params: Any = ()) -> Any:
        """Run a statement of `reads`; returns the cursor (fetchone, fetchall and iteration as with sqlite3).

        Named parameters (`:name` with a mapping, as sqlite3 takes them) become psycopg's `%(name)s`.
        """
        if isinstance(params, Mapping):
            return self.connection.execute(self._NAMED.sub(r"%(\1)s", self.translate(sql)), dict(params))
        return self.connection.execute(self.translate(sql), tuple(params))


def _register_types(dbapi_connection: Any) -> None:
    """Paths back as `os.fsdecode` strings; vectors as numpy arrays once pgvector is installed."""
    from psycopg.types.string import ByteaBinaryLoader, ByteaLoader

    class PathLoader(ByteaLoader):
        def load(self, data: Any) -> str:  # type: ignore[override]
            return os.fsdecode(bytes(super().load(bytes(data))))

    class PathBinaryLoader(ByteaBinaryLoader):
        def load(self, data: Any) -> str:  # type: ignore[override]
            return os.fsdecode(bytes(super().load(bytes(data))))

    # BYTEA holds only paths in this schema (vectors are pgvector's type), like TEXT on SQLite.
    dbapi_connection.adapters.register_loader("bytea", PathLoader)
    dbapi_connection.adapters.register_loader("bytea", PathBinaryLoader)
    from pgvector.psycopg import register_vector

    try:
        register_vector(dbapi_connection)
    except Exception:  # noqa: BLE001 - psycopg.ProgrammingError: the extension is not created yet (a migration)
        dbapi_connection.rollback()


def unreachable(location: CatalogLocation, error: BaseException) -> CatalogError:
    """The error for a server that refused or never answered: its host, why, and no password."""
    reason = str(getattr(error, "orig", None) or error).strip().splitlines()
    first = reason[0] if reason else type(error).__name__
    if location.url:
        first = first.replace(location.url, location.shown)
    return CatalogError(
        f"cannot reach the PostgreSQL catalog at {location.host} ({location.shown}): {first}",
        "check that the server runs and accepts connections from this machine, and the [catalog] url "
        "(the password comes from the URL, PGPASSWORD or ~/.pgpass)",
    )


def is_disconnect(error: BaseException) -> bool:
    """Whether `error` means the connection to the server was lost (worth retrying on a new one)."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        error = error.orig or error
    import psycopg

    return isinstance(error, psycopg.OperationalError)


def require_driver(location: CatalogLocation) -> None:
    """Raise a CatalogError saying what to install when psycopg or pgvector's adapters are missing."""
    try:
        import pgvector.sqlalchemy  # noqa: F401 - teaches SQLAlchemy's reflection the `vector` type
        import psycopg  # noqa: F401
    except ImportError as error:
        raise CatalogError(
            f"the catalog is on PostgreSQL ({location.shown}) but {error.name or 'its driver'} is not installed",
            "install the postgres extra: pip install 'photoindex[postgres]' (or empty [catalog] url "
            "to use the SQLite catalog in the home)",
        ) from None


def create_pg_engine(location: CatalogLocation, *, pooled: bool = True) -> Engine:
    """An engine on the server `location` names, registering photoindex's types on each connection."""
    require_driver(location)
    from sqlalchemy import create_engine, event
    from sqlalchemy.pool import NullPool

    assert location.url is not None
    engine = create_engine(
        location.url,
        connect_args={"connect_timeout": CONNECT_TIMEOUT, "application_name": "photoindex"},
        pool_pre_ping=True,  # a connection the server dropped is replaced, not handed out
        poolclass=None if pooled else NullPool,
        hide_parameters=True,  # vectors and paths stay out of error messages
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        _register_types(dbapi_connection)

    return engine


def _revision(conn: Any) -> str | None:
    exists = conn.exec_driver_sql("SELECT to_regclass('alembic_version')").scalar()
    if exists is None:
        return None
    row = conn.exec_driver_sql("SELECT version_num FROM alembic_version").first()
    return None if row is None else str(row[0])


class PgDatabase(Database):
    """An open PostgreSQL catalog with the transactions of `Database` (see the module docstring)."""

    kind = "postgresql"

    def __init__(self, location: CatalogLocation) -> None:
        super().__init__(location.path or _no_path(), busy_timeout=DEFAULT_BUSY_TIMEOUT)
        self.location = location
        self._local = threading.local()

    def _factories(self) -> tuple[Any, Any]:
        with self._setup:
            if self._sessions is None:
                from sqlalchemy.orm import sessionmaker

                self._engine = create_pg_engine(self.location)
                readers = self._engine.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
                self._sessions = (
                    sessionmaker(bind=readers, autoflush=False, expire_on_commit=False),
                    sessionmaker(bind=self._engine, expire_on_commit=False),
                )
            return self._sessions

    @contextmanager
    def reads(self) -> Iterator[Any]:  # type: ignore[override]
        """A read-only snapshot for the functions of `photoindex.catalog.reads` (a `PgReads`); nests."""
        active: PgReads | None = getattr(self._local, "reads", None)
        if active is not None:
            yield active
            return
        with self.read() as session:
            reader = PgReads(session.connection().connection.driver_connection)
            self._local.reads = reader
            try:
                yield reader
            finally:
                self._local.reads = None

    def _failure(self, error: Exception, *, writing: bool) -> CatalogError | None:
        """Errors pass through as they are: a server has no file to find damaged (`_begin` names an unreachable one)."""
        return None

    def _begin(self, session: Session) -> None:
        from sqlalchemy.exc import OperationalError

        try:
            session.connection()
        except OperationalError as error:
            raise unreachable(self.location, error) from None

    def retrying(self, work: Callable[[], T], *, on_retry: Callable[[str], None] | None = None) -> T:
        """Run `work` (a whole write transaction), again on a new connection when the server connection is lost.

        After RETRIES attempts the CatalogError says so: what earlier transactions committed stays.
        """
        pause = RETRY_PAUSE
        for attempt in range(1, RETRIES + 1):
            try:
                return work()
            except Exception as error:
                if not is_disconnect(error) and not _is_unreachable(error):
                    raise
                if attempt == RETRIES:
                    raise CatalogError(
                        f"lost the connection to the PostgreSQL catalog at {self.location.host} "
                        f"and could not get it back after {RETRIES} attempts",
                        "everything committed before stays; check the server, then run the command again",
                    ) from None
                message = f"lost the connection to {self.location.host}; retrying in {pause:g} s"
                log.warning("%s", message)
                if on_retry is not None:
                    on_retry(message)
                import time

                time.sleep(pause)
                pause *= 2
                if self._engine is not None:
                    self._engine.dispose()  # every pooled connection may be dead
        raise AssertionError("unreachable")

    @contextmanager
    def scan_lock(
        self,
        root_id: int,
        *,
        wait: threading.Event | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> Iterator[bool]:
        """The root's writer lock on a shared catalog: True if this process holds it for the block, False
        if another indexer (here or on another machine) is scanning the root now.

        With `wait` (a stop event), it is waited for, polled every SCAN_LOCK_POLL seconds, until it is
        free (True) or `wait` is set (False); `on_wait` hears once that it is held elsewhere. A session
        advisory lock on a connection kept for the block: the server drops it with the connection, so
        an indexer killed mid-scan never leaves it behind.
        """
        from sqlalchemy import text

        conn = self.engine.connect()
        try:
            got = False
            told = False
            while True:
                got = bool(
                    conn.execute(text("SELECT pg_try_advisory_lock(:c, :r)"), {"c": SCAN_LOCKS, "r": root_id}).scalar()
                )
                conn.commit()
                if got or wait is None:
                    break
                if not told and on_wait is not None:
                    on_wait()
                    told = True
                if wait.wait(SCAN_LOCK_POLL):
                    break
            try:
                yield got
            finally:
                if got:
                    try:
                        conn.execute(text("SELECT pg_advisory_unlock(:c, :r)"), {"c": SCAN_LOCKS, "r": root_id})
                        conn.commit()
                    except Exception:  # noqa: BLE001 - a lost connection took the lock with it
                        conn.invalidate()
        finally:
            conn.close()

    def close(self) -> None:
        """Close the pooled connections."""
        with self._setup:
            engine, self._engine, self._sessions = self._engine, None, None
        if engine is not None:
            engine.dispose()


def _is_unreachable(error: BaseException) -> bool:
    return isinstance(error, CatalogError) and error.message.startswith("cannot reach the PostgreSQL catalog")


def _no_path() -> Any:
    from pathlib import Path

    return Path(os.devnull)


def upgrade_pg_database(location: CatalogLocation, revision: str = "head") -> bool:
    """Migrate the catalog on the server to `revision` in one transaction (one migrator at a time); True if it moved."""
    from alembic import command
    from alembic.script import ScriptDirectory
    from sqlalchemy import exc

    config = _alembic_config()
    script = ScriptDirectory.from_config(config)
    engine = create_pg_engine(location, pooled=False)
    try:
        with engine.connect() as conn:
            conn.begin()
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            current = _revision(conn)
            _check_known(location.shown, current, script)
            target = script.get_revision(revision).revision
            if current == target:
                conn.rollback()
                return False
            log.info("migrating %s from revision %s to %s", location.shown, current, target)
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            conn.commit()
            return True
    except exc.OperationalError as error:
        raise unreachable(location, error) from None
    except exc.DatabaseError as error:
        raise CatalogError(
            f"{location.shown}: cannot migrate the catalog: {str(error.orig).strip()}",
            "the catalog was left unchanged; the server's user needs to own the database "
            "(and the pgvector extension installed on the server: docs/scale.md)",
        ) from None
    finally:
        engine.dispose()


def pg_current_revision(location: CatalogLocation) -> str | None:
    """The schema revision on the server (None for an empty database)."""
    from sqlalchemy import exc

    engine = create_pg_engine(location, pooled=False)
    try:
        with engine.connect() as conn:
            return _revision(conn)
    except exc.OperationalError as error:
        raise unreachable(location, error) from None
    finally:
        engine.dispose()


def open_pg_database(location: CatalogLocation, *, migrate: bool = True) -> PgDatabase:
    """Open the PostgreSQL catalog, migrating it to head (default) or requiring head."""
    current = pg_current_revision(location)
    if current != HEAD_REVISION:
        from alembic.script import ScriptDirectory

        # A newer photoindex on another machine migrated it: said so, whether or not asked to migrate.
        _check_known(location.shown, current, ScriptDirectory.from_config(_alembic_config()))
        if not migrate:
            raise CatalogError(
                f"{location.shown}: the catalog is at schema revision {current or '(none)'}; "
                f"this photoindex needs {HEAD_REVISION}",
                "run `photoindex status` (or any command that opens the catalog for writing) to migrate it",
            )
        upgrade_pg_database(location)
    return PgDatabase(location)


__all__ = ["PgDatabase", "PgReads", "masked", "open_pg_database", "upgrade_pg_database"]
