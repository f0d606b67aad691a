"""The search page, the photo view and the status page in headless Chromium, over a real `photoindex serve`.

Colours are checked on the rendered pixels (a screenshot), not only in the DOM.
"""

from __future__ import annotations

import base64
import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from served import Library, PageWithLog, Server, copy_screenshot, wait_until

from photoindex.catalog.writerlock import lock_holder
from photoindex.photos.scanner import content_hash
from photoindex.testing import make_photo

SHOWN = 6  # the first results checked by colour (there are PER_COLOUR photos of each)


def dominant(rgb: np.ndarray) -> str:
    """The colour a mean RGB clearly is ("red", "green", "blue"), or "mixed"."""
    r, g, b = (float(x) for x in rgb)
    for name, main, others in (("red", r, (g, b)), ("green", g, (r, b)), ("blue", b, (r, g))):
        if all(main > o + 60 for o in others):
            return name
    return "mixed"


def wait_js(page: Any, expression: str, timeout: float = 30.0) -> None:
    """Until `expression` is true in the page (Playwright's wait_for_function evaluates strings, which
    the page's Content-Security-Policy rightly forbids; `evaluate` goes through the debugger)."""
    wait_until(lambda: bool(page.evaluate(expression)), expression, timeout)


def wait_results(page: Any) -> None:
    """Until the search started last has painted its first thumbnails (the page marks it)."""
    wait_js(page, "document.body.dataset.searchMs !== undefined")


def search_and_wait(page: Any, action: Any) -> None:
    page.evaluate("delete document.body.dataset.searchMs")
    action()
    wait_results(page)


def shown_colours(page: Any, n: int = SHOWN) -> list[str]:
    """The colours of the first `n` thumbnails as painted on the screen."""
    loaded = page.evaluate(
        "n => Array.from(document.querySelectorAll('.cell img')).slice(0, n)"
        ".every(img => img.complete && img.naturalWidth > 0)",
        n,
    )
    assert loaded, "thumbnails did not load"
    shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    colours = []
    for i in range(n):
        box = page.locator(".cell").nth(i).bounding_box()
        assert box is not None
        # The middle of the cell: clear of the rounded corners and the score label.
        x0, y0 = box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.2
        x1, y1 = box["x"] + box["width"] * 0.75, box["y"] + box["height"] * 0.6
        crop = np.asarray(shot.crop((int(x0), int(y0), int(x1), int(y1))), dtype=np.float64)
        colours.append(dominant(crop.reshape(-1, 3).mean(axis=0)))
    return colours


def test_typing_red_shows_red_photos_first(server: Server, page: PageWithLog, tmp_path: Path) -> None:
    p = page.page
    p.goto(server.url + "/")
    p.fill("#q", "red")
    search_and_wait(p, lambda: p.press("#q", "Enter"))
    assert shown_colours(p) == ["red"] * SHOWN
    # The first screenful came inside the search's answer (no request each); the rest by URL.
    sources = p.evaluate("Array.from(document.querySelectorAll('.cell img'), img => img.getAttribute('src') || '')")
    screen = p.evaluate("Array.from(document.querySelectorAll('.cell')).filter(c => "
                        "c.getBoundingClientRect().top < innerHeight).length")
    assert screen >= SHOWN and all(src.startswith("data:image/jpeg;base64,") for src in sources[:screen])
    assert any(src.startswith("/api/photos/") for src in sources[screen:])
    # The inline ones are decoded for the frame that shows them, together; the rest off that frame.
    decoding = p.evaluate("Array.from(document.querySelectorAll('.cell img'), img => img.decoding)")
    assert all(d == ("sync" if s.startswith("data:") else "async") for d, s in zip(decoding, sources, strict=True))
    # The score is shown on hover.
    p.hover(".cell >> nth=0")
    score = p.locator(".cell >> nth=0").locator(".score")
    wait_until(lambda: float(score.evaluate("e => getComputedStyle(e).opacity")) == 1.0, "the score to show")
    assert 0.5 < float(score.inner_text()) <= 1.0
    shot = tmp_path / "web-search.jpg"
    p.mouse.move(0, 0)
    p.wait_for_timeout(200)
    p.screenshot(path=str(shot), type="jpeg", quality=80)
    copy_screenshot(shot, "web-search.jpg")
    # The URL keeps the query: reloading shows the same results.
    assert "q=red" in p.url
    search_and_wait(p, lambda: p.reload())
    assert shown_colours(p, 3) == ["red"] * 3
    assert not page.errors


