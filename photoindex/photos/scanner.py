"""Filesystem facts: walk the roots, filter photo files, stat them, hash their content.

The scan is the truth (docs/architecture.md, invariant 5): it never trusts watcher events, it only reads the
disk. Nothing here touches the catalog.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from photoindex.config import ScanConfig

HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileFact:
    """A candidate photo as the disk shows it now."""

    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class ScanProblem:
    """A path the walk could not read (reported once, the walk goes on)."""

    path: str
    reason: str
    message: str


OnProblem = Callable[[ScanProblem], None]


def is_candidate(name: str, scan: ScanConfig) -> bool:
    """Whether a file name looks like a photo by the configured extensions (hidden names excluded)."""
    if not scan.include_hidden and name.startswith("."):
        return False
    return name.lower().endswith(_suffixes(scan.extensions))


@functools.lru_cache(maxsize=16)
def _suffixes(extensions: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(ext.lower() for ext in extensions)


def ignored_below(path: str, root: str, scan: ScanConfig) -> bool:
    """Whether a full walk of `root` would skip `path`: it, or a folder between `root` and it, is hidden or
    matches an exclude glob. For hints that name one path deep in the tree (the walk prunes folders)."""
    rel = os.path.relpath(path, root)
    if rel == "." or rel.startswith(".." + os.sep) or rel == "..":
        return False
    parts = rel.split(os.sep)
    if not scan.include_hidden and any(part.startswith(".") for part in parts):
        return True
    anchor = os.path.abspath(root)
    return any(is_excluded(os.path.join(anchor, *parts[: i + 1]), anchor, scan) for i in range(len(parts)))


def is_excluded(path: str, root: str, scan: ScanConfig) -> bool:
    """Whether a path matches an `[scan] exclude` glob (tried on the path relative to the root, and on the name)."""
    if not scan.exclude:
        return False
    rel = os.path.relpath(path, root)
    name = os.path.basename(path)
    return any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(name, pat) for pat in scan.exclude)


def walk(
    root: Path, scan: ScanConfig, on_problem: OnProblem | None = None, *, base: str | None = None
) -> Iterator[FileFact]:
    """Yield every candidate photo under `root` with its size and mtime, in byte order of the path.

    Byte order (of `os.fsencode(path)`, as SQLite's BINARY collation sorts the catalog) lets the
    indexer diff a walk against the catalog as two sorted streams, in constant memory. Each
    folder's entries are sorted by name, a subfolder as "name/": so "a-b.jpg" comes before the
    folder "a" ("-" < "/"), and everything inside "a/" before the next sibling.

    Hidden files and folders are skipped unless configured; symlinked folders are followed
    once (a loop is detected by device and inode); unreadable folders and broken links are
    reported through `on_problem` and skipped. Exclude globs match paths relative to `base`
    (the root that holds `root`; default `root` itself).
    """
    report = on_problem or (lambda p: None)
    root_s = os.path.abspath(str(root))
    try:
        st = os.stat(root_s)
    except OSError as exc:
        report(ScanProblem(root_s, "unreadable", f"cannot read the folder: {exc.strerror or exc}"))
        return
    anchor = os.path.abspath(base) if base else root_s
    seen_dirs: set[tuple[int, int]] = {(st.st_dev, st.st_ino)}
    # A stack of folders being listed, each as its remaining (sort key, path, fact or None) entries
    # in reverse order: the next entry is popped from the end.
    stack = [_listing(root_s, scan, anchor, seen_dirs, report)]
    while stack:
        entries = stack[-1]
        if not entries:
            stack.pop()
            continue
        _, path, fact = entries.pop()
        if fact is not None:
            yield fact
        else:
            stack.append(_listing(path, scan, anchor, seen_dirs, report))


def _listing(
    folder: str, scan: ScanConfig, anchor: str, seen_dirs: set[tuple[int, int]], report: OnProblem
) -> list[tuple[bytes, str, FileFact | None]]:
    """The candidate photos and subfolders of `folder`, by sort key, last first (see `walk`)."""
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError as exc:
        report(ScanProblem(folder, "unreadable", f"cannot list the folder: {exc.strerror or exc}"))
        return []
    kept: list[tuple[bytes, str, os.stat_result]] = []
    for entry in entries:
        name = entry.name
        if not scan.include_hidden and name.startswith("."):
            continue
        path = entry.path
        try:
            is_link = entry.is_symlink()
            if is_link and not scan.follow_symlinks:
                continue
            est = entry.stat(follow_symlinks=True)
        except OSError as exc:
            if is_candidate(name, scan):
                report(
                    ScanProblem(
                        path,
                        "broken-link" if entry.is_symlink() else "unreadable",
                        f"cannot stat: {exc.strerror or exc}",
                    )
                )
            continue
        if stat.S_ISDIR(est.st_mode):
            kept.append((os.fsencode(name) + b"/", path, est))
        elif stat.S_ISREG(est.st_mode) and is_candidate(name, scan) and not is_excluded(path, anchor, scan):
            kept.append((os.fsencode(name), path, est))
    # In walk order, so of a folder and a link to it (or two links), the name that sorts first is the
    # one walked, whatever order the file system lists them in; an excluded name claims nothing.
    kept.sort(key=lambda e: e[0])
    out: list[tuple[bytes, str, FileFact | None]] = []
    for key, path, est in kept:
        if not stat.S_ISDIR(est.st_mode):
            out.append((key, path, FileFact(path, est.st_size, est.st_mtime_ns)))
            continue
        if is_excluded(path, anchor, scan):
            continue
        inode = (est.st_dev, est.st_ino)
        if inode in seen_dirs:
            continue  # a symlink loop or a folder linked twice: walk it once
        seen_dirs.add(inode)
        out.append((key, path, None))
    out.reverse()
    return out


def content_hash(path: str | Path) -> str:
    """A hex digest of the file's bytes (BLAKE2b-128): equal content means the same photo, wherever it lives."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while chunk := fh.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def hash_bytes(data: bytes) -> str:
    """The same digest as `content_hash`, for bytes already in memory."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def stat_fact(path: str, scan: ScanConfig, *, base: str | None = None) -> FileFact | None:
    """The fact for one file if it is a candidate photo (a watcher hint names single files).

    Hidden folders count only below `base` (the root): a root may itself live in a dot-folder.
    """
    name = os.path.basename(path)
    if not is_candidate(name, scan):
        return None
    rel = os.path.relpath(path, base) if base else path
    if not scan.include_hidden and any(part.startswith(".") for part in Path(rel).parts[:-1] if part != ".."):
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return FileFact(os.path.abspath(path), st.st_size, st.st_mtime_ns)
