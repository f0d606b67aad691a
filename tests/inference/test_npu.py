"""The NPU path (pyaxengine through the test stand-in in tests/axengine_standin) and runtime selection.

The stand-in enforces pyaxengine's contract (exact shape and dtype, batch 1, aliased output
buffers, no concurrent runs, providers printed on import) and computes with ONNX Runtime on the
toy bundle's `.axmodel`, so NPU vectors are checked against the CPU path's.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from photoindex.cli.app import app
from photoindex.config import RuntimeConfig
from photoindex.errors import ConfigError, ModelError, RuntimeUnavailable
from photoindex.inference.bundle import Bundle, resolve_bundle
from photoindex.inference.encoders import ImageEncoder, TextEncoder
from photoindex.inference.select import (
    FallbackImageEncoder,
    FallbackTextEncoder,
    open_image_encoder,
    open_runtime,
    open_text_encoder,
    plan_runtime,
)
from photoindex.inference.sessions.npu import AxSession, import_axengine
from photoindex.inference.sessions.ort import OrtSession
from photoindex.inference.tokenizers import load_tokenizer
from photoindex.photos.imaging import decode_photo
from photoindex.testing import COLOURS, make_bundle, make_photo

AUTO = RuntimeConfig()
CPU = RuntimeConfig(image="cpu", text="cpu")
NPU = RuntimeConfig(image="npu", text="npu")
PHOTO_COLOURS = ("red", "green", "blue", "yellow", "purple")


def _axe() -> ModuleType:
    """The stand-in module (imported quietly if it is not yet), for its counters."""
    return import_axengine()


def _add_text_npu(folder: Path) -> None:
    """Give a toy bundle a `text-npu` model: its text encoder with the batch axis fixed at 1, as compiled."""
    import onnx

    model = onnx.load(str(folder / "text_encoder.onnx"))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(model, str(folder / "text_encoder.axmodel"))
    with open(folder / "manifest.toml", "a", encoding="utf-8") as fh:
        fh.write('\n[[files]]\nrole = "text-npu"\nname = "text_encoder.axmodel"\noptional = true\n')


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, toy_bundle: Path, npu_bundle: Path) -> dict[str, Path]:
    """Toy bundle folders: an NHWC uint8 and an NCHW float32 image .axmodel (the latter with a text one)."""
    root = tmp_path_factory.mktemp("bundles")
    out = {
        "nhwc-uint8": npu_bundle,
        "nchw-float32": make_bundle(root / "nchw-float32", "toy", npu_layout="nchw-float32"),
    }
    _add_text_npu(out["nchw-float32"])
    out["plain"] = toy_bundle
    return out


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Coloured JPEG photos, one per colour in PHOTO_COLOURS."""
    root = tmp_path_factory.mktemp("photos")
    return [make_photo(root / f"{c}.jpg", COLOURS[c], seed=i) for i, c in enumerate(PHOTO_COLOURS)]


def _bundle(folder: Path, tmp_path: Path) -> Bundle:
    return resolve_bundle(str(folder), tmp_path / "models")


def _pixels(photos: list[Path], bundle: Bundle) -> np.ndarray:
    return np.stack([decode_photo(p, bundle.manifest.image)[0] for p in photos])


def _cpu_image_vectors(bundle: Bundle, photos: list[Path]) -> np.ndarray:
    encoder, _ = open_image_encoder(bundle, CPU)
    return encoder.encode(_pixels(photos, bundle))


def _text_vectors(bundle: Bundle, words: tuple[str, ...]) -> np.ndarray:
    m = bundle.manifest
    tokenizer = load_tokenizer(m.text.tokenizer, m.text.context_length)
    encoder, _ = open_text_encoder(bundle, CPU, tokenizer)
    return encoder.encode(list(words))


# --- the adapter --------------------------------------------------------------------------------


