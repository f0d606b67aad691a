"""A one-shot search (`run_search`) opens a small index file while the query is encoded (search/query.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import cli

from photoindex.config import Config
from photoindex.library import open_library
from photoindex.search import query
from photoindex.search.protocol import SearchRequest
from photoindex.testing.photos import make_photo


def test_the_index_opened_beside_the_query_gives_the_same_hits(
    tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i, colour in enumerate([(220, 20, 20)] * 3 + [(20, 20, 220)] * 3):
        make_photo(tmp_path / "photos" / f"img_{i}.jpg", colour, size=(64, 48), seed=i)
    cli("index", str(tmp_path / "photos"))
    request = SearchRequest.build(text="blue", limit=4)
    with open_library(config) as lib:
        assert lib.index_path().stat().st_size < query.INDEX_BESIDE_MAX
        assert query._IndexBeside.start(lib) is not None
    beside = query.run_search(config, request)
    monkeypatch.setattr(query, "INDEX_BESIDE_MAX", 0)  # a "large" index: opened after the query
    with open_library(config) as lib:
        assert query._IndexBeside.start(lib) is None
    after = query.run_search(config, request)
    assert beside == after and {Path(h.path).name for h in beside[:3]} == {"img_3.jpg", "img_4.jpg", "img_5.jpg"}


def test_a_missing_index_file_is_rebuilt_after_the_query_not_beside_it(tmp_path: Path, config: Config) -> None:
    make_photo(tmp_path / "photos" / "a.jpg", (20, 200, 20), size=(64, 48))
    cli("index", str(tmp_path / "photos"))
    with open_library(config) as lib:
        lib.index_path().unlink()
        assert query._IndexBeside.start(lib) is None  # its size is the catalog's, unknown until read
    hits = query.run_search(config, SearchRequest.build(text="green", limit=1))
    assert [Path(h.path).name for h in hits] == ["a.jpg"]
    with open_library(config) as lib:
        assert lib.index_path().is_file()  # rebuilt and saved by the search
