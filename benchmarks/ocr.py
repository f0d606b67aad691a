"""`python -m benchmarks.ocr [recall|throughput|slowdown|words] [--quick]`: the OCR pass's quality and cost.

- recall: N generated text photos (English, Chinese, mixed; some rotated, some on busy backgrounds,
  font sizes 36-90 px on 1200x900), indexed and read with `gate = "all"`; a photo counts as found
  when `search --words WORD` has it in the top 5, for the first of its words of 4+ letters or 2+
  Chinese characters ("photo recall"), and over every such word ("word recall"). Also reports the
  reading throughput on these photos and the misspellings found.
- throughput: reading 12 MP photos (4000x3000 JPEGs with text of several sizes).
- slowdown: CLIP indexing throughput of the same 12 MP photos with `[ocr] enabled` off and on
  (ViT-B/32-sized bundle, random weights: the real compute).
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


def slowdown(count: int) -> dict[str, Any]:
    """CLIP indexing throughput (photos/s of the encoding run) with the text pass off and on."""
    from photoindex.indexing.indexer import run_index
    from photoindex.testing import make_bundle

    bundle = HERE / "out" / "cache" / "bundles" / "vit-b32"
    if not (bundle / "manifest.toml").is_file():
        shutil.rmtree(bundle, ignore_errors=True)
        make_bundle(bundle, "vit-b32")
    paths = _big_text_photos(count)
    out: dict[str, Any] = {"photos_12mp": count, "bundle": "vit-b32 (random weights)"}
    for label, enabled in (("off", "0"), ("on", "1"), ("off_again", "0")):
        home = OUT / f"slowdown-{label}"
        shutil.rmtree(home, ignore_errors=True)
        config = _config(home, bundle, PHOTOINDEX_OCR_ENABLED=enabled)
        report = run_index(config, [paths[0].parent])
        out[f"clip_photos_per_s_ocr_{label}"] = round(report.encoded / report.seconds, 2)
        if report.text:
            out["text_seconds_after"] = round(report.text["seconds"], 1)
    base = (out["clip_photos_per_s_ocr_off"] + out["clip_photos_per_s_ocr_off_again"]) / 2
    out["clip_slowdown_with_ocr"] = round(1 - out["clip_photos_per_s_ocr_on"] / base, 3)
    return out


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
            result = slowdown(4 if quick else 24)
        elif name == "words":
            result = words(2_000 if quick else 100_000)
        else:
            print(f"unknown benchmark {name!r}", file=sys.stderr)
            return 2
        print(json.dumps({name: result}, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
