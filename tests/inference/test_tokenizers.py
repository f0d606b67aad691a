"""The tokenizers give exactly the ids of OpenAI CLIP, open_clip and Chinese-CLIP on a golden corpus.

The golden file is produced by tests/data/make_tokenizer_golden.py from the reference packages (which
need torch, so they are not imported here).
"""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import ftfy
import numpy as np
import pytest

import photoindex.inference.tokenizers as tokenizers
from photoindex.errors import ModelError
from photoindex.inference.tokenizers import BertChineseTokenizer, ClipBpeTokenizer, load_tokenizer

GOLDEN = Path(__file__).parent.parent / "data" / "tokenizer_golden.json.gz"
SPECIAL_LITERALS = ("<|startoftext|>", "<|endoftext|>", "<start_of_text>", "<end_of_text>")


@cache
def golden() -> dict[str, Any]:
    return json.loads(gzip.decompress(GOLDEN.read_bytes()))


def cases() -> list[dict[str, Any]]:
    return golden()["cases"]


def padded(row: list[int], length: int) -> list[int]:
    return row + [0] * (length - len(row))


def mismatches(pairs: list[tuple[str, Any, Any]]) -> list[str]:
    """The first few (text, got, expected) that differ, readable in a failure message."""
    return [f"{text!r}: got {got} expected {want}" for text, got, want in pairs if got != want][:5]


def test_golden_corpus_is_varied_and_valid() -> None:
    data = golden()
    texts = [c["text"] for c in data["cases"]]
    assert len(texts) >= 600 and len(set(texts)) == len(texts)
    assert data["clip_context_length"] == 77 and data["bert_context_length"] == 52
    assert "" in texts and any(len(c["clip"]) > 75 for c in data["cases"])
    assert any(len(c["bert"]) > 50 for c in data["cases"])


def test_clip_encode_equals_openai_simple_tokenizer() -> None:
    tok = ClipBpeTokenizer(77)
    assert not mismatches([(c["text"], tok.encode(c["text"]), c["clip"]) for c in cases()])


def test_clip_rows_equal_openai_tokenize_truncate() -> None:
    rows = ClipBpeTokenizer(77)([c["text"] for c in cases()])
    assert rows.shape == (len(cases()), 77)
    assert not mismatches(
        [(c["text"], r.tolist(), padded(c["clip_row"], 77)) for c, r in zip(cases(), rows, strict=True)]
    )


def test_clip_rows_equal_open_clip_except_on_special_token_literals() -> None:
    tok = ClipBpeTokenizer(77)
    differing = []
    for case in cases():
        expected = case.get("open_clip_row", case["clip_row"])
        if tok([case["text"]])[0].tolist() != padded(expected, 77):
            differing.append(case["text"])
    # The two references disagree only on their special-token spellings; photoindex follows OpenAI.
    assert differing and all(any(s in t.lower() for s in SPECIAL_LITERALS) for t in differing)


def test_bert_encode_equals_cn_clip_full_tokenizer() -> None:
    tok = BertChineseTokenizer(52)
    assert not mismatches([(c["text"], tok.encode(c["text"]), c["bert"]) for c in cases()])


def test_bert_rows_equal_cn_clip_tokenize() -> None:
    rows = BertChineseTokenizer(52)([c["text"] for c in cases()])
    assert rows.shape == (len(cases()), 52)
    assert not mismatches(
        [(c["text"], r.tolist(), padded(c["bert_row"], 52)) for c, r in zip(cases(), rows, strict=True)]
    )


@pytest.mark.parametrize("length", [2, 3, 10, 52, 77, 100])
def test_other_context_lengths_cut_like_the_references(length: int) -> None:
    clip, bert = ClipBpeTokenizer(length), BertChineseTokenizer(length)
    texts = [c["text"] for c in cases()]
    clip_rows, bert_rows = clip(texts), bert(texts)
    for case, clip_row, bert_row in zip(cases(), clip_rows, bert_rows, strict=True):
        # clip.tokenize(truncate=True): keep the first `length`, then overwrite the last with EOT.
        want = [49406, *case["clip"], 49407]
        if len(want) > length:
            want = want[:length]
            want[-1] = 49407
        assert clip_row.tolist() == padded(want, length), case["text"]
        assert bert_row.tolist() == padded([101, *case["bert"][: length - 2], 102], length), case["text"]


def test_hand_checked_ids_from_models_md() -> None:
    clip = load_tokenizer("clip-bpe", 77)
    for word, wanted in {"a": 320, "photo": 1125, "of": 539, "cat": 2368, "dog": 1929, "bird": 3329}.items():
        assert clip.encode(word) == [wanted]
    assert clip(["a photo of a cat"])[0, :7].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407]
    bert = load_tokenizer("bert-chinese", 52)
    row = bert(["猫 cat"])[0]
    assert row[0] == 101 and 102 in row.tolist()
    assert bert.encode("\u9fff\u9ffe") == [100, 100]  # CJK characters outside the vocabulary are [UNK]
    assert bert.encode("x" * 201) == [100]  # words over 200 characters are [UNK] whole


def test_truncation_keeps_the_end_token_and_padding_is_zero() -> None:
    clip, bert = load_tokenizer("clip-bpe", 77), load_tokenizer("bert-chinese", 52)
    rows = clip(["cat " * 200, "cat"])
    assert rows.dtype == np.int64 and rows.shape == (2, 77)
    assert rows[0, 0] == 49406 and rows[0, -1] == 49407 and (rows[0, 1:-1] == 2368).all()
    assert rows[1, :3].tolist() == [49406, 2368, 49407] and not rows[1, 3:].any()
    brows = bert(["猫" * 100, "猫"])
    assert brows.dtype == np.int64 and brows.shape == (2, 52)
    assert brows[0, 0] == 101 and brows[0, -1] == 102 and len(set(brows[0, 1:-1].tolist())) == 1
    assert brows[1, 0] == 101 and brows[1, 2] == 102 and not brows[1, 3:].any()


