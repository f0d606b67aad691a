"""Thumbnails: small upright JPEGs of photos, content-addressed in the home's cache (see docs/web.md).

A thumbnail is keyed by the photo's content hash (the catalog's `content_hash`) and its size, so
copies of one photo share it, an edited photo gets a new one, and nothing in its name comes from
a request. The folder is a cache: bounded by `[thumbnails] max_cache_mb` (the least recently
written go first), safe to delete at any time, and refilled as thumbnails are needed.

Indexing makes them from the image the decode worker already holds for the encoder (no second
decode), and the worker writes the file (the indexing process only counts its bytes); photos
indexed before that (or while thumbnails were off) get theirs on first request.
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

    from photoindex.config import Config

QUALITY = 80  # JPEG quality: ~10-20 KB for a 320 px thumbnail of a real photo
# Hamming (Pillow's support-1 windowed filter): on the ~500x375 JPEG draft of a 12 MP photo, 1.5 ms
# of CPU against bicubic's 2.4 (decoding the draft: ~22 ms), 43 dB from a Lanczos resize of the full
# photo (bicubic 46, bilinear 41). The page shows thumbnails at ~180 CSS px: the difference is not seen.
RESAMPLE = "HAMMING"
_PRUNE_TO = 0.9  # a full cache is pruned to this fraction of its bound


def thumbnail_jpeg(image: Image.Image, size: int) -> bytes:
    """An upright decoded image as JPEG bytes fitting in `size` x `size` (never enlarged), RGB, no metadata."""
    from PIL import Image as PILImage

    im = image
    if im.mode not in ("RGB", "L"):
        if im.mode in ("RGBA", "LA", "PA", "P") and (im.mode != "P" or im.has_transparency_data):
            rgba = im.convert("RGBA")
            im = PILImage.new("RGB", rgba.size, (255, 255, 255))
            im.paste(rgba, mask=rgba.getchannel("A"))
        else:
            im = im.convert("RGB")
    w, h = im.size
    scale = min(1.0, size / max(w, h, 1))
    target = (max(1, round(w * scale)), max(1, round(h * scale)))
    if target != im.size:
        # reducing_gap: a full-size decode (PNG, TIFF) is box-reduced by an integer factor first.
        im = im.resize(target, PILImage.Resampling[RESAMPLE], reducing_gap=2.0)
    out = io.BytesIO()
    im.save(out, format="JPEG", quality=QUALITY, optimize=False, progressive=False)
    return out.getvalue()


class ThumbnailStore:
    """The thumbnails of one photoindex home: `folder/<size>/<2 hex>/<content hash>.jpg`, at most `max_bytes`."""

    def __init__(self, folder: Path, *, size: int = 320, max_bytes: int = 1 << 30) -> None:
        self.folder = Path(folder)
        self.size = size
        self.max_bytes = max_bytes
        self._total: int | None = None  # bytes in the cache as this process counts them (walked once)
        self._lock = threading.Lock()

    def path_for(self, content_hash: str) -> Path:
        """Where the thumbnail of this content lives (it may not exist); the hash must be hex."""
        if not content_hash or not all(c in "0123456789abcdef" for c in content_hash):
            raise ValueError(f"not a content hash: {content_hash!r}")
        return self.folder / str(self.size) / content_hash[:2] / f"{content_hash}.jpg"

    def get(self, content_hash: str) -> Path | None:
        """The thumbnail's file when it is cached."""
        path = self.path_for(content_hash)
        return path if path.is_file() else None

    def put(self, content_hash: str, data: bytes) -> Path:
        """Store a thumbnail atomically (a reader never sees half a file) and keep the cache bounded; its path."""
        path = self._write(self.path_for(content_hash), data)
        self.account(len(data))
        return path

    def write_new(self, content_hash: str, data: bytes) -> int:
        """Store a thumbnail that is not cached yet, atomically, without the bound's bookkeeping; the bytes
        written (0 when it was there). For the decode workers: the process that owns the store `account`s them."""
        path = self.path_for(content_hash)
        if path.is_file():
            return 0
        self._write(path, data)
        return len(data)

    def account(self, written: int) -> None:
        """Count `written` new bytes in the cache and prune it when it is over its bound."""
        with self._lock:
            if self._total is None:
                self._total = self.usage()[1]  # one walk per process; other writers' files are counted then
            else:
                self._total += written
            due = self._total > self.max_bytes
        if due:
            self.prune()

    @staticmethod
    def _write(path: Path, data: bytes) -> Path:
        try:
            fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)  # no fsync: a cache; a torn file after a crash is replaced below
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return path

    def ensure(self, content_hash: str, photo: Path, *, max_pixels: int) -> Path:
        """The cached thumbnail, made from the photo file now when missing; raises `ImageError`."""
        found = self.get(content_hash)
        if found is not None and found.stat().st_size > 0:
            return found
        from photoindex.photos.imaging import open_upright

        with open_upright(photo, max_pixels=max_pixels, fit=self.size) as im:
            data = thumbnail_jpeg(im, self.size)
        return self.put(content_hash, data)

    def usage(self) -> tuple[int, int]:
        """(files, bytes) in the cache now (a walk of the folder)."""
        files = total = 0
        for _, _, size in self._entries():
            files += 1
            total += size
        return files, total

    def prune(self) -> int:
        """Delete the least recently written thumbnails until the cache is within its bound; returns how many."""
        entries = self._entries()
        total = sum(size for _, _, size in entries)
        with self._lock:
            self._total = total
        if total <= self.max_bytes:
            return 0
        goal = int(self.max_bytes * _PRUNE_TO)
        removed = 0
        for _, path, size in sorted(entries):
            if total <= goal:
                break
            try:
                os.unlink(path)
            except OSError:
                continue
            total -= size
            removed += 1
        with self._lock:
            self._total = total
        return removed

    def _entries(self) -> list[tuple[float, str, int]]:
        """(mtime, path, bytes) of every cached file, of every size (an old size setting's files count too)."""
        out: list[tuple[float, str, int]] = []
        if not self.folder.is_dir():
            return out
        for dirpath, _, names in os.walk(self.folder):
            for name in names:
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                out.append((st.st_mtime, path, st.st_size))
        return out


def thumbnail_store(config: Config) -> ThumbnailStore:
    """The thumbnail cache of a photoindex home, sized by `[thumbnails]`."""
    t = config.thumbnails
    return ThumbnailStore(config.thumbnail_dir, size=max(16, t.size), max_bytes=max(1, t.max_cache_mb) << 20)


def thumbnails_for_files(config: Config, paths: list[str]) -> list[Path | None]:
    """The thumbnail of each photo file (made now when not cached), None for a file that cannot be shown.

    For the terminal (`search --sheet`, `--preview`): a hit names a file, whose bytes are hashed to
    find its cached thumbnail.
    """
    from photoindex.errors import ImageError
    from photoindex.photos.scanner import content_hash

    store = thumbnail_store(config)
    out: list[Path | None] = []
    for path in paths:
        try:
            out.append(store.ensure(content_hash(path), Path(path), max_pixels=config.scan.max_image_pixels))
        except (ImageError, OSError):
            out.append(None)
    return out
