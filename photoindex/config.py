"""Configuration: frozen values from `config.toml` and `PHOTOINDEX_*` environment overrides.

Precedence, lowest first: built-in defaults, the config file (`PHOTOINDEX_CONFIG`, else
`$PHOTOINDEX_HOME/config.toml`), then `PHOTOINDEX_<SECTION>_<KEY>` variables. `PHOTOINDEX_HOME`
moves all state (database, index files, model bundles, lock and daemon status).

Every setting is declared once, below, as a field of its section's dataclass:

    limit: int = setting(20, "Default number of results of `photoindex search`.", at_least=1)

The annotation is its type, the first argument its default, the text its comment in
config.example.toml, and `at_least` / `above` / `at_most` / `choices` its allowed range. From
that one line it is read from the file and from `PHOTOINDEX_SEARCH_LIMIT`, type- and
range-checked at load (a bad value is a ConfigError naming the key, the value, the file and line
or the variable, and the range), and documented.

To add a setting: add that line, then regenerate the example with
`python -m photoindex.config > config.example.toml` (tests/test_config.py checks that the file
matches the declarations). To add a section: a frozen dataclass of `setting(...)` fields, plus
one `name: Cls = section(Cls)` line in `Config`. Section names have no underscore (the variable
name is split at the first one).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from photoindex.errors import ConfigError

if TYPE_CHECKING:
    from photoindex.catalog.location import CatalogLocation
    from photoindex.mounts import Mounts

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

T = TypeVar("T")

DEFAULT_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif")


@dataclass(frozen=True)
class Rule:
    """What a setting accepts (besides its type) and the comment that documents it."""

    doc: str
    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    choices: tuple[str, ...] = ()

    def describe(self, kind: type) -> str:
        """The allowed values in words: 'a whole number of at least 1', 'one of faiss, numpy'."""
        if kind is bool:
            return "true or false"
        if kind is tuple:
            return "a list of strings"
        if self.choices:
            return "one of " + ", ".join(self.choices)
        noun = "a whole number" if kind is int else "a number" if kind is float else "a string"
        low = self.at_least if self.at_least is not None else self.above
        if low is not None and self.at_most is not None:
            if self.above is not None:
                return f"{noun} above {_num(low)} and at most {_num(self.at_most)}"
            return f"{noun} from {_num(low)} to {_num(self.at_most)}"
        if self.above is not None:
            return f"{noun} above {_num(self.above)}"
        if self.at_least is not None:
            return f"{noun} of at least {_num(self.at_least)}"
        if self.at_most is not None:
            return f"{noun} of at most {_num(self.at_most)}"
        return noun

    def allows(self, value: Any) -> bool:
        """Whether an already-typed value lies in range."""
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.at_least is not None and value < self.at_least:
                return False
            if self.above is not None and value <= self.above:
                return False
            if self.at_most is not None and value > self.at_most:
                return False
        return True


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def setting(
    default: T,
    doc: str,
    *,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
    choices: tuple[str, ...] = (),
) -> T:
    """Declare one setting: its default, its comment in config.example.toml and its allowed range."""
    rule = Rule(doc, at_least=at_least, above=above, at_most=at_most, choices=choices)
    result: T = field(default=default, metadata={"rule": rule})
    return result


def section(cls: type[T]) -> T:
    """Declare one `[section]` of `Config`, a dataclass of settings."""
    result: T = field(default_factory=cls, metadata={"section": True})
    return result


@dataclass(frozen=True)
class ModelConfig:
    """`[model]`: which bundle encodes photos and queries."""

    bundle: str = setting(
        "clip-vit-b32",
        "A shipped bundle name (`photoindex models list`), or the path of a bundle folder that holds its "
        "own manifest.toml next to the model files (any CLIP export, no code changes needed). A relative "
        "path is taken from the folder photoindex starts in.",
    )


_WHERE = ("auto", "npu", "cpu")


@dataclass(frozen=True)
class RuntimeConfig:
    """`[runtime]`: where each encoder runs, CPU threads and the fast-loading model copies."""

    image: str = setting(
        "auto",
        'Where each encoder runs: "auto" (the NPU when axengine imports and the bundle has an .axmodel, '
        'else ONNX Runtime on the CPU), "npu" (fail clearly if it cannot), or "cpu".',
        choices=_WHERE,
    )
    text: str = setting("auto", "", choices=_WHERE)
    threads: int = setting(
        0,
        "ONNX Runtime threads per run; 0 = automatic (a batch of photos is split over the cores, one "
        "single-threaded run each; a query's text is spread over the cores).",
        at_least=0,
    )
    # "" is filled in by load_config with the home's cache/models folder.
    model_cache: str = setting(
        "",
        "ONNX models are loaded through a copy whose weights sit in a side file that is memory-mapped: "
        "15 ms instead of 0.3 s for a ViT-B/32 text encoder, and about half the memory. The copy is made "
        'on first use and costs the model\'s size on disk. "" = $PHOTOINDEX_HOME/cache/models; "off" = no copy.',
    )

    @property
    def model_cache_dir(self) -> Path | None:
        """Where fast-loading model copies go, or None when they are off (or no folder was set)."""
        value = self.model_cache.strip()
        return None if value.lower() in ("", "off", "false", "no", "0") else Path(value).expanduser()


@dataclass(frozen=True)
class IndexConfig:
    """`[index]`: vector index backend and encoding pipeline sizes."""

    backend: str = setting(
        "faiss",
        '"faiss" or "numpy" (the exact equivalent of Axera\'s feature_matmul.onnx; same top-k as FAISS).',
        choices=("faiss", "numpy"),
    )
    approximate_threshold: int = setting(
        200_000,
        "From this many vectors on, FAISS uses an approximate IVF index (recall@10 >= 0.95) instead of exact search.",
        at_least=1,
    )
    batch_size: int = setting(
        16, "Photos encoded per batch; each batch is committed in one transaction.", at_least=1, at_most=4096
    )
    workers: int = setting(0, "Decode worker processes; 0 = one per core.", at_least=0, at_most=256)
    decode_timeout: float = setting(
        60.0, "Seconds one photo may take to decode before it is recorded as failed.", above=0
    )
    forget_missing_after_days: float = setting(
        30.0,
        "A photo whose file has been gone this many days (from a root folder that is still there) is "
        "forgotten by the next full scan, with its vector; until then it comes back without re-encoding. "
        "Photos of an unplugged drive (the root folder gone, or empty: a mount point with nothing "
        "mounted) are kept. 0 = never forget.",
        at_least=0,
        at_most=36_500,
    )


@dataclass(frozen=True)
class ScanConfig:
    """`[scan]`: which files under the roots are photos."""

    extensions: tuple[str, ...] = setting(DEFAULT_EXTENSIONS, "File name endings that are photos (case-insensitive).")
    exclude: tuple[str, ...] = setting(
        (), "Glob patterns (matched against the path relative to its root, and against the name) to skip."
    )
    include_hidden: bool = setting(False, "Index files and folders whose names start with a dot.")
    follow_symlinks: bool = setting(True, "Follow symbolic links (loops are detected and walked once).")
    max_image_pixels: int = setting(
        178_956_970,  # Pillow's hard limit (2x its warning level)
        "Photos with more pixels than this are skipped as possible decompression bombs; raise it for huge panoramas.",
        at_least=1,
    )


@dataclass(frozen=True)
class DaemonConfig:
    """`[daemon]`: watching, settling, batching and periodic rescans."""

    settle_seconds: float = setting(
        2.0,
        "A new or changed file is indexed once its size and mtime have been stable this long.",
        at_least=0,
        at_most=86_400,
    )
    max_batch_wait: float = setting(
        5.0,
        "A batch is encoded when it is full or when its oldest photo has waited this long.",
        at_least=0,
        at_most=86_400,
    )
    rescan_interval: float = setting(
        3600.0,
        "Full reconciliation scan interval (the watcher is a hint; the scan is the truth).",
        above=0,
    )
    polling_roots: tuple[str, ...] = setting(
        (),
        "Roots to poll instead of watching with inotify (network or FUSE folders are detected automatically).",
    )
    poll_interval: float = setting(60.0, "Seconds between polls of such roots.", above=0)
    log_level: str = setting(
        "INFO",
        "DEBUG, INFO, WARNING or ERROR; log lines go to stderr (journald-friendly).",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    )


@dataclass(frozen=True)
class SearchConfig:
    """`[search]`: defaults for `photoindex search`."""

    limit: int = setting(20, "Default number of results of `photoindex search`.", at_least=1, at_most=10_000)
    min_score: float = setting(
        -1.0,
        "Default minimum cosine score (-1.0 keeps every result; real CLIP matches typically score 0.2 to 0.35).",
        at_least=-1,
        at_most=1,
    )
    use_daemon: bool = setting(
        True,
        "Let the running daemon answer searches over its socket ($PHOTOINDEX_HOME/daemon.sock): its "
        "text model and index stay loaded, so a search skips the cold start (the model then stays in the "
        "daemon's memory). Without a daemon (or with false) `photoindex search` loads them itself; "
        "false also keeps the daemon from listening.",
    )


@dataclass(frozen=True)
class OcrConfig:
    """`[ocr]`: reading the text in photos after their CLIP vectors are stored (docs/ocr.md)."""

    enabled: bool = setting(
        True,
        "Read the text in photos (signs, receipts, screenshots, slides) after their CLIP vectors are "
        "stored, so `photoindex search` also finds photos by the words in them. Needs the `ocr` extra "
        "(`pip install 'photoindex[ocr]'`: PP-OCRv4 models, ~16 MB); without it nothing is read.",
    )
    gate: str = setting(
        "clip",
        'Which photos to read: "clip" (those whose CLIP vector looks like a document, screenshot, sign, '
        'receipt, slide...: most photos are skipped, see `photoindex status`) or "all" (every photo, about '
        "a second each on a 2-core CPU).",
        choices=("clip", "all"),
    )
    gate_threshold: float = setting(
        0.25,
        "Under gate = \"clip\": a photo is read when its text prompts' share of the CLIP softmax over all the "
        "gate's prompts reaches this (0 to 1; 0 reads every photo, 1 almost none). 0.25 reads a photo unless "
        "another subject clearly wins; it is not calibrated on real photos yet: lower it if photos with text "
        "are skipped (`photoindex status` counts them; see docs/ocr.md, \"The gate\").",
        at_least=0,
        at_most=1,
    )
    max_side: int = setting(
        1600,
        "The longer side, in pixels, the text detector sees; small text on large photos needs more (slower).",
        at_least=160,
        at_most=8192,
    )
    min_confidence: float = setting(
        0.5, "Lines read with a lower confidence (0 to 1) are dropped.", at_least=0, at_most=1
    )
    runtime: str = setting(
        "auto",
        "Where the OCR models run: \"auto\" (Axera's NPU builds when they are in "
        "$PHOTOINDEX_HOME/models/ppocr-v4/ and axengine imports, else ONNX Runtime on the CPU), \"npu\" or \"cpu\".",
        choices=_WHERE,
    )
    nice: int = setting(
        10,
        "How much lower than the rest the OS priority (nice) of the reading thread and its decode worker is, "
        "0 to 19 (Linux), so that CLIP indexing and searches go first when the CPU is busy; 0 = the same.",
        at_least=0,
        at_most=19,
    )


@dataclass(frozen=True)
class ThumbnailConfig:
    """`[thumbnails]`: the small JPEGs of the web page and contact sheets (docs/web.md)."""

    size: int = setting(
        320,
        "Thumbnails for the web page (`photoindex serve`) and `search --sheet`: upright JPEGs this many "
        "pixels on the longer side, kept in $PHOTOINDEX_HOME/cache/thumbnails (content-addressed: copies "
        "share one; safe to delete, they are made again when needed).",
        at_least=32,
        at_most=2048,
    )
    max_cache_mb: int = setting(
        1024, "The cache is pruned (the least recently made go first) when it grows beyond this many MB.", at_least=1
    )
    while_indexing: bool = setting(
        True,
        "Make them while indexing, from the image already decoded for the encoder (no second decode). "
        "false: each is made on first request instead.",
    )


@dataclass(frozen=True)
class WebConfig:
    """`[web]`: `photoindex serve` and the daemon's web page (docs/web.md)."""

    listen: str = setting(
        "",
        '"HOST:PORT" (e.g. "127.0.0.1:8765") makes the daemon serve the web page too; "" = it does not. '
        "`photoindex serve` serves it without a daemon.",
    )
    secret: str = setting(
        "",
        "Any address other than loopback requires this secret (at least 12 characters), asked once per "
        'browser (then a session cookie). "" = generated on first use and kept in '
        "$PHOTOINDEX_HOME/web-secret (mode 0600).",
    )
    allowed_hosts: tuple[str, ...] = setting(
        (),
        "Host names the page may be reached by besides localhost, this machine's name and IP addresses "
        '(a check against DNS rebinding), e.g. ["photos.home.lan"].',
    )
    max_upload_mb: float = setting(
        20.0, "The largest example photo (MB) a browser may upload to search by; it is never stored.", above=0
    )


