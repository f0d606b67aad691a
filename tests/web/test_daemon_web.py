"""The daemon serves the page too when `[web] listen` is set: one service on the board."""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import daemonproc as td
import pytest
from served import free_port

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the daemon tests use inotify")


def get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read()


@linux_only
@pytest.mark.slow
def test_the_daemon_serves_the_page_over_its_own_index(
    env: dict[str, str], start: Callable[..., td.DaemonProcess], tmp_path: Path
) -> None:
    home, root = td.empty_root(tmp_path, env)
    td.make_album(root / "reds", 3, td.RED, seed=1)
    td.make_album(root / "blues", 3, td.BLUE, seed=10)
    port = free_port()
    d = start(PHOTOINDEX_WEB_LISTEN=f"127.0.0.1:{port}")
    td.wait_for(lambda: len(td.indexed_under(home, root)) == 6, "the start-up scan", d)
    base = f"http://127.0.0.1:{port}"
    td.wait_for(lambda: d.state().get("web") == f"{base}/", "the web page to be announced", d)
    status, body = get(f"{base}/api/search?q=red&limit=3")
    assert status == 200
    hits = json.loads(body)["hits"]
    assert [Path(h["path"]).parent.name for h in hits] == ["reds"] * 3
    # A photo the daemon indexes from now on is found on the page without a restart.
    td.make_album(root / "greens", 2, td.GREEN, seed=20)
    td.wait_for(lambda: len(td.indexed_under(home, root)) == 8, "the new photos", d)
    hits = json.loads(get(f"{base}/api/search?q=green&limit=2")[1])["hits"]
    assert [Path(h["path"]).parent.name for h in hits] == ["greens"] * 2
    status, thumb = get(f"{base}{hits[0]['thumbnail']}")
    assert status == 200 and thumb[:2] == b"\xff\xd8"
    st = json.loads(get(f"{base}/api/status")[1])
    assert st["daemon"]["running"] is True and st["daemon"]["web"] == f"{base}/"
    assert "serving the web page on" in d.log()
    code, _ = d.terminate()
    assert code == 0


@linux_only
@pytest.mark.slow
def test_a_port_in_use_is_logged_and_the_daemon_goes_on(
    env: dict[str, str], start: Callable[..., td.DaemonProcess], tmp_path: Path
) -> None:
    import socket

    td.empty_root(tmp_path, env)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        d = start(PHOTOINDEX_WEB_LISTEN=f"127.0.0.1:{taken.getsockname()[1]}")
        assert "cannot serve the web page: cannot listen on" in d.log()
        assert d.state().get("web") is None
        code, _ = d.terminate()
        assert code == 0
