"""Answers a user can act on (issue 11 item 10): the version, honest checks, what is wrong with an argument,
why a search found nothing, plain lines for pipes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cli, runner

from photoindex.cli.app import app
from photoindex.config import Config
from photoindex.testing import COLOURS
from photoindex.testing.photos import make_photo


def _photos(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    for i, colour in enumerate(("red", "green", "blue")):
        make_photo(root / f"{colour}.jpg", COLOURS[colour], (64, 48), seed=i)
    return root


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and re.fullmatch(r"photoindex \d+\.\d+\S*\n", result.output), result.output


def test_models_verify_never_says_ok_for_a_file_that_is_not_there(home_env: dict[str, str]) -> None:
    result = runner.invoke(app, ["models", "verify", "clip-vit-b32"])  # nothing fetched in this home
    assert result.exit_code == 1
    for line in result.output.splitlines():
        parts = line.split()
        if parts and parts[0] == "ok":
            assert Path(parts[2]).is_file(), line
    assert "image_encoder.axmodel  absent (optional)" in result.output


def test_search_image_says_what_is_wrong_with_the_argument(tmp_path: Path, config: Config) -> None:
    root = _photos(tmp_path)
    cli("index", str(root))
    result = runner.invoke(app, ["search", "--image", str(root)])
    assert result.exit_code == 1
    assert f"--image {root}: that is a folder, not a photo" in result.output
    assert f"--folder {root}" in result.output
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list\n")
    result = runner.invoke(app, ["search", "--image", str(notes)])
    assert result.exit_code == 1 and "a text file" in result.output
    assert "[scan] extensions" not in result.output and "format photoindex reads" in result.output
    result = runner.invoke(app, ["search", "--image", str(tmp_path / "nope.jpg")])
    assert "no such file" in result.output


def test_no_matching_photos_always_says_why(tmp_path: Path, config: Config) -> None:
    result = runner.invoke(app, ["search", "red"])
    assert result.exit_code == 0
    assert "no matching photos: the library is empty" in result.output and "photoindex index" in result.output
    root = _photos(tmp_path)
    cli("index", str(root))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = runner.invoke(app, ["search", "red", "--folder", str(elsewhere)])
    assert f"--folder {elsewhere} is not inside any indexed folder (roots: {root})" in result.output
    result = runner.invoke(app, ["search", "red", "--min-score", "0.999"])
    assert "no photo scored at least 0.999" in result.output and "lower it" in result.output


@pytest.mark.slow
def test_piped_search_prints_plain_tab_separated_lines_and_paths(
    tmp_path: Path, config: Config, home_env: dict[str, str]
) -> None:
    root = _photos(tmp_path)
    cli("index", str(root))
    env = {**os.environ, **home_env, "PHOTOINDEX_SEARCH_USE_DAEMON": "0"}
    run = [sys.executable, "-m", "photoindex", "search", "red", "--limit", "2"]
    piped = subprocess.run(run, env=env, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0, piped.stderr
    lines = piped.stdout.splitlines()
    assert len(lines) == 2 and "score" not in piped.stdout
    score, path, _taken = lines[0].split("\t")
    assert path == str(root / "red.jpg") and float(score) > 0
    paths = subprocess.run([*run, "--paths"], env=env, capture_output=True, text=True, timeout=120)
    assert paths.stdout.splitlines()[0] == str(root / "red.jpg") and "\t" not in paths.stdout


@pytest.mark.slow
def test_status_reads_without_sqlalchemy_shows_the_home_absolute_and_readable_times(
    tmp_path: Path, toy_bundle: Path
) -> None:
    from photoindex.catalog import reads, schema

    assert reads.STATUSES == schema.PHOTO_STATUSES
    make_photo(tmp_path / "photos" / "red.jpg", COLOURS["red"], (64, 48))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOINDEX_")}
    env.update(PHOTOINDEX_HOME="demo", PHOTOINDEX_MODEL_BUNDLE=str(toy_bundle), PHOTOINDEX_INDEX_WORKERS="1")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )

    assert run("-m", "photoindex", "index", "photos").returncode == 0
    status = run("-X", "importtime", "-m", "photoindex", "status")
    assert status.returncode == 0, status.stderr
    imported = {line.split("|")[-1].strip().split(".")[0] for line in status.stderr.splitlines() if "|" in line}
    assert "sqlalchemy" not in imported and "alembic" not in imported
    assert f"home:      {tmp_path / 'demo'}\n" in status.stdout  # resolved once, shown absolute
    assert "  1 photo, last scan " in status.stdout and "1 photos" not in status.stdout
    scanned = re.search(r"last scan (\S+ \S+)", status.stdout)
    assert scanned and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", scanned.group(1)), status.stdout


@pytest.mark.slow
def test_a_query_cut_to_the_models_context_says_so(tmp_path: Path, config: Config, home_env: dict[str, str]) -> None:
    root = _photos(tmp_path)
    cli("index", str(root))
    env = {**os.environ, **home_env, "PHOTOINDEX_SEARCH_USE_DAEMON": "0"}
    long = " ".join(["red"] * 120)
    run = [sys.executable, "-m", "photoindex", "search", long, "--limit", "1"]
    result = subprocess.run(run, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^warning: the query '.*' is 122 tokens long; model \S+ reads the first 77", result.stderr, re.M)
    short = subprocess.run([*run[:4], "red"], env=env, capture_output=True, text=True, timeout=120)
    assert "tokens long" not in short.stderr
