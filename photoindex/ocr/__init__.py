"""Reading the text in photos (OCR) after their CLIP vectors are stored, and searching it (docs/ocr.md).

Modules: `engine` (PP-OCRv4 through rapidocr-onnxruntime, or Axera's NPU builds), `gate` (the
CLIP vector decides whether a photo is worth reading), `reader` (the text pass over what waits),
`terms` (text to full-text index terms, queries to FTS5 expressions), `highlight` (where matched
words sit in a photo, for the web page's photo view)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from photoindex.lazy import public_names

_PUBLIC = {
    "TextReader": "engine",
    "TextLine": "engine",
    "available": "engine",
    "Gate": "gate",
    "TextPass": "reader",
    "TextReport": "reader",
    "parse_query": "terms",
    "WordBox": "highlight",
    "word_boxes": "highlight",
}

if TYPE_CHECKING:
    from photoindex.ocr.engine import TextLine, TextReader, available
    from photoindex.ocr.gate import Gate
    from photoindex.ocr.highlight import WordBox, word_boxes
    from photoindex.ocr.reader import TextPass, TextReport
    from photoindex.ocr.terms import parse_query

__getattr__, __all__ = public_names(__name__, _PUBLIC)
