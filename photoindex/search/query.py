"""Searching: a `SearchRequest` -> one query vector -> the filtered ids' best matches -> live photos.

One entry point for every caller: `run_search(config, request)` opens the library and calls
`search(lib, request)`, which the daemon's server calls on its warm library (docs/search.md).
Scores are cosine similarities. Hits are resolved against SQLite in one read, so a photo deleted
or moved since the index was written never appears, and copies of one photo (which share one
vector) are all listed.

Filters restrict the vector search itself: the ids of the vectors whose photos pass them are
handed to the index (`VectorIndex.search(allowed=...)`), so a filtered search returns `limit`
hits whenever that many photos pass; it never searches the top k first and filters after.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from photoindex.catalog import reads
from photoindex.errors import PhotoindexError
from photoindex.library import Library, open_library
from photoindex.search.protocol import Declined, Hit, SearchRequest
from photoindex.search.terms import Term
from photoindex.vectors.scoring import l2_normalize

if TYPE_CHECKING:
    from photoindex.config import Config
    from photoindex.search.words import WordsHit
    from photoindex.vectors.cache import IndexHandle

__all__ = ["Hit", "SearchRequest", "query_vector", "run_search", "search"]

log = logging.getLogger(__name__)


def run_search(config: Config, request: SearchRequest | None = None, /, **options: Any) -> list[Hit]:
    """`photoindex search` in this process: a request, or the options of `SearchRequest.build`."""
    if request is None:
        request = SearchRequest.build(**options)
    elif options:
        raise TypeError("give a SearchRequest or its options, not both")
    with open_library(config) as lib:
        # One query per process: the encoders' memory is given back before the vector index is
        # loaded, so the peak is the larger of the two rather than their sum.
        return search(lib, request, release_encoders=True)


def search(
    lib: Library,
    request: SearchRequest,
    *,
    index: IndexHandle | None = None,
    encode_images: bool = True,
    release_encoders: bool = False,
) -> list[Hit]:
    """The hits of one request on an open library (the daemon passes its warm index).

    `encode_images=False` (the daemon) raises `Declined` for an example photo the catalog has
    no vector for, rather than decoding an arbitrary file in a long-lived process.
    """
    if not request.has_query:
        if request.words is not None:
            return search_words(lib, request)
        request = catalog_spelling(lib, request)
        with lib.db.reads() as con:
            photos = reads.list_photos(con, request.filters, limit=request.limit, offset=request.offset)
            labels = _place_labels(con, photos)
        return [_hit(p, None, labels, lib.config.mounts.local, matched=None) for p in photos]
    beside = _IndexBeside.start(lib) if index is None and release_encoders else None
    query = query_vector(lib, request.terms, encode_images=encode_images)
    if release_encoders:
        lib.release_encoders()
    if beside is not None:
        index = beside.result()
        index.save_opportunistically(lib.config.lock_path)
    return search_vector(lib, query, request, index=index)


# A one-shot search opens an index file up to this size while the text model loads (docs/architecture.md,
# "Start-up"); a larger one is opened after the model is released, so that the process's peak is the
# larger of the two, not their sum.
INDEX_BESIDE_MAX = 64 << 20


class _IndexBeside:
    """The vector index, opened in a thread of its own while this one encodes the query.

    Loading an ONNX model and running it release the GIL; importing FAISS and reading the index
    file and the catalog mostly do not, so the two overlap on a multi-core machine.
    """

    def __init__(self, lib: Library) -> None:
        import threading

        self._lib = lib
        self._handle: IndexHandle | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._open, name="open-index", daemon=True)

    @classmethod
    def start(cls, lib: Library) -> _IndexBeside | None:
        """Started when the index is a small local file; None: open it after the query, as usual."""
        if lib.db.kind != "sqlite":
            return None
        try:
            if lib.index_path().stat().st_size > INDEX_BESIDE_MAX:
                return None
        except OSError:
            return None  # no file yet: it is rebuilt from the catalog, however large that is
        beside = cls(lib)
        beside._thread.start()
        return beside

    def _open(self) -> None:
        try:
            self._handle = self._lib.open_index()
        except BaseException as exc:  # raised again in the caller's thread
            self._error = exc

    def result(self) -> IndexHandle:
        """The open index (waits for it); what opening it raised is raised here."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._handle is not None
        return self._handle