def test_float32_axmodel_on_the_npu_gives_the_cpu_vectors(
    standin: pytest.MonkeyPatch, bundles: dict[str, Path], photos: list[Path], tmp_path: Path
) -> None:
    bundle = _bundle(bundles["nchw-float32"], tmp_path)
    encoder, choice = open_image_encoder(bundle, AUTO)
    assert choice.device == "npu" and choice.provider == "axengine:AxEngineExecutionProvider"
    assert choice.model_path.name == "image_encoder.axmodel" and choice.warnings == ()
    assert encoder.layout == "nchw-float32" and encoder.batch_size == 1
    _axe().BATCHES_SEEN.clear()
    npu = encoder.encode(_pixels(photos, bundle))
    assert _axe().BATCHES_SEEN == [1] * len(photos)  # one photo per NPU call, the compiled batch
    np.testing.assert_allclose(npu, _cpu_image_vectors(bundle, photos), atol=1e-5)
    # The stand-in's outputs alias one buffer: without the adapter's copy every row would be the last.
    assert len({tuple(np.round(v, 4)) for v in npu}) == len(photos)


def test_uint8_axmodel_on_the_npu_matches_onnx_runtime_and_ranks_as_the_cpu_model(
    standin: pytest.MonkeyPatch, bundles: dict[str, Path], photos: list[Path], tmp_path: Path
) -> None:
    bundle = _bundle(bundles["nhwc-uint8"], tmp_path)
    encoder, choice = open_image_encoder(bundle, AUTO)
    assert choice.device == "npu" and encoder.layout == "nhwc-uint8"
    pixels = _pixels(photos, bundle)
    assert pixels.dtype == np.uint8 and pixels.shape[1:] == (224, 224, 3)
    npu = encoder.encode(pixels)
    # The same uint8 model run by ONNX Runtime on the CPU: the NPU path adds nothing of its own.
    axmodel = bundle.path("image-npu")
    assert axmodel is not None
    same_model = ImageEncoder(OrtSession(axmodel), bundle.manifest.image, bundle.manifest.embedding_dim)
    np.testing.assert_allclose(npu, same_model.encode(pixels), atol=1e-5)
    # Against the float CPU model the only difference is the uint8 input: searches rank alike.
    cpu = _cpu_image_vectors(bundle, photos)
    queries = _text_vectors(bundle, PHOTO_COLOURS)
    npu_rank = np.argsort(-(queries @ npu.T), axis=1)
    cpu_rank = np.argsort(-(queries @ cpu.T), axis=1)
    np.testing.assert_array_equal(npu_rank, cpu_rank)
    np.testing.assert_array_equal(npu_rank[:, 0], np.arange(len(PHOTO_COLOURS)))  # "red" finds the red photo


def test_text_axmodel_on_the_npu_gives_the_cpu_vectors(
    standin: pytest.MonkeyPatch, bundles: dict[str, Path], tmp_path: Path
) -> None:
    bundle = _bundle(bundles["nchw-float32"], tmp_path)
    tokenizer = load_tokenizer("clip-bpe", 77)
    encoder, choice = open_text_encoder(bundle, AUTO, tokenizer)
    assert choice.device == "npu" and isinstance(encoder, FallbackTextEncoder)
    texts = ["a red photo", "green", "a photo of a dog"]
    np.testing.assert_allclose(encoder.encode(texts), _text_vectors(bundle, tuple(texts)), atol=1e-5)
    assert _axe().BATCHES_SEEN[-len(texts) :] == [1, 1, 1]


def test_axsession_reads_the_contract_and_refuses_inexact_inputs(
    standin: pytest.MonkeyPatch, bundles: dict[str, Path], tmp_path: Path
) -> None:
    path = bundles["nhwc-uint8"] / "image_encoder.axmodel"
    session = AxSession(path)
    assert session.provider == "axengine:AxEngineExecutionProvider"
    (spec,) = session.inputs
    assert (spec.name, spec.shape, spec.dtype) == ("images", (1, 224, 224, 3), np.dtype(np.uint8))
    assert session.outputs[0].shape == (1, 512)
    calls = _axe().RUN_CALLS
    good = np.zeros((1, 224, 224, 3), np.uint8)
    for bad in (good.astype(np.float64), good.astype(np.int64), np.zeros((2, 224, 224, 3), np.uint8)):
        with pytest.raises(ModelError, match="image_encoder.axmodel.*compiled model takes exactly uint8"):
            session.run({"images": bad})
    with pytest.raises(ModelError, match="do not match"):
        session.run({"pixels": good})
    assert _axe().RUN_CALLS == calls  # refused before the runtime, which would only assert
    (out,) = session.run({"images": good})
    assert out.shape == (1, 512) and out.dtype == np.float32


