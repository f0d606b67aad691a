"""Test and benchmark fixtures with real contracts: generated model bundles and photo-like images.

Building models needs the `onnx` package (the `test` extra); it is imported lazily, so importing
this package does not require it.
"""

from __future__ import annotations

from photoindex.testing.models import COLOUR_WORDS, COLOURS, make_bundle, make_feature_matmul
from photoindex.testing.photos import make_large_photo, make_photo

__all__ = ["COLOURS", "COLOUR_WORDS", "make_bundle", "make_feature_matmul", "make_large_photo", "make_photo"]