@dataclass(frozen=True)
class CatalogConfig:
    """`[catalog]`: where the catalog lives (docs/scale.md)."""

    url: str = setting(
        "",
        "Where the catalog (photos, metadata, vectors) lives. Empty: the SQLite file photoindex.db in the "
        "home (no set-up). A postgresql://USER@HOST:5432/DATABASE URL puts it on a PostgreSQL server with "
        "the pgvector extension, which several machines can share (docs/scale.md). Leave the password out "
        "and let libpq find it in PGPASSWORD or ~/.pgpass; photoindex never prints it.",
    )
    lease_seconds: float = setting(
        600.0,
        "On a shared (PostgreSQL) catalog, indexers claim pending photos in batches for this long; the "
        "claims of an indexer that dies are taken over by another once they run out. Keep it well above "
        "the time one batch takes.",
        at_least=1,
        at_most=86_400,
    )
    hnsw_ef_search: int = setting(
        100,
        "On PostgreSQL, the least number of candidates pgvector's HNSW index walks per search (it also walks "
        "10 per result asked for, up to 1000). Higher finds more of the true nearest photos and is slower "
        "(docs/scale.md has recall and latency at each).",
        at_least=10,
        at_most=1000,
    )
    roots: tuple[str, ...] = setting(
        (),
        "Named roots of a catalog shared by machines that mount one share at different paths: NAME=PATH "
        "entries mapping each name to this machine's mount path, e.g. [\"nas=/mnt/photos\"]. `photoindex "
        "index PATH` of a mapped path registers the root under its name, and its photos are stored relative "
        "to it, so every machine sees them under its own mount; a root already registered by its path inside "
        "a mount takes the name at the next index, reindex or daemon scan. Mounts must not nest (docs/scale.md).",
    )


