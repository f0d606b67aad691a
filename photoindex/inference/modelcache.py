"""Fast-loading copies of ONNX models: the weights moved to a side file that ONNX Runtime maps.

A model whose weights sit inside its `.onnx` protobuf is parsed by copying every weight: 0.3 s
and twice the memory at load for the 254 MB ViT-B/32 text encoder, paid by every `photoindex
search`. Weights kept in a side file are memory-mapped instead: the same model loads in about
15 ms, only the pages a run touches are read (the 100 MB token-embedding table is mostly never
touched), and they are shared through the page cache rather than copied into each process.

The first load of a model writes such a copy under the cache folder, keyed by the source file's
identity (device, inode, size, mtime, ctime) and the ONNX Runtime version; later loads use it. The
copy is made by walking the protobuf's wire format (`_split`): every byte of the graph is kept
as it is and each large initializer's `raw_data` is moved, by the kernel (`copy_file_range`), to
the side file at a page-aligned offset. Nothing is parsed into memory, so making the copy costs a
few MB whatever the model's size (ONNX Runtime's own re-serialization, used before, held the whole
model twice: +550 MB at the first `index` of a fresh home), and the copy computes exactly what the
original does. `ensure` makes a copy without loading a session (the text model's, while indexing).

Like the vector index file it is a cache: missing, damaged, stale or unwritable, the model is
loaded from the bundle's own file and the copy made again (a copy is checked by the inode, size and
times of its files, not hashed: see `_complete`). A replaced model file (`models fetch` renames a
new file into place) is a new identity, and its old copy is pruned.

A text model's copy also holds `model.short.onnx`, the same graph reading only a query's real
tokens (`shorttext.py`), beside the same side file. It is checked against the model the first time
it is loaded, and the verdict is kept in `short.json`, so a copy that disagrees is never used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from photoindex.durable import fsync_file, fsync_folder

logger = logging.getLogger("photoindex")

MODEL = "model.onnx"
DATA = "model.onnx.data"
SHORT = "model.short.onnx"  # a text model's graph with a dynamic token axis (shorttext.py)
VERDICT = "short.json"  # whether SHORT computes what MODEL does, once checked
STAMP = "source.json"
# Bump when the layout of a copy changes (2: split from the wire format, page-aligned; 3: text
# models' short-query graph).
FORMAT = 3
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
    files = stamp.get("files")
    if not isinstance(files, dict) or not {MODEL, DATA} <= files.keys():
        return False
    try:
        return files == {name: _file_identity(folder / name) for name in files}
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


def make(source: Path, cache_dir: Path, ort_version: str, *, text_context: int | None = None) -> Path | None:
    """Write the fast copy of `source` and return its model path; None (and a log line) if it cannot be made.

    `text_context`: `source` is a text model taking that many tokens; its copy also gets the
    short-query graph (`SHORT`) where the graph allows one. Two processes making the same copy at
    once each write their own temporary folder; the first rename wins and the other is dropped.
    """
    try:
        identity = _identity(source, ort_version)
        cache_dir.mkdir(parents=True, exist_ok=True)
        _sweep_temporaries(cache_dir)
    except OSError as exc:
        logger.info("no fast-loading copy of %s: %s", source, exc)
        return None
    folder = cache_dir / _key(source, identity)
    tmp = cache_dir / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
    try:
        tmp.mkdir()
        _split(source, tmp / MODEL, tmp / DATA)
        names = [MODEL, DATA]
        if text_context is not None and _short_graph(tmp / MODEL, tmp / SHORT, text_context):
            names.append(SHORT)
        for name in names:
            fsync_file(tmp / name)
        files = {name: _file_identity(tmp / name) for name in names}
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
    # Not ONNX, external data of its own, disk full, read-only homes and races all end here.
    except (OSError, ValueError) as exc:
        logger.info("no fast-loading copy of %s: %s", source, exc)
        return None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _prune_others(cache_dir, keep=folder, source=identity["source"])
    return folder / MODEL if _complete(folder, identity) else None


def ensure(source: Path, cache_dir: Path, ort_version: str, *, text_context: int | None = None) -> Path | None:
    """The fast copy of `source`, made now if there is none (no session is loaded); None if it cannot be."""
    return lookup(source, cache_dir, ort_version) or make(
        source, cache_dir, ort_version, text_context=text_context
    )


def _short_graph(model: Path, out: Path, context: int) -> bool:
    from photoindex.inference import shorttext

    try:
        return shorttext.rewrite(model, out, context)
    except Exception as exc:  # protobuf parse errors, odd graphs: the short copy is optional
        logger.info("%s: no short-query copy: %s", model, exc)
        out.unlink(missing_ok=True)
        return False


def short_copy(copy: Path) -> tuple[Path, bool | None] | None:
    """The short-query graph beside the fast copy `copy` and its verdict (None: not checked yet); None if none."""
    stamp = _read_stamp(copy.parent)
    if stamp is None or SHORT not in (stamp.get("files") or {}):
        return None
    verdict = _read_verdict(copy).get("agrees")
    return copy.parent / SHORT, verdict if isinstance(verdict, bool) else None


def _read_verdict(copy: Path) -> dict[str, Any]:
    try:
        found = json.loads((copy.parent / VERDICT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


_CHECK_STALE_S = 600.0  # a check older than this ended without a verdict: its process died


def begin_check(copy: Path) -> bool:
    """Claim the check of the short graph beside `copy`; False when this process should not check it now.

    The claim is written before the check, so a check that kills its process (a crash or the OOM
    killer in the runtime) is not repeated by every later start: the next one finds the claim of a
    dead process and records the graph as disagreeing. A claim of a live process means another
    check runs now: the full graph is used meanwhile.
    """
    claim = _read_verdict(copy).get("checking")
    if isinstance(claim, dict):
        pid, since = claim.get("pid"), claim.get("since")
        alive = isinstance(pid, int) and _alive(pid)
        fresh = isinstance(since, (int, float)) and time.time() - since < _CHECK_STALE_S
        if alive and fresh:
            return False
        logger.info("the check of %s ended without a verdict (process %s): full length kept", copy, pid)
        record_verdict(copy, False)
        return False
    return _write_verdict(copy, {"checking": {"pid": os.getpid(), "since": time.time()}})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def abandon_check(copy: Path) -> None:
    """Drop this process's claim after a failure that says nothing of the graph (memory, files): checked again later."""
    claim = _read_verdict(copy).get("checking")
    if isinstance(claim, dict) and claim.get("pid") == os.getpid():
        (copy.parent / VERDICT).unlink(missing_ok=True)


