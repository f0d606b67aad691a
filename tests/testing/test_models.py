"""Generated bundles (photoindex.testing): Axera's contracts, checked manifests, toy semantics end to end."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from photoindex.inference.bundle import Bundle, FileRole, resolve_bundle
from photoindex.inference.encoders import ImageEncoder, TextEncoder
from photoindex.inference.sessions.base import TensorSpec
from photoindex.inference.sessions.ort import OrtSession
from photoindex.inference.tokenizers import load_tokenizer
from photoindex.photos.imaging import decode_photo
from photoindex.testing import COLOURS, make_bundle, make_photo

F32, I32, U8 = np.dtype(np.float32), np.dtype(np.int32), np.dtype(np.uint8)


def _file(bundle: Bundle, role: FileRole) -> Path:
    """The bundle's file for `role`, which these generated bundles always have."""
    path = bundle.path(role)
    assert path is not None
    return path


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, npu_bundle: Path) -> dict[str, Bundle]:
    root = tmp_path_factory.mktemp("bundles")
    home = root / "models-home"
    return {
        "toy": resolve_bundle(str(npu_bundle), home),
        "zh": resolve_bundle(str(make_bundle(root / "zh", tokenizer="bert-chinese")), home),
    }


def _encoders(bundle: Bundle) -> tuple[ImageEncoder, TextEncoder]:
    m = bundle.manifest
    image = ImageEncoder(OrtSession(_file(bundle, "image")), m.image, m.embedding_dim)
    tok = load_tokenizer(m.text.tokenizer, m.text.context_length)
    return image, TextEncoder(OrtSession(_file(bundle, "text")), tok, m.embedding_dim)


# --- contracts -----------------------------------------------------------------------------------


def test_toy_bundle_manifest_matches_its_files(bundles: dict[str, Bundle]) -> None:
    bundle = bundles["toy"]
    m = bundle.manifest
    assert bundle.missing() == []
    assert {f.role: f.name for f in m.files} == {
        "image": "image_encoder.onnx",
        "image-npu": "image_encoder.axmodel",
        "text": "text_encoder.onnx",
        "matmul": "feature_matmul.onnx",
    }
    for f in m.files:
        data = (bundle.directory / f.name).read_bytes()
        assert f.sha256 == hashlib.sha256(data).hexdigest()
        assert f.size == len(data)
    shipped = resolve_bundle("clip-vit-b32", Path("/nonexistent")).manifest
    assert m.image == shipped.image and m.text == shipped.text and m.embedding_dim == shipped.embedding_dim
    ids = {b.manifest.model_id for b in bundles.values()} | {shipped.model_id}
    assert len(ids) == 3


def test_toy_bundle_has_axera_names_dtypes_and_shapes(bundles: dict[str, Bundle]) -> None:
    bundle = bundles["toy"]
    image, text = OrtSession(_file(bundle, "image")), OrtSession(_file(bundle, "text"))
    assert image.inputs == [TensorSpec("images", (None, 3, 224, 224), F32)]
    assert image.outputs == [TensorSpec("image_features", (None, 512), F32)]
    assert text.inputs == [TensorSpec("texts", (None, 77), I32)]
    assert text.outputs == [TensorSpec("text_features", (None, 512), F32)]
    npu = OrtSession(_file(bundle, "image-npu"))
    assert npu.inputs == [TensorSpec("images", (1, 224, 224, 3), U8)]
    assert npu.outputs == [TensorSpec("image_features", (1, 512), F32)]
    zh = OrtSession(_file(bundles["zh"], "text"))
    assert zh.inputs == [TensorSpec("texts", (None, 52), I32)]


def test_image_features_are_raw_and_text_features_unit_length(bundles: dict[str, Bundle]) -> None:
    bundle = bundles["toy"]
    rng = np.random.default_rng(0)
    raw_image = OrtSession(_file(bundle, "image")).run(
        {"images": rng.normal(size=(3, 3, 224, 224)).astype(np.float32)}
    )[0]
    assert raw_image.shape == (3, 512) and raw_image.dtype == F32
    assert np.all(np.abs(np.linalg.norm(raw_image, axis=1) - 1.0) > 0.5)
    ids = load_tokenizer("clip-bpe", 77)(["a red car", "a dog", ""]).astype(np.int32)
    raw_text = OrtSession(_file(bundle, "text")).run({"texts": ids})[0]
    assert raw_text.shape == (3, 512) and raw_text.dtype == F32
    np.testing.assert_allclose(np.linalg.norm(raw_text, axis=1), 1.0, atol=1e-6)


