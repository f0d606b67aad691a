"""`python -m benchmarks.ocr [recall|throughput|slowdown|words] [--quick]`: the OCR pass's quality and cost.

- recall: N generated text photos (English, Chinese, mixed; some rotated, some on busy backgrounds,
  font sizes 36-90 px on 1200x900), indexed and read with `gate = "all"`; a photo counts as found
  when `search --words WORD` has it in the top 5, for the first of its words of 4+ letters or 2+
  Chinese characters ("photo recall"), and over every such word ("word recall"). Also reports the
  reading throughput on these photos and the misspellings found.
- throughput: reading 12 MP photos (4000x3000 JPEGs with text of several sizes).
- slowdown: the daemon's CLIP indexing throughput on waves of new 12 MP photos with `[ocr] enabled`
  off and on, interleaved; with it on, each wave arrives while the daemon reads a backlog of 12 MP
  text photos (ViT-B/32-sized bundle, random weights: the real compute). `photoindex index` runs
  the text pass only after its last CLIP batch, so only the daemon has both running.
- words: a words search (`search --words`, warm, in-process) at 100,000 photos, 30% with text.

Inputs are made once under benchmarks/out/ocr. Each prints one JSON line; RESULTS.md records them.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "ocr"


def _config(home: Path, bundle: Path, **extra: str) -> Any:
    from photoindex.config import load_config

    env = {"PHOTOINDEX_HOME": str(home), "PHOTOINDEX_MODEL_BUNDLE": str(bundle), "PHOTOINDEX_OCR_GATE": "all",
           "PHOTOINDEX_SEARCH_USE_DAEMON": "0", **extra}
    return load_config(environ=env)


def _toy() -> Path:
    from photoindex.testing import make_bundle

    path = OUT / "toy"
    if not (path / "manifest.toml").is_file():
        make_bundle(path, "toy")
    return path


def _qualifies(word: str) -> bool:
    from photoindex.ocr.terms import is_cjk

    return len(word) >= 2 if is_cjk(word) else len(word) >= 4


def recall(count: int) -> dict[str, Any]:
    """Index and read `count` generated text photos; the share found in the top 5 by one of their words."""
    from photoindex.indexing.indexer import run_index
    from photoindex.library import open_library
    from photoindex.search.protocol import SearchRequest
    from photoindex.search.query import search
    from photoindex.testing.textphotos import make_text_set

    work = OUT / f"recall-{count}"
    shutil.rmtree(work, ignore_errors=True)
    photos = make_text_set(work / "photos", count, seed=7)
    config = _config(work / "home", _toy())
    report = run_index(config, [work / "photos"])
    assert report.text is not None
    found_first = found_words = asked = 0
    misses: list[str] = []
    slips = {"found": 0, "asked": 0}
    with open_library(config) as lib:
        def top5(word: str) -> list[str]:
            return [Path(h.path).name for h in search(lib, SearchRequest.build(words=word, limit=5))]

        for photo in photos:
            words = [w for w in photo.words if _qualifies(w)]
            for i, word in enumerate(words):
                hit = photo.path.name in top5(word)
                asked += 1
                found_words += hit
                if i == 0:
                    found_first += hit
                    if not hit:
                        misses.append(f"{photo.path.name}: {word}")
            latin = [w for w in words if w.isascii() and len(w) >= 5]
            if latin:  # one slip: the second and third letters swapped
                w = latin[0]
                slips["asked"] += 1
                slips["found"] += photo.path.name in top5(w[0] + w[2] + w[1] + w[3:])
    text = report.text
    return {
        "photos": count,
        "photo_recall_at_5": round(found_first / count, 4),
        "word_recall_at_5": round(found_words / asked, 4),
        "words_asked": asked,
        "read_with_text": text["with_text"],
        "reading_photos_per_s_1200x900": round(text["read"] / text["seconds"], 2),
        "misspelt_found": f"{slips['found']}/{slips['asked']}",
        "missed_examples": misses[:10],
    }


def _big_text_photos(count: int) -> list[Path]:
    from photoindex.testing.textphotos import CHINESE, ENGLISH, make_text_photo

    folder = OUT / "photos-12mp"
    paths = []
    for i in range(count):
        path = folder / f"IMG_{i:04d}.jpg"
        if not path.is_file():
            lines = [f"{ENGLISH[i % len(ENGLISH)].upper()} {ENGLISH[(i * 7) % len(ENGLISH)]}",
                     f"{CHINESE[i % len(CHINESE)]} {CHINESE[(i * 5) % len(CHINESE)]}"]
            make_text_photo(path, lines, size=(4000, 3000), font_size=(60, 90, 140)[i % 3], busy=i % 2 == 1,
                            seed=500 + i)
        paths.append(path)
    return paths


def throughput(count: int) -> dict[str, Any]:
    """Reading 12 MP photos: photos per second of the text pass alone (decode worker + models)."""
    from photoindex.indexing.indexer import run_index

    paths = _big_text_photos(count)
    work = OUT / "throughput"
    shutil.rmtree(work / "home", ignore_errors=True)
    config = _config(work / "home", _toy())
    report = run_index(config, [paths[0].parent])
    assert report.text is not None
    t = report.text
    return {"photos_12mp": t["read"], "with_text": t["with_text"], "seconds": round(t["seconds"], 1),
            "photos_per_s": round(t["read"] / t["seconds"], 3)}


def _vit_b32() -> Path:
    from photoindex.testing import make_bundle

    bundle = HERE / "out" / "cache" / "bundles" / "vit-b32"
    if not (bundle / "manifest.toml").is_file():
        shutil.rmtree(bundle, ignore_errors=True)
        make_bundle(bundle, "vit-b32")
    return bundle


def _wave_photos(count: int) -> list[Path]:
    """`count` distinct 12 MP photos without text (made once): each wave brings new content to encode."""
    from photoindex.testing import COLOURS
    from photoindex.testing.photos import make_photo

    folder = OUT / "waves-12mp"
    colours = list(COLOURS.values())
    paths = []
    for i in range(count):
        path = folder / f"WAVE_{i:04d}.jpg"
        if not path.is_file():
            make_photo(path, colours[i % len(colours)], size=(4000, 3000), seed=9000 + i)
        paths.append(path)
    return paths


class _Daemon:
    """`python -m photoindex daemon` on the benchmark's home, its log in a file; the catalog read from outside."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        import subprocess

        self.home = Path(env["PHOTOINDEX_HOME"])
        self._log = open(log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "photoindex", "daemon"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=self._log)

    def state(self) -> str:
        try:
            data = json.loads((self.home / "daemon.json").read_text())
        except (OSError, ValueError):
            return ""
        return str(data.get("state")) if data.get("pid") == self.proc.pid else ""

    def count(self, table: str) -> int:
        import sqlite3

        con = sqlite3.connect(f"file:{self.home / 'photoindex.db'}?mode=ro", uri=True, timeout=30)
        try:
            return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            con.close()

    def wait(self, what: str, ready: Any, limit: float = 600.0) -> None:
        deadline = time.monotonic() + limit
        while not ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the daemon did not get to {what} (see {self._log.name})")
            time.sleep(0.05)

    def stop(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)
        self._log.close()


