"""The words read in photos (OCR) in the catalog: what waits to be read, storing what was read, and the
full-text search over it, in plain SQL on a `sqlite3` connection (the search path never imports SQLAlchemy).

Text is keyed by content hash, like vectors (docs/architecture.md, invariant 6): copies share one reading and
a changed photo, whose hash is new, is read again. Writes run inside the caller's write
transaction (`writes.connection(session)`); one photo's row and its two FTS5 rows commit together,
so a `kill -9` leaves either all three or none (docs/ocr.md).

On PostgreSQL (a `PgReads` connection) the same functions use revision 0007's `photo_text_terms`:
the terms FTS5 would index, as a tsvector with positions under a GIN index, matched with a tsquery
(a CJK run as the phrase of its bigrams) and ranked by ts_rank; substrings and a misspelling's
candidates are ILIKE over the text (docs/scale.md, "The words read in photos").
"""

from __future__ import annotations

import json
import sqlite3
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from photoindex.catalog.reads import PHOTO_COLUMNS, Photo, filter_clause, matrix, photo
from photoindex.ocr.terms import WordsQuery, fuzzy_candidates_query, index_terms, is_cjk

if TYPE_CHECKING:
    from photoindex.search.filters import Filters

_IN_CHUNK = 500
_TSVECTOR_MAX_POSITION = 16383  # PostgreSQL's largest lexeme position


def _pg(con: sqlite3.Connection) -> bool:
    """Whether `con` is a PostgreSQL catalog's `PgReads` (which says so) rather than sqlite3."""
    return getattr(con, "dialect", "sqlite") == "postgresql"


def _lexeme(term: str) -> str:
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


def _unaccented(term: str) -> str:
    """`term` without the diacritics of its Latin letters ("café" -> "cafe"), as SQLite's FTS5 tables fold
    them (`remove_diacritics 2`, migration 0005), so both back ends match the same words; marks on other
    scripts (Japanese voicing marks) are kept."""
    if term.isascii():
        return term
    out: list[str] = []
    for ch in unicodedata.normalize("NFD", term):
        if unicodedata.combining(ch) and out and out[-1] < "\u0250":  # after a Latin letter
            continue
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


def pg_terms(text: str) -> str:
    """A text's terms (`index_terms`) as a tsvector literal with positions, so CJK bigrams match as phrases."""
    positions: dict[str, list[int]] = {}
    for i, term in enumerate((t for t in index_terms(text).split(" ") if t), 1):
        positions.setdefault(_unaccented(term), []).append(min(i, _TSVECTOR_MAX_POSITION))
    return " ".join(f"{_lexeme(t)}:{','.join(map(str, p))}" for t, p in positions.items())


def pg_query(query: WordsQuery) -> str:
    """A words query as a tsquery literal: every term (AND), words by prefix, a CJK run as its bigrams' phrase."""
    parts = []
    for t in query.terms:
        grams = [t[i : i + 2] for i in range(len(t) - 1)] if is_cjk(t) else []
        if len(grams) > 1:
            parts.append("(" + " <-> ".join(_lexeme(g) for g in grams) + ")")
        elif grams:
            parts.append(_lexeme(grams[0]))
        else:  # a word, or one CJK character: the start of a bigram or a run's last character
            parts.append(_lexeme(_unaccented(t)) + ":*")
    return " & ".join(parts)


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass(frozen=True, slots=True)
class Waiting:
    """A content to read: its hash, one indexed photo that holds it, and its CLIP vector (for the gate)."""

    content_hash: str
    path: str
    vector: bytes
    dim: int
    skipped_before: bool  # the gate skipped it under `gate = "clip"`; `gate = "all"` reads it now
    outdated: bool = False  # read before by other OCR models: read again, after every photo never read
    reading: int | None = None  # the id of its reading when listed (None: never read), for `claim`

    def unit_vector(self) -> object:
        """The stored vector as float32 [dim]."""
        return matrix([self.vector], self.dim)[0]