def test_enter_to_thumbnails_ends_at_the_paint_of_the_first_screen(server: Server, page: PageWithLog) -> None:
    """The page's own measure ends when the frame showing the last of its first thumbnails was painted
    (Element Timing), not when they loaded; its search request carries the server's Server-Timing."""
    p = page.page
    p.goto(server.url + "/")
    p.fill("#q", "green")
    search_and_wait(p, lambda: p.press("#q", "Enter"))
    seen = p.evaluate("""() => new Promise((resolve) => {
        const start = performance.getEntriesByName("search-start")[0].startTime;
        const measure = performance.getEntriesByName("enter-to-thumbnails")[0];
        const id = document.querySelector(".cell img[elementtiming]").getAttribute("elementtiming");
        const marked = Array.from(document.querySelectorAll(".cell img")).map(
            (img) => img.getAttribute("elementtiming") === id);
        const onScreen = Array.from(document.querySelectorAll(".cell")).map(
            (cell) => cell.getBoundingClientRect().top < innerHeight);
        const search = performance.getEntriesByType("resource").find((e) => e.name.includes("/api/search?"));
        new PerformanceObserver((list, observer) => {
            observer.disconnect();
            const painted = list.getEntries().filter((e) => e.identifier === id).map((e) => e.renderTime);
            resolve({start, end: start + measure.duration, marked, onScreen, painted,
                     server: search.serverTiming.map((t) => t.name)});
        }).observe({ type: "element", buffered: true });
    })""")
    shown = seen["marked"].count(True)
    # The first thumbnails, up to 20, of those the first screen shows (a row cut by its bottom too).
    assert seen["marked"][:shown] == [True] * shown and 1 <= shown <= 20
    assert shown == min(20, seen["onScreen"].count(True))
    assert len(seen["painted"]) == shown and min(seen["painted"]) > seen["start"]
    assert max(seen["painted"]) == pytest.approx(seen["end"], abs=0.01)
    assert seen["server"] == ["queue", "vector", "search", "thumbnails", "json"]
    assert not page.errors


def test_a_search_writes_its_first_screen_at_once_and_the_rest_after_its_paint(
    server: Server, page: PageWithLog
) -> None:
    """The cells the first screen shows go into the page in one write; the rest only once it is painted."""
    p = page.page
    p.goto(server.url + "/")
    p.evaluate("""() => {
        window.writes = [];
        new MutationObserver((records) => {
            for (const r of records) {
                if (r.addedNodes.length) window.writes.push([r.addedNodes.length, "searchMs" in document.body.dataset]);
            }
        }).observe(document.getElementById("grid"), { childList: true });
    }""")
    p.fill("#q", "green")
    search_and_wait(p, lambda: p.press("#q", "Enter"))
    wait_js(p, "window.writes.length > 1")
    screen = p.evaluate("Array.from(document.querySelectorAll('.cell')).filter(c => "
                        "c.getBoundingClientRect().top < innerHeight).length")
    cells = p.evaluate("document.querySelectorAll('.cell').length")
    writes = p.evaluate("window.writes")
    assert cells > screen  # the library has more matches than one screen shows
    assert writes == [[screen, False], [cells - screen, True]]
    assert not page.errors


def test_a_pause_in_typing_warms_the_query_and_enter_then_searches_it(server: Server, page: PageWithLog) -> None:
    """After a pause in typing the page asks the server to encode the text (once per text); Enter searches."""
    p = page.page
    p.goto(server.url + "/")
    with p.expect_response("**/api/warm?*") as warmed:
        p.fill("#q", "blue umbrella")
    assert warmed.value.url.endswith("/api/warm?q=blue%20umbrella") and warmed.value.json() == {"encoded": 1}
    search_and_wait(p, lambda: p.press("#q", "Enter"))
    assert shown_colours(p, 3) == ["blue"] * 3
    assert not page.errors