def test_axsession_accepts_a_provider_list_and_a_forced_provider(
    standin: pytest.MonkeyPatch, bundles: dict[str, Path]
) -> None:
    path = bundles["nhwc-uint8"] / "image_encoder.axmodel"
    assert (
        AxSession(path, provider="AxEngineExecutionProvider").provider == "axengine:AxEngineExecutionProvider"
    )
    with pytest.raises(ModelError, match="AXCLRTExecutionProvider.*not available"):
        AxSession(path, provider="AXCLRTExecutionProvider")
    # A build whose get_providers() returns an ONNX Runtime-style list still names the provider.
    standin.setattr(_axe().InferenceSession, "get_providers", lambda self: ["AxEngineExecutionProvider"])
    assert AxSession(path).provider == "axengine:AxEngineExecutionProvider"


def test_axsession_serializes_concurrent_runs(standin: pytest.MonkeyPatch, bundles: dict[str, Path]) -> None:
    session = AxSession(bundles["nhwc-uint8"] / "image_encoder.axmodel")
    rng = np.random.default_rng(0)
    inputs = [rng.integers(0, 256, (1, 224, 224, 3), dtype=np.uint8) for _ in range(4)]
    expected = [session.run({"images": x})[0] for x in inputs]
    errors: list[BaseException] = []
    results: dict[int, list[np.ndarray]] = {i: [] for i in range(4)}

    def work(i: int) -> None:
        try:
            for _ in range(15):
                results[i].append(session.run({"images": inputs[i]})[0])
        except BaseException as exc:  # the stand-in raises on overlapping runs
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i in range(4):  # each thread got its own result, not another thread's aliased buffer
        for got in results[i]:
            np.testing.assert_array_equal(got, expected[i])


def test_the_providers_printout_never_reaches_stdout(
    standin: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="photoindex")
    module = import_axengine()
    out, err = capfd.readouterr()
    assert module.__name__ == "axengine" and "Available providers" not in out and "banner" not in out
    assert out == ""
    assert "C-level provider banner" in err  # the C-level print went to stderr, not lost from the report
    assert any("Available providers" in r.getMessage() for r in caplog.records)  # Python print: logged
    import_axengine()  # imported once: nothing more is printed anywhere
    assert capfd.readouterr() == ("", "")


# --- selection and fallbacks -------------------------------------------------------------------


def _one_warning(caplog: pytest.LogCaptureFixture) -> str:
    lines = [
        r.getMessage() for r in caplog.records if r.name == "photoindex" and r.levelno == logging.WARNING
    ]
    assert len(lines) == 1, lines
    return lines[0]