@dataclass(frozen=True)
class Config:
    """All configuration, a value passed to the core (never a global)."""

    home: Path
    config_file: Path | None = None
    model: ModelConfig = section(ModelConfig)
    runtime: RuntimeConfig = section(RuntimeConfig)
    index: IndexConfig = section(IndexConfig)
    scan: ScanConfig = section(ScanConfig)
    daemon: DaemonConfig = section(DaemonConfig)
    search: SearchConfig = section(SearchConfig)
    ocr: OcrConfig = section(OcrConfig)
    thumbnails: ThumbnailConfig = section(ThumbnailConfig)
    web: WebConfig = section(WebConfig)
    catalog: CatalogConfig = section(CatalogConfig)

    @property
    def catalog_location(self) -> CatalogLocation:
        """The SQLite file (`db_path`, the default) or the PostgreSQL server `[catalog] url` names."""
        from photoindex.catalog.location import parse_location

        return parse_location(self.catalog.url, self.db_path)

    @property
    def mounts(self) -> Mounts:
        """This machine's mount path of each named root (`[catalog] roots`, checked at load)."""
        from photoindex.mounts import Mounts, parse_entries

        return Mounts(parse_entries(self.catalog.roots))

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
    def thumbnail_dir(self) -> Path:
        """The thumbnail cache (content-addressed; safe to delete)."""
        return self.home / "cache" / "thumbnails"

    @property
    def daemon_state_path(self) -> Path:
        """The daemon's status file (pid, queue, last batch), read by `photoindex status`."""
        return self.home / "daemon.json"


