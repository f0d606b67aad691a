"""Decoding photos in worker processes: bounded, crash-proof, and overlapping with encoding.

Each worker reads a file once, hashes its bytes and (for decode jobs) turns it into the model's
uint8 input. A worker that crashes (a decoder bug, the memory limit) or runs past the timeout is
killed and replaced; only the photo it held is reported as failed. A feeder thread keeps every
worker busy while the caller encodes, and a bounded queue keeps memory flat whatever the
library size.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from photoindex.inference.bundle import ImageSpec

if TYPE_CHECKING:
    from multiprocessing.context import ForkServerContext, SpawnContext

    Context = ForkServerContext | SpawnContext

    from photoindex.photos.imaging import PhotoInfo
    from photoindex.photos.thumbnails import ThumbnailStore

# probe: the header's metadata only (no hash, no pixels); text: pixels for the text detector (ocr/reader.py)
JobKind = Literal["hash", "decode", "probe", "text"]

# Virtual memory a worker may map: generous for big photos, but a decompression bomb that slips
# past the header check dies alone instead of taking the machine down.
_WORKER_MEMORY_FLOOR = 3 << 30


@dataclass(frozen=True)
class DecodeJob:
    """One photo to hash (and decode); `key` is the caller's handle."""

    key: int
    path: str
    kind: JobKind = "decode"
    long_side: int = 0  # "text" jobs: the text detector's input size (`[ocr] max_side`)


@dataclass(frozen=True)
class DecodeResult:
    """What a worker made of one photo: hash, pixels (uint8 [S,S,3]) and metadata, or the failure."""

    key: int
    path: str
    kind: JobKind
    content_hash: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    pixels: np.ndarray | None = None
    info: PhotoInfo | None = None
    scale: float | None = None  # "text" jobs: the factor from `pixels` to the photo's displayed pixels
    thumbnail_bytes: int = 0  # bytes the worker wrote to the pool's thumbnail folder (0: it was cached)
    thumbnail_error: str | None = None  # why the worker could not write the thumbnail there
    reason: str | None = None
    message: str | None = None
    hint: str | None = None

    @property
    def ok(self) -> bool:
        """True when the job succeeded."""
        return self.reason is None


def process_job(
    job: DecodeJob, spec: ImageSpec, max_pixels: int, thumbnail_size: int = 0, thumbnail_dir: str | None = None
) -> DecodeResult:
    """Run one job in the current process (workers call this; so does the in-process mode).

    `thumbnail_dir`: a decode job also makes the photo's thumbnail (`thumbnail_size` px) from the
    image decoded for the encoder and writes it to that cache folder (photos.thumbnails); the result
    says how many bytes.
    """
    from photoindex.errors import ImageError
    from photoindex.photos.imaging import decode_for_text, decode_photo, probe
    from photoindex.photos.scanner import hash_bytes

    if job.kind == "probe":
        try:
            st = os.stat(job.path)
            info = probe(Path(job.path), max_pixels=max_pixels)
        except OSError as exc:
            return DecodeResult(job.key, job.path, job.kind, reason="unreadable", message=str(exc.strerror or exc))
        except ImageError as exc:
            return DecodeResult(job.key, job.path, job.kind, reason=exc.reason, message=exc.message)
        return DecodeResult(job.key, job.path, job.kind, size=st.st_size, mtime_ns=st.st_mtime_ns, info=info)
    try:
        with open(job.path, "rb") as fh:
            st = os.fstat(fh.fileno())
            data = fh.read()
    except OSError as exc:
        return DecodeResult(
            job.key,
            job.path,
            job.kind,
            reason="unreadable",
            message=f"cannot read the file: {exc.strerror or exc}",
            hint="check the file's permissions",
        )
    digest = hash_bytes(data)

    def result(**outcome: Any) -> DecodeResult:
        return DecodeResult(job.key, job.path, job.kind, digest, st.st_size, st.st_mtime_ns, **outcome)

    if job.kind == "hash":
        return result()
    try:
        # The second read comes from the page cache; hashing first keeps the worker's memory to one file.
        del data
        if job.kind == "text":
            pixels, scale = decode_for_text(Path(job.path), job.long_side, max_pixels=max_pixels)
            return result(pixels=pixels, scale=scale)
        thumbs: list[bytes] = []
        keep = None
        if thumbnail_dir is not None and thumbnail_size > 0:
            from photoindex.photos.thumbnails import thumbnail_jpeg

            def keep(im: Any) -> None:
                thumbs.append(thumbnail_jpeg(im, thumbnail_size))

        pixels, info = decode_photo(Path(job.path), spec, max_pixels=max_pixels, upright=keep)
    except ImageError as exc:
        return result(reason=exc.reason, message=exc.message.removeprefix(f"{job.path}: "), hint=exc.hint)
    except MemoryError:
        return result(
            reason="too-large",
            message="ran out of memory while decoding",
            hint="raise the memory limit or lower `[scan] max_image_pixels`",
        )
    if not thumbs or thumbnail_dir is None:
        return result(pixels=pixels, info=info)
    # Written here, not by the indexing process: on the board every CPU-ms of that process is taken
    # from the decode workers (docs/indexing.md, "Keeping both cores busy").
    from photoindex.photos.thumbnails import ThumbnailStore

    try:
        written = ThumbnailStore(Path(thumbnail_dir), size=thumbnail_size).write_new(digest, thumbs[0])
    except OSError as exc:
        return result(pixels=pixels, info=info, thumbnail_error=str(exc.strerror or exc))
    return result(pixels=pixels, info=info, thumbnail_bytes=written)


