"""The daemon answers searches over a Unix socket, so `photoindex search` skips loading the model.

A served search costs a warm query (tens of milliseconds) instead of a cold start (imports, the
text model, the index file). The protocol is one JSON object per line each way (`protocol.py`).
The socket lives in the photoindex home with mode 0600 and
only connections from the daemon's own user are answered: a request names a query, never code.

Each connection is read in a thread of its own, up to `MAX_CONNECTIONS` at once (one more is
declined at once), with a deadline for the whole request (`REQUEST_SECONDS`, not per read) and
limits on its size and nesting, each answered with a clean `{"unavailable": why}`: a client that
trickles bytes or says nothing holds only its own thread, never another user's search.

Queries run one at a time (a lock around the search). The daemon's main thread adds vectors to the
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

MAX_NESTING = 8  # brackets deep; a request is one flat object
MAX_CONNECTIONS = 16  # connections read or answered at once; one more is declined
REQUEST_SECONDS = 5.0  # to send the whole request line; a trickling client is cut off then
_SEND_SECONDS = 5.0  # to take the answer

_ACCEPT_TIMEOUT = 0.5  # how often the accept loop looks at the stop flag
_HANDLE_WAIT = 10.0  # before the first unit of work opens the index: wait this long, then decline
TEXT_IDLE_SECONDS = 600.0  # the text model (~300 MB for ViT-B/32 fp32) is released after this long unused


__all__ = ["Declined", "QueryServer", "parse_request"]


def nesting_depth(raw: bytes) -> int:
    """How deeply arrays and objects nest in a JSON text (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _relative_to(env: dict[str, str], cwd: str) -> str | None:
    """The first of the caller's PHOTOINDEX_* variables that names a path relative to its folder
    `cwd`, when that is not this process's folder (loaded here, it would name another file)."""
    try:
        if os.path.samefile(cwd, os.getcwd()):
            return None
    except OSError:
        pass
    for name in ("PHOTOINDEX_CONFIG", "PHOTOINDEX_RUNTIME_MODEL_CACHE", "PHOTOINDEX_MODEL_BUNDLE"):
        value = env.get(name, "").strip()
        if not value or os.path.isabs(value) or value.startswith("~") or value.lower() in ("off", "false", "no", "0"):
            continue
        # A bundle is a name unless it looks like a path or names a folder there (config._bundle_spec).
        if name != "PHOTOINDEX_MODEL_BUNDLE" or "/" in value or value.startswith(".") \
                or os.path.isdir(os.path.join(cwd, value)):
            return name
    return None


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
        self._work_lock = work_lock
        self._current_index = current_index
        self._open_index = open_index
        self.max_connections = MAX_CONNECTIONS
        self.request_seconds = REQUEST_SECONDS
        self._sock: socket.socket | None = None
        self._inode: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._open = threading.BoundedSemaphore(MAX_CONNECTIONS)  # replaced in start() by the cap set then
        self._searching = threading.Lock()  # one query at a time (the text model, the index catch-up)
        self._declined_busy = 0

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
            sock.listen(64)
            sock.settimeout(_ACCEPT_TIMEOUT)
            self._open = threading.BoundedSemaphore(self.max_connections)
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
        """Stop answering (a query in progress finishes, reading connections give up), close and remove the socket."""
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
                self.release_idle_model()
                continue
            except OSError as exc:
                if self._stop.is_set():
                    return
                log.warning("%s: accepting a search failed (%s)", self.path, exc.strerror or exc)
                time.sleep(_ACCEPT_TIMEOUT)
                continue
            if not self._open.acquire(blocking=False):
                self._decline_busy(conn)
                continue
            try:
                threading.Thread(target=self._connection, args=(conn,), name="photoindex-query", daemon=True).start()
            except RuntimeError:  # no thread to be had: decline this one
                self._open.release()
                self._decline_busy(conn)

    def _connection(self, conn: socket.socket) -> None:
        try:
            self._handle(conn)
        except Exception:  # one bad request never stops the server (nor the daemon)
            log.exception("a search request failed")
        finally:
            conn.close()
            self._open.release()

    def _decline_busy(self, conn: socket.socket) -> None:
        """Too many connections at once: say so without reading (the client searches by itself)."""
        self._declined_busy += 1
        if self._declined_busy in (1, 10, 100) or self._declined_busy % 1000 == 0:
            log.warning(
                "%s: %d connections at once, declined %d search(es) so far",
                self.path,
                self.max_connections,
                self._declined_busy,
            )
        try:
            conn.setblocking(False)
            conn.send(b'{"unavailable": "the daemon is busy with other connections"}\n')
        except OSError:
            pass
        finally:
            conn.close()

    def release_idle_model(self, now: float | None = None) -> bool:
        """Drop the text model when nobody used it for `text_idle_seconds`; True if it was dropped.

        A board has little memory: a model nobody asked for in minutes goes, and comes back (one
        slower query) when needed. Every use counts, whoever made it (this socket, the daemon's
        web page, the OCR gate): the library records it in `text_encoder()`.
        """
        if self.lib.release_text_encoder(unused_for=self.text_idle_seconds, now=now):
            log.info("released the text model after %.0f s without searches", self.text_idle_seconds)
            return True
        return False

    def _handle(self, conn: socket.socket) -> None:
        uid = _peer_uid(conn)
        if uid is not None and uid != os.getuid():
            log.warning("%s: refused a search from uid %d", self.path, uid)
            return
        answer = self._read(conn)
        if answer is None:
            return  # the client hung up
        if isinstance(answer, bytes):
            answer = self.answer(answer)
        try:
            conn.settimeout(_SEND_SECONDS)
            # ensure_ascii: a non-UTF-8 file name (lone surrogates) travels as \udcXX and comes back exact.
            conn.sendall(json.dumps(answer, ensure_ascii=True).encode("ascii") + b"\n")
        except OSError:
            pass  # the client timed out meanwhile; it searched by itself

    def _read(self, conn: socket.socket) -> bytes | dict[str, Any] | None:
        """The request line, a decline (too long, too slow), or None when the client hung up first."""
        deadline = time.monotonic() + self.request_seconds
        buf = b""
        while b"\n" not in buf:
            if len(buf) > MAX_REQUEST:
                return reply_unavailable(f"the request is longer than {MAX_REQUEST} bytes")
            left = deadline - time.monotonic()
            if left <= 0 or self._stop.is_set():
                return reply_unavailable(f"the request took longer than {self.request_seconds:g} s to arrive")
            conn.settimeout(min(left, _ACCEPT_TIMEOUT))
            try:
                chunk = conn.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return None
            if not chunk:
                if not buf:
                    return None
                break  # a last line without its newline
            buf += chunk
        line = buf.split(b"\n", 1)[0]
        if len(line) > MAX_REQUEST:
            return reply_unavailable(f"the request is longer than {MAX_REQUEST} bytes")
        return line

    def answer(self, line: bytes) -> dict[str, Any]:
        """The response object for one request line."""
        if nesting_depth(line) > MAX_NESTING:
            return reply_unavailable(f"the request nests deeper than {MAX_NESTING} levels")
        try:
            data = json.loads(line)
        except (ValueError, RecursionError):
            return reply_unavailable("the request is not JSON")
        if isinstance(data, dict) and data.get("ping") is True:
            return {"pong": True}
        started = time.perf_counter()
        try:
            if isinstance(data, dict) and "cli" in data:
                return self.answer_command(data["cli"], started)
            request, model = parse_request(data)
            if model != self.lib.model_id:
                raise Declined(f"the daemon searches model {self.lib.model_id}, not {model}")
            with self._searching:
                answer = reply_hits(self.search(request), self.not_encoded())
        except Declined as why:
            log.debug("declined a search: %s", why)
            return reply_unavailable(why)
        except PhotoindexError as exc:
            log.info("served a search: error: %s", exc.message)
            return reply_error(exc)
        self.served += 1
        log.info("served a search: %d hit(s) in %.0f ms", len(answer["hits"]), (time.perf_counter() - started) * 1000)
        return answer

    def answer_command(self, data: Any, started: float) -> dict[str, Any]:
        """The reply to `photoindex search`'s own options (`{"cli": {"options", "cwd", "env", "home"}}`).

        The command's client parses its arguments and sends them with its working folder and its
        `PHOTOINDEX_*` variables; the configuration is loaded here, for that caller, so its
        defaults (`[search] limit`, `min_score`) are the caller's own and the client imports
        nothing but the standard library (docs/daemon.md, "Searches served by the daemon"). A
        caller whose configuration names another home, catalog or model, turns the daemon off or
        does not load is declined (so is one whose HOME, or a relative path it names, would mean
        other files here): the search then runs in the caller's process, which says what it must.
        When nothing is found, the reply says why (`no_hits`), from the catalog, as the command would.
        Raises `Declined` and `PhotoindexError` like `answer`'s own requests.
        """
        from pathlib import Path

        from photoindex.config import load_config
        from photoindex.errors import ConfigError, ModelError
        from photoindex.library import bundle_for
        from photoindex.search.protocol import request_from_options

        if not isinstance(data, dict):
            raise Declined("the command is an object")
        env, home, cwd = data.get("env"), data.get("home"), data.get("cwd")
        if not isinstance(env, dict) or not all(isinstance(k, str) and k.startswith("PHOTOINDEX_")
                                                and isinstance(v, str) for k, v in env.items()):
            raise Declined("env holds the caller's PHOTOINDEX_* variables")
        if not isinstance(home, str) or not isinstance(cwd, str) or not os.path.isabs(home):
            raise Declined("home and cwd are absolute paths")
        if data.get("user_home") != os.environ.get("HOME"):
            raise Declined("the caller's HOME is not the daemon's (~ would mean another folder)")
        relative = _relative_to(env, cwd)
        if relative is not None:
            raise Declined(f"the caller's {relative} is relative to its folder, which is not the daemon's")
        try:
            cfg = load_config(environ=env, home=Path(home))
            model_id = bundle_for(cfg).manifest.model_id
        except (ConfigError, ModelError) as exc:
            raise Declined(f"the caller's configuration: {exc}") from None
        mine = self.lib.config
        if cfg.home != mine.home or cfg.catalog != mine.catalog or not cfg.search.use_daemon:
            raise Declined("the caller's configuration names another library, or turns the daemon off")
        if model_id != self.lib.model_id:
            raise Declined(f"the daemon searches model {self.lib.model_id}, not {model_id}")
        request = request_from_options(
            data.get("options"), cwd=cwd, defaults=lambda: (cfg.search.limit, cfg.search.min_score)
        )
        from photoindex.search.query import command_reply

        with self._searching:
            hits = self.search(request)
            answer = command_reply(cfg, request, hits, self.not_encoded())
        self.served += 1
        log.info("served a search: %d hit(s) in %.0f ms", len(hits), (time.perf_counter() - started) * 1000)
        return answer

    # ------------------------------------------------------------ the search

    def search(self, request: SearchRequest) -> list[Hit]:
        """Run one request as `photoindex search` would (same vector, same hits); may raise `Declined`.

        An example photo is looked up, never decoded here (`query.search(encode_images=False)`).
        """
        from photoindex.search.query import search

        handle = self._index() if request.has_query else None
        return search(self.lib, request, index=handle, encode_images=False)

    def not_encoded(self) -> tuple[str, int]:
        """(model name, indexed photos it has not encoded yet): the warning `photoindex search` prints."""
        from photoindex.catalog import reads

        with self.lib.db.reads() as con:
            return self.lib.bundle.manifest.name, reads.photos_without_vector(con, self.lib.model_id)

    def index_for_query(self) -> IndexHandle:
        """The index to search for a query of another front end (the daemon's web page); `PhotoindexError` when busy."""
        try:
            return self._index()
        except Declined as why:
            raise PhotoindexError(str(why), "try again in a moment") from None

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