def sections() -> dict[str, type]:
    """Section name -> its dataclass, in declaration order."""
    out: dict[str, type] = {}
    for f in dataclasses.fields(Config):
        if f.metadata.get("section"):
            out[f.name] = f.default_factory  # type: ignore[assignment]
    return out


@dataclass(frozen=True)
class Setting:
    """One declared setting, as read from its dataclass field."""

    section: str
    name: str
    kind: type  # str, int, float, bool or tuple (of strings)
    default: Any
    rule: Rule

    @property
    def key(self) -> str:
        """`[section] name`, as messages show it."""
        return f"[{self.section}] {self.name}"

    @property
    def variable(self) -> str:
        """The environment variable that overrides it."""
        return f"PHOTOINDEX_{self.section.upper()}_{self.name.upper()}"


def declared() -> Iterator[Setting]:
    """Every declared setting, section by section, in declaration order."""
    for name, cls in sections().items():
        for f in dataclasses.fields(cls):
            default = f.default
            kind = type(default)
            yield Setting(name, f.name, kind, default, f.metadata["rule"])


def default_home() -> Path:
    """`PHOTOINDEX_HOME`, else the platform's user data folder (always absolute)."""
    env = os.environ.get("PHOTOINDEX_HOME")
    if env:
        return _absolute(env)
    from platformdirs import user_data_path

    return _absolute(user_data_path("photoindex", appauthor=False))


