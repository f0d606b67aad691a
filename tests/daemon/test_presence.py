"""One daemon per home, with real daemon processes: deleting `daemon.lock` does not let a second one start."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from daemonproc import DaemonProcess, _cli

from photoindex.daemon import presence
from photoindex.errors import LockedError

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


def _squat(home: Path, user: int | None) -> subprocess.Popen[str]:
    """A process (of `user`, else this one's) that binds the home's abstract name and waits."""
    code = (
        "import socket, sys, time\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(bytes.fromhex(sys.argv[1])); s.listen(1)\n"
        "print('bound', flush=True); time.sleep(60)\n"
    )
    name = presence._name(home).hex()  # it starts with a NUL byte, which an argument cannot carry
    # Another user cannot run this venv's Python when it lives under a private home folder.
    python = sys.executable if user is None else "/usr/bin/python3"
    proc = subprocess.Popen([python, "-c", code, name], stdout=subprocess.PIPE, text=True, user=user, cwd="/")
    assert proc.stdout is not None and proc.stdout.readline().strip() == "bound"
    return proc


def test_a_name_held_by_this_user_is_another_daemon(tmp_path: Path) -> None:
    squatter = _squat(tmp_path, None)
    try:
        with pytest.raises(LockedError, match=f"already runs \\(pid {squatter.pid}\\)"), presence.only_daemon(tmp_path):
            pass
    finally:
        squatter.kill()
        squatter.wait()


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0 or not os.access("/usr/bin/python3", os.X_OK),
                    reason="needs root and /usr/bin/python3 to run a process as another user")
def test_a_name_held_by_another_user_does_not_keep_the_daemon_down(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Abstract names have no permissions: another local user can bind the one the daemon wants.
    squatter = _squat(tmp_path, 65534)
    try:
        with caplog.at_level(logging.WARNING, logger="photoindex"), presence.only_daemon(tmp_path):
            assert (tmp_path / "daemon.lock").exists()
        assert "held by a process of user 65534" in caplog.text
    finally:
        squatter.kill()
        squatter.wait()
