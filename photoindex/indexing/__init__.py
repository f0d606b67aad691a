"""Indexing: scan -> diff -> decode -> encode -> commit -> index, and taking roots out of the library."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public names, loaded on first use so that importing this package stays cheap
# (see docs/architecture.md, "Start-up").
_PUBLIC = {
    "Indexer": "indexer",
    "IndexReport": "indexer",
    "Failure": "indexer",
    "run_index": "indexer",
    "ForgetReport": "roots",
    "forget_root": "roots",
}

if TYPE_CHECKING:
    from photoindex.indexing.indexer import Failure, Indexer, IndexReport, run_index
    from photoindex.indexing.roots import ForgetReport, forget_root

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
