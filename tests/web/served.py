"""The web page's test helpers and fixtures: an indexed toy library, `photoindex serve`, headless Chromium.

Chromium is Debian's (`/usr/bin/chromium`, installed by `.ci/run`), driven by Playwright with
`executable_path` (never `playwright install`). Without it the browser tests skip with the
reason, except in CI (`CI=true`), where they fail instead.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from photoindex.testing import make_bundle, make_photo

CHROMIUM = os.environ.get("PHOTOINDEX_TEST_CHROMIUM", "/usr/bin/chromium")
RED, GREEN, BLUE = (205, 30, 30), (30, 175, 45), (30, 45, 205)
COLOURS = {"red": RED, "green": GREEN, "blue": BLUE, "yellow": (225, 210, 40), "purple": (140, 50, 170)}
PER_COLOUR = 8


def unavailable(reason: str) -> None:
    """Skip with the reason, or fail in CI, where the browser tests must run."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser tests must run; .ci/run installs chromium)")
    pytest.skip(reason)


@dataclass
class Library:
    """An indexed toy library: its environment and folders."""

    env: dict[str, str]
    home: Path
    photos: Path
    outside: Path  # photos that are not in the library (examples to drop)


def base_env(home: Path, bundle: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOINDEX_")}
    env.update(
        PHOTOINDEX_HOME=str(home),
        PHOTOINDEX_MODEL_BUNDLE=str(bundle),
        PHOTOINDEX_INDEX_WORKERS="1",
        PHOTOINDEX_SEARCH_USE_DAEMON="false",
    )
    return env


def run_cli(env: dict[str, str], *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "photoindex", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    """Five colours, eight photos each (the toy model embeds a photo's dominant colour), indexed."""
    root = tmp_path_factory.mktemp("web")
    bundle = make_bundle(root / "toy", "toy")
    photos = root / "photos"
    for c, (name, colour) in enumerate(COLOURS.items()):
        for i in range(PER_COLOUR):
            make_photo(photos / name / f"{name}-{i}.jpg", colour, size=(160, 120), seed=100 * c + i)
    # Two with a camera and a date in their EXIF, for the filters.
    for i in range(2):
        exif = {271: "Google", 272: "Pixel 7", 306: f"2021:05:0{i + 1} 10:00:00"}
        make_photo(photos / "exif" / f"pixel-{i}.jpg", COLOURS["yellow"], size=(160, 120), seed=700 + i, exif=exif)
    outside = root / "outside"
    make_photo(outside / "blue-example.jpg", BLUE, size=(200, 150), seed=999)
    make_photo(outside / "big-example.png", BLUE, size=(400, 400), seed=998)
    env = base_env(root / "home", bundle)
    run_cli(env, "index", str(photos))
    return Library(env, root / "home", photos, outside)


class Server:
    """`python -m photoindex serve --port 0` in a subprocess; `url` is read from its first line."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "photoindex", "serve", "--port", "0", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        seen = ""
        while True:  # warnings (e.g. the home's mode tightened) may come first
            line = self.proc.stderr.readline()
            seen += line
            found = re.search(r"serving (http://\S+)", line)
            if found or not line:
                break
        if not found:
            self.proc.kill()
            raise AssertionError(f"photoindex serve did not start: {seen}")
        port = re.search(r":(\d+)/$", found.group(1))
        assert port is not None
        self.port = int(port.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def server(library: Library) -> Iterator[Server]:
    """The page served on loopback (no login)."""
    s = Server(library.env)
    yield s
    s.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium from the system, through Playwright."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        unavailable(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set PHOTOINDEX_TEST_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed: pip install -e '.[test]'")
    manager = sync_playwright().start()
    try:
        chromium = manager.chromium.launch(executable_path=CHROMIUM, args=["--disable-gpu"])
    except Exception as exc:
        manager.stop()
        unavailable(f"Chromium at {CHROMIUM} does not start under Playwright: {exc}")
    yield chromium
    chromium.close()
    manager.stop()


@dataclass
class PageWithLog:
    """A browser page and every console error or uncaught exception it produced."""

    page: Any
    errors: list[str]


@pytest.fixture
def page(browser: Any) -> Iterator[PageWithLog]:
    """A fresh page (1200x800); the test fails if the page logs an error or throws."""
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    p = context.new_page()
    errors: list[str] = []
    p.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    p.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    yield PageWithLog(p, errors)
    context.close()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(cond: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def copy_screenshot(png: Path, name: str) -> None:
    """With PHOTOINDEX_SCREENSHOTS=DIR, keep a screenshot there (docs/ holds the README's)."""
    target = os.environ.get("PHOTOINDEX_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, Path(target) / name)
