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

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np

from photoindex.errors import ModelError
from photoindex.inference.bundle import ImageSpec
from photoindex.inference.sessions.base import Session, TensorSpec
from photoindex.vectors.scoring import l2_normalize

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

    With `pool` and a dynamic batch axis, the items are split into `parts` runs made at once: this
    thread runs the first, the pool the others (each vector is computed as it would be alone).
    """
    n = items.shape[0]
    if n == 0:
        return np.zeros((0, embedding_dim), dtype=np.float32)
    if batch is None and pool is not None and min(parts, n) > 1:
        first, *rest = np.array_split(items, min(parts, n))
        futures = [pool.submit(run, part) for part in rest]
        try:
            chunks = [run(first)]
        finally:
            chunks += [f.result() for f in futures]  # waited for even when the first run failed
    elif batch is None:
        chunks = [run(items)]
    else:
        chunks = []
        for start in range(0, n, batch):
            chunk = items[start : start + batch]
            real = chunk.shape[0]
            if real < batch:
                # Pad with copies of the last real item rather than zeros: a real input cannot
                # trip a model into NaN (an all-zero id row has no EOT), and the pad is dropped.
                pad = np.repeat(chunk[-1:], batch - real, axis=0)
                chunk = np.concatenate([chunk, pad], axis=0)
            chunks.append(run(chunk)[:real])
    out = np.concatenate(chunks, axis=0).astype(np.float32, copy=False)
    if out.shape != (n, embedding_dim):
        raise ModelError(
            f"{where}: returned shape {list(out.shape)}, expected [{n},{embedding_dim}]", _VERIFY_HINT
        )
    if not np.isfinite(out).all():
        # A NaN vector would poison every search it takes part in; refuse it instead of storing it.
        raise ModelError(f"{where}: returned non-finite values", _VERIFY_HINT)
    return l2_normalize(out)


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

    def __init__(self, session: Session, spec: ImageSpec, embedding_dim: int) -> None:
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

    def _runner(self) -> ThreadPoolExecutor | None:
        """The threads that make a batch's other runs (made on first use), or None for one run at a time."""
        if self.parallel_runs < 2 or self.batch_size is not None:
            return None
        with self._pool_lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.parallel_runs - 1, thread_name_prefix="encode-part")
            return self._pool

    def _run(self, chunk: np.ndarray) -> np.ndarray:
        return self._session.run({self._input.name: chunk})[0]

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

    def encode(self, pixels: np.ndarray) -> np.ndarray:
        """Decoded uint8 RGB [N,S,S,3] -> [N, D] float32 unit vectors (any N; static batches are chunked)."""
        pixels = np.asarray(pixels)
        self.check_pixels(pixels)
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
