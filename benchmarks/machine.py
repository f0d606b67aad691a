"""What the numbers were measured on: CPU model, cores, memory, library versions, BLAS settings."""

from __future__ import annotations

import os
import platform
import sys
from datetime import datetime, timezone
from typing import Any


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    return None


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def compile_photoindex() -> None:
    """Write byte-code for photoindex's modules, as `pip install` does.

    A checkout run with PYTHONDONTWRITEBYTECODE (or read-only) would otherwise compile every module
    changed since its byte-code was written in every timed process: measured ~0.1-0.3 s of a cold
    search, and more for `index` (its workers and helper processes import the package too).
    """
    import compileall
    from pathlib import Path

    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "photoindex"), quiet=1)


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def describe_machine() -> dict[str, Any]:
    """Date, CPU, cores, RAM, load at start, Python and library versions, BLAS-related environment."""
    import faiss
    import numpy
    import onnxruntime
    import PIL

    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": usable_cores(),
        "ram_gib": _memory_gib(),
        "load_at_start": _load(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": {
            "numpy": numpy.__version__,
            "onnxruntime": onnxruntime.__version__,
            "faiss": faiss.__version__,
            "pillow": PIL.__version__,
        },
        # These select (or slow) OpenBLAS kernels in numpy; the report says whether they were set.
        "blas_env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS")
                     if k in os.environ},
    }
