"""Shared fixtures: generated model bundles (made once per session), an isolated photoindex home, a catalog
database, a machine without axengine, an os.fsync spy, and a private PostgreSQL server with pgvector (the
`pgserver` package) for the tests that run on both catalog back ends."""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from photoindex.catalog.db import Database, open_database
from photoindex.catalog.location import CatalogLocation
from photoindex.config import Config, load_config

# The toy CLIP cannot judge which photos hold text, and reading one costs ~1 s: every test process,
# CLI run and subprocess starts with the text pass off; tests/ocr/ turn it on where they test it.
os.environ["PHOTOINDEX_OCR_ENABLED"] = "0"

# The real-daemon fixtures (`env`, `start`, `empty_root`) for tests/daemon and tests/search.
pytest_plugins = ["daemonproc"]

BACKENDS = ["sqlite", "postgresql"]
_databases = itertools.count()

STANDIN = Path(__file__).parent / "axengine_standin"
# The switches of the axengine stand-in (tests/axengine_standin) that make it fail like a real board can.
STANDIN_SWITCHES = ("AXENGINE_STANDIN_NO_DRIVER", "AXENGINE_STANDIN_FAIL_LOAD", "AXENGINE_STANDIN_FAIL_RUN")


@pytest.fixture(scope="session")
def toy_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated toy bundle (colour semantics, Axera's I/O contract), shared by the session."""
    from photoindex.testing import make_bundle

    return make_bundle(tmp_path_factory.mktemp("bundles") / "toy", "toy")


@pytest.fixture(scope="session")
def npu_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy bundle with an NHWC uint8 image .axmodel beside its ONNX models, shared by the session."""
    from photoindex.testing import make_bundle

    return make_bundle(tmp_path_factory.mktemp("bundles") / "toy", "toy", npu_layout="nhwc-uint8")


@pytest.fixture
def home_env(tmp_path: Path, toy_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """An isolated PHOTOINDEX_HOME using the toy bundle, set in the environment (for CLI tests too)."""
    env = {
        "PHOTOINDEX_HOME": str(tmp_path / "home"),
        "PHOTOINDEX_MODEL_BUNDLE": str(toy_bundle),
        "PHOTOINDEX_INDEX_WORKERS": "1",
        "PHOTOINDEX_OCR_ENABLED": "0",  # see above
    }
    for key in [k for k in list(os.environ) if k.startswith("PHOTOINDEX_")]:
        monkeypatch.delenv(key, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    yield env


@pytest.fixture
def config(home_env: dict[str, str]) -> Config:
    """The configuration of the isolated home."""
    return load_config()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A fresh catalog database (migrated) under tmp_path/home, closed after the test."""
    database = open_database(tmp_path / "home" / "photoindex.db")
    yield database
    database.close()


def forget_axengine() -> None:
    """Drop axengine (the stand-in) from sys.modules, so the next import looks for it again."""
    for name in [m for m in sys.modules if m == "axengine" or m.startswith("axengine.")]:
        del sys.modules[name]


@pytest.fixture
def no_axengine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This machine as it is: no axengine importable (the stand-in is not on the path), no stand-in switches."""
    for var in STANDIN_SWITCHES:
        monkeypatch.delenv(var, raising=False)
    forget_axengine()
    yield
    forget_axengine()


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """The axengine stand-in on sys.path, not imported yet; the monkeypatch sets its failure switches."""
    for var in STANDIN_SWITCHES:
        monkeypatch.delenv(var, raising=False)
    forget_axengine()
    monkeypatch.syspath_prepend(str(STANDIN))
    yield monkeypatch
    forget_axengine()


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path os.fsync is called on (the real fsync still runs), in call order."""
    seen: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    return seen


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """A private PostgreSQL server with pgvector, started once for the session (about a second)."""
    pgserver = pytest.importorskip("pgserver", reason="the postgres extra (pgserver) is not installed")
    # Not under pytest's tmp folder: run as root, pgserver runs the server as its own user, which
    # must reach the data folder (pytest's folders are private to the user running the tests).
    folder = tempfile.mkdtemp(prefix="photoindex-pg-")
    server = pgserver.get_server(folder, cleanup_mode="stop")
    server.psql("CREATE DATABASE photoindex_tests;")
    server.psql("\\c photoindex_tests\nCREATE EXTENSION vector SCHEMA public;")
    yield server
    from pgserver._commands import pg_ctl

    # Immediate: the data is thrown away, so the shutdown checkpoint (~20 s here) is not worth writing.
    pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user)
    logging.getLogger("pgserver").setLevel(logging.CRITICAL)  # its own stop then finds nothing to stop
    server.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


