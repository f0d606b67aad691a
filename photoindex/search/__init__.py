"""Search: a `SearchRequest` (query terms, filters, page) -> one query vector -> the filtered top-k
over the index -> live photos as `Hit`s; and the daemon's query socket (`protocol`, `client`, `server`).
`run_search` / `search` are the one entry point for the CLI, the daemon and the web page."""

from __future__ import annotations

from photoindex.lazy import public_names

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: the served search imports this package (search/wire.py)

# Public names, loaded on first use so that importing this package stays cheap
# (see docs/architecture.md, "Start-up").
_PUBLIC = {
    "Filters": "filters",
    "Hit": "protocol",
    "SearchRequest": "protocol",
    "query_vector": "query",
    "run_search": "query",
    "search": "query",
}

if TYPE_CHECKING:
    from photoindex.search.filters import Filters
    from photoindex.search.protocol import Hit, SearchRequest
    from photoindex.search.query import query_vector, run_search, search

__getattr__, __all__ = public_names(__name__, _PUBLIC)
