"""End-to-end indexing: the real `photoindex index` command on the CPU, and the real Indexer with
the NPU stand-in encoder, each on a fresh home, with the peak memory of every process of the run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.memory import TreeSampler, tree_cpu_seconds


@dataclass
class IndexRun:
    """One indexing run: photos encoded, the run's own seconds and the command's wall seconds."""

    encoded: int
    seconds: float
    wall_seconds: float
    peak_rss_mib: float = 0.0
    peak_pss_mib: float = 0.0
    processes: int = 0
    cpu_seconds: float = 0.0  # the process tree's over the run (npu_index: the Indexer's run alone)
    own_cpu_seconds: float = 0.0  # the indexing process's alone (npu_index: the decode workers excluded)

    @property
    def rate(self) -> float:
        """Photos per second over the run (scan, decode, encode, commit, index file)."""
        return self.encoded / self.seconds if self.seconds else 0.0

    @property
    def wall_rate(self) -> float:
        """Photos per second over the whole command, start-up and model loading included."""
        return self.encoded / self.wall_seconds if self.wall_seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        """Fields plus both rates."""
        return {**asdict(self), "rate": self.rate, "wall_rate": self.wall_rate}


def photoindex_command() -> list[str]:
    """The installed `photoindex` script next to this Python, else `python -m photoindex`."""
    script = Path(sys.executable).with_name("photoindex")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "photoindex"]


def base_env(home: Path, bundle: Path, **settings: str) -> dict[str, str]:
    """This environment without any PHOTOINDEX_* setting, then a home, a bundle and `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOINDEX_")}
    env.update(PHOTOINDEX_HOME=str(home), PHOTOINDEX_MODEL_BUNDLE=str(bundle))
    env.update({f"PHOTOINDEX_{k.upper()}": v for k, v in settings.items()})
    return env


def run_command(
    args: list[str], env: dict[str, str], timeout: float = 900.0
) -> tuple[subprocess.CompletedProcess[str], float, TreeSampler]:
    """Run a command, sampling the memory of its process tree; (result, wall seconds, sampler)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreeSampler(proc.pid) as sampler:
        out, err = proc.communicate(timeout=timeout)
    wall = time.perf_counter() - start
    result = subprocess.CompletedProcess(args, proc.returncode, out, err)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}:\n{err[-2000:]}")
    return result, wall, sampler


def cli_index(photos: Path, home: Path, bundle: Path, **settings: str) -> IndexRun:
    """`photoindex index PHOTOS --json` on a fresh home."""
    shutil.rmtree(home, ignore_errors=True)
    result, wall, sampler = run_command([*photoindex_command(), "index", str(photos), "--json"],
                                        base_env(home, bundle, **settings))
    report = json.loads(result.stdout)
    if report["failed"]:
        raise RuntimeError(f"indexing {photos} failed for {report['failed']} photos: {report['failures'][:3]}")
    return IndexRun(report["encoded"], report["seconds"], wall, sampler.peak.rss_mib, sampler.peak.pss_mib,
                    sampler.peak.processes)


def npu_index(photos: Path, home: Path, bundle: Path, workers: int, batch_size: int, **settings: str) -> IndexRun:
    """The real Indexer (decode pool, batches, transactions, index file) with the NPU stand-in encoder;
    `settings` as for `base_env` (e.g. thumbnails_while_indexing="false")."""
    from benchmarks.stages import npu_encoder
    from photoindex.catalog import writes as catalog
    from photoindex.config import load_config
    from photoindex.indexing.indexer import Indexer
    from photoindex.library import open_library

    shutil.rmtree(home, ignore_errors=True)
    env = base_env(home, bundle, index_workers=str(workers), index_batch_size=str(batch_size), **settings)
    config = load_config(environ=env)
    start = time.perf_counter()
    with open_library(config) as lib:
        m = lib.bundle.manifest
        encoder = npu_encoder(m.image, m.embedding_dim)
        lib.image_encoder = lambda: encoder  # type: ignore[method-assign]  # the board's NPU, stood in
        with lib.db.write() as s:
            root = catalog.add_root(s, photos)
        cpu, own = tree_cpu_seconds(), time.process_time()
        report = Indexer(lib).run([root])
        cpu, own = tree_cpu_seconds() - cpu, time.process_time() - own
    wall = time.perf_counter() - start
    if report.failed:
        raise RuntimeError(f"indexing {photos} failed for {report.failed} photos")
    return IndexRun(report.encoded, report.seconds, wall, cpu_seconds=cpu, own_cpu_seconds=own)
