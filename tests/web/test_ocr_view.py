"""The photo view marks the words a search matched, over a photo read by the real OCR models (issue 16).

The photo is stored on its side with an EXIF orientation (as phones do), so the boxes must follow the
photo as shown, upright; they are checked on the rendered pixels: under each box, the dark ink of the
letters on their light plate.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from served import PageWithLog, Server, base_env, copy_screenshot, run_cli, wait_until

from photoindex.testing import COLOURS, make_photo
from photoindex.testing.textphotos import font_path, make_text_photo

pytestmark = [
    pytest.mark.slow,  # the OCR pass over the library
    pytest.mark.skipif(font_path() is None, reason="needs fonts-noto-cjk (see .ci/run)"),
]
ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def read_library(tmp_path_factory: pytest.TempPathFactory, toy_bundle: Path) -> Iterator[Server]:
    """A library of a sign stored on its side (EXIF orientation 6) and two photos without text, read with
    `gate = "all"`, served."""
    root = tmp_path_factory.mktemp("web-ocr")
    photos = root / "photos"
    upright = root / "upright.jpg"
    make_text_photo(upright, ["STARBUCKS", "RECEIPT 2024"], size=(1200, 900), font_size=80, seed=5)
    with Image.open(upright) as im:
        exif = Image.Exif()
        exif[ORIENTATION] = 6  # shown turned 90° clockwise: store it turned 90° the other way
        photos.mkdir()
        im.transpose(Image.Transpose.ROTATE_90).save(photos / "receipt.jpg", quality=92, exif=exif)
    make_photo(photos / "plain.jpg", COLOURS["blue"], size=(640, 480), seed=1)
    make_photo(photos / "grass.jpg", COLOURS["green"], size=(640, 480), seed=2)
    env = {**base_env(root / "home", toy_bundle), "PHOTOINDEX_OCR_ENABLED": "1", "PHOTOINDEX_OCR_GATE": "all"}
    run_cli(env, "index", str(photos), timeout=600)
    server = Server(env)
    yield server
    server.stop()


def test_the_photo_view_marks_the_matched_words_on_the_upright_photo_and_lists_the_text(
    read_library: Server, page: PageWithLog, tmp_path: Path
) -> None:
    p = page.page
    p.goto(read_library.url + "/?q=starbucks%20receipt")
    wait_until(lambda: p.evaluate("document.body.dataset.searchMs !== undefined"), "the results")
    p.click(".cell[title^='receipt.jpg']")
    p.locator("#viewer").wait_for(state="visible")
    wait_until(lambda: p.evaluate("document.getElementById('view-img').naturalWidth > 0"), "the photo")
    wait_until(lambda: p.locator("#view-marks polygon").count() >= 2, "the matched words' boxes")
    assert p.evaluate("document.getElementById('view-img').naturalWidth > document.getElementById("
                      "'view-img').naturalHeight")  # upright: the stored photo is taller than wide
    # The text read is listed, the matched words marked.
    text = p.locator(".view-text")
    assert "STARBUCKS" in text.inner_text().upper()
    marked = sorted(m.upper() for m in text.locator("mark").all_inner_texts())
    assert marked == ["RECEIPT", "STARBUCKS"]
    words = sorted(p.locator("#view-marks polygon title").all_text_contents())
    assert [w.upper() for w in words] == ["RECEIPT", "STARBUCKS"]
    shot_file = tmp_path / "web-photo-text.jpg"
    p.screenshot(path=str(shot_file), type="jpeg", quality=80)
    copy_screenshot(shot_file, "web-photo-text.jpg")
    # Each box lies on the word as painted: hide the boxes, look at the pixels under them.
    boxes = p.locator("#view-marks polygon").evaluate_all(
        "ps => ps.map(p => { const r = p.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })"
    )
    image = p.evaluate("(() => { const r = document.getElementById('view-img').getBoundingClientRect();"
                       " return [r.left, r.top, r.right, r.bottom]; })()")
    p.evaluate("document.getElementById('view-marks').style.visibility = 'hidden'")
    shot = np.asarray(Image.open(io.BytesIO(p.screenshot())).convert("L"), dtype=np.float64)
    for left, top, right, bottom in boxes:
        assert image[0] <= left < right <= image[2] and image[1] <= top < bottom <= image[3]
        assert right - left > 2 * (bottom - top)  # a word on a horizontal line, as shown
        under = shot[int(top) : int(bottom), int(left) : int(right)]
        ink, plate = (under < 90).mean(), (under > 200).mean()
        assert ink > 0.05 and plate > 0.3, (ink, plate)
    assert not page.errors


def test_the_api_gives_the_lines_read_and_where_the_words_are(read_library: Server) -> None:
    import json
    import urllib.request

    with urllib.request.urlopen(f"{read_library.url}/api/search?q=receipt&limit=3") as r:
        hits = json.loads(r.read())["hits"]
    receipt = next(h for h in hits if h["path"].endswith("receipt.jpg"))
    assert [w.upper() for w in receipt["words"]] == ["RECEIPT"]
    with urllib.request.urlopen(f"{read_library.url}/api/photos/{receipt['id']}?word=RECEIPT") as r:
        photo = json.loads(r.read())
    assert (photo["width"], photo["height"]) == (1200, 900)
    first, second = photo["text"]["lines"]
    assert first["text"] == "STARBUCKS" and second["text"].replace(" ", "") == "RECEIPT2024"
    assert all(len(line["box"]) == 4 for line in (first, second))
    (mark,) = photo["text"]["highlights"]
    assert mark["word"] == "RECEIPT" and mark["line"] == 1
    xs = [x for x, _ in mark["box"]]
    line_xs = [x for x, _ in second["box"]]
    assert min(line_xs) - 1 <= min(xs) < max(xs) < max(line_xs)  # the left part of its line
    with urllib.request.urlopen(f"{read_library.url}/api/photos/{hits[-1]['id']}") as r:
        other = json.loads(r.read())
    assert other["text"] is None or other["path"].endswith("receipt.jpg")
