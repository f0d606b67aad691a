"""Photos on disk: walking and hashing (`scanner`), decoding (`imaging`), decode worker processes
(`decodepool`). This package never touches the catalog."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public names, loaded on first use so that importing this package stays cheap
# (see docs/architecture.md, "Start-up").
_PUBLIC = {
    "FileFact": "scanner",
    "content_hash": "scanner",
    "walk": "scanner",
    "PhotoInfo": "imaging",
    "decode_photo": "imaging",
    "probe": "imaging",
    "DecodeJob": "decodepool",
    "DecodePool": "decodepool",
    "DecodeResult": "decodepool",
}

if TYPE_CHECKING:
    from photoindex.photos.decodepool import DecodeJob, DecodePool, DecodeResult
    from photoindex.photos.imaging import PhotoInfo, decode_photo, probe
    from photoindex.photos.scanner import FileFact, content_hash, walk

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
