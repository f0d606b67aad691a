"""Wiring only: open the catalog, resolve the model bundle, build encoders and the vector index.

`open_library(config)` is what the CLI, the daemon and tests call; everything heavy is created
on first use so a search does not load the image encoder and a status does not load a model.
"""

from __future__ import annotations

import functools
import logging
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from photoindex.config import Config
from photoindex.errors import CatalogError, ConfigError, ModelError, PhotoindexError
from photoindex.inference.bundle import Bundle, resolve_bundle, shipped_manifests
from photoindex.resources import config_example

if TYPE_CHECKING:
    import numpy as np

    from photoindex.catalog.db import Database
    from photoindex.inference.encoders import ImageEncoder, TextEncoder
    from photoindex.inference.select import RuntimeChoice
    from photoindex.vectors.cache import IndexHandle

logger = logging.getLogger("photoindex")

TEXT_VECTORS_KEPT = 256  # query texts whose vectors a library keeps (Library.text_vectors)


def write_starting_config(config: Config, *, force: bool = False) -> Path:
    """Copy the documented example config to `$PHOTOINDEX_HOME/config.toml` (or the chosen file)."""
    target = config.config_file or config.home / "config.toml"
    if target.exists() and not force:
        raise ConfigError(f"{target} already exists", "edit it, or pass --force to start again")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(config_example(), tmp)
    tmp.replace(target)
    return target


@dataclass(frozen=True)
class BundleRow:
    """One line of `photoindex models list`."""

    name: str
    title: str
    embedding_dim: int
    tokenizer: str
    directory: str
    present: bool
    configured: bool


def bundle_for(config: Config, name: str | None = None) -> Bundle:
    """The bundle named (a shipped name or a folder), or the configured one."""
    return resolve_bundle(name or config.model.bundle, config.models_dir)


def list_bundles(config: Config) -> list[BundleRow]:
    """Every shipped bundle, plus the configured one when it is a folder of its own."""
    configured = bundle_for(config)
    bundles = [resolve_bundle(n, config.models_dir) for n in shipped_manifests()]
    if all(
        b.manifest.name != configured.manifest.name or b.directory != configured.directory for b in bundles
    ):
        bundles.append(configured)
    return [
        BundleRow(
            name=b.manifest.name,
            title=b.manifest.title,
            embedding_dim=b.manifest.embedding_dim,
            tokenizer=b.manifest.text.tokenizer,
            directory=str(b.directory),
            present=not b.missing(),
            configured=b.directory == configured.directory and b.manifest.name == configured.manifest.name,
        )
        for b in bundles
    ]


def ensure_bundle(bundle: Bundle, progress: Callable[[str, int, int | None], None] | None = None) -> None:
    """Make sure the bundle's files are present: fetch them on first use when the manifest knows where from.

    Where they cannot be fetched (no URL, no network), raise one ModelError saying how to place
    them by hand.
    """
    missing = bundle.missing()
    if not missing:
        return
    from photoindex.inference.download import fetch_bundle, missing_files_hint

    if all(f.url for f in missing):
        try:
            fetch_bundle(bundle, None, progress=progress)
        except ModelError as exc:
            raise ModelError(
                f"model bundle {bundle.manifest.name} is not installed and could not be downloaded ({exc.message})",
                missing_files_hint(bundle),
            ) from None
        return
    raise ModelError(f"model bundle {bundle.manifest.name} is not installed", missing_files_hint(bundle))