def test_a_search_from_further_down_shows_and_times_its_results_from_the_top(
    server: Server, page: PageWithLog
) -> None:
    p = page.page
    p.goto(server.url + "/")
    p.fill("#q", "red")
    search_and_wait(p, lambda: p.press("#q", "Enter"))
    p.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    assert p.evaluate("window.scrollY") > 0
    p.fill("#q", "blue")  # the box stays in view (sticky)
    search_and_wait(p, lambda: p.press("#q", "Enter"))
    assert p.evaluate("window.scrollY") == 0
    assert shown_colours(p, 3) == ["blue"] * 3
    assert not page.errors


def test_keyboard_moves_opens_and_closes(server: Server, page: PageWithLog) -> None:
    p = page.page
    p.goto(server.url + "/")
    p.focus("#q")
    p.keyboard.type("blue")
    search_and_wait(p, lambda: p.keyboard.press("Enter"))
    p.keyboard.press("ArrowDown")
    assert p.evaluate("document.activeElement.dataset.i") == "0"
    p.keyboard.press("ArrowRight")
    assert p.evaluate("document.activeElement.dataset.i") == "1"
    columns = p.evaluate("getComputedStyle(document.getElementById('grid')).gridTemplateColumns.split(' ').length")
    p.keyboard.press("ArrowDown")
    assert p.evaluate("document.activeElement.dataset.i") == str(1 + columns)
    p.keyboard.press("Enter")
    viewer = p.locator("#viewer")
    viewer.wait_for(state="visible")
    first = p.inner_text("#view-name")
    p.keyboard.press("ArrowRight")
    wait_until(lambda: p.inner_text("#view-name") != first, "the next photo in the view")
    p.keyboard.press("Escape")
    viewer.wait_for(state="hidden")
    assert p.evaluate("document.activeElement.classList.contains('cell')")
    assert not page.errors


def test_photo_view_shows_the_photo_upright_with_metadata_and_more_like_this(
    server: Server, library: Library, page: PageWithLog
) -> None:
    p = page.page
    p.goto(server.url + "/?q=green")
    wait_results(p)
    assert shown_colours(p, 1) == ["green"]
    p.click(".cell >> nth=0")
    p.locator("#viewer").wait_for(state="visible")
    wait_js(p, "document.getElementById('view-img').naturalWidth > 0")
    meta = p.locator("#view-meta")
    wait_until(lambda: "folder" in meta.inner_text(), "the photo's metadata")
    text = meta.inner_text()
    assert "160 × 120" in text and str(library.photos / "green") in text and "JPEG" in text
    href = p.get_attribute("#view-download", "href")
    assert href is not None and href.endswith("/original")
    download = p.request.get(server.url + href)
    assert download.status == 200 and download.headers["content-disposition"].startswith("attachment")
    assert download.body()[:2] == b"\xff\xd8"
    search_and_wait(p, lambda: p.click("#view-like"))
    assert p.locator("#viewer").is_hidden()
    assert p.locator("#example").is_visible()
    assert shown_colours(p) == ["green"] * SHOWN
    assert not page.errors


