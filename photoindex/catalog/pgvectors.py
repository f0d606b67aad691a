"""Vectors on PostgreSQL: one HNSW index per model, and nearest-neighbour search in SQL with its filters.

`vectors.vector` has no fixed dimension (models differ); each model gets a partial HNSW index on
its rows cast to its dimension, with the inner-product operator class: stored vectors are unit
vectors, so the inner product is the cosine score FAISS gives (docs/scale.md). A query must spell
the index's expression and predicate exactly, so the model id and dimension are written into the
SQL as literals rather than bound (a generic plan could not match a bound predicate).

HNSW's candidate list (`hnsw.ef_search`) bounds both its recall and how many rows it can return, so
it grows with `k`: at least `[catalog] hnsw_ef_search`, and EF_PER_RESULT candidates per row asked
for (docs/scale.md has the recall measured at each). HNSW filters after finding its candidates, so
a selective filter could leave fewer than `k`. A filtered search therefore counts its candidates
first: up to EXACT_LIMIT it ranks them exactly (a few ms at 10,000); above it, pgvector 0.8's
iterative scan (`hnsw.iterative_scan = relaxed_order`) keeps walking the graph until `k` pass, and
an older pgvector (0.6 in the pgserver wheel) gets a wider ef_search; either falls back to the
exact ranking if it still comes back short.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

EF_SEARCH = 100  # the default floor of HNSW's candidate list, `[catalog] hnsw_ef_search` (pgvector's own is 40)
EF_PER_RESULT = 10  # candidates per row asked for: a top-26 (a 10-hit search) walks 260 (docs/scale.md)
EF_SEARCH_MAX = 1000  # pgvector's ceiling
EXACT_LIMIT = 50_000  # a filter matching at most this many vectors is ranked exactly
# The graph: pgvector's defaults (m 16, ef_construction 64), measured in docs/scale.md: recall@10 0.997 at
# 100k from ef_search alone, but at 1M it flattens at ~0.91 however wide the walk; a larger graph (more
# build time) is the measured next step there, not taken yet.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
ITERATIVE_SCAN = (0, 8, 0)  # the first pgvector with `hnsw.iterative_scan`
_VERSIONS: dict[str, tuple[int, ...]] = {}  # pgvector's version per server (host, port, database)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def index_name(model_id: str) -> str:
    """The name of the model's HNSW index (a hash: model ids may hold any character)."""
    return "ix_vectors_hnsw_" + hashlib.sha1(model_id.encode()).hexdigest()[:16]


def ef_search_for(k: int, floor: int = EF_SEARCH) -> int:
    """HNSW's candidate list for a top-`k`: at least `floor`, EF_PER_RESULT per row, at most pgvector's ceiling."""
    return min(EF_SEARCH_MAX, max(floor, k * EF_PER_RESULT, k))


def vector_version(con: Any) -> tuple[int, ...]:
    """The pgvector extension's version on `con`'s server (asked once per server and database)."""
    info = con.connection.info
    key = f"{info.host}:{info.port}/{info.dbname}"
    found = _VERSIONS.get(key)
    if found is None:
        row = con.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        found = tuple(int(part) for part in re.findall(r"\d+", str(row[0]))[:3]) if row else (0,)
        _VERSIONS[key] = found
    return found


def ensure_model_index(
    session: Session, model_id: str, dim: int, *, m: int = HNSW_M, ef_construction: int = HNSW_EF_CONSTRUCTION
) -> None:
    """Create the model's HNSW index (inner product on `vector::vector(dim)`) if it does not exist yet.

    Called in the transaction that stores the model's first vector; the advisory lock keeps two
    indexers storing first vectors at once from racing on the name.
    """
    from sqlalchemy import text

    name = index_name(model_id)
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})
    session.execute(
        text(
            f"CREATE INDEX IF NOT EXISTS {name} ON vectors USING hnsw ((vector::vector({int(dim)})) vector_ip_ops) "
            f"WITH (m = {int(m)}, ef_construction = {int(ef_construction)}) WHERE model_id = {_literal(model_id)}"
        )
    )