def test_without_axengine_auto_uses_the_cpu_and_says_why(
    no_axengine: None, bundles: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bundle = _bundle(bundles["nhwc-uint8"], tmp_path)
    device, reason = plan_runtime(bundle, "image", AUTO)
    assert device == "cpu"
    assert reason == (
        "NPU not available (No module named 'axengine'): "
        "ONNX Runtime on the CPU will be used (image_encoder.onnx)"
    )
    choice = open_runtime(bundle, "image", AUTO)
    assert (choice.device, choice.provider) == ("cpu", "onnxruntime:CPUExecutionProvider")
    assert choice.reason == reason and choice.model_path.name == "image_encoder.onnx"
    # Off the board axengine is simply not installed: that is normal, not a warning on every command.
    assert choice.warnings == () and not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_import_failure_on_a_board_falls_back_with_one_warning(
    standin: pytest.MonkeyPatch,
    bundles: dict[str, Path],
    photos: list[Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    standin.setenv("AXENGINE_STANDIN_NO_DRIVER", "1")  # the wheel is installed, libax_engine is not
    bundle = _bundle(bundles["nhwc-uint8"], tmp_path)
    seen: list[str] = []
    encoder, choice = open_image_encoder(bundle, AUTO, on_warning=seen.append)
    line = _one_warning(caplog)
    assert choice.device == "cpu" and choice.warnings == (line,) and seen == [line]
    assert "No providers found" in line and "falling back to ONNX Runtime on the CPU" in line
    np.testing.assert_allclose(
        encoder.encode(_pixels(photos, bundle)), _cpu_image_vectors(bundle, photos), atol=1e-6
    )


def test_load_failure_falls_back_with_one_warning(
    standin: pytest.MonkeyPatch,
    bundles: dict[str, Path],
    photos: list[Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    standin.setenv("AXENGINE_STANDIN_FAIL_LOAD", "1")
    bundle = _bundle(bundles["nhwc-uint8"], tmp_path)
    encoder, choice = open_image_encoder(bundle, AUTO)
    line = _one_warning(caplog)
    assert line.startswith("NPU failed to load image_encoder.axmodel (")
    assert "Failed to load model." in line and line.endswith("falling back to ONNX Runtime on the CPU")
    assert choice.device == "cpu" and choice.warnings == (line,)
    assert choice.provider == "onnxruntime:CPUExecutionProvider" and encoder.layout == "nchw-float32"
    np.testing.assert_allclose(
        encoder.encode(_pixels(photos, bundle)), _cpu_image_vectors(bundle, photos), atol=1e-6
    )


@pytest.mark.parametrize("layout", ["nhwc-uint8", "nchw-float32"])
def test_run_failure_falls_back_once_with_one_warning(
    layout: str,
    standin: pytest.MonkeyPatch,
    bundles: dict[str, Path],
    photos: list[Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bundle = _bundle(bundles[layout], tmp_path)
    seen: list[str] = []
    encoder, choice = open_image_encoder(bundle, AUTO, on_warning=seen.append)
    assert isinstance(encoder, FallbackImageEncoder) and choice.device == "npu"
    standin.setenv("AXENGINE_STANDIN_FAIL_RUN", "1")
    calls = _axe().RUN_CALLS
    pixels = _pixels(photos, bundle)  # decoded pixels, as callers hand them
    first = encoder.encode(pixels)
    line = _one_warning(caplog)
    assert line.startswith("NPU failed to run image_encoder.axmodel (") and "Failed to run model." in line
    assert seen == [line] and encoder.warnings == [line] and encoder.fell_back
    assert encoder.provider == "onnxruntime:CPUExecutionProvider"
    assert encoder.layout == layout  # the callers' contract does not change under them
    np.testing.assert_allclose(first, _cpu_image_vectors(bundle, photos), atol=1e-5)
    # From now on the CPU does the work: the NPU is not retried and nothing more is warned.
    np.testing.assert_allclose(encoder.encode(pixels[:2]), first[:2], atol=1e-6)
    assert _axe().RUN_CALLS == calls + 1
    _one_warning(caplog)


def test_text_run_failure_falls_back_once(
    standin: pytest.MonkeyPatch, bundles: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bundle = _bundle(bundles["nchw-float32"], tmp_path)
    encoder, _ = open_text_encoder(bundle, AUTO, load_tokenizer("clip-bpe", 77))
    standin.setenv("AXENGINE_STANDIN_FAIL_RUN", "1")
    got = encoder.encode(["red", "blue"])
    assert "NPU failed to run text_encoder.axmodel" in _one_warning(caplog)
    np.testing.assert_allclose(got, _text_vectors(bundle, ("red", "blue")), atol=1e-5)
    assert isinstance(encoder, FallbackTextEncoder) and encoder.fell_back


def test_a_callers_wrong_pixels_are_an_error_not_a_fallback(
    standin: pytest.MonkeyPatch, bundles: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    encoder, _ = open_image_encoder(_bundle(bundles["nhwc-uint8"], tmp_path), AUTO)
    with pytest.raises(ModelError, match="takes uint8 pixels"):
        encoder.encode(np.zeros((1, 224, 224, 3), np.float32))
    assert isinstance(encoder, FallbackImageEncoder) and not encoder.fell_back
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_forced_npu_never_falls_back(
    standin: pytest.MonkeyPatch, bundles: dict[str, Path], tmp_path: Path
) -> None:
    bundle = _bundle(bundles["nhwc-uint8"], tmp_path)
    encoder, choice = open_image_encoder(bundle, NPU)
    assert choice.device == "npu" and not isinstance(encoder, FallbackImageEncoder)
    assert '[runtime] image = "npu"' in choice.reason
    standin.setenv("AXENGINE_STANDIN_FAIL_RUN", "1")
    with pytest.raises(ModelError, match="NPU inference failed"):
        encoder.encode(np.zeros((1, 224, 224, 3), np.uint8))
    standin.setenv("AXENGINE_STANDIN_FAIL_LOAD", "1")
    with pytest.raises(ModelError, match="the NPU cannot load the model"):
        open_runtime(bundle, "image", NPU)


def test_forced_npu_without_axengine_is_a_clear_error(
    no_axengine: None, bundles: dict[str, Path], tmp_path: Path
) -> None:
    bundle = _bundle(bundles["nhwc-uint8"], tmp_path)
    for call in (lambda: open_runtime(bundle, "image", NPU), lambda: plan_runtime(bundle, "image", NPU)):
        with pytest.raises(RuntimeUnavailable) as info:
            call()
        assert info.value.message == (
            "[runtime] image = \"npu\", but the NPU is not available: No module named 'axengine'"
        )
        assert info.value.hint is not None
        assert "axengine wheel" in info.value.hint and "pyaxengine GitHub releases" in info.value.hint


def test_forced_npu_without_the_axmodel_says_how_to_fetch_it(
    standin: pytest.MonkeyPatch, bundles: dict[str, Path], tmp_path: Path
) -> None:
    with pytest.raises(RuntimeUnavailable, match="has no NPU model for the image encoder"):
        open_runtime(_bundle(bundles["plain"], tmp_path), "image", NPU)
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in bundles["nhwc-uint8"].iterdir():
        if f.name != "image_encoder.axmodel":
            (copy / f.name).write_bytes(f.read_bytes())
    bundle = _bundle(copy, tmp_path)
    with pytest.raises(RuntimeUnavailable, match="image_encoder.axmodel is missing") as info:
        open_runtime(bundle, "image", NPU)
    assert info.value.hint is not None and "photoindex models fetch toy --all" in info.value.hint
    device, reason = plan_runtime(bundle, "image", AUTO)
    assert device == "cpu" and "image_encoder.axmodel is not in" in reason and "will be used" in reason


def test_cpu_setting_and_text_without_an_npu_model(
    standin: pytest.MonkeyPatch, bundles: dict[str, Path], tmp_path: Path
) -> None:
    bundle = _bundle(bundles["nhwc-uint8"], tmp_path)
    assert plan_runtime(bundle, "image", CPU) == (
        "cpu",
        '[runtime] image = "cpu": ONNX Runtime on the CPU will be used (image_encoder.onnx)',
    )
    device, reason = plan_runtime(bundle, "text", AUTO)
    assert device == "cpu" and "has no NPU model for the text encoder" in reason
    encoder, choice = open_text_encoder(bundle, AUTO, load_tokenizer("clip-bpe", 77))
    assert type(encoder) is TextEncoder and choice.device == "cpu"
    with pytest.raises(ConfigError, match="not one of auto, npu, cpu"):
        plan_runtime(bundle, "image", RuntimeConfig(image="gpu"))


# --- end to end: `photoindex index` and `search` through the real CLI -------------------------


def _cli(home: Path, bundle: Path, *args: str, image: str = "auto") -> Result:
    env = {
        "PHOTOINDEX_HOME": str(home),
        "PHOTOINDEX_MODEL_BUNDLE": str(bundle),
        "PHOTOINDEX_RUNTIME_IMAGE": image,
        "PHOTOINDEX_INDEX_WORKERS": "1",
    }
    return CliRunner().invoke(app, list(args), env=env)


def _stored_vectors(home: Path) -> dict[str, np.ndarray]:
    con = sqlite3.connect(home / "photoindex.db")
    try:
        rows = con.execute("SELECT content_hash, vector FROM vectors").fetchall()
    finally:
        con.close()
    return {h: np.frombuffer(v, dtype="<f4") for h, v in rows}


def test_index_uses_the_npu_and_stores_the_cpu_paths_vectors(
    standin: pytest.MonkeyPatch, bundles: dict[str, Path], photos: list[Path], tmp_path: Path
) -> None:
    folder = bundles["nchw-float32"]
    calls = _axe().RUN_CALLS
    result = _cli(tmp_path / "npu", folder, "index", str(photos[0].parent), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # pyaxengine's printout did not get into the JSON
    assert report["encoded"] == len(photos) and report["warnings"] == []
    assert _axe().RUN_CALLS == calls + len(photos)  # one NPU run per photo
    result = _cli(tmp_path / "cpu", folder, "index", str(photos[0].parent), "--json", image="cpu")
    assert result.exit_code == 0, result.output
    assert _axe().RUN_CALLS == calls + len(photos)
    npu, cpu = _stored_vectors(tmp_path / "npu"), _stored_vectors(tmp_path / "cpu")
    assert set(npu) == set(cpu) and len(npu) == len(photos)
    for content_hash, vector in npu.items():
        np.testing.assert_allclose(vector, cpu[content_hash], atol=1e-5)
    hits = json.loads(_cli(tmp_path / "npu", folder, "search", "red", "--json").stdout)
    assert Path(hits[0]["path"]).name == "red.jpg"


def test_index_reports_a_run_failure_fallback_once(
    standin: pytest.MonkeyPatch, bundles: dict[str, Path], photos: list[Path], tmp_path: Path
) -> None:
    standin.setenv("AXENGINE_STANDIN_FAIL_RUN", "1")
    result = _cli(tmp_path / "home", bundles["nhwc-uint8"], "index", str(photos[0].parent), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["encoded"] == len(photos)
    (line,) = report["warnings"]
    assert line.startswith("NPU failed to run image_encoder.axmodel (") and "falling back" in line
    hits = json.loads(_cli(tmp_path / "home", bundles["nhwc-uint8"], "search", "blue", "--json").stdout)
    assert Path(hits[0]["path"]).name == "blue.jpg"


def test_index_with_npu_forced_and_no_axengine_is_an_error_not_a_traceback(
    no_axengine: None, bundles: dict[str, Path], photos: list[Path], tmp_path: Path
) -> None:
    result = _cli(tmp_path / "home", bundles["nhwc-uint8"], "index", str(photos[0].parent), image="npu")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert (
        "error: [runtime] image = \"npu\", but the NPU is not available: No module named 'axengine'"
        in result.output
    )
    assert "hint: install the axengine wheel" in result.output


def test_pixels_convert_between_layouts_as_imaging_decodes_them(
    bundles: dict[str, Path], photos: list[Path], tmp_path: Path
) -> None:
    from photoindex.inference.encoders import normalized

    spec = _bundle(bundles["plain"], tmp_path).manifest.image
    as_bytes = np.stack([decode_photo(p, spec)[0] for p in photos[:2]])
    mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    as_floats = ((as_bytes / np.float32(255.0) - mean) / std).transpose(0, 3, 1, 2)
    to_floats = normalized(as_bytes, spec)
    np.testing.assert_allclose(to_floats, as_floats, atol=1e-6)
    # And back: the float model's input rounds to the very bytes the NPU model gets.
    back = np.clip(np.rint((to_floats.transpose(0, 2, 3, 1) * std + mean) * 255.0), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(back, as_bytes)


def test_a_broken_driver_does_not_warn_for_an_encoder_without_an_npu_model(
    standin: pytest.MonkeyPatch, bundles: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    standin.setenv("AXENGINE_STANDIN_NO_DRIVER", "1")
    choice = open_runtime(_bundle(bundles["nhwc-uint8"], tmp_path), "text", AUTO)
    assert choice.device == "cpu" and choice.warnings == () and "No providers found" in choice.reason
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
