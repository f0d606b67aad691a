"""Alembic migrations on real SQLite files: upgrade with data, backups, refusals, and failures midway."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from photoindex import resources
from photoindex.catalog import reads
from photoindex.catalog import writes as catalog
from photoindex.catalog.db import (
    create_catalog_engine,
    current_revision,
    head_revision,
    open_database,
    upgrade_database,
)
from photoindex.catalog.schema import Base
from photoindex.errors import CatalogError

FIRST = "0001"


def make_first_revision_catalog(path: Path) -> None:
    """A catalog at revision 0001 holding a root, two photos (one non-UTF-8 name) and a vector."""
    assert upgrade_database(path, FIRST) is None
    con = sqlite3.connect(path)
    with con:
        con.execute(
            "INSERT INTO roots (id, path, added_at, present) VALUES (1, '/photos', '2024-01-01 00:00:00', 1)"
        )
        photos = (
            "INSERT INTO photos"
            " (id, root_id, path, size, mtime_ns, content_hash, status, first_seen, updated_at)"
            " VALUES (?, 1, CAST(? AS TEXT), ?, ?, 'h1', 'indexed', ?, ?)"
        )
        day = "2024-01-01 00:00:00"
        con.execute(photos, (1, b"/photos/a.jpg", 10, 100, day, day))
        con.execute(photos, (2, b"/photos/caf\xe9.jpg", 20, 200, day, day))
        con.execute(
            "INSERT INTO vectors (model_id, content_hash, dim, vector, created_at)"
            " VALUES ('m', 'h1', 2, ?, '2024-01-01 00:00:00')",
            (b"\x00\x00\x80\x3f\x00\x00\x00\x40",),
        )
        con.execute("INSERT INTO index_state VALUES ('m', 1, 0, '2024-01-01 00:00:00')")
    con.close()


FIRST_PHOTO_COLUMNS = (
    "id", "root_id", "path", "size", "mtime_ns", "content_hash", "width", "height", "format", "taken_at",
    "camera_make", "camera_model", "gps_lat", "gps_lon", "status", "error", "first_seen", "updated_at",
)


def snapshot(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """The rows every revision shares, read with plain sqlite3 (bytes for text, to compare exactly)."""
    con = sqlite3.connect(path)
    con.text_factory = bytes
    try:
        return {
            "roots": con.execute("SELECT id, path, added_at, present FROM roots ORDER BY id").fetchall(),
            "photos": con.execute(f"SELECT {', '.join(FIRST_PHOTO_COLUMNS)} FROM photos ORDER BY id").fetchall(),
            "vectors": con.execute(
                "SELECT id, model_id, content_hash, dim, vector, created_at FROM vectors ORDER BY id"
            ).fetchall(),
            "index_state": con.execute("SELECT * FROM index_state").fetchall(),
        }
    finally:
        con.close()


def columns(path: Path, table: str) -> list[str]:
    con = sqlite3.connect(path)
    try:
        return [row[1] for row in con.execute(f"PRAGMA table_info({table})")]
    finally:
        con.close()


def backups(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.glob(path.name + ".bak-*") if not p.name.endswith(".tmp"))


def test_head_schema_matches_the_models(tmp_path: Path) -> None:
    with open_database(tmp_path / "photoindex.db") as db, db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_name": _declared}
        )
        assert compare_metadata(context, Base.metadata) == []


def _declared(name: str | None, type_: str, parent: object) -> bool:
    """The FTS5 tables of the words read in photos live outside the declarative metadata."""
    from photoindex.catalog.schema import is_text_index_table

    return not (type_ == "table" and is_text_index_table(name))


def test_first_revision_with_data_upgrades_to_head_intact_with_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "photoindex.db"
    make_first_revision_catalog(path)
    before = snapshot(path)
    assert current_revision(path) == FIRST

    with open_database(path) as db:
        with db.read() as s:
            roots = catalog.list_roots(s)
            assert [(r.path, r.watch_mode, r.present) for r in roots] == [("/photos", "auto", True)]
            assert catalog.get_photo(s, "/photos/caf\udce9.jpg") is not None
            assert reads.vector_for_hash(catalog.connection(s), "m", "h1").tolist() == [1.0, 2.0]  # type: ignore[union-attr]
            assert catalog.index_state(s, "m").generation == 1
        with db.write() as s:
            catalog.update_root(s, roots[0].id, watch_mode="poll")

    assert current_revision(path) == head_revision()
    assert snapshot(path) == before
    # Revision 0004: the older rows wait for the next scan to read their metadata (meta_version 0).
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT DISTINCT meta_version, taken_local, place_id FROM photos").fetchall() == [
            (0, None, None)
        ]
    finally:
        con.close()
    (backup,) = backups(path)
    assert backup.name.startswith(f"photoindex.db.bak-{FIRST}-")
    assert current_revision(backup) == FIRST
    assert snapshot(backup) == before

    with open_database(path):  # already at head: no second backup
        pass
    assert backups(path) == [backup]


def test_backup_includes_commits_still_in_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "photoindex.db"
    assert upgrade_database(path, FIRST) is None
    keeper = sqlite3.connect(path)  # an open connection keeps the WAL from being checkpointed away
    keeper.execute("SELECT count(*) FROM roots").fetchone()
    writer = sqlite3.connect(path)
    with writer:
        writer.execute("INSERT INTO roots (path, added_at, present) VALUES ('/wal-only', '2024-01-01', 1)")
    writer.close()
    try:
        assert Path(str(path) + "-wal").stat().st_size > 0
        backup = upgrade_database(path)
    finally:
        keeper.close()
    assert backup is not None
    con = sqlite3.connect(backup)
    assert con.execute("SELECT path FROM roots").fetchall() == [("/wal-only",)]
    con.close()


def test_downgrade_and_upgrade_again(tmp_path: Path) -> None:
    path = tmp_path / "photoindex.db"
    make_first_revision_catalog(path)
    open_database(path).close()
    before = snapshot(path)
    engine = create_catalog_engine(path, foreign_keys=False, pooled=False)
    config = Config()
    config.set_main_option("script_location", str(resources.migrations_dir()))
    with engine.connect() as conn, conn.begin():
        config.attributes["connection"] = conn
        command.downgrade(config, FIRST)
    engine.dispose()
    assert current_revision(path) == FIRST and "watch_mode" not in columns(path, "roots")
    open_database(path).close()
    assert "watch_mode" in columns(path, "roots") and snapshot(path) == before


def test_newer_catalog_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "photoindex.db"
    open_database(path).close()
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE alembic_version SET version_num = '9999'")
    con.close()
    for migrate in (True, False):
        with pytest.raises(CatalogError, match="newer photoindex") as error:
            open_database(path, migrate=migrate)
        assert str(path) in error.value.message and "upgrade photoindex" in (error.value.hint or "")
    assert current_revision(path) == "9999"
    assert backups(path) == []


def test_a_file_that_is_not_sqlite_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "photoindex.db"
    path.write_bytes(b"these are not the pages you are looking for" * 100)
    with pytest.raises(CatalogError, match="not a SQLite database") as error:
        open_database(path)
    assert str(path) in error.value.message
    with pytest.raises(CatalogError, match="not a SQLite database"):
        current_revision(path)
    assert path.read_bytes().startswith(b"these are not")


def test_another_programs_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "photoindex.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE songs (title TEXT)")
    con.close()
    with pytest.raises(CatalogError, match="not a photoindex catalog"):
        open_database(path)
    assert columns(path, "songs") == ["title"]


def test_an_empty_file_becomes_a_new_catalog(tmp_path: Path) -> None:
    path = tmp_path / "photoindex.db"
    path.touch()
    open_database(path).close()
    assert current_revision(path) == head_revision()
    assert backups(path) == []


BROKEN_REVISION = '''
"""Test only: fails after its first DDL."""
import os
import signal
import sqlalchemy as sa
from alembic import op

revision = "9999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("photos", sa.Column("doomed", sa.Integer(), nullable=True))
    op.execute("DELETE FROM photos")
    {failure}


def downgrade() -> None:
    pass
'''


def broken_migrations(tmp_path: Path, failure: str) -> Path:
    """A copy of the real migrations plus a revision that does DDL and DML, then fails."""
    folder = tmp_path / "migrations"
    shutil.copytree(resources.migrations_dir(), folder, ignore=shutil.ignore_patterns("__pycache__"))
    source = BROKEN_REVISION.format(head=head_revision(), failure=failure)
    (folder / "versions" / "9999_broken.py").write_text(source)
    return folder


def assert_still_first_revision(path: Path, before: dict[str, list[tuple[object, ...]]]) -> None:
    assert current_revision(path) == FIRST
    assert snapshot(path) == before  # every revision after the first rolled back together, rows included
    assert "doomed" not in columns(path, "photos") and "watch_mode" not in columns(path, "roots")
    (backup,) = backups(path)
    assert current_revision(backup) == FIRST and snapshot(backup) == before


def test_failure_midway_leaves_the_old_revision_and_a_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "home" / "photoindex.db"
    path.parent.mkdir()
    make_first_revision_catalog(path)
    before = snapshot(path)
    folder = broken_migrations(tmp_path, 'raise RuntimeError("migration failed midway")')
    monkeypatch.setattr(resources, "migrations_dir", lambda: folder)
    with pytest.raises(RuntimeError, match="midway"):
        open_database(path)
    monkeypatch.undo()
    assert_still_first_revision(path, before)
    with open_database(path) as db, db.read() as s:  # the real migrations still work afterwards
        assert catalog.count_by_status(s)["indexed"] == 2


def test_kill_midway_leaves_the_old_revision_and_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "home" / "photoindex.db"
    path.parent.mkdir()
    make_first_revision_catalog(path)
    before = snapshot(path)
    folder = broken_migrations(tmp_path, "os.kill(os.getpid(), signal.SIGKILL)")
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from photoindex import resources
        resources.migrations_dir = lambda: Path(sys.argv[2])
        from photoindex.catalog.db import open_database
        open_database(Path(sys.argv[1]))
        """
    )
    result = subprocess.run([sys.executable, "-c", script, str(path), str(folder)], capture_output=True)
    assert result.returncode == -9, result.stderr.decode()
    assert_still_first_revision(path, before)
    with open_database(path) as db, db.read() as s:
        assert catalog.count_by_status(s)["indexed"] == 2
    assert current_revision(path) == head_revision()


def test_head_revision_constant_matches_the_migrations_folder() -> None:
    """`open_database` skips Alembic when a catalog is at HEAD_REVISION, so the constant must be the real head."""
    from photoindex.catalog.db import HEAD_REVISION, head_revision

    assert HEAD_REVISION == head_revision()