def query_vector(
    lib: Library,
    terms: tuple[Term, ...] | list[Term],
    *,
    encode_images: bool = True,
    vectors: Sequence[tuple[float, np.ndarray]] = (),
) -> np.ndarray:
    """The unit query vector of weighted terms: the weighted sum of their unit vectors, made unit again.

    Texts go through the bundle's text encoder (all in one batch); an example photo uses its stored
    vector when its content is in the catalog, else it is decoded and encoded now (unless
    `encode_images` is False: then `Declined`). `vectors`: (weight, vector) pairs already at hand
    (the web page's "more like this" and uploaded photos), summed in like terms.
    """
    if not terms and not vectors:
        raise PhotoindexError("nothing to search for", "give a text or --image PATH")
    texts = [t.text for t in terms if t.text is not None]
    by_text = lib.text_vectors(texts) if texts else {}
    total = np.zeros(lib.bundle.manifest.embedding_dim, dtype=np.float32)
    for t in terms:
        if t.text is not None:
            v = by_text[t.text]
        else:
            assert t.image is not None
            v = l2_normalize(image_vector(lib, Path(t.image), encode=encode_images))
        total += np.float32(t.weight) * v
    for weight, vector in vectors:
        total += np.float32(weight) * l2_normalize(vector)
    if float(np.linalg.norm(total)) < 1e-6:
        raise PhotoindexError("the query's terms cancel out", 'drop a term, e.g. "red + blue - red" is just "blue"')
    return l2_normalize(total)


def image_vector(lib: Library, path: Path, *, encode: bool = True) -> np.ndarray:
    """The vector of an example photo: its stored vector when the content is known, else encoded now."""
    from photoindex.photos.scanner import content_hash

    if path.is_dir():
        raise PhotoindexError(
            f"--image {path}: that is a folder, not a photo",
            f"give one example photo; to search only the photos in that folder use --folder {path}",
        )
    if not path.is_file():
        raise PhotoindexError(
            f"--image {path}: no such file" if not os.path.lexists(path) else f"--image {path}: not a regular file",
            "give the path of an example photo (a relative path is taken from the current folder)",
        )
    try:
        digest = content_hash(path)
    except OSError as exc:
        if not encode:
            raise Declined(f"{path}: cannot read it: {exc.strerror or exc}") from None
        raise PhotoindexError(f"{path}: cannot read the file: {exc.strerror or exc}", "check its permissions") from None
    with lib.db.reads() as con:
        stored = reads.vector_for_hash(con, lib.model_id, digest)
    if stored is not None:
        return stored
    if not encode:
        # Decoding an arbitrary file belongs in a short-lived process (a bomb must not take the
        # daemon down), and the CLI does that; the daemon only looks up what it has encoded.
        raise Declined(f"{path} is not in the catalog: the CLI encodes it")
    from photoindex.errors import ImageError
    from photoindex.photos.imaging import ALLOWED_FORMATS, decode_photo

    encoder = lib.image_encoder()
    spec = lib.bundle.manifest.image
    try:
        pixels, _ = decode_photo(path, spec, max_pixels=lib.config.scan.max_image_pixels)
    except ImageError as exc:
        if exc.reason != "unsupported-format":
            raise
        # The scan's hint (`[scan] extensions`) is about folders; here one argument is wrong.
        raise PhotoindexError(
            f"--image {exc.message}",
            f"give an example photo in a format photoindex reads ({', '.join(sorted(ALLOWED_FORMATS))})",
        ) from None
    return encoder.encode(pixels[None])[0]


def search_vector(
    lib: Library, query: np.ndarray, request: SearchRequest, *, index: IndexHandle | None = None
) -> list[Hit]:
    """The page of live photos for a unit query vector under the request's filters, order and page.

    Ordered by score, the photos whose text read matches the request's words (`--words`, else the
    query's own text) are fused into CLIP's ranking by reciprocal rank fusion (search/words.py,
    docs/ocr.md); `min_score` applies to CLIP's matches only.
    """
    request = catalog_spelling(lib, request)
    handle = index or lib.open_index()
    if index is None:
        handle.save_opportunistically(lib.config.lock_path)
    wanted = request.offset + request.limit
    by_words = _words_part(lib, request) if request.sort == "score" else []
    found = _clip_found(lib, handle, query, request, want=max(wanted, FUSION_DEPTH) if by_words else wanted)
    if request.sort == "date":
        # As a listing orders them: newest first by the wall clock they were taken at, undated last.
        found.sort(key=lambda f: f[0].path)
        found.sort(key=lambda f: f[0].taken_local or "", reverse=True)
        found.sort(key=lambda f: f[0].taken_local is None)
    ranked: list[tuple[reads.Photo, float | None, str, tuple[str, ...]]]
    if by_words:
        ranked = _fused(lib, query, found, by_words, request, want=wanted)
    else:
        ranked = [(ph, score, "clip", ()) for ph, score in found]
    page = ranked[request.offset : wanted]
    with lib.db.reads() as con:
        labels = _place_labels(con, [ph for ph, *_ in page])
    local = lib.config.mounts.local
    return [_hit(ph, score, labels, local, matched=matched, words=words) for ph, score, matched, words in page]


