"""Photos to upright 8-bit RGB pixels of the model's input size: safe decoding, EXIF orientation, colour modes.

What the model itself takes (normalized floats, bytes) is the image encoder's business (inference/encoders.py).

Every failure is an `ImageError` whose `reason` is one of: "unreadable" (missing, permission denied,
not a regular file), "empty" (zero bytes), "unsupported-format" (not an allowed image format),
"missing-decoder" (HEIC/HEIF without a working pillow-heif), "too-large" (more pixels than
`max_pixels`), "truncated" (ends early: maybe still being written),
"corrupt" (the decoder rejected the data). No Pillow or OS exception escapes `decode_photo` or `probe`.
"""

from __future__ import annotations

import importlib.util
import io
import math
import os
import stat
import struct
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from photoindex.errors import ImageError
from photoindex.inference.bundle import ImageSpec

_HEIF_AVAILABLE = importlib.util.find_spec("pillow_heif") is not None

ALLOWED_FORMATS: frozenset[str] = frozenset(
    {"JPEG", "MPO", "PNG", "WEBP", "BMP", "GIF", "TIFF"} | ({"HEIF"} if _HEIF_AVAILABLE else set())
)
"""Pillow format names that may be decoded; everything else (EPS runs Ghostscript, PSD, ...) is refused."""

DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's own hard limit, and `[scan] max_image_pixels`' default
# JPEG drafts keep every side >= this many times the model input. 1: a 12 MP photo decodes at
# 1/8 scale in ~18 ms instead of ~22 at 1/4, 49 dB from a full decode (2 gives 55 dB), and the
# ViT-B/32 image vectors stay within cosine 0.99998 of a full decode's (int8 weights: 0.9996).
DRAFT_FACTOR = 1

_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}

# Exceptions Pillow's decoders raise on malformed data (its own `Image.open` treats most of these
# as "not this format"). Caught only around opening, decoding and converting a photo.
_DECODER_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
)

_TOO_LARGE_HINT = "raise `[scan] max_image_pixels` in config.toml if this photo is genuine (e.g. a panorama)"
_TRUNCATED_HINT = "the file may still be being written (it is retried when it changes); if not, re-save it"
_CORRUPT_HINT = "open and re-save the photo in an image editor, or exclude it"

# What to do about a photo that failed, by reason (the status page shows it beside each failure).
_REASON_HINTS = {
    "unreadable": "check that the file exists and that photoindex may read it",
    "empty": "it may still be being written (it is retried when it changes); else delete it",
    "unsupported-format": "convert it to JPEG or PNG, or leave its ending out of `[scan] extensions`",
    "too-large": _TOO_LARGE_HINT,
    "truncated": _TRUNCATED_HINT,
    "corrupt": _CORRUPT_HINT,
    "crashed": "the file may be damaged; it is retried when it changes",
    "timeout": "the file may be damaged; it is retried when it changes (or raise `[index] decode_timeout`)",
}


def hint_for(reason: str) -> str | None:
    """What to do about a photo that failed for `reason` (the first word of its catalog `error`)."""
    return _REASON_HINTS.get(reason)


# Magic numbers of formats people name `.jpg` by mistake, to say what a refused file is.
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"8BPS", "a Photoshop document (PSD)"),
    (0, b"%!PS", "a PostScript/EPS file"),
    (0, b"\xc5\xd0\xd3\xc6", "an EPS file"),
    (0, b"%PDF", "a PDF document"),
    (0, b"\x00\x00\x01\x00", "an icon (ICO)"),
    (0, b"\xff\x0a", "a JPEG XL image"),
    (4, b"JXL ", "a JPEG XL image"),
    (0, b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"),
    (8, b"avif", "an AVIF image"),
    (8, b"heic", "a HEIC image"),
    (8, b"heix", "a HEIC image"),
    (8, b"mif1", "a HEIF image"),
    (4, b"ftyp", "a video (MP4/QuickTime)"),
    (0, b"RIFF", "a RIFF file that is not WebP (e.g. AVI or WAV)"),
    (0, b"PK\x03\x04", "a ZIP archive"),
    (0, b"\x1f\x8b", "a gzip archive"),
    (0, b"<?xml", "an XML/SVG document"),
    (0, b"<svg", "an SVG drawing"),
    (0, b"FUJIFILMCCD-RAW", "a Fujifilm RAF raw file"),
)
# Signatures of allowed formats: a file that starts like one but cannot be opened is broken, not foreign.
_ALLOWED_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"GIF87a", "GIF"),
    (0, b"GIF89a", "GIF"),
    (0, b"BM", "BMP"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (8, b"WEBP", "WEBP"),
)


