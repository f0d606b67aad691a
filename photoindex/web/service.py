"""What the web page asks of the library: searches, one photo, its thumbnail and view, the status.

The HTTP layer (`app.py`) only parses requests and renders answers; everything here is the core's
own functions (`search.query`, `catalog.reads`, `photos.thumbnails`, `status`) over one open
library. `photoindex serve` opens its own; the daemon lends its library and its in-memory index.

Photos are reached by catalog id only: an id that is not an indexed photo is `NotFound`, and no
path from a request is ever opened (docs/web.md, "Safety").
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from photoindex.errors import PhotoindexError

if TYPE_CHECKING:
    import numpy as np

    from photoindex.catalog.reads import Photo
    from photoindex.library import Library
    from photoindex.vectors.cache import IndexHandle

MAX_LIMIT = 1000  # results of one page's search
MAX_INLINE = 60  # thumbnails one search answer may carry inline: a screenful, not a page of hundreds
VIEW_SIZE = 1600  # pixels, the longer side of the photo view: a screen, not the original


class NotFound(PhotoindexError):
    """No indexed photo has this id (the page answers 404)."""


@dataclass(frozen=True)
class PageSearch:
    """What the page asks for: text (with the query arithmetic), a photo of the catalog ("more like
    this"), an uploaded photo, any mix of them, or none (the filtered photos, newest first); a page
    of results; the filters of `photoindex search`, as typed."""

    text: str | None = None
    like: int | None = None
    image: bytes | None = None
    limit: int = 60
    offset: int = 0
    min_score: float = -1.0
    sort: str = "score"
    folder: str | None = None
    after: str | None = None
    before: str | None = None
    camera: str | None = None
    place: str | None = None
    near: str | None = None
    types: tuple[str, ...] = ()


class WebService:
    """The library behind the web page; safe to call from several request threads at once.

    `index()` returns the vector index to search, current with the catalog (the daemon passes
    its own); searches run one at a time, like the daemon's query socket.
    """

    def __init__(self, lib: Library, *, index: Callable[[], IndexHandle] | None = None) -> None:
        from photoindex.photos.thumbnails import thumbnail_store

        self.lib = lib
        self.config = lib.config
        self.thumbnails = thumbnail_store(lib.config)
        self._own_index: IndexHandle | None = None
        self._index = index or self._standalone_index
        self._search_lock = threading.Lock()
        self._decode_lock = threading.Lock()  # one uploaded photo decoded at a time: memory stays bounded
        self.searches = 0
        self.last_search = 0.0

    # ------------------------------------------------------------ search

    def _standalone_index(self) -> IndexHandle:
        """`photoindex serve` without a daemon: one index kept open, caught up before each search."""
        if self._own_index is None:
            self._own_index = self.lib.open_index()
        else:
            self._own_index.refresh()  # vectors a `photoindex index` committed meanwhile
        return self._own_index

    def search(self, asked: PageSearch, timings: dict[str, float] | None = None) -> list[dict[str, Any]]:
        """The hits, best first (or newest first), as `search --json` prints them (with each photo's `id`).

        `timings`, when given, gets the seconds spent on the query vector (`vector`: encoding the
        text, reading or encoding the example) and on the rest (`search`: the index kept current,
        the top-k, the photos' rows, the hits as JSON objects).
        """
        import dataclasses

        from photoindex.search.filters import Filters
        from photoindex.search.protocol import SearchRequest
        from photoindex.search.query import query_vector, search, search_vector
        from photoindex.search.terms import parse_query

        filters = Filters.from_options(
            folder=asked.folder,
            after=asked.after,
            before=asked.before,
            camera=asked.camera,
            place=asked.place,
            near=asked.near,
            types=asked.types,
        )
        terms = parse_query(asked.text) if asked.text and asked.text.strip() else ()
        if any(t.image is not None for t in terms):
            # A term naming a file would open a path of this machine from a request.
            raise PhotoindexError("the page searches by text only", "drop or paste the photo on the page instead")
        request = SearchRequest.build(
            limit=asked.limit, offset=asked.offset, min_score=asked.min_score, sort=asked.sort, filters=filters
        )
        request = dataclasses.replace(request, terms=terms)
        if not terms and asked.like is None and asked.image is None and filters.empty:
            raise PhotoindexError("nothing to search for", "type a description, drop or paste a photo, or set a filter")
        with self._search_lock:
            start = time.perf_counter()
            vectors = []
            if asked.like is not None:
                vectors.append((1.0, self._stored_vector(asked.like)))
            if asked.image is not None:
                vectors.append((1.0, self._upload_vector(asked.image)))
            if terms or vectors:
                query = query_vector(self.lib, terms, encode_images=False, vectors=vectors)
                vectored = time.perf_counter()
                hits = search_vector(self.lib, query, request, index=self._index())
            else:
                vectored = time.perf_counter()
                hits = search(self.lib, request)  # the filtered photos, newest first
            self.searches += 1
            self.last_search = time.monotonic()
        found = [h.to_json() for h in hits]
        if timings is not None:
            timings.update(vector=vectored - start, search=time.perf_counter() - vectored)
        return found

    def warm(self, text: str) -> int:
        """Encode the texts of a query being typed, so that its search finds their vectors among the
        library's recent query texts; how many were encoded now (0: all known already, or nothing to
        encode: no text, a file term, a query that does not parse; its search will say why).

        The page asks for it after a pause in typing (docs/web.md, "Speed"). It holds the search lock:
        a search asked for meanwhile waits for it and then finds the vector, instead of encoding the
        same text again at the same time on the same cores.
        """
        from photoindex.search.terms import parse_query

        try:
            terms = parse_query(text) if text.strip() else ()
        except PhotoindexError:
            return 0
        if any(t.image is not None for t in terms):
            return 0
        texts = list(dict.fromkeys(t.text for t in terms if t.text is not None))
        with self._search_lock:
            new = [t for t in texts if not self.lib.remembers_text(t)]
            if new:
                self.lib.text_vectors(new)
        return len(new)

    def inline_thumbnails(self, photo_ids: Sequence[int]) -> dict[str, str]:
        """The cached thumbnails of these photos as `data:image/jpeg;base64,...` URLs, by id (as text).

        The first screenful of a search rides in its answer, so the page paints it without a
        request per thumbnail (docs/web.md, "Speed"). Only thumbnails already cached are inlined:
        a photo without one is left out and the page asks for it by URL, so a search never waits
        for a photo to be decoded.
        """
        import base64

        from photoindex.catalog import reads

        ids = list(photo_ids)[:MAX_INLINE]
        if not ids:
            return {}
        with self.lib.db.reads() as con:
            hashes = reads.live_content_hashes(con, ids)
        out: dict[str, str] = {}
        for photo_id in ids:
            digest = hashes.get(photo_id)
            cached = self.thumbnails.get(digest) if digest is not None else None
            if cached is None:
                continue
            try:
                data = cached.read_bytes()
            except OSError:  # pruned in between: the page asks for it by URL
                continue
            out[str(photo_id)] = "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
        return out

    def _stored_vector(self, photo_id: int) -> np.ndarray:
        """The stored vector of a photo of the catalog ("more like this")."""
        from photoindex.catalog import reads

        photo = self.photo(photo_id)
        assert photo.content_hash is not None
        with self.lib.db.reads() as con:
            vector = reads.vector_for_hash(con, self.lib.model_id, photo.content_hash)
        if vector is None:
            raise NotFound(f"photo {photo_id} has no vector for model {self.lib.model_id}", "run `photoindex reindex`")
        return vector

    def _upload_vector(self, data: bytes) -> np.ndarray:
        """Encode an uploaded example photo: decoded in memory under the bomb limit, never written anywhere."""
        from photoindex.photos.imaging import open_upright, preprocess

        encoder = self.lib.image_encoder()
        spec = self.lib.bundle.manifest.image
        with self._decode_lock:
            with open_upright(
                Path("the uploaded photo"), max_pixels=self.config.scan.max_image_pixels, fit=spec.size, data=data
            ) as im:
                pixels = preprocess(im, spec)
        return encoder.encode(pixels[None])[0]

    # ------------------------------------------------------------ photos

    def photo(self, photo_id: int) -> Photo:
        """The indexed photo with this id; `NotFound` otherwise (unknown, failed, missing)."""
        from photoindex.catalog import reads

        with self.lib.db.reads() as con:
            photo = reads.live_photo(con, photo_id)
        if photo is None or photo.content_hash is None:
            raise NotFound(f"no photo {photo_id}", "search again: the library changed")
        # At this machine's mount of a named root (photoindex/mounts.py): the file served is the one here.
        # A root this machine does not map keeps its catalog path `NAME:/...`; `_file` refuses it.
        if not self.config.mounts.mapped(photo.path):
            return photo
        return replace(photo, path=self.config.mounts.local(photo.path))

    def _file(self, photo: Photo) -> Path:
        """The photo's file on this machine; `NotFound` when its root is not mapped here (`[catalog] roots`)."""
        from photoindex.mounts import root_name

        name = root_name(photo.path)
        if name is None:
            return Path(photo.path)
        if name in self.config.mounts.paths:
            raise NotFound(
                f"photo {photo.id}: its catalog path {photo.path!r} leaves the mount of root {name}",
                "the catalog was written by something other than photoindex; run `photoindex reindex`",
            )
        raise NotFound(
            f"photo {photo.id} is in root {name}, which is not mapped on this machine",
            f'to open it here add "{name}=/its/mount/path" to [catalog] roots in config.toml (docs/scale.md)',
        )

    def photo_json(self, photo_id: int, words: Sequence[str] = ()) -> dict[str, Any]:
        """A photo's metadata for the photo view (the fields of a hit, and more), with the text read in it.

        `words`: the words a search matched in it (a hit's `words`); `text.highlights` says where
        they are, in the photo's displayed pixels (`width` x `height`, upright).
        """
        from photoindex.catalog import reads

        photo = self.photo(photo_id)
        camera = " ".join(x for x in (photo.camera_make, photo.camera_model) if x) or None
        place = None
        if photo.place_id is not None:
            with self.lib.db.reads() as con:
                found = reads.places(con, [photo.place_id]).get(photo.place_id)
            place = found.label if found is not None else None
        return {
            "id": photo.id,
            "path": photo.path,
            "name": os.path.basename(photo.path),
            "folder": os.path.dirname(photo.path),
            "width": photo.width,
            "height": photo.height,
            "taken_at": photo.taken_at,
            "size": photo.size,
            "format": photo.format,
            "camera": camera,
            "lens": photo.lens,
            "place": place,
            "gps": {"lat": photo.gps_lat, "lon": photo.gps_lon} if photo.gps_lat is not None else None,
            "text": self._text_json(photo, words),
            "thumbnail": f"/api/photos/{photo.id}/thumbnail",
            "view": f"/api/photos/{photo.id}/view",
            "original": f"/api/photos/{photo.id}/original",
        }

    def _text_json(self, photo: Photo, words: Sequence[str]) -> dict[str, Any] | None:
        """The lines read in the photo (text, confidence, box) and where `words` are; None: no text read."""
        import json

        from photoindex.catalog import text as catalog_text
        from photoindex.ocr.highlight import word_boxes

        if photo.content_hash is None:
            return None
        with self.lib.db.reads() as con:
            found = catalog_text.texts_for_hashes(con, [photo.content_hash]).get(photo.content_hash)
        if found is None:
            return None
        text, stored = found
        try:
            lines = json.loads(stored) if stored else []
        except ValueError:
            lines = []
        if not isinstance(lines, list):
            lines = []
        lines = [line for line in lines if isinstance(line, dict) and isinstance(line.get("text"), str)]
        return {
            "lines": [{"text": line["text"], "confidence": line.get("confidence"), "box": line.get("box")}
                      for line in lines] or [{"text": text, "confidence": None, "box": None}],
            "highlights": [b.to_json() for b in word_boxes(lines, words)],
        }

    def cached_thumbnail(self, photo_id: int) -> tuple[Path | None, Photo]:
        """The thumbnail file when it is cached (the fast path, no decoding), and the photo."""
        photo = self.photo(photo_id)
        assert photo.content_hash is not None
        return self.thumbnails.get(photo.content_hash), photo

    def thumbnail(self, photo: Photo) -> Path:
        """The photo's thumbnail, made from the file now when it is not cached (a photo indexed before thumbnails)."""
        assert photo.content_hash is not None
        path = self._file(photo)
        return self._from_file(photo, lambda: self.thumbnails.ensure(
            photo.content_hash or "", path, max_pixels=self.config.scan.max_image_pixels
        ))

    def view(self, photo_id: int) -> bytes:
        """The photo upright, as a JPEG sized for a screen (HEIC and TIFF too, which browsers do not show)."""
        from photoindex.photos.imaging import open_upright
        from photoindex.photos.thumbnails import thumbnail_jpeg

        photo = self.photo(photo_id)
        path = self._file(photo)

        def render() -> bytes:
            with self._decode_lock, open_upright(
                path, max_pixels=self.config.scan.max_image_pixels, fit=VIEW_SIZE
            ) as im:
                return thumbnail_jpeg(im, VIEW_SIZE)

        return self._from_file(photo, render)

    def original(self, photo_id: int) -> Path:
        """The photo's file, for download: the catalog's path of an indexed photo, still a regular file."""
        photo = self.photo(photo_id)
        path = self._file(photo)
        if not path.is_file():
            raise NotFound(f"photo {photo_id} is no longer at {photo.path}", "run `photoindex reindex`")
        return path

    def _from_file(self, photo: Photo, make: Callable[[], Any]) -> Any:
        """Run `make` on the photo's file; a file gone or unreadable since indexing is `NotFound`."""
        from photoindex.errors import ImageError

        try:
            return make()
        except ImageError as exc:
            raise NotFound(f"photo {photo.id} cannot be shown: {exc.message}", exc.hint) from None
        except OSError as exc:
            raise NotFound(f"photo {photo.id} cannot be read: {exc.strerror or exc}", None) from None

    # ------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """The library's status (`photoindex status --json`), with hints for the failures."""
        import dataclasses

        from photoindex.photos.imaging import hint_for
        from photoindex.status import status_of

        data = dataclasses.asdict(status_of(self.lib))
        for failure in data["last_failures"]:
            reason = failure["error"].split(":", 1)[0]
            failure["reason"] = reason
            failure["hint"] = hint_for(reason)
        data["searches_served"] = self.searches
        return data

    def duplicates(self, *, threshold: float, folder: str | None) -> list[dict[str, Any]]:
        """Groups of copies and near-duplicates (`photoindex duplicates --json`), largest first; never deletes."""
        from photoindex.search.duplicates import duplicates_in

        groups = duplicates_in(self.lib, threshold=threshold, folder=folder)
        out = []
        for g in groups:
            data = g.to_json()
            for photo in data["photos"]:
                photo["thumbnail"] = f"/api/photos/{photo['id']}/thumbnail"
            out.append(data)
        return out

    def roots(self) -> list[str]:
        """The roots' paths (the page's folder filter)."""
        from photoindex.catalog import writes as catalog

        with self.lib.db.read() as s:
            return [self.config.mounts.local(r.path) for r in catalog.list_roots(s)]
