"""OrtSession and the image/text encoders, on generated toy bundles run by real ONNX Runtime."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import onnx
import pytest

from photoindex.errors import ConfigError, ModelError
from photoindex.inference.bundle import Bundle, FileRole, ImageSpec, resolve_bundle
from photoindex.inference.encoders import ImageEncoder, TextEncoder
from photoindex.inference.sessions.base import TensorSpec
from photoindex.inference.sessions.ort import OrtSession
from photoindex.inference.tokenizers import load_tokenizer
from photoindex.testing import COLOURS, make_bundle


def _file(bundle: Bundle, role: FileRole) -> Path:
    """The bundle's file for `role`, which these generated bundles always have."""
    path = bundle.path(role)
    assert path is not None
    return path


@pytest.fixture(scope="module")
def toy(npu_bundle: Path) -> Bundle:
    return resolve_bundle(str(npu_bundle), Path("/nonexistent"))


def _pixels(n: int, seed: int = 0) -> np.ndarray:
    """Decoded uint8 RGB [N,224,224,3] pixels of flat colours with noise, one colour per item."""
    rng = np.random.default_rng(seed)
    colours = np.asarray(list(COLOURS.values()), dtype=np.float32)[np.arange(n) % len(COLOURS)]
    rgb = colours[:, None, None, :] + rng.normal(0, 0.05 * 255, (n, 224, 224, 3)).astype(np.float32)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _static_batch_copy(src: Path, dst: Path, batch: int) -> Path:
    """The same model with its batch axis compiled to `batch`, as an .axmodel's is."""
    model = onnx.load(str(src))
    for value in [*model.graph.input, *model.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_value = batch
    onnx.save(model, str(dst))
    return dst


# --- OrtSession ----------------------------------------------------------------------------------


def test_ort_session_reads_specs_with_numpy_dtypes_and_dynamic_axes(toy: Bundle) -> None:
    image = OrtSession(_file(toy, "image"))
    assert image.provider == "onnxruntime:CPUExecutionProvider"
    assert image.inputs == [TensorSpec("images", (None, 3, 224, 224), np.dtype(np.float32))]
    assert image.outputs == [TensorSpec("image_features", (None, 512), np.dtype(np.float32))]
    assert image.inputs[0].static_batch is None
    text = OrtSession(_file(toy, "text"), threads=1)
    assert text.inputs == [TensorSpec("texts", (None, 77), np.dtype(np.int32))]
    npu = OrtSession(_file(toy, "image-npu"))
    assert npu.inputs == [TensorSpec("images", (1, 224, 224, 3), np.dtype(np.uint8))]
    assert npu.inputs[0].static_batch == 1


def test_ort_session_missing_file_names_it_and_says_what_to_do(tmp_path: Path) -> None:
    missing = tmp_path / "image_encoder.onnx"
    with pytest.raises(ModelError) as err:
        OrtSession(missing)
    assert str(missing) in err.value.message
    assert err.value.hint is not None and "photoindex models fetch" in err.value.hint


def test_ort_session_corrupt_file_is_a_model_error_pointing_at_verify(toy: Bundle, tmp_path: Path) -> None:
    broken = tmp_path / "text_encoder.onnx"
    broken.write_bytes(_file(toy, "text").read_bytes()[:5000])  # a truncated download
    with pytest.raises(ModelError) as err:
        OrtSession(broken)
    assert str(broken) in err.value.message
    assert err.value.hint is not None and "photoindex models verify" in err.value.hint


def test_ort_session_rejects_negative_threads(toy: Bundle) -> None:
    with pytest.raises(ConfigError):
        OrtSession(_file(toy, "image"), threads=-1)


def test_ort_session_run_with_wrong_dtype_is_a_model_error(toy: Bundle) -> None:
    session = OrtSession(_file(toy, "text"))
    with pytest.raises(ModelError, match="inference failed"):
        session.run({"texts": np.zeros((1, 77), dtype=np.float32)})


# --- ImageEncoder --------------------------------------------------------------------------------


def test_image_encoder_batch_equals_single_items_and_is_unit_length(toy: Bundle) -> None:
    enc = ImageEncoder(OrtSession(_file(toy, "image")), toy.manifest.image, 512)
    assert (enc.layout, enc.batch_size, enc.input_size) == ("nchw-float32", None, 224)
    assert enc.provider == "onnxruntime:CPUExecutionProvider"
    pixels = _pixels(5)
    batch = enc.encode(pixels)
    singles = np.concatenate([enc.encode(pixels[i : i + 1]) for i in range(5)])
    assert batch.shape == (5, 512) and batch.dtype == np.float32
    np.testing.assert_allclose(batch, singles, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-6)
    assert enc.encode(pixels[:0]).shape == (0, 512)


@pytest.mark.parametrize(("batch", "n"), [(1, 5), (4, 6), (4, 4), (4, 1)])
def test_static_batch_model_is_fed_chunks_with_the_same_vectors(
    toy: Bundle, tmp_path: Path, batch: int, n: int
) -> None:
    dynamic = ImageEncoder(OrtSession(_file(toy, "image")), toy.manifest.image, 512)
    static_path = _static_batch_copy(_file(toy, "image"), tmp_path / "static.onnx", batch)
    # ONNX Runtime rejects any other batch size for a static axis, so success proves the chunking.
    static_session = OrtSession(static_path)
    static = ImageEncoder(static_session, toy.manifest.image, 512)
    assert static.batch_size == batch
    pixels = _pixels(n, seed=3)
    with pytest.raises(ModelError):
        static_session.run({"images": static.model_input(_pixels(batch + 1))})
    np.testing.assert_allclose(static.encode(pixels), dynamic.encode(pixels), atol=1e-6)


def test_npu_layout_is_read_from_the_session_and_gives_the_same_vectors(toy: Bundle) -> None:
    npu = ImageEncoder(OrtSession(_file(toy, "image-npu")), toy.manifest.image, 512)
    cpu = ImageEncoder(OrtSession(_file(toy, "image")), toy.manifest.image, 512)
    assert (npu.layout, npu.batch_size) == ("nhwc-uint8", 1)
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(3, 224, 224, 3), dtype=np.uint8)
    # Both take the same decoded pixels; the CPU encoder normalizes them for its float model.
    np.testing.assert_allclose(npu.encode(rgb), cpu.encode(rgb), atol=1e-5)
    with pytest.raises(ModelError, match="uint8"):
        npu.encode(rgb.astype(np.float32))


