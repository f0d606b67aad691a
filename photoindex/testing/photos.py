"""Generated photo-like image files for tests and benchmarks (Pillow only; deterministic by seed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

# Pillow format names by file suffix; anything else is left to Pillow's own suffix table.
_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".heic": "HEIF", ".heif": "HEIF"}


def _format_for(path: Path, fmt: str | None) -> str:
    name = (
        fmt or _FORMATS.get(path.suffix.lower()) or Image.registered_extensions().get(path.suffix.lower(), "")
    )
    if not name:
        raise ValueError(f"{path}: cannot tell the image format from the suffix; pass fmt=")
    name = name.upper()
    if name in ("HEIF", "HEIC", "AVIF"):
        # HEIC support is a plugin (the `heif` extra); register it only when a test asks for one.
        from pillow_heif import register_heif_opener

        register_heif_opener()
        name = "HEIF"
    return name


def _smooth_noise(
    rng: np.random.Generator, size: tuple[int, int], cells: int, amplitude: float
) -> np.ndarray:
    """Low-frequency texture: a coarse random grid upsampled bicubically to `size` (w, h), zero mean."""
    w, h = size
    gw, gh = max(2, w // cells), max(2, h // cells)
    grid = rng.uniform(-1.0, 1.0, size=(gh, gw)).astype(np.float32)
    img = Image.fromarray(grid, mode="F").resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.float32) * amplitude


def _save(
    img: Image.Image, path: Path, fmt: str, exif: dict[int, Any] | Image.Exif | None, **options: Any
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(exif, Image.Exif):
        options["exif"] = exif.tobytes()
    elif exif:
        tags = Image.Exif()
        for tag, value in exif.items():
            tags[tag] = value
        options["exif"] = tags.tobytes()

    if fmt == "JPEG":
        options.setdefault("quality", 90)
    img.save(path, format=fmt, **options)
    return path


def make_photo(
    path: Path,
    colour: tuple[int, int, int],
    size: tuple[int, int] = (320, 240),
    *,
    fmt: str | None = None,
    seed: int = 0,
    exif: dict[int, Any] | Image.Exif | None = None,
) -> Path:
    """Write a photo-like image dominated by `colour` (lighting, texture, grain), distinct per seed.

    The variations are zero-mean, so the photo's average colour stays close to `colour`; `exif`
    maps EXIF tag numbers to values (274 is the orientation). The format follows the suffix unless
    `fmt` names one.
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    w, h = size
    base = np.asarray(colour, dtype=np.float32)
    # Soft lighting across the frame, blotchy texture, then per-pixel sensor grain.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    light = (np.cos(angle) * (xx / max(w - 1, 1) - 0.5) + np.sin(angle) * (yy / max(h - 1, 1) - 0.5)) * 24.0
    texture = _smooth_noise(rng, size, cells=16, amplitude=14.0)
    shade = (light + texture)[:, :, None]
    grain = rng.normal(0.0, 6.0, size=(h, w, 3)).astype(np.float32)
    pixels = np.clip(base[None, None, :] + shade + grain, 0, 255).astype(np.uint8)
    img = Image.fromarray(pixels, mode="RGB")
    # A few thin strokes give JPEG real edges to ring on without moving the average colour much.
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = int(rng.integers(0, w)), int(rng.integers(0, h))
        tone = tuple(int(np.clip(c + rng.uniform(-40, 40), 0, 255)) for c in colour)
        draw.line((x0, y0, x1, y1), fill=tone, width=max(1, min(w, h) // 80))
    return _save(img, path, _format_for(path, fmt), exif)


def camera_exif(
    *,
    taken: str | None = None,
    offset: str | None = None,
    datetime_only: str | None = None,
    make: str | None = None,
    model: str | None = None,
    lens: str | None = None,
    gps: tuple[float, float] | tuple[float, float, float] | None = None,
) -> Image.Exif:
    """A camera's EXIF block: DateTimeOriginal ("2024:06:15 18:30:00") with OffsetTimeOriginal ("+08:00"),
    or only the file's DateTime tag; make, model, lens; GPS as signed decimal degrees (and metres)."""
    exif = Image.Exif()
    if make:
        exif[0x010F] = make
    if model:
        exif[0x0110] = model
    if datetime_only:
        exif[0x0132] = datetime_only
    sub = exif.get_ifd(0x8769)
    if taken:
        sub[0x9003] = taken
    if offset:
        sub[0x9011] = offset
    if lens:
        sub[0xA434] = lens
    if gps is not None:
        g = exif.get_ifd(0x8825)
        lat, lon = gps[0], gps[1]

        def dms(value: float) -> tuple[float, float, float]:
            value = abs(value)
            d = int(value)
            m = int((value - d) * 60)
            return (float(d), float(m), round((value - d - m / 60) * 3600, 4))

        g.update({1: "N" if lat >= 0 else "S", 2: dms(lat), 3: "E" if lon >= 0 else "W", 4: dms(lon)})
        if len(gps) == 3:
            g.update({5: b"\x00" if gps[2] >= 0 else b"\x01", 6: abs(float(gps[2]))})  # type: ignore[misc]
    return exif


def make_large_photo(path: Path, seed: int, size: tuple[int, int] = (4000, 3000), quality: int = 90) -> Path:
    """Write a realistic camera-sized JPEG (sky gradient, textured ground, edged shapes) for benchmarks."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    w, h = size
    yy = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    sky_top = rng.uniform([40, 90, 160], [110, 160, 230]).astype(np.float32)
    ground = rng.uniform([50, 60, 20], [150, 130, 90]).astype(np.float32)
    horizon = rng.uniform(0.35, 0.65)
    t = np.clip((yy - horizon) * 40.0, 0.0, 1.0)  # a soft horizon line
    sky = sky_top + (np.float32(230) - sky_top) * (yy / max(horizon, 1e-3)).clip(0, 1)
    rows = sky * (1 - t) + ground * t  # [h, 1, 3]
    # Texture at two scales (clouds / foliage), shared by all channels, then grain per channel.
    texture = _smooth_noise(rng, size, cells=200, amplitude=25.0) + _smooth_noise(
        rng, size, cells=12, amplitude=10.0
    )
    pixels = rows + texture[:, :, None]
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        cx, cy = int(rng.integers(0, w)), int(rng.integers(int(h * horizon), h))
        rw, rh = int(rng.integers(w // 40, w // 8)), int(rng.integers(h // 40, h // 6))
        fill = tuple(int(v) for v in rng.integers(0, 256, size=3))
        if rng.random() < 0.5:
            draw.rectangle((cx - rw, cy - rh, cx + rw, cy + rh), fill=fill, outline=(20, 20, 20), width=6)
        else:
            draw.ellipse((cx - rw, cy - rh, cx + rw, cy + rh), fill=fill)
    # Sensor grain over everything, shapes included, so no region compresses like flat paint.
    grain = rng.normal(0.0, 4.0, size=(h, w, 3)).astype(np.float32)
    noisy = np.clip(np.asarray(img, dtype=np.float32) + grain, 0, 255).astype(np.uint8)
    return _save(Image.fromarray(noisy, mode="RGB"), path, "JPEG", None, quality=quality)


def make_photo_tree(
    root: Path,
    count: int,
    *,
    seed: int = 0,
    size: tuple[int, int] = (96, 72),
    folders: int = 6,
) -> dict[Path, str]:
    """A nested library of `count` coloured photos (JPEG and PNG, some non-ASCII names); path -> colour name.

    Folder `i % folders` holds photo `i`; every third folder has a subfolder, and names mix
    ASCII, accents and CJK so search output and the catalog are exercised with real-world names.
    """
    from photoindex.testing.models import COLOURS

    names = list(COLOURS)
    tree: dict[Path, str] = {}
    decorations = ["", "café-", "照片-", "été_"]
    for i in range(count):
        colour = names[(i + seed) % len(names)]
        folder = root / f"album-{i % folders:02d}"
        if (i % folders) % 3 == 0:
            folder = folder / ("sub" if i % 2 else "子文件夹")
        ext = ".png" if i % 7 == 0 else ".jpg"
        path = folder / f"{decorations[i % len(decorations)]}{colour}-{i:04d}{ext}"
        make_photo(path, COLOURS[colour], size=size, seed=seed * 100_003 + i)
        tree[path] = colour
    return tree