def pg_database_url(server: Any) -> str:
    """A new, empty catalog on `server` as a `postgresql+psycopg://` URL over its Unix socket.

    Each catalog is a schema of one database (search_path set in the URL): ~10 ms, where a
    database of its own costs ~1 s. pgvector lives in `public`, which every search_path ends with.
    """
    name = f"catalog_{os.getpid()}_{next(_databases)}"
    uri = server.get_uri()  # postgresql://postgres:@/postgres?host=/socket/folder
    head = "postgresql://postgres:@/postgres"
    assert uri.startswith(head), uri
    base = "postgresql+psycopg://postgres@/photoindex_tests" + uri[len(head) :]
    with psycopg_connect(base) as con:
        con.execute(f"CREATE SCHEMA {name}")
    return f"{base}&options=-csearch_path%3D{name},public"


def psycopg_connect(url: str) -> Any:
    """A plain psycopg connection (autocommit) to a test URL."""
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True)


@pytest.fixture
def pg_url(pg_server: Any) -> str:
    """A new, empty catalog database on the session's server (`pg_database_url`), for modules that cannot
    import this conftest by name (a folder with a conftest of its own)."""
    return pg_database_url(pg_server)


@pytest.fixture
def postgres_extra() -> None:
    """Skip the test unless the postgres extra (psycopg, pgvector) is installed."""
    pytest.importorskip("psycopg", reason="the postgres extra (psycopg) is not installed")
    pytest.importorskip("pgvector", reason="the postgres extra (pgvector) is not installed")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The catalog back end a parametrized test runs on."""
    return str(request.param)


@pytest.fixture
def catalog_location(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> CatalogLocation:
    """A new catalog on the test's back end: a file under tmp_path, or a fresh database on the session's server."""
    if backend == "sqlite":
        return CatalogLocation(path=tmp_path / "home" / "photoindex.db")
    return CatalogLocation(url=pg_database_url(request.getfixturevalue("pg_server")))


@pytest.fixture
def backend_env(
    home_env: dict[str, str], catalog_location: CatalogLocation, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """`home_env` with the catalog on the test's back end (`PHOTOINDEX_CATALOG_URL` for PostgreSQL)."""
    if catalog_location.url is None:
        return home_env
    monkeypatch.setenv("PHOTOINDEX_CATALOG_URL", catalog_location.url)
    return {**home_env, "PHOTOINDEX_CATALOG_URL": catalog_location.url}


@pytest.fixture
def fake_daemon(tmp_path: Path) -> Iterator[Callable[[bytes | None], Path]]:
    """A socket in a fresh private home that answers every connection with the given bytes (None: says nothing).

    It plays a daemon for the client's side of the query socket (photoindex/search/client.py):
    garbage, old replies, errors.
    """
    import socket
    import threading

    from photoindex.search.client import socket_path

    socks: list[socket.socket] = []

    def serve(reply: bytes | None) -> Path:
        home = tmp_path / f"home{len(socks)}"
        home.mkdir(mode=0o700)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(socket_path(home)))
        s.listen(4)
        socks.append(s)

        def loop() -> None:
            while True:
                try:
                    conn, _ = s.accept()
                except OSError:
                    return
                conn.recv(65536)
                if reply is not None:
                    conn.sendall(reply)
                    conn.close()
                # else: keep the connection open and silent until the test ends

        threading.Thread(target=loop, daemon=True).start()
        return home

    yield serve
    for s in socks:
        s.close()
