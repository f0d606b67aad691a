"""Searching: query (text or example photo) -> unit vector -> top-k from the index -> live photos.

Scores are cosine similarities. Hits are resolved against SQLite in one read, so a photo deleted
or moved since the index was written never appears, and copies of one photo (which share one
vector) are all listed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from photoindex.catalog import reads
from photoindex.config import Config
from photoindex.errors import PhotoindexError
from photoindex.library import Library, open_library

if TYPE_CHECKING:
    from photoindex.vectors.cache import IndexHandle

@dataclass(frozen=True)
class Hit:
    """One search result."""

    path: str
    score: float
    width: int | None
    height: int | None
    taken_at: str | None
    size: int | None = None
    format: str | None = None
    camera: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The object printed by `--json`."""
        return asdict(self)


def query_vector_for_text(lib: Library, text: str) -> np.ndarray:
    """The unit vector of a text query, through the bundle's tokenizer and text encoder."""
    if not text.strip():
        raise PhotoindexError("the query is empty", 'describe what you are looking for, e.g. "a red car"')
    return lib.text_encoder().encode([text])[0]


def query_vector_for_image(lib: Library, path: Path) -> np.ndarray:
    """The unit vector of an example photo: its stored vector when the content is known, else encoded now."""
    from photoindex.photos.imaging import decode_photo
    from photoindex.photos.scanner import content_hash

    if not path.is_file():
        raise PhotoindexError(f"{path}: no such photo", "give the path of an existing image file")
    try:
        digest = content_hash(path)
    except OSError as exc:
        raise PhotoindexError(
            f"{path}: cannot read the file: {exc.strerror or exc}", "check its permissions"
        ) from None
    with lib.db.reads() as con:
        stored = reads.vector_for_hash(con, lib.model_id, digest)
    if stored is not None:
        return stored
    encoder = lib.image_encoder()
    pixels, _ = decode_photo(
        path, lib.bundle.manifest.image, encoder.layout, max_pixels=lib.config.scan.max_image_pixels
    )
    return encoder.encode(pixels[None])[0]


def search_vector(
    lib: Library,
    query: np.ndarray,
    *,
    limit: int,
    min_score: float = -1.0,
    folder: Path | None = None,
    index: IndexHandle | None = None,
) -> list[Hit]:
    """The best `limit` live photos for a unit query vector, best first."""
    from photoindex.vectors.cache import IndexHandle

    handle = index or IndexHandle.open(lib)
    if index is None:
        handle.save_opportunistically()
    prefix = str(Path(folder).expanduser().resolve()) if folder is not None else None
    allowed = None
    if prefix is not None:
        with lib.db.reads() as con:
            allowed = reads.vector_ids_under(con, lib.model_id, prefix)
        if allowed.size == 0:
            return []
    total = len(handle.index)
    if total == 0:
        return []
    k = min(total, max(limit * 2, limit + 16))
    while True:
        scores, ids = handle.index.search(query[None].astype(np.float32), k, allowed=allowed)
        scores, ids = scores[0], ids[0]
        keep = scores >= min_score
        scores, ids = scores[keep], ids[keep]
        with lib.db.reads() as con:
            photos = reads.live_photos_for_vectors(con, lib.model_id, ids.tolist(), prefix)
        hits: list[Hit] = []
        for vid, score in zip(ids.tolist(), scores.tolist(), strict=False):
            for ph in photos.get(int(vid), []):
                hits.append(
                    Hit(
                        ph.path,
                        float(score),
                        ph.width,
                        ph.height,
                        ph.taken_at,
                        ph.size,
                        ph.format,
                        " ".join(x for x in (ph.camera_make, ph.camera_model) if x) or None,
                    )
                )
        if len(hits) >= limit or k >= total or len(scores) < k:
            return hits[:limit]
        k = min(total, k * 4)


def run_search(
    config: Config,
    *,
    text: str | None = None,
    image: Path | None = None,
    limit: int = 20,
    min_score: float = -1.0,
    folder: Path | None = None,
) -> list[Hit]:
    """`photoindex search`: by text, by example photo, or both (their unit vectors averaged)."""
    with open_library(config) as lib:
        parts = []
        if text:
            parts.append(query_vector_for_text(lib, text))
        if image is not None:
            parts.append(query_vector_for_image(lib, Path(image).expanduser()))
        if not parts:
            raise PhotoindexError("nothing to search for", "give a text or --image PATH")
        # One query per process: the encoders' memory is given back before the vector index
        # is loaded, so the peak is the larger of the two rather than their sum.
        lib.release_encoders()
        query = np.mean(parts, axis=0)
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        return search_vector(lib, query.astype(np.float32), limit=limit, min_score=min_score, folder=folder)
