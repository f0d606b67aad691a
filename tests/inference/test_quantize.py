"""int8 bundles: dynamic quantization with ONNX Runtime writes a complete, loadable, distinct bundle."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from photoindex.config import Config, load_config
from photoindex.errors import ModelError
from photoindex.inference.bundle import Bundle, read_manifest, resolve_bundle
from photoindex.inference.download import verify_bundle
from photoindex.inference.encoders import ImageEncoder
from photoindex.inference.quantize import INSTALL_HINT, default_output, manifest_text, quantize_bundle
from photoindex.inference.sessions.ort import OrtSession
from photoindex.photos.imaging import decode_photo
from photoindex.testing import COLOURS, make_bundle, make_photo


def _bundle(path: Path) -> Bundle:
    return resolve_bundle(str(path), path / "unused-models-home")


def _encoder(bundle: Bundle) -> ImageEncoder:
    path = bundle.path("image")
    assert path is not None
    return ImageEncoder(OrtSession(path, threads=1), bundle.manifest.image, bundle.manifest.embedding_dim)


@pytest.fixture(scope="module")
def toy_int8(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The toy bundle with an NPU model, and its int8 variant written to the default place."""
    src = make_bundle(tmp_path_factory.mktemp("q") / "toy", "toy", npu_layout="nhwc-uint8")
    return src, quantize_bundle(_bundle(src))


def test_writes_a_bundle_with_its_own_name_id_and_checksums(toy_int8: tuple[Path, Path]) -> None:
    src, out = toy_int8
    original, int8 = _bundle(src).manifest, _bundle(out).manifest
    assert out == src.parent / "toy-int8"
    assert int8.name == "toy-int8"
    assert int8.model_id == original.model_id + "-int8"  # int8 vectors must never mix with fp32 ones
    assert int8.image == original.image and int8.text == original.text
    assert int8.embedding_dim == original.embedding_dim
    # The NPU model is not carried over: it would give this model id another model's vectors.
    assert {f.role for f in int8.files} == {"image", "text", "matmul"}
    checks = verify_bundle(_bundle(out))
    assert checks and all(c.ok for c in checks)
    assert (out / "image_encoder.onnx").read_bytes() != (src / "image_encoder.onnx").read_bytes()
    assert (out / "text_encoder.onnx").read_bytes() == (src / "text_encoder.onnx").read_bytes()
    assert not list(src.parent.glob(".*.tmp"))


def test_int8_vectors_agree_with_fp32(toy_int8: tuple[Path, Path], tmp_path: Path) -> None:
    src, out = toy_int8
    fp32, int8 = _encoder(_bundle(src)), _encoder(_bundle(out))
    spec = _bundle(src).manifest.image
    photos = [make_photo(tmp_path / f"{name}.jpg", rgb, seed=i) for i, (name, rgb) in enumerate(COLOURS.items())]
    pixels = np.stack([decode_photo(p, spec)[0] for p in photos])
    a, b = fp32.encode(pixels), int8.encode(pixels)
    cosine = (a * b).sum(axis=1)
    assert cosine.min() > 0.99, cosine
    # Still the same ranking: each photo is nearest to its own fp32 vector.
    assert (np.argmax(b @ a.T, axis=1) == np.arange(len(photos))).all()


def test_the_int8_folder_works_as_the_configured_bundle(toy_int8: tuple[Path, Path], tmp_path: Path) -> None:
    from photoindex.indexing.indexer import run_index
    from photoindex.search.query import run_search

    _, out = toy_int8
    photos = tmp_path / "photos"
    for i, (name, rgb) in enumerate(COLOURS.items()):
        for j in range(2):
            make_photo(photos / f"{name}-{j}.jpg", rgb, seed=10 * i + j)
    env = {"PHOTOINDEX_HOME": str(tmp_path / "home"), "PHOTOINDEX_MODEL_BUNDLE": str(out),
           "PHOTOINDEX_INDEX_WORKERS": "0"}
    config = load_config(environ=env)
    report = run_index(config, [photos])
    assert report.encoded == 2 * len(COLOURS) and not report.failures
    hits = run_search(config, text="a red photo", limit=2)
    assert {Path(h.path).name for h in hits} == {"red-0.jpg", "red-1.jpg"}


