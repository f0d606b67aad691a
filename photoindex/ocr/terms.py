"""How the words read in photos become index terms, and how a words query becomes FTS5 queries.

SQLite's unicode61 tokenizer splits Latin scripts into words but keeps a run of Chinese (or
Japanese, Korean) characters as one token, so "西湖" would never match "杭州西湖欢迎光临". Runs of
those scripts are therefore written as their overlapping bigrams (杭州 州西 西湖 ...) plus the last
character, and a query run becomes the phrase of its bigrams: any substring of two characters or
more matches, in order. The trigram table takes the text as read, for substrings of Latin words
("bucks" in "STARBUCKS") and for a misspelling's candidates (docs/ocr.md, "Searching words").
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

# Han (with extensions and compatibility ideographs), kana, Hangul: scripts written without spaces.
_CJK = (
    "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\u1100-\u11ff\u3130-\u318f"
    "\U00020000-\U0002fa1f"
)


@functools.cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(a CJK run, a CJK run or a word of letters and digits), compiled on first use: their character
    classes span the astral planes and take ~10 ms to compile, which a search without text need not pay."""
    return re.compile(f"[{_CJK}]+"), re.compile(f"[{_CJK}]+|[^\\W_{_CJK}]+")


def normalize(text: str) -> str:
    """NFKC (full-width letters and digits to ASCII) and case-folded: what the index and queries compare."""
    return unicodedata.normalize("NFKC", text).casefold()


def is_cjk(token: str) -> bool:
    """Whether a token is a run of Chinese, Japanese or Korean characters."""
    return bool(_patterns()[0].fullmatch(token))


def _bigrams(run: str) -> list[str]:
    return [run[i : i + 2] for i in range(len(run) - 1)] + [run[-1]]


def index_terms(text: str) -> str:
    """The text as the words table indexes it: words kept, CJK runs written as bigrams plus their last character."""
    out: list[str] = []
    for token in _patterns()[1].findall(normalize(text)):
        out.extend(_bigrams(token) if is_cjk(token) else [token])
    return " ".join(out)


def tokens(text: str) -> list[str]:
    """The words and CJK runs of a text, normalized, in order."""
    return _patterns()[1].findall(normalize(text))


def _quote(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


@dataclass(frozen=True)
class WordsQuery:
    """A words query as FTS5 expressions: every term must match (AND)."""

    terms: tuple[str, ...]  # normalized query tokens that take part
    words: str | None  # MATCH on photo_text_words: words by prefix, CJK runs as bigram phrases
    trigrams: str | None  # MATCH on photo_text_trigrams: each term as a substring (3+ characters)

    @property
    def empty(self) -> bool:
        """Nothing searchable (only punctuation, or single letters)."""
        return not self.terms


# Words of a description that are rarely what is written on the thing described ("the receipt from
# starbucks"): dropped from the words part of a CLIP search, kept by `--words`.
STOPWORDS = frozenset(
    "a an the of from on in at to for with and or by my our your this that these those is are was photo photos"
    " picture pictures image images showing shows show some".split()
)


def parse_query(text: str, *, description: bool = False) -> WordsQuery:
    """Terms of a words query; single Latin letters are dropped (they would match nearly everything), and for
    the words part of a description (`description=True`) also STOPWORDS."""
    terms = tuple(
        t for t in tokens(text) if is_cjk(t) or (len(t) >= 2 and not (description and t in STOPWORDS))
    )
    if not terms:
        return WordsQuery((), None, None)
    parts = []
    for t in terms:
        if is_cjk(t):
            grams = [t[i : i + 2] for i in range(len(t) - 1)] or [t]
            # A single character matches as the start of a bigram or as the last character of a run.
            parts.append(_quote(" ".join(grams)) + ("*" if len(t) == 1 else ""))
        else:
            parts.append(_quote(t) + "*")  # "receipt" finds "receipts"
    substr = [t for t in terms if len(t) >= 3]
    trigrams = " AND ".join(_quote(t) for t in substr) if len(substr) == len(terms) else None
    return WordsQuery(terms, " AND ".join(parts), trigrams)


def fuzzy_candidates_query(term: str) -> str | None:
    """An FTS5 query on the trigram table for texts sharing any trigram with a (possibly misspelt) word."""
    if is_cjk(term) or len(term) < 4:
        return None
    grams = sorted({term[i : i + 3] for i in range(len(term) - 2)})
    return " OR ".join(_quote(g) for g in grams)


def edit_distance(a: str, b: str, limit: int) -> int:
    """Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`, or `limit + 1` once over `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    before: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cost = min(cost, before[j - 2] + 1)  # a transposition ("reciept") is one slip
            current.append(cost)
        if min(current) > limit:
            return limit + 1
        before, previous = previous, current
    return previous[-1]


def typo_limit(term: str) -> int:
    """Edits a misspelt word may be away from a word read: 1 for 4-7 letters, 2 from 8 on, none below 4."""
    return 0 if len(term) < 4 else 1 if len(term) < 8 else 2


def matched_words(text: str, terms: tuple[str, ...], *, fuzzy: bool = False) -> list[str]:
    """The words of a photo's text (as read) that a query's terms matched, in reading order, once each."""
    found: list[str] = []
    spans = [(m.group(0), normalize(m.group(0))) for m in _patterns()[1].finditer(unicodedata.normalize("NFKC", text))]
    for original, word in spans:
        for term in terms:
            if is_cjk(term):
                hit = term in word
                shown = term if hit else ""
            elif word.startswith(term) or (len(term) >= 3 and term in word):
                hit, shown = True, original
            elif fuzzy and _near(term, word):
                hit, shown = True, original
            else:
                hit, shown = False, ""
            if hit and shown not in found:
                found.append(shown)
    return found


def _near(term: str, word: str) -> bool:
    """`word`, or a part of it (words read without the space between them), is within `term`'s typo limit."""
    limit = typo_limit(term)
    if not limit or is_cjk(term):
        return False
    if edit_distance(term, word, limit) <= limit:
        return True
    for size in range(max(1, len(term) - limit), len(term) + limit + 1):
        for start in range(0, len(word) - size + 1):
            if edit_distance(term, word[start : start + size], limit) <= limit:
                return True
    return False
