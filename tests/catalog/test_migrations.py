"""Alembic migrations: upgrade with data, backups, refusals, and failures midway, on real SQLite files; the
tests taking `catalog_location` run on a real PostgreSQL server (pgserver) too."""

from __future__ import annotations

import os
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
from conftest import psycopg_connect

from photoindex import resources
from photoindex.catalog import reads
from photoindex.catalog import writes as catalog
from photoindex.catalog.db import (
    _alembic_config,
    create_catalog_engine,
    current_revision,
    head_revision,
    open_catalog,
    open_database,
    upgrade_database,
)
from photoindex.catalog.location import CatalogLocation, masked
from photoindex.catalog.schema import Base, outside_metadata
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


def test_head_schema_matches_the_models(catalog_location: CatalogLocation) -> None:
    with open_catalog(catalog_location) as db, db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": _declared})
        assert compare_metadata(context, Base.metadata) == []
    assert _revision(catalog_location) == head_revision()


def _declared(name: str | None, type_: str, parent: object) -> bool:
    """The full-text index of the words read in photos (FTS5 tables, a tsvector table) is outside the models."""
    return not outside_metadata(name, type_)


def _revision(location: CatalogLocation) -> str | None:
    if location.is_postgres:
        from photoindex.catalog.postgres import pg_current_revision

        return pg_current_revision(location)
    assert location.path is not None
    return current_revision(location.path)


def _migrate(location: CatalogLocation, revision: str, *, down: bool = False) -> None:
    """Run Alembic to `revision` on the catalog, as a maintainer would (no backup, no checks)."""
    if location.is_postgres:
        from photoindex.catalog.postgres import create_pg_engine

        engine = create_pg_engine(location, pooled=False)
    else:
        assert location.path is not None
        engine = create_catalog_engine(location.path, foreign_keys=False, pooled=False)
    config = _alembic_config()
    with engine.connect() as conn, conn.begin():
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)
    engine.dispose()


def _set_revision(location: CatalogLocation, revision: str) -> None:
    if location.is_postgres:
        with psycopg_connect(str(location.url)) as con:
            con.execute("UPDATE alembic_version SET version_num = %s", (revision,))
        return
    con = sqlite3.connect(str(location.path))
    with con:
        con.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    con.close()


def test_rows_of_every_revision_survive_a_downgrade_to_the_first_and_the_upgrade_back(
    catalog_location: CatalogLocation, tmp_path: Path
) -> None:
    """Roots and photos (64-bit sizes and mtimes, a name that is not UTF-8) through every revision down and up
    (on PostgreSQL without vectors: revision 0006 makes the vector column from an empty table)."""
    odd = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9.jpg")
    with open_catalog(catalog_location) as db, db.write() as s:
        root = catalog.add_root(s, tmp_path)
        catalog.store_pending(s, root_id=root.id, path=tmp_path / "a.jpg", size=2**40, mtime_ns=2**62)
        catalog.store_pending(s, root_id=root.id, path=odd, size=1, mtime_ns=2)
    _migrate(catalog_location, FIRST, down=True)
    assert _revision(catalog_location) == FIRST
    with open_catalog(catalog_location) as db, db.read() as s:
        photos = sorted((p.path, p.size, p.mtime_ns) for p in catalog.photos_with_status(s, "pending"))
        assert [r.path for r in catalog.list_roots(s)] == [str(tmp_path.resolve())]
    assert photos == sorted([(str(tmp_path / "a.jpg"), 2**40, 2**62), (odd, 1, 2)])
    assert _revision(catalog_location) == head_revision()


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


def test_newer_catalog_is_refused_and_left_alone(catalog_location: CatalogLocation) -> None:
    open_catalog(catalog_location).close()
    _set_revision(catalog_location, "9999")
    shown = str(catalog_location.path) if catalog_location.path is not None else masked(str(catalog_location.url))
    for migrate in (True, False):
        with pytest.raises(CatalogError, match="newer photoindex") as error:
            open_catalog(catalog_location, migrate=migrate)
        assert shown in error.value.message and "upgrade photoindex" in (error.value.hint or "")
    assert _revision(catalog_location) == "9999"
    if catalog_location.path is not None:
        assert backups(catalog_location.path) == []


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


def test_a_failed_migration_on_postgresql_leaves_the_catalog_as_it_was(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL migrates in one transaction (no backup file there): every revision from the first to a last
    one failing after its DDL and a DELETE rolls back together; revision, columns and rows stay as they were,
    and the catalog opens again."""
    location = CatalogLocation(url=pg_url)
    with open_catalog(location) as db, db.write() as s:
        root = catalog.add_root(s, tmp_path)
        catalog.store_pending(s, root_id=root.id, path=tmp_path / "a.jpg", size=1, mtime_ns=2)
    _migrate(location, FIRST, down=True)
    folder = broken_migrations(tmp_path, 'raise RuntimeError("migration failed midway")')
    monkeypatch.setattr(resources, "migrations_dir", lambda: folder)
    with pytest.raises(RuntimeError, match="midway"):
        open_catalog(location)
    monkeypatch.undo()
    assert _revision(location) == FIRST
    with psycopg_connect(pg_url) as con:
        names = [r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name IN ('photos', 'roots')"
        )]
    assert "path" in names and "doomed" not in names and "watch_mode" not in names
    with open_catalog(location) as db, db.read() as s:
        assert catalog.count_by_status(s)["pending"] == 1


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
