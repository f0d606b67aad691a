"""`photoindex --help` and friends must stay fast: no heavy module is imported to print help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("onnxruntime", "faiss", "sqlalchemy", "alembic", "numpy", "PIL", "watchdog", "starlette", "uvicorn", "jinja2")


@pytest.mark.parametrize("args", [["--help"], ["search", "--help"], ["models", "--help"], ["serve", "--help"]])
def test_help_imports_no_heavy_module(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "photoindex", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
    assert "Usage" in proc.stdout


def test_python_dash_m_and_version_of_commands() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "photoindex", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    for command in ("index", "search", "status", "reindex", "daemon", "models", "doctor", "init", "serve"):
        assert command in proc.stdout


def test_a_search_without_a_daemon_imports_only_what_it_runs(home_env: dict[str, str], tmp_path: Path) -> None:
    # The model and the catalog, yes; the Typer app, SQLAlchemy, and FAISS for a small exact index, no.
    from helpers import cli

    from photoindex.testing.photos import make_photo

    for i, colour in enumerate([(220, 20, 20), (20, 20, 220)]):
        make_photo(tmp_path / "photos" / f"img_{i}.jpg", colour, size=(64, 48), seed=i)
    cli("index", str(tmp_path / "photos"))
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "photoindex", "search", "red", "-n", "1", "-f"],
        env={**os.environ, **home_env}, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("img_0.jpg"), proc.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert {"onnxruntime", "numpy", "sqlite3"} <= imported
    unwanted = {"typer", "click", "sqlalchemy", "alembic", "faiss", "photoindex.cli.app"}
    assert not imported & unwanted, sorted(imported & unwanted)
