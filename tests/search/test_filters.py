"""Search filters, paging, order, listing without a query and query arithmetic, on generated photos
with real EXIF (dates with UTC offsets, cameras, lenses, GPS in Hangzhou and Paris), through the
real CLI and `run_search` on the toy bundle (docs/search.md)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from conftest import pg_database_url
from helpers import cli, runner, sql

from photoindex.cli.app import app
from photoindex.config import Config, load_config
from photoindex.search import run_search
from photoindex.testing.models import COLOURS
from photoindex.testing.photos import camera_exif, make_photo

HANGZHOU = (30.2741, 120.1551)  # West Lake
PARIS = (48.8584, 2.2945)  # the Eiffel Tower


@dataclass
class Album:
    root: Path
    config: Config
    p: dict[str, Path]


def _photos(root: Path) -> dict[str, Path]:
    iphone = dict(make="Apple", model="iPhone 15 Pro", lens="iPhone 15 Pro back camera 6.86mm f/1.78")
    p = {
        "hz_red": make_photo(root / "china" / "hz_red.jpg", COLOURS["red"], seed=1, exif=camera_exif(
            taken="2024:06:15 18:30:00", offset="+08:00", gps=(*HANGZHOU, 12.5), **iphone)),
        "hz_blue": make_photo(root / "china" / "hz_blue.heic", COLOURS["blue"], seed=2, exif=camera_exif(
            taken="2024:06:20 09:00:00", offset="+08:00", gps=(30.2590, 120.1300), **iphone)),
        "paris_red": make_photo(root / "france" / "paris_red.jpg", COLOURS["red"], seed=3, exif=camera_exif(
            taken="2023:05:01 12:00:00", offset="+02:00", make="Google", model="Pixel 7", gps=PARIS)),
        "paris_blue": make_photo(root / "france" / "paris_blue.png", COLOURS["blue"], seed=4, exif=camera_exif(
            taken="2023:12:31 23:59:00", make="Canon", model="Canon EOS R6", gps=(48.8606, 2.3376))),
        "old_green": make_photo(root / "old" / "old_green.jpg", COLOURS["green"], seed=5, exif=camera_exif(
            datetime_only="2019:01:01 10:00:00", make="Canon", model="Canon EOS R6")),
        "undated": make_photo(root / "old" / "undated.jpg", COLOURS["yellow"], seed=6),
    }
    stamp = datetime(2022, 3, 3, 12, 0).timestamp()
    os.utime(p["undated"], (stamp, stamp))
    # Many red photos with no metadata: a "top k, then filter" search would find none of the above.
    # Their file times lie in 2010, out of the way of the date filters below.
    old = datetime(2010, 1, 1).timestamp()
    for i in range(30):
        red = make_photo(root / "many" / f"red{i:02d}.jpg", COLOURS["red"], size=(64, 48), seed=100 + i)
        os.utime(red, (old, old))
    return p


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def album(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, toy_bundle: Path
) -> Iterator[Album]:
    """One indexed library for the module (indexing is the slow part), on each catalog back end: SQLite with
    FAISS, and PostgreSQL with pgvector, whose filters run in the ranking's SQL (the PostgreSQL run is slow)."""
    tmp = tmp_path_factory.mktemp("filters")
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("PHOTOINDEX_")]:
            mp.delenv(key)
        if request.param == "postgresql":
            mp.setenv("PHOTOINDEX_CATALOG_URL", pg_database_url(request.getfixturevalue("pg_server")))
        mp.setenv("PHOTOINDEX_HOME", str(tmp / "home"))
        mp.setenv("PHOTOINDEX_MODEL_BUNDLE", str(toy_bundle))
        mp.setenv("PHOTOINDEX_INDEX_WORKERS", "1")
        mp.setenv("PHOTOINDEX_SEARCH_USE_DAEMON", "0")
        root = tmp / "Photos"
        p = _photos(root)
        report = cli("index", str(root))
        assert report["failed"] == 0 and report["added"] == 36
        yield Album(root, load_config(), p)


