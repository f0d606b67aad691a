"""Indexing: scan -> diff -> decode -> encode -> commit -> index, and taking roots out of the library."""

from __future__ import annotations

from typing import TYPE_CHECKING

from photoindex.lazy import public_names

# Public names, loaded on first use so that importing this package stays cheap
# (see docs/architecture.md, "Start-up").
_PUBLIC = {
    "Indexer": "indexer",
    "IndexReport": "indexer",
    "Rounds": "indexer",
    "Failure": "indexer",
    "run_index": "indexer",
    "ForgetReport": "roots",
    "forget_root": "roots",
}

if TYPE_CHECKING:
    from photoindex.indexing.indexer import Failure, Indexer, IndexReport, Rounds, run_index
    from photoindex.indexing.roots import ForgetReport, forget_root

__getattr__, __all__ = public_names(__name__, _PUBLIC)
