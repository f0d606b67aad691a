"""Duplicates: exact copies (one content hash) and near-duplicates (vectors above a cosine threshold).

Re-saved, resized, cropped and burst photos embed close together; the pairs above the threshold
are joined into groups (union-find), so a chain of bursts is one group. Nothing is ever deleted:
the groups, largest first, list the photo with most pixels first and what the rest take up.
Neighbours come from an exact k-NN search for up to EXACT_MAX photos and from a temporary IVF
index above that (near-duplicates share a cell: docs/search.md, "Duplicates").
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from photoindex.catalog import reads
from photoindex.errors import PhotoindexError
from photoindex.library import open_library
from photoindex.search.filters import Filters, resolve_folder

if TYPE_CHECKING:
    from photoindex.config import Config
    from photoindex.library import Library

DEFAULT_THRESHOLD = 0.95
NEIGHBOURS = 16  # per photo; chains link larger groups
EXACT_MAX = 20_000
_QUERY_CHUNK = 4096
_NPROBE = 4  # lists an approximate neighbour search visits


@dataclass(frozen=True)
class DuplicatePhoto:
    """One photo of a group; `score` is its cosine with the group's first photo (1.0 for a copy)."""

    path: str
    size: int
    width: int | None
    height: int | None
    format: str | None
    taken_at: str | None
    score: float
    same_content: bool  # byte-for-byte the same content as the group's first photo
    id: int | None = None  # the photo's catalog id (the web page's thumbnails use it)


@dataclass
class DuplicateGroup:
    """Photos that are copies or near-copies of each other, the one with most pixels first."""

    photos: list[DuplicatePhoto] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        """True when every photo is the same content."""
        return all(p.same_content for p in self.photos)

    @property
    def reclaimable(self) -> int:
        """Bytes taken by all but the first photo."""
        return sum(p.size for p in self.photos[1:])

    def to_json(self) -> dict[str, Any]:
        """The object printed by `--json`."""
        from dataclasses import asdict

        return {"exact": self.exact, "reclaimable": self.reclaimable, "photos": [asdict(p) for p in self.photos]}


def find_duplicates(
    config: Config, *, threshold: float = DEFAULT_THRESHOLD, folder: str | os.PathLike[str] | None = None
) -> list[DuplicateGroup]:
    """The groups of duplicate photos (optionally under `folder`), largest group first."""
    with open_library(config) as lib:
        return duplicates_in(lib, threshold=threshold, folder=folder)


def duplicates_in(
    lib: Library, *, threshold: float = DEFAULT_THRESHOLD, folder: str | os.PathLike[str] | None = None
) -> list[DuplicateGroup]:
    """`find_duplicates` on an open library (the web page's: a second open of the catalog file in one
    process would drop SQLite's locks on it)."""
    if not (math.isfinite(threshold) and 0.0 < threshold <= 1.0):
        raise PhotoindexError(f"--threshold {threshold}: not above 0 and at most 1", "try --threshold 0.95")
    prefix = resolve_folder(folder) if folder is not None else None
    if prefix is not None and not os.path.exists(prefix):
        # Not "no duplicates": a mistyped folder would read as a clean one.
        raise PhotoindexError(
            f"--folder {folder}: no such folder ({prefix})",
            "give a folder that exists; `photoindex status` lists the indexed roots",
        )
    local = lib.config.mounts.local
    with lib.db.reads() as con:
        if prefix is not None and lib.config.mounts.paths:
            # Inside a named root: its catalog spelling (either one while the root is not yet named).
            prefix = lib.config.mounts.folder_spelling(prefix, reads.root_paths(con))
        ids = (
            reads.vector_ids_under(con, lib.model_id, prefix)
            if prefix is not None
            else np.fromiter((r[0] for r in con.execute(
                "SELECT DISTINCT v.id FROM vectors AS v JOIN photos AS p ON p.content_hash = v.content_hash "
                "WHERE v.model_id = ? AND +p.status = 'indexed' ORDER BY v.id", (lib.model_id,))), dtype=np.int64)
        )
        ids, vectors = _vectors(con, lib.model_id, ids)
        pairs = _pairs(vectors, threshold)
        # Only photos that can be in a group are read: those of a near pair, and copies (one content,
        # one vector, several photos). Reading all 100,000 to keep a handful took a quarter of the time.
        paired = np.unique(np.array(pairs, dtype=np.int64).reshape(-1))
        copied = np.flatnonzero(np.isin(ids, _vector_ids_with_copies(con, lib.model_id, prefix)))
        candidates = np.union1d(paired, copied)
        photos = reads.live_photos_for_vectors(con, lib.model_id, ids[candidates].tolist(), prefix)
    parent = np.arange(len(ids))
    for a, b in pairs:
        _union(parent, a, b)
    members: dict[int, list[int]] = {}
    for i in candidates.tolist():
        members.setdefault(_find(parent, i), []).append(i)
    groups: list[DuplicateGroup] = []
    for rows in members.values():
        entries = [(i, ph) for i in rows for ph in photos.get(int(ids[i]), [])]
        if len(entries) < 2:
            continue
        entries.sort(key=lambda e: (-(e[1].width or 0) * (e[1].height or 0), -e[1].size, e[1].path))
        first_row, first = entries[0]
        base = vectors[first_row]
        groups.append(DuplicateGroup([
            DuplicatePhoto(
                path=local(ph.path), size=ph.size, width=ph.width, height=ph.height, format=ph.format,
                taken_at=ph.taken_at, score=round(float(vectors[i] @ base), 4),
                same_content=ph.content_hash == first.content_hash,
                id=ph.id,
            )
            for i, ph in entries
        ]))
    groups.sort(key=lambda g: (-len(g.photos), -g.reclaimable, g.photos[0].path))
    return groups


