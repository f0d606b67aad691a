"""The benchmark's inputs, made once and cached under benchmarks/out/cache: bundles and photos.

Photos are camera-like 12 MP JPEGs (quality 90) from `photoindex.testing.make_large_photo`,
generated in parallel; bundles are the generated ViT-B/32-sized one (real compute, random weights)
and its int8 variant from `photoindex.quantize`. A cache entry is rebuilt when its parameters change.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
from pathlib import Path

from photoindex.inference.bundle import Bundle, resolve_bundle


def _bundle(path: Path) -> Bundle:
    return resolve_bundle(str(path), path.parent)


def model_bundle(cache: Path, kind: str) -> Bundle:
    """The fp32 bundle of `kind` ("vit-b32" or "toy"), built on first use."""
    from photoindex.testing import make_bundle

    fp32_dir = cache / "bundles" / kind
    if not (fp32_dir / "manifest.toml").is_file():
        shutil.rmtree(fp32_dir, ignore_errors=True)
        make_bundle(fp32_dir, kind)  # type: ignore[arg-type]
    return _bundle(fp32_dir)


def model_bundles(cache: Path, kind: str) -> tuple[Bundle, Bundle]:
    """(fp32, int8) bundles of `kind` ("vit-b32" or "toy"), built on first use."""
    from photoindex.inference.quantize import quantize_bundle

    fp32 = model_bundle(cache, kind)
    int8_dir = cache / "bundles" / f"{kind}-int8"
    if not (int8_dir / "manifest.toml").is_file():
        quantize_bundle(fp32, int8_dir, overwrite=True)
    return fp32, _bundle(int8_dir)


def _make_one(args: tuple[str, int, tuple[int, int]]) -> str:
    from photoindex.testing import make_large_photo

    path, seed, size = args
    part = Path(path + ".part")  # renamed when complete, so an interrupted run leaves no half photo
    make_large_photo(part, seed, size=size, quality=90)
    part.replace(path)
    return path


def photo_set(cache: Path, count: int, size: tuple[int, int], workers: int) -> list[Path]:
    """`count` photo-like JPEGs of `size`, generated in `workers` processes on first use."""
    folder = cache / f"photos-{size[0]}x{size[1]}"
    stamp = folder / ".complete.json"
    wanted = {"count": count, "size": list(size), "quality": 90}
    paths = [folder / f"IMG_{i:04d}.jpg" for i in range(count)]
    if stamp.is_file():
        done = json.loads(stamp.read_text())
        if done.get("size") == wanted["size"] and done.get("count", 0) >= count and all(p.is_file() for p in paths):
            return paths
    folder.mkdir(parents=True, exist_ok=True)
    todo = [(str(p), 1000 + i, size) for i, p in enumerate(paths) if not p.is_file()]
    if todo:
        ctx = multiprocessing.get_context("forkserver")
        with ctx.Pool(max(1, workers)) as pool:
            for _ in pool.imap_unordered(_make_one, todo, chunksize=1):
                pass
    stamp.write_text(json.dumps(wanted))
    return paths
