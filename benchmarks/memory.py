"""Peak memory of a whole process tree (a command and every worker it starts), sampled from /proc.

`ru_maxrss` only knows the largest single process, while photoindex decodes in worker processes:
the figure that compares with another tool is the sum over all processes alive at the same moment.
Two sums are kept: RSS (counts shared pages once per process, so it over-states) and PSS (shares
them out, so the sum is the real footprint). The sampler also adds up the CPU time of every process
it saw (user + system, as last sampled), the whole tree's CPU use that `/usr/bin/time` misses for
worker processes their parent does not wait for.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
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
