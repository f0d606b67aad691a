"""Switching the model bundle: a photo is indexed per model (docs/models.md).

Two real bundles with different model ids (the toy bundle in Axera's and in open_clip's layout),
real SQLite, FAISS and ONNX Runtime, the real CLI.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from daemonproc import RED, DaemonProcess, _cli, index_root, make_album
from helpers import backdate_missing, cli, kill_9_at, sql
from typer.testing import CliRunner

from photoindex.cli.app import app
from photoindex.config import Config, load_config
from photoindex.testing.photos import make_photo_tree
from photoindex.vectors.index import VectorIndex

runner = CliRunner()


@pytest.fixture(scope="module")
def other_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second bundle with its own model id (the toy model in open_clip's layout)."""
    from photoindex.testing import make_bundle

    return make_bundle(tmp_path_factory.mktemp("bundles") / "toy-b", "toy", flavour="open_clip")


@pytest.fixture
def library(tmp_path: Path, config: Config) -> dict[Path, str]:
    """12 photos indexed with the first bundle."""
    tree = make_photo_tree(tmp_path / "Photos", 12, seed=5)
    cli("index", str(tmp_path / "Photos"))
    return tree


def use_bundle(monkeypatch: pytest.MonkeyPatch, bundle: Path) -> Config:
    monkeypatch.setenv("PHOTOINDEX_MODEL_BUNDLE", str(bundle))
    return load_config()


def vectors_per_model(config: Config) -> dict[str, int]:
    return dict(sql(config, "SELECT model_id, count(*) FROM vectors GROUP BY model_id"))


