"""The OCR models on the NPU path: Axera-style static-shape builds run through `AxSession` (the axengine
stand-in, tests/axengine_standin, which enforces static shapes and exact dtypes) and read what the CPU reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from photoindex.config import OcrConfig, RuntimeConfig
from photoindex.errors import ModelError
from photoindex.testing.textphotos import font_path, make_text_photo

pytestmark = pytest.mark.skipif(font_path() is None, reason="needs fonts-noto-cjk (see .ci/run)")

DET = (1, 3, 960, 960)
REC = (6, 3, 48, 320)


def static_copy(src: Path, dst: Path, shape_in: tuple[int, ...], shape_out: tuple[int, ...]) -> None:
    """The ONNX model with static input and output shapes, named like Axera's .axmodel builds."""
    import onnx

    model = onnx.load(str(src))
    for value, shape in ((model.graph.input[0], shape_in), (model.graph.output[0], shape_out)):
        for dim, size in zip(value.type.tensor_type.shape.dim, shape, strict=True):
            dim.ClearField("dim_param")
            dim.dim_value = size
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))


@pytest.fixture
def npu_models(tmp_path: Path) -> Path:
    from photoindex.ocr.engine import _package_file, read_manifest

    manifest = read_manifest()
    folder = tmp_path / "models" / manifest.name
    det, rec = manifest.file("det"), manifest.file("rec")
    det_npu, rec_npu = manifest.file("det-npu"), manifest.file("rec-npu")
    assert det and rec and det_npu and rec_npu
    static_copy(_package_file(det), folder / det_npu.name, DET, (1, 1, 960, 960))
    static_copy(_package_file(rec), folder / rec_npu.name, REC, (6, 40, 6625))  # 320 / 8 time steps
    return tmp_path / "models"


@pytest.mark.slow
def test_the_npu_builds_read_what_the_cpu_reads(standin: pytest.MonkeyPatch, npu_models: Path, tmp_path: Path) -> None:
    from photoindex.ocr.engine import TextReader
    from photoindex.photos.imaging import decode_for_text

    photo = make_text_photo(tmp_path / "p.jpg", ["STARBUCKS RECEIPT 2024", "杭州西湖 欢迎光临"], size=(900, 300),
                            font_size=44, seed=5)
    pixels, factor = decode_for_text(photo.path, 960)
    ocr = OcrConfig(max_side=960)
    npu = TextReader(ocr, RuntimeConfig(threads=2), npu_models)
    assert npu.providers == {"det": "axengine:AxEngineExecutionProvider", "rec": "axengine:AxEngineExecutionProvider"}
    assert npu.engine_id.endswith("/npu")
    cpu = TextReader(OcrConfig(max_side=960, runtime="cpu"), RuntimeConfig(threads=2), npu_models)
    assert set(cpu.providers.values()) == {"onnxruntime:CPUExecutionProvider"}
    on_npu, on_cpu = npu.read(pixels, factor), cpu.read(pixels, factor)
    assert [line.text.replace(" ", "") for line in on_npu] == ["STARBUCKSRECEIPT2024", "杭州西湖欢迎光临"]
    # The recognizer sees each line padded to its compiled width (320) rather than to its batch's widest line,
    # which may change where spaces fall, not the characters.
    assert [line.text.replace(" ", "") for line in on_npu] == [line.text.replace(" ", "") for line in on_cpu]


def test_runtime_npu_without_the_builds_fails_clearly(no_axengine: None, tmp_path: Path) -> None:
    from photoindex.ocr.engine import TextReader

    with pytest.raises(ModelError) as err:
        TextReader(OcrConfig(runtime="npu"), RuntimeConfig(), tmp_path / "models")
    assert "ch_PP-OCRv4_det.axmodel" in (err.value.hint or "")
