"""Damaged state gets one clear answer, never a traceback or a silent new library (issue: damaged state).

Real catalogs made by the real CLI, then damaged the ways disks and people damage them.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest
from helpers import cli, sql
from typer.testing import CliRunner

from photoindex.cli.app import app
from photoindex.config import Config
from photoindex.testing.photos import make_photo_tree

runner = CliRunner()


@pytest.fixture
def library(tmp_path: Path, config: Config) -> Path:
    root = tmp_path / "Photos"
    make_photo_tree(root, 30, seed=8)
    cli("index", str(root))
    con = sqlite3.connect(config.db_path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file, where the damage goes
    con.close()
    return root


def scribble(path: Path, page: int) -> None:
    data = bytearray(path.read_bytes())
    rng = random.Random(page)
    for i in range(4096 * page, min(len(data), 4096 * (page + 1))):
        data[i] = rng.randrange(256)
    path.write_bytes(bytes(data))


def assert_one_damage_error(*args: str) -> None:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # an error line, not a traceback
    assert "error:" in result.stderr and "damaged catalog" in result.stderr, result.stderr
    assert "PRAGMA integrity_check" in result.stderr and ".bak-" in result.stderr


def test_text_that_is_not_utf8_in_the_catalog_is_a_damaged_catalog(library: Path, config: Config) -> None:
    sql(config, "UPDATE alembic_version SET version_num = CAST(X'FF41' AS TEXT)")
    for command in (["status"], ["search", "red"], ["reindex"]):
        assert_one_damage_error(*command)


@pytest.mark.slow
@pytest.mark.parametrize("page", [1, 3, 5, 7, 9])
def test_a_scribbled_page_is_a_damaged_catalog_wherever_it_is_met(library: Path, config: Config, page: int) -> None:
    """Whatever page is hit (schema, photos, vectors, indexes), every command either works or says the catalog
    is damaged; none dies with a traceback."""
    if config.db_path.stat().st_size <= 4096 * page:
        pytest.skip("the catalog is smaller")
    scribble(config.db_path, page)
    for command in (["status"], ["search", "red"], ["reindex"]):
        result = runner.invoke(app, command)
        if result.exit_code != 0:
            assert isinstance(result.exception, SystemExit), (command, result.output)
            assert "damaged catalog" in result.stderr, (command, result.stderr)


def test_an_emptied_catalog_beside_the_index_of_a_library_stops_every_command(
    library: Path, config: Config
) -> None:
    config.db_path.write_bytes(b"")
    for suffix in ("-wal", "-shm"):
        Path(f"{config.db_path}{suffix}").unlink(missing_ok=True)
    index_files = sorted((config.home / "index").glob("*.idx"))
    for command in (["status"], ["search", "red"], ["reindex"], ["index", str(library)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
        assert "is empty (0 bytes)" in result.stderr and "restore" in result.stderr
    assert config.db_path.stat().st_size == 0  # nothing was re-created behind the user's back
    assert sorted((config.home / "index").glob("*.idx")) == index_files

    config.db_path.unlink()  # the user's decision: a new library
    assert cli("index", str(library))["encoded"] == 30


def test_an_empty_catalog_without_a_library_before_is_a_new_library(tmp_path: Path, config: Config) -> None:
    config.home.mkdir(parents=True)
    config.db_path.write_bytes(b"")
    make_photo_tree(tmp_path / "Photos", 3, seed=2)
    assert cli("index", str(tmp_path / "Photos"))["encoded"] == 3
