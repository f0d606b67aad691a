"""Where this machine mounts the catalog's named roots (docs/scale.md, "Roots on several machines").

Machines sharing a catalog may mount one share at different paths (`/mnt/photos` here,
`/Volumes/photos` there). A root registered under a name is therefore stored without any machine's
mount path: the root's path is `NAME:` and each photo's path `NAME:/relative/path` (root name +
relative path, in the one path column, so the catalog's byte order, folder prefixes and
`paths.within` work on it unchanged). Each machine maps the name to its own mount path in
`[catalog] roots` (`"nas=/mnt/photos"`); the indexer, the daemon, the search and the web page
translate with `Mounts.local` and `Mounts.stored` where a path meets the disk or the user.

A root added without a name keeps its absolute path, as every SQLite library always has: with no
`[catalog] roots`, both translations are the identity. Mounts never nest (`parse_entries` refuses a
mount inside another): a photo has one name, whichever root's walk finds it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from photoindex.errors import PhotoindexError
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
        mount = os.path.abspath(expanded)
        for other, there in out.items():
            # One file under two names would be two photos (and each walk would file the other's).
            if within(mount, there) or within(there, mount):
                raise ValueError(
                    f"{entry!r} and {other}={there} overlap: a mount inside another would give its photos "
                    "two names; map only the outer folder (its subfolders are inside that root)"
                )
        out[name] = mount
    return out


@dataclass(frozen=True)
class Mounts:
    """This machine's mount path of each named root (`[catalog] roots`), and the translations both ways."""

    paths: Mapping[str, str] = field(default_factory=dict)

    def local(self, stored: str) -> str:
        """The path on this machine of a catalog path (unchanged when it is not under a root mapped here).

        Raises PhotoindexError for a catalog path that leaves its root's mount (`nas:/../../etc`): the
        catalog only ever stores paths a walk found below the mount, so such a row is refused, not opened.
        """
        name = root_name(stored)
        if name is None or name not in self.paths:
            return stored
        mount = self.paths[name].rstrip(os.sep) or os.sep
        path = os.path.normpath(os.path.join(mount, stored[len(name) + 1 :].lstrip(os.sep)))
        if not within(path, mount):
            raise PhotoindexError(
                f"the catalog path {stored!r} leaves the mount of root {name} ({mount})",
                "the catalog was written by something other than photoindex; forget the photo or its root "
                "(`photoindex forget`) and index the folder again",
            )
        return path

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
        """Whether this machine can reach a catalog path (an absolute path, or under a root mapped here and
        not leaving its mount, see `local`)."""
        name = root_name(stored)
        if name is None:
            return True
        if name not in self.paths:
            return False
        try:
            self.local(stored)
        except PhotoindexError:
            return False
        return True

    def shown(self, stored: str) -> str:
        """A catalog path as shown to the user: `local` where this machine reaches it, else as stored
        (`nas:/...` of a root not mapped here, or a path refused by `local`)."""
        return self.local(stored) if self.mapped(stored) else stored

    def folder_spelling(self, folder: str, roots: Iterable[str]) -> str:
        """A folder a user gave (`--folder`), spelled as the catalog's roots (`roots`, catalog paths) spell it.

        Inside a mapped mount that is `NAME:/...` once the root is named; a root still registered by its
        absolute path (the mapping was added and no writing command has run since) keeps the absolute
        spelling, so the folder finds its photos either way.
        """
        stored = self.stored_given(folder)
        if stored == folder:
            return folder
        roots = list(roots)
        if any(within(stored, r) or within(r, stored) for r in roots):
            return stored
        real = os.path.realpath(folder)
        for given in dict.fromkeys((folder, real)):
            if any(within(given, r) or within(r, given) for r in roots):
                return given
        return stored

    def touches(self, local: str) -> bool:
        """Whether an absolute path is inside a mapped mount or holds one (as written, or with symlinks
        resolved): a root registered by that path must take a name's spelling, or be refused
        (`catalog.name_roots`)."""
        for mount in self.paths.values():
            for base in (mount, os.path.realpath(mount)):
                if within(local, base) or within(base, local):
                    return True
        return False

    def name_of(self, local: str) -> str | None:
        """The root name whose mount is exactly `local`, if any."""
        for name, mount in self.paths.items():
            if mount.rstrip(os.sep) == local.rstrip(os.sep):
                return name
        return None