def test_a_single_string_is_one_row_and_no_strings_is_an_empty_batch() -> None:
    for tok in (load_tokenizer("clip-bpe", 77), load_tokenizer("bert-chinese", 52)):
        assert tok("a red car").tolist() == tok(["a red car"]).tolist()
        empty = tok([])
        assert empty.shape == (0, tok.context_length) and empty.dtype == np.int64


def test_load_tokenizer_caches_per_kind_and_length_and_rejects_unknown_kinds() -> None:
    assert load_tokenizer("clip-bpe", 77) is load_tokenizer("clip-bpe", 77)
    assert load_tokenizer("clip-bpe", 77) is not load_tokenizer("clip-bpe", 64)
    assert load_tokenizer("bert-chinese", 52).kind == "bert-chinese"
    assert load_tokenizer("clip-bpe", 64).context_length == 64
    with pytest.raises(ModelError, match="unknown tokenizer kind 'sentencepiece'") as info:
        load_tokenizer("sentencepiece", 77)
    assert info.value.hint and "clip-bpe" in info.value.hint
    with pytest.raises(ModelError, match="context length"):
        ClipBpeTokenizer(1)
    with pytest.raises(ModelError, match="context length"):
        BertChineseTokenizer(0)


def test_ftfy_leaves_the_fast_path_alphabet_unchanged() -> None:
    # The tokenizer skips ftfy for text made only of these characters; ftfy must agree it is a no-op.
    alphabet = sorted(tokenizers._FTFY_INERT)
    rng = random.Random(7)
    samples = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(1500)]
    samples += ["it's", "a\tb\nc", "  x  ", "<b>bold</b>", "\n\n", "#39;", "lt;3", "C:\\x", "a;b"]
    samples += [c["text"] for c in cases() if tokenizers._FTFY_INERT.issuperset(c["text"])]
    assert [s for s in samples if ftfy.fix_text(s) != s] == []
    assert "&" not in tokenizers._FTFY_INERT and "\r" not in tokenizers._FTFY_INERT


def test_the_ascii_split_equals_the_reference_pattern_on_the_fast_path_alphabet() -> None:
    """Plain ASCII text is cleaned and pre-split with `re`; `regex` and the full cleaning must agree."""
    tok = tokenizers.ClipBpeTokenizer(77)
    findall, _ = tok._patterns()
    alphabet = sorted(tokenizers._FTFY_INERT)
    rng = random.Random(11)
    samples = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))) for _ in range(3000)]
    samples += ["It'S a DOG's life", "<|startoftext|>x<|endoftext|>", "  a\t\tb \n c  ", "x9y99 'll'd", "''", ""]
    samples += [c["text"] for c in cases() if tokenizers._FTFY_INERT.issuperset(c["text"])]
    assert all(tokenizers._FTFY_INERT.issuperset(s) for s in samples)
    assert [s for s in samples if tok._pieces(s) != findall(tok._clean(s))] == []


def test_plain_queries_do_not_import_ftfy_or_regex() -> None:
    code = (
        "import sys\n"
        "from photoindex.inference.tokenizers import load_tokenizer\n"
        "assert 'ftfy' not in sys.modules\n"
        "load_tokenizer('clip-bpe', 77)(['a photo of a red car'])\n"
        "assert 'ftfy' not in sys.modules, 'ftfy imported for ASCII text'\n"
        "assert 'regex' not in sys.modules, 'regex imported for ASCII text'\n"
        "load_tokenizer('clip-bpe', 77)(['café'])\n"
        "assert 'ftfy' in sys.modules and 'regex' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_small_bpe_cache_gives_the_same_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    # A daemon drops the cache when it fills; ids must not depend on what was cached.
    monkeypatch.setattr(tokenizers, "_BPE_CACHE_LIMIT", 3)
    tok = ClipBpeTokenizer(77)
    subset = cases()[::5]
    assert not mismatches([(c["text"], tok.encode(c["text"]), c["clip"]) for c in subset])
    assert len(tok._cache) <= 3


def test_missing_or_damaged_vocabularies_raise_model_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokenizers, "data_file", lambda name: tmp_path / name)
    with pytest.raises(ModelError, match="bpe_simple_vocab_16e6.txt.gz") as info:
        ClipBpeTokenizer(77)
    assert info.value.hint and "reinstall" in info.value.hint
    (tmp_path / tokenizers.CLIP_VOCAB).write_bytes(gzip.compress(b"#version: 0.2\ni n\nt h\n"))
    with pytest.raises(ModelError, match="truncated"):
        ClipBpeTokenizer(77)
    (tmp_path / tokenizers.CLIP_VOCAB).write_bytes(b"\x1f\x8b\x08\x00garbage" * 10)
    with pytest.raises(ModelError, match="corrupt"):
        ClipBpeTokenizer(77)
    with pytest.raises(ModelError, match="bert_chinese_vocab.txt"):
        BertChineseTokenizer(52)
    (tmp_path / tokenizers.BERT_VOCAB).write_text("[PAD]\n[UNK]\n[CLS]\n", encoding="utf-8")
    with pytest.raises(ModelError, match="not Chinese-CLIP's"):
        BertChineseTokenizer(52)
