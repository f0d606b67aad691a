"""`photoindex catalog copy --to`: SQLite -> PostgreSQL -> SQLite on real catalogs, nothing re-encoded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import pg_database_url
from helpers import cli, ranked, runner

from photoindex.catalog import reads
from photoindex.catalog import writes as catalog
from photoindex.catalog.db import open_catalog
from photoindex.catalog.location import CatalogLocation
from photoindex.cli.app import app
from photoindex.config import load_config
from photoindex.library import open_library
from photoindex.testing.photos import make_photo_tree


def everything(location: CatalogLocation, model: str) -> dict[str, Any]:
    """What must survive a copy exactly: photos, vector ids and bytes, the index bookkeeping."""
    with open_catalog(location) as db, db.read() as s:
        con = catalog.connection(s)
        chunks = list(reads.iter_vectors(con, model))
        ids = np.concatenate([i for i, _ in chunks]) if chunks else np.empty(0, np.int64)
        vectors = np.concatenate([v for _, v in chunks]) if chunks else np.empty((0, 0), np.float32)
        photos = sorted(
            (p.id, p.path, p.size, p.mtime_ns, p.content_hash, p.status, p.first_seen, p.width, p.taken_at)
            for status in ("indexed", "missing", "failed", "pending")
            for p in catalog.photos_with_status(s, status)
        )
        roots = [(r.id, r.path, r.watch_mode) for r in catalog.list_roots(s)]
        state = catalog.index_state(s, model)
    return {"ids": ids.tolist(), "vectors": vectors.tobytes(), "photos": photos, "roots": roots,
            "state": (state.generation, state.vectors_epoch)}


def test_copy_to_postgresql_and_back_keeps_everything(
    tmp_path: Path, home_env: dict[str, str], pg_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, other = tmp_path / "Photos", tmp_path / "Other"
    make_photo_tree(root, 20, seed=2)
    make_photo_tree(other, 6, seed=9)
    cli("index", str(root))
    cli("index", str(other))  # the largest vector ids...
    cli("forget", str(other), "--purge")  # ...deleted: the copy must not hand them out again
    (sorted(root.rglob("*.jpg"))[0]).unlink()
    cli("index", str(root))  # one photo missing
    config = load_config()
    with open_library(config) as lib:
        model = lib.model_id
    before = everything(config.catalog_location, model)
    searches = [ranked(cli("search", c, "--folder", str(root / "album-01"))) for c in ("red", "blue")]

    url = pg_database_url(pg_server)
    copied = cli("catalog", "copy", "--to", url)
    assert copied["rows"]["photos"] == 20 and copied["rows"]["vectors"] == 20
    assert "***" not in url and copied["target"].startswith("postgresql+psycopg://postgres@")
    assert everything(CatalogLocation(url=url), model) == before

    monkeypatch.setenv("PHOTOINDEX_CATALOG_URL", url)
    assert [ranked(cli("search", c, "--folder", str(root / "album-01"))) for c in ("red", "blue")] == searches
    again = cli("index", str(root))
    assert again["encoded"] == 0 and again["added"] == 0
    new = make_photo_tree(tmp_path / "More", 1, seed=77)
    assert cli("index", str(next(iter(new)).parent))["encoded"] == 1
    with open_catalog(CatalogLocation(url=url)) as db, db.read() as s:
        assert catalog.max_vector_id(s, model) > 26  # past the 26 ids SQLite handed out, deleted ones included

    back = tmp_path / "back" / "photoindex.db"
    cli("catalog", "copy", "--to", str(back))
    after = everything(CatalogLocation(path=back), model)
    assert after["photos"][: len(before["photos"])] == before["photos"]
    assert after["vectors"][: len(before["vectors"])] == before["vectors"]
    assert len(after["ids"]) == 21


def test_copy_refuses_a_target_that_holds_a_catalog(tmp_path: Path, home_env: dict[str, str]) -> None:
    make_photo_tree(tmp_path / "Photos", 3, seed=1)
    cli("index", str(tmp_path / "Photos"))
    target = tmp_path / "full.db"
    cli("catalog", "copy", "--to", str(target))
    result = runner.invoke(app, ["catalog", "copy", "--to", str(target)])
    assert result.exit_code == 1 and "already holds a catalog" in result.output
    result = runner.invoke(app, ["catalog", "copy", "--to", str(load_config().db_path)])
    assert result.exit_code == 1 and "is the catalog being copied" in result.output
