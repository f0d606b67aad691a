"""Running the web page: `photoindex serve` in the foreground, or a thread of the daemon (`[web] listen`).

uvicorn serves the app on a socket bound here first, so a port in use is a `PhotoindexError`
with a hint (not an exit deep in a library) and `--port 0` picks a free one. Off loopback a
secret is required (see `security.py`).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from photoindex.errors import ConfigError, PhotoindexError
from photoindex.web.security import is_loopback, web_secret

if TYPE_CHECKING:
    from photoindex.config import Config
    from photoindex.library import Library
    from photoindex.vectors.cache import IndexHandle
    from photoindex.web.service import WebService

log = logging.getLogger("photoindex.web")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


@dataclass(frozen=True)
class Listening:
    """Where the page is served, and whether a browser must log in."""

    url: str
    login: bool
    secret_file: str | None  # where the generated secret is kept (None: set in the config, or no login)


def parse_listen(value: str) -> tuple[str, int]:
    """`[web] listen` ("HOST:PORT", "[::1]:PORT" or ":PORT") as (host, port)."""
    text = value.strip()
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"[web] listen = {value!r} is not HOST:PORT", 'e.g. listen = "127.0.0.1:8765"')
    return (host.strip("[]") or DEFAULT_HOST), int(port)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port; `PhotoindexError` naming the problem when it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PhotoindexError(
            f"cannot listen on {host}: {exc.strerror or exc}", "give an IP address or a name of this machine"
        ) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise PhotoindexError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            "another program (or photoindex daemon with [web] listen) uses the port: choose another with --port",
        ) from None
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = host if host not in ("0.0.0.0", "::", "") else socket.gethostname()
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def _app(service: WebService, host: str) -> tuple[Any, bool, str | None]:
    from photoindex.web.app import create_app

    config = service.config
    login = not is_loopback(host)
    secret = web_secret(config.home, config.web.secret) if login else None
    secret_file = str(config.home / "web-secret") if login and not config.web.secret.strip() else None
    return create_app(service, login=login, secret=secret), login, secret_file


def _uvicorn(app: Any) -> Any:
    import uvicorn

    return uvicorn.Server(
        uvicorn.Config(
            app,
            lifespan="off",
            log_config=None,  # the CLI's or the daemon's logging stays as it is
            log_level="warning",
            access_log=False,
            proxy_headers=False,  # nothing in front of it is trusted to say who the client is
            server_header=False,
            timeout_keep_alive=5,
            limit_concurrency=64,
        )
    )


def serve(
    config: Config, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, on_ready: Callable[[Listening], None]
) -> None:
    """`photoindex serve`: serve the page until Ctrl-C/SIGTERM, over a library of its own."""
    from photoindex.library import open_library
    from photoindex.web.service import WebService

    sock = bind(host, port)
    try:
        with open_library(config) as lib:
            service = WebService(lib)
            app, login, secret_file = _app(service, host)
            server = _uvicorn(app)
            with lib.answering_queries():  # the text model loads while the page is opened
                on_ready(Listening(_url(sock, host), login, secret_file))
                server.run(sockets=[sock])
    finally:
        sock.close()


class WebThread:
    """The page served from a thread of the daemon, over the daemon's library and index."""

    def __init__(self, lib: Library, index: Callable[[], IndexHandle], listen: str) -> None:
        from photoindex.web.service import WebService

        self.host, self.port = parse_listen(listen)
        self.service = WebService(lib, index=index)
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.url: str | None = None

    def start(self) -> Listening:
        """Bind and start serving; raises `PhotoindexError` when the address cannot be had."""
        sock = bind(self.host, self.port)
        try:
            app, login, secret_file = _app(self.service, self.host)
        except BaseException:
            sock.close()
            raise
        self._server = _uvicorn(app)
        self.url = _url(sock, self.host)

        def run() -> None:
            try:
                self._server.run(sockets=[sock])
            except Exception:  # the page failing never stops the daemon
                log.exception("the web page stopped on an unexpected error")
            finally:
                sock.close()

        self._thread = threading.Thread(target=run, name="photoindex-web", daemon=True)
        self._thread.start()
        return Listening(self.url, login, secret_file)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving (requests in progress get `timeout` seconds)."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
