#!/usr/bin/env python3
"""Distinct synthetic camera photos for the rclip comparison (the peer kit's generator).

Each photo: a smooth colour field, a few soft discs and Gaussian noise (sigma 6), saved as JPEG q90.
Distinct content matters: rclip skips files whose hash it has already indexed.

usage: gen_photos.py OUT_DIR FIRST COUNT [WIDTH HEIGHT]     (names IMG_{seed:04d}.jpg; idempotent)
"""

import os
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image


def pixels(seed, w, h):
    rng = np.random.default_rng(seed)
    gw, gh = rng.integers(3, 8), rng.integers(3, 6)
    coarse = (rng.random((gh, gw, 3)) * 255).astype(np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
    base *= np.linspace(1.15, 0.75, h, dtype=np.float32)[:, None, None]
    for _ in range(rng.integers(2, 6)):
        cx, cy = rng.integers(0, w), rng.integers(0, h)
        r = rng.integers(h // 12, h // 3)
        color = rng.random(3).astype(np.float32) * 255
        x0, x1 = max(0, int(cx - r)), min(w, int(cx + r) + 1)
        y0, y1 = max(0, int(cy - r)), min(h, int(cy + r) + 1)
        yy, xx = np.ogrid[y0:y1, x0:x1]
        d = np.sqrt(((xx - cx) ** 2 + (yy - cy) ** 2).astype(np.float32))
        alpha = np.clip((r - d) / (r * 0.15), 0, 1)[..., None]
        sub = base[y0:y1, x0:x1] * (1 - alpha) + color * alpha
        base = base.astype(np.result_type(base, sub), copy=False)
        base[y0:y1, x0:x1] = sub
    base += rng.normal(0, 6, size=base.shape).astype(np.float32)
    return np.clip(base, 0, 255).astype(np.uint8)


def make(args):
    path, seed, w, h = args
    if os.path.exists(path):
        return path, False
    img = Image.fromarray(pixels(seed, w, h), "RGB")
    tmp = path + ".tmp"
    img.save(tmp, "JPEG", quality=90)
    os.replace(tmp, path)
    return path, True


def main():
    out, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    w = int(sys.argv[4]) if len(sys.argv) > 4 else 4000
    h = int(sys.argv[5]) if len(sys.argv) > 5 else 3000
    os.makedirs(out, exist_ok=True)
    jobs = [(os.path.join(out, f"IMG_{i:04d}.jpg"), i, w, h) for i in range(first, first + count)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as ex:
        made = sum(c for _, c in ex.map(make, jobs))
    print(f"{out}: {count} images ({made} newly written)")


if __name__ == "__main__":
    main()