@dataclass(frozen=True)
class PhotoInfo:
    """Catalog metadata of a photo; width and height as displayed (after EXIF orientation)."""

    width: int
    height: int
    format: str
    taken_at: str | None = None  # ISO 8601, from EXIF DateTimeOriginal (else DateTime)
    camera_make: str | None = None
    camera_model: str | None = None
    gps_lat: float | None = None  # decimal degrees, south negative
    gps_lon: float | None = None  # decimal degrees, west negative
    gps_alt: float | None = None  # metres above sea level, below negative
    lens: str | None = None  # EXIF LensModel (with LensMake when the model does not name it)
    taken_source: str | None = None  # 'exif' (DateTimeOriginal) or 'exif-datetime' (the DateTime tag)


def decode_photo(
    path: Path,
    spec: ImageSpec,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    upright: Callable[[Image.Image], None] | None = None,
) -> tuple[np.ndarray, PhotoInfo]:
    """Decode a photo file into upright uint8 RGB [S,S,3] pixels, resized and cropped as `spec` says,
    and its metadata; raises `ImageError`. The encoder turns the pixels into what its model takes.

    `upright`, when given, sees the decoded image once it is upright (drafted: every side at least
    the model input's), e.g. to make its thumbnail without decoding the file a second time.
    """
    with _opened(path, max_pixels) as im:
        original = im.size
        try:
            # DCT-domain downscaling (1/2..1/8) for JPEG, an embedded thumbnail for HEIF; both keep
            # every side >= DRAFT_FACTOR x the model input (the shorter one is what the crop keeps),
            # and the antialiased resize below does the rest.
            im.draft("RGB", (DRAFT_FACTOR * spec.size, DRAFT_FACTOR * spec.size))
            im.load()
        except _DECODER_ERRORS as exc:
            raise _decode_error(path, exc) from exc
        exif = _read_exif(im, decoded=True)
        drafted = im.size
        try:
            ImageOps.exif_transpose(im, in_place=True)
        except _DECODER_ERRORS:
            pass  # a broken EXIF block must not lose a photo whose pixels are fine
        # Orientations 5..8 swap the sides; comparing sizes also covers what exif_transpose decided.
        swapped = im.size != drafted
        info = _photo_info(im, exif, original[::-1] if swapped else original)
        if upright is not None:
            try:
                upright(im)
            except _DECODER_ERRORS:
                pass  # a side product (a thumbnail) failing must not lose the photo
        try:
            # Images without a draft (PNG, WebP, TIFF, ...) are box-reduced by an integer factor first,
            # keeping 3x the resized size: 12 MP in ~14 ms instead of ~60, 55 dB from the exact path.
            array = _preprocess(im, spec, reducing_gap=3.0)
        except _DECODER_ERRORS as exc:
            raise _decode_error(path, exc) from exc
    return array, info


