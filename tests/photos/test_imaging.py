"""photoindex.imaging: real files written with Pillow, decoded into model input tensors."""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFile, ImageOps

from photoindex.errors import ImageError
from photoindex.inference.bundle import ImageSpec
from photoindex.photos.imaging import ALLOWED_FORMATS, PhotoInfo, decode_photo, preprocess, probe

SPEC = ImageSpec(size=224)  # OpenAI CLIP: bicubic, shorter side to 224, centre crop
SMALL = ImageSpec(size=32)  # where only colours matter
SQUASH = ImageSpec(size=32, resize="squash", interpolation="bilinear")

# exif_transpose applies these to a stored image with the given Orientation tag; the stored image is
# therefore the upright one with the inverse operation applied.
_INVERSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def photo_like(width: int, height: int, seed: int = 0) -> Image.Image:
    """A synthetic photo: smooth gradients (sky, vignette), film-like grain and hard-edged shapes."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    vignette = 1.0 - 0.35 * ((x - 0.5) ** 2 + (y - 0.5) ** 2)
    coarse = Image.fromarray(rng.normal(0.0, 18.0, (height // 16, width // 16)).astype(np.float32), "F")
    blotches = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC))
    grain = rng.standard_normal((height, width), dtype=np.float32) * 5.0
    channels = []
    for base in (
        40 + 170 * x + 25 * np.sin(9 * y),
        70 + 120 * y + 30 * np.cos(7 * x + 3 * y),
        210 - 150 * y + 20 * x,
    ):
        channels.append(np.clip(base * vignette + blotches + grain, 0, 255).astype(np.uint8))
    del blotches, grain
    image = Image.fromarray(np.dstack(channels), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = (
            x0 + int(rng.integers(width // 50, width // 5)),
            y0 + int(rng.integers(height // 50, height // 5)),
        )
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = rng.integers(0, 3)
        if shape == 0:
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        elif shape == 1:
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        else:
            draw.line((x0, y0, x1, y1), fill=fill, width=int(rng.integers(1, 12)))
    return image


def asymmetric(width: int = 96, height: int = 64) -> Image.Image:
    """An image that differs from each of its flips and rotations (two gradients, coloured blocks)."""
    x = np.linspace(30, 230, width)[None, :].repeat(height, 0)
    y = np.linspace(30, 230, height)[:, None].repeat(width, 1)
    ramps = np.dstack([x, y, np.full_like(x, 128)]).astype(np.uint8)
    image = Image.fromarray(ramps, "RGB")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width // 2 - 1, height // 2 - 1), fill=(220, 20, 20))
    draw.rectangle((width // 2, height // 2, width - 1, height - 1), fill=(20, 20, 220))
    draw.rectangle((0, height // 2, width // 4 - 1, height - 1), fill=(20, 200, 20))
    return image


def exif_with(**tags: object) -> Image.Exif:
    """An EXIF block: IFD0 tags by numeric id given as `t0x0112=6`, Exif IFD as `x0x9003=...`."""
    exif = Image.Exif()
    for key, value in tags.items():
        if key.startswith("t"):
            exif[int(key[1:], 16)] = value
        elif key.startswith("x"):
            exif.get_ifd(0x8769)[int(key[1:], 16)] = value
    return exif


def save(image: Image.Image, path: Path, **options: Any) -> Path:
    """Save and return the path (format from the suffix unless given)."""
    image.save(path, **options)
    return path


def floats(pixels: np.ndarray, spec: ImageSpec | None = None) -> np.ndarray:
    """What a float model gets from decoded pixels: the encoders' normalized float32 [3,S,S]."""
    from photoindex.inference.encoders import normalized

    return normalized(pixels[None], spec or SPEC)[0]


def uint8(path: Path, spec: ImageSpec = SMALL) -> np.ndarray:
    """The decoded uint8 [S,S,3] pixels of a file."""
    array, _ = decode_photo(path, spec)
    return array.astype(np.int16)


