"""The product's main job end to end, through the real CLI: index a tree, search it, keep it true.

Real SQLite, real FAISS, real ONNX Runtime on the generated toy bundle (an image embeds its
dominant colour; a text naming a colour embeds the same direction), real JPEG/PNG files. The tests
that take `backend_env` run on both catalog back ends (a real PostgreSQL server with pgvector, from
the pgserver wheel, for the second); those about the FAISS index file, the SQLite file and
killing a single writer stay on SQLite (tests/indexing/test_shared.py kills indexers on PostgreSQL).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import cli, kill_9_at, on_both_backends, sql
from typer.testing import CliRunner

from photoindex.cli.app import app
from photoindex.config import Config
from photoindex.testing import COLOURS
from photoindex.testing.photos import make_photo, make_photo_tree
from photoindex.vectors.index import VectorIndex

runner = CliRunner()


def index_file(config: Config) -> Path:
    files = list((config.home / "index").glob("*.idx"))
    assert len(files) == 1, files
    return files[0]


def add_broken_files(root: Path) -> dict[Path, str]:
    """Files named like photos that are not decodable photos, with the reason each must give."""
    broken = root / "broken"
    broken.mkdir(parents=True)
    good = make_photo(broken / "source.jpg", COLOURS["red"], size=(200, 150), seed=7)
    data = good.read_bytes()
    good.unlink()
    (broken / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (broken / "notes.jpg").write_text("this is not a photo\n")
    (broken / "empty.jpg").write_bytes(b"")
    (broken / "layers.jpg").write_bytes(b"8BPS\x00\x01" + b"\x00" * 200)  # a Photoshop file named .jpg
    return {
        broken / "truncated.jpg": "truncated",
        broken / "notes.jpg": "unsupported-format",
        broken / "empty.jpg": "empty",
        broken / "layers.jpg": "unsupported-format",
    }


def colour_of(tree: dict[Path, str], path: str) -> str:
    return tree[Path(path)]


@pytest.fixture
def library(tmp_path: Path, config: Config) -> tuple[Path, dict[Path, str], dict[Path, str]]:
    """A tree of 300 generated photos in nested folders, 10 exact duplicates, 4 broken files."""
    root = tmp_path / "Photos"
    tree = make_photo_tree(root, 300, seed=3)
    dup_dir = root / "copies"
    dup_dir.mkdir()
    for i, (src, colour) in enumerate(list(tree.items())[:10]):
        dst = dup_dir / f"copy-{i}{src.suffix}"
        shutil.copy2(src, dst)
        tree[dst] = colour
    broken = add_broken_files(root)
    return root, tree, broken


@pytest.mark.slow
def test_index_search_and_keep_true(
    backend_env: dict[str, str], backend: str, library: tuple[Path, dict[Path, str], dict[Path, str]], config: Config
) -> None:
    root, tree, broken = library

    # First run: everything is added, duplicates are encoded once, each broken file reported once.
    report = cli("index", str(root))
    assert report["added"] == len(tree)
    assert report["failed"] == len(broken)
    assert report["encoded"] == len(tree) - 10  # the 10 copies share their originals' vectors
    reasons = {Path(f["path"]): f["reason"] for f in report["failures"]}
    assert reasons == broken
    assert all(f["message"] for f in report["failures"])

    # Search: the red photos come first, all of them, and nothing else scores as high.
    reds = {p for p, c in tree.items() if c == "red"}
    hits = cli("search", "a photo of something red", "--limit", str(len(reds) + 5))
    top = [h["path"] for h in hits[: len(reds)]]
    assert {Path(p) for p in top} == reds
    assert all(colour_of(tree, h["path"]) != "red" for h in hits[len(reds) :])
    assert {"path", "score", "width", "height", "taken_at"} <= set(hits[0])
    assert hits[0]["width"] == 96 and hits[0]["height"] == 72

    # Second run on the unchanged tree: nothing encoded, nothing reported, index file untouched.
    idx = index_file(config) if backend == "sqlite" else None  # PostgreSQL keeps no index file
    before = idx.stat().st_mtime_ns if idx is not None else None
    again = cli("index", str(root))
    assert again["encoded"] == 0 and again["added"] == 0 and again["failures"] == []
    assert again["unchanged"] == len(tree) + len(broken)
    assert idx is None or idx.stat().st_mtime_ns == before

    # Rename a folder of 50 photos: 0 encodes, new paths found, old paths never.
    album = root / "album-01"
    moved_count = sum(1 for p in tree if album in p.parents)
    assert moved_count == 50
    renamed = root / "album-01 (renamed)"
    album.rename(renamed)
    tree = {(renamed / p.relative_to(album) if album in p.parents else p): c for p, c in tree.items()}
    vectors_before = sql(config, "SELECT count(*) FROM vectors")[0][0]
    moved = cli("index", str(root))
    assert moved["encoded"] == 0
    assert moved["moved"] == 50
    assert sql(config, "SELECT count(*) FROM vectors")[0][0] == vectors_before
    in_folder = cli("search", "red", "--folder", str(renamed), "--limit", "100")
    assert in_folder and all(Path(h["path"]).parent == renamed for h in in_folder)
    everything = cli("search", "something", "--limit", "1000")
    assert not any(str(album) + os.sep in h["path"] for h in everything)
    assert len(everything) == len(tree)

    # Deleted photos never come back in results.
    doomed = sorted(p for p in reds if p.exists())[:3]
    for p in doomed:
        p.unlink()
        del tree[p]
    cli("index", str(root))
    hits = cli("search", "red", "--limit", "1000")
    assert not {Path(h["path"]) for h in hits} & set(doomed)


def test_damaged_index_is_rebuilt_from_sqlite(tmp_path: Path, config: Config) -> None:
    root = tmp_path / "Photos"
    tree = make_photo_tree(root, 40, seed=5)
    cli("index", str(root))
    expected = cli("search", "blue", "--limit", "10")
    encoded = sql(config, "SELECT count(*) FROM vectors")[0][0]
    idx = index_file(config)

    idx.unlink()  # deleted
    assert cli("search", "blue", "--limit", "10") == expected
    assert idx.exists(), "the search rebuilt and saved the index"

    data = idx.read_bytes()
    idx.write_bytes(data[: len(data) // 3])  # truncated
    assert cli("search", "blue", "--limit", "10") == expected
    VectorIndex.load(idx)  # saved again, whole

    idx.write_bytes(b"")  # empty
    assert cli("search", "blue", "--limit", "10") == expected
    assert sql(config, "SELECT count(*) FROM vectors")[0][0] == encoded  # nothing re-encoded
    assert len(tree) == 40


@on_both_backends
def test_status_and_dry_run(backend_env: dict[str, str], tmp_path: Path, config: Config) -> None:
    root = tmp_path / "Photos"
    make_photo_tree(root, 12)
    result = runner.invoke(app, ["reindex", "--dry-run"])
    assert result.exit_code == 1 and "no folders to index yet" in result.output
    cli("index", str(root))
    make_photo(root / "new.jpg", COLOURS["green"], seed=99)
    (root / "album-00").rename(root / "gone")
    plan = cli("reindex", "--dry-run")
    actions = {(c["action"], Path(c["path"]).name) for c in plan["planned"]}
    assert ("add", "new.jpg") in actions
    # A renamed folder's photos are moves, as the real run reports them (issue 11 item 10), not add + missing.
    moves = [c for c in plan["planned"] if c["action"] == "move"]
    assert moves and all("/album-00/" in c["source"] and "/gone/" in c["path"] for c in moves)
    assert not any(a == "missing" for a, _ in actions) and plan["moved"] == len(moves)
    assert sql(config, "SELECT count(*) FROM photos WHERE status = 'missing'")[0][0] == 0  # wrote nothing
    dry_text = runner.invoke(app, ["reindex", "--dry-run"]).output
    assert f"move\t{moves[0]['path']}\tfrom {moves[0]['source']}" in dry_text
    status = cli("status")
    assert status["counts"]["indexed"] == 12
    assert status["roots"][0]["path"] == str(root)
    assert status["daemon"]["running"] is False


@on_both_backends
def test_search_by_example_photo_uses_stored_vector(
    backend_env: dict[str, str], tmp_path: Path, config: Config
) -> None:
    root = tmp_path / "Photos"
    tree = make_photo_tree(root, 22)
    cli("index", str(root))
    example = next(p for p, c in tree.items() if c == "green")
    hits = cli("search", "--image", str(example), "--limit", "2")
    assert {colour_of(tree, h["path"]) for h in hits} == {"green"}
    outside = make_photo(tmp_path / "query.jpg", COLOURS["blue"], seed=1234)
    hits = cli("search", "--image", str(outside), "--limit", "2")
    assert {colour_of(tree, h["path"]) for h in hits} == {"blue"}


@on_both_backends
def test_errors_are_one_clear_line(backend_env: dict[str, str], tmp_path: Path, config: Config) -> None:
    result = runner.invoke(app, ["index", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "error:" in result.output and "nope" in result.output and "hint:" in result.output
    result = runner.invoke(app, ["search"])
    assert result.exit_code == 1 and "nothing to search for" in result.output


def _vector_ids(config: Config) -> set[int]:
    return {r[0] for r in sql(config, "SELECT id FROM vectors")}


@pytest.mark.slow
def test_kill_9_during_index_then_resume(tmp_path: Path, config: Config, home_env: dict[str, str]) -> None:
    """SIGKILL at several points of a run; the next run converges: each photo once, FAISS ids == DB ids."""
    root = tmp_path / "Photos"
    tree = make_photo_tree(root, 300, seed=11, size=(640, 480))
    env = {**os.environ, **home_env, "PHOTOINDEX_INDEX_BATCH_SIZE": "4"}
    cmd = [sys.executable, "-m", "photoindex", "index", str(root), "--quiet"]
    kills_mid_run = kill_9_at(config, cmd, env, "SELECT count(*) FROM vectors", (4, 80, 200))
    assert kills_mid_run >= 2, "the kills must land while indexing runs"
    final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    rows = sql(config, "SELECT path, status, content_hash FROM photos")
    assert sorted(Path(r[0]) for r in rows) == sorted(tree)
    assert all(r[1] == "indexed" for r in rows)
    hashes = {r[2] for r in rows}
    assert len(sql(config, "SELECT id FROM vectors")) == len(hashes)  # one vector per content
    index = VectorIndex.load(index_file(config))
    assert set(index.ids().tolist()) == _vector_ids(config)
    _assert_index_matches_catalog(config)


@pytest.mark.slow
def test_ctrl_c_stops_after_the_batch_and_the_next_run_continues(
    tmp_path: Path, config: Config, home_env: dict[str, str]
) -> None:
    root = tmp_path / "Photos"
    tree = make_photo_tree(root, 200, seed=2, size=(640, 480))
    env = {**os.environ, **home_env, "PHOTOINDEX_INDEX_BATCH_SIZE": "4"}
    cmd = [sys.executable, "-m", "photoindex", "index", str(root), "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if config.db_path.exists():
            try:
                if sql(config, "SELECT count(*) FROM vectors")[0][0] >= 8:
                    break
            except sqlite3.OperationalError:
                pass
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    report = json.loads(out)
    assert report["interrupted"] is True
    assert report["failed"] == 0  # no photo is blamed for the interruption
    first = report["encoded"]
    assert 0 < first < len(tree)
    rest = cli("index", str(root))
    assert rest["encoded"] + first == len(tree)
    assert rest["failed"] == 0


@pytest.mark.slow
def test_concurrent_searches_during_indexing_all_succeed(
    tmp_path: Path, config: Config, home_env: dict[str, str]
) -> None:
    """Searches run beside a writer: none fails, none waits for it, none sees a photo that is gone."""
    from concurrent.futures import ThreadPoolExecutor

    from photoindex.search.query import run_search

    root = tmp_path / "Photos"
    first = make_photo_tree(root / "first", 30, seed=1)
    cli("index", str(root))
    gone = sorted(first)[:10]
    for p in gone:
        p.unlink()
    make_photo_tree(root / "second", 200, seed=4, size=(640, 480))
    env = {**os.environ, **home_env, "PHOTOINDEX_INDEX_BATCH_SIZE": "4"}
    proc = subprocess.Popen([sys.executable, "-m", "photoindex", "reindex", "--quiet"], env=env)
    # Wait until the writer has marked the deleted photos missing (its first transaction).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if sql(config, "SELECT count(*) FROM photos WHERE status = 'missing'")[0][0] == len(gone):
            break
        time.sleep(0.01)

    def one(i: int) -> list[str]:
        hits = run_search(config, text=["red", "blue", "green", "yellow"][i % 4], limit=50)
        return [h.path for h in hits]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(100)))
    running_during = proc.poll() is None
    assert proc.wait(120) == 0
    assert running_during, "the searches must overlap the indexing run"
    returned = {Path(p) for r in results for p in r}
    assert returned and not returned & set(gone)


def _assert_index_matches_catalog(config: Config) -> None:
    """Every id of the index file holds exactly the vector SQLite stores under that id."""
    import numpy as np

    index = VectorIndex.load(index_file(config))
    rows = sql(config, "SELECT id, vector FROM vectors ORDER BY id")
    assert index.ids().tolist() == [r[0] for r in rows]
    for vid, blob in rows:
        stored = np.frombuffer(blob, dtype="<f4")
        scores, ids = index.search(stored, 1, allowed=np.asarray([vid], np.int64))
        assert ids[0][0] == vid and abs(float(scores[0][0]) - 1.0) < 1e-4


@pytest.mark.parametrize("replacement", ["fresh", "backup"])
def test_a_replaced_catalog_never_trusts_the_old_index(tmp_path: Path, config: Config, replacement: str) -> None:
    """A new or restored photoindex.db hands out ids again: the index file must be rebuilt, not trusted."""
    root = tmp_path / "Photos"
    tree = make_photo_tree(root / "a", 22, seed=1)
    cli("index", str(root))
    backup = tmp_path / "backup.db"
    src, dst = sqlite3.connect(config.db_path), sqlite3.connect(backup)
    src.backup(dst)  # a real backup, WAL included
    src.close()
    dst.close()
    tree.update(make_photo_tree(root / "b", 22, seed=6))
    cli("index", str(root))  # the index now holds ids the backup does not know
    for suffix in ("", "-wal", "-shm"):
        Path(f"{config.db_path}{suffix}").unlink(missing_ok=True)
    if replacement == "backup":
        shutil.copy(backup, config.db_path)
    # New content walked first ("0-new" sorts first), so the ids the old index file knows now name other photos.
    tree.update(make_photo_tree(root / "0-new", 11, seed=9))
    cli("index", str(root))
    for colour in ("red", "blue", "green"):
        hits = cli("search", colour, "--limit", "4")
        assert {colour_of(tree, h["path"]) for h in hits} == {colour}
    _assert_index_matches_catalog(config)


@on_both_backends
def test_folder_filter_also_takes_a_single_photo(backend_env: dict[str, str], tmp_path: Path, config: Config) -> None:
    root = tmp_path / "Photos"
    tree = make_photo_tree(root, 12)
    cli("index", str(root))
    one = sorted(tree)[0]
    hits = cli("search", "anything", "--folder", str(one))
    assert [Path(h["path"]) for h in hits] == [one]
    sibling_prefix = Path(str(one.parent) + "x")  # a name that merely starts like the folder
    assert cli("search", "anything", "--folder", str(sibling_prefix)) == []


@on_both_backends
def test_forget_a_root_then_purge_its_vectors(
    backend_env: dict[str, str], backend: str, tmp_path: Path, config: Config
) -> None:
    keep = make_photo_tree(tmp_path / "keep", 11, seed=1)
    drop = make_photo_tree(tmp_path / "drop", 11, seed=2)
    cli("index", str(tmp_path / "keep"), str(tmp_path / "drop"))
    result = runner.invoke(app, ["forget", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "is not a root" in result.output
    report = cli("forget", str(tmp_path / "drop"))
    assert report["photos"] == 11 and report["vectors_deleted"] == 0
    hits = cli("search", "anything", "--limit", "100")
    assert {Path(h["path"]) for h in hits} == set(keep)  # gone from results, files untouched
    assert all(p.exists() for p in drop)
    assert sql(config, "SELECT count(*) FROM vectors")[0][0] == 22
    again = cli("index", str(tmp_path / "drop"))  # a return costs no encoding
    assert again["encoded"] == 0 and again["added"] == 11
    purged = cli("forget", str(tmp_path / "drop"), "--purge")
    assert purged["vectors_deleted"] == 11
    assert sql(config, "SELECT count(*) FROM vectors")[0][0] == 11
    if backend == "sqlite":  # PostgreSQL keeps no index file: pgvector searches the catalog
        assert purged["index_rebuilt"] is True
        _assert_index_matches_catalog(config)
    assert {Path(h["path"]) for h in cli("search", "anything", "--limit", "100")} == set(keep)


@on_both_backends
def test_a_folder_that_cannot_be_read_keeps_its_photos(
    backend_env: dict[str, str], tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An I/O error on one folder (a failing card, a stale network handle) is not a deletion."""
    import photoindex.photos.scanner as scanner
    from photoindex.indexing.indexer import run_index

    root = tmp_path / "Photos"
    tree = make_photo_tree(root, 24)
    cli("index", str(root))
    sick = root / "album-01"
    real_scandir = os.scandir

    def failing_scandir(path: Any) -> Any:
        if os.fspath(path) == str(sick):
            raise OSError(5, "Input/output error", str(path))
        return real_scandir(path)

    monkeypatch.setattr(scanner.os, "scandir", failing_scandir)
    report = run_index(config)
    assert report.missing == 0 and report.encoded == 0
    assert any(str(sick) in w and "Input/output error" in w for w in report.warnings)
    assert sql(config, "SELECT count(*) FROM photos WHERE status = 'missing'")[0][0] == 0
    assert len(cli("search", "anything", "--limit", "100")) == len(tree)
