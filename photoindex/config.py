"""Configuration: frozen values from `config.toml` and `PHOTOINDEX_*` environment overrides.

Precedence, lowest first: built-in defaults, the config file (`PHOTOINDEX_CONFIG`, else
`$PHOTOINDEX_HOME/config.toml`), then `PHOTOINDEX_<SECTION>_<KEY>` variables. `PHOTOINDEX_HOME`
moves all state (database, index files, model bundles, lock and daemon status).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photoindex.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif")


@dataclass(frozen=True)
class ModelConfig:
    """`[model]`: which bundle encodes photos and queries."""

    bundle: str = "clip-vit-b32"


@dataclass(frozen=True)
class RuntimeConfig:
    """`[runtime]`: where each encoder runs ("auto" | "npu" | "cpu") and CPU threads (0 = all cores)."""

    image: str = "auto"
    text: str = "auto"
    threads: int = 0
    # Fast-loading copies of the ONNX models (see photoindex.modelcache): "" = the home's
    # cache/models folder (filled in by load_config), "off" = load the bundle's files directly.
    model_cache: str = ""

    @property
    def model_cache_dir(self) -> Path | None:
        """Where fast-loading model copies go, or None when they are off (or no folder was set)."""
        value = self.model_cache.strip()
        return None if value.lower() in ("", "off", "false", "no", "0") else Path(value).expanduser()


@dataclass(frozen=True)
class IndexConfig:
    """`[index]`: vector index backend and encoding pipeline sizes."""

    backend: str = "faiss"  # "faiss" | "numpy"
    approximate_threshold: int = 200_000  # above this many vectors use an approximate FAISS index
    batch_size: int = 16
    workers: int = 0  # decode worker processes; 0 = number of cores
    decode_timeout: float = 60.0
    # A photo missing this long from a root that is present is forgotten, with its vector; 0 = never.
    forget_missing_after_days: float = 30.0


@dataclass(frozen=True)
class ScanConfig:
    """`[scan]`: which files under the roots are photos."""

    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    exclude: tuple[str, ...] = ()
    include_hidden: bool = False
    follow_symlinks: bool = True
    max_image_pixels: int = 178_956_970  # Pillow's hard limit (2x its warning level); raise for panoramas


@dataclass(frozen=True)
class DaemonConfig:
    """`[daemon]`: watching, settling, batching and periodic rescans."""

    settle_seconds: float = 2.0
    max_batch_wait: float = 5.0
    rescan_interval: float = 3600.0
    polling_roots: tuple[str, ...] = ()  # roots to poll instead of inotify (network folders)
    poll_interval: float = 60.0
    log_level: str = "INFO"


@dataclass(frozen=True)
class SearchConfig:
    """`[search]`: defaults for `photoindex search`."""

    limit: int = 20
    min_score: float = -1.0  # cosine scores lie in [-1, 1]: -1 keeps every result
    use_daemon: bool = True  # ask the running daemon (warm model and index) before searching in-process


@dataclass(frozen=True)
class Config:
    """All configuration, a value passed to the core (never a global)."""

    home: Path
    config_file: Path | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    scan: ScanConfig = field(default_factory=ScanConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    search: SearchConfig = field(default_factory=SearchConfig)

    @property
    def db_path(self) -> Path:
        """The SQLite catalog file."""
        return self.home / "photoindex.db"

    @property
    def index_dir(self) -> Path:
        """The folder of the FAISS index files (a rebuildable cache)."""
        return self.home / "index"

    @property
    def models_dir(self) -> Path:
        """Where shipped bundles are fetched to (`models/NAME/`)."""
        return self.home / "models"

    @property
    def lock_path(self) -> Path:
        """The single-writer lock file."""
        return self.home / "writer.lock"

    @property
    def daemon_state_path(self) -> Path:
        """The daemon's status file (pid, queue, last batch), read by `photoindex status`."""
        return self.home / "daemon.json"


_SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "runtime": RuntimeConfig,
    "index": IndexConfig,
    "scan": ScanConfig,
    "daemon": DaemonConfig,
    "search": SearchConfig,
}


def default_home() -> Path:
    """`PHOTOINDEX_HOME`, else the platform's user data folder."""
    env = os.environ.get("PHOTOINDEX_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_path

    return user_data_path("photoindex", appauthor=False)


def _coerce(value: Any, default: Any, where: str) -> Any:
    """Turn a TOML or environment value into the type of the field's default."""
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if isinstance(default, int):
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, tuple):
            if isinstance(value, str):
                items = [v.strip() for v in value.split(",") if v.strip()]
            elif isinstance(value, list):
                items = [str(v) for v in value]
            else:
                raise ValueError(value)
            return tuple(items)
        if isinstance(default, str):
            if not isinstance(value, (str, int, float)):
                raise ValueError(value)
            return str(value)
    except (TypeError, ValueError):
        kind = type(default).__name__ if not isinstance(default, tuple) else "list of strings"
        raise ConfigError(f"{where}: {value!r} is not a valid {kind}", "fix the value or remove it") from None
    return value


def _section(cls: type, values: Mapping[str, Any], where: str) -> Any:
    defaults = cls()
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))}",
            f"known keys: {', '.join(sorted(known))} (see config.example.toml)",
        )
    kwargs = {k: _coerce(v, getattr(defaults, k), f"{where}.{k}") for k, v in values.items()}
    return dataclasses.replace(defaults, **kwargs)


def load_config(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> Config:
    """Build the configuration from defaults, the config file and the environment."""
    env = os.environ if environ is None else environ
    if home is None:
        home = Path(env["PHOTOINDEX_HOME"]).expanduser() if env.get("PHOTOINDEX_HOME") else default_home()
    explicit = config_file or (
        Path(env["PHOTOINDEX_CONFIG"]).expanduser() if env.get("PHOTOINDEX_CONFIG") else None
    )
    path = explicit or home / "config.toml"
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"{path}: invalid TOML: {exc}", "fix the syntax, or start again with `photoindex init`"
            ) from None
    elif explicit is not None:
        raise ConfigError(f"{path}: config file not found", "check PHOTOINDEX_CONFIG or --config")
    unknown = set(data) - set(_SECTIONS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown section(s) {', '.join(sorted(unknown))}",
            f"known sections: {', '.join(_SECTIONS)}",
        )
    merged: dict[str, dict[str, Any]] = {name: dict(data.get(name, {})) for name in _SECTIONS}
    for key, value in env.items():
        if not key.startswith("PHOTOINDEX_") or key in ("PHOTOINDEX_HOME", "PHOTOINDEX_CONFIG"):
            continue
        rest = key[len("PHOTOINDEX_") :].lower()
        section, _, name = rest.partition("_")
        if section in _SECTIONS and name:
            merged[section][name] = value
    sections = {name: _section(cls, merged[name], f"[{name}]") for name, cls in _SECTIONS.items()}
    if not sections["runtime"].model_cache.strip():
        sections["runtime"] = dataclasses.replace(sections["runtime"], model_cache=str(home / "cache" / "models"))
    return Config(home=home, config_file=path if path.is_file() else None, **sections)
