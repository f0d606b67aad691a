"""Opening the catalog a second time in a process must not drop the SQLite locks it already holds."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from photoindex.catalog.db import open_database
from photoindex.errors import CatalogError


def test_a_second_open_keeps_the_locks_of_the_first(tmp_path: Path) -> None:
    """A process with a connection to the catalog opens it again (the daemon and its web page do). Its lock on
    the file must survive: else another process that writes and closes believes it is the last user and deletes
    the write-ahead log under the first (whose later reads then show old data)."""
    path = tmp_path / "home" / "photoindex.db"
    open_database(path).close()
    first = sqlite3.connect(path)
    assert first.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    first.execute("SELECT count(*) FROM roots").fetchone()
    open_database(path).close()  # the second open: its header check must not close a plain descriptor
    code = (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "c.execute('CREATE TABLE other_process (x)'); c.commit(); c.close()"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    assert Path(f"{path}-wal").exists(), "the other process deleted the WAL: this process's lock was dropped"
    first.close()


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "photoindex.db"
    path.write_bytes(b"not a database at all, just some text" * 200)
    with pytest.raises(CatalogError, match="not a SQLite database"):
        open_database(path)
