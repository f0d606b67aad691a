"""One request and its answer on the daemon's socket: a JSON line each way (`protocol.py`).

Standard library only, and only what this needs (socket, json, time): the served path of
`photoindex search` (`cli/served.py`) imports it before anything else, and its whole start-up is
what a served search costs (docs/daemon.md, "Searches served by the daemon").
"""

from __future__ import annotations

import json
import socket
import time

SOCKET_NAME = "daemon.sock"  # in the photoindex home
CONNECT_TIMEOUT = 0.2
ANSWER_TIMEOUT = 30.0  # generous: the daemon's first query loads the text model
MAX_ANSWER = 64 * 1024 * 1024  # 10,000 hits of long paths fit; anything larger is garbage


def exchange(path: str, request: dict[str, object], timeout: float = ANSWER_TIMEOUT) -> object:
    """Send `request` as one line to the socket at `path`, read one answer line and decode it.

    Raises OSError (no daemon, a stale socket, a timeout, an incomplete answer) or ValueError (garbage).
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        sock.connect(path)
        deadline = time.monotonic() + timeout  # for the whole answer, not per read
        # ensure_ascii: lone surrogates (non-UTF-8 names, arguments) travel as \udcXX escapes.
        sock.sendall(json.dumps(request, ensure_ascii=True).encode("ascii") + b"\n")
        chunks: list[bytes] = []
        size = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the daemon's answer took too long")
            sock.settimeout(left)
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if chunk.endswith(b"\n") or size > MAX_ANSWER:
                break
    finally:
        sock.close()
    data = b"".join(chunks)
    if not data.endswith(b"\n") or size > MAX_ANSWER:
        raise ConnectionError("an incomplete answer from the daemon")
    return json.loads(data)