def record_verdict(copy: Path, agrees: bool) -> None:
    """Keep whether the short graph beside `copy` agrees with the model (written whole, by rename)."""
    _write_verdict(copy, {"agrees": agrees, "checked": time.time()})


def _write_verdict(copy: Path, content: dict[str, Any]) -> bool:
    # The temporary sits in the cache folder itself, where an unfinished one is swept.
    tmp = copy.parent.parent / f"{_TMP_PREFIX}{uuid.uuid4().hex}.json"
    try:
        tmp.write_text(json.dumps(content) + "\n", encoding="utf-8")
        fsync_file(tmp)
        tmp.rename(copy.parent / VERDICT)
    except OSError as exc:  # a read-only cache: checked again next time
        logger.info("cannot keep the short-query verdict of %s: %s", copy, exc)
        tmp.unlink(missing_ok=True)
        return False
    return True


# --- splitting a model from its wire format ------------------------------------------------------
# ONNX is protobuf (https://protobuf.dev/programming-guides/encoding/): ModelProto.graph is field 7,
# GraphProto.initializer field 5; in a TensorProto raw_data is field 9, external_data field 13
# (key/value entries: key 1, value 2) and data_location field 14 (1 = EXTERNAL).

_MIN_EXTERNAL = 1024  # smaller tensors stay in the graph file
_ALIGN = 4096  # ONNX Runtime maps a tensor only at an offset aligned to the allocation granularity


