"""Search filters, metadata and duplicates at scale (issue: "Search the way people remember photos").

- filtered text search at N photos with filters passing ~1% of them: warm p50, and that the full
  `--limit` comes back;
- the metadata a photo's header gives (EXIF date, camera, lens, GPS -> nearest city) per photo, next
  to the time indexing spends per photo;
- the backfill of N photos indexed before that metadata (headers only, nothing decoded or encoded);
- `photoindex duplicates` over N photos.

Run alone: `python -m benchmarks.filters [--photos 100000] [--bundle vit-b32]`; it prints JSON and
writes its section of RESULTS.md (between the markers below) unless `--no-record`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- filters: begin -->", "<!-- filters: end -->"
FILTERS = {
    "camera (1%)": dict(camera="rare"),
    "month (1.7%)": dict(after="2012-03", before="2012-03"),
    "near (1%)": dict(near="30.2741,120.1551,5"),
    "place (1%)": dict(place="杭州"),
    "folder (1%)": None,  # filled in: the photos' first folder of 1,000
}


def fill(config: Any, count: int, chunk: int = 10_000) -> float:
    """`count` photos with clustered vectors and the metadata columns the indexer writes (a camera of 7,
    a date from 2010 to 2024), inserted in bulk; returns seconds taken."""
    from benchmarks.searching import clustered_vectors
    from photoindex.catalog import writes as catalog
    from photoindex.library import open_library

    start = time.perf_counter()
    root_dir = config.home / "library"
    root_dir.mkdir(parents=True, exist_ok=True)
    with open_library(config) as lib:
        vectors = clustered_vectors(count, lib.bundle.manifest.embedding_dim, seed=42)
        with lib.db.write() as s:
            root = catalog.add_root(s, root_dir)
        now = "2026-01-01 00:00:00.000000"
        for begin in range(0, count, chunk):
            end = min(count, begin + chunk)
            hashes = [f"{i:064x}" for i in range(begin, end)]
            rows = []
            for i, h in zip(range(begin, end), hashes, strict=True):
                taken = f"20{10 + i % 15:02d}-{1 + i % 12:02d}-{1 + i % 28:02d}T12:00:00"
                path = os.fsencode(root_dir / f"{i // 1000:03d}" / f"IMG_{i:06d}.jpg")
                rows.append((root.id, path, 4_000_000 + i, 1_700_000_000_000_000_000 + i, h, 4000, 3000, "JPEG",
                             taken, "Benchmark", f"Model {i % 7}", taken, "exif", now, now))
            with lib.db.write() as s:
                catalog.add_vectors(s, lib.model_id, list(zip(hashes, vectors[begin:end], strict=True)))
                catalog.connection(s).executemany(
                    "INSERT INTO photos (root_id, path, size, mtime_ns, content_hash, width, height, format, "
                    "taken_at, camera_make, camera_model, taken_local, taken_source, status, meta_version, "
                    "first_seen, updated_at) VALUES (?, CAST(? AS TEXT), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                    "'indexed', 1, ?, ?)",
                    rows,
                )
    return time.perf_counter() - start


def mark_one_percent(config: Any) -> None:
    """Give 1% of the catalog's photos a rare camera, and another 1% GPS in Hangzhou (with its place)."""
    from photoindex.catalog import writes as catalog
    from photoindex.library import open_library

    with open_library(config) as lib, lib.db.write() as s:
        con = catalog.connection(s)
        con.execute("UPDATE photos SET camera_model = 'Rare 1' WHERE id % 100 = 0")
        place = catalog._place_id(s, 30.2741, 120.1551)
        con.execute(
            "UPDATE photos SET gps_lat = 30.2741 + (id % 7) * 0.001, gps_lon = 120.1551, place_id = ? "
            "WHERE id % 100 = 1",
            (place,),
        )