def _worker_main(
    conn: Connection,
    spec: ImageSpec,
    max_pixels: int,
    crash_on: str | None = None,
    thumbnail_size: int = 0,
    nice: int = 0,
    thumbnail_dir: str | None = None,
) -> None:
    import signal

    if nice > 0:
        os.nice(nice)  # a background pass's worker (the text pass): CLIP's decoding goes first

    # Ctrl-C on a terminal reaches the whole process group: the parent decides when to stop, and a
    # worker killed mid-photo would record that photo as failed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the same for a SIGTERM sent to the process group
    try:
        import resource

        limit = max(_WORKER_MEMORY_FLOOR, max_pixels * 12 + (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):  # pragma: no cover - platform without RLIMIT_AS
        pass
    while True:
        try:
            job = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if job is None:
            return
        if crash_on is not None and job.path == crash_on:
            os.kill(os.getpid(), signal.SIGSEGV)  # tests: a decoder that dies as a C library bug would
        result = process_job(job, spec, max_pixels, thumbnail_size, thumbnail_dir)
        if result.thumbnail_error is not None:
            thumbnail_size, thumbnail_dir = 0, None  # said once: this worker makes no more of them
        conn.send(result)


class _Worker:
    def __init__(
        self,
        ctx: Context,
        spec: ImageSpec,
        max_pixels: int,
        crash_on: str | None = None,
        thumbnail_size: int = 0,
        nice: int = 0,
        thumbnail_dir: str | None = None,
    ) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_worker_main,
            args=(child, spec, max_pixels, crash_on, thumbnail_size, nice, thumbnail_dir),
            daemon=True,
        )
        self.proc.start()
        child.close()
        self.job: DecodeJob | None = None
        self.started = 0.0

    def give(self, job: DecodeJob) -> None:
        self.job = job
        self.started = time.monotonic()
        self.conn.send(job)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join(5)
        self.conn.close()


def process_context() -> Context:
    """The multiprocessing context of the decode workers, for other short jobs of a process of their own."""
    return _mp_context()


def _mp_context() -> Context:
    # forkserver on Linux: workers fork from a clean server, not from a parent that already runs
    # ONNX Runtime threads; spawn elsewhere.
    if not sys.platform.startswith("linux"):
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["photoindex.photos.imaging", "photoindex.photos.decodepool"])
    return ctx


def start_server() -> None:
    """Start the process the decode workers fork from (Linux's forkserver, which imports the decoders)
    now, so that a command can do its own start-up meanwhile and its first pool's workers fork at once.

    Elsewhere (spawn) there is no such server and this does nothing. Safe to call more than once.
    """
    ctx = _mp_context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


_DONE = object()