def decode_for_text(path: Path, long_side: int, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, float]:
    """RGB uint8 [H,W,3] for the text detector, the longer side at most `long_side`, and the factor from
    these pixels to the photo's displayed ones (boxes are stored in the latter); raises `ImageError`.

    A JPEG is drafted at the smallest DCT scale whose longer side still reaches `long_side`, so a
    12 MP photo is decoded at 1/2 scale for a 1600-pixel detector instead of in full (docs/ocr.md).
    """
    with _opened(path, max_pixels) as im:
        w, h = im.size
        try:
            scale = 1
            while scale < 8 and max(w, h) // (scale * 2) >= long_side:
                scale *= 2
            if scale > 1:
                im.draft("RGB", (-(-w // scale), -(-h // scale)))
            im.load()
        except _DECODER_ERRORS as exc:
            raise _decode_error(path, exc) from exc
        drafted = im.size
        try:
            ImageOps.exif_transpose(im, in_place=True)
        except _DECODER_ERRORS:
            pass
        displayed = (w, h) if im.size == drafted else (h, w)
        try:
            rgb = _rgb_or_rgba(im)
            if max(rgb.size) > long_side:
                factor = long_side / max(rgb.size)
                size = (max(1, round(rgb.size[0] * factor)), max(1, round(rgb.size[1] * factor)))
                rgb = rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
            if rgb.mode == "RGB":
                pixels = np.array(rgb, dtype=np.uint8)
            else:
                pixels = np.rint(_composite_on_white(np.asarray(rgb, dtype=np.float32))).astype(np.uint8)
        except _DECODER_ERRORS as exc:
            raise _decode_error(path, exc) from exc
    return pixels, displayed[0] / pixels.shape[1]


@contextmanager
def open_upright(
    path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, fit: int | None = None, data: bytes | None = None
) -> Iterator[Image.Image]:
    """A photo decoded and turned upright, for display (thumbnails, the web page's view); raises `ImageError`.

    The same allow-list and bomb limit as indexing. `fit`: JPEG and HEIF are decoded at the
    smallest draft scale that keeps every side at least `fit` pixels. `data`: decode these bytes
    (an uploaded example photo, never written to disk) instead of the file; `path` then only names it.
    """
    with _opened(path, max_pixels, data) as im:
        try:
            if fit is not None:
                im.draft("RGB", (fit, fit))
            im.load()
        except _DECODER_ERRORS as exc:
            raise _decode_error(path, exc) from exc
        try:
            ImageOps.exif_transpose(im, in_place=True)
        except _DECODER_ERRORS:
            pass
        yield im


def probe(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> PhotoInfo:
    """Metadata of a photo from its header, without decoding the pixels; raises `ImageError`."""
    with _opened(path, max_pixels) as im:
        exif = _read_exif(im, decoded=False)
        w, h = im.size
        orientation = exif.get(0x0112, 1) if exif is not None else 1
        return _photo_info(im, exif, (h, w) if orientation in (5, 6, 7, 8) else (w, h))


def preprocess(image: Image.Image, spec: ImageSpec) -> np.ndarray:
    """uint8 RGB [S,S,3] pixels from an upright decoded image, resized and cropped as `spec` says.

    Any Pillow mode is accepted (alpha is composited on white); the resize is the reference one.
    """
    return _preprocess(image, spec, reducing_gap=None)


def _preprocess(image: Image.Image, spec: ImageSpec, reducing_gap: float | None) -> np.ndarray:
    """`preprocess`, optionally reducing by an integer factor before the exact resize."""
    im = _rgb_or_rgba(image)
    resized, crop = _geometry(im.size, spec)
    # Pillow resizes RGBA premultiplied, so transparent pixels' hidden colour does not bleed in.
    im = im.resize(resized, _RESAMPLE[spec.interpolation], reducing_gap=reducing_gap)
    if crop is not None:
        im = im.crop(crop)
    if im.mode == "RGB":
        return np.array(im, dtype=np.uint8)
    # Rounded to 8 bits like any opaque photo: every model, whatever input it takes, sees 8-bit pixels.
    return np.rint(_composite_on_white(np.asarray(im, dtype=np.float32))).astype(np.uint8)


# --- geometry -----------------------------------------------------------------------------------


def _geometry(
    size: tuple[int, int], spec: ImageSpec
) -> tuple[tuple[int, int], tuple[int, int, int, int] | None]:
    """Resized size and crop box: a squash, or torchvision's Resize(S) + CenterCrop(S)."""
    w, h = size
    s = spec.size
    if spec.resize == "squash":
        return (s, s), None
    # torchvision's Resize(int): the shorter side becomes S, the longer one int(S * long / short).
    if w <= h:
        new_w, new_h = s, int(s * h / w)
    else:
        new_w, new_h = int(s * w / h), s
    # torchvision's CenterCrop rounding (Python's round, half to even). Resizing everything and then
    # cropping (rather than resampling only the crop's box) is what the reference does: Pillow passes a
    # box as float32 and rounds differently, up to 9 levels at hard edges.
    left = int(round((new_w - s) / 2.0))
    top = int(round((new_h - s) / 2.0))
    return (new_w, new_h), (left, top, left + s, top + s)


# --- colour modes -------------------------------------------------------------------------------


def _rgb_or_rgba(im: Image.Image) -> Image.Image:
    """The image as 8-bit RGB, or RGBA when it carries transparency (composited after resizing)."""
    mode = im.mode
    if mode in ("RGB", "RGBA"):
        return im
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _high_depth_to_l(im).convert("RGB")
    if mode in ("LA", "PA", "La", "RGBa") or im.has_transparency_data:
        return im.convert("RGBA")
    try:
        return im.convert("RGB")  # 1, L, P, CMYK, YCbCr, RGBX, LAB, HSV
    except ValueError as exc:
        raise ValueError(f"colour mode {mode} cannot be converted to RGB") from exc


def _high_depth_to_l(im: Image.Image) -> Image.Image:
    """16/32-bit greyscale scaled (not clipped) to 8 bits."""
    values = np.asarray(im)
    if im.mode.startswith("I;16"):
        scaled = values.astype(np.float32) / 257.0  # the declared depth is 16 bits: 65535 -> 255
    elif im.mode == "I":
        # 32-bit integers carry no declared range: keep 8-bit data as is, treat what fits in 16 bits
        # as 16-bit samples (how Pillow used to load 16-bit PNGs), and stretch anything wider.
        lo, hi = int(values.min()), int(values.max())
        if lo >= 0 and hi <= 255:
            scaled = values.astype(np.float32)
        elif lo >= 0 and hi <= 65535:
            scaled = values.astype(np.float32) / 257.0
        else:
            scaled = (values.astype(np.float64) - lo) * (255.0 / (hi - lo))
    else:  # "F": samples in [0, 1] are the usual convention; anything else is stretched
        finite = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        low, high = float(finite.min()), float(finite.max())
        if low >= 0.0 and high <= 1.0:
            scaled = finite * 255.0
        else:
            scaled = (finite - low) * (255.0 / (high - low)) if high > low else np.zeros_like(finite)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), "L")


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """RGB float [H,W,3] in 0..255 of an RGBA float array laid over a white background."""
    alpha = rgba[..., 3:4] * (1.0 / 255.0)
    return rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)


# --- opening safely -----------------------------------------------------------------------------


@contextmanager
def _opened(path: Path, max_pixels: int, data: bytes | None = None) -> Iterator[Image.Image]:
    """An opened (not decoded) image from the allow-list whose header size is within `max_pixels`."""
    source = _open_file(path) if data is None else _open_bytes(path, data)
    with source as fh, _pillow_ceiling(max_pixels), warnings.catch_warnings():
        # Our own `max_pixels` check is the limit; Pillow's warning would only spam the log. (Decoding
        # runs in worker processes, where catch_warnings' process-wide state is safe.)
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(fh, formats=_open_formats())
        except Image.DecompressionBombError as exc:
            raise ImageError(
                path, "too-large", f"the image is too large to decode safely ({exc})", _TOO_LARGE_HINT
            ) from exc
        except UnidentifiedImageError as exc:
            raise _unidentified(path, fh) from exc
        except _DECODER_ERRORS as exc:
            raise _decode_error(path, exc) from exc
        with im:
            w, h = im.size
            if w * h > max_pixels:
                raise ImageError(
                    path,
                    "too-large",
                    f"the image has {w}x{h} = {w * h:,} pixels, more than the limit of {max_pixels:,}",
                    _TOO_LARGE_HINT,
                )
            try:
                yield im
            except Image.DecompressionBombError as exc:
                raise ImageError(
                    path, "too-large", f"the image is too large to decode safely ({exc})", _TOO_LARGE_HINT
                ) from exc
            except MemoryError as exc:
                raise ImageError(
                    path, "too-large", "not enough memory to decode the image", _TOO_LARGE_HINT
                ) from exc


@contextmanager
def _open_file(path: Path) -> Iterator[IO[bytes]]:
    """The file opened for reading; refuses non-regular files (a FIFO would block) and empty ones."""
    try:
        # O_NONBLOCK: opening a FIFO named .jpg must not wait for a writer; no effect on regular files.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ImageError(
            path,
            "unreadable",
            f"cannot open the file: {exc.strerror or exc}",
            "check that the file exists and that photoindex may read it",
        ) from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise ImageError(path, "unreadable", "not a regular file", "exclude it from the photo folders")
    with os.fdopen(fd, "rb") as fh:
        if st.st_size == 0:
            raise ImageError(
                path, "empty", "the file is empty (0 bytes)", "it may still be being written; else delete it"
            )
        yield fh