def filtered_search(config: Any, rounds: int, limit: int = 20) -> dict[str, Any]:
    """Warm p50/p95 of text queries under each filter (text encode included), and the hits returned."""
    from benchmarks.searching import QUERIES, percentiles
    from photoindex.library import open_library
    from photoindex.search import Filters, SearchRequest, search
    from photoindex.search.query import query_vector, search_vector

    rows: dict[str, Any] = {}
    asked = itertools.count()  # every measured text new to the library, which keeps recent query vectors
    with open_library(config) as lib:
        handle = lib.open_index()
        lib.text_encoder()
        with lib.db.reads() as con:
            first = con.execute("SELECT path FROM photos ORDER BY id LIMIT 1").fetchone()[0]
        folder = str(Path(first).parent)
        for name, options in FILTERS.items():
            filters = Filters(folder=folder) if options is None else Filters.from_options(**options)
            with lib.db.reads() as con:
                from photoindex.catalog import reads

                passing = len(reads.vector_ids_matching(con, lib.model_id, filters))
            times, counts, after = [], [], []
            search(lib, SearchRequest.build(text=QUERIES[0], limit=limit, filters=filters), index=handle)  # warm-up
            for i in range(rounds):
                text = f"{QUERIES[i % len(QUERIES)]} {next(asked)}"
                request = SearchRequest.build(text=text, limit=limit, filters=filters)
                t = time.perf_counter()
                hits = search(lib, request, index=handle)
                times.append(time.perf_counter() - t)
                counts.append(len(hits))
                # The same search from its query vector: the filter's own cost, without the text encoder's
                # (which every text search pays, filtered or not).
                query = query_vector(lib, request.terms)
                t = time.perf_counter()
                search_vector(lib, query, request, index=handle)
                after.append(time.perf_counter() - t)
            rows[name] = {**percentiles(times), "passing": passing, "min_hits": min(counts), "limit": limit,
                          "after_encoding_p50_ms": percentiles(after)["p50_ms"]}
        times, after = [], []
        for i in range(rounds):
            request = SearchRequest.build(text=f"{QUERIES[i % len(QUERIES)]} {next(asked)}", limit=limit)
            t = time.perf_counter()
            search(lib, request, index=handle)
            times.append(time.perf_counter() - t)
            query = query_vector(lib, request.terms)
            t = time.perf_counter()
            search_vector(lib, query, request, index=handle)
            after.append(time.perf_counter() - t)
        rows["no filter"] = {**percentiles(times), "passing": len(handle.index), "limit": limit,
                             "after_encoding_p50_ms": percentiles(after)["p50_ms"]}
        t = time.perf_counter()
        listing = search(lib, SearchRequest.build(limit=limit, filters=Filters.from_options(camera="rare")))
        rows["listing, camera (1%)"] = {"ms": (time.perf_counter() - t) * 1000, "hits": len(listing)}
    return rows


def duplicates(config: Any) -> dict[str, Any]:
    """Seconds of `find_duplicates` over the whole catalog."""
    from photoindex.search.duplicates import find_duplicates

    t = time.perf_counter()
    groups = find_duplicates(config)
    return {"seconds": time.perf_counter() - t, "groups": len(groups)}


def metadata_cost(photos: int = 2000) -> dict[str, Any]:
    """Per photo: reading the header's metadata (date, camera, lens, GPS) and turning it into catalog
    columns (wall-clock date, nearest city); plus the one-off load of the places data."""
    from PIL import Image

    import photoindex.places as places
    from photoindex.catalog.writes import taken_fields
    from photoindex.photos.imaging import _photo_info, _read_exif
    from photoindex.testing.photos import camera_exif, make_photo

    with tempfile.TemporaryDirectory() as tmp:
        exif = camera_exif(taken="2024:06:15 18:30:00", offset="+08:00", make="Apple", model="iPhone 15 Pro",
                           lens="iPhone 15 Pro back camera", gps=(30.2741, 120.1551, 12.0))
        path = make_photo(Path(tmp) / "a.jpg", (200, 30, 30), size=(640, 480), exif=exif)
        import subprocess

        load_s = float(subprocess.run(
            [sys.executable, "-c", "import time; t = time.perf_counter(); import photoindex.places as p; "
             "p.nearest_place(0.0, 0.0); print(time.perf_counter() - t)"],
            capture_output=True, text=True, check=True).stdout)
        with Image.open(path) as im:
            t = time.perf_counter()
            for i in range(photos):
                info = _photo_info(im, _read_exif(im, decoded=True), im.size)
                taken_fields(info.taken_at, info.taken_source, None)
                places.nearest_place(30.2741 + (i % 100) * 0.01, 120.1551)
            per_photo_ms = (time.perf_counter() - t) / photos * 1000
    return {"per_photo_ms": per_photo_ms, "places_load_s": load_s}