def denormalize(tensor: np.ndarray, spec: ImageSpec) -> np.ndarray:
    """An NCHW normalized tensor back to RGB in [0, 1] (HWC)."""
    std = np.asarray(spec.std, dtype=np.float64)[:, None, None]
    mean = np.asarray(spec.mean, dtype=np.float64)[:, None, None]
    return (tensor.astype(np.float64) * std + mean).transpose(1, 2, 0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio (dB) of two arrays in [0, 1]."""
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


def full_decode(path: Path) -> Image.Image:
    """The reference decode: every pixel, no draft, upright RGB."""
    with Image.open(path) as im:
        im.load()
        return ImageOps.exif_transpose(im).convert("RGB")


def expect_error(path: Path, reason: str, **kw: Any) -> ImageError:
    """Decoding and probing both raise ImageError with this reason; returns decode's error."""
    with pytest.raises(ImageError) as info:
        decode_photo(path, SMALL, **kw)
    assert info.value.reason == reason, info.value
    assert str(path) in info.value.message
    with pytest.raises(ImageError) as probed:
        probe(path, **kw)
    if reason not in ("truncated", "corrupt"):  # the header alone may be intact
        assert probed.value.reason == reason
    return info.value


@pytest.fixture(scope="module")
def photo_12mp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4000x3000 quality-90 JPEG that looks like a photo, written once for the module."""
    path = tmp_path_factory.mktemp("photo") / "IMG_0001.jpg"
    photo_like(4000, 3000).save(path, quality=90)
    return path


# --- the model input ----------------------------------------------------------------------------


def test_allowed_formats_are_the_photo_formats_only() -> None:
    assert {"JPEG", "MPO", "PNG", "WEBP", "BMP", "GIF", "TIFF"} <= ALLOWED_FORMATS
    assert not {"EPS", "PSD", "PDF", "ICO", "XBM"} & ALLOWED_FORMATS
    assert ("HEIF" in ALLOWED_FORMATS) == (importlib.util.find_spec("pillow_heif") is not None)


def test_layouts_and_normalization(tmp_path: Path) -> None:
    path = save(Image.new("RGB", (120, 80), (200, 100, 50)), tmp_path / "solid.png")
    pixels, info = decode_photo(path, SPEC)
    tensor = floats(pixels, SPEC)
    assert tensor.shape == (3, 224, 224) and tensor.dtype == np.float32 and tensor.flags.c_contiguous
    expected = (np.array([200, 100, 50]) / 255.0 - np.array(SPEC.mean)) / np.array(SPEC.std)
    np.testing.assert_allclose(tensor[:, 100, 100], expected, atol=1e-5)
    pixels, _ = decode_photo(path, SPEC)
    assert pixels.shape == (224, 224, 3) and pixels.dtype == np.uint8
    assert (pixels == [200, 100, 50]).all()
    assert info == PhotoInfo(width=120, height=80, format="PNG")


@pytest.mark.parametrize("size", [(640, 427), (427, 640), (641, 479), (300, 300), (225, 1000)])
def test_crop_matches_torchvision_resize_then_center_crop(size: tuple[int, int]) -> None:
    image = photo_like(*size, seed=1)
    w, h = size
    # torchvision: Resize(224) keeps int(224 * long / short); CenterCrop uses round((h - 224) / 2).
    new = (224, int(224 * h / w)) if w <= h else (int(224 * w / h), 224)
    resized = image.resize(new, Image.Resampling.BICUBIC)
    left, top = int(round((new[0] - 224) / 2)), int(round((new[1] - 224) / 2))
    reference = np.asarray(resized.crop((left, top, left + 224, top + 224)), dtype=np.int16)
    np.testing.assert_array_equal(preprocess(image, SPEC), reference)


def test_squash_keeps_the_whole_frame() -> None:
    image = photo_like(90, 30, seed=2)
    ours = preprocess(image, SQUASH)
    reference = np.asarray(image.resize((32, 32), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(ours, reference)
    # a crop of the same image is a different picture: the squash really kept the edges
    assert np.abs(preprocess(image, SMALL).astype(int) - reference).mean() > 5


def test_jpeg_draft_keeps_quality_of_full_decode(photo_12mp: Path) -> None:
    for spec in (SPEC, ImageSpec(size=224, resize="squash"), ImageSpec(size=336)):
        pixels, info = decode_photo(photo_12mp, spec)
        drafted, full = floats(pixels, spec), floats(preprocess(full_decode(photo_12mp), spec), spec)
        assert drafted.shape == full.shape == (3, spec.size, spec.size)
        # measured 44.3 (336 crop) to 50.4 dB (224 squash): a draft to 1x the input side (DRAFT_FACTOR);
        # 2x gave 54-57 dB for ~20% more decoding time, and image vectors 0.99999 vs 0.99998 cosine
        assert psnr(denormalize(drafted, spec), denormalize(full, spec)) > 43.0
    assert (info.width, info.height, info.format) == (4000, 3000, "JPEG")


def test_large_images_without_draft_are_reduced_first_without_visible_loss(tmp_path: Path) -> None:
    image = photo_like(2400, 1800, seed=3)
    path = save(image, tmp_path / "big.png", compress_level=1)
    for spec in (SPEC, ImageSpec(size=224, resize="squash")):
        reduced, exact = floats(decode_photo(path, spec)[0], spec), floats(preprocess(image, spec), spec)
        assert not np.array_equal(reduced, exact)  # the reduction did happen
        assert psnr(denormalize(reduced, spec), denormalize(exact, spec)) > 45.0  # measured 55 dB


# --- EXIF orientation ---------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_gives_the_upright_tensor(tmp_path: Path, orientation: int) -> None:
    upright = asymmetric(96, 64)
    stored = upright if orientation == 1 else upright.transpose(_INVERSE[orientation])
    path = save(stored, tmp_path / f"o{orientation}.jpg", quality=95, exif=exif_with(t0x0112=orientation))
    reference = floats(preprocess(upright, SPEC))
    pixels, info = decode_photo(path, SPEC)
    tensor = floats(pixels)
    assert np.abs(tensor - reference).mean() < 0.05
    assert (info.width, info.height) == (96, 64)
    assert (probe(path).width, probe(path).height) == (96, 64)
    # the test can fail: every other orientation is a visibly different tensor
    for other in set(_INVERSE) - {orientation}:
        wrong = floats(preprocess(ImageOps.exif_transpose(_tagged(stored, other)), SPEC))
        assert np.abs(wrong - reference).mean() > 0.3


def _tagged(image: Image.Image, orientation: int) -> Image.Image:
    copy = image.copy()
    copy.getexif()[0x0112] = orientation
    return copy


# --- colour modes -------------------------------------------------------------------------------


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    image = Image.new("RGBA", (40, 40), (0, 0, 0, 0))  # hidden colour black, fully transparent
    ImageDraw.Draw(image).rectangle((0, 0, 39, 19), fill=(255, 0, 0, 128))
    pixels = uint8(save(image, tmp_path / "a.png"), SQUASH)
    assert (np.abs(pixels[28, 16] - [255, 255, 255]) <= 1).all()  # not black
    assert (np.abs(pixels[4, 16] - [255, 127, 127]) <= 2).all()  # half-transparent red on white
    tensor = floats(decode_photo(tmp_path / "a.png", SQUASH)[0], SQUASH)
    np.testing.assert_allclose(denormalize(tensor, SQUASH)[28, 16], [1, 1, 1], atol=1e-3)


def test_la_and_palette_transparency_and_pa(tmp_path: Path) -> None:
    la = Image.new("LA", (40, 40), (0, 0))
    ImageDraw.Draw(la).rectangle((0, 0, 39, 19), fill=(0, 255))
    pixels = uint8(save(la, tmp_path / "la.png"), SQUASH)
    assert (pixels[4, 16] == 0).all() and (pixels[30, 16] == 255).all()

    palette = Image.new("P", (40, 40), 0)
    palette.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)  # index 0 black (transparent), 1 green
    ImageDraw.Draw(palette).rectangle((0, 0, 39, 19), fill=1)
    for name in ("p.png", "p.gif"):
        pixels = uint8(save(palette, tmp_path / name, transparency=0), SQUASH)
        assert (pixels[4, 16] == [0, 200, 0]).all() and (pixels[30, 16] == 255).all(), name

    pa = Image.new("PA", (40, 40))
    pa.putpalette([0, 0, 200] + [0] * 765)
    alpha = np.zeros((40, 40), dtype=np.uint8)
    alpha[:, :20] = 255
    pa.putalpha(Image.fromarray(alpha, "L"))
    out = preprocess(pa, SQUASH).astype(int)
    assert (out[16, 2] == [0, 0, 200]).all()  # opaque blue on the left
    assert (out[16, 30] == 255).all()  # transparent on the right: white


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = save(Image.new("CMYK", (48, 48), (0, 255, 255, 0)), tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(path).mode == "CMYK"
    assert (np.abs(uint8(path)[16, 16] - [255, 0, 0]) <= 3).all()


def test_16_bit_greyscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.zeros((32, 64), dtype=np.uint16)
    values[:, :32], values[:, 32:] = 65535, 16448  # 16448 / 257 = 64
    path = save(Image.fromarray(values), tmp_path / "deep.png")
    assert Image.open(path).mode == "I;16"
    pixels = uint8(path, SQUASH)
    assert (pixels[:, :12] == 255).all() and (pixels[:, 20:] == 64).all()
    tiff = save(Image.fromarray(values), tmp_path / "deep.tif")
    np.testing.assert_array_equal(uint8(tiff, SQUASH), pixels)


def test_32_bit_integer_and_float_images_are_scaled(tmp_path: Path) -> None:
    ints = np.zeros((32, 64), dtype=np.int32)
    ints[:, :32], ints[:, 32:] = 65535, 16448
    path = save(Image.fromarray(ints, "I"), tmp_path / "i32.tif")
    assert Image.open(path).mode == "I"
    assert uint8(path, SQUASH)[16, 4, 0] == 255 and uint8(path, SQUASH)[16, 28, 0] == 64
    wide = np.tile(np.linspace(-1e6, 1e6, 64), (32, 1)).astype(np.int32)
    stretched = preprocess(Image.fromarray(wide, "I"), SQUASH).astype(int)
    assert stretched[0, 0, 0] < 8 and stretched[0, 31, 0] > 247 and 100 < stretched[0, 16, 0] < 155

    floats = np.tile(np.linspace(0.0, 1.0, 64, dtype=np.float32), (32, 1))
    path = save(Image.fromarray(floats, "F"), tmp_path / "f32.tif")
    assert Image.open(path).mode == "F"
    pixels = uint8(path, SQUASH)
    assert pixels[16, 0, 0] < 8 and pixels[16, 31, 0] > 247 and not (pixels == 255).all()


def test_greyscale_and_bilevel(tmp_path: Path) -> None:
    grey = uint8(save(Image.new("L", (40, 40), 77), tmp_path / "l.png"))
    assert (grey == 77).all()
    bilevel = Image.new("1", (40, 40), 0)
    ImageDraw.Draw(bilevel).rectangle((0, 0, 39, 19), fill=1)
    pixels = uint8(save(bilevel, tmp_path / "one.png"), SQUASH)
    assert (pixels[2] == 255).all() and (pixels[30] == 0).all()


@pytest.mark.parametrize("suffix", [".gif", ".webp", ".mpo", ".tif"])
def test_multi_frame_files_give_frame_zero(tmp_path: Path, suffix: str) -> None:
    frames = [Image.new("RGB", (40, 40), colour) for colour in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    path = save(frames[0], tmp_path / f"anim{suffix}", save_all=True, append_images=frames[1:])
    assert getattr(Image.open(path), "n_frames", 1) == 3
    assert (np.abs(uint8(path)[16, 16] - [255, 0, 0]) <= 3).all()


@pytest.mark.parametrize("suffix", [".bmp", ".webp", ".tif", ".png", ".jpg"])
def test_each_allowed_format_decodes(tmp_path: Path, suffix: str) -> None:
    path = save(Image.new("RGB", (48, 40), (30, 140, 220)), tmp_path / f"plain{suffix}")
    array, info = decode_photo(path, SMALL)
    assert (np.abs(array.astype(int)[16, 16] - [30, 140, 220]) <= 3).all()
    assert (info.width, info.height) == (48, 40) and info.format in ALLOWED_FORMATS


def test_heic(tmp_path: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    upright = asymmetric(96, 64)
    stored = upright.transpose(_INVERSE[6])
    # pillow-heif turns an Orientation in `info` into the container's rotation, as phones write it
    stored.info["exif"] = exif_with(t0x0112=6).tobytes()
    path = save(stored, tmp_path / "IMG.HEIC", quality=95)
    pixels, info = decode_photo(path, SPEC)
    tensor = floats(pixels)
    assert info.format == "HEIF" and (info.width, info.height) == (96, 64)
    # libheif applies the rotation itself; it must not be applied twice
    assert np.abs(tensor - floats(preprocess(upright, SPEC))).mean() < 0.1


# --- limits and broken files --------------------------------------------------------------------


def test_too_large_is_checked_from_the_header_before_decoding(tmp_path: Path) -> None:
    data = save(photo_like(300, 200), tmp_path / "full.png").read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 3])
    # the pixel data is unreadable, so reporting "too-large" proves no decoding was attempted
    error = expect_error(cut, "too-large", max_pixels=50_000)
    assert "[scan] max_image_pixels" in (error.hint or "") and "60,000" in error.message
    assert decode_photo(tmp_path / "full.png", SMALL, max_pixels=60_000)[0].shape == (32, 32, 3)


def test_pillow_bomb_limit_is_caught_and_raised_for_configured_panoramas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)  # hard limit 2,000 pixels
    path = save(Image.new("RGB", (100, 100), (9, 9, 9)), tmp_path / "pano.png")
    # Pillow's own DecompressionBombError becomes a typed error
    expect_error(path, "too-large", max_pixels=1_500)
    # a configured limit above Pillow's is honoured, without a warning, and Pillow's value is restored
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert decode_photo(path, SMALL, max_pixels=20_000)[1].width == 100
        small = save(Image.new("RGB", (40, 40)), tmp_path / "warns.png")  # 1,600 px: Pillow would warn
        decode_photo(small, SMALL, max_pixels=20_000)
    assert Image.MAX_IMAGE_PIXELS == 1_000


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".gif", ".bmp", ".tif"])
def test_truncated_files(tmp_path: Path, suffix: str) -> None:
    data = save(photo_like(320, 240), tmp_path / f"full{suffix}").read_bytes()
    # cut in the pixel data, and (JPEG, PNG, BMP) inside the header
    for keep in (len(data) // 2, *({".jpg": [100], ".png": [20], ".bmp": [30]}.get(suffix, []))):
        path = tmp_path / f"cut{suffix}"
        path.write_bytes(data[:keep])
        with pytest.raises(ImageError) as info:
            decode_photo(path, SMALL)
        assert info.value.reason == "truncated", (keep, info.value)
        assert "being written" in (info.value.hint or "")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "zero.jpg"
    path.write_bytes(b"")
    expect_error(path, "empty")


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b"8BPS\x00\x01" + bytes(20) + b"\x00" * 200, "PSD"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "EPS"),
        (b"\xc5\xd0\xd3\xc6" + bytes(60), "EPS"),
        (b"%PDF-1.7\n", "PDF"),
        (b"just some notes, not a photo\n", "text"),
        (bytes(range(256)), None),
    ],
)
def test_non_images_named_jpg_are_unsupported(tmp_path: Path, content: bytes, kind: str | None) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    error = expect_error(path, "unsupported-format")
    if kind:
        assert kind in error.message


def test_corrupt_data(tmp_path: Path) -> None:
    header = tmp_path / "header.jpg"
    header.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    expect_error(header, "corrupt")
    data = bytearray(save(photo_like(100, 100), tmp_path / "ok.png").read_bytes())
    for at in range(120, 400, 40):  # damage the compressed pixel data, not the header
        data[at] ^= 0xFF
    broken = tmp_path / "broken.png"
    broken.write_bytes(bytes(data))
    with pytest.raises(ImageError) as info:
        decode_photo(broken, SMALL)
    assert info.value.reason == "corrupt" and "re-save" in (info.value.hint or "")


def test_unreadable_paths(tmp_path: Path) -> None:
    expect_error(tmp_path / "missing.jpg", "unreadable")
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    expect_error(tmp_path / "dangling.jpg", "unreadable")
    (tmp_path / "loop.jpg").symlink_to(tmp_path / "loop.jpg")
    expect_error(tmp_path / "loop.jpg", "unreadable")
    (tmp_path / "folder.jpg").mkdir()
    expect_error(tmp_path / "folder.jpg", "unreadable")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo.jpg")  # must not block waiting for a writer
        expect_error(tmp_path / "fifo.jpg", "unreadable")


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="root reads any file")
def test_permission_denied(tmp_path: Path) -> None:
    path = save(Image.new("RGB", (8, 8)), tmp_path / "private.jpg")
    path.chmod(0)
    try:
        error = expect_error(path, "unreadable")
        assert "ermission" in error.message
    finally:
        path.chmod(0o600)


# --- metadata -----------------------------------------------------------------------------------


def test_exif_metadata(tmp_path: Path) -> None:
    exif = exif_with(t0x010F="Canon\x00", t0x0110=" EOS R6 ", t0x0112=6, t0x0132="2021:01:01 00:00:00")
    exif.get_ifd(0x8769).update({0x9003: "2023:07:14 18:30:05", 0x9011: "+08:00"})
    exif.get_ifd(0x8825).update({1: "S", 2: (33.0, 51.0, 54.0), 3: "E", 4: (151.0, 12.0, 36.0)})
    path = save(photo_like(120, 80), tmp_path / "meta.jpg", exif=exif)
    _, info = decode_photo(path, SMALL)
    assert (info.width, info.height, info.format) == (80, 120, "JPEG")
    assert (info.taken_at, info.camera_make, info.camera_model) == (
        "2023-07-14T18:30:05+08:00",
        "Canon",
        "EOS R6",
    )
    assert info.gps_lat == pytest.approx(-33.865) and info.gps_lon == pytest.approx(151.21)
    assert probe(path) == info


def test_exif_date_fallback_and_invalid_values(tmp_path: Path) -> None:
    exif = exif_with(t0x0132="2020:02:29 12:00:00")
    exif.get_ifd(0x8769)[0x9003] = "0000:00:00 00:00:00"  # unset camera clock
    exif.get_ifd(0x8825).update({1: "N", 2: (91.0, 0.0, 0.0), 3: "E", 4: (10.0, 0.0, 0.0)})  # impossible
    path = save(Image.new("RGB", (20, 20)), tmp_path / "odd.jpg", exif=exif)
    info = probe(path)
    assert info.taken_at == "2020-02-29T12:00:00"
    assert (info.gps_lat, info.gps_lon, info.camera_make) == (None, None, None)
    none = save(Image.new("RGB", (20, 20)), tmp_path / "none.jpg", exif=exif_with(t0x0132="yesterday"))
    assert probe(none).taken_at is None


def test_png_exif_is_read(tmp_path: Path) -> None:
    path = save(
        Image.new("RGB", (30, 20)), tmp_path / "meta.png", exif=exif_with(t0x0110="Pixel 8", t0x0112=8)
    )
    assert probe(path) == PhotoInfo(width=20, height=30, format="PNG", camera_model="Pixel 8")
    assert decode_photo(path, SMALL)[1] == probe(path)


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_both_layouts_carry_the_same_pixels(mode: str) -> None:
    image = photo_like(120, 90, seed=4).convert(mode)
    if mode == "RGBA":
        image.putalpha(Image.linear_gradient("L").resize((120, 90)))
    pixels = preprocess(image, SPEC).astype(np.float32)
    std = np.asarray(SPEC.std, dtype=np.float32)
    expected = (pixels * (1.0 / (255.0 * std)) - np.asarray(SPEC.mean, dtype=np.float32) / std).transpose(
        2, 0, 1
    )
    np.testing.assert_array_equal(floats(preprocess(image, SPEC)), expected)