# How deep each ranking goes before fusion: a photo ranked below this by both is not a result.
FUSION_DEPTH = 100


def _clip_found(
    lib: Library, handle: IndexHandle, query: np.ndarray, request: SearchRequest, *, want: int
) -> list[tuple[reads.Photo, float]]:
    """CLIP's best live photos under the request's filters, best first, until `want` (every one above
    `min_score` when sorting by date). On a PostgreSQL catalog pgvector ranks them (docs/scale.md)."""
    if lib.db.kind == "postgresql":
        return _clip_found_pgvector(lib, query, request, want=want)
    filters = request.filters
    allowed = None
    if not filters.empty:
        with lib.db.reads() as con:
            allowed = reads.vector_ids_matching(con, lib.model_id, filters)
        if allowed.size == 0:
            return []
    total = len(handle.index) if allowed is None else min(len(handle.index), int(allowed.size))
    if total == 0:
        return []
    if request.sort == "date":
        k = total  # every eligible photo above --min-score, newest first
    else:
        k = min(total, max(want * 2, want + 16))
    while True:
        scores, ids = handle.index.search(query[None].astype(np.float32), k, allowed=allowed)
        scores, ids = scores[0], ids[0]
        keep = scores >= request.min_score
        scores, ids = scores[keep], ids[keep]
        with lib.db.reads() as con:
            photos = reads.live_photos_for_vectors(con, lib.model_id, ids.tolist(), filters=filters)
        found = [
            (ph, float(score))
            for vid, score in zip(ids.tolist(), scores.tolist(), strict=True)
            for ph in photos.get(int(vid), [])
        ]
        if request.sort == "date" or len(found) >= want or k >= total or len(scores) < k:
            return found
        k = min(total, k * 4)


def _clip_found_pgvector(
    lib: Library, query: np.ndarray, request: SearchRequest, *, want: int
) -> list[tuple[reads.Photo, float]]:
    """`_clip_found` on PostgreSQL: pgvector's HNSW index, or an exact ranking of a small filtered set, with
    the filters in the same statement (catalog/pgvectors.py); no FAISS copy of the catalog is kept."""
    from photoindex.catalog.pgvectors import nearest

    filters = request.filters
    dim = lib.bundle.manifest.embedding_dim
    k = 1_000_000_000 if request.sort == "date" else max(want * 2, want + 16)
    with lib.db.reads() as con:
        where = None if filters.empty else reads.filter_clause(con, filters)
        while True:
            scores, ids = nearest(
                con, lib.model_id, dim, query, k, where=where, ef_search=lib.config.catalog.hnsw_ef_search
            )
            keep = scores >= request.min_score
            photos = reads.live_photos_for_vectors(con, lib.model_id, ids[keep].tolist(), filters=filters)
            found = [
                (ph, float(score))
                for vid, score in zip(ids[keep].tolist(), scores[keep].tolist(), strict=True)
                for ph in photos.get(int(vid), [])
            ]
            if request.sort == "date" or len(found) >= want or len(ids) < k or not keep.all():
                return found
            k *= 4


def _words_part(lib: Library, request: SearchRequest) -> list[WordsHit]:
    """The contents whose text matches the request's words (`--words`, else the query's texts), best first."""
    from photoindex.search.words import find_words

    described = " ".join(t.text for t in request.terms if t.text is not None and t.weight > 0)
    words = request.words if request.words is not None else described
    if not words.strip():
        return []
    with lib.db.reads() as con:
        return find_words(con, words, limit=FUSION_DEPTH, description=request.words is None)


