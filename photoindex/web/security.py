"""The web page's guard: Host header check, login off loopback, and security headers (docs/web.md, "Safety").

- Bound to a loopback address, the page is open to this machine only and needs no login.
- Bound to any other address, every request but the login page and the static files needs a
  session cookie, which the secret (`[web] secret`, or generated once into
  `$PHOTOINDEX_HOME/web-secret`, mode 0600) is exchanged for. The cookie is the secret's HMAC of
  a random nonce: it survives restarts, and changing the secret logs every browser out.
- The Host header must be an IP address or a known name of this machine (DNS rebinding: a page
  of another site whose name was pointed at this machine names itself in the Host header).
- Every answer carries a Content-Security-Policy without inline script, and the page makes no
  request to any other site.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any

from photoindex.errors import ConfigError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "photoindex_session"
SESSION_DAYS = 30
SECRET_FILE = "web-secret"
OPEN_PATHS = ("/login", "/static/")  # reachable without a session

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src {images}; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
CSP = _CSP.format(images="'self' blob:")
# The search page alone also shows `data:` images: the first screenful of thumbnails arrives
# inside the search's JSON answer (docs/web.md, "Speed"). An image cannot run script.
SEARCH_PAGE_CSP = _CSP.format(images="'self' blob: data:")
SEARCH_PAGE = "/"
_OTHER_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), *_OTHER_HEADERS]
_SEARCH_PAGE_HEADERS = [(b"content-security-policy", SEARCH_PAGE_CSP.encode()), *_OTHER_HEADERS]


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the page on this machine."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def web_secret(home: Path, configured: str) -> str:
    """The secret a browser gives to log in: `[web] secret`, else the home's `web-secret` file (made once, 0600)."""
    if configured.strip():
        if len(configured.strip()) < 12:
            raise ConfigError(
                "[web] secret is shorter than 12 characters", "use a longer secret, or remove it to have one generated"
            )
        return configured.strip()
    path = home / SECRET_FILE
    try:
        text = path.read_text(encoding="utf-8").strip()
        if text:
            return text
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the web secret: {exc.strerror or exc}", "fix its permissions") from None
    home.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")
    return value


def machine_names(extra: Iterable[str] = ()) -> set[str]:
    """Names this machine may be reached by: localhost, its host name (and `.local`), its FQDN, and `extra`."""
    names = {"localhost"}
    host = socket.gethostname()
    if host:
        names |= {host, f"{host}.local"}
    try:
        names.add(socket.getfqdn())
    except OSError:
        pass
    names |= set(extra)
    return {n.lower().rstrip(".") for n in names if n}


def host_allowed(header: str, names: set[str]) -> bool:
    """Whether a Host header names this machine: any IP address literal (rebinding needs a name), or a known name."""
    header = header.strip()
    if not header:
        return False
    if header.startswith("["):
        end = header.find("]")
        name = header[1:end] if end > 0 else ""
    else:
        name = header.rsplit(":", 1)[0] if header.count(":") == 1 else header
    name = name.lower().rstrip(".")
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return name in names


class Sessions:
    """Session cookies signed with the secret: `nonce.mac`, no server-side state."""

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"photoindex-web-session\0" + secret.encode()).digest()
        self._secret = secret

    def check_secret(self, given: str) -> bool:
        """Whether `given` is the secret (constant time)."""
        return hmac.compare_digest(given.strip().encode(), self._secret.encode())

    def new(self) -> str:
        """A fresh session token."""
        nonce = secrets.token_urlsafe(18)
        return f"{nonce}.{self._mac(nonce)}"

    def valid(self, token: str | None) -> bool:
        """Whether a cookie's token was made by `new` with this secret."""
        if not token or token.count(".") != 1:
            return False
        nonce, mac = token.split(".")
        return hmac.compare_digest(mac, self._mac(nonce))

    def _mac(self, nonce: str) -> str:
        digest = hmac.new(self._key, nonce.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _cookie(headers: list[tuple[bytes, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key == b"cookie":
            for part in value.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                if k == name:
                    return v
    return None


class Guard:
    """ASGI middleware in front of the whole app: Host check, login when required, security headers."""

    def __init__(self, app: ASGIApp, *, names: set[str], sessions: Sessions | None) -> None:
        self.app = app
        self.names = names
        self.sessions = sessions  # None: loopback, no login

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        host = next((v.decode("latin-1") for k, v in headers if k == b"host"), "")
        if not host_allowed(host, self.names):
            await _plain(send, 400, "unknown host name: add it to [web] allowed_hosts in config.toml")
            return
        if scope["method"] not in ("GET", "HEAD") and _cross_site(headers, host):
            await _plain(send, 403, "cross-site request refused")
            return
        path: str = scope.get("path", "")
        if self.sessions is not None and not path.startswith(OPEN_PATHS):
            if not self.sessions.valid(_cookie(headers, COOKIE)):
                if path.startswith("/api/"):
                    await _plain(send, 401, "log in first: open the page and give the secret")
                else:
                    await _redirect(send, "/login")
                return

        added = _SEARCH_PAGE_HEADERS if path == SEARCH_PAGE else SECURITY_HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + added
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _cross_site(headers: list[tuple[bytes, bytes]], host: str) -> bool:
    """Whether a request that changes something came from another site's page (the browser says so)."""
    fetch_site = next((v for k, v in headers if k == b"sec-fetch-site"), None)
    if fetch_site is not None and fetch_site not in (b"same-origin", b"none"):
        return True
    origin = next((v.decode("latin-1") for k, v in headers if k == b"origin"), None)
    return origin not in (None, "null", f"http://{host}", f"https://{host}")


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                        *SECURITY_HEADERS],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location.encode()), (b"content-length", b"0"), *SECURITY_HEADERS],
        }
    )
    await send({"type": "http.response.body", "body": b""})
