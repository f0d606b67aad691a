"""Vectors nobody uses are collected after `[index] forget_missing_after_days` (docs/indexing.md).

An edited photo's old content keeps its vector (the edit may be undone) for the grace period;
then a full scan deletes it from SQLite and from the index file. Real CLI, SQLite and FAISS.
"""

from __future__ import annotations

from pathlib import Path

from helpers import cli, sql

from photoindex.config import Config
from photoindex.testing import COLOURS
from photoindex.testing.photos import make_photo, make_photo_tree
from photoindex.vectors.index import VectorIndex


def backdate_unheld(config: Config, days: float) -> None:
    sql(config, "UPDATE vectors SET orphaned_at = datetime(orphaned_at, ?) WHERE orphaned_at IS NOT NULL",
        f"-{days} days")


def index_ids(config: Config) -> set[int]:
    (file,) = (config.home / "index").glob("*.idx")
    return set(VectorIndex.load(file).ids().tolist())


def test_an_edited_photos_old_vector_is_collected_after_the_grace_period(tmp_path: Path, config: Config) -> None:
    tree = make_photo_tree(tmp_path / "Photos", 3, seed=21)
    cli("index", str(tmp_path / "Photos"))
    edited = sorted(tree)[0]
    make_photo(edited, COLOURS["green"], seed=99)  # the photo is edited: new content, new vector
    assert cli("reindex")["updated"] == 1
    assert sql(config, "SELECT count(*) FROM vectors") == [(4,)]

    status = cli("status")
    assert status["unheld_vectors"] == 1
    dim = sql(config, "SELECT dim FROM vectors LIMIT 1")[0][0]
    assert status["unheld_bytes"] == 4 * dim

    assert cli("reindex")["collected"] == 0  # within the grace period: kept
    backdate_unheld(config, 31)
    report = cli("reindex")
    assert report["collected"] == 1 and report["encoded"] == 0
    held = {i for (i,) in sql(config, "SELECT id FROM vectors")}
    assert len(held) == 3 and index_ids(config) == held
    assert cli("status")["unheld_vectors"] == 0


def test_a_vector_held_again_starts_its_grace_period_over(tmp_path: Path, config: Config) -> None:
    photo = make_photo(tmp_path / "Photos" / "a.jpg", COLOURS["red"], seed=1)
    original = photo.read_bytes()
    cli("index", str(tmp_path / "Photos"))
    make_photo(photo, COLOURS["blue"], seed=2)
    cli("reindex")
    backdate_unheld(config, 31)
    photo.write_bytes(original)  # the edit is undone before the next scan: the red vector is used again
    report = cli("reindex")
    assert report["encoded"] == 0  # the kept vector was reused
    assert report["collected"] == 0  # the blue one only now became unused: its grace period starts
    assert sql(config, "SELECT count(*) FROM vectors WHERE orphaned_at IS NOT NULL") == [(1,)]
