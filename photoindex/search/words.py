"""Searching the words read in photos, and fusing that ranking with CLIP's (docs/ocr.md, "Searching words").

Words: every query term must match (whole words by prefix; Chinese, Japanese and Korean by any
substring of two characters or more), ranked by FTS5's BM25; when no text matches, terms of three
characters or more are tried as substrings (trigrams), then each word of four letters or more
with one slip (two from eight letters): a letter missed, added, changed or two swapped.

Fusion is reciprocal rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009): a photo's fused
score is the sum over the two rankings of 1 / (K + rank), rank counted from 1, K = 60. It needs
no calibration between cosine similarities and BM25 scores, a photo found by both rises above
one found by either alone, and with no words matched the order is CLIP's own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from photoindex.catalog import text as catalog_text
from photoindex.ocr.terms import WordsQuery, matched_words, parse_query, typo_limit

RRF_K = 60
FUZZY_CANDIDATES = 200  # texts sharing trigrams with a misspelt word that are checked word by word


@dataclass(frozen=True)
class WordsHit:
    """A content whose text matched: the words as read that matched, and how ("words", "substring", "fuzzy")."""

    content_hash: str
    words: tuple[str, ...]
    how: str


def find_words(con: sqlite3.Connection, text: str, *, limit: int, description: bool = False) -> list[WordsHit]:
    """Contents whose text matches every term of `text`, best first.

    `description`: `text` describes a photo for CLIP too: common words ("the", "photo", "from") are
    dropped and no misspelling is tolerated, so a description that is not written anywhere finds nothing.
    """
    query = parse_query(text, description=description)
    if query.empty:
        return []
    hits = catalog_text.search(con, query, limit=limit)
    if hits:
        return [WordsHit(h.content_hash, tuple(matched_words(h.text, query.terms)), h.how) for h in hits]
    return [] if description else _fuzzy(con, query, limit=limit)


def _fuzzy(con: sqlite3.Connection, query: WordsQuery, *, limit: int) -> list[WordsHit]:
    """Texts in which every term matches exactly or within its typo limit (only terms of 4+ letters may slip)."""
    slipping = [t for t in query.terms if typo_limit(t)]
    if not slipping:
        return []
    out: list[WordsHit] = []
    for content_hash, text, _ in catalog_text.fuzzy_candidates(con, max(slipping, key=len), limit=FUZZY_CANDIDATES):
        found = matched_words(text, query.terms, fuzzy=True)
        per_term = [matched_words(text, (t,), fuzzy=True) for t in query.terms]
        if all(per_term):
            out.append(WordsHit(content_hash, tuple(found), "fuzzy"))
            if len(out) >= limit:
                break
    return out


def fuse(rankings: Sequence[Sequence[str]]) -> list[tuple[str, float]]:
    """Reciprocal rank fusion of rankings of content hashes (best first): (hash, fused score), best first.

    Ties keep the order of the first ranking that holds the hash (CLIP's, when it is given first).
    """
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, 1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (RRF_K + rank)
    order: dict[str, int] = {}
    for ranking in rankings:
        for key in ranking:
            order.setdefault(key, len(order))
    return sorted(scores.items(), key=lambda kv: (-kv[1], order[kv[0]]))