def test_image_size_other_than_the_manifest_is_a_model_error(toy: Bundle) -> None:
    session = OrtSession(_file(toy, "image"))
    with pytest.raises(ModelError, match="224x224 images, the manifest says 256") as err:
        ImageEncoder(session, ImageSpec(size=256), 512)
    assert str(_file(toy, "image")) in err.value.message
    with pytest.raises(ModelError, match="512 dimensions, the manifest says 768"):
        ImageEncoder(session, toy.manifest.image, 768)


def test_image_encoder_rejects_a_text_model_and_wrong_pixels(toy: Bundle) -> None:
    with pytest.raises(ModelError, match="expected 4 axes"):
        ImageEncoder(OrtSession(_file(toy, "text")), toy.manifest.image, 512)
    enc = ImageEncoder(OrtSession(_file(toy, "image")), toy.manifest.image, 512)
    with pytest.raises(ModelError, match="shape"):
        enc.encode(np.zeros((2, 3, 224, 224), dtype=np.uint8))
    with pytest.raises(ModelError, match="uint8"):
        enc.encode(np.zeros((2, 224, 224, 3), dtype=np.float32))


# --- TextEncoder ---------------------------------------------------------------------------------


def test_text_encoder_batch_equals_single_and_colours_match(toy: Bundle) -> None:
    tok = load_tokenizer("clip-bpe", 77)
    enc = TextEncoder(OrtSession(_file(toy, "text")), tok, 512)
    assert (enc.context_length, enc.batch_size) == (77, None)
    texts = ["a photo of something red", "blue", "a dog", "a grey cat"]
    batch = enc.encode(texts)
    singles = np.concatenate([enc.encode([t]) for t in texts])
    np.testing.assert_allclose(batch, singles, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-6)
    names = list(COLOURS)
    assert int(np.argmax(batch[0])) == names.index("red")
    assert int(np.argmax(batch[1])) == names.index("blue")
    assert int(np.argmax(batch[3])) == names.index("gray")
    assert np.abs(batch[2][: len(COLOURS)]).max() == 0.0  # no colour named: the neutral direction
    assert enc.encode([]).shape == (0, 512)


