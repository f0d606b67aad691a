"""`photoindex search` asks the running daemon first (see `server.py`); it imports nothing heavy.

The request and the reply are those of `protocol.py`, one JSON line each way. Anything but hits
or an error means: search locally, as if no daemon ran.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from photoindex.search import wire
from photoindex.search.protocol import MAX_LIMIT, Hit, SearchRequest, parse_not_encoded, parse_reply

log = logging.getLogger("photoindex.search")

__all__ = ["MAX_LIMIT", "Served", "ask_daemon", "ping", "serve_request", "socket_path"]
ANSWER_TIMEOUT = wire.ANSWER_TIMEOUT


def socket_path(home: Path) -> Path:
    """Where the daemon of the photoindex home `home` listens."""
    return home / wire.SOCKET_NAME


def _exchange(path: Path, request: dict[str, Any], timeout: float) -> Any:
    """`wire.exchange`, or None on any failure (logged for debugging)."""
    if not path.exists():
        return None
    try:
        return wire.exchange(os.fspath(path), request, timeout)
    except (OSError, ValueError) as exc:  # no daemon, a stale socket, a timeout, garbage
        log.debug("%s: no answer from the daemon (%s)", path, exc)
        return None


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
