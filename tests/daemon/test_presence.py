"""One daemon per home, with real daemon processes: deleting `daemon.lock` does not let a second one start."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from daemonproc import DaemonProcess, _cli

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the daemon tests use inotify")


@pytest.mark.slow
def test_a_second_daemon_refuses_to_start_after_daemon_lock_was_deleted(
    tmp_path: Path, env: dict[str, str], start: Callable[..., DaemonProcess]
) -> None:
    first = start()
    (first.home / "daemon.lock").unlink()
    second = _cli(env, "daemon", timeout=30)
    assert second.returncode == 3, second.stderr
    assert f"a photoindex daemon already runs (pid {first.proc.pid})" in second.stderr
    assert first.proc.poll() is None
    assert first.terminate()[0] == 0
    again = start()  # the kernel freed the first one's name with it
    assert again.state()["pid"] == again.proc.pid
    assert again.terminate()[0] == 0