def test_dropping_a_blue_photo_shows_blue_photos_and_stores_nothing(
    server: Server, library: Library, page: PageWithLog
) -> None:
    p = page.page
    p.goto(server.url + "/")
    example = library.outside / "blue-example.jpg"
    thumbs_before = sorted(str(x) for x in (library.home / "cache").rglob("*"))
    photos_before = sqlite3.connect(library.home / "photoindex.db").execute("SELECT count(*) FROM photos").fetchone()
    data = base64.b64encode(example.read_bytes()).decode()
    drop = """b64 => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], 'blue-example.jpg', {type: 'image/jpeg'}));
        document.dispatchEvent(new DragEvent('dragenter', {dataTransfer: dt, bubbles: true}));
        document.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
        document.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }"""
    search_and_wait(p, lambda: p.evaluate(drop, data))
    assert shown_colours(p) == ["blue"] * SHOWN
    assert p.locator("#example").is_visible()
    assert p.locator("#drop").is_hidden()
    # Never stored: no file of the home names its content, and the catalog did not change.
    digest = content_hash(example)
    after = sorted(str(x) for x in (library.home / "cache").rglob("*"))
    assert after == thumbs_before and not any(digest in x for x in after)
    con = sqlite3.connect(library.home / "photoindex.db")
    try:
        assert con.execute("SELECT count(*) FROM photos").fetchone() == photos_before
        assert con.execute("SELECT count(*) FROM photos WHERE content_hash = ?", (digest,)).fetchone()[0] == 0
    finally:
        con.close()
    assert not page.errors


def test_pasting_a_photo_searches_by_it(server: Server, library: Library, page: PageWithLog) -> None:
    p = page.page
    p.goto(server.url + "/")
    data = base64.b64encode((library.outside / "blue-example.jpg").read_bytes()).decode()
    paste = """b64 => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], 'pasted.jpg', {type: 'image/jpeg'}));
        document.dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true}));
    }"""
    search_and_wait(p, lambda: p.evaluate(paste, data))
    assert shown_colours(p, 3) == ["blue"] * 3
    assert not page.errors


def test_an_upload_over_the_bomb_limit_is_refused_on_the_page(library: Library, page: PageWithLog) -> None:
    server = Server({**library.env, "PHOTOINDEX_SCAN_MAX_IMAGE_PIXELS": "100000"})
    try:
        p = page.page
        p.goto(server.url + "/")
        p.set_input_files("#file", str(library.outside / "big-example.png"))  # 400x400 = 160,000 pixels
        wait_js(p, "document.getElementById('message').classList.contains('error')")
        assert "more than the limit" in p.inner_text("#message")
        # The page's own request failed (400), as it should; nothing else went wrong.
        assert all("400" in e for e in page.errors), page.errors
    finally:
        server.stop()


def test_filter_controls_narrow_the_results(server: Server, page: PageWithLog) -> None:
    p = page.page
    p.goto(server.url + "/")
    p.fill("#camera", "pixel")
    search_and_wait(p, lambda: p.press("#camera", "Enter"))  # a filter alone: the photos, newest first
    names = p.locator(".cell").evaluate_all("cells => cells.map(c => c.querySelector('img').alt)")
    assert names == ["pixel-1.jpg", "pixel-0.jpg"]
    assert "newest first" in p.inner_text("#message")
    assert "camera=pixel" in p.url
    p.fill("#q", "yellow")
    search_and_wait(p, lambda: p.press("#q", "Enter"))
    assert p.locator(".cell").count() == 2 and "best first" in p.inner_text("#message")
    p.fill("#camera", "")
    p.select_option("#limit", "60")
    search_and_wait(p, lambda: p.press("#q", "Enter"))
    assert p.locator(".cell").count() == 42  # every photo: 5 colours x 8, and the two
    assert not page.errors


def test_show_more_appends_the_next_page(server: Server, page: PageWithLog) -> None:
    p = page.page
    p.goto(server.url + "/")
    p.evaluate("document.getElementById('limit').add(new Option('10', '10'), 0)")
    p.select_option("#limit", "10")
    p.fill("#q", "red")
    search_and_wait(p, lambda: p.press("#q", "Enter"))
    assert p.locator(".cell").count() == 10
    first = p.locator(".cell img").evaluate_all("imgs => imgs.map(i => i.alt)")
    search_and_wait(p, lambda: p.click("#more"))
    after = p.locator(".cell img").evaluate_all("imgs => imgs.map(i => i.alt)")
    assert len(after) == 20 and after[:10] == first and len(set(after)) == 20
    assert not page.errors


