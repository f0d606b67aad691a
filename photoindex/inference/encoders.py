"""Image and text encoders: a runtime session plus the model's input contract, returning unit vectors.

The session tells what the model really takes (docs/architecture.md, invariant 8): the image layout is read
from the input's dtype and shape (float32 NCHW normalized, or uint8 NHWC with the normalization
compiled in, as Axera's NPU builds take), the id dtype from the text input (int32 for Axera's
exports, int64 for open_clip's), and a static batch axis (every .axmodel) is fed chunk by chunk.

An image encoder owns its input: callers hand it decoded uint8 RGB pixels [N,S,S,3] (what
`photos.imaging.decode_photo` returns) and it converts them to the layout its session wants; no
one else knows the layout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from photoindex.errors import ModelError
from photoindex.inference.bundle import ImageSpec
from photoindex.inference.sessions.base import Session, TensorSpec
from photoindex.vectors.scoring import l2_normalize

logger = logging.getLogger("photoindex")

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from photoindex.inference.tokenizers import Tokenizer

Layout = Literal["nchw-float32", "nhwc-uint8"]

_VERIFY_HINT = "check that the bundle's manifest describes this model file (`photoindex models verify`)"


def _describe(session: Session, what: str) -> str:
    # Adapters that know their file (OrtSession, the axengine adapter) expose `path`; name it in errors.
    path = getattr(session, "path", None)
    return f"{path} ({what})" if path is not None else what


def _shape_text(spec: TensorSpec) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in spec.shape) + "]"


def _single(items: list[TensorSpec], kind: str, where: str) -> TensorSpec:
    if len(items) != 1:
        names = ", ".join(t.name for t in items) or "none"
        raise ModelError(f"{where}: expected one {kind}, the model has {len(items)} ({names})", _VERIFY_HINT)
    return items[0]


def _check_output(output: TensorSpec, embedding_dim: int, where: str) -> None:
    if len(output.shape) != 2:
        raise ModelError(
            f"{where}: output `{output.name}` has shape {_shape_text(output)}, expected [N,{embedding_dim}]",
            _VERIFY_HINT,
        )
    if output.shape[1] is not None and output.shape[1] != embedding_dim:
        raise ModelError(
            f"{where}: output `{output.name}` has {output.shape[1]} dimensions, "
            f"the manifest says {embedding_dim}",
            "fix `embedding_dim` in the bundle's manifest",
        )


def _pieces(items: np.ndarray, batch: int | None) -> list[np.ndarray]:
    """`items` as the runs a model whose batch axis is `batch` (None: any) takes: all at once, or
    chunks of exactly `batch`, the last one padded."""
    if batch is None:
        return [items]
    pieces = []
    for start in range(0, items.shape[0], batch):
        chunk = items[start : start + batch]
        real = chunk.shape[0]
        if real < batch:
            # Pad with copies of the last real item rather than zeros: a real input cannot
            # trip a model into NaN (an all-zero id row has no EOT), and the pad is dropped.
            pad = np.repeat(chunk[-1:], batch - real, axis=0)
            chunk = np.concatenate([chunk, pad], axis=0)
        pieces.append(chunk)
    return pieces


def _run_batched(
    run: Callable[[np.ndarray], np.ndarray],
    items: np.ndarray,
    batch: int | None,
    embedding_dim: int,
    where: str,
    pool: ThreadPoolExecutor | None = None,
    parts: int = 1,
) -> np.ndarray:
    """Run `items` through a model whose batch axis is `batch` (None: any), returning [N, D] float32.

    With `pool`, the work is split into up to `parts` shares run at once: this thread runs the first,
    the pool the others (each vector is computed as it would be alone). A dynamic batch axis splits
    the items into one run per share; a static one deals its chunks out to the shares.
    """
    n = items.shape[0]
    if n == 0:
        return np.zeros((0, embedding_dim), dtype=np.float32)
    pieces = np.array_split(items, min(parts, n)) if batch is None and pool is not None else _pieces(items, batch)

    def run_share(share: list[np.ndarray]) -> list[np.ndarray]:
        return [run(piece) for piece in share]

    if pool is not None and min(parts, len(pieces)) > 1:
        first, *rest = _deal(pieces, min(parts, len(pieces)))
        futures = [pool.submit(run_share, share) for share in rest]
        try:
            outputs = run_share(first)
        finally:
            outputs += [x for f in futures for x in f.result()]  # waited for even when the first share failed
    else:
        outputs = run_share(pieces)
    out = np.concatenate(outputs, axis=0)
    if batch is not None:
        out = out[:n]  # the last chunk's padding
    out = out.astype(np.float32, copy=False)
    if out.shape != (n, embedding_dim):
        raise ModelError(
            f"{where}: returned shape {list(out.shape)}, expected [{n},{embedding_dim}]", _VERIFY_HINT
        )
    if not np.isfinite(out).all():
        # A NaN vector would poison every search it takes part in; refuse it instead of storing it.
        raise ModelError(f"{where}: returned non-finite values", _VERIFY_HINT)
    return l2_normalize(out)


def _deal(pieces: list[np.ndarray], k: int) -> list[list[np.ndarray]]:
    """`pieces` in `k` runs of consecutive pieces, as even as can be (their order kept)."""
    bounds = np.linspace(0, len(pieces), k + 1).round().astype(int)
    return [pieces[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def normalized(pixels: np.ndarray, spec: ImageSpec) -> np.ndarray:
    """uint8 RGB [N,S,S,3] -> float32 [N,3,S,S] normalized with the manifest's mean and std (float models' input)."""
    std = np.asarray(spec.std, dtype=np.float32)
    scale = (1.0 / (255.0 * std)).astype(np.float32)
    offset = (np.asarray(spec.mean, dtype=np.float32) / std).astype(np.float32)
    # Normalize in NHWC (contiguous along channels), then one transposing copy.
    out = pixels.astype(np.float32)
    out *= scale
    out -= offset
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


class ImageEncoder:
    """Turns decoded photos (uint8 RGB [N,S,S,3]) into L2-normalized image vectors with one model session."""

    layout: Layout
    batch_size: int | None
    input_size: int
    provider: str

    def __init__(
        self, session: Session, spec: ImageSpec, embedding_dim: int, *, wide: Callable[[], Session] | None = None
    ) -> None:
        """`wide`, for a session whose runs take one core each: opens a session of the same model whose
        one run spreads over every core, for batches too small to give each core a run of its own
        (one photo: the daemon's new photo, a search by example). Opened on first need, then kept."""
        self._session = session
        self.embedding_dim = embedding_dim
        self.provider = session.provider
        self._where = _describe(session, "image encoder")
        self._input = _single(session.inputs, "input", self._where)
        self._output = _single(session.outputs[:1], "output", self._where)
        shape = self._input.shape
        if len(shape) != 4:
            raise ModelError(
                f"{self._where}: input `{self._input.name}` has shape {_shape_text(self._input)}, "
                "expected 4 axes (float32 [N,3,S,S] or uint8 [N,S,S,3])",
                _VERIFY_HINT,
            )
        if self._input.dtype == np.float32 and shape[1] == 3:
            self.layout = "nchw-float32"
            spatial = shape[2:4]
        elif self._input.dtype == np.uint8 and shape[3] == 3:
            self.layout = "nhwc-uint8"
            spatial = shape[1:3]
        else:
            raise ModelError(
                f"{self._where}: input `{self._input.name}` is "
                f"{self._input.dtype} {_shape_text(self._input)}; "
                "photoindex feeds float32 [N,3,S,S] or uint8 [N,S,S,3]",
                _VERIFY_HINT,
            )
        for dim in spatial:
            if dim is not None and dim != spec.size:
                raise ModelError(
                    f"{self._where}: the model takes {dim}x{dim} images, the manifest says {spec.size}",
                    "fix `[image] size` in the bundle's manifest",
                )
        _check_output(self._output, embedding_dim, self._where)
        self.input_size = spec.size
        self.batch_size = self._input.static_batch
        self._spec = spec
        self._item_shape = (spec.size, spec.size, 3)
        # A session whose runs take one core each (OrtSession(parallel=True)) gets a batch split over
        # the cores: docs/indexing.md, "Keeping both cores busy".
        self.parallel_runs = max(1, int(getattr(session, "parallel_runs", 1)))
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._open_wide = wide if self.parallel_runs > 1 else None
        self.wide_session: Session | None = None  # opened by the first batch too small to split

    def _runner(self) -> ThreadPoolExecutor | None:
        """The threads that make a batch's other runs (made on first use), or None for one run at a time."""
        if self.parallel_runs < 2:
            return None
        with self._pool_lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.parallel_runs - 1, thread_name_prefix="encode-part")
            return self._pool

    def _run(self, chunk: np.ndarray) -> np.ndarray:
        return self._session.run({self._input.name: chunk})[0]

    def _shares(self, n: int) -> int:
        """Into how many runs `n` photos can be split: one per photo, or per chunk of a static batch."""
        return n if self.batch_size is None else -(-n // self.batch_size)

    def _wide(self) -> Session | None:
        """The wide session, opened on first need; None (for good) when it cannot be opened."""
        with self._pool_lock:
            if self.wide_session is None and self._open_wide is not None:
                try:
                    self.wide_session = self._open_wide()
                except Exception as exc:  # memory, a vanished copy: the narrow session does the work
                    logger.info("%s: no session over every core for small batches (%s)", self._where, exc)
                    self._open_wide = None
            return self.wide_session

    def check_pixels(self, pixels: np.ndarray) -> None:
        """Raise `ModelError` unless `pixels` are decoded photos this encoder takes: uint8 [N,S,S,3]."""
        if pixels.ndim != 4 or pixels.shape[1:] != self._item_shape:
            raise ModelError(
                f"{self._where}: got pixels of shape {list(pixels.shape)}, "
                f"expected [N,{','.join(map(str, self._item_shape))}]"
            )
        if pixels.dtype != np.uint8:
            # Casting floats to uint8 would silently wrap normalized values: demand decoded pixels.
            raise ModelError(f"{self._where}: takes uint8 pixels, got {pixels.dtype}")

    def model_input(self, pixels: np.ndarray) -> np.ndarray:
        """Decoded uint8 RGB [N,S,S,3] -> what this encoder's session takes (normalized float NCHW, or as is)."""
        if self.layout == "nhwc-uint8":
            return np.ascontiguousarray(pixels)
        return normalized(pixels, self._spec)

    def encode(self, pixels: np.ndarray, *, open_wide: bool = True) -> np.ndarray:
        """Decoded uint8 RGB [N,S,S,3] -> [N, D] float32 unit vectors (any N; static batches are chunked).

        `open_wide=False`: a batch too small to split uses the wide session only if it is open already
        (the lone last photo of a long run is not worth opening it).
        """
        pixels = np.asarray(pixels)
        self.check_pixels(pixels)
        n = pixels.shape[0]
        wanted = open_wide or self.wide_session is not None
        if self._open_wide is not None and wanted and 0 < self._shares(n) < self.parallel_runs:
            # Too few photos (or chunks) for a run per core: one run over every core instead of one
            # run that leaves the other cores idle.
            wide = self._wide()
        else:
            wide = None
        if wide is not None:
            return _run_batched(
                lambda chunk: wide.run({self._input.name: chunk})[0],
                self.model_input(pixels),
                self.batch_size,
                self.embedding_dim,
                self._where,
            )
        return _run_batched(
            self._run,
            self.model_input(pixels),
            self.batch_size,
            self.embedding_dim,
            self._where,
            self._runner(),
            self.parallel_runs,
        )


class TextEncoder:
    """Turns query texts into L2-normalized text vectors: tokenizer, id dtype cast, model session."""

    batch_size: int | None
    context_length: int
    provider: str

    def __init__(self, session: Session, tokenizer: Tokenizer, embedding_dim: int) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self.embedding_dim = embedding_dim
        self.provider = session.provider
        self._where = _describe(session, "text encoder")
        self._input = _single(session.inputs, "input", self._where)
        self._output = _single(session.outputs[:1], "output", self._where)
        if len(self._input.shape) != 2 or self._input.dtype.kind not in "iu":
            raise ModelError(
                f"{self._where}: input `{self._input.name}` is "
                f"{self._input.dtype} {_shape_text(self._input)}, "
                "expected integer token ids [N,context]",
                _VERIFY_HINT,
            )
        context = int(tokenizer.context_length)
        model_context = self._input.shape[1]
        if model_context is not None and model_context != context:
            raise ModelError(
                f"{self._where}: the model takes {model_context} tokens, the tokenizer makes {context}",
                "fix `[text] context_length` in the bundle's manifest",
            )
        _check_output(self._output, embedding_dim, self._where)
        self.context_length = context
        self.batch_size = self._input.static_batch
        self._dtype = self._input.dtype

    def _run(self, chunk: np.ndarray) -> np.ndarray:
        return self._session.run({self._input.name: chunk})[0]

    def tokens(self, text: str) -> int:
        """How many tokens `text` makes with its two special tokens; above `context_length` it is cut."""
        return len(self._tokenizer.encode(text)) + 2

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> [N, D] float32 unit vectors, ids cast to the dtype the model declares."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not one string")
        if len(texts) == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        ids = np.asarray(self._tokenizer(list(texts)))
        if getattr(self._session, "trims_tokens", False):
            # A short-query copy that agreed with its model: the padding after the batch's last real
            # token is left out, which it does not change (inference/shorttext.py).
            from photoindex.inference.shorttext import used_length

            ids = ids[:, : used_length(ids)]
        # Token ids are far below 2**31, so int32 (Axera) and int64 (open_clip) hold them exactly.
        ids = np.ascontiguousarray(ids.astype(self._dtype, copy=False))
        return _run_batched(self._run, ids, self.batch_size, self.embedding_dim, self._where)
