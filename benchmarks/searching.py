"""Search at scale: vector index latency and recall, warm text queries at N photos, cold `photoindex
search` and `photoindex --help` as a user runs them.
"""

from __future__ import annotations

import gc
import time
from typing import Any

import numpy as np

from photoindex.vectors.scoring import l2_normalize

QUERIES = ("a dog on the beach", "sunset over the mountains", "birthday cake with candles",
           "a red car in the snow", "two children playing football", "the eiffel tower at night",
           "a cat sleeping on a sofa", "green forest after rain", "wedding photo", "a plate of sushi")


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50 / p95 / min / mean of latencies in seconds, reported in milliseconds."""
    a = np.asarray(samples) * 1000.0
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "min_ms": float(a.min()), "mean_ms": float(a.mean()), "n": len(samples)}


def clustered_vectors(n: int, dim: int, seed: int, clusters: int | None = None) -> np.ndarray:
    """Unit vectors around `clusters` random centres (photo libraries are clumpy, not uniform)."""
    rng = np.random.default_rng(seed)
    k = clusters or max(10, int(np.sqrt(n)))
    centres = l2_normalize(rng.standard_normal((k, dim), dtype=np.float32))
    out = np.empty((n, dim), dtype=np.float32)
    step = 100_000
    for start in range(0, n, step):
        m = min(step, n - start)
        # Spread comparable to the centre norm: neighbours are close, but not duplicates.
        noise = rng.standard_normal((m, dim), dtype=np.float32) * np.float32(1.0 / np.sqrt(dim))
        out[start : start + m] = l2_normalize(centres[rng.integers(0, k, size=m)] + noise)
    return out


def _latencies(index: Any, queries: np.ndarray) -> dict[str, float]:
    """Percentiles of top-10 searches of one query at a time, as the CLI searches."""
    index.search(queries[0], 10)  # warm-up (first-touch pages, thread pools)
    times = []
    for q in queries:
        t = time.perf_counter()
        index.search(q, 10)
        times.append(time.perf_counter() - t)
    return percentiles(times)


def vector_search(sizes: list[int], dim: int, n_queries: int, slow_queries: int) -> list[dict[str, Any]]:
    """p50/p95 of one-query searches (top 10) for exact FAISS, numpy and IVF at each size, IVF recall@10."""
    from photoindex.vectors.index import VectorIndex, recall_at_k

    rows: list[dict[str, Any]] = []
    for n in sizes:
        vectors = clustered_vectors(n, dim, seed=n)
        # Queries come from the same distribution as the data, but are not in it.
        queries = clustered_vectors(n_queries, dim, seed=n, clusters=max(10, int(np.sqrt(n))))
        jitter = np.random.default_rng(1).standard_normal(queries.shape, dtype=np.float32) * np.float32(0.02)
        queries = l2_normalize(queries + jitter)
        ids = np.arange(1, n + 1, dtype=np.int64)
        few = queries[: slow_queries if n >= 1_000_000 else n_queries]
        exact = VectorIndex.build(ids, vectors, backend="faiss", approximate_threshold=n + 1)
        rows.append({"size": n, "index": "exact FAISS (flat)", **_latencies(exact, few)})
        numpy_index = VectorIndex.build(ids, vectors, backend="numpy")
        rows.append({"size": n, "index": "numpy", **_latencies(numpy_index, few)})
        del numpy_index
        gc.collect()
        t = time.perf_counter()
        ivf = VectorIndex.build(ids, vectors, backend="faiss", approximate_threshold=1)
        build = time.perf_counter() - t
        recall = recall_at_k(ivf, exact, queries, k=10)
        rows.append({"size": n, "index": f"IVF (nprobe {ivf.nprobe})", **_latencies(ivf, queries),
                     "recall_at_10": recall, "build_s": build})
        del exact, ivf, vectors
        gc.collect()
    return rows


class _Info:
    """Photo metadata as the decoder records it (ImageFacts)."""

    def __init__(self, i: int) -> None:
        self.width, self.height, self.format = 4000, 3000, "JPEG"
        self.taken_at = f"20{10 + i % 15:02d}-{1 + i % 12:02d}-{1 + i % 28:02d}T12:00:00"
        self.camera_make, self.camera_model = "Benchmark", f"Model {i % 7}"
        self.gps_lat = self.gps_lon = None


def fill_catalog(config: Any, count: int, chunk: int = 5000) -> float:
    """`count` fake photos with clustered vectors, straight through the catalog; returns seconds taken."""
    from photoindex.catalog import writes as catalog
    from photoindex.library import open_library

    start = time.perf_counter()
    dim = 0
    root_dir = config.home / "library"
    root_dir.mkdir(parents=True, exist_ok=True)
    with open_library(config) as lib:
        dim = lib.bundle.manifest.embedding_dim
        vectors = clustered_vectors(count, dim, seed=42)
        with lib.db.write() as s:
            root = catalog.add_root(s, root_dir)
        for begin in range(0, count, chunk):
            end = min(count, begin + chunk)
            hashes = [f"{i:064x}" for i in range(begin, end)]
            with lib.db.write() as s:
                catalog.add_vectors(s, lib.model_id, list(zip(hashes, vectors[begin:end], strict=True)))
                for i, h in zip(range(begin, end), hashes, strict=True):
                    path = root_dir / f"{i // 1000:03d}" / f"IMG_{i:06d}.jpg"
                    catalog.store_indexed(s, root_id=root.id, path=path, size=4_000_000 + i,
                                          mtime_ns=1_700_000_000_000_000_000 + i, content_hash=h, info=_Info(i))
    return time.perf_counter() - start


def warm_text_query(config: Any, rounds: int) -> dict[str, Any]:
    """Latency of a text query in a running process: tokenize, encode, top-k, metadata from SQLite."""
    from photoindex.library import open_library
    from photoindex.search import SearchRequest, query_vector
    from photoindex.search.query import search_vector

    with open_library(config) as lib:
        t = time.perf_counter()
        handle = lib.open_index()
        open_s = time.perf_counter() - t
        handle.save_if_dirty()  # the file cold searches will load
        lib.text_encoder()
        total, encode = [], []
        hits = 0
        for i in range(rounds):
            text = QUERIES[i % len(QUERIES)] + ("" if i < len(QUERIES) else f" {i}")
            t0 = time.perf_counter()
            request = SearchRequest.build(text=text, limit=20)
            q = query_vector(lib, request.terms)
            t1 = time.perf_counter()
            hits = len(search_vector(lib, q, request, index=handle))
            total.append(time.perf_counter() - t0)
            encode.append(t1 - t0)
        return {"total": percentiles(total), "text_encode": percentiles(encode), "index_open_s": open_s,
                "index_kind": handle.index.kind, "vectors": len(handle.index), "hits": hits}


def cold_search(env: dict[str, str], runs: int) -> dict[str, Any]:
    """Wall time and peak memory of `photoindex search TEXT` as a fresh process, `runs` times."""
    from benchmarks.pipeline import photoindex_command, run_command

    walls: list[float] = []
    rss = pss = 0.0
    for i in range(runs):
        _, wall, sampler = run_command([*photoindex_command(), "search", QUERIES[i % len(QUERIES)]], env)
        walls.append(wall)
        rss, pss = max(rss, sampler.peak.rss_mib), max(pss, sampler.peak.pss_mib)
    return {"wall": percentiles(walls), "peak_rss_mib": rss, "peak_pss_mib": pss}


def help_time(env: dict[str, str], runs: int) -> dict[str, Any]:
    """Wall time of `photoindex --help` (no model, no database, no heavy imports)."""
    from benchmarks.pipeline import photoindex_command, run_command

    walls = [run_command([*photoindex_command(), "--help"], env)[1] for _ in range(runs)]
    return percentiles(walls)