def _fused(
    lib: Library,
    query: np.ndarray,
    found: list[tuple[reads.Photo, float]],
    by_words: list[WordsHit],
    request: SearchRequest,
    *,
    want: int,
) -> list[tuple[reads.Photo, float | None, str, tuple[str, ...]]]:
    """CLIP's ranking and the words' ranking of contents fused (search/words.py), as photos, best first."""
    from photoindex.catalog import text as catalog_text
    from photoindex.search.words import fuse

    held: dict[str, list[reads.Photo]] = {}
    cosine: dict[str, float] = {}
    for ph, score in found:  # copies share a content, hence a vector and a rank
        key = str(ph.content_hash)
        held.setdefault(key, []).append(ph)
        cosine.setdefault(key, score)
    clip_order = list(held)
    words = {w.content_hash: w for w in by_words}
    with lib.db.reads() as con:
        held.update(catalog_text.live_photos_for_hashes(con, [h for h in words if h not in held], request.filters))
        for h in words:
            if h not in cosine and h in held:
                stored = reads.vector_for_hash(con, lib.model_id, h)
                if stored is not None:
                    cosine[h] = float(np.dot(l2_normalize(stored), query))
    in_clip = set(clip_order)
    out: list[tuple[reads.Photo, float | None, str, tuple[str, ...]]] = []
    for h, _ in fuse([clip_order, [w.content_hash for w in by_words]]):
        matched = "+".join(part for part, there in (("clip", h in in_clip), ("words", h in words)) if there)
        out.extend((ph, cosine.get(h), matched, words[h].words if h in words else ()) for ph in held.get(h, []))
        if len(out) >= want:
            break
    return out


def search_words(lib: Library, request: SearchRequest) -> list[Hit]:
    """`photoindex search --words` alone: photos by the text read in them, best first (or newest first with
    `--sort date`), under the request's filters; no model is loaded."""
    from photoindex.catalog import text as catalog_text
    from photoindex.search.words import find_words

    request = catalog_spelling(lib, request)
    assert request.words is not None
    wanted = request.offset + request.limit
    with lib.db.reads() as con:
        found = find_words(con, request.words, limit=max(wanted * 2, wanted + 16))
        photos = catalog_text.live_photos_for_hashes(con, [w.content_hash for w in found], request.filters)
        ranked = [(ph, w.words) for w in found for ph in photos.get(w.content_hash, [])]
        if request.sort == "date":
            ranked.sort(key=lambda f: f[0].path)
            ranked.sort(key=lambda f: f[0].taken_local or "", reverse=True)
            ranked.sort(key=lambda f: f[0].taken_local is None)
        page = ranked[request.offset : wanted]
        labels = _place_labels(con, [ph for ph, _ in page])
    return [_hit(ph, None, labels, lib.config.mounts.local, matched="words", words=words) for ph, words in page]


def _place_labels(con: Any, photos: list[reads.Photo]) -> dict[int, str]:
    ids = {p.place_id for p in photos if p.place_id is not None}
    return {pid: place.label for pid, place in reads.places(con, sorted(ids)).items()} if ids else {}


def catalog_spelling(lib: Library, request: SearchRequest) -> SearchRequest:
    """The request with its `--folder` as the catalog spells it: `NAME:/...` inside a named root's mount,
    the absolute path while that root is still registered by it (photoindex/mounts.py; the hits' paths
    go the other way, `_hit`)."""
    folder = request.filters.folder
    if folder is None or not lib.config.mounts.paths:
        return request
    with lib.db.reads() as con:
        stored = lib.config.mounts.folder_spelling(folder, reads.root_paths(con))
    if stored == folder:
        return request
    return dataclasses.replace(request, filters=dataclasses.replace(request.filters, folder=stored))


def _hit(
    ph: reads.Photo,
    score: float | None,
    places: dict[int, str],
    local: Callable[[str], str],
    *,
    matched: str | None = "clip",
    words: tuple[str, ...] = (),
) -> Hit:
    return Hit(
        path=local(ph.path),
        score=score,
        width=ph.width,
        height=ph.height,
        taken_at=ph.taken_at,
        size=ph.size,
        format=ph.format,
        camera=" ".join(x for x in (ph.camera_make, ph.camera_model) if x) or None,
        taken_source=ph.taken_source,
        lens=ph.lens,
        latitude=ph.gps_lat,
        longitude=ph.gps_lon,
        altitude=ph.gps_alt,
        place=places.get(ph.place_id) if ph.place_id is not None else None,
        matched=matched,
        words=words,
        id=ph.id,
    )


def photos_not_encoded(config: Config) -> tuple[str, int]:
    """(the configured model's name, how many indexed photos have no vector for it yet).

    After a model switch, photos indexed under the old model are found only once the new one has
    encoded them (`photoindex reindex`, or the daemon's next scan); a search says so instead of
    answering from part of the library in silence (docs/models.md).
    """
    with open_library(config) as lib, lib.db.reads() as con:
        return lib.bundle.manifest.name, reads.photos_without_vector(con, lib.model_id)


