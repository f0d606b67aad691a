"""benchmarks/web.py keeps the page stage's big catalog between runs: filled once, reused while it
is complete and asked for with the same size, bundle and thumbnail size, filled again otherwise."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest

from benchmarks.web import big_catalog
from photoindex.config import Config

pytestmark = pytest.mark.slow  # three fills of a real catalog with thumbnails: ~30 s on a loaded machine


def _photos(config: Config) -> int:
    with sqlite3.connect(config.home / "photoindex.db") as con:
        return int(con.execute("SELECT count(*) FROM photos").fetchone()[0])


def _thumbnails(config: Config) -> list[str]:
    return sorted(f"{p.parent.parent.name}/{p.name}" for p in (config.home / "cache" / "thumbnails").rglob("*.jpg"))


def test_a_complete_catalog_is_reused_and_any_other_filled_again(config: Config) -> None:
    assert big_catalog(config, 30) is False
    assert _photos(config) == 30 and len(_thumbnails(config)) == 30
    stamp = config.home / "web-catalog.json"
    made = stamp.stat().st_mtime_ns

    assert big_catalog(config, 30) is True  # reused: nothing written again
    assert stamp.stat().st_mtime_ns == made and _photos(config) == 30

    stamp.unlink()  # as if killed after the rows, before the stamp: filled from nothing, not added to
    assert big_catalog(config, 30) is False
    assert _photos(config) == 30

    assert big_catalog(config, 40) is False  # another size
    assert _photos(config) == 40

    smaller = dataclasses.replace(config, thumbnails=dataclasses.replace(config.thumbnails, size=160))
    assert big_catalog(smaller, 40) is False  # another thumbnail size: the old ones are gone
    assert {t.split("/")[0] for t in _thumbnails(config)} == {"160"} and len(_thumbnails(config)) == 40
    assert big_catalog(smaller, 40, fresh=True) is False
    assert _photos(config) == 40
