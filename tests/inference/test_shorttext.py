"""Text models run on a query's real tokens only (inference/shorttext.py), through OrtSession's fast copy.

Real ONNX Runtime runs every model: the generated ViT-B/32-sized text transformer (causal, pooled at
EOT, so the padding cannot matter), its BERT-style variant (no padding mask, so it does), and small
graphs shaped like a torch export (the context written into reshape targets and a causal mask).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from photoindex.inference import modelcache, shorttext
from photoindex.inference.encoders import TextEncoder
from photoindex.inference.sessions.ort import OrtSession
from photoindex.inference.tokenizers import load_tokenizer
from photoindex.testing.models import make_text_model

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

QUERIES = [
    "a dog on the beach",
    "金色头发的小姐姐",
    "red",
    "",
    "a photo of my grandmother's birthday cake with many candles on a wooden table " * 6,  # past 77 tokens
]


def probe(tokenizer: str = "clip-bpe", context: int = 77) -> shorttext.TextProbe:
    tok = load_tokenizer(tokenizer, context)
    return shorttext.TextProbe(context, lambda: np.asarray(tok(list(shorttext.PROBE_TEXTS))))


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


@pytest.fixture(scope="module")
def vit_text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # ViT-B/32's text transformer with 2 of its 12 blocks: the same graph, a sixth of the cost.
    return make_text_model(tmp_path_factory.mktemp("vit") / "text_encoder.onnx", "vit-b32", layers=2)


def test_used_length_is_up_to_the_last_real_token_of_any_row() -> None:
    ids = np.array([[5, 7, 0, 0, 0], [5, 7, 9, 4, 0]])
    assert shorttext.used_length(ids) == 4
    assert shorttext.used_length(ids[:1]) == 2
    assert shorttext.used_length(np.zeros((2, 5), dtype=np.int64)) == 1


@pytest.mark.slow
def test_a_causal_text_model_runs_on_real_tokens_with_the_vectors_of_the_full_model(
    vit_text: Path, tmp_path: Path
) -> None:
    """The ViT-B/32 text transformer's copy cuts its positional embedding and causal mask; it is
    checked once, kept as agreeing, and every query (one past the context too) gets the full model's vector."""
    cache = tmp_path / "cache"
    short = OrtSession(vit_text, cache_dir=cache, text_probe=probe())
    assert short.trims_tokens and short.loaded_from is not None
    assert short.loaded_from.name == modelcache.SHORT
    assert short.inputs[0].shape == (None, None)
    verdict = short.loaded_from.parent / modelcache.VERDICT
    assert json.loads(verdict.read_text())["agrees"] is True

    tokenizer = load_tokenizer("clip-bpe", 77)
    full = TextEncoder(OrtSession(vit_text), tokenizer, 512)
    fast = TextEncoder(short, tokenizer, 512)
    assert fast.context_length == 77
    expected = full.encode(QUERIES)
    assert cosines(fast.encode(QUERIES), expected).min() >= shorttext.AGREEMENT
    for query, vector in zip(QUERIES, expected, strict=True):  # alone: each cut to its own length
        assert cosines(fast.encode([query]), vector[None, :]).min() >= shorttext.AGREEMENT

    # The next load trusts the verdict: the copy is not checked again.
    before = verdict.stat().st_mtime_ns
    again = OrtSession(vit_text, cache_dir=cache, text_probe=probe())
    assert again.trims_tokens and verdict.stat().st_mtime_ns == before


@pytest.mark.slow
def test_a_model_the_padding_changes_keeps_its_full_length(tmp_path: Path) -> None:
    """The BERT-style variant attends to its padding (no mask): its copy disagrees, the verdict is kept,
    and the session is the full model's, with the full model's vectors."""
    model = make_text_model(tmp_path / "bert.onnx", "vit-b32", tokenizer="bert-chinese", layers=2)
    cache = tmp_path / "cache"
    session = OrtSession(model, cache_dir=cache, text_probe=probe("bert-chinese", 52))
    assert not session.trims_tokens
    assert session.loaded_from is not None and session.loaded_from.name == modelcache.MODEL
    assert json.loads((session.loaded_from.parent / modelcache.VERDICT).read_text())["agrees"] is False
    tokenizer = load_tokenizer("bert-chinese", 52)
    got = TextEncoder(session, tokenizer, 512).encode(["金色头发", "一只狗"])
    want = TextEncoder(OrtSession(model), tokenizer, 512).encode(["金色头发", "一只狗"])
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert not OrtSession(model, cache_dir=cache, text_probe=probe("bert-chinese", 52)).trims_tokens


