"""The run's tail: what waits until nothing is left to decode (docs/indexing.md, "Keeping both cores busy")."""

from __future__ import annotations

from pathlib import Path

import onnxruntime

from photoindex.catalog import writes as catalog
from photoindex.config import Config
from photoindex.indexing.indexer import Indexer, Rounds, run_index
from photoindex.inference import modelcache
from photoindex.library import open_library
from photoindex.testing import COLOURS
from photoindex.testing.photos import make_photo


def _photos(root: Path, n: int) -> None:
    colours = list(COLOURS.values())
    for i in range(n):
        make_photo(root / f"p{i}.jpg", colours[i % len(colours)], size=(96, 72), seed=i)


def test_at_tail_is_called_once_when_every_photo_is_decoded(config: Config, tmp_path: Path) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    _photos(root, 7)
    decoded_at_tail: list[int] = []
    with open_library(config) as lib:
        with lib.db.write() as s:
            record = catalog.add_root(s, root)
        # Rounds of 3 photos: the tail is the third round's, once its last photo is decoded.
        indexer = Indexer(lib, rounds=Rounds(work=3, page=2), at_tail=lambda: decoded_at_tail.append(1))
        report = indexer.run([record])
        assert report.encoded == 7
        assert decoded_at_tail == [1]  # once, in the last round, not in the two before it
        again: list[int] = []
        Indexer(lib, at_tail=lambda: again.append(1)).run([record])  # nothing to decode: called all the same
        assert again == [1]


def test_index_makes_the_text_models_fast_copy_in_its_tail(config: Config, tmp_path: Path) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    _photos(root, 3)
    cache = config.runtime.model_cache_dir
    assert cache is not None
    with open_library(config) as lib:
        text = lib.bundle.path("text")
    assert text is not None and modelcache.lookup(text, cache, onnxruntime.__version__) is None
    report = run_index(config, [root])
    assert report.encoded == 3
    assert modelcache.lookup(text, cache, onnxruntime.__version__) is not None