@dataclass
class Library:
    """An open photo library: config, catalog, model bundle, and lazily built encoders."""

    config: Config
    bundle: Bundle
    db: Database
    _image: ImageEncoder | None = field(default=None, repr=False)
    _text: TextEncoder | None = field(default=None, repr=False)
    choices: dict[str, RuntimeChoice] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # The indexer loads the image model on its encoder thread while the daemon may answer a search.
    _loading: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # The daemon's socket and its web page search from their own threads: one text model, loaded once.
    _text_loading: threading.Lock = field(default_factory=threading.Lock, repr=False)
    text_used_at: float = 0.0  # time.monotonic() of the last text_encoder() call (0: never)
    # Set by long-lived front ends (the daemon, `serve`): the text model is loaded for many queries.
    warm_text: bool = False
    # Unit vectors of recent query texts: paging, a changed filter or sort re-asks the same text, and
    # the text model (~0.1 s a query on 2 cores) need not run again. Small: 2 KB a text.
    _text_vectors: OrderedDict[str, np.ndarray] = field(default_factory=OrderedDict, repr=False)
    _text_vectors_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def model_id(self) -> str:
        """The id that keys this model's vectors."""
        return self.bundle.manifest.model_id

    def image_encoder(self) -> ImageEncoder:
        """The image encoder (NPU or CPU, as `[runtime] image` and the machine decide)."""
        with self._loading:
            if self._image is None:
                from photoindex.inference.select import open_image_encoder

                ensure_bundle(self.bundle)
                self._image, choice = open_image_encoder(
                    self.bundle, self.config.runtime, on_warning=self.warnings.append
                )
                self.choices["image"] = choice
            return self._image

    def text_encoder(self) -> TextEncoder:
        """The text encoder with the bundle's tokenizer; each call counts as a use (see `release_text_encoder`)."""
        with self._text_loading:
            if self._text is None:
                from photoindex.inference.select import open_text_encoder
                from photoindex.inference.tokenizers import load_tokenizer

                ensure_bundle(self.bundle)
                m = self.bundle.manifest
                tokenizer = load_tokenizer(m.text.tokenizer, m.text.context_length)
                self._text, choice = open_text_encoder(
                    self.bundle, self.config.runtime, tokenizer, on_warning=self.warnings.append, warm=self.warm_text
                )
                self.choices["text"] = choice
            self.text_used_at = time.monotonic()
            return self._text

    def text_vectors(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The unit vector of each text: recent ones from memory, the rest encoded in one batch.

        A text longer than the model's context is said once, when it is encoded (the words past it
        never reach the model).
        """
        from photoindex.vectors.scoring import l2_normalize

        unique = list(dict.fromkeys(texts))
        with self._text_vectors_lock:
            found = {t: self._text_vectors[t] for t in unique if t in self._text_vectors}
            for t in found:
                self._text_vectors.move_to_end(t)
        todo = [t for t in unique if t not in found]
        if todo:
            encoder = self.text_encoder()
            for text in todo:
                made = encoder.tokens(text)
                if made > encoder.context_length:
                    logger.warning(
                        "the query %r is %d tokens long; model %s reads the first %d, the rest is ignored",
                        text if len(text) <= 60 else text[:57] + "...",
                        made,
                        self.bundle.manifest.name,
                        encoder.context_length,
                    )
            made_now = dict(zip(todo, l2_normalize(encoder.encode(todo)), strict=True))
            with self._text_vectors_lock:
                for text, vector in made_now.items():
                    vector.setflags(write=False)  # shared by later searches
                    self._text_vectors[text] = vector
                while len(self._text_vectors) > TEXT_VECTORS_KEPT:
                    self._text_vectors.popitem(last=False)
            found.update(made_now)
        return found

    def remembers_text(self, text: str) -> bool:
        """Whether `text`'s vector is among the recent query texts kept in memory (a search of it encodes nothing)."""
        with self._text_vectors_lock:
            return text in self._text_vectors

    def prepare_text_model(self, *, check: bool = False) -> None:
        """Make the text model's fast-loading copy now if there is none (no model is loaded: disk work only).

        Called while indexing and when the daemon starts, so the first search afterwards loads the
        text model in milliseconds instead of writing its copy. `check` also loads the model once
        to check its short-query graph (docs/search.md, "Query text"), so the first query does not
        pay for that either: the daemon at start, and the indexer at its end, once its image model
        is released (a second model in memory while photos are encoded would raise its peak).
        Never raises: the copy is a cache.
        """
        cache = self.config.runtime.model_cache_dir
        path = self.bundle.path("text")
        if cache is None or path is None or not path.is_file():
            return
        try:
            import onnxruntime

            from photoindex.inference import modelcache

            m = self.bundle.manifest
            copy = modelcache.ensure(path, cache, onnxruntime.__version__, text_context=m.text.context_length)
            found = modelcache.short_copy(copy) if copy is not None else None
            if check and found is not None and found[1] is None and self._text_runs_on_cpu():
                from photoindex.inference.sessions.ort import OrtSession
                from photoindex.inference.shorttext import TextProbe
                from photoindex.inference.tokenizers import load_tokenizer

                tokenizer = load_tokenizer(m.text.tokenizer, m.text.context_length)
                probe = TextProbe.of(tokenizer)
                OrtSession(path, self.config.runtime.threads, cache, text_probe=probe)  # checks, then dropped
        except Exception as exc:  # an onnxruntime that does not import is reported when a model is loaded
            logger.info("no fast-loading copy of %s: %s", path, exc)

    @contextmanager
    def answering_queries(self, *, load: bool = True) -> Iterator[None]:
        """While a process answers many queries (the daemon, `serve`): its text model is loaded for
        speed per query (`warm_text`), and a background thread makes and checks its fast copy now
        and, with `load`, loads it and runs it once (`ready_text_model`). On leaving, that thread is
        waited for `_READY_JOIN_SECONDS` at most: a thread inside ONNX Runtime should not outlive
        the library nor the interpreter, and a stop must not wait longer than a load takes.
        """
        self.warm_text = True
        ready = self.ready_text_model if load else functools.partial(self.prepare_text_model, check=True)
        thread = threading.Thread(target=ready, name="text-model", daemon=True)
        thread.start()
        try:
            yield
        finally:
            thread.join(_READY_JOIN_SECONDS)

    def ready_text_model(self) -> None:
        """The text model's fast copy made and checked, then the model loaded and run once, in a
        process that answers many queries (`answering_queries`): its first query is as quick as any.

        Logs `TEXT_READY` when done. Never raises: a model that does not load is reported by the
        query that needs it. Fetches nothing: a bundle still to be downloaded is left to the first
        query. The daemon releases the loaded model after minutes without a query (`search/server.py`);
        `serve` keeps it.
        """
        started = time.monotonic()
        self.prepare_text_model(check=True)
        if self.bundle.missing():
            return
        try:
            self.text_encoder().encode(["a photo"])
        except Exception as exc:
            logger.info("the text model was not loaded ahead of the first query: %s", exc)
            return
        logger.info("%s: %.1f s", TEXT_READY, time.monotonic() - started)

    def _text_runs_on_cpu(self) -> bool:
        """Whether queries will run the text model on the CPU (on the NPU its CPU copy is never loaded)."""
        from photoindex.inference.select import plan_runtime

        try:
            return plan_runtime(self.bundle, "text", self.config.runtime)[0] == "cpu"
        except PhotoindexError:
            return False

    def release_text_encoder(self, *, unused_for: float | None = None, now: float | None = None) -> bool:
        """Drop the text model (the next query loads it again); True if one was loaded and dropped.

        `unused_for`: only if nobody used it (`text_encoder()`) for more than that many seconds
        before `now` (default: the monotonic clock now); checked and dropped under one lock, so a
        search that starts meanwhile either keeps it or loads it again.
        """
        with self._text_loading:
            if self._text is None:
                return False
            if unused_for is not None:
                idle = (time.monotonic() if now is None else now) - self.text_used_at
                if idle <= unused_for:
                    return False
            self._text = None
            self.choices.pop("text", None)  # it holds the session too
        return True

    def release_encoders(self) -> None:
        """Drop both models (a later call loads them again)."""
        self._image = None
        self.choices.pop("image", None)
        self.release_text_encoder()

    def index_path(self, model_id: str | None = None) -> Path:
        """The FAISS (or numpy) index cache file of a model (default: the configured one); one file per model."""
        from photoindex.vectors.cache import index_file

        return index_file(self.config.index_dir, model_id or self.model_id, self.config.index.backend)

    def open_index(self, model_id: str | None = None, dim: int | None = None) -> IndexHandle:
        """The vector index of a model (default: the configured one), loaded and caught up with the catalog."""
        from photoindex.vectors.cache import IndexHandle

        model_id = model_id or self.model_id
        if dim is None:
            dim = self.bundle.manifest.embedding_dim
        return IndexHandle.open(self.db, model_id, dim, self.config.index, self.index_path(model_id))

    def close(self) -> None:
        """Release the database connections."""
        self.db.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


