"""`python -m benchmarks.web [--quick]`: the web page's measurements (issue 13), printed as JSON and
written to benchmarks/out/web.json.

- Enter to the first 20 thumbnails painted, in headless Chromium (the page's own Performance API
  measure `enter-to-thumbnails`: from the submit to two frames after the 20th image loaded), at
  100,000 photos with a warm server; each query in a fresh browser context (nothing cached).
- A cached thumbnail's time over loopback (one keep-alive connection: the server's time plus
  one local round trip), p50 and p90.
- The RSS the page adds to the daemon (`[web] listen` or not, after the same warm-up).
- The page's weight without photos (HTML, script, style, icon).
- What making thumbnails while indexing costs (index the same photos with and without).

The 100,000 photos are catalog rows with clustered vectors (benchmarks/searching.py); their
thumbnails are hard links to 64 real thumbnail JPEGs, so every hit has a cached thumbnail
without 1.5 GB of files. Default bundle: the ViT-B/32-sized one (real text-encoder compute).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HERE = Path(__file__).resolve().parent
CHROMIUM = os.environ.get("PHOTOINDEX_TEST_CHROMIUM", "/usr/bin/chromium")
QUERIES = ("a dog on the beach", "sunset over the mountains", "birthday cake with candles", "a red car",
           "snow on the roofs", "two cats on a sofa", "a bowl of noodles", "city lights at night",
           "a child on a bicycle", "flowers in a vase", "a boat on a lake", "people at a wedding")


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50": round(statistics.median(ordered), 2),
        "p90": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 2),
        "n": len(ordered),
    }


def linked_thumbnails(config: Any, count: int) -> None:
    """A cached thumbnail for each of the catalog's `count` fake hashes: hard links to 64 real ones."""
    from photoindex.photos.thumbnails import thumbnail_jpeg, thumbnail_store
    from photoindex.testing import make_photo
    from photoindex.testing.models import COLOURS

    store = thumbnail_store(config)
    sources = []
    tmp = config.home / "thumb-sources"
    tmp.mkdir(parents=True, exist_ok=True)
    colours = list(COLOURS.values())
    for i in range(64):
        photo = make_photo(tmp / f"{i}.jpg", colours[i % len(colours)], size=(640, 480), seed=i)
        from PIL import Image

        with Image.open(photo) as im:
            data = thumbnail_jpeg(im, config.thumbnails.size)
        src = tmp / f"{i}.thumb.jpg"
        src.write_bytes(data)
        sources.append(src)
    for i in range(count):
        target = store.path_for(f"{i:064x}")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.link(sources[i % 64], target)


