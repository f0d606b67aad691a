"""Search: the query vector (text, example photo, both), the top-k over the index, the live photos;
and the daemon's query socket (`protocol`, `client`, `server`)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public names, loaded on first use so that importing this package stays cheap
# (see docs/architecture.md, "Start-up").
_PUBLIC = {
    "Hit": "query",
    "run_search": "query",
    "search_vector": "query",
}

if TYPE_CHECKING:
    from photoindex.search.query import Hit, run_search, search_vector

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