def test_static_batch_text_model_is_fed_one_at_a_time(toy: Bundle, tmp_path: Path) -> None:
    tok = load_tokenizer("clip-bpe", 77)
    dynamic = TextEncoder(OrtSession(_file(toy, "text")), tok, 512)
    static = TextEncoder(OrtSession(_static_batch_copy(_file(toy, "text"), tmp_path / "t.onnx", 1)), tok, 512)
    assert static.batch_size == 1
    texts = ["red", "green", "nothing"]
    np.testing.assert_allclose(static.encode(texts), dynamic.encode(texts), atol=1e-6)


def test_context_length_must_match_the_model(toy: Bundle) -> None:
    with pytest.raises(ModelError, match="takes 77 tokens, the tokenizer makes 52"):
        TextEncoder(OrtSession(_file(toy, "text")), load_tokenizer("clip-bpe", 52), 512)


def test_open_clip_style_int64_bundle_works_through_its_manifest(tmp_path: Path) -> None:
    bundle = resolve_bundle(str(make_bundle(tmp_path / "oc", "toy", flavour="open_clip")), tmp_path)
    m = bundle.manifest
    assert _file(bundle, "text") == bundle.directory / "textual.onnx"
    session = OrtSession(_file(bundle, "text"))
    assert session.inputs == [TensorSpec("input", (None, 77), np.dtype(np.int64))]
    enc = TextEncoder(session, load_tokenizer(m.text.tokenizer, m.text.context_length), m.embedding_dim)
    vectors = enc.encode(["a photo of something pink", "pink", "a tree"])
    # The model returns unnormalized vectors; the encoder's are unit length.
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert int(np.argmax(vectors[0])) == list(COLOURS).index("pink")
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)
    image = ImageEncoder(OrtSession(_file(bundle, "image")), m.image, m.embedding_dim)
    assert (image.input_size, image.layout) == (256, "nchw-float32")


# --- one batch over several cores (docs/indexing.md, "Keeping both cores busy") ------------------


class _Recording:
    """A real ONNX Runtime session that records the batch size and thread of each run."""

    def __init__(self, session: OrtSession, parallel_runs: int) -> None:
        self._session = session
        self.provider = session.provider
        self.inputs, self.outputs = session.inputs, session.outputs
        self.parallel_runs = parallel_runs
        self.runs: list[tuple[int, str]] = []

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        (x,) = feeds.values()
        self.runs.append((x.shape[0], threading.current_thread().name))
        return self._session.run(feeds)


def test_parallel_sessions_take_one_thread_per_run_and_ask_for_one_run_per_core(toy: Bundle) -> None:
    from photoindex.inference.sessions.ort import cores

    assert OrtSession(_file(toy, "image")).parallel_runs == 1
    assert OrtSession(_file(toy, "image"), threads=2, parallel=True).parallel_runs == 1  # an explicit count wins
    assert OrtSession(_file(toy, "image"), parallel=True).parallel_runs == cores()


def test_a_batch_split_over_parallel_runs_gives_the_vectors_of_one_run(toy: Bundle) -> None:
    one = ImageEncoder(OrtSession(_file(toy, "image"), threads=1), toy.manifest.image, 512)
    recording = _Recording(OrtSession(_file(toy, "image"), threads=1), parallel_runs=3)
    split = ImageEncoder(recording, toy.manifest.image, 512)
    pixels = _pixels(7, seed=5)
    np.testing.assert_allclose(split.encode(pixels), one.encode(pixels), atol=1e-6)
    assert sorted(n for n, _ in recording.runs) == [2, 2, 3]
    # One part on this thread, the others at once on the encoder's own threads.
    threads = {thread for _, thread in recording.runs}
    assert threading.current_thread().name in threads and any(t.startswith("encode-part") for t in threads)
    recording.runs.clear()
    np.testing.assert_allclose(split.encode(pixels[:1]), one.encode(pixels[:1]), atol=1e-6)
    assert [n for n, _ in recording.runs] == [1]  # one photo is one run
    with pytest.raises(ModelError):  # a failed part fails the batch
        split.encode(pixels[:, :100])


