"""The daemon answers searches over a Unix socket, so `photoindex search` skips loading the model.

A served search costs a warm query (tens of milliseconds) instead of a cold start (imports, the
text model, the index file). The protocol is one JSON object per line each way (`protocol.py`).
The socket lives in the photoindex home with mode 0600 and
only connections from the daemon's own user are answered: a request names a query, never code.

Queries run one at a time in the server's thread. The daemon's main thread adds vectors to the
same in-memory index while indexing; `VectorIndex.search` is safe beside `add`, but a catch-up
from SQLite (`IndexHandle.refresh`) is not, so it runs only when the daemon's work lock is free.
When it is busy (a unit of work runs), the query searches the index as it stands; hits are
resolved through SQLite in any case, so a deleted photo never comes back.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from photoindex.errors import PhotoindexError
from photoindex.search.client import socket_path
from photoindex.search.protocol import (
    Declined,
    SearchRequest,
    parse_request,
    reply_error,
    reply_hits,
    reply_unavailable,
)

if TYPE_CHECKING:
    from photoindex.library import Library
    from photoindex.search.protocol import Hit
    from photoindex.vectors.cache import IndexHandle

log = logging.getLogger("photoindex.daemon")

MAX_REQUEST = 64 * 1024  # bytes of one request line; a query is a few sentences and paths

_ACCEPT_TIMEOUT = 0.5  # how often the accept loop looks at the stop flag
_READ_TIMEOUT = 5.0  # a client that connects and says nothing does not hold the server
_HANDLE_WAIT = 10.0  # before the first unit of work opens the index: wait this long, then decline
TEXT_IDLE_SECONDS = 600.0  # the text model (~300 MB for ViT-B/32 fp32) is released after this long unused


__all__ = ["Declined", "QueryServer", "parse_request"]


def _peer_uid(conn: socket.socket) -> int | None:
    """The connecting process's uid (Linux SO_PEERCRED), or None where the platform does not say."""
    if not sys.platform.startswith("linux"):
        return None
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class QueryServer:
    """Answers search requests on `socket_path(home)` in its own thread, over the daemon's library and index.

    `work_lock` is held by the daemon around each unit of work (and index refresh/save);
    `current_index()` returns the daemon's open `IndexHandle` or None, and `open_index()` opens it
    (and keeps it in the daemon); call the latter only while holding `work_lock`.
    """

    def __init__(
        self,
        lib: Library,
        *,
        work_lock: threading.Lock,
        current_index: Callable[[], IndexHandle | None],
        open_index: Callable[[], IndexHandle],
    ) -> None:
        self.lib = lib
        self.path = socket_path(lib.config.home)
        self.served = 0
        self.text_idle_seconds = TEXT_IDLE_SECONDS
        self._last_query = 0.0  # when the text model was last used (0: not loaded by us)
        self._work_lock = work_lock
        self._current_index = current_index
        self._open_index = open_index
        self._sock: socket.socket | None = None
        self._inode: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ life cycle

    def start(self) -> bool:
        """Bind the socket (replacing a stale one) and start answering; False (logged) when it cannot.

        Call it from the main thread before other threads create files: the umask is process-wide.
        """
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # Only the daemon that holds daemon.lock gets here, so an existing file is a dead daemon's.
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            old = os.umask(0o177)
            try:
                sock.bind(str(self.path))
            finally:
                os.umask(old)
            os.chmod(self.path, 0o600)
            self._inode = os.stat(self.path).st_ino
            sock.listen(8)
            sock.settimeout(_ACCEPT_TIMEOUT)
        except OSError as exc:
            sock.close()
            log.warning(
                "%s: cannot serve searches (%s); `photoindex search` works without the daemon",
                self.path,
                exc.strerror or exc,
            )
            return False
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, name="photoindex-queries", daemon=True)
        self._thread.start()
        log.info("serving searches on %s", self.path)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Stop answering (a query in progress finishes first), close and remove the socket."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            try:
                if os.stat(self.path).st_ino == self._inode:
                    self.path.unlink()
            except OSError:
                pass

    # ------------------------------------------------------------ the loop

    def _serve(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                self._release_idle_model()
                continue
            except OSError as exc:
                if self._stop.is_set():
                    return
                log.warning("%s: accepting a search failed (%s)", self.path, exc.strerror or exc)
                time.sleep(_ACCEPT_TIMEOUT)
                continue
            try:
                self._handle(conn)
            except Exception:  # one bad request never stops the server (nor the daemon)
                log.exception("a search request failed")
            finally:
                conn.close()

    def _release_idle_model(self) -> None:
        # A board has little memory: a model nobody asked for in minutes goes, and comes back
        # (one slower query) when needed.
        if self._last_query and time.monotonic() - self._last_query > self.text_idle_seconds:
            if self.lib.release_text_encoder():
                log.info("released the text model after %.0f s without searches", self.text_idle_seconds)
            self._last_query = 0.0

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(_READ_TIMEOUT)
        uid = _peer_uid(conn)
        if uid is not None and uid != os.getuid():
            log.warning("%s: refused a search from uid %d", self.path, uid)
            return
        buf = b""
        try:
            while b"\n" not in buf and len(buf) <= MAX_REQUEST:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                buf += chunk
        except OSError:
            return  # the client gave up or said nothing in time; it searches by itself
        line = buf.split(b"\n", 1)[0]
        if len(line) > MAX_REQUEST:
            answer: dict[str, Any] = reply_unavailable("the request is too long")
        else:
            answer = self.answer(line)
        try:
            # ensure_ascii: a non-UTF-8 file name (lone surrogates) travels as \udcXX and comes back exact.
            conn.sendall(json.dumps(answer, ensure_ascii=True).encode("ascii") + b"\n")
        except OSError:
            pass  # the client timed out meanwhile; it searched by itself

    def answer(self, line: bytes) -> dict[str, Any]:
        """The response object for one request line."""
        try:
            data = json.loads(line)
        except ValueError:
            return reply_unavailable("the request is not JSON")
        if isinstance(data, dict) and data.get("ping") is True:
            return {"pong": True}
        started = time.perf_counter()
        try:
            request, model = parse_request(data)
            if model != self.lib.model_id:
                raise Declined(f"the daemon searches model {self.lib.model_id}, not {model}")
            answer = reply_hits(self.search(request))
        except Declined as why:
            log.debug("declined a search: %s", why)
            return reply_unavailable(why)
        except PhotoindexError as exc:
            log.info("served a search: error: %s", exc.message)
            return reply_error(exc)
        self.served += 1
        log.info("served a search: %d hit(s) in %.0f ms", len(answer["hits"]), (time.perf_counter() - started) * 1000)
        return answer

    # ------------------------------------------------------------ the search

    def search(self, request: SearchRequest) -> list[Hit]:
        """Run one request as `photoindex search` would (same vector, same hits); may raise `Declined`.

        An example photo is looked up, never decoded here (`query.search(encode_images=False)`).
        """
        from photoindex.search.query import search

        if any(t.text is not None for t in request.terms):
            self._last_query = time.monotonic()
        handle = self._index() if request.has_query else None
        return search(self.lib, request, index=handle, encode_images=False)

    def _index(self) -> IndexHandle:
        """The daemon's index, caught up with SQLite when no unit of work runs (else as it stands)."""
        deadline = time.monotonic() + _HANDLE_WAIT
        while True:
            if self._work_lock.acquire(blocking=False):
                try:
                    handle = self._current_index()
                    if handle is None:
                        return self._open_index()  # opening includes the catch-up
                    handle.refresh()  # vectors a `photoindex index` committed meanwhile
                    return handle
                finally:
                    self._work_lock.release()
            handle = self._current_index()
            if handle is not None:
                return handle
            # The first unit of work is opening it right now: wait rather than load a second copy.
            if time.monotonic() >= deadline or self._stop.is_set():
                raise Declined("the daemon is still opening the index")
            time.sleep(0.05)
