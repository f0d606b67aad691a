"""Each indexing stage measured alone: the encoder, decoding (full and draft), the naive baseline,
and the NPU stand-in encoder session (4.2 ms per image, as the AX650N runs ViT-B/32).
"""

from __future__ import annotations

import functools
import multiprocessing
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from photoindex.inference.bundle import Bundle, ImageSpec
from photoindex.inference.encoders import ImageEncoder
from photoindex.inference.sessions.base import FixedSpecs, TensorSpec
from photoindex.inference.sessions.ort import OrtSession
from photoindex.photos.decodepool import DecodeJob, DecodePool
from photoindex.photos.imaging import decode_photo, preprocess
from photoindex.photos.thumbnails import ThumbnailStore

NPU_SECONDS_PER_IMAGE = 0.0042  # ViT-B/32 image encoder on the AX650N NPU (Axera's published figure)


def timed_rate(step: Callable[[], int], min_seconds: float, min_steps: int = 1) -> float:
    """Items per second of `step` (which returns how many items it did), run for at least `min_seconds`."""
    items, steps = 0, 0
    start = time.perf_counter()
    while steps < min_steps or time.perf_counter() - start < min_seconds:
        items += step()
        steps += 1
    return items / (time.perf_counter() - start)


def cpu_encoder(bundle: Bundle, threads: int) -> ImageEncoder:
    """The bundle's ONNX image encoder on the CPU, as the indexer builds it."""
    path = bundle.path("image")
    assert path is not None
    return ImageEncoder(OrtSession(path, threads), bundle.manifest.image, bundle.manifest.embedding_dim)


def model_loading(bundle: Bundle, cache_dir: Path) -> dict[str, dict[str, float]]:
    """Seconds to load each encoder: from the bundle's own file, making its fast copy, and from the copy.

    Each load is a fresh session in this process (the files are in the page cache, as for a
    command run again); the copies made here stay in `cache_dir` for the runs that follow.
    """
    from photoindex.inference.shorttext import TextProbe
    from photoindex.inference.tokenizers import load_tokenizer

    m = bundle.manifest
    tokenizer = load_tokenizer(m.text.tokenizer, m.text.context_length)
    text_probe = TextProbe.of(tokenizer)
    out: dict[str, dict[str, float]] = {}
    for which in ("text", "image"):
        path = bundle.path(which)
        assert path is not None
        probe = text_probe if which == "text" else None  # as a search loads it (its short-query graph)
        t = time.perf_counter()
        OrtSession(path)
        original = time.perf_counter() - t
        t = time.perf_counter()
        first = OrtSession(path, cache_dir=cache_dir, text_probe=probe)
        making = time.perf_counter() - t
        t = time.perf_counter()
        again = OrtSession(path, cache_dir=cache_dir, text_probe=probe)
        from_copy = time.perf_counter() - t
        assert first.loaded_from is not None and again.loaded_from == first.loaded_from
        out[which] = {"original_s": original, "first_s": making, "copy_s": from_copy,
                      "mib": path.stat().st_size / 2**20}
    return out


def model_inputs(paths: Sequence[Path], spec: ImageSpec, count: int) -> np.ndarray:
    """`count` decoded uint8 photos, what encoders take (cycled when there are fewer photos)."""
    decoded = [decode_photo(p, spec)[0] for p in paths[:count]]
    return np.stack([decoded[i % len(decoded)] for i in range(count)])


def encoder_throughput(encoder: ImageEncoder, inputs: np.ndarray, batch: int, min_seconds: float) -> float:
    """Images per second at this batch size, after one warm-up batch."""
    x = np.ascontiguousarray(inputs[:batch])
    encoder.encode(x)

    def step() -> int:
        encoder.encode(x)
        return batch

    return timed_rate(step, min_seconds)


def cosine_agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean and minimum cosine between matching rows of two unit-vector matrices, and top-1 agreement."""
    cos = (a * b).sum(axis=1)
    same_top1 = float(np.mean(np.argmax(b @ a.T, axis=1) == np.arange(len(a))))
    return {"mean": float(cos.mean()), "min": float(cos.min()), "self_top1": same_top1}


# --- decoding -----------------------------------------------------------------------------------


def full_decode(path: str, spec: ImageSpec) -> np.ndarray:
    """What a naive pipeline does: decode every pixel, then resize to the model input."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im.load()
        im = ImageOps.exif_transpose(im)
        return preprocess(im, spec)


def draft_decode(path: str, spec: ImageSpec) -> np.ndarray:
    """photoindex's decode: JPEG draft (DCT-domain downscale), EXIF, resize."""
    return decode_photo(Path(path), spec)[0]


def _noop(_: int) -> int:
    return 0


def pool_decode_rate(kind: str, paths: Sequence[Path], spec: ImageSpec, workers: int) -> float:
    """Photos per second decoding `paths` in a plain process pool of `workers` (startup not counted)."""
    fn = functools.partial(full_decode if kind == "full" else draft_decode, spec=spec)
    ctx = multiprocessing.get_context("forkserver")
    with ctx.Pool(workers) as pool:
        pool.map(_noop, range(workers))  # workers started and imported before the clock starts
        start = time.perf_counter()
        for _ in pool.imap_unordered(fn, [str(p) for p in paths], chunksize=1):
            pass
        return len(paths) / (time.perf_counter() - start)


