"""The full-text index of the words read in photos: terms, matching and replacement, on a real catalog of
each back end (SQLite's FTS5; PostgreSQL's tsvector + ILIKE, revision 0007)."""

from __future__ import annotations

from photoindex.catalog import text
from photoindex.catalog.db import open_catalog
from photoindex.catalog.location import CatalogLocation
from photoindex.catalog.writes import connection
from photoindex.ocr.terms import edit_distance, index_terms, matched_words, parse_query


def line(t: str) -> dict[str, object]:
    return {"text": t, "confidence": 0.99, "box": [[0, 0], [10, 0], [10, 5], [0, 5]]}


def stored(location: CatalogLocation, readings: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    db = open_catalog(location)
    with db.write() as s:
        con = connection(s)
        for digest, lines in readings.items():
            text.store(con, digest, status="text" if lines else "none", engine="test", lines=[line(t) for t in lines])
    return db


def index_rows(db) -> int:  # type: ignore[no-untyped-def]
    """Rows of the full-text index (each of SQLite's two FTS5 tables, or PostgreSQL's terms table)."""
    tables = ("photo_text_terms",) if db.kind == "postgresql" else ("photo_text_words", "photo_text_trigrams")
    with db.reads() as con:
        counts = {con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    assert len(counts) == 1
    return int(counts.pop())


def found(db, query: str) -> list[str]:  # type: ignore[no-untyped-def]
    with db.reads() as con:
        return [h.content_hash for h in text.search(con, parse_query(query), limit=10)]


def test_terms_split_words_and_write_cjk_runs_as_bigrams() -> None:
    assert index_terms("STARBUCKS Receipt 杭州西湖 ＡＢＣ１２３") == "starbucks receipt 杭州 州西 西湖 湖 abc123"
    q = parse_query("西湖 Receipts x")
    assert q.terms == ("西湖", "receipts")  # the single letter is dropped
    assert q.words == '"西湖" AND "receipts"*'


def test_words_match_by_prefix_and_chinese_by_any_substring(catalog_location: CatalogLocation) -> None:
    db = stored(
        catalog_location,
        {
            "a" * 64: ["STARBUCKS RECEIPT 2024", "杭州西湖欢迎光临"],
            "b" * 64: ["Tracking number 1Z999AA1"],
            "c" * 64: ["西安 火车站"],
            "d" * 64: [],
        },
    )
    assert found(db, "starbucks receipt") == ["a" * 64]
    assert found(db, "RECEI") == ["a" * 64]  # a prefix of a word
    assert found(db, "西湖") == ["a" * 64]  # two characters inside a run
    assert found(db, "湖欢迎") == ["a" * 64]
    assert found(db, "西") == ["a" * 64, "c" * 64] or found(db, "西") == ["c" * 64, "a" * 64]
    assert found(db, "tracking number") == ["b" * 64]
    assert found(db, "number tracking") == ["b" * 64]  # every word, in any order
    assert found(db, "bucks") == ["a" * 64]  # inside a word: the trigram table
    assert found(db, "西湖 tracking") == []  # every term must match
    assert found(db, "giraffe") == []


def test_reading_a_content_again_replaces_its_index_rows(catalog_location: CatalogLocation) -> None:
    db = stored(catalog_location, {"a" * 64: ["old sign"]})
    with db.write() as s:
        text.store(connection(s), "a" * 64, status="text", engine="test", lines=[line("new poster")])
    assert found(db, "old") == []
    assert found(db, "poster") == ["a" * 64]
    assert index_rows(db) == 1


def test_matched_words_are_the_words_as_read() -> None:
    terms = parse_query("receipt 西湖").terms
    assert matched_words("STARBUCKS RECEIPTS\n杭州西湖欢迎光临", terms) == ["RECEIPTS", "西湖"]
    assert matched_words("STARBUCKS RECEIPT", ("reciept",)) == []
    assert matched_words("STARBUCKS RECEIPT", ("reciept",), fuzzy=True) == ["RECEIPT"]
    assert edit_distance("receipt", "reciept", 2) == 1
    assert edit_distance("receipt", "recipe", 2) == 2
    assert edit_distance("receipt", "giraffe", 2) == 3


def test_readings_no_photo_holds_are_forgotten_with_their_index_rows(catalog_location: CatalogLocation) -> None:
    db = stored(catalog_location, {"a" * 64: ["old sign"], "b" * 64: []})
    with db.write() as s:
        assert text.forget_unheld(connection(s)) == 2  # no photo holds either content
    with db.reads() as con:
        assert con.execute("SELECT count(*) FROM photo_text").fetchone()[0] == 0
    assert index_rows(db) == 0


def test_misspelt_words_find_their_candidates_and_copies_rebuild_the_index(
    catalog_location: CatalogLocation,
) -> None:
    from photoindex.search.words import find_words

    db = stored(catalog_location, {"a" * 64: ["STARBUCKS RECEIPT 2024"], "b" * 64: ["Tracking number"]})
    with db.reads() as con:
        (hit,) = find_words(con, "reciept", limit=5)
        assert (hit.content_hash, hit.words, hit.how) == ("a" * 64, ("RECEIPT",), "fuzzy")
    with db.write() as s:
        assert text.reindex(connection(s)) == 2  # what `catalog copy` runs on the copy
    assert index_rows(db) == 2 and found(db, "tracking") == ["b" * 64]


def test_accented_latin_words_match_without_their_accents_on_both_back_ends(
    catalog_location: CatalogLocation,
) -> None:
    db = stored(catalog_location, {"a" * 64: ["CAFÉ Zürich"], "b" * 64: ["ありがとう"]})
    assert found(db, "cafe") == ["a" * 64]
    assert found(db, "café zurich") == ["a" * 64]
    assert found(db, "ZÜRICH") == ["a" * 64]
    assert found(db, "ありがとう") == ["b" * 64]  # the voicing mark of が is kept, and matches