def _absolute(path: str | Path) -> Path:
    # Resolved once, at start: a later `cd` must not move the library (abspath keeps symlinks).
    return Path(os.path.abspath(Path(path).expanduser()))


_ENV_TRUE = ("1", "true", "yes", "on")
_ENV_FALSE = ("0", "false", "no", "off")


def _typed(s: Setting, value: Any, from_env: bool) -> Any:
    """The value in the setting's type, or raise ValueError."""
    if s.kind is bool:
        if isinstance(value, bool):
            return value
        if from_env and value.strip().lower() in _ENV_TRUE + _ENV_FALSE:
            return value.strip().lower() in _ENV_TRUE
        raise ValueError
    if s.kind in (int, float):
        # TOML's 3 is a fine float; its 3.0 is no int. The environment's text goes through the type itself.
        accepted = (int,) if s.kind is int else (int, float)
        if isinstance(value, accepted) and not isinstance(value, bool):
            return s.kind(value)
        if from_env:
            return s.kind(value.strip().replace("_", ""))
        raise ValueError
    if s.kind is tuple:
        if from_env:
            return tuple(v.strip() for v in value.split(",") if v.strip())
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ValueError
    if not isinstance(value, str):
        raise ValueError
    if s.rule.choices:
        for choice in s.rule.choices:
            if value.strip().casefold() == choice.casefold():
                return choice
        raise ValueError
    return value


def _check(s: Setting, value: Any, source: str, hint: str) -> Any:
    """The typed, range-checked value; else a ConfigError naming key, value, source and range."""
    from_env = source.startswith("PHOTOINDEX_")
    try:
        typed = _typed(s, value, from_env)
    except (TypeError, ValueError, AttributeError):
        typed = None
    if typed is None or not s.rule.allows(typed):
        shown = value if from_env else _toml_value(value)
        raise ConfigError(
            f"{s.key} = {shown} (from {source}) is not {s.rule.describe(s.kind)}",
            hint,
        )
    return typed