def nearest(
    con: Any,
    model_id: str,
    dim: int,
    query: np.ndarray,
    k: int,
    *,
    where: tuple[str, tuple[object, ...]] | None = None,
    ef_search: int = EF_SEARCH,
    ef_fixed: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The `k` vectors with the largest inner product with `query` (scores float32, ids int64), best first.

    `con` is the `PgReads` of a read transaction; `where` (`reads.filter_clause`: SQL over the
    photos alias `p`) keeps only vectors held by an indexed photo passing it, in the same statement.
    `ef_search` is the floor of HNSW's candidate list (`ef_search_for`); `ef_fixed` sets it as is
    (benchmarks compare values).
    """
    vec = f"v.vector::vector({int(dim)})"
    typed = f"CAST(? AS vector({int(dim)}))"
    q = np.asarray(query, dtype=np.float32).reshape(-1)
    model = _literal(model_id)
    ef = ef_search_for(k, ef_search) if ef_fixed is None else ef_fixed
    iterative = False
    held = ""
    params: tuple[object, ...] = ()
    if where is not None:
        held = (
            " AND EXISTS (SELECT 1 FROM photos AS p WHERE p.content_hash = v.content_hash"
            f" AND p.status = 'indexed' AND {where[0]})"
        )
        params = where[1]
        # Photos passing the filter (through its indexes) bound the vectors that can: copies share one.
        count = con.execute(f"SELECT count(*) FROM photos AS p WHERE p.status = 'indexed' AND {where[0]}", params)
        count = count.fetchone()[0]
        if count == 0:
            return _result([])
        if count <= EXACT_LIMIT:
            return _exact(con, model, vec, typed, where, q, k)
        iterative = vector_version(con) >= ITERATIVE_SCAN
        if not iterative:  # more than EXACT_LIMIT pass: the widest list finds k of them unless they are rare
            ef = EF_SEARCH_MAX
    if k > EF_SEARCH_MAX:  # HNSW returns at most ef_search rows: this many (a date-sorted page) are ranked exactly
        return _exact(con, model, vec, typed, where, q, k)
    con.execute(f"SET LOCAL hnsw.ef_search = {min(ef, EF_SEARCH_MAX)}")
    sql = f"SELECT v.id, ({vec} <#> {typed}) AS d FROM vectors AS v WHERE v.model_id = {model}{held} ORDER BY d LIMIT ?"
    if iterative:
        # relaxed_order may hand rows back slightly out of order: sort what it found (pgvector's README).
        con.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        sql = f"WITH r AS MATERIALIZED ({sql}) SELECT id, d FROM r ORDER BY d"
    rows = con.execute(sql, (q, *params, k)).fetchall()
    if held and len(rows) < k:  # the filter left HNSW's candidates short: rank the filtered set exactly
        return _exact(con, model, vec, typed, where, q, k)
    return _result(rows)


def _exact(
    con: Any, model: str, vec: str, typed: str, where: tuple[str, tuple[object, ...]] | None, q: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rank the vectors of the photos passing `where` (every vector of the model without it) exactly.

    The filtered photos come first (their indexes), their vectors by the (model, hash) key; the
    `OFFSET 0` fence keeps the ordering off the HNSW index, which would filter after its candidates.
    """
    if where is None:
        sql = (
            f"SELECT id, d FROM (SELECT v.id, ({vec} <#> {typed}) AS d FROM vectors AS v "
            f"WHERE v.model_id = {model} OFFSET 0) AS r ORDER BY d LIMIT ?"
        )
        params: tuple[object, ...] = (q, k)
    else:
        sql = (
            f"SELECT id, d FROM (SELECT v.id, ({vec} <#> {typed}) AS d FROM vectors AS v WHERE v.model_id = {model} "
            f"AND v.content_hash IN (SELECT p.content_hash FROM photos AS p WHERE p.status = 'indexed' AND {where[0]}) "
            "OFFSET 0) AS r ORDER BY d LIMIT ?"
        )
        params = (q, *where[1], k)
    return _result(con.execute(sql, params).fetchall())


def _result(rows: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    # `<#>` is the negative inner product.
    scores = np.fromiter((-float(r[1]) for r in rows), dtype=np.float32, count=len(rows))
    return scores, ids