def _vector_ids_with_copies(con: Any, model_id: str, prefix: str | None) -> np.ndarray:
    """Ids of the vectors whose content more than one indexed photo (under `prefix`) holds."""
    where, params = ("1", ()) if prefix is None else reads.filter_clause(con, Filters(folder=prefix))
    rows = con.execute(
        "SELECT v.id FROM photos AS p CROSS JOIN vectors AS v WHERE v.content_hash = p.content_hash "
        f"AND v.model_id = ? AND +p.status = 'indexed' AND {where} GROUP BY v.id HAVING count(*) > 1",
        (model_id, *params),
    ).fetchall()
    return np.array([r[0] for r in rows], dtype=np.int64)


def _vectors(con: Any, model_id: str, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The unit vectors of the wanted ids (ids, [n, dim]), read in keyset chunks."""
    from photoindex.vectors.scoring import l2_normalize

    id_parts, vec_parts = [], []
    for ids, vectors in reads.iter_vectors(con, model_id):
        keep = np.isin(ids, wanted, assume_unique=True)
        if keep.any():
            id_parts.append(ids[keep])
            vec_parts.append(vectors[keep])
    if not id_parts:
        return np.empty(0, dtype=np.int64), np.empty((0, 1), dtype=np.float32)
    return np.concatenate(id_parts), np.ascontiguousarray(l2_normalize(np.concatenate(vec_parts)))


def _pairs(vectors: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Row pairs (a < b) whose cosine is at least `threshold`, among each row's nearest neighbours."""
    import faiss

    n = len(vectors)
    if n < 2:
        return []
    dim = vectors.shape[1]
    k = min(NEIGHBOURS + 1, n)
    if n <= EXACT_MAX:
        index: Any = faiss.IndexFlatIP(dim)
    else:
        # A query costs nlist centroid products plus NPROBE lists of n/nlist vectors: least at
        # nlist = sqrt(NPROBE * n) (632 lists at 100k, against 1,264 before: training, adding and
        # searching each cost about half, and the larger cells hold more of each photo's neighbours).
        nlist = max(1, int(math.sqrt(_NPROBE * n)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 10  # k-means barely improves after ~10 iterations (vectors/index.py trains so too)
        rng = np.random.default_rng(0)
        index.train(vectors[rng.choice(n, size=min(n, 40 * nlist), replace=False)])
        index.nprobe = _NPROBE
    index.add(vectors)
    pairs: list[tuple[int, int]] = []
    for start in range(0, n, _QUERY_CHUNK):
        scores, found = index.search(vectors[start : start + _QUERY_CHUNK], k)
        rows, cols = np.nonzero((scores >= threshold) & (found >= 0))
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            a, b = start + r, int(found[r, c])
            if a < b:
                pairs.append((a, b))
            elif b < a:
                pairs.append((b, a))
    return pairs


def _find(parent: np.ndarray, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = int(parent[i])
    return i


def _union(parent: np.ndarray, a: int, b: int) -> None:
    ra, rb = _find(parent, a), _find(parent, b)
    if ra != rb:
        parent[max(ra, rb)] = min(ra, rb)
