"""The walk: which files are photos, hidden and excluded paths, symlink loops, odd names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from photoindex.config import ScanConfig
from photoindex.photos.scanner import ScanProblem, content_hash, stat_fact, walk


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def names(root: Path, scan: ScanConfig, **kw: object) -> list[str]:
    return sorted(os.path.relpath(f.path, root) for f in walk(root, scan, **kw))  # type: ignore[arg-type]


def test_extensions_hidden_and_excludes(tmp_path: Path) -> None:
    touch(tmp_path / "a.JPG")
    touch(tmp_path / "b.png")
    touch(tmp_path / "notes.txt")
    touch(tmp_path / ".hidden.jpg")
    touch(tmp_path / ".thumbs" / "c.jpg")
    touch(tmp_path / "raw" / "d.jpg")
    touch(tmp_path / "album" / "e.jpg.tmp")
    assert names(tmp_path, ScanConfig()) == ["a.JPG", "b.png", os.path.join("raw", "d.jpg")]
    assert names(tmp_path, ScanConfig(exclude=("raw",))) == ["a.JPG", "b.png"]
    assert names(tmp_path, ScanConfig(include_hidden=True)) == [
        ".hidden.jpg", os.path.join(".thumbs", "c.jpg"), "a.JPG", "b.png", os.path.join("raw", "d.jpg"),
    ]


def test_excludes_match_relative_to_the_root_when_walking_a_subfolder(tmp_path: Path) -> None:
    touch(tmp_path / "trips" / "skip" / "a.jpg")
    touch(tmp_path / "trips" / "keep" / "b.jpg")
    scan = ScanConfig(exclude=("trips/skip",))
    assert names(tmp_path / "trips", scan, base=str(tmp_path)) == [os.path.join("keep", "b.jpg")]


def test_symlink_loops_are_walked_once_and_broken_links_reported(tmp_path: Path) -> None:
    touch(tmp_path / "album" / "a.jpg")
    os.symlink(tmp_path, tmp_path / "album" / "loop")
    os.symlink(tmp_path / "nowhere.jpg", tmp_path / "broken.jpg")
    problems: list[ScanProblem] = []
    found = [f.path for f in walk(tmp_path, ScanConfig(), problems.append)]
    assert found == [str(tmp_path / "album" / "a.jpg")]
    assert [(Path(p.path).name, p.reason) for p in problems] == [("broken.jpg", "broken-link")]
    assert [f.path for f in walk(tmp_path, ScanConfig(follow_symlinks=False))] == found


def test_non_utf8_names_and_unreadable_root(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9.jpg"
    with open(raw, "wb") as fh:
        fh.write(b"data")
    (fact,) = walk(tmp_path, ScanConfig())
    assert os.fsencode(fact.path) == raw and fact.size == 4
    problems: list[ScanProblem] = []
    assert list(walk(tmp_path / "missing", ScanConfig(), problems.append)) == []
    assert problems and problems[0].reason == "unreadable"


def test_stat_fact_and_content_hash(tmp_path: Path) -> None:
    a = touch(tmp_path / "a.jpg", b"same bytes")
    b = touch(tmp_path / "sub" / "b.jpg", b"same bytes")
    assert content_hash(a) == content_hash(b) != content_hash(touch(tmp_path / "c.jpg", b"other"))
    fact = stat_fact(str(a), ScanConfig())
    assert fact is not None and fact.size == 10
    assert stat_fact(str(touch(tmp_path / "x.txt")), ScanConfig()) is None
    assert stat_fact(str(touch(tmp_path / ".h" / "y.jpg")), ScanConfig(), base=str(tmp_path)) is None
    inside_dot_root = touch(tmp_path / ".photos" / "z.jpg")
    assert stat_fact(str(inside_dot_root), ScanConfig(), base=str(tmp_path / ".photos")) is not None


def _link_listed_before(folder: Path, target: str, stem: str) -> Path:
    """A symlink in `folder` to `target` that os.scandir lists before `target` (found by trying names)."""
    for i in range(200):
        link = folder / f"{stem}{i:03d}"
        link.symlink_to(target)
        order = [e.name for e in os.scandir(folder)]
        if order.index(link.name) < order.index(target):
            return link
        link.unlink()
    pytest.skip("this file system lists no candidate name before the folder")


def test_a_folder_and_a_symlink_to_it_walk_the_name_that_sorts_first(tmp_path: Path) -> None:
    """lib/a and lib/b -> a are one folder walked once; which one must not depend on the order the file system
    lists them in (before this change: the first by name, "a")."""
    lib = tmp_path / "lib"
    for i in range(2):
        touch(lib / "a" / f"p{i}.jpg", bytes([i]))
    link = _link_listed_before(lib, "a", "b")
    assert sorted([link.name, "a"])[0] == "a"
    found = sorted(os.path.relpath(f.path, lib) for f in walk(lib, ScanConfig()))
    assert found == ["a/p0.jpg", "a/p1.jpg"]  # today: ['b000/p0.jpg', 'b000/p1.jpg'] or similar


def test_an_excluded_symlink_does_not_hide_the_folder_it_points_to(tmp_path: Path) -> None:
    """exclude = ["skip*"] and lib/skipNNN -> photos: the link is not walked, but lib/photos still is."""
    lib = tmp_path / "lib"
    for i in range(2):
        touch(lib / "photos" / f"p{i}.jpg", bytes([i]))
    _link_listed_before(lib, "photos", "skip")
    scan = ScanConfig(exclude=("skip*",))
    assert sorted(os.path.relpath(f.path, lib) for f in walk(lib, scan)) == ["photos/p0.jpg", "photos/p1.jpg"]