def _toml_value(value: Any) -> str:
    """A value as TOML would spell it (for messages and the example file)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    return str(value)


_HEADER = re.compile(r"^\s*\[\s*([A-Za-z0-9_-]+)\s*\]")
_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")


def _key_lines(text: str) -> dict[tuple[str, str], int]:
    """(section, key) -> 1-based line number, for messages (tomllib keeps no positions)."""
    out: dict[tuple[str, str], int] = {}
    current = ""
    for number, line in enumerate(text.splitlines(), 1):
        header = _HEADER.match(line)
        if header:
            current = header.group(1)
            continue
        key = _KEY.match(line)
        if key:
            out.setdefault((current, key.group(1)), number)
    return out


def _read_file(path: Path) -> tuple[dict[str, Any], dict[tuple[str, str], int]]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the config file: {exc.strerror or exc}", "check its permissions"
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}: line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x})",
            "save the file as UTF-8, or start again with `photoindex init --force`",
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path}: invalid TOML: {exc}", "fix the syntax, or start again with `photoindex init --force`"
        ) from None
    return data, _key_lines(text)


def load_config(
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    home: Path | None = None,
) -> Config:
    """Build the configuration from defaults, the config file and the environment; every value is checked."""
    env = os.environ if environ is None else environ
    if home is None:
        home = _absolute(env["PHOTOINDEX_HOME"]) if env.get("PHOTOINDEX_HOME") else default_home()
    else:
        home = _absolute(home)
    explicit = config_file or (Path(env["PHOTOINDEX_CONFIG"]) if env.get("PHOTOINDEX_CONFIG") else None)
    path = _absolute(explicit) if explicit is not None else home / "config.toml"
    data: dict[str, Any] = {}
    lines: dict[tuple[str, str], int] = {}
    if path.is_file():
        data, lines = _read_file(path)
    elif explicit is not None:
        raise ConfigError(f"{path}: config file not found", "check PHOTOINDEX_CONFIG or --config")
    known_sections = sections()
    for name, table in data.items():
        if name not in known_sections:
            raise ConfigError(f"{path}: unknown section [{name}]", f"known sections: {', '.join(known_sections)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: `{name}` must be a [{name}] table", "see config.example.toml")
    by_section: dict[str, dict[str, Setting]] = {}
    for decl in declared():
        by_section.setdefault(decl.section, {})[decl.name] = decl
    values: dict[str, dict[str, Any]] = {name: {} for name in known_sections}
    for name, table in data.items():
        for key, value in table.items():
            found = by_section.get(name, {}).get(key)
            line = lines.get((name, key))
            source = f"{path} line {line}" if line else str(path)
            if found is None:
                raise ConfigError(
                    f"[{name}] {key} (from {source}) is not a known key",
                    f"known keys of [{name}]: {', '.join(by_section.get(name, {}))} (see config.example.toml)",
                )
            values[name][key] = _check(found, value, source, f"fix it in {path}")
    for var, value in env.items():
        if not var.startswith("PHOTOINDEX_") or var in ("PHOTOINDEX_HOME", "PHOTOINDEX_CONFIG"):
            continue
        section_name, _, key = var[len("PHOTOINDEX_") :].lower().partition("_")
        if section_name not in known_sections or not key:
            continue
        setting_ = by_section.get(section_name, {}).get(key)
        if setting_ is None:
            raise ConfigError(
                f"{var}: [{section_name}] has no key {key!r}",
                f"unset it; known keys of [{section_name}]: {', '.join(by_section.get(section_name, {}))}",
            )
        values[section_name][key] = _check(setting_, value, var, f"fix or unset {var}")
    built = {name: cls(**values[name]) for name, cls in known_sections.items()}
    runtime: RuntimeConfig = built["runtime"]
    if not runtime.model_cache.strip():
        built["runtime"] = dataclasses.replace(runtime, model_cache=str(home / "cache" / "models"))
    model: ModelConfig = built["model"]
    built["model"] = dataclasses.replace(model, bundle=_bundle_spec(model.bundle))
    _check_mounts(built["catalog"].roots, path, env)
    return Config(home=home, config_file=path if path.is_file() else None, **built)


def _check_mounts(entries: tuple[str, ...], path: Path, env: Mapping[str, str]) -> None:
    """`[catalog] roots` must be NAME=/absolute/path entries (the type check saw only strings)."""
    from photoindex.mounts import parse_entries

    try:
        parse_entries(entries)
    except ValueError as exc:
        source = "PHOTOINDEX_CATALOG_ROOTS" if "PHOTOINDEX_CATALOG_ROOTS" in env else str(path)
        raise ConfigError(
            f"[catalog] roots (from {source}): {exc}",
            'write each root as "NAME=/mount/path", e.g. roots = ["nas=/mnt/photos"]',
        ) from None


def _bundle_spec(spec: str) -> str:
    # A bundle given as a path is made absolute once, here, like the home; a name stays a name.
    if "/" in spec or spec.startswith((".", "~")) or Path(spec).is_dir():
        return str(_absolute(spec))
    return spec


def example() -> str:
    """config.example.toml, rendered from the declarations (the file must equal this)."""
    out = [_EXAMPLE_HEADER]
    current = ""
    for s in declared():
        if s.section != current:
            current = s.section
            out.append(f"\n[{s.section}]\n")
        if s.rule.doc:
            out.extend(f"# {line}\n" for line in textwrap.wrap(s.rule.doc, 108))
        out.append(f"{s.name} = {_toml_value(s.default)}\n")
    return "".join(out)


_EXAMPLE_HEADER = """\
# photoindex configuration. Every key is shown with its default; delete what you don't change.
# File: $PHOTOINDEX_HOME/config.toml (or the file named by PHOTOINDEX_CONFIG / --config).
# Any key can also be set from the environment as PHOTOINDEX_<SECTION>_<KEY>,
# e.g. PHOTOINDEX_MODEL_BUNDLE=cnclip-vit-b16 or PHOTOINDEX_INDEX_BATCH_SIZE=32.
# PHOTOINDEX_HOME moves all state: the catalog, index files, model bundles, lock and daemon status.
# Each value is checked when photoindex starts: a wrong type or a value out of range stops it
# with a message naming the key, where it was set and what it accepts.
"""


if __name__ == "__main__":  # pragma: no cover - `python -m photoindex.config > config.example.toml`
    sys.stdout.write(example())
