"""The library is private to its owner: home 0700, its files 0600, an open home tightened once with a notice."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from photoindex.testing import make_photo


def _modes(home: Path) -> dict[str, int]:
    out = {".": stat.S_IMODE(os.stat(home).st_mode)}
    for top, dirs, files in os.walk(home):
        for name in dirs + files:
            p = Path(top, name)
            if not p.is_socket():
                out[str(p.relative_to(home))] = stat.S_IMODE(os.lstat(p).st_mode)
    return out


@pytest.fixture
def open_base() -> Iterator[Path]:
    """A folder other users can enter (pytest's own tmp folders are 0700, which would hide the point)."""
    base = Path(tempfile.mkdtemp(prefix="photoindex-home-"))
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "photoindex", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: os.umask(0o022),  # the usual umask: photoindex must not rely on a strict one
    )


def _env(home: Path, bundle: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOINDEX_")}
    env.update(PHOTOINDEX_HOME=str(home), PHOTOINDEX_MODEL_BUNDLE=str(bundle), PHOTOINDEX_INDEX_WORKERS="1")
    return env


@pytest.mark.slow
def test_a_new_home_and_everything_in_it_is_private(open_base: Path, toy_bundle: Path) -> None:
    home = open_base / "home"
    make_photo(open_base / "photos" / "a.jpg", (200, 30, 30), size=(64, 48))
    result = _run(_env(home, toy_bundle), "index", str(open_base / "photos"))
    assert result.returncode == 0, result.stderr
    modes = _modes(home)
    assert modes["."] == 0o700
    assert {"photoindex.db", "writer.lock"} <= set(modes) and any(k.startswith("index/") for k in modes)
    assert {k: oct(m) for k, m in modes.items() if m & 0o077} == {}
    assert "private" not in result.stderr  # nothing to tighten: no notice


@pytest.mark.slow
def test_an_existing_open_home_is_tightened_once_with_a_notice(open_base: Path, toy_bundle: Path) -> None:
    home = open_base / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    env = _env(home, toy_bundle)
    first = _run(env, "index", str(open_base))
    assert first.returncode == 0, first.stderr
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    notices = [line for line in first.stderr.splitlines() if "made it private" in line]
    assert len(notices) == 1 and str(home) in notices[0] and "0755" in notices[0], first.stderr
    second = _run(env, "reindex")
    assert second.returncode == 0 and "private" not in second.stderr


_OTHER_PYTHON = "/usr/bin/python3"  # another user cannot run the test's venv python (it may sit under /root)


@pytest.mark.skipif(
    os.geteuid() != 0 or not os.access(_OTHER_PYTHON, os.X_OK), reason="needs root (to act as another user)"
)
def test_another_user_can_neither_read_the_catalog_nor_take_a_lock(open_base: Path, toy_bundle: Path) -> None:
    home = open_base / "home"
    result = _run(_env(home, toy_bundle), "index", str(open_base / "nothing-here"))
    assert result.returncode == 1  # the folder does not exist, but the library was opened (and created)
    assert (home / "photoindex.db").exists()
    probe = (
        "import fcntl, os, sys\n"
        "for name in ('writer.lock', 'photoindex.db', ''):\n"
        "    try:\n"
        "        fd = os.open(os.path.join(sys.argv[1], name), os.O_RDONLY)\n"
        "        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)\n"
        "        print('took', name or 'home')\n"
        "    except PermissionError:\n"
        "        pass\n"
    )
    nobody = subprocess.run(
        [_OTHER_PYTHON, "-c", probe, str(home)],
        capture_output=True,
        text=True,
        timeout=60,
        user=65534,
        group=65534,
        extra_groups=[],
    )
    assert nobody.returncode == 0, nobody.stderr
    assert nobody.stdout == ""
