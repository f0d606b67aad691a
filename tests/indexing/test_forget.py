"""Photos gone for longer than `[index] forget_missing_after_days` are forgotten by a full scan, with the
vectors only they held; photos of an unplugged drive are kept however long it is away."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import backdate_missing, cli, sql

from photoindex.config import Config
from photoindex.testing import COLOURS
from photoindex.testing.photos import make_photo
from photoindex.vectors.index import VectorIndex


def index_vectors(config: Config) -> int:
    (path,) = (config.home / "index").glob("*.idx")
    return len(VectorIndex.load(path))


@pytest.fixture
def library(tmp_path: Path, config: Config) -> Path:
    root = tmp_path / "photos"
    for i, colour in enumerate(("red", "green", "blue", "yellow")):
        make_photo(root / f"{i}-{colour}.jpg", COLOURS[colour], (64, 48))
    shutil.copy(root / "0-red.jpg", root / "4-red-copy.jpg")  # the same content twice
    assert cli("index", str(root))["encoded"] == 4
    return root


def test_long_missing_photos_are_forgotten_with_their_vectors(library: Path, config: Config) -> None:
    (library / "1-green.jpg").unlink()
    (library / "0-red.jpg").unlink()  # its copy still holds the vector
    first = cli("reindex")
    assert first["missing"] == 2 and first["forgotten"] == 0
    backdate_missing(config, 29)
    assert cli("reindex")["forgotten"] == 0  # not yet
    backdate_missing(config, 2)
    report = cli("reindex")
    assert report["forgotten"] == 2 and report["encoded"] == 0
    assert sql(config, "SELECT count(*) FROM photos WHERE status = 'missing'") == [(0,)]
    assert sql(config, "SELECT count(*) FROM vectors") == [(3,)]  # green's went; red's stays for its copy
    assert index_vectors(config) == 3
    hits = cli("search", "green", "--limit", "5")
    assert all("green" not in h["path"] for h in hits) and any("red-copy" in h["path"] for h in hits)


def test_an_unplugged_drive_keeps_its_photos_and_they_come_back_without_encoding(
    library: Path, config: Config
) -> None:
    away = library.with_name("unplugged")
    library.rename(away)
    assert cli("reindex")["missing"] == 5
    backdate_missing(config, 400)
    assert cli("reindex")["forgotten"] == 0
    away.rename(library)
    back = cli("reindex")
    assert back["encoded"] == 0 and back["updated"] + back["moved"] == 5
    assert sql(config, "SELECT count(*) FROM photos WHERE status = 'indexed'") == [(5,)]


def test_zero_days_never_forgets(library: Path, config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOINDEX_INDEX_FORGET_MISSING_AFTER_DAYS", "0")
    (library / "2-blue.jpg").unlink()
    cli("reindex")
    backdate_missing(config, 10_000)
    assert cli("reindex")["forgotten"] == 0
    assert sql(config, "SELECT count(*) FROM photos WHERE status = 'missing'") == [(1,)]


def test_forgetting_takes_vectors_out_of_the_index_without_a_rebuild(
    library: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The forgetting run knows the ids it deleted: it removes them from the open index (no rebuild from
    SQLite, which costs a minute at a million vectors), and the file it saves is current for every reader."""
    from photoindex.library import open_library
    from photoindex.vectors.cache import IndexHandle

    (library / "2-blue.jpg").unlink()
    cli("reindex")
    backdate_missing(config, 31)
    rebuilds: list[int] = []
    real = IndexHandle._empty
    with monkeypatch.context() as patch:
        patch.setattr(IndexHandle, "_empty", staticmethod(lambda lib: rebuilds.append(1) or real(lib)))
        assert cli("reindex")["forgotten"] == 1
    assert rebuilds == []
    with open_library(config) as lib:
        handle = IndexHandle.open(lib)
        assert handle.reason == "loaded" and not handle.dirty
        assert sorted(handle.index.ids().tolist()) == [i for (i,) in sql(config, "SELECT id FROM vectors ORDER BY id")]
    hits = cli("search", "blue", "--limit", "5")
    assert all("blue" not in h["path"] for h in hits)


def test_an_empty_root_folder_is_an_unplugged_drive_not_a_deletion(library: Path, config: Config) -> None:
    """A root folder that is there but empty (the mount point of a drive that is not mounted) keeps its photos
    however long they are missing; once something is in it again, the clock applies."""
    for photo in list(library.iterdir()):
        photo.unlink()
    assert cli("reindex")["missing"] == 5
    backdate_missing(config, 400)
    assert cli("reindex")["forgotten"] == 0
    make_photo(library / "9-new.jpg", COLOURS["blue"], (64, 48), seed=5)
    assert cli("reindex")["forgotten"] == 5