def test_too_few_photos_for_every_core_run_once_over_every_core(toy: Bundle) -> None:
    """One photo (the daemon's new photo, a search by example) cannot be split: it runs on the `wide`
    session, whose one run spreads over the cores, instead of one single-threaded run."""
    one = ImageEncoder(OrtSession(_file(toy, "image"), threads=1), toy.manifest.image, 512)
    split = _Recording(OrtSession(_file(toy, "image"), threads=1), parallel_runs=2)
    opened: list[_Recording] = []

    def wide() -> _Recording:
        opened.append(_Recording(OrtSession(_file(toy, "image"), threads=2), parallel_runs=1))
        return opened[-1]

    encoder = ImageEncoder(split, toy.manifest.image, 512, wide=wide)
    pixels = _pixels(3, seed=9)
    np.testing.assert_allclose(encoder.encode(pixels[:1], open_wide=False), one.encode(pixels[:1]), atol=1e-6)
    assert encoder.wide_session is None and [n for n, _ in split.runs] == [1]  # a long run's lone last photo
    split.runs.clear()
    np.testing.assert_allclose(encoder.encode(pixels[:1]), one.encode(pixels[:1]), atol=1e-6)
    np.testing.assert_allclose(encoder.encode(pixels[1:2]), one.encode(pixels[1:2]), atol=1e-6)
    assert len(opened) == 1 and encoder.wide_session is opened[0]  # then kept
    assert [n for n, _ in opened[0].runs] == [1, 1] and split.runs == []
    np.testing.assert_allclose(encoder.encode(pixels), one.encode(pixels), atol=1e-6)
    assert sorted(n for n, _ in split.runs) == [1, 2] and len(opened[0].runs) == 2  # enough to split


def test_a_static_batch_deals_its_chunks_to_every_core(toy: Bundle) -> None:
    """A model compiled for batch 1 run by ONNX Runtime one core per run: its chunks are dealt out to
    runs at once on every core instead of queueing on one, padding and order kept."""
    static = _file(toy, "image-npu")  # an ONNX file with a static batch of 1 (uint8 NHWC)
    one = ImageEncoder(OrtSession(static, threads=1), toy.manifest.image, 512)
    recording = _Recording(OrtSession(static, threads=1), parallel_runs=2)
    encoder = ImageEncoder(recording, toy.manifest.image, 512)
    assert encoder.batch_size == 1
    pixels = _pixels(5, seed=11)
    np.testing.assert_allclose(encoder.encode(pixels), one.encode(pixels), atol=1e-6)
    assert [n for n, _ in recording.runs] == [1] * 5
    threads = {thread for _, thread in recording.runs}
    assert threading.current_thread().name in threads and any(t.startswith("encode-part") for t in threads)


def test_the_cpu_image_encoder_opens_its_wide_session_through_the_fast_copy(toy: Bundle, tmp_path: Path) -> None:
    from photoindex.config import RuntimeConfig
    from photoindex.inference.select import open_image_encoder
    from photoindex.inference.sessions.ort import cores

    if cores() < 2:
        pytest.skip("one core: every run already takes all of them")
    automatic = RuntimeConfig(image="cpu", model_cache=str(tmp_path / "cache"))
    encoder, _ = open_image_encoder(toy, automatic)
    encoder.encode(_pixels(1))
    wide = encoder.wide_session
    assert isinstance(wide, OrtSession) and wide.parallel_runs == 1 and wide.loaded_from is not None
    # An explicit thread count is one run over that many threads already: no second session.
    counted, _ = open_image_encoder(toy, RuntimeConfig(image="cpu", threads=2, model_cache=str(tmp_path / "cache")))
    counted.encode(_pixels(1))
    assert counted.wide_session is None


def test_no_wide_session_without_the_fast_copy_and_a_failing_one_leaves_the_narrow_doing_the_work(
    toy: Bundle, tmp_path: Path
) -> None:
    """Without the fast copy a second session would hold a second copy of the weights: none is opened.
    A wide session that cannot be opened is given up for good and the narrow one encodes."""
    from photoindex.config import RuntimeConfig
    from photoindex.inference.select import open_image_encoder
    from photoindex.inference.sessions.ort import cores

    if cores() < 2:
        pytest.skip("one core: every run already takes all of them")
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    encoder, _ = open_image_encoder(toy, RuntimeConfig(image="cpu", model_cache=str(blocked)))
    assert encoder._session.loaded_from is None  # type: ignore[attr-defined]
    want = encoder.encode(_pixels(1))
    assert encoder.wide_session is None

    split = _Recording(OrtSession(_file(toy, "image"), parallel=True), 2)

    def failing() -> OrtSession:
        raise MemoryError("no room for a second session")

    failed = ImageEncoder(split, toy.manifest.image, 512, wide=failing)
    np.testing.assert_allclose(failed.encode(_pixels(1)), want, atol=1e-6)
    np.testing.assert_allclose(failed.encode(_pixels(1)), want, atol=1e-6)
    assert failed.wide_session is None and [n for n, _ in split.runs] == [1, 1]
