"""Claims on reading photos' text (OCR) on a shared PostgreSQL catalog (a real pgserver): two indexers never
hold one content at once, a content read since it was listed is not claimed, a dead indexer's claim runs out,
and storing a reading ends its claim (catalog/text.py `claim`, revision 0008)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from photoindex.catalog import text
from photoindex.catalog import writes as catalog
from photoindex.catalog.db import Database, open_catalog
from photoindex.catalog.location import CatalogLocation
from photoindex.catalog.writes import connection

MODEL = "toy"
HASHES = [c * 64 for c in "abcd"]


@pytest.fixture
def db(pg_url: str, tmp_path: Path) -> Iterator[Database]:
    """A shared catalog with four indexed contents, none read yet."""
    db = open_catalog(CatalogLocation(url=pg_url))
    with db.write() as s:
        root = catalog.add_root(s, tmp_path)
        rng = np.random.default_rng(0)
        catalog.add_vectors(s, MODEL, [(h, rng.standard_normal(8).astype(np.float32)) for h in HASHES])
        for i, h in enumerate(HASHES):
            catalog.store_indexed(s, root_id=root.id, path=tmp_path / f"{i}.jpg", size=1, mtime_ns=1,
                                  content_hash=h, info=None)
    yield db
    db.close()


def listed(db: Database) -> list[text.Waiting]:
    with db.reads() as con:
        return sorted(text.waiting(con, MODEL, include_skipped=False, limit=10), key=lambda w: w.content_hash)


def claims(db: Database) -> dict[str, str]:
    with db.reads() as con:
        return dict(con.execute("SELECT content_hash, claimed_by FROM text_claims").fetchall())


def test_two_indexers_claiming_at_once_never_hold_one_content(db: Database) -> None:
    waiting = listed(db)
    assert [w.content_hash for w in waiting] == HASHES
    got: dict[str, set[str]] = {}
    with db.write() as s:
        # A claims the first two and has not committed when B asks for all four: B waits for A's
        # transaction on the two A holds, then finds them taken.
        got["a"] = text.claim(connection(s), waiting[:2], "a", lease_seconds=600)

        def other() -> None:
            with db.write() as t:
                got["b"] = text.claim(connection(t), waiting, "b", lease_seconds=600)

        b = threading.Thread(target=other)
        b.start()
    b.join()
    assert got == {"a": set(HASHES[:2]), "b": set(HASHES[2:])}
    assert claims(db) == {**dict.fromkeys(HASHES[:2], "a"), **dict.fromkeys(HASHES[2:], "b")}


def test_a_content_read_since_it_was_listed_is_not_claimed_and_a_reading_ends_the_claim(db: Database) -> None:
    waiting = listed(db)
    with db.write() as s:  # another machine reads the first content (its claim ends with the reading)
        assert text.claim(connection(s), waiting[:1], "other", lease_seconds=600) == {HASHES[0]}
        text.store(connection(s), HASHES[0], status="none", engine="test")
    assert claims(db) == {}
    with db.write() as s:  # this machine's listing is older than that reading
        held = text.claim(connection(s), waiting, "me", lease_seconds=600)
    assert held == set(HASHES[1:])
    assert claims(db) == dict.fromkeys(HASHES[1:], "me")
    assert [w.content_hash for w in listed(db)] == HASHES[1:]  # what waits now


def test_a_dead_indexers_claim_runs_out_and_a_released_one_is_free_at_once(db: Database) -> None:
    waiting = listed(db)
    with db.write() as s:
        assert text.claim(connection(s), waiting[:1], "dead", lease_seconds=0) == {HASHES[0]}  # lease over
        assert text.claim(connection(s), waiting[1:2], "alive", lease_seconds=600) == {HASHES[1]}
    with db.write() as s:
        held = text.claim(connection(s), waiting, "next", lease_seconds=600)
    assert held == {HASHES[0], HASHES[2], HASHES[3]}  # the live lease is respected
    with db.write() as s:
        text.release(connection(s), [HASHES[1]], "somebody-else")  # only the holder releases
        text.release(connection(s), [HASHES[1]], "alive")
    with db.write() as s:
        assert text.claim(connection(s), waiting[1:2], "next", lease_seconds=600) == {HASHES[1]}
