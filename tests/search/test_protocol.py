"""The search request and reply survive the daemon's wire unchanged (protocol.py), and the query
language splits where it should."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from photoindex.errors import PhotoindexError
from photoindex.search.filters import Filters, Near
from photoindex.search.protocol import Hit, SearchRequest, parse_reply, parse_request
from photoindex.search.terms import Term, parse_query


def test_a_request_round_trips_through_its_json_line(tmp_path: Path) -> None:
    photo = tmp_path / "dog.jpg"
    photo.write_bytes(b"not decoded here")
    filters = Filters.from_options(folder=tmp_path, after="2024-06", before="2024", camera="pixel", place="杭州",
                                   near="30.25,120.15,10", types=["heic", "jpg"])
    request = SearchRequest.build(text="2:beach + ./dog.jpg - people", images=[photo], not_images=["b.png"],
                                  limit=7, offset=14, min_score=0.2, sort="date", filters=filters, cwd=tmp_path)
    assert request.terms == (
        Term(2.0, text="beach"), Term(1.0, image=str(photo)), Term(-1.0, text="people"),
        Term(1.0, image=str(photo)), Term(-1.0, image=str(tmp_path / "b.png")),
    )
    assert filters == Filters(folder=str(tmp_path.resolve()), after="2024-06-01", before="2025-01-01", camera="pixel",
                              place="杭州", near=Near(30.25, 120.15, 10.0), formats=("HEIF", "JPEG", "MPO"))
    line = json.dumps(request.to_wire("model/x"), ensure_ascii=True)
    assert parse_request(json.loads(line)) == (request, "model/x")
    hits = [Hit("/p/\udcff.jpg", 0.5, 640, 480, "2024-06-15T18:30:00+08:00", place="Hangzhou, China"), Hit("/q", None)]
    assert parse_reply(json.loads(json.dumps({"hits": [h.to_json() for h in hits]}, ensure_ascii=True))) == hits


def test_a_hit_as_json_has_every_field_as_asdict_gives_it() -> None:
    hit = Hit("/p/a.jpg", 0.25, 640, 480, "2024-06-15T18:30:00+08:00", 1234, "JPEG", "Pixel 8", "exif", "lens",
              30.25, 120.15, 12.5, "Hangzhou, China", "clip+words", ("coffee", "bar"), 7)
    expected = dataclasses.asdict(hit)
    expected["words"] = ["coffee", "bar"]
    assert hit.to_json() == expected
    assert list(hit.to_json()) == [f.name for f in dataclasses.fields(Hit)]  # the order `--json` prints
    assert Hit.from_json(hit.to_json()) == hit


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("a red t-shirt", [(1.0, "a red t-shirt")]),
        ("black-and-white + cat", [(1.0, "black-and-white"), (1.0, "cat")]),
        ("beach + sunset - people", [(1.0, "beach"), (1.0, "sunset"), (-1.0, "people")]),
        ("2:sunset + 0.5:beach", [(2.0, "sunset"), (0.5, "beach")]),
        ("- people + beach", [(-1.0, "people"), (1.0, "beach")]),
        ("photo.jpg of a dog", [(1.0, "photo.jpg of a dog")]),
        ("missing.jpg", [(1.0, "missing.jpg")]),  # no such file: a text
    ],
)
def test_the_query_language(text: str, terms: list[tuple[float, str]]) -> None:
    assert [(t.weight, t.text) for t in parse_query(text)] == terms


@pytest.mark.parametrize("text", ["", "red +", "red + ", "200:red", "- red", "0:red + blue"])
def test_bad_queries(text: str) -> None:
    with pytest.raises(PhotoindexError):
        parse_query(text)
