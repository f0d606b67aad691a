"""The vector index as a cache of the catalog (`photoindex.vectors.cache`): one file per model, repaired
when damaged. Real SQLite and FAISS through the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import cli, sql

from photoindex.config import Config
from photoindex.testing.photos import make_photo_tree
from photoindex.vectors.index import VectorIndex


def test_a_folder_where_the_index_file_belongs_is_moved_aside_and_the_index_written(
    tmp_path: Path, config: Config
) -> None:
    root = tmp_path / "Photos"
    make_photo_tree(root, 8, seed=3)
    cli("index", str(root))
    (index_file,) = (config.home / "index").glob("*.idx")
    index_file.unlink()
    index_file.mkdir()
    (index_file / "notes.txt").write_text("the user's file\n")

    report = cli("reindex")
    assert report["index_written"] is True
    assert any("was a folder" in w and "moved it to" in w for w in report["warnings"]), report["warnings"]
    assert index_file.is_file()
    ids = set(VectorIndex.load(index_file).ids().tolist())
    assert ids == {i for (i,) in sql(config, "SELECT id FROM vectors")}
    (aside,) = (config.home / "index").glob(f"{index_file.name}.folder-*")
    assert (aside / "notes.txt").read_text() == "the user's file\n"  # nothing deleted
    assert cli("reindex")["warnings"] == []  # repaired once



def test_a_refresh_reads_the_vectors_only_when_the_catalog_changed(
    tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long-running server refreshes before every search: while the catalog's index_state row is
    unchanged it skips the vectors table; vectors another process adds or deletes are still seen."""
    from photoindex.catalog import reads
    from photoindex.library import open_library

    make_photo_tree(tmp_path / "a", 6, seed=1)
    make_photo_tree(tmp_path / "b", 4, seed=2)
    cli("index", str(tmp_path / "a"))
    full_checks = []
    anchor = reads.vectors_anchor
    monkeypatch.setattr(reads, "vectors_anchor", lambda con, model: full_checks.append(model) or anchor(con, model))
    with open_library(config) as lib:
        handle = lib.open_index()
        assert len(full_checks) == 1  # a file loaded from disk is checked in full
        assert handle.refresh() == 0 and handle.refresh() == 0
        assert len(full_checks) == 1

        cli("index", str(tmp_path / "b"))  # another writer commits vectors (in-process: clear its own checks)
        full_checks.clear()
        assert handle.refresh() == 4 and len(full_checks) == 1
        assert handle.refresh() == 0 and len(full_checks) == 1

        cli("forget", str(tmp_path / "a"), "--purge")  # deletes vectors: a new epoch, a rebuild
        full_checks.clear()
        handle.refresh()
        assert len(full_checks) == 1
        assert set(handle.index.ids().tolist()) == {i for (i,) in sql(config, "SELECT id FROM vectors")}
        assert len(handle.index) == 4
