"""A real daemon process for tests: an isolated home with the toy bundle, start/stop, and catalog reads from outside.

Shared by the daemon tests and the query-socket tests (fixtures `env`, `start`; the bundle is `toy_bundle`).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from photoindex.testing import make_photo

DEADLINE = 40.0  # generous: a loaded 2-core CI machine; a healthy run takes a few seconds
RED, GREEN, BLUE = (200, 30, 30), (30, 180, 40), (30, 40, 200)


@pytest.fixture
def env(tmp_path: Path, toy_bundle: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOINDEX_") and k != "JOURNAL_STREAM"}
    e.update(
        PHOTOINDEX_HOME=str(tmp_path / "home"),
        PHOTOINDEX_MODEL_BUNDLE=str(toy_bundle),
        PHOTOINDEX_DAEMON_SETTLE_SECONDS="0.5",
        PHOTOINDEX_DAEMON_MAX_BATCH_WAIT="0.5",
        PHOTOINDEX_DAEMON_LOG_LEVEL="DEBUG",
        PHOTOINDEX_INDEX_WORKERS="1",
        PHOTOINDEX_OCR_ENABLED="0",  # tests/ocr/ turn the text pass on where they test it
    )
    return e


def _cli(env: dict[str, str], *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "photoindex", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


class DaemonProcess:
    """`python -m photoindex daemon` with its stderr in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log_path = log
        self.home = Path(env["PHOTOINDEX_HOME"])
        self._log = open(log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "photoindex", "daemon"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )

    def state(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.home / "daemon.json").read_text()))
        except (OSError, ValueError):
            return {}

    def wait_idle(self) -> None:
        """Until the start-up scan is done and the daemon waits for events."""
        wait_for(
            lambda: self.state().get("pid") == self.proc.pid and self.state().get("state") == "idle",
            "the daemon to become idle",
            self,
        )

    def wait_quiet(self) -> None:
        """Until nothing waits in the daemon's queue (its status file says idle with an empty queue)."""
        wait_for(
            lambda: self.state().get("state") == "idle" and self.state().get("queue") == 0,
            "the daemon's queue to empty",
            self,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def encoded(self) -> int:
        """Photos encoded according to the daemon's log (every unit logs `N encoded`)."""
        return sum(int(n) for n in re.findall(r"(\d+) encoded", self.log()))

    def terminate(self, timeout: float = 10.0) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture
def start(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    started: list[DaemonProcess] = []

    def run(**extra: str) -> DaemonProcess:
        d = DaemonProcess({**env, **extra}, tmp_path / f"daemon{len(started)}.log")
        started.append(d)
        d.wait_idle()
        return d

    yield run
    for d in started:
        d.kill()


def wait_for(
    cond: Callable[[], bool], what: str, daemon: DaemonProcess | None = None, timeout: float = DEADLINE
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        if daemon is not None and daemon.proc.poll() is not None:
            raise AssertionError(f"the daemon exited ({daemon.proc.returncode}) waiting for {what}:\n{daemon.log()}")
        time.sleep(0.05)
    log = daemon.log() if daemon is not None else ""
    raise AssertionError(f"timed out waiting for {what}\n{log}")


def photos(home: Path) -> dict[str, str]:
    """path -> status, read straight from the catalog (read-only, beside the writer)."""
    db = home / "photoindex.db"
    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return dict(con.execute("SELECT path, status FROM photos").fetchall())
    except sqlite3.OperationalError:
        return {}  # not migrated yet
    finally:
        con.close()


def vector_count(home: Path) -> int:
    con = sqlite3.connect(f"file:{home / 'photoindex.db'}?mode=ro", uri=True, timeout=10)
    try:
        return int(con.execute("SELECT count(*) FROM vectors").fetchone()[0])
    finally:
        con.close()


def indexed_under(home: Path, folder: Path) -> set[str]:
    prefix = str(folder) + os.sep
    return {p for p, s in photos(home).items() if p.startswith(prefix) and s == "indexed"}


def make_album(folder: Path, n: int, colour: tuple[int, int, int], seed: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [make_photo(folder / f"img_{i:03d}.jpg", colour, size=(96, 72), seed=seed + i) for i in range(n)]


def index_root(env: dict[str, str], root: Path) -> None:
    result = _cli(env, "index", "--quiet", str(root))
    assert result.returncode == 0, result.stderr


def empty_root(tmp_path: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """(home, root): an empty folder added as the library's root before the daemon starts."""
    root = tmp_path / "photos"
    root.mkdir()
    index_root(env, root)
    return Path(env["PHOTOINDEX_HOME"]), root


# ---------------------------------------------------------------- acceptance
