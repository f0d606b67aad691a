"""The query language: `beach + sunset - people`, weights `2:sunset`, and example photos by path.

A query is a weighted sum of ideas (docs/search.md, "Scoring"): each term is a text or an image
file; `+` adds it, `-` subtracts it, `W:` scales it. Terms are split only at a `+` or `-` with
spaces on both sides, so `t-shirt` and `black-and-white` stay one term. Parsed where the user
typed it (the CLI, the web page), because a relative path means the folder they typed it in.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from photoindex.errors import PhotoindexError

MAX_TERMS = 16
# A term naming an existing file with one of these suffixes is an example photo, not text.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".heic", ".heif", ".webp", ".tif", ".tiff", ".gif", ".bmp", ".avif")

_SPLIT = re.compile(r"\s+([+-])\s+")
_OPERATOR_FIRST = re.compile(r"^[+-](?:\s|$)")  # a term that starts with an operator and a space
_WEIGHT = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*:\s*(\S.*)$", re.S)


@dataclass(frozen=True)
class Term:
    """One idea of a query: a text or an (absolute) image path, with its signed weight."""

    weight: float
    text: str | None = None
    image: str | None = None

    def to_wire(self) -> dict[str, object]:
        """A JSON object: {"weight", "text"} or {"weight", "image"}."""
        return {"weight": self.weight, "text": self.text} if self.text is not None else {
            "weight": self.weight,
            "image": self.image,
        }


def parse_query(text: str, *, cwd: str | os.PathLike[str] | None = None) -> tuple[Term, ...]:
    """The terms of a query string; raises `PhotoindexError` for an empty term or a bad weight."""
    if not text.strip():
        raise PhotoindexError("the query is empty", 'describe what you are looking for, e.g. "a red car"')
    pieces = _SPLIT.split(" " + text.strip() + " ")
    # pieces: [first, op, term, op, term, ...]; a query may also start with "- term".
    signs = [1.0] + [1.0 if op == "+" else -1.0 for op in pieces[1::2]]
    if len(pieces) > 1 and not pieces[0].strip():  # "- people + beach": the first term has a sign
        pieces, signs = pieces[2:], signs[1:]
    terms: list[Term] = []
    for sign, raw in zip(signs, pieces[0::2], strict=True):
        raw = raw.strip()
        if not raw:
            raise PhotoindexError(
                f"query {text!r}: a '+' or '-' has nothing beside it",
                'write terms on both sides, e.g. "beach + sunset - people"',
            )
        if _OPERATOR_FIRST.match(raw):
            # "red + - blue": two operators in a row. Taken as written, "- blue" would be searched
            # as a text and blue added, not subtracted; say so rather than guess.
            raise PhotoindexError(
                f"query {text!r}: two operators in a row before {raw[1:].strip() or raw!r}",
                'write one operator between two terms, e.g. "red - blue" to push away from blue',
            )
        weight = 1.0
        m = _WEIGHT.match(raw)
        if m is not None:
            weight = float(m.group(1))
            raw = m.group(2).strip()
            if not math.isfinite(weight) or weight <= 0 or weight > 100:
                raise PhotoindexError(f"query term {raw!r}: weight {m.group(1)} is not above 0 and at most 100",
                                      'write e.g. "2:sunset + beach"')
        image = _image_path(raw, cwd)
        terms.append(Term(sign * weight, text=None if image else raw, image=image))
    if len(terms) > MAX_TERMS:
        raise PhotoindexError(f"the query has {len(terms)} terms", f"use at most {MAX_TERMS}")
    if all(t.weight < 0 for t in terms) and terms:
        raise PhotoindexError("the query only subtracts", 'add what you are looking for, e.g. "beach - people"')
    return tuple(terms)


def image_term(path: str | os.PathLike[str], weight: float = 1.0, *, cwd: str | os.PathLike[str] | None = None) -> Term:
    """An example photo (`--image`, `--not-image`) as a term with an absolute path."""
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = Path(cwd or os.getcwd()) / p
    return Term(weight, image=os.path.abspath(p))


def _image_path(raw: str, cwd: str | os.PathLike[str] | None) -> str | None:
    if not raw.lower().endswith(IMAGE_SUFFIXES):
        return None
    p = Path(raw).expanduser()
    if not p.is_absolute():
        p = Path(cwd or os.getcwd()) / p
    return os.path.abspath(p) if p.is_file() else None