def _varint(buf: Any, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("not an ONNX model (a truncated or overlong varint)")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fields(buf: Any, start: int, end: int) -> Any:
    """(field number, wire type, start of the field's tag, start of its value, end of the field)."""
    pos = start
    while pos < end:
        tag_at = pos
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, value_end = _varint(buf, pos)
            value_at = pos
        elif wire == 1:
            value_at, value_end = pos, pos + 8
        elif wire == 2:
            length, value_at = _varint(buf, pos)
            value_end = value_at + length
        elif wire == 5:
            value_at, value_end = pos, pos + 4
        else:
            raise ValueError(f"not an ONNX model (wire type {wire})")
        if number == 0 or value_end > end:
            raise ValueError("not an ONNX model (a field runs past its message)")
        yield number, wire, tag_at, value_at, value_end
        pos = value_end


def _length_field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def _split(source: Path, model_out: Path, data_out: Path) -> None:
    """Write `source` as a graph file plus a side file holding every large initializer's raw bytes."""
    with open(source, "rb") as src, open(data_out, "wb") as data, open(model_out, "wb") as model:
        size = os.fstat(src.fileno()).st_size
        if size == 0:
            raise ValueError("not an ONNX model (empty file)")
        with mmap.mmap(src.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            graphs = 0
            for number, wire, tag_at, value_at, value_end in _fields(buf, 0, size):
                if number == 7 and wire == 2:
                    graphs += 1
                    model.write(_length_field(7, _graph(buf, value_at, value_end, src, data)))
                else:
                    model.write(buf[tag_at:value_end])
            if graphs != 1:
                raise ValueError("not an ONNX model (no graph)")


def _graph(buf: Any, start: int, end: int, src: Any, data: Any) -> bytes:
    out = bytearray()
    for number, wire, tag_at, value_at, value_end in _fields(buf, start, end):
        if number == 5 and wire == 2:
            out += _length_field(5, _tensor(buf, value_at, value_end, src, data))
        else:
            out += buf[tag_at:value_end]
    return bytes(out)


def _tensor(buf: Any, start: int, end: int, src: Any, data: Any) -> bytes:
    """One initializer: its raw_data moved to the side file, every other field kept byte for byte."""
    kept = bytearray()
    raw: tuple[int, int] | None = None
    for number, wire, tag_at, value_at, value_end in _fields(buf, start, end):
        if number == 14 and wire == 0 and _varint(buf, value_at)[0] == 0:
            continue  # data_location written out as DEFAULT (ONNX Runtime's quantizer does): the same as none
        if number in (13, 14):
            raise ValueError("the model keeps its own external data (it loads fast already)")
        if number == 9 and wire == 2 and value_end - value_at >= _MIN_EXTERNAL:
            raw = (value_at, value_end - value_at)
        else:
            kept += buf[tag_at:value_end]
    if raw is None:
        return bytes(buf[start:end])
    at, length = raw
    offset = -(-data.tell() // _ALIGN) * _ALIGN
    data.seek(offset)
    _copy_range(src, data, at, length)
    entries = [("location", DATA), ("offset", str(offset)), ("length", str(length))]
    for key, value in entries:
        entry = _length_field(1, key.encode()) + _length_field(2, value.encode())
        kept += _length_field(13, entry)
    kept += _encode_varint(14 << 3 | 0) + _encode_varint(1)  # data_location = EXTERNAL
    return bytes(kept)


def _copy_range(src: Any, dst: Any, at: int, length: int) -> None:
    """Copy `length` bytes from offset `at` of `src` to the current position of `dst`, in the kernel when it can."""
    dst.flush()
    out = dst.tell()
    done = 0
    copy = getattr(os, "copy_file_range", None)
    while done < length and copy is not None:
        try:
            n = copy(src.fileno(), dst.fileno(), length - done, at + done, out + done)
        except OSError:
            break
        if n == 0:
            break
        done += n
    while done < length:  # no copy_file_range (macOS, old kernels, some file systems): 1 MiB at a time
        chunk = os.pread(src.fileno(), min(1 << 20, length - done), at + done)
        if not chunk:
            raise ValueError("not an ONNX model (a tensor runs past the end of the file)")
        os.pwrite(dst.fileno(), chunk, out + done)
        done += len(chunk)
    dst.seek(out + length)


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
