"""Regenerate tests/data/tokenizer_golden.json.gz from the reference tokenizers (not run by the tests).

The references need torch, so this runs in a separate virtualenv, never in photoindex's own:

    python -m venv /work/venv-ref
    /work/venv-ref/bin/pip install torch open_clip_torch ftfy==<photoindex's> regex
    /work/venv-ref/bin/pip install --no-deps cn-clip openai-clip six
    /work/venv-ref/bin/python tests/data/make_tokenizer_golden.py

It records, for a deterministic corpus of varied strings:
- `openai`: OpenAI CLIP's `SimpleTokenizer.encode` ids and the row of `clip.tokenize(truncate=True)`;
- `open_clip`: open_clip's `tokenize` row and encode ids, stored only where they differ from OpenAI's;
- `bert`: Chinese-CLIP's `FullTokenizer` ids and the row of `cn_clip.clip.tokenize(context_length=52)`.
Rows are stored without their zero padding. The reference functions are the packages' own code:
the modules whose package `__init__` drags in torchvision are loaded from their files instead, and
the `tokenize` functions of `clip/clip.py` and `cn_clip/clip/utils.py` are executed verbatim.
"""

from __future__ import annotations

import ast
import gzip
import importlib.metadata
import importlib.util
import json
import random
import sys
import unicodedata
from pathlib import Path
from types import ModuleType
from typing import Any

import ftfy
import regex
import torch

CLIP_CONTEXT = 77
BERT_CONTEXT = 52
SEED = 20240611
OUT = Path(__file__).with_name("tokenizer_golden.json.gz")


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, name
    return Path(next(iter(spec.submodule_search_locations)))


