"""The daemon, its query socket and `photoindex serve` on a PostgreSQL catalog (a real pgserver), and the
daemon's writer lock per root there: the root's advisory scan lock, which another indexer may hold."""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import daemonproc as td
import pytest
from served import Server

from photoindex.catalog.postgres import SCAN_LOCKS

pytestmark = [
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the daemon tests use inotify"),
    pytest.mark.slow,
]


def psycopg_connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True)


def indexed(url: str, folder: Path) -> set[str]:
    """Paths of the indexed photos under `folder`, read from the server beside the daemon."""
    with psycopg_connect(url) as con:
        rows = con.execute("SELECT path, status FROM photos").fetchall()
    paths = {bytes(p).decode(): s for p, s in rows}
    return {p for p, s in paths.items() if p.startswith(f"{folder}/") and s == "indexed"}


def parents(hits: list[dict[str, Any]]) -> list[str]:
    return [Path(h["path"]).parent.name for h in hits]


def test_the_daemon_socket_and_the_page_search_a_postgresql_catalog_and_the_daemon_waits_for_a_roots_scan_lock(
    env: dict[str, str], start: Callable[..., td.DaemonProcess], tmp_path: Path, pg_url: str
) -> None:
    url = pg_url
    shared = {**env, "PHOTOINDEX_CATALOG_URL": url}
    _, root = td.empty_root(tmp_path, shared)
    assert not (tmp_path / "home" / "photoindex.db").exists()  # the catalog is on the server
    td.make_album(root / "reds", 3, td.RED, seed=1)
    td.make_album(root / "blues", 3, td.BLUE, seed=10)
    d = start(PHOTOINDEX_CATALOG_URL=url)
    td.wait_for(lambda: len(indexed(url, root)) == 6, "the start-up scan", d)

    # `photoindex search` is answered by the daemon's socket, from pgvector, as a local search answers.
    before = d.log().count("served a search")
    answered = td._cli(shared, "search", "red", "--limit", "3", "--json")
    assert answered.returncode == 0, answered.stderr
    assert d.log().count("served a search") == before + 1
    local = td._cli({**shared, "PHOTOINDEX_SEARCH_USE_DAEMON": "0"}, "search", "red", "--limit", "3", "--json")
    assert json.loads(answered.stdout) == json.loads(local.stdout)
    assert parents(json.loads(answered.stdout)) == ["reds"] * 3

    # `photoindex serve` (another process, another home: a laptop) searches the same catalog.
    page = Server({**shared, "PHOTOINDEX_HOME": str(tmp_path / "laptop"), "PHOTOINDEX_SEARCH_USE_DAEMON": "0"})
    try:
        with urllib.request.urlopen(f"{page.url}/api/search?q=blue&limit=3", timeout=30) as response:
            assert parents(json.loads(response.read())["hits"]) == ["blues"] * 3

        # Another indexer scans the root (holds its advisory lock): the daemon waits for it before it
        # walks the new photos, then indexes them; the page finds them without a restart.
        with psycopg_connect(url) as other:
            (root_id,) = other.execute("SELECT id FROM roots").fetchone()
            assert other.execute("SELECT pg_try_advisory_lock(%s, %s)", (SCAN_LOCKS, root_id)).fetchone()[0]
            td.make_album(root / "greens", 2, td.GREEN, seed=20)
            td.wait_for(lambda: "another indexer is scanning it" in d.log(), "the daemon to wait for the lock", d)
            assert len(indexed(url, root)) == 6  # it waited: nothing new was walked or stored
        td.wait_for(lambda: len(indexed(url, root)) == 8, "the new photos once the lock was free", d)
        with urllib.request.urlopen(f"{page.url}/api/search?q=green&limit=2", timeout=30) as response:
            assert parents(json.loads(response.read())["hits"]) == ["greens"] * 2
    finally:
        page.stop()
    code, _ = d.terminate()
    assert code == 0
