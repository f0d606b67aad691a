"""Fast-loading copies of ONNX models: the weights moved to a side file that ONNX Runtime maps.

A model whose weights sit inside its `.onnx` protobuf is parsed by copying every weight: 0.3 s
and twice the memory at load for the 254 MB ViT-B/32 text encoder, paid by every `photoindex
search`. Weights kept in a side file are memory-mapped instead: the same model loads in about
15 ms, only the pages a run touches are read (the 100 MB token-embedding table is mostly never
touched), and they are shared through the page cache rather than copied into each process.

The first load of a model writes such a copy (ONNX Runtime itself re-serializes the graph,
unoptimized, so the copy computes exactly what the original does) under the cache folder, keyed
by the source file's identity (device, inode, size, mtime, ctime) and the ONNX Runtime version; later
loads use it. Like the vector index file it is a cache: missing, damaged, stale or unwritable, the
model is loaded from the bundle's own file and the copy made again (a copy is checked by the
inode, size and times of its files, not hashed: see `_complete`). A replaced model
file (`models fetch` renames a new file into place) is a new identity, and its old copy is pruned.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from photoindex.durable import fsync_file, fsync_folder

logger = logging.getLogger("photoindex")

MODEL = "model.onnx"
DATA = "model.onnx.data"
STAMP = "source.json"
FORMAT = 1  # bump when the layout of a copy changes
_TMP_PREFIX = ".tmp-"
_TMP_MAX_AGE_S = 3600.0  # an unfinished copy older than this was left by a crash


def _identity(source: Path, ort_version: str) -> dict[str, Any]:
    st = source.stat()
    return {
        "source": str(source.resolve()),
        "dev": st.st_dev,
        "ino": st.st_ino,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        # ctime cannot be set back: a file rewritten in place with its mtime restored (`cp -p`,
        # `rsync -t`) still changes it.
        "ctime_ns": st.st_ctime_ns,
        "onnxruntime": ort_version,
        "format": FORMAT,
    }


def _key(source: Path, identity: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    return f"{source.stem}-{digest}"


def _read_stamp(folder: Path) -> dict[str, Any] | None:
    try:
        stamp = json.loads((folder / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def _file_identity(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _complete(folder: Path, identity: dict[str, Any]) -> bool:
    """The copy in `folder` is for this identity, and its files are the ones written (inode, size, m/ctime).

    Like the bundle's own files, a copy is not hashed at each load (that would cost what it
    saves): a file rewritten or truncated since is noticed, bit rot in place is not.
    """
    stamp = _read_stamp(folder)
    if stamp is None or stamp.get("identity") != identity:
        return False
    try:
        return stamp.get("files") == {name: _file_identity(folder / name) for name in (MODEL, DATA)}
    except OSError:
        return False


def lookup(source: Path, cache_dir: Path, ort_version: str) -> Path | None:
    """The fast copy of `source` if one is complete for its current identity, else None."""
    try:
        identity = _identity(source, ort_version)
    except OSError:
        return None
    folder = cache_dir / _key(source, identity)
    return folder / MODEL if _complete(folder, identity) else None


def discard(copy: Path) -> None:
    """Remove a copy ONNX Runtime refused (the next load makes it again)."""
    shutil.rmtree(copy.parent, ignore_errors=True)


def make(source: Path, cache_dir: Path, ort: Any) -> Path | None:
    """Write the fast copy of `source` and return its model path; None (and a log line) if it cannot be made.

    `ort` is the imported onnxruntime module. Two processes making the same copy at once each
    write their own temporary folder; the first rename wins and the other is dropped.
    """
    try:
        identity = _identity(source, ort.__version__)
        cache_dir.mkdir(parents=True, exist_ok=True)
        _sweep_temporaries(cache_dir)
    except OSError as exc:
        logger.info("no fast-loading copy of %s: %s", source, exc)
        return None
    folder = cache_dir / _key(source, identity)
    tmp = cache_dir / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
    try:
        tmp.mkdir()
        options = ort.SessionOptions()
        # Unoptimized: the copy is the original graph, so it computes exactly what the original does
        # and stays valid on any CPU; the loading session optimizes it as it would the original.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.optimized_model_filepath = str(tmp / MODEL)
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", DATA)
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        ort.InferenceSession(str(source), sess_options=options, providers=["CPUExecutionProvider"])
        if not (tmp / DATA).is_file():  # a model without large weights: nothing to map, keep it anyway
            (tmp / DATA).write_bytes(b"")
        for name in (MODEL, DATA):
            fsync_file(tmp / name)
        files = {name: _file_identity(tmp / name) for name in (MODEL, DATA)}
        stamp = {"identity": identity, "files": files, "made": time.time()}
        (tmp / STAMP).write_text(json.dumps(stamp, indent=1) + "\n", encoding="utf-8")
        fsync_file(tmp / STAMP)
        try:
            tmp.rename(folder)
        except OSError:
            if not _complete(folder, identity):
                # A stale or broken folder under the same key: replace it.
                shutil.rmtree(folder, ignore_errors=True)
                tmp.rename(folder)
        fsync_folder(cache_dir)
    # ORT raises its own exception classes; disk full, read-only homes and races end here too.
    except Exception as exc:
        logger.info("no fast-loading copy of %s: %s", source, exc)
        return None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _prune_others(cache_dir, keep=folder, source=identity["source"])
    return folder / MODEL if _complete(folder, identity) else None


def _sweep_temporaries(cache_dir: Path) -> None:
    now = time.time()
    for entry in cache_dir.glob(f"{_TMP_PREFIX}*"):
        try:
            if now - entry.stat().st_mtime > _TMP_MAX_AGE_S:
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink()
        except OSError:
            continue


def _prune_others(cache_dir: Path, *, keep: Path, source: str) -> None:
    """Drop older copies of the same source file (a process still mapping one keeps its pages)."""
    for entry in cache_dir.iterdir():
        if entry == keep or entry.name.startswith(_TMP_PREFIX) or not entry.is_dir():
            continue
        stamp = _read_stamp(entry)
        if stamp is not None and stamp.get("identity", {}).get("source") == source:
            shutil.rmtree(entry, ignore_errors=True)
