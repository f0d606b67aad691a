"""The vector index: unit vectors keyed by SQLite vector ids, searched by cosine; a rebuildable cache.

SQLite holds the truth (docs/architecture.md, invariant 1): the ids here are the primary keys of the vectors
table and this index can always be rebuilt from it. Two backends rank identically: FAISS
(`IndexIDMap2(IndexFlatIP)` exact, or `IndexIVFFlat` with inner product once the index reaches
`approximate_threshold` vectors) and numpy (a matrix product, the equivalent of Axera's
`feature_matmul.onnx`: softmax over `100 * cosine` is monotonic in the cosine, so the order is the same).

File format (version 1), one self-describing file replaced atomically (invariant 3):

    magic "PXVINDEX" | u32 version | u32 header length | header (JSON) | payload | trailer
    trailer = u64 payload length | u32 CRC-32 of header + payload | magic "PXVEND\\0\\0"

The payload is `faiss.write_index` output (streamed, never copied whole in memory) or, for numpy,
the int64 ids followed by the float32 matrix. The header names the backend, kind, dim, count and
nprobe, plus the caller's `meta` stamp (model id, DB generation, max id).

How nprobe is chosen for the IVF index: at build time 200 calibration queries are made from
sampled indexed vectors plus Gaussian noise of norm 1 (cosine about 0.7 to their source, farther
than a near-duplicate, like a "similar photo" query); their exact top-10 is computed by brute force,
and nprobe doubles from 1 until recall@10 reaches 0.97 (a margin over the 0.95 target), with a floor
of 8. On clustered 512-d data this calibration is slightly pessimistic against held-out queries
(0.982 calibration vs 0.989 held-out at the same nprobe); at 1M vectors (nlist 2564) held-out
recall@10 measured 0.976 at nprobe 4 and 1.000 at the chosen 8. Text queries sit farther from
image vectors (the CLIP modality gap), which is why there is a margin and a floor; callers can raise
`nprobe`, and it is saved with the file.
"""

from __future__ import annotations

import json
import math
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any, Literal, cast

import numpy as np

from photoindex.durable import fsync_folder
from photoindex.errors import VectorIndexError
from photoindex.vectors.scoring import l2_normalize


def _faiss() -> Any:
    """FAISS, imported on first use: a small exact index never needs it (`_FlatView`).

    Typed Any: the SWIG callback I/O classes are missing from the FAISS type stubs.
    """
    import faiss

    return faiss

Backend = Literal["faiss", "numpy"]
Kind = Literal["flat", "ivf"]

_MAGIC = b"PXVINDEX"
_END_MAGIC = b"PXVEND\0\0"
_VERSION = 1
_PREFIX = struct.Struct("<8sII")  # magic, version, header length
_TRAILER = struct.Struct("<QI8s")  # payload length, crc32, end magic
_CHUNK = 16 << 20

_SEED = 1234
_MIN_POINTS_PER_CENTROID = 39  # below this FAISS k-means warns on stderr and centroids are poor
_TRAIN_MAX = 100_000  # k-means sample cap: training cost grows with sample * nlist
_TRAIN_PER_LIST = 64
_KMEANS_ITERATIONS = 10  # coarse quantizer quality barely improves after ~10 iterations
_CALIBRATION_QUERIES = 200
_CALIBRATION_K = 10
_CALIBRATION_RECALL = 0.97
_MIN_NPROBE = 8
_NORM_TOLERANCE = 1e-2  # vectors stored as float16 come back with norms ~1e-3 off
_BATCH_SEARCH = 20  # FAISS switches to BLAS at 20 queries; below that a search is latency bound
# Up to this many allowed ids, a filtered search on the exact index gathers their vectors and ranks
# them with one matrix product instead of testing every vector's id against an IDSelectorBatch.
# Measured at 100k x 512: 1,000 ids 0.3 ms against 0.6 ms; at 5,000 the gather (10 MB copied)
# already costs more than the selector's pass (docs/search.md, "Filters").
EXACT_SUBSET_MAX = 2_000

_threads = 0


def set_threads(threads: int) -> None:
    """OpenMP threads FAISS may use for builds and batched searches (0 = all usable cores).

    Searches of fewer than 20 queries always run on one thread: they are latency bound, and
    concurrent searches from many threads would otherwise oversubscribe a small board.
    """
    global _threads
    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    _threads = threads