class Served:
    """`photoindex serve --port 0` in a subprocess."""

    def __init__(self, env: dict[str, str]) -> None:
        from benchmarks.pipeline import photoindex_command

        self.proc = subprocess.Popen([*photoindex_command(), "serve", "--port", "0"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self.proc.stderr is not None
        seen = ""
        while True:  # warnings (e.g. the home's mode tightened) may come first
            line = self.proc.stderr.readline()
            seen += line
            found = re.search(r"serving http://\S+:(\d+)/", line)
            if found or not line:
                break
        if not found:
            raise RuntimeError(f"photoindex serve did not start: {seen}")
        self.port = int(found.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)


def get(port: int, path: str, con: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:
    own = con is None
    con = con or http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        con.request("GET", path)
        response = con.getresponse()
        return response.status, response.read()
    finally:
        if own:
            con.close()


def enter_to_thumbnails(url: str, queries: list[str]) -> dict[str, Any]:
    """The page's `enter-to-thumbnails` measure for each query, each in a fresh browser context."""
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--disable-gpu"])
        try:
            for i, text in enumerate(queries):
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                page = context.new_page()
                page.goto(url + "/")
                page.fill("#q", text)
                page.press("#q", "Enter")
                deadline = time.monotonic() + 60
                while page.evaluate("document.body.dataset.searchMs") is None:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the page did not paint its results")
                    time.sleep(0.005)
                if i > 0:  # the first query of the run warms the browser binary's own caches
                    times.append(float(page.evaluate("document.body.dataset.searchMs")))
                context.close()
        finally:
            browser.close()
    return percentiles(times)


def thumbnail_times(port: int, count: int, rounds: int) -> dict[str, Any]:
    """Loopback time of cached thumbnails over one keep-alive connection, in ms."""
    import random

    rng = random.Random(7)
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    samples = []
    try:
        for _ in range(20):
            get(port, f"/api/photos/{rng.randint(1, count)}/thumbnail", con)  # warm the path
        for _ in range(rounds):
            t = time.perf_counter()
            status, body = get(port, f"/api/photos/{rng.randint(1, count)}/thumbnail", con)
            samples.append((time.perf_counter() - t) * 1000)
            assert status == 200 and body[:2] == b"\xff\xd8", status
    finally:
        con.close()
    return percentiles(samples)


def page_weight(port: int) -> dict[str, int]:
    """Bytes of the page without photos (uncompressed; the server sends no compression)."""
    _, html = get(port, "/")
    parts = {"html": len(html)}
    for ref in re.findall(rb'(?:src|href)="(/static/[^"]+)"', html):
        parts[ref.decode().split("?")[0].rsplit("/", 1)[-1]] = len(get(port, ref.decode())[1])
    parts["total"] = sum(parts.values())
    return parts


def daemon_rss(env: dict[str, str], web: bool, rounds: int = 3) -> float:
    """The daemon's RSS (MiB) after start-up, one text search and (with the page) thumbnails and status."""
    from benchmarks.memory import _rss_pss
    from benchmarks.pipeline import photoindex_command

    port = None
    if web:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**env, "PHOTOINDEX_WEB_LISTEN": f"127.0.0.1:{port}"}
    home = Path(env["PHOTOINDEX_HOME"])
    proc = subprocess.Popen([*photoindex_command(), "daemon"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                state = json.loads((home / "daemon.json").read_text())
            except (OSError, ValueError):
                state = {}
            if state.get("pid") == proc.pid and state.get("state") == "idle" and (not web or state.get("web")):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the daemon did not become idle")
            time.sleep(0.2)
        for i in range(rounds):
            text = QUERIES[i % len(QUERIES)]
            if web:
                assert port is not None
                from urllib.parse import quote

                status, body = get(port, f"/api/search?q={quote(text)}&limit=60")
                assert status == 200, body
                for hit in json.loads(body)["hits"]:
                    get(port, hit["thumbnail"])
                get(port, "/api/status")
                get(port, "/")
            else:
                from benchmarks.pipeline import run_command

                run_command([*photoindex_command(), "search", text, "--limit", "60"], env)
        time.sleep(1.0)
        return _rss_pss(proc.pid)[0] / (1 << 20)
    finally:
        proc.terminate()
        proc.wait(60)


def indexing_cost(photos: Path, work: Path, bundle: Path, env_extra: dict[str, str], repeats: int) -> dict[str, Any]:
    """Seconds to index `photos` with and without thumbnails (fresh homes, alternating; medians)."""
    from benchmarks.pipeline import base_env, photoindex_command, run_command

    walls: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(repeats):
        for mode in ("without", "with"):
            home = work / f"index-{mode}"
            shutil.rmtree(home, ignore_errors=True)
            env = base_env(home, bundle, thumbnails_while_indexing="true" if mode == "with" else "false",
                           **env_extra)
            result, _, _ = run_command([*photoindex_command(), "index", str(photos), "--json"], env)
            walls[mode].append(float(json.loads(result.stdout)["seconds"]))
    w, wo = statistics.median(walls["with"]), statistics.median(walls["without"])
    return {"with_s": round(w, 2), "without_s": round(wo, 2), "added_percent": round(100 * (w - wo) / wo, 1),
            "runs": walls}


def markdown(r: dict[str, Any]) -> str:
    """The section of benchmarks/RESULTS.md for these results."""
    m = r["machine"]
    enter, thumb, weight = r["enter_to_20_thumbnails_ms"], r["cached_thumbnail_ms"], r["page_weight_bytes"]
    rss, ix = r["daemon_rss_mib"], r["indexing_thumbnails"]

    def met(ok: bool) -> str:
        return "yes" if ok else "**no**"

    rows = [
        ("Enter to the first 20 thumbnails painted, Chromium, p50 (p90)", f"{enter['p50']:.0f} ms ({enter['p90']:.0f})",
         "<= 300 ms", met(enter["p50"] <= 300)),
        ("a cached thumbnail over loopback, p50 (p90)", f"{thumb['p50']:.2f} ms ({thumb['p90']:.2f})", "<= 5 ms",
         met(thumb["p50"] <= 5)),
        ("making thumbnails while indexing: added indexing time",
         f"{ix['added_percent']:+.1f}% ({ix['without_s']} -> {ix['with_s']} s)", "<= 5%",
         met(ix["added_percent"] <= 5)),
        ("RSS the page adds to the daemon", f"{rss['added']:.1f} MiB ({rss['without_page']} -> {rss['with_page']})",
         "<= 60 MB", met(rss["added"] <= 57.2)),
        ("the page without photos (HTML, JS, CSS, icon)", f"{weight['total'] / 1024:.1f} KiB", "<= 200 KB",
         met(weight["total"] <= 200_000)),
    ]
    lines = [
        "<!-- web: written by `python -m benchmarks.web --results` -->",
        "## The web page (issue 13)",
        "",
        f"{m['date']} · {m['cpu']} · {m['cores']} cores · load average at start {m['load_at_start']} · "
        f"bundle `{r['bundle']}` · {r['photos']:,} photos in the catalog (rows with clustered vectors; every hit "
        "has a cached thumbnail) · `photoindex serve`, warm (one search before measuring) · Chromium headless, "
        "each query in a fresh browser context (nothing cached) · the daemon's RSS on 60 real photos after 3 "
        "searches (through the page, or through its socket without it) · indexing: 48 photos of 4000x3000, "
        "median of 3 runs each way.",
        "",
        "| measure | photoindex | target | met |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
        "",
        "Enter to thumbnails is the page's own Performance API measure (`enter-to-thumbnails`: from the "
        "form's submit to two animation frames after the 20th thumbnail loaded): the search request (text "
        "encoding, top-k, the photos' rows), then 20 thumbnail requests over the browser's 6 connections. "
        "The thumbnail time is measured by the client over one keep-alive connection: the server's time "
        "plus one loopback round trip.",
        "<!-- /web -->",
    ]
    return "\n".join(lines) + "\n"


def write_results(section: str, path: Path = HERE / "RESULTS.md") -> None:
    """Put `section` into RESULTS.md, replacing an earlier one (the rest of the file is the main run's)."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    start, end = text.find("<!-- web:"), text.find("<!-- /web -->")
    if start >= 0 and end > start:
        text = text[:start] + section + text[end + len("<!-- /web -->\n"):]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small inputs, toy bundle: a smoke run")
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--photos", type=int, default=None, help="catalog size (default 100,000)")
    parser.add_argument("--results", action="store_true", help="write the section of benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    from benchmarks import corpus, machine
    from benchmarks.pipeline import base_env
    from benchmarks.searching import fill_catalog
    from photoindex.config import load_config

    quick = args.quick
    count = args.photos or (2_000 if quick else 100_000)
    cache = args.out / "cache"
    work = args.out / "web-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    fp32, _ = corpus.model_bundles(cache, "toy" if quick else "vit-b32")
    model_cache = str(work / "model-cache")
    result: dict[str, Any] = {"machine": machine.describe_machine(),
                              "bundle": fp32.manifest.name, "photos": count}

    big = work / "big"
    env = base_env(big, fp32.directory, runtime_model_cache=model_cache, search_use_daemon="false")
    config = load_config(environ=env)
    t = time.perf_counter()
    fill_catalog(config, count)
    linked_thumbnails(config, count)
    result["setup_s"] = round(time.perf_counter() - t, 1)
    server = Served(env)
    try:
        status, _ = get(server.port, "/api/search?q=warm%20up&limit=20")  # loads the model and the index
        assert status == 200
        result["enter_to_20_thumbnails_ms"] = enter_to_thumbnails(server.url, list(QUERIES[: 4 if quick else 12]))
        result["cached_thumbnail_ms"] = thumbnail_times(server.port, count, 100 if quick else 1000)
        result["page_weight_bytes"] = page_weight(server.port)
    finally:
        server.stop()

    # The daemon's RSS with and without the page, on a small real library.
    from photoindex.testing.photos import make_photo_tree

    small_photos = work / "small-photos"
    make_photo_tree(small_photos, 60, size=(320, 240))
    rss: dict[str, float] = {}
    for web in (False, True):
        home = work / ("daemon-web" if web else "daemon")
        denv = base_env(home, fp32.directory, runtime_model_cache=model_cache, index_workers="1")
        from benchmarks.pipeline import photoindex_command, run_command

        run_command([*photoindex_command(), "index", str(small_photos), "--quiet"], denv)
        rss["with_page" if web else "without_page"] = round(daemon_rss(denv, web), 1)
    rss["added"] = round(rss["with_page"] - rss["without_page"], 1)
    result["daemon_rss_mib"] = rss

    # Thumbnails while indexing: the same photos with and without.
    photos = corpus.photo_set(cache, 6 if quick else 48, (640, 480) if quick else (4000, 3000), os.cpu_count() or 1)
    folder = work / "index-photos"
    folder.mkdir()
    for p in photos:
        os.link(p, folder / p.name)
    result["indexing_thumbnails"] = indexing_cost(folder, work, fp32.directory, {"runtime_model_cache": model_cache},
                                                  1 if quick else 3)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "web.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if args.results:
        write_results(markdown(result))


if __name__ == "__main__":
    main()
