"""The SQLite catalog file: connections, transactions, and migration to the current schema.

Every connection runs in WAL mode (readers never block the writer nor see half a batch), waits up
to `busy_timeout` for a lock instead of failing, and lets photoindex issue BEGIN itself rather than
pysqlite's legacy transaction control (SQLAlchemy's recipe, "Transactions with SQLite and the
sqlite3 driver"): reads open a deferred BEGIN with `query_only` on, writes open BEGIN IMMEDIATE,
so a writer waits for the lock up front rather than failing with SQLITE_BUSY at its first write,
and DDL is transactional, which makes each upgrade all-or-nothing.

`synchronous=FULL`: in WAL mode NORMAL may lose the last commits on power loss. That would hand
out a vector id or an index generation a second time, and a FAISS file stamped before the loss
would then look current. FULL costs one fsync per commit, which is small next to encoding a batch.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from photoindex import resources
from photoindex.durable import fsync_folder
from photoindex.errors import CatalogError

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.orm import Session

    from photoindex.catalog.location import CatalogLocation

log = logging.getLogger(__name__)

T = TypeVar("T")

SYNCHRONOUS = "FULL"
DEFAULT_BUSY_TIMEOUT = 10.0  # seconds a connection waits for a lock held by another one
READ_CACHE_KIB = 32 * 1024  # page cache of a search's plain read connection (SQLite's default is 2 MB)
_READ_ONLY = "photoindex_read_only"  # execution option: this transaction only reads
_SQLITE_MAGIC = b"SQLite format 3\x00"
_RESTORE_HINT = "restore a backup (photoindex.db.bak-*) or move the file away and run `photoindex reindex`"
# SQLite's primary result codes for a damaged file: SQLITE_CORRUPT, SQLITE_NOTADB.
_DAMAGE_CODES = (11, 26)


def damaged_catalog(path: Path, detail: object) -> CatalogError:
    """The one error for every kind of damage to the catalog file, wherever a read or write meets it."""
    return CatalogError(
        f"{path}: damaged catalog ({detail})",
        f"restore the backup made before the last migration ({path.name}.bak-* beside it) or your own; "
        f"`sqlite3 {path} 'PRAGMA integrity_check'` shows the damage. To start over instead, move the "
        "file away and run `photoindex index PATH` (every photo is encoded again)",
    )


def _damage(path: Path, error: BaseException) -> CatalogError | None:
    """The damaged-catalog error if `error` (sqlite3's, or SQLAlchemy's wrapping one) says the file is damaged."""
    orig = getattr(error, "orig", error)
    if isinstance(orig, UnicodeDecodeError):
        return damaged_catalog(path, "text that is not UTF-8 where photoindex wrote UTF-8")
    if not isinstance(orig, sqlite3.DatabaseError):
        return None
    text = str(orig)
    code = getattr(orig, "sqlite_errorcode", None)
    if (
        (code is not None and code & 0xFF in _DAMAGE_CODES)
        or "malformed" in text
        or "not a database" in text
        or "Could not decode to UTF-8" in text
    ):
        return damaged_catalog(path, text)
    return None


def _decode_text(data: bytes) -> str:
    # Paths are stored as their exact bytes (schema.FsPath); surrogateescape gives back the
    # os.fsdecode spelling of a non-UTF-8 name, and is the identity for valid UTF-8.
    return data.decode("utf-8", "surrogateescape")


def _no_wal(path: Path, mode: object) -> CatalogError:
    return CatalogError(
        f"{path}: SQLite cannot use WAL mode here (journal mode stays {mode!r})",
        "keep PHOTOINDEX_HOME on a local disk: WAL does not work on network folders",
    )


def create_catalog_engine(
    path: Path, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT, foreign_keys: bool = True, pooled: bool = True
) -> Engine:
    """An engine on `path` with photoindex's pragmas and BEGIN handling (see the module docstring)."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import URL
    from sqlalchemy.pool import NullPool

    url = URL.create("sqlite", database=os.fspath(path))
    engine = create_engine(
        url,
        # One connection is used by one thread at a time (the pool hands it out), so the
        # sqlite3 module's same-thread check is only in the way.
        connect_args={"timeout": busy_timeout, "check_same_thread": False},
        poolclass=None if pooled else NullPool,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite must not emit BEGIN; _on_begin does
        dbapi_connection.text_factory = _decode_text
        cursor = dbapi_connection.cursor()
        try:
            mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise _no_wal(path, mode)
            cursor.execute(f"PRAGMA synchronous = {SYNCHRONOUS}")
            cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # query_only makes "reads never write" a property SQLite enforces, not a convention.
        if conn.get_execution_options().get(_READ_ONLY, False):
            conn.exec_driver_sql("PRAGMA query_only = ON")
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("PRAGMA query_only = OFF")
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _locked_error(path: Path, busy_timeout: float) -> CatalogError:
    return CatalogError(
        f"{path}: another process kept the catalog locked for writing for more than {busy_timeout:g} s",
        "another photoindex command or the daemon is writing; see `photoindex status`, then try again",
    )


def _is_locked(error: DBAPIError) -> bool:
    return isinstance(error.orig, sqlite3.OperationalError) and "locked" in str(error.orig)


class _PlainConnection(sqlite3.Connection):
    """A sqlite3 connection that can be weakly referenced (the base class cannot)."""


class Database:
    """An open catalog: short read transactions and single IMMEDIATE write transactions.

    The SQLAlchemy engine is made on first use: a search reads through `reads()` (plain sqlite3)
    and never imports SQLAlchemy. `postgres.PgDatabase` is the same on a PostgreSQL server.
    """

    kind = "sqlite"

    def __init__(self, path: Path, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._engine: Engine | None = None
        self._sessions: tuple[Any, Any] | None = None
        self._setup = threading.Lock()
        self._plain = threading.local()  # one plain sqlite3 connection per thread, for reads()
        # Weak: a thread that ends takes its connection with it (closed when collected).
        self._plain_all: weakref.WeakSet[_PlainConnection] = weakref.WeakSet()

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (made on first use)."""
        self._factories()
        assert self._engine is not None
        return self._engine

    def _factories(self) -> tuple[Any, Any]:
        """(readers, writers) session factories, made with the engine on first use."""
        with self._setup:
            if self._sessions is None:
                from sqlalchemy.orm import sessionmaker

                self._engine = create_catalog_engine(self.path, busy_timeout=self.busy_timeout)
                self._sessions = (
                    sessionmaker(
                        bind=self._engine.execution_options(**{_READ_ONLY: True}),
                        autoflush=False,
                        expire_on_commit=False,
                    ),
                    sessionmaker(bind=self._engine, expire_on_commit=False),
                )
            return self._sessions

    @contextmanager
    def reads(self) -> Iterator[sqlite3.Connection]:
        """A read transaction on a plain sqlite3 connection, for the functions of `photoindex.reads`.

        The same guarantees as `read()` (one consistent snapshot from the first read on,
        `query_only`), without SQLAlchemy. Nested in the same thread, the inner block joins the
        outer one's snapshot.
        """
        con: sqlite3.Connection | None = getattr(self._plain, "con", None)
        if con is None:
            con = self._connect_plain()
            self._plain.con = con
        if con.in_transaction:
            yield con
            return
        try:
            con.execute("BEGIN")
        except sqlite3.OperationalError as error:
            if "locked" in str(error):
                raise _locked_error(self.path, self.busy_timeout) from None
            raise
        try:
            yield con
        except (sqlite3.DatabaseError, UnicodeDecodeError) as error:
            damage = _damage(self.path, error)
            if damage is not None:
                raise damage from None
            raise
        finally:
            con.rollback()  # there is nothing to commit

    def _connect_plain(self) -> sqlite3.Connection:
        try:
            con = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
                factory=_PlainConnection,
            )
            mode = con.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.DatabaseError as error:
            raise _damage(self.path, error) or CatalogError(
                f"{self.path}: cannot read the catalog: {error}", _RESTORE_HINT
            ) from None
        if str(mode).lower() != "wal":
            con.close()
            raise _no_wal(self.path, mode)
        con.text_factory = _decode_text
        con.execute("PRAGMA query_only = ON")
        # This connection is kept for the thread's later searches: a page cache that holds what a
        # filter reads (1,000 photo rows scattered over the table) halves a warm filtered search's
        # SQL at 100k photos against SQLite's default 2 MB. Pages are taken only as they are read.
        con.execute(f"PRAGMA cache_size = -{READ_CACHE_KIB}")
        with self._setup:
            self._plain_all.add(con)
        return con

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read transaction (one consistent snapshot from its first read on); it never writes. Keep it short."""
        session = self._factories()[0]()
        try:
            self._begin(session)
            yield session
        except Exception as error:
            better = self._failure(error, writing=False)
            if better is None:
                raise
            raise better from None
        finally:
            session.close()  # rolls back: there is nothing to commit

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction (BEGIN IMMEDIATE on SQLite): commit on success, rollback on exception."""
        session = self._factories()[1]()
        try:
            self._begin(session)
            yield session
            session.commit()
        except BaseException as error:
            session.rollback()
            better = self._failure(error, writing=True) if isinstance(error, Exception) else None
            if better is None:
                raise
            raise better from None
        finally:
            session.close()

    def _failure(self, error: Exception, *, writing: bool) -> CatalogError | None:
        """The CatalogError that says what to do about `error` in a transaction, or None to let it through."""
        from sqlalchemy.exc import DatabaseError, OperationalError

        if not isinstance(error, DatabaseError | sqlite3.DatabaseError):
            return None
        damage = _damage(self.path, error)
        if damage is not None or not writing or not isinstance(error, OperationalError):
            return damage
        text = str(error.orig)
        if "disk is full" in text or "disk I/O error" in text or "readonly" in text:
            return CatalogError(
                f"{self.path}: cannot write the catalog: {text}",
                "free space on that disk (or make it writable); nothing was lost, run the command again",
            )
        return None

    def _begin(self, session: Session) -> None:
        # Take the transaction (and, for writers, the write lock) now rather than at the first
        # statement, so waiting and failing happen here, before any work.
        from sqlalchemy.exc import OperationalError

        try:
            session.connection()
        except OperationalError as error:
            if _is_locked(error):
                raise _locked_error(self.path, self.busy_timeout) from None
            raise

    def retrying(self, work: Callable[[], T], *, on_retry: Callable[[str], None] | None = None) -> T:
        """Run `work` (a whole write transaction); a local file has no connection to lose, so once."""
        return work()

    @contextmanager
    def scan_lock(
        self,
        root_id: int,
        *,
        wait: threading.Event | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> Iterator[bool]:
        """Whether this process may scan the root: always, here (the home's writer lock is held by the caller).

        On a shared catalog (`postgres.PgDatabase`) the root's advisory lock, waited for with `wait`.
        """
        yield True

    def close(self) -> None:
        """Close all pooled connections and the plain reading ones."""
        with self._setup:
            plain, self._plain_all = list(self._plain_all), weakref.WeakSet()
            engine, self._engine, self._sessions = self._engine, None, None
        for con in plain:
            con.close()
        self._plain = threading.local()
        if engine is not None:
            engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc_value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _check_sqlite_file(path: Path) -> None:
    """Refuse a path that exists but is not a SQLite database (an empty file is a new database).

    The header is read through SQLite, never with a plain open(): closing any descriptor of a file
    drops every POSIX lock this process holds on it, so a plain read of the catalog's header in a
    process that already has connections to it (the daemon, the web page) would let another process
    reset the write-ahead log under them. SQLite keeps one lock table per file and process.
    """
    if path.is_dir():
        raise CatalogError(f"{path} is a folder, not a SQLite database", "move it, or set PHOTOINDEX_HOME")
    try:
        if path.stat().st_size == 0:
            return
    except FileNotFoundError:
        return
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            con.execute("PRAGMA schema_version").fetchone()
        finally:
            con.close()
    except sqlite3.DatabaseError as error:
        if "not a database" in str(error) or "malformed" in str(error):
            raise CatalogError(
                f"{path} is not a SQLite database",
                "move the file away (photoindex creates a new catalog) or set PHOTOINDEX_HOME to another folder",
            ) from None
        if not os.access(path, os.R_OK):
            raise CatalogError(f"{path}: cannot read the catalog: permission denied", "check its permissions") from None
        # Anything else (busy, a damaged page) is met, and explained, by the open that follows.


# The newest revision in migrations/versions; bump it with every new migration (a test enforces it).
HEAD_REVISION = "0008"


def _alembic_config() -> Any:
    from alembic.config import Config

    config = Config()
    # configparser interpolates '%': a folder name may contain one.
    config.set_main_option("script_location", str(resources.migrations_dir()).replace("%", "%%"))
    return config


def _script_directory() -> Any:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config())


def head_revision() -> str:
    """The schema revision this photoindex writes."""
    head = _script_directory().get_current_head()
    assert head is not None, "the migrations folder has no revisions"
    return str(head)


def _read_revision(con: sqlite3.Connection, path: Path) -> str | None:
    tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "alembic_version" in tables:
        row = con.execute("SELECT version_num FROM alembic_version").fetchone()
        return None if row is None else str(row[0])
    if tables - {"sqlite_sequence"}:
        raise CatalogError(
            f"{path} is a SQLite database but not a photoindex catalog (no schema revision)",
            "move the file away or set PHOTOINDEX_HOME to another folder",
        )
    return None


def current_revision(path: Path) -> str | None:
    """The schema revision of the catalog at `path`, or None if it does not exist or is empty."""
    path = Path(path)
    _check_sqlite_file(path)
    if not path.exists():
        return None
    try:
        con = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True, timeout=DEFAULT_BUSY_TIMEOUT)
        try:
            return _read_revision(con, path)
        finally:
            con.close()
    except (sqlite3.DatabaseError, UnicodeDecodeError) as error:
        raise _damage(path, error) or CatalogError(
            f"{path}: cannot read the catalog: {error}", _RESTORE_HINT
        ) from None


def _check_known(path: Path | str, revision: str | None, script: Any) -> None:
    """Refuse a catalog (a SQLite file, or a server as shown) whose revision this photoindex does not know."""
    if revision is None:
        return
    from alembic.util import CommandError

    try:
        known = script.get_revision(revision) is not None
    except CommandError:
        known = False
    if not known:
        raise CatalogError(
            f"{path} was written by a newer photoindex (schema revision {revision!r}, "
            f"this one knows up to {script.get_current_head()!r})",
            "upgrade photoindex, or restore a backup made before the upgrade (photoindex.db.bak-*)"
            if isinstance(path, Path)
            else "upgrade photoindex here to the version the machines sharing this catalog run",
        )



def backup_database(path: Path, revision: str) -> Path:
    """Copy the catalog to `<name>.bak-<revision>-<UTC timestamp>` beside it, atomically; return the copy."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = path.with_name(f"{path.name}.bak-{revision}-{stamp}")
    tmp = target.with_name(target.name + ".tmp")
    # The backup API copies the database as a reader sees it, WAL frames included: no checkpoint
    # is needed (and none is possible while the caller holds the write lock).
    source = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True, timeout=DEFAULT_BUSY_TIMEOUT)
    try:
        copy = sqlite3.connect(tmp)
        try:
            source.backup(copy)
        finally:
            copy.close()
    finally:
        source.close()
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    fsync_folder(target.parent)
    return target


def upgrade_database(
    path: Path, revision: str = "head", *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT
) -> Path | None:
    """Migrate the catalog at `path` (created if missing) to `revision` in one transaction.

    An existing catalog is backed up first; returns the backup's path, or None when nothing was
    migrated or the catalog was new. A failure or a kill leaves the old revision in place.
    """
    path = Path(path)
    _check_sqlite_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    script = _script_directory()
    from alembic import command

    # Foreign keys off: batch mode recreates tables that others reference. The pragma is
    # ignored inside a transaction, hence a dedicated unpooled engine.
    from sqlalchemy import exc

    engine = create_catalog_engine(path, busy_timeout=busy_timeout, foreign_keys=False, pooled=False)
    try:
        with engine.connect() as conn:
            try:
                conn.begin()  # BEGIN IMMEDIATE: one migrator at a time, and a stable revision to read
            except exc.OperationalError as error:
                if _is_locked(error):
                    raise _locked_error(path, busy_timeout) from None
                raise
            current = _read_revision(conn.connection.dbapi_connection, path)  # type: ignore[arg-type]
            _check_known(path, current, script)
            target = script.get_revision(revision).revision
            if current == target:
                return None
            backup = backup_database(path, current) if current is not None else None
            if backup is not None:
                log.info("migrating %s from revision %s to %s (backup: %s)", path, current, target, backup)
            config = _alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            violations = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if violations:
                raise CatalogError(
                    f"{path}: migrating to revision {target} broke {len(violations)} foreign key(s)",
                    "this is a bug in photoindex; the catalog was left unchanged, please report it",
                )
            conn.commit()
            return backup
    except exc.DatabaseError as error:
        raise _damage(path, error) or CatalogError(
            f"{path}: cannot migrate the catalog: {error.orig}", _RESTORE_HINT
        ) from None
    finally:
        engine.dispose()


def open_database(
    path: Path, *, migrate: bool = True, busy_timeout: float = DEFAULT_BUSY_TIMEOUT
) -> Database:
    """Open the catalog at `path`, creating its folder; migrate it to head (default) or require head."""
    path = Path(path).expanduser().absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Read the revision without the write lock first: a catalog at head (the usual case) must
    # open without waiting for a writer, so searches never block on the daemon.
    current = current_revision(path)
    if current == HEAD_REVISION:
        # The usual case, decided without importing Alembic (it costs ~0.1 s of a cold search);
        # tests check HEAD_REVISION against the migrations folder.
        return Database(path, busy_timeout=busy_timeout)
    script = _script_directory()
    _check_known(path, current, script)
    head = script.get_current_head()
    if current != head:
        if migrate:
            upgrade_database(path, busy_timeout=busy_timeout)
        else:
            raise CatalogError(
                f"{path}: the catalog is at schema revision {current or '(none)'}; "
                f"this photoindex needs {head}",
                "run `photoindex status` (or any command that opens the catalog for writing) to migrate it",
            )
    return Database(path, busy_timeout=busy_timeout)


def open_catalog(location: CatalogLocation, *, migrate: bool = True) -> Database:
    """Open the catalog `location` names (`Config.catalog_location`): the SQLite file, or a PostgreSQL server."""
    if location.is_postgres:
        from photoindex.catalog.postgres import open_pg_database

        return open_pg_database(location, migrate=migrate)
    assert location.path is not None
    return open_database(location.path, migrate=migrate)