def _use_threads(batch: bool) -> None:
    # omp_set_num_threads sets a per-thread value (checked: a thread started later still sees the
    # default), so it is called in the thread that runs each FAISS operation.
    if not batch:
        _faiss().omp_set_num_threads(1)
        return
    n = _threads
    if n == 0:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    _faiss().omp_set_num_threads(max(1, n))


class _ReadWriteLock:
    """Many readers or one writer; a waiting writer holds back new readers so it is not starved."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            try:
                while self._writer or self._readers:
                    self._cond.wait()
            finally:
                self._waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


# --- backends -------------------------------------------------------------------------------


class _NumpyStore:
    """Rows of a float32 matrix with their ids; grows by doubling so an add does not copy everything."""

    kind: Kind = "flat"

    def __init__(self, dim: int, ids: np.ndarray | None = None, vectors: np.ndarray | None = None) -> None:
        n = 0 if ids is None else len(ids)
        self.dim = dim
        self._n = n
        self._ids = np.empty(max(n, 16), dtype=np.int64)
        self._mat = np.empty((max(n, 16), dim), dtype=np.float32)
        if ids is not None and vectors is not None:
            self._ids[:n] = ids
            self._mat[:n] = vectors

    @property
    def ntotal(self) -> int:
        return self._n

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        need = self._n + len(ids)
        if need > len(self._ids):
            cap = max(need, 2 * len(self._ids))
            grown_ids = np.empty(cap, dtype=np.int64)
            grown_mat = np.empty((cap, self.dim), dtype=np.float32)
            grown_ids[: self._n] = self._ids[: self._n]
            grown_mat[: self._n] = self._mat[: self._n]
            self._ids, self._mat = grown_ids, grown_mat
        self._ids[self._n : need] = ids
        self._mat[self._n : need] = vectors
        self._n = need

    def remove(self, ids: np.ndarray) -> None:
        keep = ~np.isin(self._ids[: self._n], ids)
        kept = int(keep.sum())
        self._ids[:kept] = self._ids[: self._n][keep]
        self._mat[:kept] = self._mat[: self._n][keep]
        self._n = kept

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        ids, mat = self._ids[: self._n], self._mat[: self._n]
        if allowed is not None:
            # Only the allowed rows are scored (a small album costs its size, not the library's).
            rows = np.flatnonzero(np.isin(ids, allowed))
            ids, mat = ids[rows], mat[rows]
        return _top_k(queries @ mat.T, ids, k)  # [Q, N]: what feature_matmul computes before softmax

    def ids(self) -> np.ndarray:
        return self._ids[: self._n].copy()

    def write_payload(self, write: Callable[[bytes | memoryview], None]) -> None:
        write(_bytes_of(self._ids[: self._n], "<i8"))
        write(_bytes_of(self._mat[: self._n], "<f4"))

    @classmethod
    def read_payload(cls, read: Callable[[int], bytes], dim: int, count: int) -> _NumpyStore:
        ids = np.frombuffer(read(8 * count), dtype="<i8").astype(np.int64)
        mat = np.frombuffer(read(4 * count * dim), dtype="<f4").astype(np.float32).reshape(count, dim)
        if len(ids) != count or mat.shape != (count, dim):
            raise ValueError("payload shorter than the header says")
        return cls(dim, ids, mat)


class _FaissStore:
    """A FAISS index with native int64 ids: IndexIDMap2(IndexFlatIP) or IndexIVFFlat (inner product)."""

    def __init__(self, index: Any, kind: Kind) -> None:
        self.index = index
        self.kind: Kind = kind
        self.dim = int(index.d)
        # IVF is reached through extract_index_ivf so nprobe/nlist work after a deserialize too.
        self._ivf: Any = _faiss().extract_index_ivf(index) if kind == "ivf" else None

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def nprobe(self) -> int:
        return int(self._ivf.nprobe) if self._ivf is not None else 0

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if self._ivf is not None:
            self._ivf.nprobe = max(1, min(int(value), int(self._ivf.nlist)))

    @property
    def nlist(self) -> int:
        return int(self._ivf.nlist) if self._ivf is not None else 0

    @classmethod
    def flat(cls, dim: int) -> _FaissStore:
        faiss = _faiss()
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), "flat")

    @classmethod
    def ivf(cls, ids: np.ndarray, vectors: np.ndarray) -> _FaissStore:
        n, dim = vectors.shape
        nlist = _nlist_for(n)
        rng = np.random.default_rng(_SEED)
        sample = np.sort(rng.choice(n, size=min(n, _TRAIN_MAX, _TRAIN_PER_LIST * nlist), replace=False))
        faiss = _faiss()
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        # Spherical k-means keeps centroids on the unit sphere, where inner product is cosine.
        index.cp.spherical = True
        index.cp.niter = _KMEANS_ITERATIONS
        index.cp.seed = _SEED
        _use_threads(batch=True)
        index.train(np.ascontiguousarray(vectors[sample]))
        index.add_with_ids(vectors, ids)
        store = cls(index, "ivf")
        store.nprobe = _calibrate_nprobe(store, ids, vectors, rng)
        return store

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        _use_threads(batch=len(ids) >= _BATCH_SEARCH)
        self.index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> None:
        _use_threads(batch=True)
        self.index.remove_ids(_faiss().IDSelectorBatch(ids))

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None, eligible: int, subset_max: int
    ) -> tuple[np.ndarray, np.ndarray]:
        _use_threads(batch=len(queries) >= _BATCH_SEARCH)
        if self._ivf is None and allowed is not None and len(allowed) <= subset_max:
            # The exact subset: the allowed vectors themselves, scored with one product.
            return _top_k(queries @ self.index.reconstruct_batch(allowed).T, allowed, k)
        selector = _faiss().IDSelectorBatch(allowed) if allowed is not None else None
        nprobe = self.nprobe
        if self._ivf is not None and allowed is not None:
            # A filter keeps eligible/ntotal of each list: probe proportionally more lists so as many
            # eligible candidates are scanned as without a filter (all lists for a small album).
            nprobe = min(self.nlist, math.ceil(nprobe * self.ntotal / max(eligible, 1)))
        scores, ids = self._search(queries, k, selector, nprobe)
        if self._ivf is not None:
            # The probed lists can hold fewer than k eligible vectors: redo those rows exhaustively so
            # the contract (k' = min(k, eligible) results per row) holds.
            short = np.flatnonzero((ids < 0).any(axis=1))
            if len(short):
                scores[short], ids[short] = self._search(queries[short], k, selector, self.nlist)
        return scores, ids

    def _search(
        self, queries: np.ndarray, k: int, selector: Any, nprobe: int
    ) -> tuple[np.ndarray, np.ndarray]:
        if self._ivf is not None:
            params: Any = _faiss().SearchParametersIVF()
            params.nprobe = nprobe
        else:
            params = _faiss().SearchParameters()
        if selector is not None:
            params.sel = selector
        scores, ids = self.index.search(queries, k, params=params)
        return scores, ids

    def contents(self) -> tuple[np.ndarray, np.ndarray]:
        if self._ivf is not None:
            raise AssertionError("an IVF index is never rebuilt from itself")
        ids = _faiss().vector_to_array(self.index.id_map).astype(np.int64)
        return ids, self.index.index.reconstruct_n(0, self.ntotal)

    def ids(self) -> np.ndarray:
        if self._ivf is None:
            return _faiss().vector_to_array(self.index.id_map).astype(np.int64)
        invlists = self._ivf.invlists
        parts = []
        for list_no in range(self.nlist):
            size = invlists.list_size(list_no)
            if size:
                parts.append(_faiss().rev_swig_ptr(invlists.get_ids(list_no), size).copy())
        return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, dtype=np.int64)

    def write_payload(self, write: Callable[[bytes | memoryview], None]) -> None:
        def callback(chunk: bytes) -> int:
            write(chunk)
            return len(chunk)

        faiss = _faiss()
        faiss.write_index(self.index, faiss.PyCallbackIOWriter(callback))

    @classmethod
    def read_payload(cls, read: Callable[[int], bytes], kind: Kind) -> _FaissStore:
        faiss = _faiss()
        return cls(faiss.read_index(faiss.PyCallbackIOReader(read)), kind)


def _nlist_for(n: int) -> int:
    """About 4*sqrt(N) lists, bounded so k-means sees at least 39 training points per centroid."""
    return max(1, min(round(4 * math.sqrt(n)), min(n, _TRAIN_MAX) // _MIN_POINTS_PER_CENTROID))


def _bytes_of(array: np.ndarray, dtype: str) -> memoryview:
    """The bytes of `array` as `dtype`, without a copy when it already is (an empty one too)."""
    return np.ascontiguousarray(array, dtype=dtype).reshape(-1).view(np.uint8).data


def _top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best `k` of each row of `scores` [Q, M] (columns named by `ids`), best first; ties by id."""
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.lexsort((ids[top], -top_scores), axis=1)
    return np.take_along_axis(top_scores, order, axis=1), ids[np.take_along_axis(top, order, axis=1)]


