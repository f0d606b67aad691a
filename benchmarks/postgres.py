"""pgvector HNSW beside FAISS IVF at 100k and 1M vectors: build time, p50/p95 of one top-10 query
(warm), recall@10 against the exact answer, with and without a filter keeping 1% of the photos.

    python -m benchmarks.postgres --sizes 100000 1000000 --ef-search 40 100 200 400 --out benchmarks/out-postgres

Each `--ef-search` value is measured on the one index built per size (HNSW's m and ef_construction
are `--m` and `--ef-construction`, photoindex's defaults unless given); the filtered search runs as
`photoindex search` does (its ef_search does not matter below pgvectors.EXACT_LIMIT matches).

Starts a private PostgreSQL with pgvector (pgserver) in a temporary folder, makes a real catalog in
it (photoindex's migrations), loads clustered unit vectors and one photo row per vector with COPY
(1% of them under one folder), builds the model's HNSW index the way `catalog copy` does, and
searches through `pgvectors.nearest` on a `PgReads` connection, the code `photoindex search` runs.
FAISS IVF is photoindex's VectorIndex above its approximate threshold; its filtered search gets the
allowed ids, as the FAISS search path does. Results: OUT/postgres.json and OUT/postgres.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.searching import clustered_vectors, percentiles
from photoindex.catalog.pgvectors import HNSW_EF_CONSTRUCTION, HNSW_M

DIM = 512
MODEL = "bench-clip"
FOLDER = "/bench/f001"  # the 1% filter: every 100th photo lives here


def _server(folder: str, memory: str) -> Any:
    import pgserver
    from pgserver._commands import pg_ctl

    server = pgserver.get_server(folder, cleanup_mode="stop")
    # Room for the HNSW graph while it is built, and for the index while it is searched.
    server.psql(f"ALTER SYSTEM SET shared_buffers = '{memory}';")
    server.psql("ALTER SYSTEM SET max_parallel_maintenance_workers = 1;")
    pg_ctl(["-w", "restart"], pgdata=server.pgdata, user=server.system_user)
    return server


def _load(url: str, vectors: np.ndarray, m: int, ef_construction: int) -> dict[str, float]:
    """A migrated catalog holding `vectors` (ids 1..n) and a photo per vector; returns load and build seconds."""
    import psycopg
    from pgvector.psycopg import register_vector
    from sqlalchemy import text

    from photoindex.catalog.db import open_catalog
    from photoindex.catalog.location import CatalogLocation
    from photoindex.catalog.pgvectors import ensure_model_index

    location = CatalogLocation(url=url)
    open_catalog(location).close()
    n = len(vectors)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    t0 = time.perf_counter()
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as con:
        register_vector(con)
        con.execute("INSERT INTO roots (id, path, added_at, present) VALUES (1, %s, %s, true)", (b"/bench", now))
        with con.cursor().copy(
            "COPY vectors (id, model_id, content_hash, dim, vector, created_at) FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int4", "varchar", "varchar", "int4", "vector", "timestamp"])
            for i in range(n):
                copy.write_row((i + 1, MODEL, f"{i:064x}", DIM, vectors[i], now))
        with con.cursor().copy(
            "COPY photos (root_id, path, size, mtime_ns, content_hash, status, first_seen, updated_at) "
            "FROM STDIN WITH (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int4", "bytea", "int8", "int8", "varchar", "varchar", "timestamp", "timestamp"])
            for i in range(n):
                folder = FOLDER if i % 100 == 0 else f"/bench/f{2 + i % 97:03d}"
                copy.write_row((1, f"{folder}/{i:08d}.jpg".encode(), 1000, i, f"{i:064x}", "indexed", now, now))
        con.execute("SELECT setval(pg_get_serial_sequence('vectors', 'id'), %s)", (n,))
        con.execute("ANALYZE")
    loaded = time.perf_counter() - t0
    t0 = time.perf_counter()
    with open_catalog(location) as db, db.write() as s:
        s.execute(text("SET LOCAL maintenance_work_mem = '3GB'"))
        ensure_model_index(s, MODEL, DIM, m=m, ef_construction=ef_construction)
    built = time.perf_counter() - t0
    return {"load_s": loaded, "hnsw_build_s": built}


def _pg_search(
    url: str, queries: np.ndarray, *, filtered: bool, ef: int | None, k: int = 10
) -> tuple[list[float], np.ndarray]:
    from photoindex.catalog.db import open_catalog
    from photoindex.catalog.location import CatalogLocation
    from photoindex.catalog.pgvectors import nearest
    from photoindex.catalog.reads import filter_clause
    from photoindex.search.filters import Filters

    times: list[float] = []
    found = np.full((len(queries), k), -1, dtype=np.int64)
    with open_catalog(CatalogLocation(url=url)) as db:
        for warm in (True, False):
            for qi, q in enumerate(queries[:5] if warm else queries):
                t = time.perf_counter()
                with db.reads() as con:
                    where = filter_clause(con, Filters(folder=FOLDER)) if filtered else None
                    _, ids = nearest(con, MODEL, DIM, q, k, where=where, ef_fixed=ef)
                if not warm:
                    times.append(time.perf_counter() - t)
                    found[qi, : len(ids)] = ids
    return times, found


def _faiss(vectors: np.ndarray, queries: np.ndarray, allowed: np.ndarray | None, k: int = 10) -> dict[str, Any]:
    from photoindex.vectors.index import VectorIndex

    t0 = time.perf_counter()
    index = VectorIndex.create(DIM, backend="faiss", approximate_threshold=min(len(vectors) - 1, 200_000))
    index.add(np.arange(1, len(vectors) + 1, dtype=np.int64), vectors)
    built = time.perf_counter() - t0
    index.search(queries[:1], k, allowed=allowed)
    times, found = [], np.full((len(queries), k), -1, dtype=np.int64)
    for qi, q in enumerate(queries):
        t = time.perf_counter()
        _, ids = index.search(q[None], k, allowed=allowed)
        times.append(time.perf_counter() - t)
        found[qi, : ids.shape[1]] = ids[0]
    return {"build_s": built, "times": times, "found": found}


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


def _truth(vectors: np.ndarray, queries: np.ndarray, ids: np.ndarray, k: int = 10) -> np.ndarray:
    scores = queries @ vectors.T
    top = np.argsort(-scores, axis=1)[:, :k]
    return ids[top]


def run(n: int, queries_n: int, memory: str, efs: list[int], m: int, ef_construction: int) -> dict[str, Any]:
    """One size: load, build, search both ways; returns the figures."""
    vectors = clustered_vectors(n, DIM, seed=n)
    rng = np.random.default_rng(7)
    picks = vectors[rng.integers(0, n, queries_n)]
    queries = picks + rng.standard_normal(picks.shape).astype(np.float32) * np.float32(0.5 / np.sqrt(DIM))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    ids = np.arange(1, n + 1, dtype=np.int64)
    subset = np.arange(0, n, 100)
    truth = _truth(vectors, queries, ids)
    truth_filtered = _truth(vectors[subset], queries, ids[subset])
    row: dict[str, Any] = {"n": n, "dim": DIM, "queries": queries_n, "m": m, "ef_construction": ef_construction}
    folder = tempfile.mkdtemp(prefix="photoindex-bench-pg-")
    server = _server(folder, memory)
    try:
        server.psql("CREATE DATABASE bench;")
        url = server.get_uri().replace("postgresql://postgres:@/postgres", "postgresql+psycopg://postgres@/bench", 1)
        row.update(_load(url, vectors, m, ef_construction))
        for ef in efs:
            times, found = _pg_search(url, queries, filtered=False, ef=ef)
            row[f"pgvector_ef{ef}"] = {**percentiles(times), "recall_at_10": _recall(found, truth), "ef_search": ef}
        times, found = _pg_search(url, queries, filtered=True, ef=None)
        row["pgvector_filtered"] = {**percentiles(times), "recall_at_10": _recall(found, truth_filtered)}
    finally:
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user)
        shutil.rmtree(folder, ignore_errors=True)
    for filtered, truth_k in ((False, truth), (True, truth_filtered)):
        faiss = _faiss(vectors, queries, ids[subset] if filtered else None)
        key = "faiss_ivf_filtered" if filtered else "faiss_ivf"
        row[key] = {**percentiles(faiss["times"]), "recall_at_10": _recall(faiss["found"], truth_k),
                    "build_s": faiss["build_s"]}
    return row


def indexers(photos: int, kind: str, batch: int) -> dict[str, Any]:
    """Two `photoindex index` processes (homes of their own: two machines) on one PostgreSQL library
    of `photos` generated photos, against one alone on a fresh copy: photos/s and each one's share."""
    import os
    import subprocess
    import sys

    from photoindex.testing import make_bundle
    from photoindex.testing.photos import make_photo_tree

    work = Path(tempfile.mkdtemp(prefix="photoindex-bench-indexers-"))
    folder = tempfile.mkdtemp(prefix="photoindex-bench-pg-")
    server = _server(folder, "512MB")
    try:
        bundle = make_bundle(work / "bundle", kind)  # type: ignore[arg-type]
        make_photo_tree(work / "Photos", photos, seed=5, size=(640, 480))
        base = server.get_uri().replace("postgresql://postgres:@/postgres", "postgresql+psycopg://postgres@/", 1)
        out: dict[str, Any] = {"photos": photos, "model": kind, "batch": batch}
        for label, count in (("one", 1), ("two", 2)):
            db = f"idx_{label}"
            server.psql(f"CREATE DATABASE {db};")
            url = base.replace("@/", f"@/{db}", 1)
            env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOINDEX_")}
            env.update(PHOTOINDEX_MODEL_BUNDLE=str(bundle), PHOTOINDEX_INDEX_WORKERS="1", PHOTOINDEX_OCR_ENABLED="0",
                       PHOTOINDEX_INDEX_BATCH_SIZE=str(batch), PHOTOINDEX_CATALOG_URL=url)
            subprocess.run([sys.executable, "-m", "photoindex", "status", "--json"], check=True, capture_output=True,
                           env={**env, "PHOTOINDEX_HOME": str(work / f"{label}-setup")})
            t0 = time.perf_counter()
            procs = [
                subprocess.Popen([sys.executable, "-m", "photoindex", "index", str(work / "Photos"), "--json"],
                                 env={**env, "PHOTOINDEX_HOME": str(work / f"{label}-{i}")},
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for i in range(count)
            ]
            reports = [json.loads(p.communicate()[0]) for p in procs]
            seconds = time.perf_counter() - t0
            encoded = [r["encoded"] for r in reports]
            out[label] = {"seconds": seconds, "photos_per_s": photos / seconds, "encoded": encoded,
                          "shares": [e / photos for e in encoded]}
        return out
    finally:
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=server.pgdata, user=server.system_user)
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def render(rows: list[dict[str, Any]]) -> str:
    """The markdown table of docs/scale.md."""
    lines = [
        "| vectors | search | filter | p50 ms | p95 ms | recall@10 | build s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        hnsw = f"pgvector HNSW (m {r['m']}, ef_c {r['ef_construction']})"
        efs = sorted((k for k in r if k.startswith("pgvector_ef")), key=lambda k: r[k]["ef_search"])
        for key, name, flt in (*((k, f"{hnsw}, ef_search {r[k]['ef_search']}", "none") for k in efs),
                               ("pgvector_filtered", hnsw, "1%"),
                               ("faiss_ivf", "FAISS IVF", "none"), ("faiss_ivf_filtered", "FAISS IVF", "1%")):
            m = r[key]
            build = r["hnsw_build_s"] if key.startswith("pgvector") else m["build_s"]
            lines.append(f"| {r['n']:,} | {name} | {flt} | {m['p50_ms']:.1f} | {m['p95_ms']:.1f} | "
                         f"{m['recall_at_10']:.3f} | {build:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.postgres", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--memory", default="3GB", help="the server's shared_buffers")
    parser.add_argument("--ef-search", type=int, nargs="+", default=[40, 100, 200, 400],
                        help="HNSW candidate lists to measure, each on the same index")
    parser.add_argument("--m", type=int, default=HNSW_M, help="HNSW's links per node")
    parser.add_argument("--ef-construction", type=int, default=HNSW_EF_CONSTRUCTION,
                        help="HNSW's candidate list while building")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out-postgres")
    parser.add_argument("--indexers", type=int, default=0, metavar="PHOTOS",
                        help="instead: two indexers on one library of PHOTOS generated photos")
    parser.add_argument("--model", default="toy", help="the generated bundle of --indexers (toy, vit)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.indexers:
        result = indexers(args.indexers, args.model, batch=16)
        (args.out / "indexers.json").write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2), flush=True)
        return 0
    rows = []
    for n in args.sizes:
        rows.append(run(n, args.queries, args.memory, args.ef_search, args.m, args.ef_construction))
        (args.out / "postgres.json").write_text(json.dumps(rows, indent=2))
        (args.out / "postgres.md").write_text(render(rows))
        print(render(rows), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
