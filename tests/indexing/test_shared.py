"""Several indexers on one shared (PostgreSQL) library, as separate processes with homes of their own
(two machines): the work is split by claims, each photo is encoded once, a killed indexer's claims
are taken over, and searches from a third process keep answering."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import pg_database_url, psycopg_connect
from helpers import machine_env

from photoindex.catalog.db import open_catalog
from photoindex.catalog.location import CatalogLocation
from photoindex.testing.photos import make_photo_tree

N = 48


def shared_catalog(pg_server: Any) -> str:
    """A new catalog on the test server, migrated (as the first indexer would)."""
    url = pg_database_url(pg_server)
    open_catalog(CatalogLocation(url=url)).close()
    return url


def machine(tmp_path: Path, name: str, url: str, toy_bundle: Path, lease: float = 30) -> dict[str, str]:
    """The environment of one indexer: its own home, the shared catalog."""
    return machine_env(tmp_path / name, url, toy_bundle, CATALOG_LEASE_SECONDS=str(lease))


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "photoindex", *args, "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 240) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return json.loads(out)


def counts(url: str) -> dict[str, int]:
    with psycopg_connect(url) as con:
        rows = con.execute("SELECT status, count(*) FROM photos GROUP BY status").fetchall()
        vectors = con.execute("SELECT count(*), count(DISTINCT content_hash) FROM vectors").fetchone()
    return {**{s: int(n) for s, n in rows}, "vectors": int(vectors[0]), "distinct": int(vectors[1])}


@pytest.mark.slow
def test_two_indexers_split_the_work_and_encode_each_photo_once_while_searches_answer(
    tmp_path: Path, pg_server: Any, toy_bundle: Path
) -> None:
    url = shared_catalog(pg_server)
    root = tmp_path / "Photos"
    make_photo_tree(root, N, seed=21)
    a, b, c = (machine(tmp_path, name, url, toy_bundle) for name in ("a", "b", "c"))
    first = start(a, "index", str(root))
    second = start(b, "index", str(root))
    searches = 0
    while first.poll() is None or second.poll() is None:
        found = subprocess.run([sys.executable, "-m", "photoindex", "search", "red", "--json"],
                               env=c, capture_output=True, text=True, timeout=120)
        assert found.returncode == 0, found.stderr  # a search during the indexing never fails
        searches += 1
    reports = [finish(first), finish(second)]
    assert searches >= 1
    assert sum(r["encoded"] for r in reports) == N  # each photo encoded exactly once, by one of them
    assert counts(url) == {"indexed": N, "vectors": N, "distinct": N}
    again = finish(start(b, "index", str(root)))
    assert again["encoded"] == 0 and again["unchanged"] == N


@pytest.mark.slow
def test_an_indexer_killed_mid_batch_leaves_its_claims_to_another(
    tmp_path: Path, pg_server: Any, toy_bundle: Path
) -> None:
    url = shared_catalog(pg_server)
    root = tmp_path / "Photos"
    make_photo_tree(root, N, seed=22)
    a, b = (machine(tmp_path, name, url, toy_bundle, lease=4) for name in ("a", "b"))
    doomed = start(a, "index", str(root))
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        seen = counts(url)
        if seen.get("indexed", 0) >= 8:  # a few batches are in, and it holds a claim on the next
            break
        assert doomed.poll() is None, doomed.communicate()[1]
        time.sleep(0.05)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    before = counts(url)
    assert before.get("indexed", 0) < N
    report = finish(start(b, "index", str(root)))
    after = counts(url)
    assert after == {"indexed": N, "vectors": N, "distinct": N}  # nothing lost, nothing twice
    assert report["encoded"] == N - before["vectors"]  # only what the killed one had not committed


@pytest.mark.slow
def test_two_indexers_read_each_photos_text_once(tmp_path: Path, pg_server: Any, toy_bundle: Path) -> None:
    """The text pass (the real PP-OCRv4 models) of two indexers on one library: each content is claimed before
    it is read, so the two readings add up to one per photo (without the claims both read every photo: each
    lists all of them before either stores one)."""
    from photoindex.ocr.engine import OCR_PACKAGE
    from photoindex.testing.textphotos import font_path, make_text_photo

    if font_path() is None:
        pytest.skip("needs fonts-noto-cjk (see .ci/run)")
    pytest.importorskip(OCR_PACKAGE, reason="the ocr extra is not installed")
    url = shared_catalog(pg_server)
    root = tmp_path / "Signs"
    words = [["VELVET QUARRY"], ["FALCON GARNET"], ["PEPPER THUNDER"], ["MAPLE HARBOR"], ["COPPER LANTERN"],
             ["SILVER MEADOW"]]
    for i, lines in enumerate(words):
        make_text_photo(root / f"sign-{i}.jpg", lines, size=(800, 400), seed=i)
    a, b = (
        {**machine(tmp_path, name, url, toy_bundle), "PHOTOINDEX_OCR_ENABLED": "1", "PHOTOINDEX_OCR_GATE": "all"}
        for name in ("a", "b")
    )
    first, second = start(a, "index", str(root)), start(b, "index", str(root))
    reports = [finish(first), finish(second)]
    assert sum(r["encoded"] for r in reports) == len(words)
    assert sum(r["text"]["read"] for r in reports) == len(words), [r["text"] for r in reports]
    with psycopg_connect(url) as con:
        read = con.execute("SELECT count(*), count(DISTINCT content_hash) FROM photo_text").fetchone()
        left = con.execute("SELECT count(*) FROM text_claims").fetchone()[0]
    assert tuple(read) == (len(words), len(words)) and left == 0
