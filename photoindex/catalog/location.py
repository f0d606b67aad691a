"""Where the catalog lives: the SQLite file in the home, or a PostgreSQL server named by `[catalog] url`.

Plain string work, no SQLAlchemy: `photoindex search` on SQLite decides its back end with this
alone. A URL may carry a password; it is never shown as given (`masked`), and where it is left
out, libpq finds it in the environment (PGPASSWORD) or `~/.pgpass` (see docs/scale.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

from photoindex.errors import ConfigError

_POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
DRIVER_SCHEME = "postgresql+psycopg"


@dataclass(frozen=True)
class CatalogLocation:
    """A catalog's place: `path` for SQLite, else `url` (normalised to the psycopg driver) for PostgreSQL."""

    path: Path | None = None
    url: str | None = None

    @property
    def is_postgres(self) -> bool:
        """Whether the catalog is on a PostgreSQL server."""
        return self.url is not None

    @property
    def shown(self) -> str:
        """What messages and `status` show: the file, or the URL with its password masked."""
        return str(self.path) if self.url is None else masked(self.url)

    @property
    def host(self) -> str:
        """The server a PostgreSQL URL names (host:port, a socket folder, or libpq's default)."""
        assert self.url is not None
        parts = urlsplit(self.url)
        host = parts.hostname or (parse_qs(parts.query).get("host") or [""])[0] or "localhost (libpq default)"
        return f"{host}:{parts.port}" if parts.port else host


def is_postgres_url(url: str) -> bool:
    """Whether `url` names a PostgreSQL catalog (`postgresql://`, `postgres://`, `postgresql+psycopg://`)."""
    return urlsplit(url.strip()).scheme.lower() in _POSTGRES_SCHEMES


def masked(url: str) -> str:
    """`url` with its password replaced by `***` (the only spelling of a URL photoindex prints or logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def parse_location(url: str, default_path: Path) -> CatalogLocation:
    """The catalog `url` names: "" is the SQLite file `default_path`, `sqlite:///PATH` another file."""
    text = url.strip()
    if not text:
        return CatalogLocation(path=default_path)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme in _POSTGRES_SCHEMES:
        return CatalogLocation(url=urlunsplit((DRIVER_SCHEME, *parts[1:])))
    if scheme == "sqlite":
        if not parts.path or parts.path == "/":
            raise ConfigError(f"[catalog] url = {text!r} names no file", "write sqlite:////absolute/path/photoindex.db")
        return CatalogLocation(path=Path(parts.path[1:]).expanduser())  # sqlite:////abs or sqlite:///relative
    raise ConfigError(
        f"[catalog] url = {masked(text)!r} is neither a SQLite nor a PostgreSQL URL",
        "leave it empty (the SQLite file in the home) or write postgresql://USER@HOST/DATABASE",
    )