def names(hits: list[dict[str, object]] | list[object]) -> list[str]:
    out = []
    for h in hits:
        path = h["path"] if isinstance(h, dict) else h.path  # type: ignore[attr-defined]
        out.append(Path(str(path)).stem)
    return out


def search(*args: str) -> list[dict[str, object]]:
    hits = cli("search", *args)
    assert isinstance(hits, list)
    return hits


def test_metadata_is_read_at_index_time_and_carried_by_hits(album: Album) -> None:
    rows = {
        Path(r[0]).stem: r[1:]
        for r in sql(album.config, "SELECT path, taken_local, taken_offset, taken_source, lens, gps_alt, "
                                   "place_id IS NOT NULL FROM photos WHERE path NOT LIKE '%/many/%'")
    }
    assert rows["hz_red"] == ("2024-06-15T18:30:00", 480, "exif", "iPhone 15 Pro back camera 6.86mm f/1.78", 12.5, 1)
    assert rows["paris_blue"][:3] == ("2023-12-31T23:59:00", None, "exif")  # no offset recorded: wall clock only
    assert rows["old_green"][:3] == ("2019-01-01T10:00:00", None, "exif-datetime")
    assert rows["undated"][0] == datetime(2022, 3, 3, 12, 0).isoformat() and rows["undated"][2] == "mtime"
    (hit,) = search("--place", "Hangzhou", "--type", "jpeg")
    assert hit["taken_at"] == "2024-06-15T18:30:00+08:00" and hit["taken_source"] == "exif"
    assert hit["camera"] == "Apple iPhone 15 Pro" and hit["lens"].startswith("iPhone 15 Pro back camera")
    assert hit["place"] == "Hangzhou, China" and hit["altitude"] == 12.5
    assert abs(hit["latitude"] - HANGZHOU[0]) < 1e-4 and abs(hit["longitude"] - HANGZHOU[1]) < 1e-4
    assert hit["format"] == "JPEG" and hit["score"] is None  # a listing has no score
    (eiffel,) = search("red", "--place", "Paris", "--type", "jpg")
    assert eiffel["place"] == "Paris, France"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--after", "2024"), {"hz_red", "hz_blue"}),
        (("--after", "2024-06-16"), {"hz_blue"}),
        (("--after", "2011", "--before", "2023"), {"old_green", "undated", "paris_red", "paris_blue"}),
        (("--after", "2011", "--before", "2021"), {"old_green"}),
        (("--after", "2011", "--before", "2022"), {"old_green", "undated"}),  # --before includes its year
        (("--after", "2023-05", "--before", "2023-05"), {"paris_red"}),  # both bounds include their month
        (("--after", "2023-12-31", "--before", "2023-12-31"), {"paris_blue"}),  # the wall-clock day
        (("--camera", "canon"), {"paris_blue", "old_green"}),
        (("--camera", "PIXEL"), {"paris_red"}),
        (("--camera", "apple iphone"), {"hz_red", "hz_blue"}),
        (("--camera", "nikon"), set()),
        (("--place", "Hangzhou"), {"hz_red", "hz_blue"}),
        (("--place", "杭州"), {"hz_red", "hz_blue"}),
        (("--place", "hangchow"), {"hz_red", "hz_blue"}),
        (("--place", "China"), {"hz_red", "hz_blue"}),
        (("--place", "paris"), {"paris_red", "paris_blue"}),
        (("--place", "巴黎"), {"paris_red", "paris_blue"}),
        (("--place", "France"), {"paris_red", "paris_blue"}),
        (("--place", "Tokyo"), set()),
        (("--near", f"{HANGZHOU[0]},{HANGZHOU[1]},1"), {"hz_red"}),
        (("--near", f"{HANGZHOU[0]},{HANGZHOU[1]},10"), {"hz_red", "hz_blue"}),
        (("--near", "48.86,2.32,5"), {"paris_red", "paris_blue"}),
        (("--near", "-33.86,151.2,500"), set()),
        (("--type", "heic"), {"hz_blue"}),
        (("--type", "png", "--type", "heic"), {"hz_blue", "paris_blue"}),
        (("--type", "png,heic"), {"hz_blue", "paris_blue"}),
        (("--folder", "FOLDER/old"), {"old_green", "undated"}),
        # Combinations: every filter must pass.
        (("--place", "Paris", "--camera", "canon"), {"paris_blue"}),
        (("--after", "2023", "--type", "jpeg", "--camera", "i"), {"hz_red", "paris_red"}),
        (("--folder", "FOLDER/china", "--after", "2024-06-16"), {"hz_blue"}),
    ],
)
def test_each_filter_and_combinations_list_the_photos_that_pass(album: Album, args: tuple[str, ...],
                                                                 expected: set[str]) -> None:
    args = tuple(a.replace("FOLDER", str(album.root)) for a in args)
    listed = search(*args, "--limit", "100")
    assert set(names(listed)) == expected
    # The same filters on a text query restrict the vector search: every photo that passes comes back.
    assert set(names(search("red", *args, "--limit", "100"))) == expected


