"""The catalog on a real PostgreSQL server (pgserver): the URL, errors, read transactions (migrations on both
back ends: tests/catalog/test_migrations.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import pg_database_url, psycopg_connect

from photoindex.catalog import reads
from photoindex.catalog import writes as catalog
from photoindex.catalog.db import open_catalog
from photoindex.catalog.location import CatalogLocation, masked, parse_location
from photoindex.catalog.postgres import PgDatabase, PgReads
from photoindex.errors import CatalogError, ConfigError


@pytest.fixture
def location(pg_server: Any) -> CatalogLocation:
    return CatalogLocation(url=pg_database_url(pg_server))


@pytest.fixture
def pg(location: CatalogLocation) -> Iterator[PgDatabase]:
    db = open_catalog(location)
    assert isinstance(db, PgDatabase)
    yield db
    db.close()


def test_an_empty_database_is_not_migrated_when_asked_not_to(location: CatalogLocation) -> None:
    with pytest.raises(CatalogError, match=r"schema revision \(none\)"):
        open_catalog(location, migrate=False)


@pytest.mark.usefixtures("postgres_extra")
def test_a_server_that_cannot_be_reached_is_named_without_its_password() -> None:
    location = parse_location("postgresql://ann:s3cret@127.0.0.1:9/photos", Path("unused"))
    with pytest.raises(CatalogError) as info:
        open_catalog(location)
    text = f"{info.value.message} {info.value.hint}"
    assert "127.0.0.1:9" in text and "s3cret" not in text and "ann:***@127.0.0.1:9" in text


def test_a_missing_driver_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "psycopg", None)  # as on a machine without the postgres extra
    monkeypatch.setitem(sys.modules, "pgvector.sqlalchemy", None)
    location = parse_location("postgresql://ann:s3cret@127.0.0.1:9/photos", Path("unused"))
    with pytest.raises(CatalogError) as info:
        open_catalog(location)
    assert "is not installed" in info.value.message and "s3cret" not in info.value.message
    assert "photoindex[postgres]" in info.value.hint


def test_urls_are_masked_and_parsed() -> None:
    assert masked("postgresql://ann:p%40ss@db.lan:5433/photos") == "postgresql://ann:***@db.lan:5433/photos"
    assert masked("postgresql://ann@db.lan/photos") == "postgresql://ann@db.lan/photos"
    pg = parse_location("postgres://ann:x@db.lan/photos", Path("/home/p.db"))
    assert pg.url == "postgresql+psycopg://ann:x@db.lan/photos" and pg.shown.endswith("ann:***@db.lan/photos")
    assert pg.host == "db.lan"
    assert parse_location("", Path("/home/p.db")) == CatalogLocation(path=Path("/home/p.db"))
    assert parse_location("sqlite:////srv/p.db", Path("x")).path == Path("/srv/p.db")
    with pytest.raises(ConfigError, match=r"\*\*\*"):
        parse_location("mysql://ann:secret@db/photos", Path("x"))


def test_reads_are_read_only_and_see_one_snapshot(pg: PgDatabase, tmp_path: Path) -> None:
    with pg.write() as s:
        catalog.add_root(s, tmp_path / "one")
    with pg.reads() as con:
        assert isinstance(con, PgReads)
        before = con.execute("SELECT count(*) FROM roots").fetchone()[0]
        with pg.write() as s:  # another transaction commits meanwhile
            catalog.add_root(s, tmp_path / "two")
        with pg.reads() as inner:  # nested: the same snapshot
            assert inner.execute("SELECT count(*) FROM roots").fetchone()[0] == before == 1
        import psycopg

        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            con.execute("DELETE FROM roots")
    with pg.reads() as con:
        assert con.execute("SELECT count(*) FROM roots").fetchone()[0] == 2


def test_paths_that_are_not_utf8_round_trip_and_sort_by_bytes(pg: PgDatabase, tmp_path: Path) -> None:
    odd = str(tmp_path) + "/" + bytes([0x63, 0x61, 0x66, 0xE9]).decode("utf-8", "surrogateescape") + ".jpg"
    names = [odd, str(tmp_path / "Z.jpg"), str(tmp_path / "a.jpg")]
    with pg.write() as s:
        root = catalog.add_root(s, tmp_path)
        for name in names:
            catalog.store_pending(s, root_id=root.id, path=name, size=1, mtime_ns=1)
    with pg.reads() as con:
        got = [p.path for p in reads.photo_states_under(con, tmp_path)]
    assert got == sorted(names, key=lambda n: n.encode("utf-8", "surrogateescape"))


def test_the_translation_of_sqlite_idioms() -> None:
    sql = "SELECT 1 FROM p WHERE +p.status = 'x%' AND p.path = CAST(? AS TEXT) AND p.m IS ? AND 0"
    assert PgReads.translate(sql) == (
        "SELECT 1 FROM p WHERE p.status = 'x%%' AND p.path = %s AND p.m IS NOT DISTINCT FROM %s AND false"
    )


def test_the_schema_of_each_catalog_is_its_own(pg_server: Any) -> None:
    """The test fixture's catalogs are schemas of one database: each sees only its own tables."""
    first, second = pg_database_url(pg_server), pg_database_url(pg_server)
    with open_catalog(CatalogLocation(url=first)) as a, a.write() as s:
        catalog.add_root(s, "/one")
    with open_catalog(CatalogLocation(url=second)) as b, b.read() as s:
        assert catalog.list_roots(s) == []
    with psycopg_connect(first) as con:
        assert con.execute("SELECT count(*) FROM roots").fetchone()[0] == 1