@dataclass(frozen=True, slots=True)
class TextCounts:
    """What the OCR pass has done for a model's indexed content."""

    read: int  # contents read (with or without text)
    with_text: int
    skipped: int  # judged not worth reading by the gate
    failed: int
    waiting: int  # indexed contents with a vector and nothing read yet
    outdated: int = 0  # read (or failed) with other OCR models than the current ones: to be read again

    def to_json(self) -> dict[str, int]:
        """The object shown by `status --json` and `index --json`."""
        return {
            "read": self.read, "with_text": self.with_text, "skipped": self.skipped,
            "failed": self.failed, "waiting": self.waiting, "outdated": self.outdated,
        }


# A reading is current when its engine is the OCR models' id or starts with it and "/" (a runtime suffix such
# as "/npu": the same models). Skips are the CLIP gate's, not the OCR models': a new OCR model keeps them.
_OUTDATED = (
    "t.status <> 'skipped' AND t.engine <> :engine AND substr(t.engine, 1, length(:engine) + 1) <> :engine || '/'"
)
_LIVE = "EXISTS (SELECT 1 FROM photos AS p WHERE p.content_hash = v.content_hash AND p.status = 'indexed')"


def _skipped_sql(include_skipped: bool, threshold: float | None) -> str:
    """The skips to judge again: all of them (`gate = "all"`), or those whose stored gate score reaches the
    current threshold (it was lowered since), or none."""
    if include_skipped:
        return " OR t.status = 'skipped'"
    if threshold is not None:
        return " OR (t.status = 'skipped' AND t.gate >= :threshold)"
    return ""


def _waiting_sql(include_skipped: bool, engine: str | None, threshold: float | None = None) -> str:
    """FROM/WHERE of the contents to read: never read (or skipped: all under `gate = "all"`, those reaching the
    `threshold` under the CLIP gate), and with `engine` (the current OCR models' id) those read by other models."""
    skipped = _skipped_sql(include_skipped, threshold)
    outdated = f" OR ({_OUTDATED})" if engine is not None else ""
    return (
        "FROM vectors AS v LEFT JOIN photo_text AS t ON t.content_hash = v.content_hash "
        f"WHERE v.model_id = :model AND (t.id IS NULL{skipped}{outdated}) AND {_LIVE}"
    )


def waiting(
    con: sqlite3.Connection,
    model_id: str,
    *,
    include_skipped: bool,
    limit: int,
    engine: str | None = None,
    threshold: float | None = None,
) -> list[Waiting]:
    """Up to `limit` indexed contents with a stored vector and no reading, the newest vectors first; with
    `engine` (the current OCR models' id), then those read by other OCR models (docs/ocr.md, "New OCR models");
    with `threshold` (the CLIP gate's), skips whose stored score reaches it are read too."""
    rows = con.execute(
        f"SELECT v.content_hash, v.vector, v.dim, t.status, "
        "(SELECT p.path FROM photos AS p WHERE p.content_hash = v.content_hash AND p.status = 'indexed' "
        "ORDER BY p.path LIMIT 1), "
        "t.status IS NOT NULL AND t.status <> 'skipped' AS outdated, t.id "
        f"{_waiting_sql(include_skipped, engine, threshold)} ORDER BY outdated, v.id DESC LIMIT :limit",
        {"model": model_id, "engine": engine, "threshold": threshold, "limit": limit},
    ).fetchall()
    return [Waiting(r[0], r[4], r[1], int(r[2]), r[3] == "skipped", bool(r[5]), r[6]) for r in rows]


def claim(
    con: sqlite3.Connection, items: Sequence[Waiting], worker: str, *, lease_seconds: float
) -> set[str]:
    """The contents of `items` that `worker` now holds for reading, on a shared (PostgreSQL) catalog, until
    `lease_seconds` from now; call it in a write transaction of its own.

    A content is held by one indexer at a time (the claim's primary key: a second indexer's insert
    waits for the first's transaction, then finds the row and gets nothing), and only while it still
    waits as listed: one another indexer read since `waiting` listed it (its reading changed) is left
    alone. Storing the reading (`store`) ends the claim; an indexer that dies leaves it to run out,
    and then it is claimed again (docs/scale.md).
    """
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    until = (now + timedelta(seconds=lease_seconds)).isoformat(sep=" ")
    con.execute("DELETE FROM text_claims WHERE claim_until < ?", (now.isoformat(sep=" "),))
    held: set[str] = set()
    for w in items:
        got = con.execute(
            "INSERT INTO text_claims (content_hash, claimed_by, claim_until) VALUES (?, ?, ?) "
            "ON CONFLICT (content_hash) DO NOTHING RETURNING content_hash",
            (w.content_hash, worker, until),
        ).fetchone()
        if got is None:
            continue  # another indexer reads it
        reading = con.execute("SELECT id FROM photo_text WHERE content_hash = ?", (w.content_hash,)).fetchone()
        if (reading[0] if reading is not None else None) != w.reading:
            con.execute("DELETE FROM text_claims WHERE content_hash = ?", (w.content_hash,))
            continue  # read by another indexer since it was listed
        held.add(w.content_hash)
    return held


