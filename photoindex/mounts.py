"""Where this machine mounts the catalog's named roots (docs/scale.md, "Roots on several machines").

Machines sharing a catalog may mount one share at different paths (`/mnt/photos` here,
`/Volumes/photos` there). A root registered under a name is therefore stored without any machine's
mount path: the root's path is `NAME:` and each photo's path `NAME:/relative/path` (root name +
relative path, in the one path column, so the catalog's byte order, folder prefixes and
`paths.within` work on it unchanged). Each machine maps the name to its own mount path in
`[catalog] roots` (`"nas=/mnt/photos"`); the indexer, the daemon, the search and the web page
translate with `Mounts.local` and `Mounts.stored` where a path meets the disk or the user.

A root added without a name keeps its absolute path, as every SQLite library always has: with no
`[catalog] roots`, both translations are the identity.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from photoindex.paths import within

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SEPARATOR = ":"


def root_name(path: str) -> str | None:
    """The NAME of a stored path `NAME:` or `NAME:/...`, or None for an absolute (unnamed) path."""
    if path.startswith(os.sep):
        return None
    head, sep, rest = path.partition(SEPARATOR)
    if sep and NAME_PATTERN.fullmatch(head) and (not rest or rest.startswith(os.sep)):
        return head
    return None


def named_root(name: str) -> str:
    """The stored path of the root registered as `name`."""
    return f"{name}{SEPARATOR}"


def parse_entries(entries: Iterable[str]) -> dict[str, str]:
    """`["nas=/mnt/photos", ...]` -> {"nas": "/mnt/photos"}; raises ValueError saying which entry is wrong and why."""
    out: dict[str, str] = {}
    for entry in entries:
        name, sep, path = entry.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not NAME_PATTERN.fullmatch(name):
            raise ValueError(
                f"{entry!r} is not NAME=/mount/path (a name of letters, digits, '_', '.', '-', then '=' "
                "and this machine's absolute path of the root)"
            )
        expanded = os.path.expanduser(path)
        if not os.path.isabs(expanded):
            raise ValueError(f"{entry!r}: the mount path must be absolute")
        if name in out:
            raise ValueError(f"{entry!r}: the name {name!r} is mapped twice")
        # abspath, not realpath: a mount reached through a symlink is shown as the user wrote it.
        out[name] = os.path.abspath(expanded)
    return out


@dataclass(frozen=True)
class Mounts:
    """This machine's mount path of each named root (`[catalog] roots`), and the translations both ways."""

    paths: Mapping[str, str] = field(default_factory=dict)

    def local(self, stored: str) -> str:
        """The path on this machine of a catalog path (unchanged when it is not under a root mapped here)."""
        name = root_name(stored)
        if name is None or name not in self.paths:
            return stored
        mount = self.paths[name].rstrip(os.sep)
        return mount + stored[len(name) + 1 :] or os.sep

    def stored(self, local: str) -> str:
        """The catalog's spelling of a path of this machine: `NAME:/rest` under a mapped mount, else unchanged."""
        best: tuple[str, str] | None = None
        for name, mount in self.paths.items():
            if within(local, mount) and (best is None or len(mount) > len(best[1])):
                best = (name, mount)
        if best is None:
            return local
        name, mount = best
        return named_root(name) + local[len(mount.rstrip(os.sep)) :]

    def stored_given(self, path: str) -> str:
        """`stored` of a path a user gave, also when it is spelled with symlinks resolved (as `--folder` is)
        and a mount is reached through a symlink."""
        stored = self.stored(path)
        if stored != path:
            return stored
        for name, mount in self.paths.items():
            real = os.path.realpath(mount)
            if real != mount and within(path, real):
                return named_root(name) + path[len(real.rstrip(os.sep)) :]
        return path

    def mapped(self, stored: str) -> bool:
        """Whether this machine can reach a catalog path (an absolute path, or under a root mapped here)."""
        name = root_name(stored)
        return name is None or name in self.paths

    def name_of(self, local: str) -> str | None:
        """The root name whose mount is exactly `local`, if any."""
        for name, mount in self.paths.items():
            if mount.rstrip(os.sep) == local.rstrip(os.sep):
                return name
        return None