def _overlap(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each row of `truth` (ids) present in the same row of `found`."""
    hits = [
        len(np.intersect1d(f[f >= 0], t[t >= 0])) / max(1, int((t >= 0).sum()))
        for f, t in zip(found, truth, strict=True)
    ]
    return float(np.mean(hits)) if hits else 1.0


def _calibrate_nprobe(
    store: _FaissStore, ids: np.ndarray, vectors: np.ndarray, rng: np.random.Generator
) -> int:
    n, dim = vectors.shape
    k = min(_CALIBRATION_K, n)
    source = vectors[rng.choice(n, size=min(_CALIBRATION_QUERIES, n), replace=False)]
    noise = rng.standard_normal(source.shape, dtype=np.float32) / np.float32(math.sqrt(dim))
    queries = l2_normalize(source + noise)
    _use_threads(batch=True)
    faiss = _faiss()
    _, rows = faiss.knn(queries, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    truth = ids[rows]
    nprobe = 1
    while nprobe < store.nlist:
        _, found = store._search(queries, k, None, nprobe)
        if _overlap(found, truth) >= _CALIBRATION_RECALL:
            break
        nprobe *= 2
    return min(store.nlist, max(nprobe, _MIN_NPROBE))


class _FlatView(_NumpyStore):
    """A small exact index of the FAISS backend, held and searched with numpy, read and written in
    FAISS's own file layout, without importing FAISS.

    A one-shot search of a small library, or an indexer's or daemon's run over one, needs no more,
    and importing FAISS would cost it more than its searches (~0.1 CPU s; docs/architecture.md,
    "Start-up"). Both rank by the same inner products. Past `FLAT_VIEW_MAX` bytes, or on the way to
    the IVF index, `VectorIndex` turns it into the FAISS index it stands for (`to_faiss`).
    """

    # FAISS's serialization of IndexIDMap2(IndexFlatIP) (faiss/impl/index_write.cpp): "IxM2" and an
    # index header, "IxFI" and a header, the vectors (u64 count of floats, float32s), the ids (u64
    # count, int64s). A header: d i32, ntotal i64, two i64 placeholders, is_trained u8, metric i32.
    _HEADER = struct.Struct("<iqqq?i")
    _INNER_PRODUCT = 0

    @classmethod
    def parse(cls, data: bytes, dim: int, count: int) -> _FlatView:
        """The view of a `faiss.write_index` payload of that kind; ValueError for anything else."""
        at = 0

        def take(size: int) -> memoryview:
            nonlocal at
            if at + size > len(data):
                raise ValueError("the FAISS payload ends early")
            part = memoryview(data)[at : at + size]
            at += size
            return part

        for fourcc in (b"IxM2", b"IxFI"):
            if bytes(take(4)) != fourcc:
                raise ValueError(f"not a FAISS {fourcc.decode()} index")
            d, ntotal, _, _, _, metric = cls._HEADER.unpack(take(cls._HEADER.size))
            if (d, ntotal, metric) != (dim, count, cls._INNER_PRODUCT):
                raise ValueError("the FAISS header does not match the file's")
        (floats,) = struct.unpack("<Q", take(8))
        if floats != count * dim:
            raise ValueError("the FAISS vectors do not match the header")
        vectors = np.frombuffer(take(4 * floats), dtype="<f4").reshape(count, dim)
        (n,) = struct.unpack("<Q", take(8))
        if n != count:
            raise ValueError("the FAISS ids do not match the header")
        ids = np.frombuffer(take(8 * n), dtype="<i8")
        if at != len(data):
            raise ValueError("unexpected bytes after the FAISS index")
        return cls(dim, ids, vectors)

    def write_payload(self, write: Callable[[bytes | memoryview], None]) -> None:
        """What `faiss.write_index` writes for IndexIDMap2(IndexFlatIP) of these vectors (`parse` reads it)."""
        n, dim = self._n, self.dim
        header = self._HEADER.pack(dim, n, 1 << 20, 1 << 20, True, self._INNER_PRODUCT)
        write(b"IxM2" + header + b"IxFI" + header + struct.pack("<Q", n * dim))
        write(_bytes_of(self._mat[:n], "<f4"))
        write(struct.pack("<Q", n))
        write(_bytes_of(self._ids[:n], "<i8"))

    @staticmethod
    def fits(count: int, dim: int) -> bool:
        """Whether an exact index of `count` vectors of `dim` stays a view (`FLAT_VIEW_MAX`)."""
        return 4 * count * dim <= FLAT_VIEW_MAX

    def to_faiss(self) -> _FaissStore:
        """The FAISS index this view stands for."""
        store = _FaissStore.flat(self.dim)
        if self.ntotal:
            store.add(self._ids[: self._n], self._mat[: self._n])
        return store


# An exact FAISS index of vectors up to this size is a `_FlatView` (at 512 dimensions, ~32,000 vectors).
FLAT_VIEW_MAX = 64 << 20

Store = _NumpyStore | _FaissStore


# --- the index ------------------------------------------------------------------------------


class VectorIndex:
    """Unit float32 vectors of dim D keyed by int64 ids; many concurrent searches, add/remove under a lock."""

    def __init__(
        self, store: Store, backend: Backend, approximate_threshold: int, meta: dict[str, Any]
    ) -> None:
        """Use `create`, `build` or `load`."""
        self._store: Store = store
        self.backend: Backend = backend
        self.approximate_threshold = approximate_threshold
        self.meta: dict[str, Any] = meta
        self._ids = np.sort(store.ids())
        # A filtered search of at most this many ids on the exact FAISS index scores just their vectors.
        self.exact_subset_max = EXACT_SUBSET_MAX
        self._lock = _ReadWriteLock()
        self._writer = threading.Lock()  # serializes add/remove/save; searches only wait on _lock

    @classmethod
    def create(
        cls, dim: int, *, backend: Backend = "faiss", approximate_threshold: int = 200_000
    ) -> VectorIndex:
        """An empty index of `dim`-dimensional vectors."""
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        store: Store = _NumpyStore(dim) if _backend(backend) == "numpy" else _FlatView(dim)
        return cls(store, backend, approximate_threshold, {})

    @classmethod
    def build(
        cls,
        ids: np.ndarray,
        vectors: np.ndarray,
        *,
        backend: Backend = "faiss",
        approximate_threshold: int = 200_000,
        meta: dict[str, Any] | None = None,
    ) -> VectorIndex:
        """An index of `vectors` under `ids`: IVF for FAISS from `approximate_threshold` vectors on."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] == 0:
            raise ValueError(f"vectors must be [N, D], got shape {vectors.shape}")
        dim = vectors.shape[1]
        ids, vectors = _checked(ids, vectors, dim, np.empty(0, dtype=np.int64))
        store: Store
        if _backend(backend) == "numpy":
            store = _NumpyStore(dim, ids, vectors)
        elif len(ids) >= approximate_threshold:
            store = _FaissStore.ivf(ids, vectors)
        elif _FlatView.fits(len(ids), dim):
            store = _FlatView(dim, ids, vectors)
        else:
            store = _FaissStore.flat(dim)
            if len(ids):
                store.add(ids, vectors)
        return cls(store, backend, approximate_threshold, dict(meta or {}))

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._store.dim

    @property
    def kind(self) -> Kind:
        """Either "flat" (exact) or "ivf" (approximate)."""
        return self._store.kind

    @property
    def nprobe(self) -> int:
        """Lists probed per query by the IVF index (0 when exact); settable, saved with the file."""
        return self._store.nprobe if isinstance(self._store, _FaissStore) else 0

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        with self._writer, self._lock.write():
            if isinstance(self._store, _FaissStore):
                self._store.nprobe = value

    def __len__(self) -> int:
        """Number of vectors."""
        return len(self._ids)

    def ids(self) -> np.ndarray:
        """All ids, sorted int64."""
        return self._ids.copy()

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under new ids; an id already present or repeated raises ValueError and adds nothing."""
        with self._writer:
            ids, vectors = _checked(ids, vectors, self.dim, self._ids)
            if not len(ids):
                return
            merged = _merge_sorted(self._ids, ids)
            if isinstance(self._store, _FlatView) and (
                not _FlatView.fits(len(merged), self.dim) or len(merged) >= self.approximate_threshold
            ):
                grown = self._store.to_faiss()  # grown past a view: the FAISS index it stands for
                with self._lock.write():
                    self._store = grown
            store = self._store
            if (
                isinstance(store, _FaissStore)
                and store.kind == "flat"
                and len(merged) >= self.approximate_threshold
            ):
                # Crossing the threshold: train the IVF index while searches keep using the old one,
                # then swap; a search sees the index before or after the add, never half of it.
                old_ids, old_vectors = store.contents()
                ivf = _FaissStore.ivf(np.concatenate([old_ids, ids]), np.concatenate([old_vectors, vectors]))
                with self._lock.write():
                    self._store, self._ids = ivf, merged
                return
            with self._lock.write():
                store.add(ids, vectors)
                self._ids = merged

    def remove(self, ids: np.ndarray) -> int:
        """Remove these ids in one batch (absent ids are ignored); returns how many were removed."""
        ids = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
        with self._writer:
            present = ids[np.isin(ids, self._ids, assume_unique=True)]
            if not len(present):
                return 0
            with self._lock.write():
                self._store.remove(present)
                self._ids = np.setdiff1d(self._ids, present, assume_unique=True)
            return len(present)

    def search(
        self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by cosine: (scores [Q, k'], ids [Q, k']) best first, k' = min(k, eligible vectors).

        `queries` is [Q, D] or one [D] vector (then Q = 1); queries are normalized here, so raw text
        features are fine. `allowed` restricts the results to those ids.
        """
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(
                f"queries must be [Q, {self.dim}] or [{self.dim}], got shape {np.shape(queries)}"
            )
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        q = np.ascontiguousarray(l2_normalize(q))
        with self._lock.read():
            store, present = self._store, self._ids
            if allowed is not None:
                allowed = np.unique(np.asarray(allowed, dtype=np.int64).reshape(-1))
                at = np.minimum(np.searchsorted(present, allowed), max(len(present) - 1, 0))
                allowed = allowed[present[at] == allowed] if len(present) else allowed[:0]
                eligible = len(allowed)
            else:
                eligible = len(present)
            k = min(k, eligible)
            if k == 0:
                return np.empty((len(q), 0), dtype=np.float32), np.empty((len(q), 0), dtype=np.int64)
            if isinstance(store, _NumpyStore):
                scores, ids = store.search(q, k, allowed)
            else:
                scores, ids = store.search(q, k, allowed, eligible, self.exact_subset_max)
                # Equal scores in id order, as numpy's `_top_k` gives them: the same order from a
                # `_FlatView` of this index as from FAISS itself (scores agree within ~1e-7).
                order = np.lexsort((ids, -scores), axis=1)
                scores, ids = np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)
        return scores.astype(np.float32, copy=False), ids.astype(np.int64, copy=False)

    def save(self, path: Path) -> None:
        """Write the index to `path` atomically: a crash at any point leaves the old file or the new one."""
        path = Path(path)
        # One fixed temporary name: a crash leaves at most one leftover, overwritten by the next save.
        # The single-writer lock file (docs/architecture.md, invariant 4) keeps two processes from sharing it.
        tmp = path.with_name(f".{path.name}.tmp")
        with self._writer:  # no add/remove during the save; searches carry on
            expected = self._ids
            try:
                with open(tmp, "wb") as f:
                    self._write(f)
                    f.flush()
                    os.fsync(f.fileno())
                back = _read(tmp)
                if back.ntotal != len(expected) or not np.array_equal(np.sort(back.ids()), expected):
                    raise VectorIndexError(
                        f"{tmp}: the index file read back does not hold the vectors just written",
                        "check the disk (free space, system log errors), then run `photoindex reindex`",
                    )
                os.replace(tmp, path)
            except BaseException:
                with suppress(OSError):
                    os.unlink(tmp)
                raise
        fsync_folder(path.parent)

    @classmethod
    def load(cls, path: Path) -> VectorIndex:
        """Read an index saved by `save`; VectorIndexError naming the file if it is missing or damaged."""
        path = Path(path)
        header, store = _read_with_header(path)
        return cls(store, header["backend"], int(header["approximate_threshold"]), header["meta"])

    def _write(self, f: IO[bytes]) -> None:
        store = self._store
        header = json.dumps(
            {
                "backend": self.backend,
                "kind": store.kind,
                "dim": store.dim,
                "count": store.ntotal,
                "nprobe": self.nprobe,
                "approximate_threshold": self.approximate_threshold,
                "meta": self.meta,
            },
            sort_keys=True,
        ).encode()
        f.write(_PREFIX.pack(_MAGIC, _VERSION, len(header)))
        f.write(header)
        crc = zlib.crc32(header)
        size = 0

        def write(chunk: bytes | memoryview) -> None:
            nonlocal crc, size
            f.write(chunk)
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)

        store.write_payload(write)
        f.write(_TRAILER.pack(size, crc, _END_MAGIC))