class DecodePool:
    """A pool of decode workers; `run(jobs)` yields results as they complete (not in job order)."""

    def __init__(
        self,
        spec: ImageSpec,
        *,
        workers: int,
        max_pixels: int,
        timeout: float = 60.0,
        buffer: int = 64,
        nice: int = 0,
        thumbnails: ThumbnailStore | None = None,
    ) -> None:
        """`thumbnails`: the workers write each decoded photo's thumbnail to that cache (photos.thumbnails) and
        say how many bytes, which the caller `account`s; `nice` > 0: the workers run at that much lower OS
        priority (a background pass)."""
        self.spec = spec
        self.thumbnail_size = thumbnails.size if thumbnails is not None else 0
        self.thumbnail_dir = str(thumbnails.folder) if thumbnails is not None else None
        self.nice = nice
        self.workers = workers
        self.max_pixels = max_pixels
        self.timeout = timeout
        self.buffer = buffer
        self.restarts = 0
        self._stop = threading.Event()
        self._crash_on: str | None = None  # tests only: a path on which a worker dies as a decoder crash would
        # Tests only: runs in the feeder after each wait, given the pipes found ready and the busy workers' pipes.
        self._stall: Callable[[list[Any], list[Any]], None] | None = None

    def stop(self) -> None:
        """Stop feeding new jobs (in-flight ones are abandoned): a running `run` ends, and so does one
        that has not begun yet; a stopped pool runs nothing more."""
        self._stop.set()

    def run(self, jobs: Iterable[DecodeJob]) -> Iterator[DecodeResult]:
        """Process every job; a job that crashes or hangs its worker yields a failed result.

        A pool may run again once a run has ended, unless it was stopped: a stop asked for before
        this generator's first step (another thread giving way) is kept, never cleared here.
        """
        if self.workers <= 0:
            for job in jobs:
                if self._stop.is_set():
                    return
                yield process_job(job, self.spec, self.max_pixels, self.thumbnail_size, self.thumbnail_dir)
            return
        if self._stop.is_set():
            return
        ended = threading.Event()  # this run is over (finished, stopped, or its consumer gone)
        out: queue.Queue[Any] = queue.Queue(maxsize=self.buffer)
        feeder = threading.Thread(
            target=self._feed, args=(iter(jobs), out, ended), name="decode-feeder", daemon=True
        )
        feeder.start()
        try:
            while True:
                try:
                    item = out.get(timeout=0.1)
                except queue.Empty:
                    if feeder.is_alive():
                        continue
                    break  # stopped from another thread: the feeder is gone without an end marker
                if item is _DONE:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            ended.set()
            # Unblock the feeder if it waits on a full queue, then let it tear the workers down.
            while feeder.is_alive():
                try:
                    out.get(timeout=0.05)
                except queue.Empty:
                    pass
            feeder.join()

    def _worker(self, ctx: Any) -> _Worker:
        return _Worker(
            ctx, self.spec, self.max_pixels, self._crash_on, self.thumbnail_size, self.nice, self.thumbnail_dir
        )

    def _put(self, out: queue.Queue[Any], item: Any, ended: threading.Event) -> bool:
        while not (self._stop.is_set() or ended.is_set()):
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _feed(self, jobs: Iterator[DecodeJob], out: queue.Queue[Any], ended: threading.Event) -> None:
        ctx = _mp_context()
        pool: list[_Worker] = []
        try:
            pool = [self._worker(ctx) for _ in range(self.workers)]
            exhausted = False
            while not (self._stop.is_set() or ended.is_set()):
                for w in pool:
                    if w.job is None and not exhausted:
                        job = next(jobs, None)
                        if job is None:
                            exhausted = True
                        else:
                            w.give(job)
                busy = [w for w in pool if w.job is not None]
                if not busy:
                    break
                # A worker's time on its photo is measured up to `before`, and only a worker whose pipe
                # is still empty after it is judged: time the feeder itself lost (a full queue while the
                # caller encodes, the GIL held by a model loading) never makes finished work time out.
                before = time.monotonic()
                ready = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], timeout=0.2)
                if self._stall is not None:
                    self._stall(ready, [w.conn for w in busy])
                for i, w in enumerate(pool):
                    if w.job is None:
                        continue
                    result: DecodeResult | None = None
                    if w.conn in ready or w.conn.poll():
                        try:
                            result = w.conn.recv()
                        except (EOFError, OSError):
                            result = None
                    if result is not None:
                        w.job = None
                        if not self._put(out, result, ended):
                            return
                        continue
                    crashed = w.proc.sentinel in ready or not w.proc.is_alive()
                    timed_out = before - w.started > self.timeout
                    if crashed or timed_out:
                        job = w.job
                        w.kill()
                        pool[i] = self._worker(ctx)
                        self.restarts += 1
                        failure = DecodeResult(
                            job.key,
                            job.path,
                            job.kind,
                            reason="timeout" if timed_out and not crashed else "crashed",
                            message=(
                                f"decoding took longer than {self.timeout:g} s"
                                if timed_out and not crashed
                                else "the decoder crashed on this file"
                            ),
                            hint="the file may be damaged; the next runs try it again a few times, "
                            "then only when it changes (or raise `[index] decode_timeout`)",
                        )
                        if not self._put(out, failure, ended):
                            return
            self._put(out, _DONE, ended)
        except BaseException as exc:  # hand the error to the consuming thread
            self._put(out, exc, ended)
        finally:
            for w in pool:
                try:
                    if w.job is not None:
                        w.proc.kill()  # its result is abandoned, and it may block on a full pipe
                    elif w.proc.is_alive():
                        w.conn.send(None)
                except OSError:
                    pass
            deadline = time.monotonic() + 1.0  # one second for all of them, not one each
            for w in pool:
                w.proc.join(max(0.0, deadline - time.monotonic()))
                if w.proc.is_alive():
                    w.kill()
