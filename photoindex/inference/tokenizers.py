"""Text tokenizers for the text encoders: CLIP byte-level BPE and BERT-Chinese WordPiece, id-exact.

`ClipBpeTokenizer` gives the ids of OpenAI CLIP's `SimpleTokenizer` + `clip.tokenize(truncate=True)`
(open_clip's `tokenize` gives the same ids, except for the literal special-token strings noted on the
class). `BertChineseTokenizer` gives the ids of Chinese-CLIP's `cn_clip.clip.tokenize`. Both are checked
id for id against a golden corpus produced by the reference implementations
(`tests/data/make_tokenizer_golden.py`).
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from photoindex.errors import ModelError
from photoindex.resources import data_file

CLIP_VOCAB = "bpe_simple_vocab_16e6.txt.gz"
BERT_VOCAB = "bert_chinese_vocab.txt"

# The reference uses the first 49152-256-2 merges: 256 byte symbols, 256 `</w>` forms, the merges and
# the two special tokens make its 49,408 ids.
_CLIP_MERGES = 49152 - 256 - 2
CLIP_SOT = 49406
CLIP_EOT = 49407

BERT_PAD = 0
BERT_UNK = 100
BERT_CLS = 101
BERT_SEP = 102

# The reference's pre-split pattern, special tokens first (so a literal "<|endoftext|>" in a query is
# the EOT id, as in OpenAI's SimpleTokenizer).
_CLIP_PATTERN = (
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
)
_CLIP_SPECIALS = {"<|startoftext|>": CLIP_SOT, "<|endoftext|>": CLIP_EOT}
# The same pattern for lowercased printable ASCII (`ClipBpeTokenizer._pieces`), with the standard `re`.
_ASCII_SPLIT: Callable[[str], list[str]] = re.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^\sa-z0-9]+"""
).findall

# Printable ASCII plus tab and newline, without "&": ftfy.fix_text returns such text unchanged (no
# mojibake, entities, terminal escapes, control characters, CRs or non-NFC forms are possible), so
# common queries skip importing ftfy, which costs more than the rest of the tokenizer. The test suite
# checks this claim against ftfy itself.
_FTFY_INERT = frozenset(chr(c) for c in range(0x20, 0x7F) if chr(c) != "&") | {"\t", "\n"}

_BPE_CACHE_LIMIT = 20_000


def _id_rows(texts: Sequence[str], context_length: int, row_ids: Callable[[str], list[int]]) -> np.ndarray:
    """An [N, context_length] int64 array, zero-padded, of `row_ids(text)` for each text (one str is one text)."""
    if isinstance(texts, str):
        texts = [texts]
    rows = np.zeros((len(texts), context_length), dtype=np.int64)
    for row, text in enumerate(texts):
        ids = row_ids(text)
        rows[row, : len(ids)] = ids
    return rows


def _check_context_length(kind: str, context_length: int) -> None:
    # Room for the start and end markers at least.
    if context_length < 2:
        raise ModelError(
            f"a {kind} tokenizer needs a context length of at least 2, got {context_length}",
            "fix `context_length` in the model manifest",
        )