def test_a_filtered_search_returns_the_full_limit_from_the_filtered_photos_only(album: Album) -> None:
    # 30 unfiltered red photos outrank them all; a top-k-then-filter search would return nothing.
    hits = search("red", "--type", "png,heic", "--limit", "2")
    assert names(hits) == ["paris_blue", "hz_blue"] or names(hits) == ["hz_blue", "paris_blue"]
    assert names(search("red", "--place", "France", "--limit", "2"))[0] == "paris_red"
    limited = search("red", "--after", "2019", "--limit", "3")
    assert len(limited) == 3 and names(limited)[0] in {"hz_red", "paris_red"}
    assert names(search("red", "--folder", str(album.root / "china"), "--limit", "1")) == ["hz_red"]
    # --min-score still applies inside the filter.
    assert names(search("red", "--after", "2019", "--min-score", "0.9", "--limit", "10")) in (
        ["hz_red", "paris_red"], ["paris_red", "hz_red"])


def test_listing_without_a_query_is_newest_first_and_pages(album: Album) -> None:
    dated = search("--after", "2011", "--limit", "100")
    assert names(dated) == ["hz_blue", "hz_red", "paris_blue", "paris_red", "undated", "old_green"]
    pages = [search("--after", "2011", "--limit", "2", "--offset", str(o)) for o in (0, 2, 4, 6)]
    assert [n for page in pages for n in names(page)] == names(dated) and pages[-1] == []
    assert names(search("--camera", "canon"))[-1] == "old_green" and len(search("--folder", str(album.root))) == 20
    # A query sorted by date: the same order, with scores.
    by_date = search("blue", "--after", "2011", "--sort", "date", "--limit", "3")
    assert names(by_date) == ["hz_blue", "hz_red", "paris_blue"] and all(h["score"] is not None for h in by_date)
    # Paging by score: pages are disjoint and add up to the whole.
    whole = names(search("red", "--limit", "12"))
    assert names(search("red", "--limit", "6")) + names(search("red", "--limit", "6", "--offset", "6")) == whole


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--after", "2024-13"), "--after '2024-13': no such month"),
        (("--before", "2023-02-29"), "--before '2023-02-29': no such day"),
        (("--after", "June"), "--after 'June': not a year, a month or a day"),
        (("--after", "2024", "--before", "2023"), "--after 2024 --before 2023: no day is in both"),
        (("--near", "200,0"), "--near: latitude 200 is not between -90 and 90"),
        (("--near", "0,181"), "--near: longitude 181 is not between -180 and 180"),
        (("--near", "1,2,0"), "--near: distance 0 km"),
        (("--near", "paris"), "--near 'paris': not LAT,LON or LAT,LON,KM"),
        (("--type", "exe"), "--type 'exe': not an image type"),
        (("--camera", " "), "--camera: empty"),
        (("red", "--sort", "size"), "--sort 'size': not an order"),
        (("red + ",), "a '+' or '-' has nothing beside it"),
        (("0:red",), "weight 0 is not above 0"),
        (("--", "- red"), "the query only subtracts"),
        (("red + - blue",), "query 'red + - blue': two operators in a row before 'blue'"),
        (("red", "--limit", "10001"), "--limit 10001: at most 10000 results at a time"),
        (("red", "--folder", ""), "--folder: empty"),
        (("--folder", " "), "--folder: empty"),
    ],
)
def test_bad_filter_values_are_errors_naming_the_option(album: Album, args: tuple[str, ...], message: str) -> None:
    result = runner.invoke(app, ["search", *args])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr and "hint: " in result.stderr


