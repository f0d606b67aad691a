"""The vector index as a cache of SQLite: load the file, check its stamp, catch up or rebuild, save.

The file records the model, the vectors epoch and the highest vector id it holds. Vector ids only
grow, so a file that is merely behind is caught up by adding the vectors with larger ids (read in
one transaction: a batch is seen whole or not at all). A file that is missing, damaged, of
another model or epoch is rebuilt from the stored vectors, never by re-encoding (invariant 1).

Each model has its own file (`index_file`): switching the model and back loads the first
model's file again instead of rebuilding it (docs/models.md). A handle needs only the catalog,
the model's id and dimension, the `[index]` settings and its file, not a whole `Library`.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from photoindex.catalog import reads
from photoindex.errors import LockedError, VectorIndexError

if TYPE_CHECKING:
    from photoindex.catalog.db import Database
    from photoindex.catalog.reads import IndexState
    from photoindex.config import IndexConfig
    from photoindex.vectors.index import VectorIndex

REBUILD_CHUNK = 50_000


def index_file(index_dir: Path, model_id: str, backend: str) -> Path:
    """The index file of one model under `index_dir` (one file per model and backend)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id)
    return index_dir / f"{safe}.{backend}.idx"


@dataclass
class IndexHandle:
    """An open vector index for one model's vectors in a catalog, and whether it differs from its file."""

    db: Database
    model_id: str
    dim: int
    settings: IndexConfig
    path: Path
    index: VectorIndex = field(repr=False)
    dirty: bool = False
    reason: str = "loaded"  # "loaded", "caught up", or why it was rebuilt
    repairs: list[str] = field(default_factory=list)  # damage found and repaired (say it once)
    # False on a PostgreSQL catalog: pgvector searches it, so no FAISS copy is kept (docs/scale.md)
    # and the handle's methods do nothing.
    local: bool = True
    # The catalog's index_state row as the last full check in this process found it (model,
    # generation, epoch, time of the last change): while the row is the same, nothing was added or
    # deleted since and `refresh` need not look at the vectors table (three scans of the model's
    # vectors, ~25 ms at 100,000 on an idle 2-core machine, paid by every search of a long-running
    # server). Kept in memory only: a file loaded from disk is always checked in full.
    checked: tuple[object, ...] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, db: Database, model_id: str, dim: int, settings: IndexConfig, path: Path) -> IndexHandle:
        """Load the index file, catching it up with SQLite, or rebuild it from the stored vectors."""
        from photoindex.vectors.index import VectorIndex

        if db.kind == "postgresql":
            empty = _empty_index(dim, settings)
            return cls(db, model_id, dim, settings, path, index=empty, reason="pgvector", local=False)
        try:
            index: VectorIndex | None = VectorIndex.load(path)
            reason = "loaded"
        except VectorIndexError as exc:
            index, reason = None, f"rebuilt: {exc.message}"
        if index is None:
            index = _empty_index(dim, settings)
        handle = cls(db, model_id, dim, settings, path, index=index, reason=reason)
        if reason != "loaded":
            handle.index.meta.clear()
            handle.dirty = True
        handle.refresh()
        return handle

    def _empty(self) -> VectorIndex:
        return _empty_index(self.dim, self.settings)

    def refresh(self) -> int:
        """Bring the index up to date with SQLite (another writer may have added vectors); returns how many were added.

        Vectors committed since the index's highest id are added, read in one transaction; a new
        vectors epoch (vectors were deleted) or another model means a rebuild from SQLite.
        """
        if not self.local:
            return 0
        model_id = self.model_id
        added = 0
        with self.db.reads() as con:
            state = reads.index_state(con, model_id)
            seen = (model_id, state.generation, state.vectors_epoch, state.updated_at, self.index.dim,
                    self.index.backend)
            if self.checked == seen and self.index.meta:
                return 0
            anchor = reads.vectors_anchor(con, model_id)
            meta = self.index.meta
            if meta and (
                meta.get("model_id") != model_id
                or meta.get("epoch") != state.vectors_epoch
                or self.index.dim != self.dim
                or self.index.backend != self.settings.backend
            ):
                self.index = self._empty()
                self.reason = "rebuilt: the file belongs to another model or an older epoch"
                meta = {}
            elif meta and (
                meta.get("anchor") != anchor
                or int(meta.get("generation", 0)) > state.generation
                or int(meta.get("max_id", 0)) > reads.max_vector_id(con, model_id)
            ):
                # The catalog was replaced (a restored backup, a new file, lost last commits): the
                # same ids may now name other content, so nothing in the file can be trusted.
                self.index = self._empty()
                self.reason = "rebuilt: the index file was built from another state of the catalog"
                meta = {}
            after = int(meta.get("max_id", 0)) if meta else 0
            max_id = after
            for ids, vectors in reads.iter_vectors(con, model_id, after_id=after, chunk=REBUILD_CHUNK):
                self.index.add(ids, vectors)
                max_id = max(max_id, int(ids.max()))
                added += len(ids)
        if added or not self.index.meta:
            self.dirty = True
            if self.reason == "loaded":
                self.reason = "caught up"
        self.index.meta.update(
            model_id=model_id, epoch=state.vectors_epoch, generation=state.generation, max_id=max_id, anchor=anchor
        )
        self.checked = (model_id, state.generation, state.vectors_epoch, state.updated_at, self.index.dim,
                        self.index.backend)
        return added

    def add(self, ids: np.ndarray, vectors: np.ndarray, state: IndexState, anchor: str | None) -> None:
        """Add vectors just committed to SQLite; `state` and `anchor` describe the catalog after that commit."""
        if not self.local:
            return
        self.index.add(ids, vectors)
        self.checked = None
        self.index.meta.update(
            generation=state.generation,
            epoch=state.vectors_epoch,
            max_id=max(int(self.index.meta.get("max_id", 0)), int(np.max(ids))),
            anchor=anchor,
        )
        self.dirty = True

    def remove(self, ids: np.ndarray, state: IndexState, anchor: str | None, max_id: int) -> None:
        """Take out vectors just deleted from SQLite by this writer (no rebuild); `state`, `anchor` and
        `max_id` describe the catalog after that commit. The index must have been current before it."""
        if not self.local:
            return
        self.index.remove(ids)
        self.checked = None
        self.index.meta.update(
            generation=state.generation, epoch=state.vectors_epoch, max_id=max_id, anchor=anchor
        )
        self.dirty = True

    def save_if_dirty(self) -> bool:
        """Write the file atomically when it differs from what is on disk; True if written."""
        if not self.dirty or not self.local:
            return False
        from photoindex.vectors.index import read_meta

        path = self.path
        self._clear_folder_in_the_way()
        on_disk = read_meta(path)
        mine = self.index.meta
        rebuilt = self.reason.startswith("rebuilt")  # the file is damaged or foreign: always replace it
        keys = ("model_id", "epoch", "anchor")
        same_catalog = on_disk is not None and all(on_disk.get(k) == mine.get(k) for k in keys)
        if (
            not rebuilt
            and on_disk is not None
            and same_catalog
            and int(on_disk.get("max_id", 0)) >= int(mine.get("max_id", 0))
            and int(on_disk.get("generation", 0)) >= int(mine.get("generation", 0))
        ):
            self.dirty = False  # the file is as new as this copy, or newer (another writer saved it)
            return False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.index.save(path)
        except OSError as exc:
            raise VectorIndexError(
                f"{path}: cannot write the vector index: {exc.strerror or exc}", _write_hint(exc)
            ) from None
        self.dirty = False
        return True

    def _clear_folder_in_the_way(self) -> None:
        """A folder where the index file belongs (made by hand or by a tool) is moved aside, never deleted:
        the index is a cache photoindex owns, and the folder's contents are kept for the user to look at."""
        path = self.path
        if not path.is_dir() or path.is_symlink():
            return
        aside = path.with_name(f"{path.name}.folder-{time.strftime('%Y%m%dT%H%M%S')}")
        try:
            os.rename(path, aside)
        except OSError as exc:
            raise VectorIndexError(
                f"{path} is a folder, not an index file, and cannot be moved aside: {exc.strerror or exc}",
                f"move or delete that folder; the index is rebuilt from the catalog ({_write_hint(exc)})",
            ) from None
        self.reason = "rebuilt: the index path was a folder"
        self.repairs.append(f"{path} was a folder, not an index file: moved it to {aside.name} and wrote the index")

    def save_opportunistically(self, lock_path: Path) -> bool:
        """From a reader: save an index it had to rebuild, only if no writer is busy (never wait).

        A file that is merely behind is left alone: catching up from SQLite is cheap, and
        rewriting a large file would slow the query down.
        """
        if not self.dirty or not self.reason.startswith("rebuilt"):
            return False
        from photoindex.catalog.writerlock import WriterLock

        lock = WriterLock(lock_path, "search: saving the rebuilt index")
        try:
            lock.acquire(wait=0)
        except LockedError:
            return False
        try:
            self.refresh()  # under the lock: include what a writer committed meanwhile
            return self.save_if_dirty()
        except (OSError, VectorIndexError):
            return False  # a read-only or full disk: the search still works from memory
        finally:
            lock.release()


def _empty_index(dim: int, settings: IndexConfig) -> VectorIndex:
    from photoindex.vectors.index import VectorIndex

    return VectorIndex.create(
        dim,
        backend=settings.backend,  # type: ignore[arg-type]
        approximate_threshold=settings.approximate_threshold,
    )


def _write_hint(exc: OSError) -> str:
    """What to do about a failed write of the index file, by its cause."""
    rebuilt = "the catalog is intact and the index is rebuilt from it"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"free space on that disk; {rebuilt}"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"make the index folder writable by you; {rebuilt}"
    if exc.errno in (errno.EISDIR, errno.ENOTDIR):
        return f"a folder or file is in the way of the index file: move it; {rebuilt}"
    return f"check that disk; {rebuilt}"