@contextmanager
def _open_bytes(path: Path, data: bytes) -> Iterator[IO[bytes]]:
    """Bytes in memory as the file `_opened` reads; refuses empty ones as `_open_file` does."""
    if not data:
        raise ImageError(path, "empty", "the file is empty (0 bytes)", "choose another photo")
    yield io.BytesIO(data)


_ceiling_lock = threading.Lock()
_ceiling_users = 0
_ceiling_saved: int | None = None


@contextmanager
def _pillow_ceiling(max_pixels: int) -> Iterator[None]:
    """Raise Pillow's global bomb limit (never to None) while decoding, when `max_pixels` exceeds it.

    Pillow raises DecompressionBombError above 2 * MAX_IMAGE_PIXELS wherever it looks, so a panorama
    allowed by `[scan] max_image_pixels` needs a higher ceiling for the duration of the decode. Users
    are counted so concurrent decodes in threads restore the original value only when the last ends.
    """
    global _ceiling_users, _ceiling_saved
    with _ceiling_lock:
        base = _ceiling_saved if _ceiling_users else Image.MAX_IMAGE_PIXELS
        needed = base is not None and max_pixels > 2 * base
        if needed:
            if _ceiling_users == 0:
                _ceiling_saved = Image.MAX_IMAGE_PIXELS
            _ceiling_users += 1
            Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, max_pixels)
    try:
        yield
    finally:
        if needed:
            with _ceiling_lock:
                _ceiling_users -= 1
                if _ceiling_users == 0:
                    Image.MAX_IMAGE_PIXELS = _ceiling_saved
                    _ceiling_saved = None


