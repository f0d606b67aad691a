"""`benchmarks.memory.exact_run`: the whole tree's CPU, orphans included, without sampling.

The benchmarks' timed runs rest on it (benchmarks/versus_rclip.py): a decode worker is reaped by the
forkserver, which its parent never waits for, so `/usr/bin/time` and a parent's RUSAGE_CHILDREN miss it.
"""

from __future__ import annotations

import sys
import time

import pytest

from benchmarks.memory import exact_run

# A process that forks a child, exits at once, and leaves the child burning `burn` CPU seconds:
# the shape of `photoindex index`'s forkserver outliving the command's main process.
_ORPHAN = """
import os, sys, time
burn = float(sys.argv[1])
if os.fork() == 0:
    t = time.process_time()
    while time.process_time() - t < burn:
        pass
    os._exit(0)
print("parent done")
sys.exit(3)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the child subreaper is Linux's")
def test_an_orphans_cpu_is_counted_and_the_parent_alone_is_timed() -> None:
    start = time.perf_counter()
    run = exact_run([sys.executable, "-c", _ORPHAN, "0.5"])
    elapsed = time.perf_counter() - start
    assert run.exact
    assert run.returncode == 3 and run.stdout == "parent done\n"
    # The orphan's 0.5 s of CPU is in, though its parent exited long before it finished ...
    assert run.cpu_seconds >= 0.5
    # ... and the wall time is the command's own; the orphan, which outlived it, was waited for.
    assert run.tail > 0 and run.wall + run.tail <= elapsed


def test_a_command_that_fails_to_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="no-such-command-here"):
        exact_run(["/nonexistent/no-such-command-here"])