def _export_like(path: Path, *, causal: bool, shape_dtype: type = np.int64, batch: int | str = "batch") -> Path:
    """A one-block attention text model written the way torch.onnx writes open_clip's: positional
    embedding and causal mask as Constant nodes, the reshape target built from a [77] constant."""
    rng = np.random.default_rng(3)
    width, context, vocab = 16, 77, 49408

    def const(name: str, value: np.ndarray) -> onnx.NodeProto:
        return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name))

    mask = np.triu(np.full((context, context), -np.inf if causal else 0.0, dtype=np.float32), k=1)
    nodes = [
        # Small embeddings: attention spreads over every token (a strong diagonal would hide the padding).
        const("emb", (rng.standard_normal((vocab, width)) * 0.25).astype(np.float32)),
        const("pos", (rng.standard_normal((context, width)) * 0.25).astype(np.float32)),
        const("mask", mask[None]),
        const("len", np.asarray([context], dtype=shape_dtype)),
        const("wid", np.asarray([width], dtype=shape_dtype)),
        const("proj", rng.standard_normal((width, width)).astype(np.float32)),
        helper.make_node("Cast", ["input"], ["ids64"], to=TensorProto.INT64),
        helper.make_node("Gather", ["emb", "ids64"], ["tok"]),
        helper.make_node("Add", ["tok", "pos"], ["x"]),
        helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["x", "xt"], ["scores"]),
        helper.make_node("Add", ["scores", "mask"], ["masked"]),
        helper.make_node("Softmax", ["masked"], ["attn"], axis=-1),
        helper.make_node("MatMul", ["attn", "x"], ["mixed"]),
        helper.make_node("Shape", ["input"], ["in_shape"]),
        const("zero", np.asarray([0], dtype=np.int64)),
        const("one", np.asarray([1], dtype=np.int64)),
        helper.make_node("Slice", ["in_shape", "zero", "one"], ["batch"]),
        helper.make_node("Cast", ["batch"], ["batch_t"], to=helper.np_dtype_to_tensor_dtype(np.dtype(shape_dtype))),
        helper.make_node("Concat", ["batch_t", "len", "wid"], ["target_t"], axis=0),
        helper.make_node("Cast", ["target_t"], ["target"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["mixed", "target"], ["y"]),
        helper.make_node("ArgMax", ["ids64"], ["eot"], axis=1, keepdims=1),
        helper.make_node("GatherND", ["y", "eot"], ["pooled"], batch_dims=1),
        helper.make_node("MatMul", ["pooled", "proj"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "export_like",
        [helper.make_tensor_value_info("input", TensorProto.INT64, [batch, context])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, width])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(("shape_dtype", "warm"), [(np.int64, False), (np.int32, False), (np.int64, True)])
def test_an_export_with_the_context_in_its_reshape_targets_is_cut_and_agrees(
    tmp_path: Path, shape_dtype: type, warm: bool
) -> None:
    """Loaded for one query (unoptimized) or for many (optimized, prepacked): the same vectors."""
    model = _export_like(tmp_path / "textual.onnx", causal=True, shape_dtype=shape_dtype)
    cold = probe()
    session = OrtSession(model, cache_dir=tmp_path / "cache", text_probe=shorttext.TextProbe(77, cold.ids, warm))
    assert session.trims_tokens
    tokenizer = load_tokenizer("clip-bpe", 77)
    full = TextEncoder(OrtSession(model), tokenizer, 16).encode(QUERIES)
    assert cosines(TextEncoder(session, tokenizer, 16).encode(QUERIES), full).min() >= shorttext.AGREEMENT


def test_a_bidirectional_export_disagrees_and_runs_at_full_length(tmp_path: Path) -> None:
    model = _export_like(tmp_path / "textual.onnx", causal=False)
    session = OrtSession(model, cache_dir=tmp_path / "cache", text_probe=probe())
    assert not session.trims_tokens and session.inputs[0].shape == (None, 77)


def test_a_graph_with_nothing_sized_by_the_context_gets_no_short_copy(toy_bundle: Path, tmp_path: Path) -> None:
    """The toy text model looks for colour ids anywhere in the row: no constant to cut, no copy, full length."""
    copy = modelcache.ensure(toy_bundle / "text_encoder.onnx", tmp_path / "cache", "test", text_context=77)
    assert copy is not None and modelcache.short_copy(copy) is None
    assert not (copy.parent / modelcache.SHORT).exists()


def test_image_models_and_sessions_without_a_probe_never_get_one(tmp_path: Path) -> None:
    model = _export_like(tmp_path / "textual.onnx", causal=True)
    session = OrtSession(model, cache_dir=tmp_path / "cache")
    assert not session.trims_tokens and session.loaded_from is not None
    assert session.loaded_from.name == modelcache.MODEL
    assert modelcache.short_copy(session.loaded_from) is None


def test_an_unreadable_verdict_is_checked_again(tmp_path: Path) -> None:
    model = _export_like(tmp_path / "textual.onnx", causal=True)
    first = OrtSession(model, cache_dir=tmp_path / "cache", text_probe=probe())
    assert first.trims_tokens and first.loaded_from is not None
    verdict = first.loaded_from.parent / modelcache.VERDICT
    verdict.write_text("{not json")
    again = OrtSession(model, cache_dir=tmp_path / "cache", text_probe=probe())
    assert again.trims_tokens
    assert json.loads(verdict.read_text())["agrees"] is True


@pytest.mark.slow
def use_vit_text_bundle(vit_text: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The toy bundle with the ViT-B/32 text model, as this process's only PHOTOINDEX_* settings."""
    from photoindex.testing.models import make_bundle

    bundle = make_bundle(tmp_path / "bundle", "toy")
    (bundle / "text_encoder.onnx").unlink()
    (bundle / "text_encoder.onnx").symlink_to(vit_text)
    for key in [k for k in os.environ if k.startswith("PHOTOINDEX_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PHOTOINDEX_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PHOTOINDEX_MODEL_BUNDLE", str(bundle))
    return bundle


def test_the_daemon_checks_the_copy_at_start_and_the_first_search_trims_without_checking(
    vit_text: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bundle with the ViT-B/32 text model: `prepare_text_model(check=True)` (what the daemon runs at
    start) makes the copy and its verdict; the library's text encoder then trims without a new check,
    and its vectors are the full model's."""
    from photoindex.config import load_config
    from photoindex.library import open_library

    use_vit_text_bundle(vit_text, tmp_path, monkeypatch)
    with open_library(load_config()) as lib:
        lib.prepare_text_model()  # the indexer's: the copy with its short graph, not checked
        copy = modelcache.lookup(vit_text, lib.config.runtime.model_cache_dir, onnxruntime.__version__)
        assert copy is not None and modelcache.short_copy(copy) == (copy.parent / modelcache.SHORT, None)
        lib.prepare_text_model(check=True)
        verdict = copy.parent / modelcache.VERDICT
        assert modelcache.short_copy(copy) == (copy.parent / modelcache.SHORT, True)
        checked = verdict.stat().st_mtime_ns
        vectors = lib.text_vectors(["a dog on the beach", "金色头发的小姐姐"])
        assert lib.text_encoder()._session.trims_tokens  # type: ignore[attr-defined]
        assert verdict.stat().st_mtime_ns == checked
    full = TextEncoder(OrtSession(vit_text), load_tokenizer("clip-bpe", 77), 512)
    want = full.encode(["a dog on the beach", "金色头发的小姐姐"])
    got = np.stack([vectors["a dog on the beach"], vectors["金色头发的小姐姐"]])
    assert cosines(got, want).min() >= shorttext.AGREEMENT


def test_a_model_with_a_static_batch_is_checked_in_runs_of_its_batch_and_trims(tmp_path: Path) -> None:
    model = _export_like(tmp_path / "textual.onnx", causal=True, batch=1)
    session = OrtSession(model, cache_dir=tmp_path / "cache", text_probe=probe())
    assert session.trims_tokens and session.inputs[0].shape == (1, None)
    tokenizer = load_tokenizer("clip-bpe", 77)
    full = TextEncoder(OrtSession(model), tokenizer, 16).encode(QUERIES)
    assert cosines(TextEncoder(session, tokenizer, 16).encode(QUERIES), full).min() >= shorttext.AGREEMENT


def test_vectors_that_are_not_finite_never_agree() -> None:
    ids = probe().ids()
    rng = np.random.default_rng(0)
    table = rng.standard_normal((len(ids), 8))

    def nan_when_cut(x: np.ndarray) -> np.ndarray:  # an answer at full length, NaN when cut
        return table[: len(x)] if x.shape[1] == 77 else np.full((len(x), 8), np.nan)

    assert not shorttext.agrees(nan_when_cut, ids)
    assert not shorttext.agrees(lambda x: np.full((len(x), 8), np.nan), ids)


def _claim(copy: Path, pid: int, since: float) -> None:
    (copy.parent / modelcache.VERDICT).write_text(json.dumps({"checking": {"pid": pid, "since": since}}))


def test_a_check_that_killed_its_process_is_not_repeated(tmp_path: Path) -> None:
    """A claim left by a dead process (the check crashed it) is recorded as a disagreement: full length."""
    import subprocess
    import time

    model = _export_like(tmp_path / "textual.onnx", causal=True)
    copy = modelcache.ensure(model, tmp_path / "cache", onnxruntime.__version__, text_context=77)
    assert copy is not None
    dead = subprocess.Popen(["true"])
    dead.wait()
    _claim(copy, dead.pid, time.time())
    session = OrtSession(model, cache_dir=tmp_path / "cache", text_probe=probe())
    assert not session.trims_tokens
    assert modelcache.short_copy(copy) == (copy.parent / modelcache.SHORT, False)


def test_a_check_running_in_another_process_is_left_to_it(tmp_path: Path) -> None:
    """A live process's fresh claim: this one runs the full graph now and writes nothing; a stale one is a crash."""
    import time

    model = _export_like(tmp_path / "textual.onnx", causal=True)
    copy = modelcache.ensure(model, tmp_path / "cache", onnxruntime.__version__, text_context=77)
    assert copy is not None
    _claim(copy, os.getppid(), time.time())
    session = OrtSession(model, cache_dir=tmp_path / "cache", text_probe=probe())
    assert not session.trims_tokens and session.loaded_from == copy
    assert "checking" in json.loads((copy.parent / modelcache.VERDICT).read_text())
    _claim(copy, os.getppid(), time.time() - 3600)
    assert not OrtSession(model, cache_dir=tmp_path / "cache", text_probe=probe()).trims_tokens
    assert modelcache.short_copy(copy) == (copy.parent / modelcache.SHORT, False)


def test_a_check_that_ran_out_of_memory_is_made_again_next_time(tmp_path: Path) -> None:
    model = _export_like(tmp_path / "textual.onnx", causal=True)

    def no_memory() -> np.ndarray:
        raise MemoryError

    session = OrtSession(model, cache_dir=tmp_path / "cache", text_probe=shorttext.TextProbe(77, no_memory))
    assert not session.trims_tokens and session.loaded_from is not None
    assert modelcache.short_copy(session.loaded_from) == (session.loaded_from.parent / modelcache.SHORT, None)
    assert OrtSession(model, cache_dir=tmp_path / "cache", text_probe=probe()).trims_tokens


def test_photoindex_index_checks_the_copy_at_its_end_so_the_first_search_does_not(
    vit_text: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers import cli

    from photoindex.testing.photos import make_photo

    use_vit_text_bundle(vit_text, tmp_path, monkeypatch)
    monkeypatch.setenv("PHOTOINDEX_OCR_ENABLED", "0")
    make_photo(tmp_path / "photos" / "a.jpg", (200, 30, 30), size=(64, 48))
    cli("index", str(tmp_path / "photos"))
    copy = modelcache.lookup(vit_text, tmp_path / "home" / "cache" / "models", onnxruntime.__version__)
    assert copy is not None and modelcache.short_copy(copy) == (copy.parent / modelcache.SHORT, True)
