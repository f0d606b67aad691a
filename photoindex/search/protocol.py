"""The search request and its reply: the one place they are built, checked, serialized and parsed.

`photoindex search`, the daemon's socket and the web page all describe a search as a
`SearchRequest` and get `Hit`s back. On the daemon's socket each travels as one JSON line:

- request: `{"model": MODEL_ID, "terms": [{"weight", "text"|"image"}], "limit", "offset",
  "min_score", "sort", "filters": {...}}` with absolute paths (`Filters.to_wire`);
  `{"ping": true}` is answered `{"pong": true}`;
- reply: `{"hits": [Hit.to_json(), ...], "not_encoded": {"model": NAME, "photos": N}}` (N: indexed
  photos the model has not encoded yet, which the client warns about without opening the catalog;
  a daemon that leaves it out makes the client look itself), `{"error": message, "hint": hint}` (the search's own
  `PhotoindexError`), or `{"unavailable": why}` (another model, an example photo the daemon has
  not encoded, ...): the client then searches by itself, as if no daemon ran.

The model id travels as `"model"`: a daemon older than this protocol declines such a request
(it requires `"bundle"`) instead of answering it without its filters.
Standard library only: the client path of `photoindex search` imports nothing heavy.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, cast

from photoindex.errors import PhotoindexError
from photoindex.search.filters import Filters
from photoindex.search.terms import Term, image_term, parse_query

MAX_LIMIT = 10_000  # the most results one request returns (`--limit`, as `[search] limit` in config.toml)
MAX_OFFSET = 1_000_000
MAX_TEXT = 4096  # characters; CLIP reads 77 tokens, a longer text is a mistake or abuse
SORTS = ("score", "date")


class Declined(Exception):
    """The daemon cannot answer this request; the client searches by itself (`{"unavailable": why}`)."""


@dataclass(frozen=True)
class SearchRequest:
    """One search: the query's terms (none: list the filtered photos by date), a page, filters, an order."""

    terms: tuple[Term, ...] = ()
    limit: int = 20
    offset: int = 0
    min_score: float = -1.0
    sort: str = "score"
    filters: Filters = field(default_factory=Filters)
    # `--words`: search the text read in photos (docs/ocr.md); with terms, fused with CLIP's ranking in
    # their place (by default the words part of a query is its own text).
    words: str | None = None

    @classmethod
    def build(
        cls,
        *,
        text: str | None = None,
        images: tuple[str | os.PathLike[str], ...] | list[Any] = (),
        not_images: tuple[str | os.PathLike[str], ...] | list[Any] = (),
        limit: int = 20,
        offset: int = 0,
        min_score: float = -1.0,
        sort: str = "score",
        filters: Filters | None = None,
        words: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> SearchRequest:
        """A request from what the user gave; relative paths are taken from `cwd` (default: here).

        Raises `PhotoindexError` for a bad query, page or order (filters are checked by `Filters`).
        """
        terms = list(parse_query(text, cwd=cwd)) if text is not None and text.strip() else []
        if words is not None and (not words.strip() or len(words) > MAX_TEXT):
            raise PhotoindexError("--words is empty" if not words.strip() else "--words is too long",
                                  'give the words to look for, e.g. --words "tracking number"')
        if text is not None and not text.strip() and not images:
            parse_query(text)  # raises "the query is empty"
        terms += [image_term(p, 1.0, cwd=cwd) for p in images]
        terms += [image_term(p, -1.0, cwd=cwd) for p in not_images]
        if terms and all(t.weight < 0 for t in terms):
            raise PhotoindexError("--not-image alone has nothing to search for", "add a text or --image PATH")
        if not isinstance(limit, int) or limit < 1:
            raise PhotoindexError(f"--limit {limit}: not a positive number", "give --limit 1 or more")
        if limit > MAX_LIMIT:
            raise PhotoindexError(
                f"--limit {limit}: at most {MAX_LIMIT} results at a time",
                f"give --limit {MAX_LIMIT} or less, and --offset to see the next page",
            )
        if not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
            raise PhotoindexError(f"--offset {offset}: not from 0 to {MAX_OFFSET}", "give --offset 0 or more")
        if sort not in SORTS:
            raise PhotoindexError(f"--sort {sort!r}: not an order", "give --sort score or --sort date")
        if not math.isfinite(min_score):
            raise PhotoindexError(f"--min-score {min_score}: not a number", "give a cosine score, e.g. 0.2")
        return cls(tuple(terms), limit, offset, float(min_score), sort, filters or Filters(), words)

    @property
    def has_query(self) -> bool:
        """False for a listing by filters alone."""
        return bool(self.terms)

    def to_wire(self, model_id: str) -> dict[str, Any]:
        """The JSON object sent to the daemon."""
        return {
            "model": model_id,
            "terms": [t.to_wire() for t in self.terms],
            "limit": self.limit,
            "offset": self.offset,
            "min_score": self.min_score,
            "sort": self.sort,
            "filters": self.filters.to_wire(),
            **({"words": self.words} if self.words is not None else {}),
        }


def parse_request(data: Any) -> tuple[SearchRequest, str]:
    """A decoded request line as (request, model id); raises `Declined` naming what is wrong."""
    if not isinstance(data, dict):
        raise Declined("the request is not a JSON object")
    model, raw_terms = data.get("model"), data.get("terms")
    limit, offset, min_score, sort = data.get("limit"), data.get("offset", 0), data.get("min_score"), data.get("sort")
    if not isinstance(model, str):
        raise Declined("model must be the model id of the configured bundle")
    if not isinstance(raw_terms, list) or len(raw_terms) > 64:
        raise Declined("terms must be a list")
    terms = []
    for raw in raw_terms:
        if not isinstance(raw, dict) or set(raw) not in ({"weight", "text"}, {"weight", "image"}):
            raise Declined("a term is {weight, text} or {weight, image}")
        weight, text, image = raw["weight"], raw.get("text"), raw.get("image")
        if not _finite(weight) or weight == 0:
            raise Declined("a term's weight must be a finite number other than 0")
        if text is not None and (not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT):
            raise Declined(f"text must be a string of 1 to {MAX_TEXT} characters")
        if "image" in raw and (not isinstance(image, str) or not os.path.isabs(image) or "\0" in image):
            raise Declined("image must be an absolute path")
        terms.append(Term(float(weight), text=text, image=image))
    if terms and all(t.weight < 0 for t in terms):
        raise Declined("nothing to search for")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise Declined(f"limit must be an integer from 1 to {MAX_LIMIT}")
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= MAX_OFFSET:
        raise Declined(f"offset must be an integer from 0 to {MAX_OFFSET}")
    if not _finite(min_score):
        raise Declined("min_score must be a finite number")
    if sort not in SORTS:
        raise Declined(f"sort must be one of {', '.join(SORTS)}")
    try:
        filters = Filters.from_wire(data.get("filters", {}))
    except (ValueError, PhotoindexError) as exc:
        raise Declined(f"filters: {exc}") from None
    words: Any = data.get("words")
    if words is not None and (not isinstance(words, str) or not words.strip() or len(words) > MAX_TEXT):
        raise Declined(f"words must be a string of 1 to {MAX_TEXT} characters")
    return SearchRequest(tuple(terms), limit, offset, float(cast(float, min_score)), sort, filters, words), model


@dataclass(frozen=True)
class Hit:
    """One search result: a photo, its score (None in a listing without a query) and what the catalog knows."""

    path: str
    score: float | None
    width: int | None = None
    height: int | None = None
    taken_at: str | None = None  # ISO 8601, with the UTC offset when the photo records one
    size: int | None = None
    format: str | None = None
    camera: str | None = None
    taken_source: str | None = None  # 'exif', 'exif-datetime' or 'mtime' (docs/search.md, "Metadata")
    lens: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    altitude: float | None = None
    place: str | None = None  # "City, Country": the nearest GeoNames city
    # Which part found it, when the words read in photos took part: "clip", "words" or "clip+words"
    # (None: CLIP alone, or a listing); the words as read that matched (docs/ocr.md).
    matched: str | None = None
    words: tuple[str, ...] = ()
    id: int | None = None  # the photo's catalog id (the web page's thumbnails and photo view use it)

    def to_json(self) -> dict[str, Any]:
        """The object printed by `--json` and sent by the daemon."""
        # Every field is a plain value but `words`: a dict of them is what `asdict` returns, without
        # its deep copy of each (9 ms of a web search's 60 hits at 100,000 photos, docs/web.md "Speed").
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["words"] = list(self.words)
        return data

    @classmethod
    def from_json(cls, data: Any) -> Hit:
        """The inverse of `to_json` (unknown keys ignored, missing ones None); raises ValueError."""
        if not isinstance(data, dict) or not isinstance(data.get("path"), str):
            raise ValueError("a hit is an object with a path")
        score = data.get("score")
        if score is not None and not _finite(score):
            raise ValueError("a hit's score is a number")
        known = {f.name for f in fields(cls)}
        words = data.get("words") or ()
        if not isinstance(words, (list, tuple)) or not all(isinstance(w, str) for w in words):
            raise ValueError("a hit's words are strings")
        return cls(**{k: v for k, v in data.items() if k in known and k not in ("path", "score", "words")},
                   path=data["path"], score=None if score is None else float(score), words=tuple(words))


def reply_hits(hits: list[Hit], not_encoded: tuple[str, int] | None = None) -> dict[str, Any]:
    """The reply carrying a search's hits, and (model name, photos it has not encoded yet) when known."""
    answer: dict[str, Any] = {"hits": [h.to_json() for h in hits]}
    if not_encoded is not None:
        answer["not_encoded"] = {"model": not_encoded[0], "photos": not_encoded[1]}
    return answer


def parse_not_encoded(answer: Any) -> tuple[str, int] | None:
    """(model name, photos it has not encoded yet) from a reply with hits; None when the reply does not say."""
    entry = answer.get("not_encoded") if isinstance(answer, dict) else None
    if not isinstance(entry, dict):
        return None
    model, photos = entry.get("model"), entry.get("photos")
    if not isinstance(model, str) or not isinstance(photos, int) or isinstance(photos, bool) or photos < 0:
        return None
    return model, photos


def reply_error(exc: PhotoindexError) -> dict[str, Any]:
    """The reply carrying the search's own error (the client raises it again, or prints it with its exit code)."""
    return {"error": exc.message, "hint": exc.hint, "code": exc.exit_code}


def reply_unavailable(why: object) -> dict[str, Any]:
    """The reply telling the client to search by itself."""
    return {"unavailable": str(why)}


def parse_reply(answer: Any) -> list[Hit] | None:
    """The hits of a reply, None when the client must search by itself; an error reply is raised as
    the same `PhotoindexError`, so the user sees the same `error:`/`hint:` lines."""
    if not isinstance(answer, dict):
        return None
    hits = answer.get("hits")
    if isinstance(hits, list):
        try:
            return [Hit.from_json(h) for h in hits]
        except (TypeError, ValueError):
            return None
    message, hint = answer.get("error"), answer.get("hint")
    if isinstance(message, str) and (hint is None or isinstance(hint, str)):
        raise PhotoindexError(message, hint)
    return None


# `photoindex search`'s own options, as the command line's client sends them (`cli/served.py`):
# name -> the JSON types it may have. The daemon applies the caller's configuration to them.
CLI_OPTIONS: dict[str, tuple[type, ...]] = {
    "text": (str,), "limit": (int,), "offset": (int,), "min_score": (int, float), "sort": (str,),
    "folder": (str,), "after": (str,), "before": (str,), "camera": (str,), "place": (str,), "near": (str,),
    "types": (list,),
}  # fmt: skip


def request_from_options(
    options: Any, *, cwd: str, defaults: Callable[[], tuple[int, float]]
) -> SearchRequest:
    """The request of `photoindex search` for the options its client sent (`CLI_OPTIONS`), with the
    caller's working folder and defaults (`[search] limit` and `min_score`, asked for once the
    filters are read); the same checks and errors, in the same order, as the full command.

    Raises `Declined` for options the client would never send, `PhotoindexError` for values the
    full command refuses (its own words).
    """
    if not isinstance(options, dict) or not isinstance(options.get("text"), str) or not os.path.isabs(cwd):
        raise Declined("the command's options are an object with a text, and an absolute working folder")
    for name, value in options.items():
        kinds = CLI_OPTIONS.get(name)
        if kinds is None or not isinstance(value, kinds) or isinstance(value, bool):
            raise Declined(f"the option {name!r} is not one the served search takes")
    types = options.get("types", [])
    if not all(isinstance(t, str) for t in types):
        raise Declined("--type values are strings")
    folder = options.get("folder")
    if folder is not None and folder.strip():
        folder = os.path.join(cwd, os.path.expanduser(folder))  # as the caller's own folder would resolve it
    filters = Filters.from_options(
        folder=folder,
        after=options.get("after"),
        before=options.get("before"),
        camera=options.get("camera"),
        place=options.get("place"),
        near=options.get("near"),
        types=types,
    )
    limit, min_score = defaults()
    return SearchRequest.build(
        text=options["text"],
        limit=options.get("limit", limit),
        offset=options.get("offset", 0),
        min_score=float(options.get("min_score", min_score)),
        sort=options.get("sort", "score"),
        filters=filters,
        cwd=cwd,
    )


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