def test_cli_writes_a_bundle_and_prints_only_its_path(tmp_path: Path) -> None:
    out = tmp_path / "cli-bundle"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "photoindex.testing",
            "make-models",
            str(out),
            "--kind",
            "toy",
            "--tokenizer",
            "bert-chinese",
            "--npu-layout",
            "nchw-float32",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert result.stdout == f"{out}\n"
    bundle = resolve_bundle(str(out), tmp_path)
    assert bundle.manifest.text.context_length == 52
    npu = OrtSession(_file(bundle, "image-npu"))
    assert npu.inputs == [TensorSpec("images", (1, 3, 224, 224), F32)]


# --- toy semantics, end to end: photo files -> imaging -> ONNX Runtime -> cosine ranking ----------


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(7)
    made: list[tuple[str, Path]] = []
    for i, (name, rgb) in enumerate(COLOURS.items()):
        # Two photos per colour: the exact colour as a landscape JPEG, and a slightly different
        # shade as a portrait PNG, so neither file format nor orientation decides the ranking.
        r, g, b = (int(np.clip(c + rng.integers(-12, 13), 0, 255)) for c in rgb)
        made.append((name, make_photo(root / f"{name}.jpg", rgb, seed=i)))
        made.append((name, make_photo(root / f"{name}-2.png", (r, g, b), size=(240, 320), seed=100 + i)))
    return made


def _ranking_check(image_vectors: np.ndarray, query: np.ndarray, labels: list[str], colour: str) -> None:
    order = np.argsort(-(image_vectors @ query))
    expected = labels.count(colour)
    top = [labels[i] for i in order[:expected]]
    assert top == [colour] * expected, f"query for {colour} ranked {[labels[i] for i in order]}"


def test_colour_queries_rank_that_colours_photos_first(
    bundles: dict[str, Bundle], photos: list[tuple[str, Path]]
) -> None:
    bundle = bundles["toy"]
    image, text = _encoders(bundle)
    labels = [name for name, _ in photos]
    pixels = np.stack([decode_photo(path, bundle.manifest.image)[0] for _, path in photos])
    vectors = image.encode(pixels)
    queries = text.encode([f"a photo of something {name}" for name in COLOURS])
    for query, colour in zip(queries, COLOURS, strict=True):
        _ranking_check(vectors, query, labels, colour)
    # Shades of one colour: close but not identical vectors.
    red = [i for i, name in enumerate(labels) if name == "red"]
    cos = float(vectors[red[0]] @ vectors[red[1]])
    assert 0.95 < cos < 1.0 - 1e-6


def test_npu_stand_in_ranks_the_same_from_uint8_pixels(
    bundles: dict[str, Bundle], photos: list[tuple[str, Path]]
) -> None:
    bundle = bundles["toy"]
    npu = ImageEncoder(OrtSession(_file(bundle, "image-npu")), bundle.manifest.image, 512)
    cpu, text = _encoders(bundle)
    pixels = np.stack([decode_photo(path, bundle.manifest.image)[0] for _, path in photos])
    vectors = npu.encode(pixels)
    reference = cpu.encode(np.stack([decode_photo(path, bundle.manifest.image)[0] for _, path in photos]))
    # uint8 rounding of the resized pixels is the only difference between the two paths.
    np.testing.assert_allclose(vectors, reference, atol=2e-3)
    labels = [name for name, _ in photos]
    _ranking_check(vectors, text.encode(["something blue"])[0], labels, "blue")


def test_chinese_queries_find_their_colour(
    bundles: dict[str, Bundle], photos: list[tuple[str, Path]]
) -> None:
    bundle = bundles["zh"]
    image, text = _encoders(bundle)
    labels = [name for name, _ in photos]
    vectors = image.encode(np.stack([decode_photo(path, bundle.manifest.image)[0] for _, path in photos]))
    for query, colour in [
        ("红色的花", "red"),
        ("蓝色的天空", "blue"),
        ("一只黑猫", "black"),
        ("绿色", "green"),
    ]:
        _ranking_check(vectors, text.encode([query])[0], labels, colour)


# --- vit-b32: the real compute cost (350 MB image model; opt-in) ---------------------------------


@pytest.mark.slow
def test_vit_b32_bundle_runs_at_batch_1_and_8(tmp_path: Path) -> None:
    bundle = resolve_bundle(str(make_bundle(tmp_path / "vit", "vit-b32")), tmp_path)
    image, text = _encoders(bundle)
    pixels = np.random.default_rng(0).integers(0, 256, size=(8, 224, 224, 3), dtype=np.uint8)
    batch = image.encode(pixels)
    assert batch.shape == (8, 512) and np.isfinite(batch).all()
    np.testing.assert_allclose(image.encode(pixels[:1]), batch[:1], atol=1e-4)
    vectors = text.encode(["a photo of a cat", "a dog"])
    assert vectors.shape == (2, 512) and np.isfinite(vectors).all()
    assert not np.allclose(vectors[0], vectors[1])
