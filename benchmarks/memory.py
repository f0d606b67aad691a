"""Peak memory of a whole process tree (a command and every worker it starts), sampled from /proc.

`ru_maxrss` only knows the largest single process, while photoindex decodes in worker processes:
the figure that compares with another tool is the sum over all processes alive at the same moment.
Two sums are kept: RSS (counts shared pages once per process, so it over-states) and PSS (shares
them out, so the sum is the real footprint).
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


@dataclass
class Peak:
    """Peak sums over a process tree, in MiB, and the most processes seen at once."""

    rss_mib: float = 0.0
    pss_mib: float = 0.0
    processes: int = 0


class TreeSampler:
    """Samples a process tree every `interval` seconds until closed; `peak` holds the maxima."""

    def __init__(self, pid: int | None = None, interval: float = 0.05) -> None:
        self.pid = pid if pid is not None else os.getpid()
        self.interval = interval
        self.peak = Peak()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="memory-sampler", daemon=True)

    def sample(self) -> None:
        """Take one sample now."""
        pids = tree(self.pid)
        rss = pss = 0
        for p in pids:
            r, s = _rss_pss(p)
            rss, pss = rss + r, pss + s
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