def test_text_encoder_too_and_unsigned_weights(toy_int8: tuple[Path, Path], tmp_path: Path) -> None:
    src, _ = toy_int8
    out = quantize_bundle(_bundle(src), tmp_path / "both", text=True, weight_type="quint8", per_channel=True)
    int8 = _bundle(out).manifest
    assert "image and text" in int8.title
    assert (out / "text_encoder.onnx").read_bytes() != (src / "text_encoder.onnx").read_bytes()
    assert all(c.ok for c in verify_bundle(_bundle(out)))


def test_refuses_to_overwrite_unless_asked(toy_int8: tuple[Path, Path]) -> None:
    src, out = toy_int8
    with pytest.raises(ModelError, match="already exists"):
        quantize_bundle(_bundle(src))
    before = read_manifest(out / "manifest.toml")
    assert quantize_bundle(_bundle(src), overwrite=True) == out
    assert read_manifest(out / "manifest.toml") == before  # deterministic: same files, same sums
    with pytest.raises(ModelError, match="bundle's own folder"):
        quantize_bundle(_bundle(src), src)


def test_incomplete_bundle_names_the_missing_file(tmp_path: Path) -> None:
    src = make_bundle(tmp_path / "toy", "toy")
    (src / "image_encoder.onnx").unlink()
    with pytest.raises(ModelError, match="image_encoder.onnx") as info:
        quantize_bundle(_bundle(src))
    assert info.value.hint is not None and "models fetch" in info.value.hint
    assert not default_output(_bundle(src)).exists()


def test_missing_onnx_package_gives_the_install_hint(
    toy_int8: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, _ = toy_int8
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    with pytest.raises(ModelError) as info:
        quantize_bundle(_bundle(src), tmp_path / "never")
    assert info.value.hint == INSTALL_HINT
    assert not (tmp_path / "never").exists()


def test_manifest_text_round_trips_every_field(tmp_path: Path) -> None:
    shipped = resolve_bundle("clip-vit-b32", tmp_path).manifest
    path = tmp_path / "manifest.toml"
    path.write_text(manifest_text(shipped, "round trip"), encoding="utf-8")
    assert read_manifest(path) == shipped


def test_models_quantize_command_writes_a_bundle_that_verifies(tmp_path: Path, config: Config) -> None:
    from typer.testing import CliRunner

    from photoindex.cli.app import app
    from photoindex.testing import make_bundle

    source = make_bundle(tmp_path / "toy", "toy")
    out = tmp_path / "toy-int8"
    runner = CliRunner()
    result = runner.invoke(app, ["models", "quantize", str(source), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"PHOTOINDEX_MODEL_BUNDLE={out}" in result.output
    again = runner.invoke(app, ["models", "quantize", str(source), "--out", str(out)])
    assert again.exit_code == 1 and "error:" in again.output  # refuses to overwrite without --force
    verified = runner.invoke(app, ["models", "verify", str(out)])
    assert verified.exit_code == 0, verified.output


def test_signed_weights_fit_seven_bits(toy_int8: tuple[Path, Path]) -> None:
    """u8 x s8 pairs must fit int16 on CPUs without VNNI (VPMADDUBSW saturates): weights in [-64, 64]."""
    import onnx
    from onnx import numpy_helper

    _, out = toy_int8
    weights = [numpy_helper.to_array(t) for t in onnx.load(str(out / "image_encoder.onnx")).graph.initializer
               if t.data_type == onnx.TensorProto.INT8]
    assert weights
    assert all(w.min() >= -64 and w.max() <= 64 for w in weights)
    assert max(int(w.max()) for w in weights) > 32  # still 7 bits used, not fewer
