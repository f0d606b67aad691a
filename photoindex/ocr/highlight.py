"""Where the words a query matched sit in a photo: boxes for the web page's photo view (docs/web.md).

The OCR pass stores one box per line read: four corners (top-left, top-right, bottom-right,
bottom-left) in the photo's displayed pixels, after its EXIF orientation (docs/ocr.md). A word's
box is the stretch of its line's box that the word's characters take, along the line's slant:
characters are weighed by how wide they are drawn (a Chinese, Japanese or Korean character, or a
full-width one, about twice a Latin letter; a space about half), which the recognizer does not report.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from photoindex.ocr.terms import normalize

Point = tuple[float, float]


@dataclass(frozen=True)
class WordBox:
    """One occurrence of a matched word: the word as asked, the line it is in (its index), its four corners."""

    word: str
    line: int
    box: tuple[Point, Point, Point, Point]

    def to_json(self) -> dict[str, Any]:
        """The object the web API sends (`highlights` of `/api/photos/ID`)."""
        return {"word": self.word, "line": self.line, "box": [[round(x, 1), round(y, 1)] for x, y in self.box]}


def _width(ch: str) -> float:
    if unicodedata.east_asian_width(ch) in ("W", "F"):
        return 2.0
    return 0.5 if ch.isspace() else 1.0  # a space is drawn about half as wide as a letter


def _folded(text: str) -> tuple[str, list[int]]:
    """The text as queries compare it (`terms.normalize`), and for each of its characters the index of
    the character of `text` it came from."""
    out: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        folded = normalize(ch)
        out.append(folded)
        origin.extend([i] * len(folded))
    return "".join(out), origin


def _between(a: Point, b: Point, t: float) -> Point:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)


def _corners(box: Any) -> tuple[Point, Point, Point, Point] | None:
    try:
        points = [(float(p[0]), float(p[1])) for p in box]
    except (TypeError, ValueError, IndexError):
        return None
    if len(points) != 4:
        return None
    return points[0], points[1], points[2], points[3]


def word_boxes(lines: Sequence[Mapping[str, Any]], words: Sequence[str]) -> list[WordBox]:
    """Every occurrence of `words` (as a search reports them: `Hit.words`) in the lines read, in reading
    order; matched case- and width-insensitively, as the words search does. Lines without a usable box
    (four corners) are passed over."""
    wanted = [(w, normalize(w)) for w in dict.fromkeys(words) if normalize(w).strip()]
    out: list[WordBox] = []
    for n, line in enumerate(lines):
        text = str(line.get("text") or "")
        corners = _corners(line.get("box"))
        if not text or corners is None or not wanted:
            continue
        folded, origin = _folded(text)
        ends = [0.0]
        for ch in text:
            ends.append(ends[-1] + _width(ch))
        total = ends[-1] or 1
        tl, tr, br, bl = corners
        for word, key in wanted:
            start = folded.find(key)
            while start >= 0:
                first, last = origin[start], origin[start + len(key) - 1]
                t0, t1 = ends[first] / total, ends[last + 1] / total
                box = (_between(tl, tr, t0), _between(tl, tr, t1), _between(bl, br, t1), _between(bl, br, t0))
                out.append(WordBox(word, n, box))
                start = folded.find(key, start + len(key))
    out.sort(key=lambda b: (b.line, b.box[0][0]))
    return out