def _wave_rate(env: dict[str, str], ocr: bool, batch: list[Path], root: Path, staging: Path, log: Path) -> float:
    """Start the daemon (reading text, when `ocr`), rename `batch` into the root, and time it to its last vector:
    photos per second."""
    d = _Daemon({**env, "PHOTOINDEX_OCR_ENABLED": "1" if ocr else "0"}, log)
    try:
        if ocr:  # models loaded, two photos read (each pass is one photo on a loaded machine), the next one begun
            d.wait("reading", lambda: d.state() == "reading text" and d.count("photo_text") >= 2)
            time.sleep(0.5)
        else:
            d.wait("idle", lambda: d.state() == "idle")
        before = d.count("vectors")
        for p in batch:
            os.link(p, staging / p.name)
        t0 = time.monotonic()
        for p in batch:
            os.rename(staging / p.name, root / p.name)
        d.wait("the wave's vectors", lambda: d.count("vectors") >= before + len(batch))
        return len(batch) / (time.monotonic() - t0)
    finally:
        d.stop()


def slowdown(rounds: int, wave: int, backlog: int) -> dict[str, Any]:
    """CLIP indexing throughput of the daemon ("when both run") with the text pass off and on, interleaved.

    One home and root holding `backlog` 12 MP text photos, CLIP-indexed first. Each round runs the
    daemon twice, once with `[ocr] enabled` off and once on (the order alternating between rounds);
    with it on, every reading is forgotten first, so the backlog waits to be read, and the wave comes
    0.5 s after the second photo was read (the third being decoded or read: the case to measure).
    A wave is `wave` new 12 MP photos renamed into the root at once; its throughput is `wave` / (the
    seconds from the renames to its last vector in the catalog), settle time (0.3 s) and batch wait
    (0.3 s) included alike. ViT-B/32-sized bundle (random weights: the real compute); the daemon's
    `[ocr] nice` at its default.
    """
    from photoindex.indexing.indexer import run_index

    bundle = _vit_b32()
    texts = _big_text_photos(backlog)
    waves = _wave_photos(rounds * 2 * wave)
    work = OUT / "slowdown"
    shutil.rmtree(work, ignore_errors=True)
    root, staging = work / "Photos", work / "staging"
    root.mkdir(parents=True)
    staging.mkdir()
    for p in texts:
        os.link(p, root / p.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOINDEX_") and k != "JOURNAL_STREAM"}
    env.update(
        PHOTOINDEX_HOME=str(work / "home"), PHOTOINDEX_MODEL_BUNDLE=str(bundle), PHOTOINDEX_OCR_GATE="all",
        PHOTOINDEX_SEARCH_USE_DAEMON="0", PHOTOINDEX_DAEMON_SETTLE_SECONDS="0.3",
        PHOTOINDEX_DAEMON_MAX_BATCH_WAIT="0.3", PHOTOINDEX_DAEMON_LOG_LEVEL="INFO",
    )
    run_index(_config(work / "home", bundle, PHOTOINDEX_OCR_ENABLED="0"), [root])  # the backlog's vectors
    rates: dict[str, list[float]] = {"off": [], "on": []}
    next_photo = iter(waves)
    for k in range(rounds):
        for label in ("off", "on") if k % 2 == 0 else ("on", "off"):
            if label == "on":
                import sqlite3

                con = sqlite3.connect(work / "home" / "photoindex.db")
                with con:
                    for table in ("photo_text_words", "photo_text_trigrams", "photo_text"):
                        con.execute(f"DELETE FROM {table}")
                con.close()
            batch = [next(next_photo) for _ in range(wave)]
            rates[label].append(_wave_rate(env, label == "on", batch, root, staging, work / f"daemon-{k}.log"))
    log = "".join(p.read_text(errors="replace") for p in work.glob("daemon-*.log"))
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    return {
        "where": "daemon", "photos_12mp_per_wave": wave, "rounds": rounds, "reading_backlog_12mp": backlog,
        "bundle": "vit-b32 (random weights)",
        "clip_photos_per_s_ocr_off": [round(r, 2) for r in rates["off"]],
        "clip_photos_per_s_ocr_on": [round(r, 2) for r in rates["on"]],
        "median_off": round(off, 2), "median_on": round(on, 2),
        "clip_slowdown_with_ocr": round(1 - on / off, 3),
        "text_passes_cut_for_clip": log.count("reading text gave way to new work"),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def words(count: int, queries: int = 200) -> dict[str, Any]:
    """A warm `search --words` at `count` photos, 30% of them with text."""
    import numpy as np

    from photoindex.catalog import text as catalog_text
    from photoindex.catalog import writes as catalog
    from photoindex.catalog.writes import connection
    from photoindex.library import open_library
    from photoindex.photos.imaging import PhotoInfo
    from photoindex.search.protocol import SearchRequest
    from photoindex.search.query import search
    from photoindex.testing.textphotos import CHINESE, ENGLISH

    work = OUT / f"words-{count}"
    config = _config(work / "home", _toy())
    rng = np.random.default_rng(3)
    filler = [f"{a}{b}" for a in "bcdfghjklmnprstvw" for b in ("ax", "el", "orn", "ite", "usk", "ame")]
    if not (work / "ready").exists():
        shutil.rmtree(work, ignore_errors=True)
        (work / "photos").mkdir(parents=True)
        with open_library(config) as lib:
            with lib.db.write() as s:
                root = catalog.add_root(s, str(work / "photos"))
            for start in range(0, count, 5000):
                with lib.db.write() as s:
                    con = connection(s)
                    for i in range(start, min(count, start + 5000)):
                        digest = f"{i:064x}"
                        catalog.store_indexed(s, root_id=root.id, path=str(work / "photos" / f"IMG_{i:07d}.jpg"),
                                              size=1000, mtime_ns=i, content_hash=digest,
                                              info=PhotoInfo(4000, 3000, "JPEG"))
                        if rng.random() < 0.3:
                            pool = ENGLISH if rng.random() < 0.6 else CHINESE
                            picked = [str(w) for w in rng.choice(pool, 3)] + [str(w) for w in rng.choice(filler, 4)]
                            lines = [{"text": " ".join(picked[:4]), "confidence": 0.9, "box": [[0, 0]] * 4},
                                     {"text": " ".join(picked[4:]), "confidence": 0.9, "box": [[0, 0]] * 4}]
                            catalog_text.store(con, digest, status="text", engine="benchmark", lines=lines)
                        else:
                            catalog_text.store(con, digest, status="none", engine="benchmark")
        (work / "ready").write_text("")
    asked = [str(w) for w in rng.choice(ENGLISH + CHINESE, queries)]
    times = []
    with open_library(config) as lib:
        for w in asked[:20]:  # warm: pages in the page cache, statements prepared
            search(lib, SearchRequest.build(words=w, limit=20))
        for w in asked:
            t0 = time.perf_counter()
            search(lib, SearchRequest.build(words=w, limit=20))
            times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {"photos": count, "with_text": "30%", "queries": queries,
            "p50_ms": round(statistics.median(times), 2), "p95_ms": round(times[int(0.95 * len(times))], 2),
            "max_ms": round(times[-1], 2)}


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    which = [a for a in argv if not a.startswith("--")] or ["recall", "throughput", "slowdown", "words"]
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    for name in which:
        if name == "recall":
            result = recall(12 if quick else 210)
        elif name == "throughput":
            result = throughput(2 if quick else 12)
        elif name == "slowdown":
            result = slowdown(*((1, 4, 4) if quick else (3, 8, 12)))
        elif name == "words":
            result = words(2_000 if quick else 100_000)
        else:
            print(f"unknown benchmark {name!r}", file=sys.stderr)
            return 2
        print(json.dumps({name: result}, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