def recall_at_k(index: VectorIndex, exact: VectorIndex, queries: np.ndarray, k: int = 10) -> float:
    """Mean fraction of `exact`'s top-k ids that `index` also returns in its top-k (1.0 = identical)."""
    _, found = index.search(queries, k)
    _, truth = exact.search(queries, k)
    return _overlap(found, truth)


# --- validation and files -------------------------------------------------------------------


def _backend(backend: str) -> Backend:
    if backend not in ("faiss", "numpy"):
        raise ValueError(f"unknown vector index backend {backend!r}: use 'faiss' or 'numpy'")
    return cast(Backend, backend)


def _checked(
    ids: np.ndarray, vectors: np.ndarray, dim: int, present: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """ids as int64 [N] and vectors as contiguous float32 [N, dim], after checking the contract."""
    ids = np.ascontiguousarray(np.asarray(ids).reshape(-1))
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be integers, got {ids.dtype}")
    ids = ids.astype(np.int64)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if not len(ids) and vectors.size == 0:
        vectors = vectors.reshape(0, dim)
    if vectors.shape != (len(ids), dim):
        raise ValueError(f"expected vectors of shape ({len(ids)}, {dim}), got {vectors.shape}")
    if not len(ids):
        return ids, vectors
    if not np.isfinite(vectors).all():
        raise ValueError("vectors contain NaN or infinity")
    norms = np.linalg.norm(vectors, axis=1)
    if np.abs(norms - 1).max() > _NORM_TOLERANCE:
        raise ValueError(
            "vectors must have unit length: normalize them (scoring.l2_normalize) before storing"
        )
    # Sorted and compared, not np.unique: its first call imports numpy.ma (~0.02-0.2 CPU s, in the
    # indexer's first batch while the decode workers want both cores).
    unique = np.sort(ids)
    if len(unique) > 1 and bool((unique[1:] == unique[:-1]).any()):
        raise ValueError("duplicate ids in one batch: vector ids come from the catalog and must be unique")
    if len(present) and unique[0] > present[-1]:
        return ids, vectors  # the usual case: ids only grow, so none can be present (no O(N) pass)
    again = unique[np.isin(unique, present, assume_unique=True)]
    if len(again):
        raise ValueError(f"ids already in the index: {again[:5].tolist()}")
    return ids, vectors


def _merge_sorted(present: np.ndarray, new: np.ndarray) -> np.ndarray:
    """`present` (sorted, unique) with `new` (unique, not in it) merged, sorted; cheap when new ids are larger."""
    new = np.sort(new)
    if not len(present) or new[0] > present[-1]:
        return np.concatenate([present, new])
    return np.insert(present, np.searchsorted(present, new), new)


def _read(path: Path) -> Store:
    return _read_with_header(path)[1]


def _damaged(path: Path, what: str) -> VectorIndexError:
    return VectorIndexError(
        f"{path}: vector index file is unusable ({what})",
        "it is a cache: delete it or run `photoindex reindex` to rebuild it from the catalog",
    )


def _read_with_header(path: Path) -> tuple[dict[str, Any], Store]:
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise VectorIndexError(
            f"{path}: vector index file not found", "run `photoindex reindex` to build it from the catalog"
        ) from None
    except OSError as exc:
        raise _damaged(path, exc.strerror or str(exc)) from None
    with f:
        try:
            return _parse(path, f)
        except VectorIndexError:
            raise
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, MemoryError) as exc:
            # RuntimeError is how FAISS reports a malformed index.
            raise _damaged(path, f"{type(exc).__name__}: {exc}") from None


