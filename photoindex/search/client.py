"""`photoindex search` asks the running daemon first (see `server.py`); it imports nothing heavy.

The request and the reply are those of `protocol.py`, one JSON line each way. Anything but hits
or an error means: search locally, as if no daemon ran.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from photoindex.search.protocol import MAX_LIMIT, Hit, SearchRequest, parse_not_encoded, parse_reply

log = logging.getLogger("photoindex.search")

SOCKET_NAME = "daemon.sock"
__all__ = ["MAX_LIMIT", "Served", "ask_daemon", "ping", "serve_request", "socket_path"]
CONNECT_TIMEOUT = 0.2
ANSWER_TIMEOUT = 30.0  # generous: the daemon's first query loads the text model
_MAX_ANSWER = 64 * 1024 * 1024  # 10,000 hits of long paths fit; anything larger is garbage


def socket_path(home: Path) -> Path:
    """Where the daemon of the photoindex home `home` listens."""
    return home / SOCKET_NAME


def _exchange(path: Path, request: dict[str, Any], timeout: float) -> Any:
    """Send one request line, read one answer line and decode it; None on any failure."""
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(CONNECT_TIMEOUT)
        sock.connect(os.fspath(path))
        deadline = time.monotonic() + timeout  # for the whole answer, not per read
        sock.settimeout(timeout)
        # ensure_ascii: lone surrogates (non-UTF-8 names, arguments) travel as \udcXX escapes.
        sock.sendall(json.dumps(request, ensure_ascii=True).encode("ascii") + b"\n")
        chunks: list[bytes] = []
        size = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the daemon's answer took too long")
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if chunk.endswith(b"\n") or size > _MAX_ANSWER:
                break
        data = b"".join(chunks)
        if not data.endswith(b"\n") or size > _MAX_ANSWER:
            log.debug("%s: incomplete answer from the daemon", path)
            return None
        return json.loads(data)
    except (OSError, ValueError) as exc:  # no daemon, a stale socket, a timeout, garbage
        log.debug("%s: no answer from the daemon (%s)", path, exc)
        return None
    finally:
        sock.close()


@dataclass(frozen=True)
class Served:
    """The daemon's answer to a search: its hits, and (model name, photos not encoded yet) if it said."""

    hits: list[Hit]
    not_encoded: tuple[str, int] | None


def serve_request(
    config_home: Path, request: SearchRequest, model_id: str, timeout: float = ANSWER_TIMEOUT
) -> Served | None:
    """The daemon's answer to `request` under `model_id`, or None when it cannot answer (search locally then).

    An error the daemon's search raised (an empty query, a missing example photo) is raised here
    as the same `PhotoindexError`, so the user sees the same `error:`/`hint:` lines.
    """
    if request.offset + request.limit > MAX_LIMIT:
        return None
    answer = _exchange(socket_path(config_home), request.to_wire(model_id), timeout)
    hits = parse_reply(answer)
    if hits is None:
        log.debug("the daemon did not answer the search: %s", answer)
        return None
    return Served(hits, parse_not_encoded(answer))


def ask_daemon(
    config_home: Path, request: SearchRequest, model_id: str, timeout: float = ANSWER_TIMEOUT
) -> list[Hit] | None:
    """The daemon's hits for `request` under `model_id`, or None when it cannot answer (`serve_request`)."""
    served = serve_request(config_home, request, model_id, timeout)
    return None if served is None else served.hits


def ping(config_home: Path, timeout: float = 1.0) -> bool:
    """True when a daemon answers on the socket of `config_home`."""
    answer = _exchange(socket_path(config_home), {"ping": True}, timeout)
    return isinstance(answer, dict) and answer.get("pong") is True