@pytest.mark.parametrize(
    ("place", "hint"),
    [
        ("Hangzou", "did you mean 'hangzhou' (Hangzhou, China)?"),  # a typo: the close spelling the library has
        ("Hangzh", "(Hangzhou, China)"),  # a prefix
        ("Tokyo", "places come from the photos' GPS positions"),  # nothing close: where places come from
    ],
)
def test_an_unknown_place_says_so_and_suggests_the_library_s_close_names(album: Album, place: str, hint: str) -> None:
    for args in (("--place", place), ("red", "--place", place)):
        result = runner.invoke(app, ["search", *args])
        assert result.exit_code == 0, result.output
        assert f"no matching photos: --place '{place}': no photo was taken in a place of that name" in result.stderr
        assert hint in result.stderr, result.stderr


def test_query_arithmetic_weights_and_example_photos(album: Album, monkeypatch: pytest.MonkeyPatch) -> None:
    def top(text: str, **options: object) -> str:
        return names(run_search(album.config, text=text, limit=1, **options))[0]  # type: ignore[arg-type]

    assert "blue" in top("red + blue - red")
    assert "red" in top("2:red + blue") and "blue" in top("red + 2:blue")
    assert top("red + green - red").startswith("old_green")
    # A term naming an image file is that photo's vector; relative paths are the caller's folder.
    monkeypatch.chdir(album.root / "old")
    assert top("./old_green.jpg") == "old_green"
    assert "blue" in top("./old_green.jpg + 3:blue - green")
    hits = run_search(album.config, images=[album.p["old_green"], album.p["undated"]], limit=2)
    assert set(names(hits)) == {"old_green", "undated"}
    mixed = [album.p["hz_red"], album.p["hz_blue"]]
    assert "red" in names(run_search(album.config, images=mixed, not_images=[album.p["paris_blue"]], limit=1))[0]
    assert "blue" in names(run_search(album.config, images=mixed, not_images=[album.p["paris_red"]], limit=1))[0]
    with pytest.raises(Exception, match="cancel out"):
        run_search(album.config, text="red - red")


def test_older_photos_get_their_metadata_on_the_next_scan_without_encoding(album: Album) -> None:
    before = sql(album.config, "SELECT path, taken_local, taken_source, lens, place_id FROM photos ORDER BY path")
    # As revision 0004 leaves the rows of an older catalog.
    sql(album.config, "UPDATE photos SET meta_version = 0, taken_local = NULL, taken_offset = NULL, "
                      "taken_source = NULL, lens = NULL, gps_alt = NULL, place_id = NULL")
    assert search("--place", "Hangzhou") == []
    report = cli("index", str(album.root))
    assert report["metadata_backfilled"] == 36 and report["encoded"] == 0 and report["unchanged"] == 36
    after = sql(album.config, "SELECT path, taken_local, taken_source, lens, place_id FROM photos ORDER BY path")
    assert after == before
    assert set(names(search("--place", "杭州"))) == {"hz_red", "hz_blue"}
    assert cli("index", str(album.root))["metadata_backfilled"] == 0


@pytest.mark.parametrize(
    "options",
    [{"after": ""}, {"before": ""}, {"types": [""]}, {"types": [", "]}, {"types": ""}],
)
def test_an_empty_filter_option_is_an_error_not_no_filter(options: dict[str, object]) -> None:
    """`--after ''` or `--type ''` (an unset shell variable) must not quietly search everything."""
    from photoindex.search.filters import FilterError, Filters

    with pytest.raises(FilterError):
        Filters.from_options(**options)  # type: ignore[arg-type]


