"""The daemon answers `photoindex search` over its socket: same hits as a local search, or a local fallback.

The end-to-end tests run the real daemon and the real CLI as subprocesses (the helpers of
tests/daemonproc.py); which side answered is told by the daemon's log (`served a search` per query).
The unit tests drive the client against hand-made sockets and the server's `answer` in-process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import daemonproc as td
import pytest

from photoindex.config import Config
from photoindex.errors import PhotoindexError
from photoindex.library import TEXT_READY
from photoindex.search.client import ask_daemon, ping, socket_path
from photoindex.search.protocol import Declined, Hit, SearchRequest, parse_request
from photoindex.search.server import QueryServer

# The daemon fixtures and helpers of tests/daemonproc.py: a toy bundle, an isolated home, a daemon process.
env, start = td.env, td.start
_cli, wait_for = td._cli, td.wait_for
index_root, make_album, photos = td.index_root, td.make_album, td.photos
RED, GREEN, BLUE = td.RED, td.GREEN, td.BLUE

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the daemon tests use inotify")


def served(d: td.DaemonProcess) -> int:
    return d.log().count("served a search")


def search(env: dict[str, str], *args: str, local: bool = False) -> list[dict[str, object]]:
    result = _cli({**env, "PHOTOINDEX_SEARCH_USE_DAEMON": "0"} if local else env, "search", *args, "--json")
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert isinstance(hits, list)
    return hits


def other_bundle(toy_bundle: Path, tmp_path: Path) -> Path:
    """The toy bundle under another model id: its vectors must never answer a query of the toy model."""
    other = tmp_path / "other-bundle"
    shutil.copytree(toy_bundle, other)
    manifest = other / "manifest.toml"
    text = manifest.read_text()
    assert 'model_id = "photoindex-testing/toy-v1"' in text
    manifest.write_text(text.replace("photoindex-testing/toy-v1", "photoindex-testing/other-v1"))
    return other


# ---------------------------------------------------------------- end to end


@linux_only
@pytest.mark.slow
def test_served_searches_match_local_ones_and_errors_deletions_and_other_models_behave(
    tmp_path: Path, env: dict[str, str], toy_bundle: Path, start: Callable[..., td.DaemonProcess]
) -> None:
    home = Path(env["PHOTOINDEX_HOME"])
    root = tmp_path / "photos"
    reds = make_album(root / "red", 4, RED, seed=0)
    make_album(root / "green", 3, GREEN, seed=10)
    make_album(root / "blue", 3, BLUE, seed=20)
    index_root(env, root)
    d = start()
    sock = socket_path(home)
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    assert d.state()["serving"] == str(sock)
    # The text model is loaded before any query asks for it, so the first is as quick as any.
    wait_for(lambda: TEXT_READY in d.log(), "the text model loaded ahead of the first query", d)

    # Same hits, same order, same keys as the local search; the table is the same too.
    filtered = (
        ("blue", "--folder", str(root / "blue"), "--min-score", "0.5"),
        ("red", "--after", "2000", "--type", "jpeg", "--limit", "3", "--offset", "1"),
        ("red + green - red", "--sort", "date"),
        ("--after", "2000", "--limit", "4"),  # a listing by date, no query
        ("red", "--place", "Hangzhou"),  # none of them has GPS: nothing, from both
    )
    for args in (("red",), ("green", "--limit", "2"), *filtered):
        before = served(d)
        assert search(env, *args) == search(env, *args, local=True)
        # A listing without a query loads no model: the CLI answers it itself (cli/app.py, since the OCR change).
        assert served(d) == before + (0 if args[0].startswith("--") else 1)
    assert {h["path"] for h in search(env, "red", "--limit", "4")} == {str(p) for p in reds}
    table = _cli(env, "search", "red", "--limit", "3")
    local_table = _cli({**env, "PHOTOINDEX_SEARCH_USE_DAEMON": "0"}, "search", "red", "--limit", "3")
    assert table.returncode == 0 and table.stdout == local_table.stdout and "img_" in table.stdout
    # An example photo the daemon has encoded is served (relative to the CLI's folder, not the daemon's).
    before = served(d)
    by_image = subprocess_search_in(env, root / "green", "--image", "img_000.jpg")
    assert by_image == search(env, "--image", str(root / "green" / "img_000.jpg"), local=True)
    assert by_image[0]["path"] == str(root / "green" / "img_000.jpg")
    assert served(d) == before + 1

    # Errors of the core come back as the same error:/hint: lines and exit code. An empty query
    # is the full command's (the served path does not take it); a bad filter is the daemon's
    # answer, checked there as the full command checks it (protocol.request_from_options).
    errors: list[tuple[tuple[str, ...], str, int]] = [
        ((" ",), "error: the query is empty", 0),
        (("red", "--after", "2024-13"), "error: --after '2024-13': no such month", 1),
        (("--image", str(tmp_path / "nope.jpg")), "no such file", 1),
    ]
    for bad, message, asked in errors:
        before = served(d)
        result = _cli(env, "search", *bad)
        assert result.returncode == 1
        assert message in result.stderr and "hint: " in result.stderr
        assert served(d) == before + asked  # answered by the daemon, not by a local fallback

    # A deleted photo is never returned, though its vector stays in the daemon's index.
    os.remove(reds[0])
    wait_for(lambda: photos(home).get(str(reds[0])) in (None, "missing"), "the deletion noted", d)
    hits = search(env, "red", "--limit", "10")
    assert str(reds[0]) not in {h["path"] for h in hits} and len(hits) == 9

    # Vectors committed by another process (`photoindex index`) are served at once.
    extra = make_album(tmp_path / "more", 2, GREEN, seed=40)
    index_root(env, tmp_path / "more")
    assert {str(p) for p in extra} <= {h["path"] for h in search(env, "green", "--limit", "5")}

    # Another model configured: the daemon declines and the CLI searches by itself (that model has no vectors).
    before = served(d)
    assert search({**env, "PHOTOINDEX_MODEL_BUNDLE": str(other_bundle(toy_bundle, tmp_path))}, "red") == []
    assert served(d) == before

    status = _cli(env, "status")
    assert f"searches:  served by the daemon (socket {sock})" in status.stdout
    assert json.loads(_cli(env, "status", "--json").stdout)["daemon"]["serving"] == str(sock)

    assert d.terminate()[0] == 0
    assert not sock.exists()


def subprocess_search_in(env: dict[str, str], cwd: Path, *args: str) -> list[dict[str, object]]:
    result = subprocess.run(
        [sys.executable, "-m", "photoindex", "search", *args, "--json"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert isinstance(hits, list)
    return hits


@linux_only
@pytest.mark.slow
def test_after_kill_9_the_stale_socket_falls_back_to_a_local_search_and_a_new_daemon_replaces_it(
    tmp_path: Path, env: dict[str, str], start: Callable[..., td.DaemonProcess]
) -> None:
    home = Path(env["PHOTOINDEX_HOME"])
    root = tmp_path / "photos"
    make_album(root, 3, RED, seed=0)
    make_album(root / "g", 2, GREEN, seed=5)
    index_root(env, root)
    d = start()
    expected = search(env, "red", local=True)
    assert search(env, "red") == expected and served(d) == 1
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    assert socket_path(home).exists()  # left behind: nobody listens on it
    assert not ping(home)
    assert search(env, "red") == expected
    assert "searches:" not in _cli(env, "status").stdout
    d2 = start()
    assert ping(home)
    assert search(env, "red") == expected and served(d2) == 1


# ---------------------------------------------------------------- the client and the server, in-process


REQUEST = SearchRequest.build(text="red", limit=5).to_wire("m")


def test_the_client_returns_none_without_a_socket_and_on_every_answer_but_hits_or_an_error(
    tmp_path: Path, fake_daemon: Callable[[bytes | None], Path]
) -> None:
    request = SearchRequest.build(text="red", limit=5)
    assert ask_daemon(tmp_path / "no-home", request, "m") is None
    plain = tmp_path / "plain"
    plain.mkdir()
    socket_path(plain).write_text("not a socket")
    assert ask_daemon(plain, request, "m") is None
    for garbage in (b"", b"nonsense\n", b'{"hits": [1, 2]}\n', b"[]\n", b'{"hits": []', b'{"unavailable": "x"}\n'):
        assert ask_daemon(fake_daemon(garbage), request, "m") is None, garbage
    assert ask_daemon(fake_daemon(None), request, "m", timeout=0.3) is None  # connected, never answered
    assert not ping(fake_daemon(b"nonsense\n"))
    hits = [{"path": "/p/\udcff.jpg", "score": 0.5}]
    assert ask_daemon(fake_daemon(json.dumps({"hits": hits}).encode() + b"\n"), request, "m") == [
        Hit("/p/\udcff.jpg", 0.5)
    ]
    with pytest.raises(PhotoindexError) as err:
        ask_daemon(fake_daemon(b'{"error": "the query is empty", "hint": "describe it"}\n'), request, "m")
    assert (err.value.message, err.value.hint) == ("the query is empty", "describe it")


@pytest.mark.parametrize(
    "change",
    [
        {"limit": 0},
        {"limit": 10_001},
        {"limit": True},
        {"limit": "5"},
        {"min_score": float("nan")},
        {"min_score": None},
        {"terms": [{"weight": 1.0, "text": 3}]},
        {"terms": [{"weight": 1.0, "text": "x" * 5000}]},
        {"terms": [{"weight": 1.0, "image": "relative.jpg"}]},
        {"terms": [{"weight": float("nan"), "text": "red"}]},
        {"terms": [{"weight": -1.0, "text": "red"}]},  # nothing but subtraction
        {"terms": [{"weight": 1.0, "text": "red", "image": "/a.jpg"}]},
        {"filters": {"folder": "relative"}},
        {"filters": {"after": "2024-13-01"}},
        {"filters": {"near": [200, 0, 5]}},
        {"filters": {"formats": ["EXE"]}},
        {"filters": {"unknown": 1}},
        {"offset": -1},
        {"sort": "size"},
        {"model": None},
        {"bundle": "m", "model": None},  # the request of an older client
    ],
)
def test_requests_out_of_bounds_are_declined(change: dict[str, object]) -> None:
    with pytest.raises(Declined):
        parse_request({**REQUEST, **change})


def test_the_server_declines_another_model_and_answers_ping_and_garbage(config: Config) -> None:
    from photoindex.library import open_library

    with open_library(config) as lib:
        server = QueryServer(
            lib, work_lock=threading.Lock(), current_index=lambda: None, open_index=lambda: pytest.fail("no search")
        )
        assert server.answer(b'{"ping": true}') == {"pong": True}
        assert "unavailable" in server.answer(b"{not json")
        assert "unavailable" in server.answer(json.dumps({**REQUEST, "model": "another/model"}).encode())
        assert "unavailable" in server.answer(json.dumps({**REQUEST, "limit": -1}).encode())
        assert server.served == 0


def test_the_text_model_is_released_after_idle_minutes_and_reloaded_on_demand(config: Config) -> None:
    from photoindex.library import open_library
    with open_library(config) as lib:
        lock = threading.Lock()
        handle = lib.open_index()
        server = QueryServer(lib, work_lock=lock, current_index=lambda: handle, open_index=lambda: handle)
        request = json.dumps({**REQUEST, "model": lib.model_id}).encode()
        assert "hits" in server.answer(request)
        assert lib._text is not None
        assert not server.release_idle_model()  # not idle yet: kept
        assert lib._text is not None
        server.text_idle_seconds = 0.0
        assert server.release_idle_model(now=lib.text_used_at + 1.0)
        assert lib._text is None
        # A text asked before is answered from the library's memory of query vectors; a new one loads the model.
        assert "hits" in server.answer(request)
        assert lib._text is None
        blue = SearchRequest.build(text="blue", limit=5).to_wire(lib.model_id)
        request = json.dumps(blue).encode()
        assert "hits" in server.answer(request)  # loaded again on demand
        assert lib._text is not None and server.served == 3


def test_searches_of_the_daemons_web_page_count_as_use_of_the_text_model(config: Config) -> None:
    """The page searches through the daemon's library (photoindex.web.service): its queries keep the model
    loaded, and a model only the page used is released when the page stops using it."""
    from photoindex.library import open_library
    from photoindex.web.service import PageSearch, WebService

    with open_library(config) as lib:
        handle = lib.open_index()
        server = QueryServer(lib, work_lock=threading.Lock(), current_index=lambda: handle, open_index=lambda: handle)
        server.text_idle_seconds = 60.0
        page = WebService(lib, index=lambda: handle)
        # Only the page searched: its model is released once idle (it used to stay loaded for good).
        page.search(PageSearch(text="red"))
        assert lib._text is not None
        assert not server.release_idle_model(now=lib.text_used_at + 59.0)
        assert server.release_idle_model(now=lib.text_used_at + 61.0)
        assert lib._text is None
        # A socket search, then the page's: the page's use restarts the idle time.
        assert "hits" in server.answer(json.dumps({**REQUEST, "model": lib.model_id}).encode())
        socket_use = lib.text_used_at
        page.search(PageSearch(text="blue"))
        page_use = lib.text_used_at
        assert page_use > socket_use
        assert not server.release_idle_model(now=page_use + 59.0)
        assert lib._text is not None
        assert server.release_idle_model(now=page_use + 61.0)
        assert lib._text is None


