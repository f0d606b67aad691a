"""`python -m benchmarks.scan [N]`: time and peak memory of `photoindex reindex` over N unchanged photos.

Reconciling a library that did not change is what cron and the daemon's hourly rescan do most;
its memory must not grow with the library. The photos are N copies of one small JPEG in folders
of 1,000, cataloged as indexed (as a past run would have left them), so the run is the walk and
the diff alone. Default N: 100,000 (about a minute to set up, kept in benchmarks/out/scan-N).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def prepare(work: Path, count: int) -> dict[str, str]:
    """The library and a home whose catalog holds every photo as indexed; returns the environment."""
    from photoindex.catalog import writes as catalog
    from photoindex.config import load_config
    from photoindex.library import open_library
    from photoindex.photos.imaging import PhotoInfo
    from photoindex.testing import make_bundle
    from photoindex.testing.photos import make_photo

    bundle, lib_dir, home = work / "toy", work / "photos", work / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOINDEX_")}
    env.update(PHOTOINDEX_HOME=str(home), PHOTOINDEX_MODEL_BUNDLE=str(bundle))
    if (home / "ready").exists():
        return env
    if not bundle.exists():
        make_bundle(bundle, "toy")
    data = make_photo(work / "one.jpg", (200, 10, 10), (32, 24)).read_bytes()
    for i in range(count):
        folder = lib_dir / f"{i // 1000:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"IMG_{i:07d}.jpg").write_bytes(data)
    with open_library(load_config(environ=env)) as lib:
        with lib.db.write() as s:
            root = catalog.add_root(s, lib_dir)
        files = sorted(lib_dir.rglob("*.jpg"))
        for start in range(0, len(files), 5000):
            with lib.db.write() as s:
                for p in files[start : start + 5000]:
                    st = p.stat()
                    catalog.store_indexed(s, root_id=root.id, path=p, size=st.st_size, mtime_ns=st.st_mtime_ns,
                                          content_hash="0" * 32, info=PhotoInfo(32, 24, "JPEG"))
    (home / "ready").write_text("")
    return env


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv else 100_000
    from benchmarks.pipeline import photoindex_command, run_command

    env = prepare(HERE / "out" / f"scan-{count}", count)
    result, wall, sampler = run_command([*photoindex_command(), "reindex", "--json"], env)
    report = json.loads(result.stdout)
    print(f"{report['unchanged']:,} unchanged photos reconciled in {wall:.1f} s; "
          f"peak RSS {sampler.peak.rss_mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