TEXT_READY = "the text model is ready for queries"  # logged by `Library.ready_text_model` (benchmarks wait for it)
_READY_JOIN_SECONDS = 5.0  # how long a stopping daemon or `serve` waits for `ready_text_model`


def open_library(config: Config) -> Library:
    """Open (creating and migrating as needed) the library described by `config`."""
    from photoindex.catalog.db import open_catalog

    bundle = bundle_for(config)
    from photoindex.home import make_private_folder

    try:
        make_private_folder(config.home)
    except OSError as exc:
        raise ConfigError(
            f"{config.home}: cannot create the data folder: {exc.strerror or exc}",
            "set PHOTOINDEX_HOME to a writable folder",
        ) from None
    location = config.catalog_location
    if not location.is_postgres:
        _refuse_an_emptied_catalog(config)
    db = open_catalog(location)
    return Library(config=config, bundle=bundle, db=db)


def _refuse_an_emptied_catalog(config: Config) -> None:
    """Stop at a 0-byte catalog where a library existed (index files stamped by its vectors are there).

    SQLite takes an empty file for a new database: photoindex would silently start a new library
    and encode every photo again. Whether to do that is the user's decision, not a default.
    """
    db = config.db_path
    try:
        if not db.is_file() or db.stat().st_size or Path(f"{db}-wal").stat().st_size:
            return
    except FileNotFoundError:
        pass  # no write-ahead log: the empty file is all there is
    except OSError:
        return  # open_database reports an unreadable catalog
    from photoindex.vectors.index import read_meta

    stamped = [p for p in sorted(config.index_dir.glob("*.idx")) if (read_meta(p) or {}).get("anchor")]
    if stamped:
        raise CatalogError(
            f"{db} is empty (0 bytes), but {stamped[0]} was built from a library with photos: "
            "the catalog was lost (a full disk, a failed copy, a truncation)",
            f"restore {db.name} from a backup ({db.name}.bak-* beside it, or your own); to start a new "
            f"library on purpose, delete {db} and run `photoindex index PATH` (every photo is encoded again)",
        )
