"""Photos on disk: walking and hashing (`scanner`), decoding (`imaging`), decode worker processes
(`decodepool`). This package never touches the catalog."""

from __future__ import annotations

from typing import TYPE_CHECKING

from photoindex.lazy import public_names

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

__getattr__, __all__ = public_names(__name__, _PUBLIC)