def backfill(work: Path, bundle: Path, count: int) -> dict[str, Any]:
    """`photoindex index` over `count` unchanged photos indexed before their metadata was kept."""
    from benchmarks.pipeline import base_env
    from photoindex.catalog import writes as catalog
    from photoindex.config import load_config
    from photoindex.indexing.indexer import run_index
    from photoindex.library import open_library
    from photoindex.testing.photos import camera_exif, make_photo

    home, root = work / "home-backfill", work / "backfill"
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    seeds = []
    for i, (where, when) in enumerate(((30.2741, 120.1551), (48.8584, 2.2945)), 1):
        exif = camera_exif(taken=f"2024:06:1{i} 18:30:00", offset="+08:00", make="Apple", model="iPhone 15 Pro",
                           lens="iPhone 15 Pro back camera", gps=(where, when, 10.0))
        seeds.append(make_photo(work / f"seed{i}.jpg", (200, 30 * i, 30), size=(320, 240), exif=exif).read_bytes())
    t = time.perf_counter()
    files = []
    for i in range(count):
        path = root / f"{i // 1000:03d}" / f"IMG_{i:06d}.jpg"
        if i % 1000 == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(seeds[i % 2])
        files.append(path)
    make_s = time.perf_counter() - t
    config = load_config(environ=base_env(home, bundle, ocr_enabled="false"))  # metadata, not text, is measured
    with open_library(config) as lib:
        import numpy as np

        from photoindex.vectors.scoring import l2_normalize

        dim = lib.bundle.manifest.embedding_dim
        unit = l2_normalize(np.random.default_rng(0).standard_normal((2, dim)).astype(np.float32))
        with lib.db.write() as s:
            r = catalog.add_root(s, root)
            # The two contents' vectors: the photos count as indexed under this model.
            catalog.add_vectors(s, lib.model_id, [(f"{i:064x}", unit[i]) for i in range(2)])
        now = "2026-01-01 00:00:00.000000"
        for begin in range(0, count, 10_000):
            rows = []
            for i in range(begin, min(count, begin + 10_000)):
                st = files[i].stat()
                rows.append((r.id, os.fsencode(files[i]), st.st_size, st.st_mtime_ns, f"{i % 2:064x}", now, now))
            with lib.db.write() as s:
                # As a catalog of before the metadata columns: no metadata, meta_version 0.
                catalog.connection(s).executemany(
                    "INSERT INTO photos (root_id, path, size, mtime_ns, content_hash, status, first_seen, updated_at)"
                    " VALUES (?, CAST(? AS TEXT), ?, ?, ?, 'indexed', ?, ?)",
                    rows,
                )
    t = time.perf_counter()
    report = run_index(config, [root])
    seconds = time.perf_counter() - t
    t = time.perf_counter()
    again = run_index(config, [root])
    unchanged_s = time.perf_counter() - t
    cpu_ms = backfill_cpu_ms(config, files[:2000])
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)
    return {"photos": count, "seconds": seconds, "backfilled": report.metadata_backfilled,
            "encoded": report.encoded, "rescan_s": unchanged_s, "rescan_backfilled": again.metadata_backfilled,
            "files_written_s": make_s, "cpu_ms_per_photo": cpu_ms}


def backfill_cpu_ms(config: Any, files: list[Path]) -> float:
    """CPU milliseconds per photo of the backfill's work (header read, columns, place, bulk update) in
    one process: what an idle machine pays, split over its decode workers and the main process."""
    from photoindex.catalog import writes as catalog
    from photoindex.library import open_library
    from photoindex.photos.imaging import probe

    with open_library(config) as lib:
        with lib.db.read() as s:
            ids = dict(catalog.connection(s).execute("SELECT CAST(path AS BLOB), id FROM photos").fetchall())
        t = time.process_time()
        rows = []
        for path in files:
            info = probe(path)
            rows.append((ids[os.fsencode(path)], info, path.stat().st_mtime_ns))
        with lib.db.write() as s:
            catalog.store_metadata(s, rows)
        return (time.process_time() - t) / len(files) * 1000


def measure(work: Path, bundle: Path, photos: int, rounds: int) -> dict[str, Any]:
    """Every measure of this module, on a catalog of `photos` synthetic photos."""
    from benchmarks.pipeline import base_env
    from photoindex.config import load_config

    home = work / "home-filters"
    shutil.rmtree(home, ignore_errors=True)
    config = load_config(environ=base_env(home, bundle, ocr_enabled="false"))  # metadata, not text, is measured
    out: dict[str, Any] = {"photos": photos}
    out["fill_s"] = fill(config, photos)
    mark_one_percent(config)
    out["search"] = filtered_search(config, rounds)
    print(json.dumps({"search": out["search"]}), file=sys.stderr, flush=True)
    out["duplicates"] = duplicates(config)
    print(json.dumps({"duplicates": out["duplicates"]}), file=sys.stderr, flush=True)
    shutil.rmtree(home, ignore_errors=True)
    out["metadata"] = metadata_cost()
    print(json.dumps({"metadata": out["metadata"]}), file=sys.stderr, flush=True)
    out["backfill"] = backfill(work, bundle, photos)
    return out


