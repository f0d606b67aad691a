"""Shared fixtures: a toy model bundle (generated once per session) and an isolated photoindex home."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from photoindex.config import Config, load_config

# The real-daemon fixtures (`bundle`, `env`, `start`, `empty_root`) for tests/daemon and tests/search.
pytest_plugins = ["daemonproc"]

@pytest.fixture(scope="session")
def toy_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated toy bundle (colour semantics, Axera's I/O contract), shared by the session."""
    from photoindex.testing import make_bundle

    return make_bundle(tmp_path_factory.mktemp("bundles") / "toy", "toy")


@pytest.fixture
def home_env(tmp_path: Path, toy_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """An isolated PHOTOINDEX_HOME using the toy bundle, set in the environment (for CLI tests too)."""
    env = {
        "PHOTOINDEX_HOME": str(tmp_path / "home"),
        "PHOTOINDEX_MODEL_BUNDLE": str(toy_bundle),
        "PHOTOINDEX_INDEX_WORKERS": "1",
    }
    for key in [k for k in list(__import__("os").environ) if k.startswith("PHOTOINDEX_")]:
        monkeypatch.delenv(key, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    yield env


@pytest.fixture
def config(home_env: dict[str, str]) -> Config:
    """The configuration of the isolated home."""
    return load_config()