def _load_file(module_name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def _function_from_source(path: Path, name: str, namespace: dict[str, Any]) -> Any:
    """Execute one top-level function of a reference file verbatim, in a namespace we provide."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    (node,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    exec(compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec"), namespace)
    return namespace[name]


def _references() -> dict[str, Any]:
    clip_dir = _package_dir("clip")
    simple = _load_file("openai_simple_tokenizer", clip_dir / "simple_tokenizer.py")
    openai_tokenizer = simple.SimpleTokenizer()

    class _Packaging:  # clip.py takes `packaging` from pkg_resources, gone from new setuptools
        import packaging.version as version

    # The reference signatures use typing.List; the builtin serves the same in their annotations.
    from typing import Union

    openai_tokenize = _function_from_source(
        clip_dir / "clip.py",
        "tokenize",
        {
            "_tokenizer": openai_tokenizer,
            "torch": torch,
            "packaging": _Packaging,
            "Union": Union,
            "List": list,
        },
    )

    open_clip_module = _load_file("open_clip_tokenizer", _package_dir("open_clip") / "tokenizer.py")

    cn_dir = _package_dir("cn_clip") / "clip"
    bert = _load_file("cn_clip_bert_tokenizer", cn_dir / "bert_tokenizer.py")
    bert_tokenizer = bert.FullTokenizer(vocab_file=str(cn_dir / "vocab.txt"))
    cn_tokenize = _function_from_source(
        cn_dir / "utils.py",
        "tokenize",
        {"_tokenizer": bert_tokenizer, "torch": torch, "Union": Union, "List": list},
    )
    return {
        "openai_encode": openai_tokenizer.encode,
        "openai_rows": lambda texts: openai_tokenize(texts, context_length=CLIP_CONTEXT, truncate=True),
        "open_clip_encode": open_clip_module._tokenizer.encode,
        "open_clip_rows": lambda texts: open_clip_module.tokenize(texts, context_length=CLIP_CONTEXT),
        "bert_encode": lambda text: bert_tokenizer.convert_tokens_to_ids(bert_tokenizer.tokenize(text)),
        "bert_rows": lambda texts: cn_tokenize(texts, context_length=BERT_CONTEXT),
        "byte_decoder": openai_tokenizer.byte_decoder,
        "merges": list(openai_tokenizer.bpe_ranks),
        "bert_vocab": list(bert_tokenizer.vocab),
    }


# fmt: off
HAND_WRITTEN = [
    # English, the examples of docs/models.md, colours
    "a", "photo", "of", "cat", "dog", "bird", "a photo of a cat", "a photo of a dog", "A PHOTO OF A BIRD",
    "red", "green", "blue", "yellow", "orange", "purple", "pink", "brown", "black", "white", "gray", "grey",
    "a red car parked on the street", "sunset over the mountains", "Golden retriever puppy playing in snow",
    "the quick brown fox jumps over the lazy dog", "HELLO World", "camelCaseWords", "snake_case_words",
    "photoindex", "selfie", "screenshot", "IMG_2023.JPG", "DSC01234.jpeg", "path/to/file.png",
    # apostrophes
    "it's", "don't", "they're", "we've", "I'm", "you'll", "he'd", "IT'S", "DON'T", "rock'n'roll", "O'Neil",
    "dogs' toys", "'s", "'t", "''", "'", "it’s a dog’s life", "‘single’ “double”", "can't won't shan't",
    "y'all'd've", "'re'", "l'été", "'sup",
    # punctuation and symbols
    "!!!", "...", "?!", "a,b;c:d", "(parenthesis)", "[brackets]", "{braces}", "--", "—", "…", "~", "@user",
    "#hashtag", "$100", "50%", "a+b=c", "C++", "C#", "x^2", "a|b", "back\\slash", "`code`", "<tag>",
    "***", "!?!?", "—dash—", "•bullet", "© ® ™", "→ ← ↑ ↓", "∑ ∫ √ ∞", "★☆", "♪♫", "°C", "±5",
    # digits
    "2023", "3.14159", "1,000,000", "007", "1st 2nd 3rd 4th", "٣٤٥", "①②③", "½ ¼ ¾", "x² y³", "Ⅻ",
    "１２３", "0x1F600", "1e-9", "12:30pm", "2024-06-11", "+86 138 0013 8000", "v1.2.3", "4K UHD", "1080p",
    # emoji
    "🐱", "🐶🐕", "👍🏽", "👨\u200d👩\u200d👧", "🇨🇳", "❤️", "☕", "😀 smile", "1️⃣", "🎉🎉🎉 party",
    "cat 🐈 and dog 🐕", "🌅 sunrise", "🏔️", "👩🏻\u200d💻", "🙂🙃", "⭐",
    # accents and letter cases
    "café", "naïve", "Ångström", "façade", "résumé", "São Paulo", "Zürich", "Ñandú", "cafe\u0301",
    "İstanbul", "ß straße", "Œuvre", "Ǆ ǅ ǆ", "ΣΑΣ", "Ḁḁ", "ﬁnance ﬂower", "Æsir", "Øresund", "Łódź",
    "Dvořák", "Tiếng Việt", "ÀÉÎÕÜ", "ǰ", "ﬀ",
    # HTML entities and markup
    "&amp;", "&lt;b&gt;bold&lt;/b&gt;", "&amp;amp;", "&amp;amp;amp;", "&amp;amp;amp;amp;", "&quot;hi&quot;",
    "&#39;", "&#x1F600;", "&nbsp;x&nbsp;", "&copy; 2020", "Tom &amp; Jerry", "<b>bold</b>", "&eacute;",
    "&notanentity;", "&", "AT&T", "&#0;", "&#28;", "&#xD800;", "&AMP;", "&lt;3", "&#128049; cat",
    "<p>a &lt;p&gt; in html</p>", "fish &amp chips", "&gt;&gt;&gt;",
    # mojibake that ftfy repairs
    "cafÃ©", "Ã¼ber", "â€œquotedâ€\x9d", "âœ” check", "Ã©tÃ©", "ÐŸÑ€Ð¸Ð²ÐµÑ‚", "æ—¥æœ¬èªž",
    "The Mona Lisa doesnÃ¢â‚¬â„¢t have eyebrows.", "l'humanitÃ©", "Ã¡", "Ã\xa0 la carte", "â€™", "ðŸ˜€",
    "Ã¢â‚¬Å“double mojibakeÃ¢â‚¬Â", "Ã¥Â¤Â§", "ä¸­æ–‡",
    # Chinese, mixed with English
    "金色头发的小姐姐", "一只猫", "一只猫 a cat", "我爱北京天安门", "iPhone手机", "5G网络", "红色的car",
    "中文，标点。", "“引号”", "《书名》", "（全角括号）", "繁體中文", "𠀀", "㐀", "豈", "猫和狗在草地上玩耍",
    "夕阳下的海边", "一张猫的照片", "a photo of 一只狗", "ＡＢＣ全角字母", "２０２３年", "北京2008奥运会",
    "hello世界", "世界hello", "小狗🐶", "雪山 snow mountain 風景", "中文\u3000全角空格", "测试test测试",
    # Japanese, Korean, other scripts
    "こんにちは世界", "カタカナ", "ｶﾀｶﾅ", "東京タワー", "ひらがな", "안녕하세요", "한국어 텍스트", "ㄱㄴㄷ",
    "Καλημέρα κόσμε", "Привет мир", "مرحبا بالعالم", "שלום עולם", "สวัสดีครับ", "नमस्ते दुनिया", "Բարեւ",
    "ሰላም", "ᚠᚢᚦ", "ꦲꦤ", "日本語とEnglish", "서울 Seoul",
    # whitespace, control characters, odd code points
    "", " ", "   ", "\t", "\n", "\r\n", "\t\ta\tb\n", "a\u3000b", "a\xa0b", "a\u2028b", "a\u2029b",
    "a\u200bb", "a\ufeffb", "\x00", "a\x00b", "\x1b[31mred\x1b[0m", "a\x1cb", "a\x1fb", "a\x85b", "a\x7fb",
    "a\u200db", "\ufffd", "a\ufffdb", "a\ud800b", "\udcff", "\ue000", "a\x0bb\x0cc", "a\rb", "a\x08b",
    "  leading and trailing  ", "multiple     spaces", "tab\tseparated\tvalues", "line\nbreaks\nhere",
    "a\u2003b\u2009c", "\u00ad", "soft\u00adhyphen", "a\u0300", "\u0301", "\u034f", "e\u0301\u0302\u0303",
    # special tokens of every reference
    "<|startoftext|>", "<|endoftext|>", "a <|endoftext|> b", "<start_of_text>", "<end_of_text>",
    "<|ENDOFTEXT|>", "x<|startoftext|>y", "<|endoftext", "[CLS]", "[SEP]", "[UNK]", "[MASK]", "[PAD]",
    "##ing", "## ing", "a [SEP] b",
    # URLs and addresses
    "https://example.com/path?q=1&r=2#frag", "www.google.com", "http://例子.测试", "ftp://a.b/c.jpg",
    "user@mail.com", "https://en.wikipedia.org/wiki/Cat_(disambiguation)", "/home/pi/Pictures/2023/IMG_1.jpg",
    "C:\\Users\\me\\Photos", "file:///tmp/x%20y.jpg",
]
# fmt: on


def _long_strings() -> list[str]:
    return (
        [
            "a photo of " * 40,
            "a" * 300,
            "supercalifragilisticexpialidocious " * 10,
            "supercalifragilisticexpialidocious" * 10,
            "猫" * 100,
            "金色头发的小姐姐" * 12,
            "x" * 199,
            "x" * 200,
            "x" * 201,
            "é" * 250,
            "the " * 500,
            "🐱" * 80,
            " ".join(f"word{i}" for i in range(120)),
            "A long description of a holiday photo: " + "we walked along the beach, " * 12,
            "中文和English混合的很长的句子，" * 8,
            "!" * 400,
            "1234567890" * 30,
        ]
        + [
            # Right at the CLIP boundary (75 words + SOT + EOT = 77) and the BERT boundary (50 pieces).
            " ".join(["cat"] * n)
            for n in (74, 75, 76, 77, 78)
        ]
        + ["猫" * n for n in (49, 50, 51, 52)]
        + ["dog " * 75 + "🐕", "狗" * 50 + "a"]
    )


_WORDS = (
    "the a an of in on at with and or photo picture image cat dog bird car tree house beach mountain sky "
    "sunset sunrise river lake snow rain city street night day portrait landscape flower garden food cake "
    "coffee birthday party wedding baby child man woman people group friends family holiday travel train "
    "airplane boat bicycle red green blue yellow black white golden silver bright dark old new little big "
    "happy smiling running sitting standing sleeping playing eating under over near behind between "
    "it's don't they're we've I'm you'll he'd Paris Tokyo Beijing London NewYork iPhone Samsung Canon Nikon "
    "selfie screenshot document receipt menu whiteboard slide diagram chart map sign logo text handwriting"
).split()
_PUNCT = list(".,!?;:-'\"()[]/&#@%*+=<>~_") + ["...", "—", "“", "”", "’", "。", "，", "！", "？", "、"]
# Code point ranges assigned long ago (stable across the Unicode versions of Python 3.10-3.13), each a
# script or symbol family the tokenizers treat differently.
# fmt: off
_RANGES = [
    (0x20, 0x7E), (0xA0, 0xFF), (0x100, 0x17F), (0x180, 0x24F), (0x370, 0x3CE), (0x400, 0x45F),
    (0x300, 0x36F), (0x5D0, 0x5EA), (0x627, 0x64A), (0x905, 0x939), (0xE01, 0xE3A), (0x3041, 0x3096),
    (0x30A1, 0x30FA), (0xAC00, 0xD7A3), (0x4E00, 0x9FA5), (0x3400, 0x4DB5), (0xFF01, 0xFF5E),
    (0xFF61, 0xFF9F), (0x2000, 0x206F), (0x2190, 0x21FF), (0x2200, 0x22FF), (0x2460, 0x24FF),
    (0x2600, 0x26FF), (0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x3000, 0x303F), (0x20000, 0x2A6D6),
    (0x0, 0x1F), (0x7F, 0x9F),
]
# fmt: on


def _random_strings(refs: dict[str, Any]) -> list[str]:
    rng = random.Random(SEED)
    out: list[str] = []
    # Phrases of common words with random case and punctuation.
    for _ in range(160):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(1, 14))]
        parts = []
        for w in words:
            style = rng.random()
            w = w.upper() if style < 0.1 else w.capitalize() if style < 0.25 else w
            parts.append(w + (rng.choice(_PUNCT) if rng.random() < 0.2 else ""))
        out.append(rng.choice(["", " ", "\t"]) + rng.choice([" ", " ", " ", "  ", "\n"]).join(parts))
    # Pieces spelled by random CLIP merges, so many different merge paths are exercised.
    merges: list[tuple[str, str]] = refs["merges"]
    byte_decoder: dict[str, int] = refs["byte_decoder"]
    for _ in range(140):
        pieces = []
        for _ in range(rng.randint(1, 6)):
            symbol = "".join(rng.choice(merges))
            word_end = symbol.endswith("</w>")
            symbol = symbol.removesuffix("</w>")
            text = bytes(byte_decoder[c] for c in symbol).decode("utf-8", errors="ignore")
            pieces.append(text + (" " if word_end else ""))
        out.append(rng.choice(["", " "]).join(pieces))
    # Runs of random BERT vocabulary entries (Chinese characters, word pieces, symbols).
    vocab: list[str] = refs["bert_vocab"]
    for _ in range(120):
        tokens = [rng.choice(vocab[106:]) for _ in range(rng.randint(1, 10))]
        out.append(rng.choice(["", " ", ""]).join(t.removeprefix("##") for t in tokens))
    # Random characters across scripts, symbols, marks, controls and whitespace.
    for _ in range(140):
        chars = []
        for _ in range(rng.randint(1, 24)):
            low, high = rng.choice(_RANGES)
            chars.append(chr(rng.randint(low, high)))
            if rng.random() < 0.15:
                chars.append(rng.choice([" ", " ", "\t", "\n", "\u3000"]))
        out.append("".join(chars))
    # Mojibake of random phrases through the usual wrong codecs.
    samples = [s for s in HAND_WRITTEN if any(ord(c) > 127 for c in s) and "\ud800" not in s]
    samples = [s for s in samples if not any(0xD800 <= ord(c) <= 0xDFFF for c in s)]
    for _ in range(60):
        text = rng.choice(samples)
        codec = rng.choice(["latin-1", "cp1252", "cp1252", "mac_roman"])
        out.append(text.encode("utf-8").decode(codec, errors="replace"))
    return out


def main() -> None:
    refs = _references()
    texts = list(dict.fromkeys(HAND_WRITTEN + _long_strings() + _random_strings(refs)))
    openai_rows = refs["openai_rows"](texts).tolist()
    open_clip_rows = refs["open_clip_rows"](texts).tolist()
    bert_rows = refs["bert_rows"](texts).tolist()

    def trim(row: list[int]) -> list[int]:
        while row and row[-1] == 0:
            row.pop()
        return row

    cases = []
    for i, text in enumerate(texts):
        case: dict[str, Any] = {"text": text}
        case["clip"] = refs["openai_encode"](text)
        case["clip_row"] = trim(openai_rows[i])
        oc_ids, oc_row = refs["open_clip_encode"](text), trim(open_clip_rows[i])
        # open_clip agrees with OpenAI except on literal special-token strings; store only differences.
        if oc_ids != case["clip"]:
            case["open_clip"] = oc_ids
        if oc_row != case["clip_row"]:
            case["open_clip_row"] = oc_row
        case["bert"] = refs["bert_encode"](text)
        case["bert_row"] = trim(bert_rows[i])
        cases.append(case)

    golden = {
        "about": "reference token ids; regenerate with tests/data/make_tokenizer_golden.py",
        "clip_context_length": CLIP_CONTEXT,
        "bert_context_length": BERT_CONTEXT,
        "versions": {
            "python": sys.version.split()[0],
            "unicodedata": unicodedata.unidata_version,
            "ftfy": ftfy.__version__,
            "regex": regex.__version__,
            "torch": torch.__version__,
            "open_clip_torch": importlib.metadata.version("open_clip_torch"),
            "openai-clip": importlib.metadata.version("openai-clip"),
            "cn_clip": importlib.metadata.version("cn_clip"),
        },
        "cases": cases,
    }
    payload = json.dumps(golden, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    # mtime=0 keeps the file byte-identical across regenerations.
    OUT.write_bytes(gzip.compress(payload, compresslevel=9, mtime=0))
    differ = sum(1 for c in cases if "open_clip" in c or "open_clip_row" in c)
    print(
        f"{OUT}: {len(cases)} cases, {OUT.stat().st_size} bytes, {differ} where open_clip differs from OpenAI"
    )


if __name__ == "__main__":
    main()
