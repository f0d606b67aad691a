"""Peak memory of a whole process tree (a command and every worker it starts), sampled from /proc.

`ru_maxrss` only knows the largest single process, while photoindex decodes in worker processes:
the figure that compares with another tool is the sum over all processes alive at the same moment.
Two sums are kept: RSS (counts shared pages once per process, so it over-states) and PSS (shares
them out, so the sum is the real footprint). The sampler also adds up the CPU time of every process
it saw (user + system, as last sampled), the whole tree's CPU use that `/usr/bin/time` misses for
worker processes their parent does not wait for.

Sampling is not free: reading every process's `smaps_rollup` every 50 ms costs the sampling process
~17% of a core while `photoindex index` runs (2.5 CPU s over a 15 s run, this 2-core machine), time
taken from the command it measures, and it still misses the CPU of processes that end between two
samples (24.4 CPU s seen of ~27). Timed runs therefore use `exact_run` instead: no sampling, the
command started by a launcher that adopts every orphaned descendant (Linux's child subreaper) and
waits for them all, so the kernel's own accounting of the whole tree comes back exact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: the ppid follows the last ')'.
        fields = stat[stat.rfind(b")") + 2 :].split()
        kids.setdefault(int(fields[1]), []).append(int(name))
    return kids


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants alive now."""
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _rss_pss(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes from smaps_rollup; (0, 0) when the process is gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def tree_cpu_seconds(pid: int | None = None) -> float:
    """CPU seconds of a process tree so far, its children that have exited and been waited for included
    (a decode worker reaped by the forkserver counts in the server's): take it before and after a stretch
    of work, no sampling thread needed."""
    total = 0.0
    for p in tree(pid if pid is not None else os.getpid()):
        try:
            with open(f"/proc/{p}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15]) / _TICK  # utime, stime, cutime, cstime
    return total


@dataclass
class Peak:
    """Peak sums over a process tree, in MiB, the most processes seen at once, and its CPU seconds."""

    rss_mib: float = 0.0
    pss_mib: float = 0.0
    processes: int = 0
    cpu_seconds: float = 0.0


class TreeSampler:
    """Samples a process tree every `interval` seconds until closed; `peak` holds the maxima."""

    def __init__(self, pid: int | None = None, interval: float = 0.05, *, skip_root_cpu: bool = False) -> None:
        self.pid = pid if pid is not None else os.getpid()
        self.skip_root_cpu = skip_root_cpu
        self.interval = interval
        self.peak = Peak()
        self._cpu: dict[int, float] = {}  # pid -> CPU seconds last seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)

    def sample(self) -> None:
        """Take one sample now."""
        pids = tree(self.pid)
        rss = pss = 0
        for p in pids:
            r, s = _rss_pss(p)
            rss, pss = rss + r, pss + s
            if p != self.pid or not self.skip_root_cpu:
                self._cpu[p] = max(self._cpu.get(p, 0.0), _cpu_seconds(p))
        self.peak.cpu_seconds = sum(self._cpu.values())
        self.peak.rss_mib = max(self.peak.rss_mib, rss / (1 << 20))
        self.peak.pss_mib = max(self.peak.pss_mib, pss / (1 << 20))
        self.peak.processes = max(self.peak.processes, len(pids))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> TreeSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()


# The launcher `exact_run` starts: it becomes the command's child subreaper (prctl 36), so every
# process of the tree that outlives its parent (a forkserver and the workers it reaped) is re-parented
# to it and waited for here; RUSAGE_CHILDREN then holds the whole tree's CPU, nothing sampled.
_LAUNCHER = r"""
import ctypes, json, os, resource, subprocess, sys, time
out, args = sys.argv[1], sys.argv[2:]
try:
    exact = ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
except (OSError, AttributeError):
    exact = False
start = time.perf_counter()
proc = subprocess.Popen(args)
code = proc.wait()
wall = time.perf_counter() - start
deadline = time.monotonic() + 60
while True:
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if pid == 0:
        if time.monotonic() > deadline:
            exact = False
            break
        time.sleep(0.005)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(out, "w") as fh:
    json.dump({"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "exact": exact,
               "tail": time.perf_counter() - start - wall, "code": code}, fh)
"""


@dataclass
class ExactRun:
    """One command run by `exact_run`."""

    returncode: int
    stdout: str
    stderr: str
    wall: float  # from its start to its own exit (the launcher's start-up not included)
    cpu_seconds: float  # user + system of every process of its tree, however short-lived
    exact: bool  # False where the platform has no child subreaper (its orphans' CPU is then missed)
    tail: float  # seconds its orphaned descendants outlived it


def exact_run(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
              timeout: float = 1800) -> ExactRun:
    """Run `args` unsampled and return its wall time and the exact CPU time of its whole process tree."""
    with tempfile.TemporaryDirectory(prefix="exact-run-") as tmp:
        out = Path(tmp) / "run.json"
        proc = subprocess.run([sys.executable, "-c", _LAUNCHER, str(out), *args], env=env, cwd=cwd,
                              capture_output=True, text=True, timeout=timeout)
        try:
            r = json.loads(out.read_text())
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"the launcher of {args[0]} failed: {proc.stderr[-2000:]}") from exc
    return ExactRun(r["code"], proc.stdout, proc.stderr, r["wall"], r["cpu"], r["exact"], r["tail"])
