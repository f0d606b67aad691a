"""The catalog file and the single-writer lock: WAL, BEGIN IMMEDIATE, snapshots, busy waits, flock."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import needs_proc
from sqlalchemy import exc, func, select

from photoindex.catalog import writes as catalog
from photoindex.catalog.db import (
    SYNCHRONOUS,
    Database,
    current_revision,
    head_revision,
    open_database,
)
from photoindex.catalog.schema import RootRow
from photoindex.catalog.writerlock import WriterLock, lock_holder
from photoindex.config import Config
from photoindex.errors import CatalogError, LockedError
from photoindex.library import open_library


def count_roots(db: Database) -> int:
    with db.read() as s:
        return int(s.execute(select(func.count()).select_from(RootRow)).scalar_one())


def run_in_thread(fn: object) -> object:
    """Run `fn` in another thread (so on another pooled connection) and return its result or raise."""
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["value"] = fn()  # type: ignore[operator]
        except BaseException as error:  # noqa: BLE001 - handed back to the test thread
            box["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


def test_open_creates_folder_wal_and_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "photoindex.db"
    with open_database(path) as db:
        assert path.is_file()
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
            levels = {"OFF": 0, "NORMAL": 1, "FULL": 2, "EXTRA": 3}
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == levels[SYNCHRONOUS]
    assert current_revision(path) == head_revision()
    assert not list(path.parent.glob("*.bak-*"))  # a new catalog has nothing to back up


def test_write_holds_the_write_lock_from_entry(db: Database) -> None:
    other = sqlite3.connect(db.path, timeout=0, isolation_level=None)
    try:
        with db.write():
            # No statement has run yet: the lock comes from BEGIN IMMEDIATE itself.
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_reader_never_sees_a_half_written_batch(db: Database, tmp_path: Path) -> None:
    with db.write() as s:
        for i in range(3):
            catalog.add_root(s, tmp_path / f"root{i}")
        s.flush()
        assert run_in_thread(lambda: count_roots(db)) == 0
    assert run_in_thread(lambda: count_roots(db)) == 3


def test_read_transaction_is_one_snapshot(db: Database, tmp_path: Path) -> None:
    def commit_root() -> None:
        with db.write() as s:
            catalog.add_root(s, tmp_path / "late")

    with db.read() as s:
        before = s.execute(select(func.count()).select_from(RootRow)).scalar_one()
        run_in_thread(commit_root)  # a writer commits while the reader is open: WAL lets it
        again = s.execute(select(func.count()).select_from(RootRow)).scalar_one()
    assert before == again == 0
    assert count_roots(db) == 1


def test_read_refuses_to_write_and_the_connection_recovers(db: Database, tmp_path: Path) -> None:
    with pytest.raises(exc.OperationalError, match="readonly"):
        with db.read() as s:
            catalog.add_root(s, tmp_path / "x")
    with db.write() as s:  # query_only was reset on the pooled connection
        catalog.add_root(s, tmp_path / "x")
    assert count_roots(db) == 1


def test_write_rolls_back_on_exception(db: Database, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with db.write() as s:
            catalog.add_root(s, tmp_path / "x")
            raise RuntimeError("boom")
    assert count_roots(db) == 0


def test_second_writer_waits_for_the_first(db: Database, tmp_path: Path) -> None:
    first_in = threading.Event()
    second_starting = threading.Event()
    order: list[str] = []

    def second() -> None:
        first_in.wait()
        second_starting.set()
        with db.write() as s:  # blocks in BEGIN IMMEDIATE (busy_timeout) until the first commits
            order.append("second in")
            catalog.add_root(s, tmp_path / "b")

    thread = threading.Thread(target=second)
    thread.start()
    with db.write() as s:
        catalog.add_root(s, tmp_path / "a")
        first_in.set()
        second_starting.wait()
        threading.Event().wait(0.3)  # give the second writer time to hit the lock
        order.append("first commits")
    thread.join()
    assert order == ["first commits", "second in"]
    assert count_roots(db) == 2


def test_writer_gives_up_after_busy_timeout_with_a_catalog_error(db: Database, tmp_path: Path) -> None:
    impatient = open_database(db.path, busy_timeout=0.05)
    try:
        with db.write():
            with pytest.raises(CatalogError, match="locked") as info:
                run_in_thread(lambda: impatient.write().__enter__())
            assert str(db.path) in info.value.message
        with impatient.write() as s:  # the failed attempt left nothing behind
            catalog.add_root(s, tmp_path / "ok")
    finally:
        impatient.close()


def test_opening_a_current_catalog_does_not_wait_for_the_writer(db: Database, tmp_path: Path) -> None:
    with db.write() as s:
        catalog.add_root(s, tmp_path / "uncommitted")
        s.flush()
        # A search opening the catalog now must neither block nor fail on the writer's lock.
        reader = run_in_thread(lambda: open_database(db.path, busy_timeout=0))
        assert isinstance(reader, Database)
        try:
            assert count_roots(reader) == 0
        finally:
            reader.close()


def test_open_without_migrate_requires_head(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="schema revision"):
        open_database(tmp_path / "new.db", migrate=False)
    open_database(tmp_path / "new.db").close()
    open_database(tmp_path / "new.db", migrate=False).close()


# ---------------------------------------------------------------- the writer lock

HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from photoindex.catalog.writerlock import WriterLock
    lock = WriterLock(Path(sys.argv[1]), "daemon")
    lock.acquire()
    print("held", flush=True)
    sys.stdin.readline()
    lock.release()
    print("released", flush=True)
    sys.stdin.readline()
    """
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "writer.lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_lock_in_another_process_is_refused_naming_the_holder(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    path = tmp_path / "writer.lock"
    info = lock_holder(path)
    assert info is not None and info["pid"] == holder.pid and info["purpose"] == "daemon" and info["since"]
    lock = WriterLock(path, "reindex")
    with pytest.raises(LockedError) as error:
        lock.acquire()
    assert f"pid {holder.pid}" in error.value.message
    assert "daemon" in error.value.message and "reindex" in error.value.message
    assert error.value.hint and f"kill {holder.pid}" in error.value.hint
    assert not lock.held