def release(con: sqlite3.Connection, content_hashes: Sequence[str], worker: str) -> None:
    """Give back `worker`'s claims on contents it did not read after all (a stop, a file that changed)."""
    for content_hash in content_hashes:
        con.execute(
            "DELETE FROM text_claims WHERE content_hash = ? AND claimed_by = ?", (content_hash, worker)
        )


def counts(
    con: sqlite3.Connection,
    model_id: str,
    *,
    include_skipped: bool,
    engine: str | None = None,
    threshold: float | None = None,
) -> TextCounts:
    """Contents read, with text, skipped, failed and waiting, among the model's indexed ones; with `engine` (the
    current OCR models' id), also how many were read by other OCR models (`outdated`, not in `waiting`); with
    `threshold`, skips whose score reaches it count as waiting, not skipped."""
    by_status = dict.fromkeys(("text", "none", "skipped", "failed"), 0)
    rows = con.execute(
        "SELECT t.status, count(*) FROM photo_text AS t JOIN vectors AS v ON v.content_hash = t.content_hash "
        f"AND v.model_id = ? WHERE {_LIVE.replace('v.content_hash', 't.content_hash')} GROUP BY t.status",
        (model_id,),
    )
    by_status.update({status: int(n) for status, n in rows})
    params = {"model": model_id, "engine": engine, "threshold": threshold}
    pending = int(
        con.execute(f"SELECT count(*) {_waiting_sql(include_skipped, None, threshold)}", params).fetchone()[0]
    )
    judged_again = 0
    if threshold is not None and not include_skipped:
        judged_again = int(
            con.execute(
                "SELECT count(*) FROM vectors AS v JOIN photo_text AS t ON t.content_hash = v.content_hash "
                f"WHERE v.model_id = :model AND t.status = 'skipped' AND t.gate >= :threshold AND {_LIVE}",
                params,
            ).fetchone()[0]
        )
    outdated = 0
    if engine is not None:
        outdated = int(
            con.execute(
                "SELECT count(*) FROM vectors AS v JOIN photo_text AS t ON t.content_hash = v.content_hash "
                f"WHERE v.model_id = :model AND {_OUTDATED} AND {_LIVE}",
                params,
            ).fetchone()[0]
        )
    return TextCounts(
        read=by_status["text"] + by_status["none"],
        with_text=by_status["text"],
        skipped=0 if include_skipped else by_status["skipped"] - judged_again,
        failed=by_status["failed"],
        waiting=pending,
        outdated=outdated,
    )


