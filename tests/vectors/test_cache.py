"""The vector index as a cache of the catalog (`photoindex.vectors.cache`): one file per model, repaired
when damaged. Real SQLite and FAISS through the real CLI."""

from __future__ import annotations

from pathlib import Path

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

