"""`photoindex --help` and friends must stay fast: no heavy module is imported to print help."""

from __future__ import annotations

import subprocess
import sys

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