def test_a_new_model_encodes_every_photo_and_switching_back_encodes_nothing(
    library: dict[Path, str], config: Config, toy_bundle: Path, other_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_model = sql(config, "SELECT DISTINCT model_id FROM vectors")[0][0]
    use_bundle(monkeypatch, other_bundle)

    # Before the new model encoded anything, a search says so instead of answering empty in silence.
    result = runner.invoke(app, ["search", "red"])
    assert result.exit_code == 0
    assert "12 photos not encoded for model toy-open-clip yet" in result.stderr
    assert "photoindex reindex" in result.stderr

    report = cli("reindex")
    assert report["caught_up"] == 12 and report["encoded"] == 12
    assert report["unchanged"] == 0 and report["updated"] == 0 and report["added"] == 0
    assert len(vectors_per_model(config)) == 2 and set(vectors_per_model(config).values()) == {12}
    assert len(list((config.home / "index").glob("*.idx"))) == 2  # one index file per model

    status = cli("status")
    assert {m["model_id"]: m["photos"] for m in status["models"]} == {
        first_model: 12,
        "photoindex-testing/toy-open-clip-v1": 12,
    }
    assert status["not_encoded"] == 0
    result = runner.invoke(app, ["search", "red", "--json"])
    assert result.exit_code == 0 and "not encoded" not in result.stderr
    hits = cli("search", "red", "--limit", "3")
    assert hits and all(library[Path(h["path"])] == "red" for h in hits[:1])

    again = cli("reindex")
    assert again["caught_up"] == 0 and again["encoded"] == 0 and again["unchanged"] == 12

    use_bundle(monkeypatch, toy_bundle)  # back to the first model: its vectors were kept
    back = cli("reindex")
    assert back["encoded"] == 0 and back["caught_up"] == 0 and back["unchanged"] == 12


def test_index_also_catches_up_a_root_it_is_given(
    library: dict[Path, str], tmp_path: Path, other_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_bundle(monkeypatch, other_bundle)
    report = cli("index", str(tmp_path / "Photos"))
    assert report["caught_up"] == 12 and report["encoded"] == 12


def test_forgetting_and_purging_remove_every_models_vectors(
    library: dict[Path, str], tmp_path: Path, config: Config, toy_bundle: Path, other_bundle: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_bundle(monkeypatch, other_bundle)
    cli("reindex")
    assert list(vectors_per_model(config).values()) == [12, 12]
    gone = next(iter(library))
    gone.unlink()
    cli("reindex")
    backdate_missing(config, 31)
    use_bundle(monkeypatch, toy_bundle)  # forgetting under the first model also drops the second's vector
    assert cli("reindex")["forgotten"] == 1
    assert set(vectors_per_model(config).values()) == {11}
    for file in (config.home / "index").glob("*.idx"):
        ids = set(VectorIndex.load(file).ids().tolist())
        model = VectorIndex.load(file).meta["model_id"]
        assert ids == {i for (i,) in sql(config, "SELECT id FROM vectors WHERE model_id = ?", model)}, file

    result = runner.invoke(app, ["forget", str(tmp_path / "Photos"), "--purge", "--json"])
    assert result.exit_code == 0, result.output
    assert sql(config, "SELECT count(*) FROM vectors") == [(0,)]


@pytest.mark.slow
def test_kill_9_during_a_model_switch_loses_and_doubles_nothing(
    tmp_path: Path, config: Config, home_env: dict[str, str], other_bundle: Path
) -> None:
    """SIGKILL while the new model encodes the library; the next run finishes: one vector per content and
    model, each index file holds exactly its model's vectors, the first model's vectors untouched."""
    root = tmp_path / "Photos"
    tree = make_photo_tree(root, 80, seed=13, size=(400, 300))
    env = {**os.environ, **home_env, "PHOTOINDEX_INDEX_BATCH_SIZE": "4"}
    subprocess.run([sys.executable, "-m", "photoindex", "index", str(root), "--quiet"], env=env, check=True,
                   timeout=300)
    first = sql(config, "SELECT id, content_hash FROM vectors ORDER BY id")
    env["PHOTOINDEX_MODEL_BUNDLE"] = str(other_bundle)
    cmd = [sys.executable, "-m", "photoindex", "reindex", "--quiet"]
    new_model = "photoindex-testing/toy-open-clip-v1"
    kills = kill_9_at(config, cmd, env, "SELECT count(*) FROM vectors WHERE model_id = ?", (4, 30, 55), new_model)
    assert kills >= 2, "the kills must land while the new model encodes"
    final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    rows = sql(config, "SELECT path, status, content_hash FROM photos")
    assert sorted(Path(r[0]) for r in rows) == sorted(tree) and all(r[1] == "indexed" for r in rows)
    hashes = {r[2] for r in rows}
    for model, n in vectors_per_model(config).items():
        assert n == len(hashes), model  # one vector per content and model
    assert sql(config, "SELECT id, content_hash FROM vectors WHERE model_id != ? ORDER BY id", new_model) == first
    files = list((config.home / "index").glob("*.idx"))
    assert len(files) == 2
    for file in files:
        index = VectorIndex.load(file)
        model = index.meta["model_id"]
        assert set(index.ids().tolist()) == {
            i for (i,) in sql(config, "SELECT id FROM vectors WHERE model_id = ?", model)
        }, file


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the daemon tests use inotify")
def test_the_daemon_started_with_a_new_model_encodes_the_library_for_it(
    tmp_path: Path, env: dict[str, str], start: Callable[..., DaemonProcess], other_bundle: Path
) -> None:
    home = Path(env["PHOTOINDEX_HOME"])
    root = tmp_path / "photos"
    make_album(root, 12, RED, seed=3)
    index_root(env, root)  # with the first model
    switched = {**env, "PHOTOINDEX_MODEL_BUNDLE": str(other_bundle)}
    d = start(PHOTOINDEX_MODEL_BUNDLE=str(other_bundle))  # its start-up scan catches the new model up
    d.wait_quiet()
    assert d.encoded() == 12
    con = sqlite3.connect(f"file:{home / 'photoindex.db'}?mode=ro", uri=True)
    try:
        per_model = dict(con.execute("SELECT model_id, count(*) FROM vectors GROUP BY model_id").fetchall())
    finally:
        con.close()
    assert sorted(per_model.values()) == [12, 12]
    result = _cli(switched, "search", "red", "--json", "--limit", "3")
    assert result.returncode == 0 and "not encoded" not in result.stderr, result.stderr
    assert len(json.loads(result.stdout)) == 3
