"""The vector index as a cache of SQLite: load the file, check its stamp, catch up or rebuild, save.

The file records the model, the vectors epoch and the highest vector id it holds. Vector ids only
grow, so a file that is merely behind is caught up by adding the vectors with larger ids (read in
one transaction: a batch is seen whole or not at all). A file that is missing, damaged, of
another model or epoch is rebuilt from the stored vectors, never by re-encoding (invariant 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from photoindex import catalog
from photoindex.errors import LockedError, VectorIndexError

if TYPE_CHECKING:
    from photoindex.library import Library
    from photoindex.vectorindex import VectorIndex

REBUILD_CHUNK = 50_000


@dataclass
class IndexHandle:
    """An open vector index for a library's model, and whether it differs from its file."""

    lib: Library
    index: VectorIndex
    dirty: bool
    reason: str  # "loaded", "caught up", or why it was rebuilt

    @classmethod
    def open(cls, lib: Library) -> IndexHandle:
        """Load the index file, catching it up with SQLite, or rebuild it from the stored vectors."""
        from photoindex.vectorindex import VectorIndex

        path = lib.index_path()
        cfg = lib.config.index
        try:
            index: VectorIndex | None = VectorIndex.load(path)
            reason = "loaded"
        except VectorIndexError as exc:
            index, reason = None, f"rebuilt: {exc.message}"
        with lib.db.read() as s:
            state = catalog.index_state(s, lib.model_id)
            if index is not None:
                meta = index.meta
                stale = (
                    meta.get("model_id") != lib.model_id
                    or meta.get("epoch") != state.vectors_epoch
                    or index.dim != lib.bundle.manifest.embedding_dim
                    or index.backend != cfg.backend
                )
                if stale:
                    index, reason = None, "rebuilt: the file belongs to another model or an older epoch"
            dirty = False
            if index is None:
                index = VectorIndex.create(
                    lib.bundle.manifest.embedding_dim,
                    backend=cfg.backend,  # type: ignore[arg-type]
                    approximate_threshold=cfg.approximate_threshold,
                )
                after = 0
                dirty = True
            else:
                after = int(index.meta.get("max_id", 0))
            max_id = after
            for ids, vectors in catalog.iter_vectors(s, lib.model_id, after_id=after, chunk=REBUILD_CHUNK):
                index.add(ids, vectors)
                max_id = max(max_id, int(ids.max()))
                dirty = True
                if reason == "loaded":
                    reason = "caught up"
        index.meta.update(
            model_id=lib.model_id, epoch=state.vectors_epoch, generation=state.generation, max_id=max_id
        )
        return cls(lib, index, dirty, reason)

    def add(self, ids: np.ndarray, vectors: np.ndarray, state: Any) -> None:
        """Add vectors just committed to SQLite; `state` is the model's index state after that commit."""
        self.index.add(ids, vectors)
        self.index.meta.update(
            generation=state.generation,
            epoch=state.vectors_epoch,
            max_id=max(int(self.index.meta.get("max_id", 0)), int(np.max(ids))),
        )
        self.dirty = True

    def save_if_dirty(self) -> bool:
        """Write the file atomically when it differs from what is on disk; True if written."""
        if not self.dirty:
            return False
        path = self.lib.index_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.index.save(path)
        self.dirty = False
        return True

    def save_opportunistically(self) -> bool:
        """From a reader: save a rebuilt or caught-up index only if no writer is busy (never wait)."""
        if not self.dirty:
            return False
        from photoindex.writerlock import WriterLock

        lock = WriterLock(self.lib.config.lock_path, "search: saving the rebuilt index")
        try:
            lock.acquire(wait=0)
        except LockedError:
            return False
        try:
            return self.save_if_dirty()
        except OSError:
            return False  # a read-only home: the search still works from memory
        finally:
            lock.release()