_formats_lock = threading.Lock()
_formats_cache: tuple[str, ...] | None = None


def decodable_formats() -> tuple[str, ...]:
    """The allowed formats this process can decode now (HEIF only with a working pillow-heif)."""
    return _open_formats()


def _open_formats() -> tuple[str, ...]:
    """The allowed formats that Pillow can open here; registers pillow-heif's opener on first use."""
    global _formats_cache
    with _formats_lock:
        if _formats_cache is None:
            if _HEIF_AVAILABLE:
                try:
                    from pillow_heif import register_heif_opener

                    register_heif_opener()
                except ImportError:
                    pass  # a broken install: HEIF is then left out below, not a crash per photo
            Image.init()
            # Image.open raises KeyError for a requested format without a registered plugin.
            _formats_cache = tuple(sorted(f for f in ALLOWED_FORMATS if f in Image.OPEN))
        return _formats_cache


def _unidentified(path: Path, fh: IO[bytes]) -> ImageError:
    """The error for a file no allowed plugin accepted: broken if it looks like one, else unsupported."""
    fh.seek(0)
    head = fh.read(64)
    fmt = next((f for at, sig, f in _ALLOWED_MAGIC if head[at : at + len(sig)] == sig), None)
    if fmt is not None and fmt in Image.OPEN:
        # Image.open swallows the plugin's reason; ask the one plugin again to tell a header cut
        # short (a file still being written) from a damaged one.
        fh.seek(0)
        try:
            Image.OPEN[fmt][0](fh, "").close()
        except _DECODER_ERRORS as exc:
            return _decode_error(path, exc)
        return ImageError(path, "corrupt", "the image header is damaged", _CORRUPT_HINT)
    kind = next((name for at, sig, name in _MAGIC if head[at : at + len(sig)] == sig), None)
    if kind in ("a HEIC image", "a HEIF image"):
        # Its own reason: the indexer retries such photos once the decoder is installed.
        return ImageError(
            path,
            "missing-decoder",
            f"the file is {kind}",
            "install pillow-heif: pip install 'photoindex[heif]'",
        )
    if kind is None and head and all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        kind = "a text file"
    allowed = ", ".join(sorted(ALLOWED_FORMATS))
    what = f"the file is {kind}, not a supported image" if kind else "the file is not a supported image"
    return ImageError(
        path,
        "unsupported-format",
        what,
        f"photoindex reads {allowed}; convert it or exclude it from `[scan] extensions`",
    )


def _decode_error(path: Path, exc: BaseException) -> ImageError:
    """The typed error for an exception raised by Pillow while opening or decoding."""
    if isinstance(exc, OSError) and exc.errno is not None:
        # the OS failed the read (EIO on a failing disk, a network folder gone): not the photo's fault
        return ImageError(
            path, "unreadable", f"reading the file failed: {exc.strerror or exc}", "check the disk or mount"
        )
    text = str(exc)
    # Pillow's ways of saying it ran out of bytes: "image file is truncated", "Truncated File Read"
    # (a header read short), a struct unpack on a short buffer, or EOF.
    if isinstance(exc, EOFError) or "truncated" in text.lower() or "requires a buffer of" in text:
        return ImageError(path, "truncated", "the file ends before the image data does", _TRUNCATED_HINT)
    detail = str(exc) or type(exc).__name__
    return ImageError(path, "corrupt", f"the image data cannot be decoded ({detail})", _CORRUPT_HINT)