def test_a_lost_connection_is_retried_then_reported_with_what_was_committed_kept(
    pg: PgDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import text

    from photoindex.catalog import postgres

    monkeypatch.setattr(postgres, "RETRY_PAUSE", 0.01)
    attempts: list[int] = []
    heard: list[str] = []

    def batch(path: Path, drop: int) -> Any:
        def work() -> None:
            attempts.append(1)
            with pg.write() as s:
                root = catalog.add_root(s, path)
                if len(attempts) <= drop:  # the server goes away in the middle of the transaction
                    s.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
                catalog.store_pending(s, root_id=root.id, path=path / "a.jpg", size=1, mtime_ns=1)

        return work

    pg.retrying(batch(tmp_path / "one", drop=2), on_retry=heard.append)
    assert len(attempts) == 3 and len(heard) == 2 and "retrying" in heard[0]
    attempts.clear()
    with pytest.raises(CatalogError) as info:
        pg.retrying(batch(tmp_path / "two", drop=99))
    assert len(attempts) == postgres.RETRIES
    assert "lost the connection" in info.value.message and "everything committed before stays" in info.value.hint
    with pg.read() as s:  # the first batch committed once; the second never
        assert [r.path for r in catalog.list_roots(s)] == [str(tmp_path / "one")]
        assert len(catalog.photos_with_status(s, "pending")) == 1


def test_the_cli_names_an_unreachable_server_in_one_line(
    home_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, postgres_extra: None
) -> None:
    from helpers import runner

    from photoindex.cli.app import app

    monkeypatch.setenv("PHOTOINDEX_CATALOG_URL", "postgresql://ann:s3cret@127.0.0.1:9/photos")
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 1
    assert "error: cannot reach the PostgreSQL catalog at 127.0.0.1:9" in result.output
    assert "s3cret" not in result.output and "Traceback" not in result.output


def test_hnsw_walks_more_candidates_for_more_results_and_at_least_the_configured_floor(pg: PgDatabase) -> None:
    import numpy as np

    from photoindex.catalog.pgvectors import EF_SEARCH_MAX, nearest, vector_version

    query = np.ones(8, dtype=np.float32) / np.sqrt(8)
    walked = {}
    for k, floor in ((5, 100), (26, 100), (26, 400), (500, 100)):
        with pg.reads() as con:
            nearest(con, "m", 8, query, k, ef_search=floor)
            walked[(k, floor)] = int(con.execute("SHOW hnsw.ef_search").fetchone()[0])
    assert walked == {(5, 100): 100, (26, 100): 260, (26, 400): 400, (500, 100): EF_SEARCH_MAX}
    with pg.reads() as con:
        assert vector_version(con) >= (0, 5, 0)