def _parse(path: Path, f: IO[bytes]) -> tuple[dict[str, Any], Store]:
    size = os.fstat(f.fileno()).st_size
    if size == 0:
        raise _damaged(path, "empty file")
    if size < _PREFIX.size + _TRAILER.size:
        raise _damaged(path, f"truncated: only {size} bytes")
    magic, version, header_len = _PREFIX.unpack(f.read(_PREFIX.size))
    if magic != _MAGIC:
        raise _damaged(path, "not a photoindex vector index")
    if version != _VERSION:
        raise _damaged(path, f"format version {version}, this photoindex reads version {_VERSION}")
    payload_start = _PREFIX.size + header_len
    payload_len = size - payload_start - _TRAILER.size
    if payload_len < 0:
        raise _damaged(path, "truncated header")
    header_bytes = f.read(header_len)
    f.seek(size - _TRAILER.size)
    stored_len, stored_crc, end = _TRAILER.unpack(f.read(_TRAILER.size))
    if end != _END_MAGIC or stored_len != payload_len:
        raise _damaged(path, "truncated or extended: the trailer does not match the file size")
    crc = zlib.crc32(header_bytes)
    f.seek(payload_start)
    remaining = payload_len
    while remaining:
        chunk = f.read(min(_CHUNK, remaining))
        if not chunk:
            raise _damaged(path, "truncated while reading")
        crc = zlib.crc32(chunk, crc)
        remaining -= len(chunk)
    if crc != stored_crc:
        raise _damaged(path, "checksum mismatch: the file is corrupt")

    header = json.loads(header_bytes)
    backend, kind, dim, count = header["backend"], header["kind"], int(header["dim"]), int(header["count"])
    if (
        backend not in ("faiss", "numpy")
        or kind not in ("flat", "ivf")
        or not isinstance(header["meta"], dict)
    ):
        raise _damaged(path, "unknown backend or kind in the header")
    f.seek(payload_start)
    left = payload_len

    def read(n: int) -> bytes:
        nonlocal left
        data = f.read(min(n, left))
        left -= len(data)
        return data

    store: Store
    if backend == "numpy":
        store = _NumpyStore.read_payload(read, dim, count)
    elif kind == "flat" and _FlatView.fits(count, dim):
        data = read(payload_len)
        try:
            store = _FlatView.parse(data, dim, count)
        except ValueError:  # another FAISS version's layout: FAISS itself reads it
            faiss = _faiss()
            store = _FaissStore(faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8)), kind)
    else:
        store = _FaissStore.read_payload(read, kind)
        store.nprobe = int(header["nprobe"])
    if left:
        raise _damaged(path, f"{left} unexpected bytes after the index")
    if store.dim != dim or store.ntotal != count:
        raise _damaged(path, f"header says {count} x {dim}, payload holds {store.ntotal} x {store.dim}")
    return header, store



def read_meta(path: Path) -> dict[str, Any] | None:
    """The caller's stamp (`meta`) of an index file from its header alone, or None if unreadable.

    Cheap (no payload is read, nothing is verified): used to avoid overwriting a newer file.
    """
    try:
        with open(path, "rb") as f:
            magic, version, header_len = _PREFIX.unpack(f.read(_PREFIX.size))
            if magic != _MAGIC or version != _VERSION or header_len > 1 << 20:
                return None
            header = json.loads(f.read(header_len))
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - _TRAILER.size))
            stored_len, _, end = _TRAILER.unpack(f.read(_TRAILER.size))
            if end != _END_MAGIC or stored_len != size - _PREFIX.size - header_len - _TRAILER.size:
                return None  # truncated or extended
    except (OSError, ValueError, struct.error):
        return None
    meta = header.get("meta") if isinstance(header, dict) else None
    return meta if isinstance(meta, dict) else None
