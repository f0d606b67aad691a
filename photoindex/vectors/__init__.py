"""Vectors: the FAISS/numpy index (a rebuildable cache of the catalog) and cosine scoring.

Modules: `index` (VectorIndex and its file), `cache` (IndexHandle: the index kept in step with
SQLite), `scoring` (l2 normalisation, Axera's `feature_matmul`)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public names, loaded on first use so that importing this package stays cheap
# (see docs/architecture.md, "Start-up").
_PUBLIC = {
    "VectorIndex": "index",
    "read_meta": "index",
    "IndexHandle": "cache",
    "l2_normalize": "scoring",
    "feature_matmul": "scoring",
}

if TYPE_CHECKING:
    from photoindex.vectors.cache import IndexHandle
    from photoindex.vectors.index import VectorIndex, read_meta
    from photoindex.vectors.scoring import feature_matmul, l2_normalize

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
