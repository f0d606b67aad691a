"""Forgetting roots: take a folder out of the library, and optionally purge the vectors no photo needs.

Adding roots is part of indexing (`photoindex index PATH`); this is the other direction. Vectors
are kept by default, so a folder added back later is relinked without re-encoding; `purge`
deletes every vector no photo row holds any more, of every model, and their indexes are rebuilt
from SQLite.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from photoindex.catalog import writes as catalog
from photoindex.config import Config
from photoindex.errors import PhotoindexError
from photoindex.library import open_library
from photoindex.mounts import named_root


@dataclass(frozen=True)
class ForgetReport:
    """What `photoindex forget` did."""

    root: str
    photos: int
    vectors_deleted: int
    index_rebuilt: bool


def forget_root(
    config: Config,
    path: Path,
    *,
    purge: bool = False,
    lock_wait: float | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> ForgetReport:
    """Remove the root `path` and its photos from the catalog (the files are not touched)."""
    from photoindex.catalog.writerlock import WriterLock, acquire_patiently
    from photoindex.indexing.indexer import refresh_other_indexes

    # The root as it was added: absolute with symlinks resolved, even if the folder is gone now.
    wanted = os.path.realpath(os.path.abspath(Path(path).expanduser()))
    with open_library(config) as lib:
        lock = WriterLock(config.lock_path, "forget")
        acquire_patiently(lock, wait=lock_wait, on_wait=on_wait)
        try:
            with lib.db.write() as s:
                roots = {r.path: r for r in catalog.list_roots(s)}
                given = os.path.abspath(Path(path).expanduser())
                # A named root is given as this machine's mount of it, or by its name (photoindex/mounts.py).
                root = (roots.get(wanted) or roots.get(given) or roots.get(config.mounts.stored_given(given))
                        or roots.get(named_root(str(path))))
                if root is None:
                    known = ", ".join(sorted(config.mounts.local(p) for p in roots)) or "none"
                    raise PhotoindexError(
                        f"{path} is not a root of this library",
                        f"roots: {known} (see `photoindex status`)",
                    )
                photos = catalog.remove_root(s, root.id)
                deleted = catalog.delete_unheld_vectors(s) if purge else {}
                if purge:
                    from photoindex.catalog import text as catalog_text

                    catalog_text.forget_unheld(catalog.connection(s))  # the words read in them too
            rebuilt = False
            if lib.model_id in deleted:
                # The vectors epoch moved on: rebuild the index now rather than in the next search.
                rebuilt = lib.open_index().save_if_dirty()
            # Every model's vectors went (docs/models.md): their index files follow.
            refresh_other_indexes(lib, deleted)
            vectors = sum(len(ids) for ids in deleted.values())
            return ForgetReport(config.mounts.local(root.path), photos, vectors, rebuilt)
        finally:
            lock.release()
