"""The query socket cannot be stalled: a deadline per request, a cap on connections, size and nesting limits.

Issue 11 item 6: the server read one connection at a time with a 5 s timeout per `recv`, so a
client sending a byte every 2 s held every other search; deeply nested JSON got no answer and a
RecursionError traceback in the log.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from photoindex.config import Config
from photoindex.search.client import ask_daemon, ping, socket_path
from photoindex.search.protocol import SearchRequest
from photoindex.search.server import MAX_REQUEST, QueryServer


@pytest.fixture
def server(config: Config) -> Iterator[QueryServer]:
    from photoindex.library import open_library

    with open_library(config) as lib:
        handle = lib.open_index()
        s = QueryServer(lib, work_lock=threading.Lock(), current_index=lambda: handle, open_index=lambda: handle)
        yield s
        s.stop()


def _connect(home: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(str(socket_path(home)))
    return sock


def _answer(sock: socket.socket) -> dict[str, object]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return dict(json.loads(data))


class Trickler:
    """A client that sends the start of a request, then one byte at a time, never finishing."""

    def __init__(self, home: Path, every: float = 0.2) -> None:
        self.sock = _connect(home)
        self.every = every
        self.stop = threading.Event()
        self.sock.sendall(b'{"text": "')
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(self.every):
            try:
                self.sock.sendall(b"a")
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


def test_a_search_beside_a_trickling_client_is_answered(server: QueryServer, config: Config) -> None:
    server.request_seconds = 3600.0  # the trickler is not cut off during this test
    assert server.start()
    slow = Trickler(config.home)
    try:
        time.sleep(0.5)  # the server is reading the trickler now
        assert ping(config.home, timeout=10.0)
        request = SearchRequest.build(text="red", limit=3)
        assert ask_daemon(config.home, request, server.lib.model_id, timeout=60.0) == []
        assert slow.thread.is_alive()  # still trickling all along
    finally:
        slow.close()


def test_a_request_has_one_deadline_not_one_per_read(server: QueryServer, config: Config) -> None:
    server.request_seconds = 0.5
    assert server.start()
    slow = Trickler(config.home, every=0.1)
    try:
        answer = _answer(slow.sock)
        assert "took longer than 0.5 s" in str(answer["unavailable"])
    finally:
        slow.close()


def test_connections_past_the_cap_are_declined_at_once(server: QueryServer, config: Config) -> None:
    server.max_connections = 2
    assert server.start()
    idle = [_connect(config.home) for _ in range(2)]
    try:
        time.sleep(0.3)  # both are taken by the server
        third = _connect(config.home)
        assert "busy" in str(_answer(third)["unavailable"])
        third.close()
    finally:
        for s in idle:
            s.close()
    deadline = time.monotonic() + 20
    while not ping(config.home) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ping(config.home)  # the idle ones gone, there is room again


def test_deep_nesting_and_long_requests_get_a_clean_decline(
    server: QueryServer, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    assert server.start()
    with caplog.at_level(logging.DEBUG, logger="photoindex.daemon"):
        deep = _connect(config.home)
        deep.sendall(b"[" * 30000 + b"]" * 30000 + b"\n")
        assert "nests deeper" in str(_answer(deep)["unavailable"])
        deep.close()
        long = _connect(config.home)
        try:
            long.sendall(b'{"text": "' + b"a" * (MAX_REQUEST + 10))
        except OSError:
            pass  # the server may close before reading it all
        assert "longer than" in str(_answer(long)["unavailable"])
        long.close()
        # A bracket inside a string is text, not nesting.
        assert "unavailable" not in server.answer(json.dumps({"ping": True, "x": "[" * 100}).encode())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_the_client_gives_up_on_a_trickling_answer_at_its_deadline(tmp_path: Path) -> None:
    """The client's timeout is for the whole answer: a daemon sending a byte at a time cannot hold a search."""
    home = tmp_path / "home"
    home.mkdir()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_path(home)))
    listener.listen(1)
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            while not stop.wait(0.1):
                try:
                    conn.sendall(b" ")
                except OSError:
                    return

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        assert ping(home, timeout=1.0) is False  # gave up at its 1 s deadline, however many bytes came
    finally:
        stop.set()
        thread.join()
        listener.close()