# The index each filter kind must enter by (docs/search.md, "Filters").
ENTRY_INDEX = {
    "camera": (dict(camera="canon"), "ix_photos_camera_make_camera_model"),
    "month": (dict(after="2024-06", before="2024-06"), "ix_photos_taken_local"),
    "near": (dict(near=f"{HANGZHOU[0]},{HANGZHOU[1]},10"), "ix_photos_gps_lat_gps_lon"),
    "place": (dict(place="Paris"), "ix_photos_place_id"),
    "folder": (dict(folder="FOLDER/old"), "sqlite_autoindex_photos_1"),  # the unique path index
    "type": (dict(types="heic"), "ix_photos_format"),
}


@pytest.mark.parametrize("kind", sorted(ENTRY_INDEX))
def test_every_filter_kind_enters_by_its_index_and_the_hits_by_their_vector_ids(album: Album, kind: str) -> None:
    """No statement of a filtered search walks the photos or the vectors: at 100,000 photos a walk costs
    ~100 ms where the index costs a few (SQLite has no statistics here to plan by)."""
    if album.config.catalog_location.is_postgres:
        pytest.skip("SQLite's query plans (PostgreSQL plans by its own statistics; filters run in the ranking's SQL)")
    from photoindex.catalog import reads
    from photoindex.library import open_library
    from photoindex.search import Filters

    options, index = ENTRY_INDEX[kind]
    options = {k: v.replace("FOLDER", str(album.root)) for k, v in options.items()}
    filters = Filters.from_options(**options)  # type: ignore[arg-type]
    statements: list[str] = []
    with open_library(album.config) as lib, lib.db.reads() as con:
        con.set_trace_callback(statements.append)
        try:
            ids = reads.vector_ids_matching(con, lib.model_id, filters)
            id_statements = list(statements)
            statements.clear()
            photos = reads.live_photos_for_vectors(con, lib.model_id, ids.tolist(), filters=filters)
            hit_statements = list(statements)
        finally:
            con.set_trace_callback(None)

        def plan(statement: str) -> list[str]:
            return [row[-1] for row in con.execute("EXPLAIN QUERY PLAN " + statement)]

        assert len(ids) and sum(len(p) for p in photos.values()) >= len(ids)
        for statement in id_statements + hit_statements:
            steps = plan(statement)
            assert not [s for s in steps if s.split()[:2] in (["SCAN", "p"], ["SCAN", "v"], ["SCAN", "photos"])], (
                statement, steps)
        (ids_sql,) = [s for s in id_statements if "DISTINCT v.id" in s]
        steps = plan(ids_sql)
        first = next(s for s in steps if s.startswith(("SEARCH p", "SEARCH v")))  # after MULTI-INDEX OR, if any
        assert first.startswith("SEARCH p USING INDEX " + index), steps
        (hits_sql,) = [s for s in hit_statements if "v.id IN (" in s]
        steps = plan(hits_sql)
        assert steps[0] == "SEARCH v USING INTEGER PRIMARY KEY (rowid=?)", steps
        assert steps[1].startswith("SEARCH p USING INDEX ix_photos_content_hash"), steps


def test_the_cameras_skip_scan_finds_every_pair_the_photos_have(tmp_path: Path) -> None:
    import sqlite3

    from photoindex.catalog import reads

    con = sqlite3.connect(tmp_path / "c.db")
    con.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, camera_make TEXT, camera_model TEXT)")
    con.execute("CREATE INDEX ix_photos_camera_make_camera_model ON photos (camera_make, camera_model)")
    rows = [("Canon", "EOS R6"), ("Canon", "EOS R6"), ("Canon", None), ("Canon", "A1"), (None, "Pixel 7"),
            (None, None), ("Apple", "iPhone 15 Pro"), ("apple", "iPhone"), ("Zeiss", None), (None, "Nokia")]
    con.executemany("INSERT INTO photos (camera_make, camera_model) VALUES (?, ?)", rows * 3)
    expected = sorted({r for r in rows if r != (None, None)}, key=lambda r: (r[0] or "", r[0] is not None, r[1] or ""))
    found = reads.cameras(con)
    assert sorted(found, key=lambda r: (r[0] or "", r[0] is not None, r[1] or "")) == expected
    assert len(found) == len(expected)  # each pair once
    con.execute("DELETE FROM photos")
    assert reads.cameras(con) == []
