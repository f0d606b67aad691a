"""`photoindex search --sheet` (a contact sheet of the hits) and `-p` (thumbnails in the terminal)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import runner
from PIL import Image

from photoindex.cli.app import app
from photoindex.config import Config
from photoindex.errors import PhotoindexError
from photoindex.indexing.indexer import run_index
from photoindex.photos.sheet import Tile, write_contact_sheet
from photoindex.testing import make_photo

RED, BLUE = (200, 30, 30), (30, 40, 200)


@pytest.fixture
def indexed(config: Config, tmp_path: Path) -> Path:
    photos = tmp_path / "photos"
    for i in range(3):
        make_photo(photos / f"red-{i}.jpg", RED, size=(200, 150), seed=i)
        make_photo(photos / f"blue-{i}.jpg", BLUE, size=(200, 150), seed=10 + i)
    run_index(config, [photos])
    return photos


def test_the_sheet_shows_the_hits_in_order(indexed: Path, tmp_path: Path) -> None:
    out = tmp_path / "sheet.png"
    result = runner.invoke(app, ["search", "red", "--limit", "4", "--sheet", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out} (4 photos)" in result.stderr
    assert "red-" in result.stdout  # the table is printed as well
    with Image.open(out) as sheet:
        pixels = np.asarray(sheet.convert("RGB"), dtype=np.float64)
    # 4 tiles in one row: the first three red, the fourth blue (the best non-red match).
    cell, pad = 240, 8
    colours = []
    for i in range(4):
        x = pad + i * (cell + pad) + cell // 2
        y = pad + cell // 2
        colours.append(pixels[y - 10 : y + 10, x - 10 : x + 10].reshape(-1, 3).mean(axis=0))
    assert all(c[0] > c[2] + 80 for c in colours[:3])
    assert colours[3][2] > colours[3][0] + 80


def test_a_missing_file_leaves_an_empty_frame(tmp_path: Path) -> None:
    thumb = make_photo(tmp_path / "t.jpg", RED, size=(100, 80))
    out = write_contact_sheet(
        tmp_path / "s.jpg", [Tile(thumb, 0.5, "t.jpg"), Tile(None, 0.25, "gone.jpg" * 30)], columns=5, cell=100
    )
    with Image.open(out) as sheet:
        assert sheet.format == "JPEG" and sheet.size[0] == 2 * (100 + 8) + 8


def test_a_sheet_needs_a_known_ending_and_hits(tmp_path: Path) -> None:
    with pytest.raises(PhotoindexError, match="written as .jpg, .png or .webp"):
        write_contact_sheet(tmp_path / "s.gif", [Tile(None, 0.1, "x")])
    with pytest.raises(PhotoindexError, match="no photos"):
        write_contact_sheet(tmp_path / "s.png", [])


def test_preview_draws_each_hit(indexed: Path) -> None:
    plain = runner.invoke(app, ["search", "blue", "--limit", "2"])
    shown = runner.invoke(app, ["search", "blue", "--limit", "2", "-p"])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.count("blue-") == 2
    # Off a terminal textual-image draws Unicode blocks: many more lines than the table.
    assert len(shown.stdout.splitlines()) > len(plain.stdout.splitlines()) + 4