class Tokenizer(Protocol):
    """Turns query text into the int64 id rows a text encoder takes."""

    kind: str
    context_length: int

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` without special tokens, not truncated."""
        ...

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """An [N, context_length] int64 array: special tokens added, truncated, zero-padded."""
        ...


def _clip_byte_symbols() -> tuple[list[str], list[str]]:
    """CLIP's byte-to-unicode map: the 256 base symbols in id order, and the symbol of each byte value."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("\xa1"), ord("\xac") + 1),
        *range(ord("\xae"), ord("\xff") + 1),
    ]
    others = [b for b in range(256) if b not in set(printable)]
    # Printable bytes stand for themselves and come first; the rest are shifted past 255 so that no
    # symbol is whitespace or a control character.
    symbols = [chr(b) for b in printable] + [chr(256 + n) for n in range(len(others))]
    table = [""] * 256
    for byte, symbol in zip(printable + others, symbols, strict=True):
        table[byte] = symbol
    return symbols, table


def _read_merge_lines(count: int) -> list[str]:
    """The first `count` merge lines of the gzip'd merge list, decompressing only as much as needed."""
    path = data_file(CLIP_VOCAB)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelError(
            f"cannot read the CLIP merge list {path}: {exc.strerror}",
            "reinstall photoindex; the file ships inside the package",
        ) from exc
    # The list holds 262,144 merges but CLIP uses the first 48,894: stop decompressing once they are in.
    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    chunks: list[bytes] = []
    newlines = 0
    step = 1 << 16
    try:
        for start in range(0, len(raw), step):
            chunk = inflater.decompress(raw[start : start + step])
            chunks.append(chunk)
            newlines += chunk.count(b"\n")
            if newlines > count + 1:
                break
    except zlib.error as exc:
        raise ModelError(
            f"the CLIP merge list {path} is corrupt: {exc}", "reinstall photoindex to restore the file"
        ) from exc
    lines = b"".join(chunks).decode("utf-8").split("\n")
    if len(lines) < count + 2:
        raise ModelError(
            f"the CLIP merge list {path} is truncated ({len(lines) - 1} of {count} merges)",
            "reinstall photoindex to restore the file",
        )
    # Line 0 is the version header.
    return lines[1 : count + 1]


def _fix_text(text: str) -> str:
    """ftfy.fix_text, skipped (and ftfy left unimported) when it provably changes nothing."""
    if _FTFY_INERT.issuperset(text):
        return text
    import ftfy  # noqa: PLC0415 - deferred: importing ftfy costs tens of milliseconds per CLI start

    return ftfy.fix_text(text)


class ClipBpeTokenizer:
    """OpenAI CLIP's byte-level BPE: ids equal to `clip.tokenize(texts, truncate=True)`.

    Text is fixed with ftfy, HTML-unescaped twice, whitespace-collapsed and lowercased, pre-split with
    CLIP's regular expression, mapped byte by byte to symbols and merged by rank. Rows are
    `[49406] + ids + [49407]`, cut to `context_length` with the EOT kept as the last id, zero-padded.
    open_clip differs only on the literal strings `<|startoftext|>`/`<|endoftext|>` (plain text there)
    and `<start_of_text>`/`<end_of_text>` (special there); this class follows OpenAI.
    """

    kind = "clip-bpe"

    def __init__(self, context_length: int = 77) -> None:
        _check_context_length("CLIP", context_length)
        self.context_length = context_length
        merges = _read_merge_lines(_CLIP_MERGES)
        # Ranks are keyed by the merge line itself ("a b"): every symbol is free of whitespace, so the
        # line is the pair, and no 48,894 tuples need building. Later duplicates win, as in the reference.
        self._ranks: dict[str, int] = dict(zip(merges, range(len(merges)), strict=True))
        symbols, self._byte_table = _clip_byte_symbols()
        encoder = dict(zip(symbols, range(256), strict=True))
        encoder.update(zip([s + "</w>" for s in symbols], range(256, 512), strict=True))
        # One replace over the joined lines instead of 48,894 (a tenth of the tokenizer's start-up).
        joined = "\n".join(merges).replace(" ", "").split("\n")
        encoder.update(zip(joined, range(512, 512 + len(merges)), strict=True))
        encoder.update(_CLIP_SPECIALS)
        self._encoder = encoder
        self._unicode: tuple[Callable[[str], list[str]], Any] | None = None
        self._cache: dict[str, list[int]] = {}

    def _patterns(self) -> tuple[Callable[[str], list[str]], Any]:
        """The reference's pre-split and whitespace patterns, with `regex` (imported on first need)."""
        if self._unicode is None:
            import regex  # noqa: PLC0415 - ~30 ms to import; plain ASCII queries never need it

            # regex's \s (Unicode White_Space), as the reference, which imports regex as re.
            self._unicode = (regex.compile(_CLIP_PATTERN, regex.IGNORECASE).findall, regex.compile(r"\s+"))
        return self._unicode

    def _clean(self, text: str) -> str:
        """The reference's basic_clean, whitespace_clean and lowercasing, in its order."""
        text = html.unescape(html.unescape(_fix_text(text))).strip()
        return self._patterns()[1].sub(" ", text).strip().lower()

    def _pieces(self, text: str) -> list[str]:
        """The text cleaned and pre-split as the reference does."""
        if _FTFY_INERT.issuperset(text):
            # Printable ASCII, tab and newline, no "&": ftfy and unescaping change nothing, the only
            # whitespace is tab, newline and space (all of them `\s` for both `re` and `regex`), and
            # \p{L} and \p{N} are [a-z] and [0-9] once lowercased: `re` splits it as `regex` would.
            return _ASCII_SPLIT(" ".join(text.split()).lower())
        findall, _ = self._patterns()
        return findall(self._clean(text))

    def _bpe(self, word: str) -> list[int]:
        """The ids of one pre-split piece (already mapped to byte symbols)."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        special = _CLIP_SPECIALS.get(word)
        if special is not None:
            return [special]
        parts = [*word[:-1], word[-1] + "</w>"]
        ranks = self._ranks
        # Merge the lowest-ranked adjacent pair everywhere it occurs, left to right, until none is known;
        # this is the reference's loop with the pair spelled as its merge line.
        while len(parts) > 1:
            best_rank = -1
            best = ""
            for i in range(len(parts) - 1):
                rank = ranks.get(parts[i] + " " + parts[i + 1])
                if rank is not None and (best_rank < 0 or rank < best_rank):
                    best_rank = rank
                    best = parts[i] + " " + parts[i + 1]
            if best_rank < 0:
                break
            first, second = best.split(" ")
            merged: list[str] = []
            i = 0
            while i < len(parts):
                if i < len(parts) - 1 and parts[i] == first and parts[i + 1] == second:
                    merged.append(first + second)
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        ids = [self._encoder[p] for p in parts]
        if len(self._cache) >= _BPE_CACHE_LIMIT:
            # A long-running daemon must not grow without bound; results are pure, so dropping is safe.
            self._cache.clear()
        self._cache[word] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """CLIP ids of `text` without SOT/EOT, not truncated."""
        table = self._byte_table
        ids: list[int] = []
        for piece in self._pieces(text):
            ids.extend(self._bpe("".join([table[b] for b in piece.encode("utf-8")])))
        return ids

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """An [N, context_length] int64 array of `[SOT] ids [EOT]` rows, EOT kept when cut, zero-padded."""
        def row(text: str) -> list[int]:
            return [*[CLIP_SOT, *self.encode(text)][: self.context_length - 1], CLIP_EOT]

        return _id_rows(texts, self.context_length, row)


# The CJK Unified Ideographs blocks that BERT splits one character per token (the reference's list;
# it leaves out Hiragana, Katakana and Hangul on purpose).
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def _is_cjk(cp: int) -> bool:
    """Whether a code point is a CJK ideograph in BERT's sense."""
    return any(low <= cp <= high for low, high in _CJK_RANGES)


def _is_bert_whitespace(char: str) -> bool:
    """BERT's whitespace: space, tab, newline, CR and category Zs."""
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def _is_bert_control(char: str) -> bool:
    """BERT's control characters (dropped): categories Cc and Cf, except tab, newline and CR."""
    if char in "\t\n\r":
        return False
    # Only Cc/Cf in the reference: private-use, surrogate and unassigned code points are kept.
    return unicodedata.category(char) in ("Cc", "Cf")


def _is_bert_punctuation(char: str) -> bool:
    """BERT's punctuation: all non-alphanumeric ASCII symbols and category P*."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _bert_basic_tokens(text: str) -> list[str]:
    """BERT's BasicTokenizer: clean, space out CJK, lowercase, strip accents, split off punctuation."""
    cleaned: list[str] = []
    for char in text:
        cp = ord(char)
        if cp == 0 or cp == 0xFFFD or _is_bert_control(char):
            continue
        if _is_bert_whitespace(char):
            cleaned.append(" ")
        elif _is_cjk(cp):
            cleaned.append(f" {char} ")
        else:
            cleaned.append(char)
    pieces: list[str] = []
    for token in "".join(cleaned).split():
        token = unicodedata.normalize("NFD", token.lower())
        token = "".join(c for c in token if unicodedata.category(c) != "Mn")
        current: list[str] = []
        for char in token:
            if _is_bert_punctuation(char):
                if current:
                    pieces.append("".join(current))
                    current = []
                pieces.append(char)
            else:
                current.append(char)
        if current:
            pieces.append("".join(current))
    # The reference re-joins with spaces and splits again, which also splits on whitespace that
    # accent stripping or lowercasing produced; an empty piece cannot survive either way.
    return " ".join(pieces).split()


class BertChineseTokenizer:
    """Chinese-CLIP's BERT tokenizer: ids equal to `cn_clip.clip.tokenize(texts, context_length)`.

    BasicTokenizer (clean, CJK characters one per token, lowercase, strip accents, split punctuation)
    then greedy longest-match WordPiece with `##` continuations and `[UNK]` for words it cannot cover
    or longer than 200 characters. Rows are `[CLS] + ids[: context_length - 2] + [SEP]`, zero-padded.
    """

    kind = "bert-chinese"
    max_word_chars = 200

    def __init__(self, context_length: int = 52) -> None:
        _check_context_length("BERT", context_length)
        self.context_length = context_length
        path = data_file(BERT_VOCAB)
        try:
            # Universal newlines and strip(), as the reference's load_vocab; a later duplicate wins.
            with path.open(encoding="utf-8") as handle:
                self._vocab: dict[str, int] = {line.strip(): index for index, line in enumerate(handle)}
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelError(
                f"cannot read the BERT vocabulary {path}: {exc}",
                "reinstall photoindex; the file ships inside the package",
            ) from exc
        if self._vocab.get("[UNK]") != BERT_UNK or self._vocab.get("[CLS]") != BERT_CLS:
            raise ModelError(
                f"the BERT vocabulary {path} is not Chinese-CLIP's ([UNK]/[CLS] are not 100/101)",
                "reinstall photoindex to restore the file",
            )
        # No vocabulary entry is longer than this, so longer candidate substrings need not be tried.
        self._longest = max(len(token) for token in self._vocab)

    def _wordpiece(self, word: str) -> list[int]:
        """Greedy longest-match-first WordPiece ids of one basic token."""
        if len(word) > self.max_word_chars:
            return [BERT_UNK]
        vocab = self._vocab
        ids: list[int] = []
        start = 0
        while start < len(word):
            prefix = "##" if start > 0 else ""
            end = min(len(word), start + self._longest - len(prefix))
            found = None
            while start < end:
                found = vocab.get(prefix + word[start:end])
                if found is not None:
                    break
                end -= 1
            if found is None:
                # One uncovered piece makes the whole word unknown, as in the reference.
                return [BERT_UNK]
            ids.append(found)
            start = end
        return ids

    def encode(self, text: str) -> list[int]:
        """WordPiece ids of `text` without [CLS]/[SEP], not truncated."""
        ids: list[int] = []
        for word in _bert_basic_tokens(text):
            ids.extend(self._wordpiece(word))
        return ids

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """An [N, context_length] int64 array of `[CLS] ids [SEP]` rows, ids cut to fit, zero-padded."""
        def row(text: str) -> list[int]:
            return [BERT_CLS, *self.encode(text)[: self.context_length - 2], BERT_SEP]

        return _id_rows(texts, self.context_length, row)


@functools.cache
def load_tokenizer(kind: str, context_length: int) -> Tokenizer:
    """The tokenizer a manifest names ("clip-bpe" or "bert-chinese"), built once per (kind, length)."""
    if kind == "clip-bpe":
        return ClipBpeTokenizer(context_length)
    if kind == "bert-chinese":
        return BertChineseTokenizer(context_length)
    raise ModelError(
        f"unknown tokenizer kind {kind!r}",
        "the model manifest's [text] tokenizer must be 'clip-bpe' or 'bert-chinese'",
    )