# --- metadata -----------------------------------------------------------------------------------


def _read_exif(im: Image.Image, *, decoded: bool) -> Image.Exif | None:
    """The EXIF block, or None when absent or unreadable; never decodes pixels on its own."""
    if not decoded and im.format == "PNG" and "exif" not in im.info:
        return None  # Pillow would decode the image to reach an eXIf chunk after the pixel data
    try:
        exif = im.getexif()
    except _DECODER_ERRORS:
        return None
    return exif if len(exif) else None


def _photo_info(im: Image.Image, exif: Image.Exif | None, size: tuple[int, int]) -> PhotoInfo:
    """PhotoInfo from the header, tolerating broken or missing EXIF fields."""
    fmt = im.format or "unknown"
    if exif is None:
        return PhotoInfo(width=size[0], height=size[1], format=fmt)
    try:
        sub = exif.get_ifd(0x8769)
    except _DECODER_ERRORS:
        sub = {}
    taken, source = _iso_datetime(sub.get(0x9003), sub.get(0x9011)), "exif"
    if taken is None:
        taken, source = _iso_datetime(exif.get(0x0132), sub.get(0x9010)), "exif-datetime"
    lat, lon, alt = _gps(exif)
    return PhotoInfo(
        width=size[0],
        height=size[1],
        format=fmt,
        taken_at=taken,
        camera_make=_text(exif.get(0x010F)),
        camera_model=_text(exif.get(0x0110)),
        gps_lat=lat,
        gps_lon=lon,
        gps_alt=alt,
        lens=_lens(sub.get(0xA433), sub.get(0xA434)),
        taken_source=source if taken is not None else None,
    )


def _lens(make: object, model: object) -> str | None:
    """LensModel, prefixed by LensMake unless the model already names it."""
    lens_make, lens_model = _text(make), _text(model)
    if lens_model is None:
        return None
    if lens_make and not lens_model.casefold().startswith(lens_make.casefold()):
        return f"{lens_make} {lens_model}"
    return lens_model


def _text(value: object) -> str | None:
    """An EXIF ASCII value without padding, or None."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    cleaned = value.replace("\x00", " ").strip()
    return cleaned or None


def _iso_datetime(value: object, offset: object) -> str | None:
    """ISO 8601 from an EXIF "YYYY:MM:DD HH:MM:SS" (plus its "+HH:MM" offset tag), None if invalid."""
    text = _text(value)
    if text is None:
        return None
    try:
        moment = datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None  # e.g. the "0000:00:00 00:00:00" cameras write before their clock is set
    iso = moment.isoformat()
    zone = _text(offset)
    if zone is not None:
        try:
            return datetime.fromisoformat(f"{iso}{zone}").isoformat()
        except ValueError:
            pass
    return iso


def _gps(exif: Image.Exif) -> tuple[float | None, float | None, float | None]:
    """Signed decimal degrees and metres from the GPS IFD; (None, None, None) when absent or nonsensical."""
    try:
        gps = exif.get_ifd(0x8825)
        lat = _degrees(gps.get(2), gps.get(1), "S", 90.0)
        lon = _degrees(gps.get(4), gps.get(3), "W", 180.0)
        alt = _altitude(gps.get(6), gps.get(5))
    except _DECODER_ERRORS:
        return None, None, None
    if lat is None or lon is None:
        return None, None, None
    return lat, lon, alt


def _altitude(value: object, ref: object) -> float | None:
    """GPSAltitude (a rational, metres) signed by GPSAltitudeRef (1: below sea level)."""
    try:
        metres = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not math.isfinite(metres) or not 0.0 <= metres <= 100_000.0:
        return None
    below = ref in (1, b"\x01", "\x01") or (isinstance(ref, bytes) and ref[:1] == b"\x01")
    return -metres if below else metres


def _degrees(dms: object, ref: object, negative: str, limit: float) -> float | None:
    """Degrees, minutes, seconds rationals and a hemisphere letter as signed decimal degrees."""
    if not isinstance(dms, tuple) or not 1 <= len(dms) <= 3:
        return None
    parts = [float(v) for v in dms]
    value = sum(p / 60.0**i for i, p in enumerate(parts))
    if not math.isfinite(value) or not 0.0 <= value <= limit:
        return None
    return -value if (_text(ref) or "").upper().startswith(negative) else value