def store(
    con: sqlite3.Connection,
    content_hash: str,
    *,
    status: str,
    engine: str,
    lines: Sequence[dict[str, object]] = (),
    gate: float | None = None,
    error: str | None = None,
) -> None:
    """Record what was read in one content (replacing an earlier row, e.g. a skip), with its FTS5 rows."""
    text = "\n".join(str(line["text"]) for line in lines) if lines else None
    now = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    if _pg(con):  # machines sharing the catalog may read one content at once: the last reading stays
        con.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (content_hash,))
    old = con.execute("SELECT id FROM photo_text WHERE content_hash = ?", (content_hash,)).fetchone()
    if _pg(con):
        con.execute("DELETE FROM text_claims WHERE content_hash = ?", (content_hash,))  # read: the claim ends
    if old is not None:
        _unindex(con, int(old[0]))
        con.execute("DELETE FROM photo_text WHERE id = ?", (old[0],))
    insert = (
        "INSERT INTO photo_text (content_hash, status, engine, text, lines, gate, error, read_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    )
    values = (
        content_hash, status, engine, text,
        json.dumps(list(lines), ensure_ascii=False) if lines else None, gate, error, now,
    )
    if _pg(con):
        rowid = con.execute(insert + " RETURNING id", values).fetchone()[0]
    else:  # RETURNING needs SQLite 3.35, newer than some systems' Python ships with
        rowid = con.execute(insert, values).lastrowid
    if text:
        _index(con, int(rowid), text)


def _index(con: sqlite3.Connection, rowid: int, text: str) -> None:
    if _pg(con):
        con.execute("INSERT INTO photo_text_terms (id, terms) VALUES (?, CAST(? AS tsvector))", (rowid, pg_terms(text)))
        return
    con.execute("INSERT INTO photo_text_words (rowid, terms) VALUES (?, ?)", (rowid, index_terms(text)))
    con.execute("INSERT INTO photo_text_trigrams (rowid, text) VALUES (?, ?)", (rowid, text))


def _unindex(con: sqlite3.Connection, rowid: int) -> None:
    if _pg(con):
        con.execute("DELETE FROM photo_text_terms WHERE id = ?", (rowid,))
        return
    con.execute("DELETE FROM photo_text_words WHERE rowid = ?", (rowid,))
    con.execute("DELETE FROM photo_text_trigrams WHERE rowid = ?", (rowid,))


def reindex(con: sqlite3.Connection) -> int:
    """Build the full-text index of every stored text afresh (after `catalog copy`); returns how many texts."""
    rows = con.execute("SELECT id, text FROM photo_text WHERE text IS NOT NULL ORDER BY id").fetchall()
    for rowid, body in rows:
        _unindex(con, int(rowid))
        _index(con, int(rowid), str(body))
    return len(rows)


def forget_unheld(con: sqlite3.Connection) -> int:
    """Delete readings of content no photo holds any more (after photos were forgotten); returns how many."""
    ids = [
        int(r[0])
        for r in con.execute(
            "SELECT t.id FROM photo_text AS t WHERE NOT EXISTS "
            "(SELECT 1 FROM photos AS p WHERE p.content_hash = t.content_hash)"
        )
    ]
    for rowid in ids:
        _unindex(con, rowid)
        con.execute("DELETE FROM photo_text WHERE id = ?", (rowid,))
    return len(ids)


@dataclass(frozen=True, slots=True)
class TextHit:
    """A content whose text matched a words query: its rank (0 = best), the text and how it matched."""

    content_hash: str
    rank: int
    text: str
    lines: str | None
    how: str  # "words" (whole words by prefix, CJK substrings), "substring" or "fuzzy"


def search(con: sqlite3.Connection, query: WordsQuery, *, limit: int) -> list[TextHit]:
    """The best `limit` texts for a words query: word matches by BM25, then texts where the terms are only
    substrings (trigrams; OCR often reads two words without the space between them: "HARBORLANTERN")."""
    if query.empty:
        return []
    if _pg(con):
        return _pg_search(con, query, limit=limit)
    out: list[TextHit] = []
    seen: set[str] = set()
    for how, table, column, expression in (
        ("words", "photo_text_words", "terms", query.words),
        ("substring", "photo_text_trigrams", "text", query.trigrams),
    ):
        if not expression or len(out) >= limit:
            continue
        rows = con.execute(
            f"SELECT t.content_hash, t.text, t.lines FROM {table} AS f JOIN photo_text AS t ON t.id = f.rowid "
            f"WHERE {table} MATCH ? ORDER BY bm25({table}) LIMIT ?",
            (f"{column} : ({expression})", limit),
        ).fetchall()
        for r in rows:
            if r[0] not in seen and len(out) < limit:
                seen.add(r[0])
                out.append(TextHit(r[0], len(out), r[1], r[2], how))
    return out


def _pg_search(con: sqlite3.Connection, query: WordsQuery, *, limit: int) -> list[TextHit]:
    """`search` on PostgreSQL: the tsquery on the terms' GIN index by ts_rank, then ILIKE substrings."""
    tsquery = pg_query(query)
    rows = con.execute(
        "SELECT t.content_hash, t.text, t.lines FROM photo_text_terms AS f JOIN photo_text AS t ON t.id = f.id "
        "WHERE f.terms @@ CAST(? AS tsquery) ORDER BY ts_rank(f.terms, CAST(? AS tsquery)) DESC, t.id LIMIT ?",
        (tsquery, tsquery, limit),
    ).fetchall()
    out = [TextHit(r[0], i, r[1], r[2], "words") for i, r in enumerate(rows)]
    if query.trigrams is not None and len(out) < limit:
        seen = {h.content_hash for h in out}
        substrings = [t for t in query.terms if len(t) >= 3]
        rows = con.execute(
            "SELECT t.content_hash, t.text, t.lines FROM photo_text AS t WHERE t.status = 'text' AND "
            + " AND ".join("t.text ILIKE ?" for _ in substrings)
            + " ORDER BY length(t.text), t.id LIMIT ?",
            (*(_like(t) for t in substrings), limit + len(seen)),
        ).fetchall()
        for r in rows:
            if r[0] not in seen and len(out) < limit:
                seen.add(r[0])
                out.append(TextHit(r[0], len(out), r[1], r[2], "substring"))
    return out


def fuzzy_candidates(con: sqlite3.Connection, term: str, *, limit: int) -> list[tuple[str, str, str | None]]:
    """(content hash, text, lines) of texts sharing the most trigrams with a possibly misspelt word."""
    expression = fuzzy_candidates_query(term)
    if expression is None:
        return []
    if _pg(con):
        grams = [_like(term[i : i + 3]) for i in range(len(term) - 2)]
        return [
            (r[0], r[1], r[2])
            for r in con.execute(
                "SELECT t.content_hash, t.text, t.lines FROM photo_text AS t "
                "WHERE t.status = 'text' AND t.text ILIKE ANY (CAST(? AS text[])) "
                "ORDER BY (SELECT count(*) FROM unnest(CAST(? AS text[])) AS g WHERE t.text ILIKE g) DESC, t.id "
                "LIMIT ?",
                (grams, grams, limit),
            )
        ]
    return [
        (r[0], r[1], r[2])
        for r in con.execute(
            "SELECT t.content_hash, t.text, t.lines FROM photo_text_trigrams AS f JOIN photo_text AS t "
            "ON t.id = f.rowid WHERE photo_text_trigrams MATCH ? ORDER BY bm25(photo_text_trigrams) LIMIT ?",
            (f"text : ({expression})", limit),
        )
    ]


def texts_for_hashes(con: sqlite3.Connection, hashes: Sequence[str]) -> dict[str, tuple[str, str | None]]:
    """(text, lines) of the given contents that have text."""
    out: dict[str, tuple[str, str | None]] = {}
    unique = sorted(set(hashes))
    for start in range(0, len(unique), _IN_CHUNK):
        chunk = unique[start : start + _IN_CHUNK]
        rows = con.execute(
            f"SELECT content_hash, text, lines FROM photo_text WHERE content_hash IN ({', '.join('?' * len(chunk))}) "
            "AND status = 'text'",
            chunk,
        )
        out.update({r[0]: (r[1], r[2]) for r in rows})
    return out


def live_photos_for_hashes(
    con: sqlite3.Connection, hashes: Sequence[str], filters: Filters | None = None
) -> dict[str, list[Photo]]:
    """For each content hash, its indexed photos (only those passing `filters`, when given), by path."""
    where, extra = "", tuple[object, ...]()
    if filters is not None and not filters.empty:
        clause, extra = filter_clause(con, filters, indexed=False)  # the hashes narrow
        where = f" AND {clause}"
    columns = ", ".join(f"p.{c}" for c in PHOTO_COLUMNS)
    found: dict[str, list[Photo]] = {}
    unique = sorted(set(hashes))
    for start in range(0, len(unique), _IN_CHUNK):
        chunk = unique[start : start + _IN_CHUNK]
        rows = con.execute(
            f"SELECT {columns} FROM photos AS p WHERE p.content_hash IN ({', '.join('?' * len(chunk))}) "
            f"AND +p.status = 'indexed'{where} ORDER BY p.path",
            (*chunk, *extra),
        )
        for row in rows:
            ph = photo(row)
            found.setdefault(str(ph.content_hash), []).append(ph)
    return found
