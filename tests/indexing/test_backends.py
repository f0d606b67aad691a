"""Indexing, searching and forgetting through the real CLI on each catalog back end (SQLite + FAISS,
PostgreSQL + pgvector), and the same library giving the same answers on both."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from conftest import pg_database_url, psycopg_connect
from helpers import cli, ranked

from photoindex.config import load_config
from photoindex.testing import COLOURS
from photoindex.testing.photos import make_photo, make_photo_tree


def colours(tree: dict[Path, str], hits: list[dict[str, Any]]) -> list[str]:
    return [tree[Path(h["path"])] for h in hits]


def test_index_search_filter_and_keep_true(tmp_path: Path, backend_env: dict[str, str], backend: str) -> None:
    root = tmp_path / "Photos"
    tree = make_photo_tree(root, 30, seed=11)
    report = cli("index", str(root))
    assert report["added"] == report["encoded"] == 30

    reds = {p for p, c in tree.items() if c == "red"}
    hits = cli("search", "red", "--limit", str(len(reds)))
    assert {Path(h["path"]) for h in hits} == reds
    assert hits == sorted(hits, key=lambda h: -h["score"])

    folder = root / "album-01"
    inside = cli("search", "something", "--folder", str(folder), "--limit", "100")
    assert inside and {Path(h["path"]).parent for h in inside} <= {folder, *folder.iterdir()}
    assert len(inside) == sum(1 for p in tree if folder in p.parents)
    pngs = cli("search", "something", "--type", "png", "--limit", "100")
    assert pngs and all(h["path"].endswith(".png") for h in pngs)
    assert len(pngs) == sum(1 for p in tree if p.suffix == ".png")
    assert cli("search", "something", "--camera", "no such camera") == []

    example = next(p for p, c in tree.items() if c == "green")
    assert set(colours(tree, cli("search", "--image", str(example), "--limit", "2"))) == {"green"}
    outside = make_photo(tmp_path / "query.jpg", COLOURS["blue"], seed=1234)
    assert set(colours(tree, cli("search", "--image", str(outside), "--limit", "2"))) == {"blue"}

    doomed = sorted(reds)[:2]
    for p in doomed:
        p.unlink()
    again = cli("index", str(root))
    assert again["missing"] == 2 and again["encoded"] == 0
    assert not {Path(h["path"]) for h in cli("search", "red", "--limit", "100")} & set(doomed)
    (root / "back.jpg").write_bytes(b"")  # a broken file: failed, reported once
    assert cli("index", str(root))["failed"] == 1

    status = cli("status")
    assert status["counts"] == {"pending": 0, "indexed": 28, "failed": 1, "missing": 2}
    assert status["vectors"] == 30
    if backend == "postgresql":
        assert status["database"].startswith("postgresql+psycopg://") and status["database_bytes"] > 0


def test_forget_a_root_and_long_missing_photos(tmp_path: Path, backend_env: dict[str, str], backend: str) -> None:
    root = tmp_path / "Photos"
    tree = make_photo_tree(root, 12, seed=4)
    cli("index", str(root))
    gone = sorted(tree)[:3]
    for p in gone:
        p.unlink()
    cli("index", str(root))
    _backdate_missing(load_config(), backend, days=40)
    report = cli("index", str(root))
    assert report["forgotten"] == 3
    assert cli("status")["vectors"] == 9
    assert len(cli("search", "something", "--limit", "100")) == 9


def _backdate_missing(config: Any, backend: str, days: int) -> None:
    if backend == "postgresql":
        with psycopg_connect(config.catalog.url) as con:
            con.execute(f"UPDATE photos SET updated_at = updated_at - interval '{days} days' WHERE status = 'missing'")
    else:
        from helpers import backdate_missing

        backdate_missing(config, days)


def test_the_same_library_answers_alike_on_both_back_ends(
    tmp_path: Path, home_env: dict[str, str], pg_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "Photos"
    make_photo_tree(root, 40, seed=8)
    queries = [["red"], ["blue", "--folder", str(root / "album-02")], ["green", "--type", "jpeg"]]
    answers: dict[str, list[Any]] = {}
    for backend in ("sqlite", "postgresql"):
        if backend == "postgresql":
            monkeypatch.setenv("PHOTOINDEX_CATALOG_URL", pg_database_url(pg_server))
        cli("index", str(root))
        answers[backend] = [cli("search", *q, "--limit", "8") for q in queries]
    for lite, pg in zip(answers["sqlite"], answers["postgresql"], strict=True):
        assert [h["score"] for h in lite] == pytest.approx([h["score"] for h in pg], abs=1e-5)
        assert ranked(lite) == ranked(pg)  # the toy model scores many photos exactly alike: ties in any order
    assert os.environ["PHOTOINDEX_CATALOG_URL"]