def test_duplicates_page_shows_groups_side_by_side(server: Server, page: PageWithLog) -> None:
    p = page.page
    p.goto(server.url + "/duplicates")
    p.locator(".dup-group").first.wait_for()
    assert p.locator(".dup-group").count() >= 5
    first = p.locator(".dup-group").first
    assert "near-duplicates" in first.locator("h3").inner_text()
    loaded = "Array.from(document.querySelectorAll('.dup img')).slice(0, 4).every(i => i.naturalWidth > 0)"
    wait_js(p, loaded)
    boxes = [first.locator("img").nth(i).bounding_box() for i in range(2)]
    assert boxes[0] and boxes[1] and boxes[0]["y"] == boxes[1]["y"] and boxes[1]["x"] > boxes[0]["x"]  # side by side
    assert not page.errors


def test_foreign_ids_and_paths_are_not_found(server: Server, page: PageWithLog) -> None:
    p = page.page
    p.goto(server.url + "/")
    for path in (
        "/api/photos/999999",
        "/api/photos/999999/thumbnail",
        "/api/photos/0/original",
        "/api/photos/-1/view",
        "/api/photos/%2e%2e%2fphotoindex.db/original",
        "/static/%2e%2e/%2e%2e/photoindex.db",
        "/static/",
        "/photoindex.db",
    ):
        assert p.request.get(server.url + path).status == 404, path
    assert not page.errors


@pytest.mark.slow
def test_status_page_shows_a_running_index(server: Server, library: Library, page: PageWithLog, tmp_path: Path) -> None:
    more = tmp_path / "more"
    for i in range(40):
        make_photo(more / f"red-{i}.jpg", (200, 40, 40), size=(160, 120), seed=5000 + i)
    p = page.page
    p.goto(server.url + "/status")
    p.locator("#roots tbody tr").first.wait_for()
    assert str(library.photos) in p.inner_text("#roots")
    env = {**library.env, "PHOTOINDEX_INDEX_BATCH_SIZE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "photoindex", "index", str(more)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # Freeze the run in the middle (its progress noted, the writer lock held) so the page is
        # seen showing it whatever the machine's speed.
        lock = library.home / "writer.lock"
        wait_until(
            lambda: ((lock_holder(lock) or {}).get("progress") or {}).get("stage") == "encoding"
            or proc.poll() is not None,
            "the run's progress",
            timeout=60,
        )
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            done = lock_holder(lock)["progress"]["done"]  # type: ignore[index]
            line = p.locator("#progress-line")
            line.wait_for(timeout=10_000)
            assert f"encoding: {done} of 40 photos" in line.inner_text()
            assert "index" in p.inner_text("#progress")
            assert p.get_attribute("#progress .meter", "aria-valuenow") == str(done)
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        assert proc.wait(120) == 0
        # Done: the page says so within a couple of polls, and counts the new root's photos.
        wait_js(p, "document.getElementById('progress').innerText.includes('No indexing is running')")
        wait_until(lambda: str(more) in p.inner_text("#roots"), "the new root on the page")
    finally:
        if proc.poll() is None:
            proc.kill()
        # The library is shared by the module's tests: take the new root out again, so a test that
        # runs after this one sees the library it was written for.
        subprocess.run(
            [sys.executable, "-m", "photoindex", "forget", "--purge", str(more)],
            env=library.env, check=True, capture_output=True, timeout=120,
        )
    time.sleep(0.1)
    assert not page.errors


def test_off_loopback_the_page_asks_for_the_secret(library: Library, page: PageWithLog) -> None:
    server = Server(library.env, "--host", "0.0.0.0")
    try:
        p = page.page
        p.goto(server.url + "/")
        assert p.url.endswith("/login")
        p.fill("input[name=secret]", "not the secret")
        p.click(".login button[type=submit]")
        assert "not the secret" in p.inner_text("main")
        secret = (library.home / "web-secret").read_text().strip()
        p.fill("input[name=secret]", secret)
        p.click(".login button[type=submit]")
        p.wait_for_url(server.url + "/")
        search_and_wait(p, lambda: (p.fill("#q", "red"), p.press("#q", "Enter")))
        assert shown_colours(p, 3) == ["red"] * 3
        # Only the failed login's own 403 was logged.
        assert all("403" in e for e in page.errors), page.errors
    finally:
        server.stop()