def command_reply(
    config: Config, request: SearchRequest, hits: list[Hit], not_encoded: tuple[str, int]
) -> dict[str, Any]:
    """What `photoindex search`'s client prints (cli/served.py): the hits, how many photos the
    model has not encoded yet and, when nothing was found, why (from the daemon or this process)."""
    from photoindex.search.protocol import reply_hits

    answer = reply_hits(hits, not_encoded)
    if not hits:
        why, hint = why_no_hits(config, request)
        answer["no_hits"] = {"why": why, "hint": hint}
    return answer


def why_no_hits(config: Config, request: SearchRequest) -> tuple[str, str]:
    """Why a search found nothing, as (message, hint) a user can act on; read-only, plain SQLite."""
    from photoindex.paths import within

    if not config.catalog_location.is_postgres and not config.db_path.exists():
        return "the library is empty", "add a folder of photos with `photoindex index PATH`"
    with open_library(config) as lib, lib.db.reads() as con:
        roots = [config.mounts.local(r[0]) for r in con.execute("SELECT path FROM roots ORDER BY path")]
        live = con.execute("SELECT count(*) FROM photos WHERE status != 'missing'").fetchone()[0]
        vectors = reads.vector_count(con, lib.model_id)
        place = request.filters.place
        unknown_place = _unknown_place(con, place) if place is not None else None
    if not roots or not live:
        where = f" (roots: {', '.join(roots)})" if roots else ""
        return f"the library is empty: no photos indexed{where}", "add a folder of photos with `photoindex index PATH`"
    folder = request.filters.folder
    if folder is not None and not any(within(folder, r) or within(r, folder) for r in roots):
        return (
            f"--folder {folder} is not inside any indexed folder (roots: {', '.join(roots)})",
            f"index it first with `photoindex index {folder}`, or give a folder under one of the roots",
        )
    if unknown_place is not None:
        return unknown_place
    if request.has_query and not vectors:
        return (
            f"none of the {live} photos is encoded for model {lib.bundle.manifest.name} yet",
            "run `photoindex reindex` to encode them",
        )
    if request.offset:
        return f"--offset {request.offset} is past the last result", "give a smaller --offset"
    if request.has_query and request.min_score > -1.0:
        return (
            f"no photo scored at least {request.min_score:g} (--min-score or [search] min_score)",
            "lower it: real CLIP matches typically score 0.2 to 0.35",
        )
    if not request.filters.empty:
        return f"no photo among {live} passes the filters", "loosen them (--after, --before, --camera, --place, ...)"
    return f"no photo matched among {live}", "try other words"


def _unknown_place(con: Any, place: str) -> tuple[str, str] | None:
    """(message, hint) when no place of the catalog answers to `place`: close spellings it has, and where
    places come from; None when the name is known (the other filters then left nothing)."""
    import difflib

    key = reads.place_key(place)
    if con.execute("SELECT 1 FROM place_names WHERE name = ? LIMIT 1", (key,)).fetchone() is not None:
        return None
    message = f"--place {place!r}: no photo was taken in a place of that name"
    names = dict(con.execute("SELECT name, min(place_id) FROM place_names GROUP BY name").fetchall())
    close = difflib.get_close_matches(key, list(names), n=20, cutoff=0.75)
    if not close:  # a prefix is a likelier slip than a typo: "hang" for "hangzhou"
        close = sorted((n for n in names if n.startswith(key)), key=len)
    # The best spelling of each place (a city has dozens of spellings), at most three places.
    best: dict[int, str] = {}
    for name in close:
        best.setdefault(names[name], name)
    close = list(best.values())[:3]
    if close:
        labels = reads.places(con, [names[c] for c in close])
        spelled = [f"{c!r} ({labels[names[c]].label})" if names[c] in labels else repr(c) for c in close]
        return message, f"did you mean {' or '.join(spelled)}?"
    from photoindex.places import available

    if not available():
        return message, (
            "places come from the photos' GPS positions and need the places data: "
            "pip install 'photoindex[places]', then run `photoindex reindex`"
        )
    known = con.execute("SELECT count(*) FROM places").fetchone()[0]
    where = f"{known} such place{'' if known == 1 else 's'}: try --near LAT,LON[,KM]" if known else (
        "no such place (none has GPS): try --after or --folder"
    )
    return message, (
        "places come from the photos' GPS positions (the nearest city of 15,000 people or more, or its "
        f"country); this library's photos were taken in {where}"
    )