def decodepool_rate(
    paths: Sequence[Path], spec: ImageSpec, workers: int, max_pixels: int, thumbnail_size: int = 0,
    thumbnail_folder: Path | None = None,
) -> float:
    """Photos per second through the indexer's own DecodePool (read, hash, draft decode, pipe back);
    `thumbnail_size` > 0: each worker also makes the photo's thumbnail and writes it to a fresh cache in
    `thumbnail_folder` (emptied first), as the indexer's do."""
    thumbnails = None
    if thumbnail_size > 0:
        import shutil

        assert thumbnail_folder is not None, "thumbnails need a folder"
        shutil.rmtree(thumbnail_folder, ignore_errors=True)
        thumbnails = ThumbnailStore(thumbnail_folder, size=thumbnail_size)
    return decodepool_pass(paths, spec, workers, max_pixels, thumbnails)[0]


def decodepool_pass(
    paths: Sequence[Path], spec: ImageSpec, workers: int, max_pixels: int, thumbnails: ThumbnailStore | None = None
) -> tuple[float, float, float]:
    """(photos per second, CPU seconds of this process tree, of this process alone) of one pass through the
    indexer's DecodePool, its workers' start included."""
    from benchmarks.memory import tree_cpu_seconds

    pool = DecodePool(spec, workers=workers, max_pixels=max_pixels, thumbnails=thumbnails)
    cpu, own = tree_cpu_seconds(), time.process_time()
    start = time.perf_counter()
    n = sum(1 for r in pool.run(DecodeJob(i, str(p)) for i, p in enumerate(paths)) if r.ok)
    seconds = time.perf_counter() - start
    if n != len(paths):
        raise RuntimeError(f"DecodePool decoded {n} of {len(paths)} photos")
    return n / seconds, tree_cpu_seconds() - cpu, time.process_time() - own


def naive_rate(paths: Sequence[Path], encoder: ImageEncoder, spec: ImageSpec) -> float:
    """Axera's demo loop: for each photo, full decode then a batch-1 encode, one after the other."""
    start = time.perf_counter()
    for p in paths:
        pixels = full_decode(str(p), spec)
        encoder.encode(pixels[None])
    return len(paths) / (time.perf_counter() - start)


# --- the NPU stand-in ---------------------------------------------------------------------------


class NpuStandinSession(FixedSpecs):
    """Shaped like an axengine session of Axera's 2023 image build: uint8 [1,S,S,3] in, [1,D] out.

    A run costs 4.2 ms of wall time and no CPU, as the NPU does; the vector is a fixed projection of
    the image's mean colour plus a pixel-seeded component, so different photos get different vectors.
    """

    provider = "npu-standin:4.2ms"

    def __init__(self, size: int, dim: int, seconds: float = NPU_SECONDS_PER_IMAGE) -> None:
        self.seconds = seconds
        self.dim = dim
        self._inputs = [TensorSpec("images", (1, size, size, 3), np.dtype(np.uint8))]
        self._outputs = [TensorSpec("image_features", (1, dim), np.dtype(np.float32))]
        self._projection = np.random.default_rng(7).standard_normal((3, dim)).astype(np.float32)
        self.runs = 0

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Wait out the NPU's time per image; strict about the compiled shape and dtype as axengine is."""
        x = feeds["images"]
        assert x.shape == self._inputs[0].shape and x.dtype == np.uint8, (x.shape, x.dtype)
        deadline = time.perf_counter() + self.seconds
        # Read from a 1-in-8 grid of pixels: the mean of all 196,608 took ~2 ms of this process's CPU per
        # image, which the NPU does not spend (and every CPU-ms here is taken from the decode workers).
        grid = x[0, ::8, ::8]
        mean = grid.reshape(-1, 3).mean(axis=0, dtype=np.float32) / 255.0
        detail = np.random.default_rng(int(grid[::2, ::2].sum())).standard_normal(self.dim).astype(np.float32)
        out = (mean @ self._projection + 0.1 * detail)[None, :]
        left = deadline - time.perf_counter()
        if left > 0:
            time.sleep(left)
        self.runs += 1
        return [out]


def npu_encoder(spec: ImageSpec, dim: int) -> ImageEncoder:
    """An ImageEncoder over the NPU stand-in (batch 1, uint8 NHWC), as the indexer would get on the board."""
    return ImageEncoder(NpuStandinSession(spec.size, dim), spec, dim)


def npu_encoder_rate(spec: ImageSpec, dim: int, batch: int, min_seconds: float) -> float:
    """The stand-in's own throughput (close to 1 / 4.2 ms = 238 images/s)."""
    enc = npu_encoder(spec, dim)
    x = np.zeros((batch, spec.size, spec.size, 3), dtype=np.uint8)

    def step() -> int:
        enc.encode(x)
        return batch

    return timed_rate(step, min_seconds)
