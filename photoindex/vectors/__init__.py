"""Vectors: the FAISS/numpy index (a rebuildable cache of the catalog) and cosine scoring.

Modules: `index` (VectorIndex and its file), `cache` (IndexHandle: the index kept in step with
SQLite), `scoring` (l2 normalisation, Axera's `feature_matmul`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from photoindex.lazy import public_names

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

__getattr__, __all__ = public_names(__name__, _PUBLIC)