def markdown(r: dict[str, Any], indexing_rates: dict[str, float]) -> str:
    """The RESULTS.md section."""
    n = f"{r['photos']:,}"
    lines = [BEGIN, f"## Search filters, metadata, duplicates ({n} photos)", "",
             f"Run {r['when']} with `python -m benchmarks.filters` on the `{r['bundle']}` bundle; "
             "warm queries include encoding the text.", "",
             "| measure | result | target | met |", "|---|---|---|---|"]
    for name, row in r["search"].items():
        if "p50_ms" not in row:
            continue
        full = row.get("min_hits", row["limit"]) >= min(row["limit"], row["passing"])
        target = "<= 50 ms, full --limit" if name != "no filter" else "reference"
        met = ("yes" if row["p50_ms"] <= 50 and full else "**no**") if name != "no filter" else ""
        lines.append(f"| filtered text search, {name}: p50 / p95 ({row['passing']:,} pass, "
                     f"{row.get('min_hits', '-')} of {row['limit']} returned) | "
                     f"{row['p50_ms']:.1f} / {row['p95_ms']:.1f} ms | {target} | {met} |")
        if "after_encoding_p50_ms" in row:
            after = row["after_encoding_p50_ms"]
            met = ("yes" if after <= 50 and full else "**no**") if name != "no filter" else ""
            lines.append(f"| the same, {name}, from the query vector (text encoder excluded): p50 | {after:.1f} ms | "
                         f"{target} | {met} |")
    listing = r["search"]["listing, camera (1%)"]
    lines.append(f"| listing without a query, camera (1%) | {listing['ms']:.1f} ms ({listing['hits']} hits) | | |")
    meta = r["metadata"]
    for label, rate in indexing_rates.items():
        share = meta["per_photo_ms"] / (1000.0 / rate) * 100
        lines.append(f"| metadata per photo vs indexing at {rate:.1f} photos/s ({label}) | "
                     f"{meta['per_photo_ms']:.3f} ms = {share:.2f}% | <= 5% | {'yes' if share <= 5 else '**no**'} |")
    lines.append(f"| places data, loaded once per process | {meta['places_load_s']:.2f} s | reported | |")
    b = r["backfill"]
    lines.append(f"| backfill of {b['photos']:,} photos' metadata (walk + headers + catalog; {b['encoded']} encoded) "
                 f"| {b['seconds']:.1f} s | <= 120 s | {'yes' if b['seconds'] <= 120 else '**no**'} |")
    idle = b["cpu_ms_per_photo"] * b["photos"] / 2000  # two cores, seconds
    lines.append(f"| backfill CPU per photo, one process (idle 2-core estimate: {idle:.0f} s for {b['photos']:,}) | "
                 f"{b['cpu_ms_per_photo']:.2f} ms | reported | |")
    lines.append(f"| the next scan of the same photos (nothing to backfill) | {b['rescan_s']:.1f} s | reported | |")
    d = r["duplicates"]
    lines.append(f"| `photoindex duplicates` at {n} photos | {d['seconds']:.1f} s ({d['groups']} groups) | <= 60 s "
                 f"| {'yes' if d['seconds'] <= 60 else '**no**'} |")
    lines += ["", "Filters become an id set (SQL entering by each filter's own index, then each photo's vector by "
              "content hash) that the vector search is restricted to (up to 2,000 ids scored from their own "
              "vectors, more through FAISS `IDSelectorBatch`; the IVF index probes proportionally more lists), so "
              "the filtered search returns the full limit. See docs/search.md, \"Filters\".", "",
              "Each text search first encodes its text: the ViT-B/32 text transformer over 77 tokens, the same for "
              "a filtered and an unfiltered search (the `no filter` row). On a 2-core machine that alone takes "
              "~85-110 ms, so a whole text search cannot come under 50 ms here; the rows \"from the query vector\" "
              "measure what the filter itself costs (also what a search by an example photo already in the "
              "catalog pays).", END]
    return "\n".join(lines) + "\n"


def record(section: str, results: Path = HERE / "RESULTS.md") -> None:
    """Put the section into RESULTS.md, replacing an earlier one."""
    text = results.read_text(encoding="utf-8") if results.exists() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section.rstrip("\n") + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    results.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, measure, print JSON, record the section."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.filters", description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--bundle", default="vit-b32", choices=("vit-b32", "toy"))
    parser.add_argument("--cache", type=Path, default=HERE / "out" / "cache")
    parser.add_argument("--no-record", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args(argv)
    from photoindex.testing import make_bundle

    bundle = args.cache / "bundles" / args.bundle  # the fp32 bundle run.py builds (and caches) too
    if not (bundle / "manifest.toml").is_file():
        shutil.rmtree(bundle, ignore_errors=True)
        make_bundle(bundle, args.bundle)
    work = Path(tempfile.mkdtemp(prefix="photoindex-filters-"))
    try:
        r = measure(work, bundle, args.photos, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    r["bundle"] = args.bundle
    r["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    r["load"] = os.getloadavg()
    print(json.dumps(r, indent=2, default=str))
    if not args.no_record:
        # Indexing rates of this machine from the same RESULTS.md (CPU fp32 and the NPU stand-in).
        rates = {"CPU fp32": 23.7, "NPU stand-in": 86.8}
        record(markdown(r, rates))
    return 0


if __name__ == "__main__":
    sys.exit(main())
