"""Reading the text in photos with the real PP-OCRv4 models (rapidocr-onnxruntime) on generated photos
with real fonts (Noto Sans CJK), through the real catalog, decode workers and CLI.

The toy CLIP bundle cannot tell which photos hold text, so reading quality is tested with
`[ocr] gate = "all"`, and the CLIP gate's wiring with scores computed independently.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import BACKENDS, pg_database_url
from helpers import kill_9_at, ocr_config, sql

from photoindex.config import Config, load_config
from photoindex.testing import COLOURS
from photoindex.testing.photos import make_photo
from photoindex.testing.textphotos import font_path, make_text_photo

pytestmark = [
    pytest.mark.skipif(font_path() is None, reason="needs fonts-noto-cjk (see .ci/run)"),
]




def words_search(config: Config, query: str, limit: int = 5) -> list[dict]:  # type: ignore[type-arg]
    from photoindex.search.query import run_search

    return [h.to_json() for h in run_search(config, words=query, limit=limit)]


def names(hits: list[dict]) -> list[str]:  # type: ignore[type-arg]
    return [Path(h["path"]).name for h in hits]


# The photos of the end-to-end tests: what is written on each, and a query that must find it.
CASES = {
    "english.jpg": (["STARBUCKS RECEIPT 2024"], {}, "starbucks receipt"),
    "chinese.jpg": (["杭州西湖 欢迎光临"], {}, "西湖"),
    "mixed.jpg": (["Tracking number 单号", "1Z999AA10123456784"], {}, "tracking 单号"),
    "rotated.jpg": (["HARBOR LANTERN"], {"angle": 5.0}, "lantern"),
    "small.jpg": (["velvet quarry"], {"size": (4000, 3000), "font_size": 56}, "quarry"),
    "busy.jpg": (["falcon garnet"], {"busy": True, "plate": False, "font_size": 80}, "garnet"),
}


@pytest.fixture(scope="module", params=BACKENDS)
def library(  # type: ignore[no-untyped-def]
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, toy_bundle: Path
) -> tuple[Config, Path, dict]:  # type: ignore[type-arg]
    """One home where every case and two photos without text were indexed and read (`gate = "all"`), with its
    catalog on each back end (SQLite's FTS5, PostgreSQL's tsvector)."""
    from photoindex.indexing.indexer import run_index

    url = pg_database_url(request.getfixturevalue("pg_server")) if request.param == "postgresql" else ""
    base = tmp_path_factory.mktemp("ocr")
    root = base / "Photos"
    for i, (name, (lines, options, _)) in enumerate(CASES.items()):
        make_text_photo(root / name, lines, seed=i, **options)  # type: ignore[arg-type]
    make_photo(root / "plain.jpg", COLOURS["blue"], size=(1200, 900), seed=3)
    make_photo(root / "grass.jpg", COLOURS["green"], size=(4000, 3000), seed=4)
    config = ocr_config(base / "home", toy_bundle, PHOTOINDEX_CATALOG_URL=url)
    report = run_index(config, [root])
    return config, root, report.to_json()


@pytest.mark.slow
def test_the_index_run_reads_every_photo_once_and_reports_it(library) -> None:  # type: ignore[no-untyped-def]
    config, _, report = library
    text = report["text"]
    assert (text["read"], text["with_text"], text["failed"], text["waiting"]) == (8, 6, 0, 0)
    assert report["encoded"] == 8  # CLIP first: every photo was encoded before its text was read
    rows = sql(config, "SELECT status, count(*) FROM photo_text GROUP BY status")
    assert dict(rows) == {"text": 6, "none": 2}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_a_photo_is_found_by_its_words(library, name: str) -> None:  # type: ignore[no-untyped-def]
    config, _, _ = library
    hits = words_search(config, CASES[name][2])
    assert names(hits)[:1] == [name], hits
    assert hits[0]["matched"] == "words" and hits[0]["words"], hits[0]


@pytest.mark.slow
def test_the_cli_searches_words_alone_and_fused_with_clip(library) -> None:  # type: ignore[no-untyped-def]
    """`--words` searches the text only; a description is ranked by CLIP and by its words together (RRF)."""
    from typer.testing import CliRunner

    from photoindex.cli.app import app

    config, _, _ = library
    env = {"PHOTOINDEX_HOME": str(config.home), "PHOTOINDEX_MODEL_BUNDLE": config.model.bundle,
           "PHOTOINDEX_SEARCH_USE_DAEMON": "0", "PHOTOINDEX_CATALOG_URL": config.catalog.url}
    result = CliRunner().invoke(app, ["search", "--words", "tracking number", "--json"], env=env)
    assert result.exit_code == 0, result.output
    (hit,) = json.loads(result.stdout)
    assert Path(hit["path"]).name == "mixed.jpg" and hit["score"] is None
    assert hit["matched"] == "words" and [w.lower() for w in hit["words"]] == ["tracking", "number"]
    result = CliRunner().invoke(app, ["search", "the starbucks receipt", "--json"], env=env)
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert len(hits) == 8  # every photo by CLIP, the one with the words first
    assert Path(hits[0]["path"]).name == "english.jpg" and hits[0]["matched"] == "clip+words"
    assert isinstance(hits[0]["score"], float)
    assert {h["matched"] for h in hits[1:]} == {"clip"} and all(h["words"] == [] for h in hits[1:])
    table = CliRunner().invoke(app, ["search", "--words", "西湖"], env=env)
    assert table.exit_code == 0 and "西湖" in table.stdout  # the matched words are shown beside the path


@pytest.mark.slow
def test_misspellings_within_one_slip_are_found_and_further_ones_are_not(library) -> None:  # type: ignore[no-untyped-def]
    """What the words search tolerates (docs/ocr.md): one slip in words of 4-7 letters, two from 8 on; no
    slip in Chinese, and none in the words part of a description (only `--words` tolerates them)."""
    config, _, _ = library
    assert names(words_search(config, "reciept"))[:1] == ["english.jpg"]  # two letters swapped
    assert names(words_search(config, "starbuks"))[:1] == ["english.jpg"]  # a letter missed
    assert names(words_search(config, "lantenr"))[:1] == ["rotated.jpg"]
    assert names(words_search(config, "strbks")) == []  # three letters missed
    assert names(words_search(config, "西糊")) == []  # a wrong character
    from photoindex.search.query import run_search

    fused = run_search(config, text="reciept", limit=8)
    assert all(h.matched == "clip" for h in fused)


@pytest.mark.slow
def test_photos_without_text_are_never_found_by_words(library) -> None:  # type: ignore[no-untyped-def]
    config, _, _ = library
    for lines, _, query in CASES.values():
        for word in " ".join(lines).split() + [query]:
            assert not {"plain.jpg", "grass.jpg"} & set(names(words_search(config, word, limit=20)))
    assert words_search(config, "giraffe") == []


@pytest.mark.slow
def test_boxes_are_in_the_photos_displayed_pixels(library) -> None:  # type: ignore[no-untyped-def]
    config, root, _ = library
    from photoindex.photos.scanner import content_hash

    digest = content_hash(root / "small.jpg")
    (lines,) = sql(config, "SELECT lines FROM photo_text WHERE content_hash = ?", digest)[0]
    (read,) = json.loads(lines)
    assert read["text"].lower().split() == ["velvet", "quarry"] and read["confidence"] > 0.8
    xs = [p[0] for p in read["box"]]
    ys = [p[1] for p in read["box"]]
    assert 0 <= min(xs) < max(xs) <= 4000 and 0 <= min(ys) < max(ys) <= 3000
    assert max(xs) - min(xs) > 300  # ~360 px of 56 px glyphs on the 4000 px photo (~145 on the 1600 px decode)


@pytest.mark.slow
def test_status_counts_the_photos_read(library) -> None:  # type: ignore[no-untyped-def]
    from photoindex.status import library_status

    config, _, _ = library
    st = library_status(config)
    assert st.text is not None and st.text["enabled"]
    assert (st.text["read"], st.text["with_text"], st.text["waiting"]) == (8, 6, 0)
    assert any(line.startswith("text:      8 photos read (6 with text)") for line in st.lines())


@pytest.mark.slow
def test_a_photo_is_read_once_and_again_when_it_changes(
    tmp_path: Path, toy_bundle: Path
) -> None:
    from photoindex.indexing.indexer import run_index

    root = tmp_path / "Photos"
    make_text_photo(root / "sign.jpg", ["HARBOR LANTERN"], size=(800, 400), seed=1)
    config = ocr_config(tmp_path / "home", toy_bundle)
    assert run_index(config, [root]).text["read"] == 1  # type: ignore[index]
    again = run_index(config, [root]).text
    assert again is not None and again["read"] == 0 and again["waiting"] == 0
    shutil_copy = root / "copy of sign.jpg"
    shutil_copy.write_bytes((root / "sign.jpg").read_bytes())  # a copy shares the reading
    assert run_index(config, [root]).text["read"] == 0  # type: ignore[index]
    time.sleep(0.01)
    make_text_photo(root / "sign.jpg", ["QUARTZ MEADOW"], size=(800, 400), seed=2)
    assert run_index(config, [root]).text["read"] == 1  # type: ignore[index]
    assert names(words_search(config, "quartz")) == ["sign.jpg"]
    assert names(words_search(config, "harbor")) == ["copy of sign.jpg"]


def test_the_reader_reads_english_and_chinese_with_boxes_and_confidences(tmp_path: Path) -> None:
    """The models themselves, on a small photo: what the issue measured (both lines, confidence ~0.98+)."""
    from photoindex.config import OcrConfig, RuntimeConfig
    from photoindex.ocr.engine import TextReader
    from photoindex.photos.imaging import decode_for_text

    photo = make_text_photo(tmp_path / "p.jpg", ["STARBUCKS RECEIPT 2024", "杭州西湖 欢迎光临"], size=(900, 300),
                            font_size=44, seed=5)
    pixels, factor = decode_for_text(photo.path, 1600)
    assert pixels.shape == (300, 900, 3) and factor == 1.0
    reader = TextReader(OcrConfig(), RuntimeConfig(threads=2), tmp_path / "models")
    lines = reader.read(pixels, factor)
    assert [line.text.replace(" ", "") for line in lines] == ["STARBUCKSRECEIPT2024", "杭州西湖欢迎光临"]
    assert all(line.confidence > 0.9 for line in lines)
    assert lines[0].box[0][1] < lines[1].box[0][1]  # top to bottom
    assert reader.providers == {"det": "onnxruntime:CPUExecutionProvider", "rec": "onnxruntime:CPUExecutionProvider"}


def test_photos_are_decoded_for_the_detector_at_the_size_it_needs(tmp_path: Path) -> None:
    """A large JPEG is drafted (DCT scaling) and resized to the longer side; EXIF rotation is applied."""
    from PIL import Image

    from photoindex.photos.imaging import decode_for_text

    big = tmp_path / "big.jpg"
    Image.new("RGB", (2400, 1800), (200, 30, 30)).save(big, quality=90)
    pixels, factor = decode_for_text(big, 600)
    assert pixels.shape == (450, 600, 3) and factor == pytest.approx(4.0)
    turned = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[274] = 6  # rotated 90 degrees: displayed 1800 x 2400
    Image.new("RGB", (2400, 1800), (200, 30, 30)).save(turned, quality=90, exif=exif.tobytes())
    pixels, factor = decode_for_text(turned, 600)
    assert pixels.shape == (600, 450, 3) and factor == pytest.approx(4.0)
    small = tmp_path / "small.png"
    Image.new("RGB", (640, 480), (200, 30, 30)).save(small)
    pixels, factor = decode_for_text(small, 1600)
    assert pixels.shape == (480, 640, 3) and factor == 1.0


@pytest.mark.slow
def test_the_clip_gate_decides_which_photos_are_read(home_env: dict[str, str], tmp_path: Path) -> None:
    """Wiring: each photo's stored gate score is its CLIP vector's score against the prompts, those below the
    threshold are skipped (and counted), and `gate = "all"` reads them later. The toy CLIP knows colours only,
    so the prompts here are colours: "red" stands for the text-bearing prompts."""
    from photoindex.catalog import reads
    from photoindex.indexing.indexer import run_index
    from photoindex.library import open_library
    from photoindex.ocr.gate import Gate
    from photoindex.ocr.reader import TextPass

    root = tmp_path / "Photos"
    for i, colour in enumerate(("red", "green", "blue", "yellow", "purple", "orange")):
        make_photo(root / f"{colour}.jpg", COLOURS[colour], size=(320, 240), seed=i)
    config = load_config()  # OCR off (conftest): vectors only
    run_index(config, [root])
    prompts = (["something red", "a red thing"], ["something green", "something blue", "something yellow"])
    config = replace(config, ocr=replace(config.ocr, enabled=True, gate="clip", gate_threshold=0.5))
    with open_library(config) as lib:
        gate = Gate(lib, 0.5, prompts)
        with lib.db.reads() as con:
            hashes = [h for (h,) in con.execute("SELECT content_hash FROM vectors")]
            scores = {h: gate.score(reads.vector_for_hash(con, lib.model_id, h)) for h in hashes}
        report = TextPass(lib, gate_prompts=prompts).run()  # the config's threshold, 0.5
    below = {h for h, s in scores.items() if s < 0.5}
    assert 0 < len(below) < len(scores)
    assert (report.skipped, report.read, report.waiting) == (len(below), len(scores) - len(below), 0)
    stored = dict(sql(config, "SELECT content_hash, gate FROM photo_text"))
    assert stored == pytest.approx(scores, abs=1e-5)
    skipped = {h for (h,) in sql(config, "SELECT content_hash FROM photo_text WHERE status = 'skipped'")}
    assert skipped == below
    red = sql(config, "SELECT content_hash FROM photos WHERE path LIKE '%red.jpg'")[0][0]
    assert red not in below
    everything = replace(config, ocr=replace(config.ocr, gate="all"))
    with open_library(everything) as lib:
        assert TextPass(lib).waiting() == len(below)
        again = TextPass(lib).run()
    assert (again.read, again.skipped, again.waiting) == (len(below), 0, 0)


WORDS = ("falcon", "garnet", "timber", "cobalt", "walnut", "pepper", "thunder", "beacon")


@pytest.mark.slow
def test_kill_9_during_the_text_pass_loses_nothing(tmp_path: Path, toy_bundle: Path) -> None:
    root = tmp_path / "Photos"
    for i in range(8):
        make_text_photo(root / f"p{i}.jpg", [f"ORCHID {WORDS[i]}"], size=(800, 400), seed=i)
    home = tmp_path / "home"
    config = ocr_config(home, toy_bundle)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOINDEX_")}
    env.update(
        PHOTOINDEX_HOME=str(home), PHOTOINDEX_MODEL_BUNDLE=str(toy_bundle), PHOTOINDEX_INDEX_WORKERS="1",
        PHOTOINDEX_OCR_ENABLED="1", PHOTOINDEX_OCR_GATE="all",
    )
    cmd = [sys.executable, "-m", "photoindex", "index", str(root), "--json"]
    kills = kill_9_at(config, cmd, env, "SELECT count(*) FROM photo_text", (1, 4))
    assert kills == 2
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    text = json.loads(done.stdout)["text"]
    assert text["waiting"] == 0 and text["read"] <= 8 - 4  # what was read before the kills stays read
    assert sql(config, "SELECT count(*), count(DISTINCT content_hash) FROM photo_text")[0] == (8, 8)
    assert sql(config, "SELECT count(*) FROM photo_text_words")[0][0] == 8
    assert sql(config, "SELECT count(*) FROM photo_text_trigrams")[0][0] == 8
    for i in range(8):
        assert names(words_search(config, f"orchid {WORDS[i]}"))[:1] == [f"p{i}.jpg"]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the daemon tests use inotify")
def test_the_daemon_reads_new_photos_after_encoding_them(tmp_path: Path, env: dict[str, str], start) -> None:  # type: ignore[no-untyped-def]
    """A photo copied in is searchable by CLIP first and by its words a little later; the daemon logs it."""
    from daemonproc import empty_root, wait_for

    home, root = empty_root(tmp_path, env)
    d = start(PHOTOINDEX_OCR_ENABLED="1", PHOTOINDEX_OCR_GATE="all")
    make_text_photo(tmp_path / "sign.jpg", ["HARBOR LANTERN"], size=(800, 400), seed=1)
    (tmp_path / "sign.jpg").rename(root / "sign.jpg")
    config = ocr_config(home, Path(env["PHOTOINDEX_MODEL_BUNDLE"]))
    wait_for(lambda: "read text: 1 photos (1 with text)" in d.log(), "the text to be read", d)
    assert names(words_search(config, "lantern")) == ["sign.jpg"]
    log = d.log()
    assert log.index("encoded") < log.index("read text")  # CLIP first
    assert d.terminate()[0] == 0


@pytest.mark.slow
def test_the_photo_view_shows_the_text_read_and_where_the_words_are(library) -> None:  # type: ignore[no-untyped-def]
    """The web page's photo view (/api/photos/ID?word=...) on both back ends: the lines and the matched word's box."""
    pytest.importorskip("starlette", reason="the web extra is not installed")
    from photoindex.library import open_library
    from photoindex.web.service import WebService

    config, root, _ = library
    with open_library(config) as lib, lib.db.reads() as con:
        (photo_id,) = con.execute("SELECT id FROM photos WHERE path = ?", (str(root / "mixed.jpg"),)).fetchone()
    with open_library(config) as lib:
        shown = WebService(lib).photo_json(photo_id, ["tracking"])
    assert shown["text"] is not None, "no text in the photo view"
    assert any("tracking" in line["text"].lower() for line in shown["text"]["lines"]), shown["text"]
    assert shown["text"]["highlights"], shown["text"]