def test_lock_is_released_when_the_holder_is_killed(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    path = tmp_path / "writer.lock"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert path.read_text()  # the dead holder's details are still in the file...
    assert lock_holder(path) is None  # ...but the lock is not held
    with WriterLock(path, "index") as lock:
        assert lock.held
        info = lock_holder(path)
        assert info is not None and (info["pid"], info["purpose"]) == (os.getpid(), "index")


def test_bounded_wait_gets_the_lock_once_released(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    path = tmp_path / "writer.lock"
    assert holder.stdin is not None and holder.stdout is not None
    lock = WriterLock(path, "index")

    def release_soon() -> None:
        holder.stdin.write("\n")  # type: ignore[union-attr]
        holder.stdin.flush()  # type: ignore[union-attr]

    threading.Thread(target=release_soon).start()
    lock.acquire(wait=60)
    try:
        assert holder.stdout.readline().strip() == "released"
        assert lock_holder(path)["pid"] == os.getpid()  # type: ignore[index]
    finally:
        lock.release()


def test_lock_is_exclusive_within_one_process_too(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "writer.lock"
    first = WriterLock(path, "daemon")
    first.acquire()
    try:
        with pytest.raises(LockedError, match=f"pid {os.getpid()}"):
            WriterLock(path, "index").acquire(wait=0.2)
    finally:
        first.release()
    assert lock_holder(path) is None
    assert path.read_text() == ""  # released: no stale details left
    with WriterLock(path, "index"):
        pass


def test_lock_holder_trusts_the_lock_not_the_file(tmp_path: Path) -> None:
    path = tmp_path / "writer.lock"
    assert lock_holder(path) is None
    path.write_text('{"pid": 1, "purpose": "daemon", "since": "yesterday"}')
    assert lock_holder(path) is None


@needs_proc
def test_a_catalog_backup_and_its_folder_are_fsynced(config: Config, fsynced: list[str]) -> None:
    """backup_database: the copy is flushed under its temporary name, then the folder after the rename."""
    from photoindex.catalog import db

    with open_library(config):
        pass
    fsynced.clear()
    target = db.backup_database(config.db_path, "rev1")
    tmp = str(target) + ".tmp"
    assert tmp in fsynced and fsynced[-1] == str(target.parent) and fsynced.index(tmp) < len(fsynced) - 1
    assert sqlite3.connect(target).execute("PRAGMA integrity_check").fetchone() == ("ok",)
