"""The web page as an ASGI app (Starlette): pages, the JSON API under /api/, static files (docs/web.md).

A thin adapter like the CLI: it parses requests, calls `WebService`, and renders JSON, images or
a template. Every asset is in this package (`templates/`, `static/`): the page asks no other site
for anything and works on a board that is offline.
"""

from __future__ import annotations

import asyncio
import math
import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from photoindex.errors import PhotoindexError
from photoindex.search.protocol import MAX_OFFSET, MAX_TEXT, SORTS
from photoindex.web.security import COOKIE, SESSION_DAYS, Guard, Sessions, machine_names
from photoindex.web.service import MAX_INLINE, MAX_LIMIT, NotFound, PageSearch, WebService

if TYPE_CHECKING:
    from starlette.types import ASGIApp

_HERE = Path(str(resources.files("photoindex.web")))
_LOGIN_FAILURE_DELAY = 1.0  # seconds: guessing the secret online is slow
MAX_WORDS = 32  # matched words one photo view highlights


class BadRequest(PhotoindexError):
    """A request the page would never send (a bad number, a missing field): 400."""


def create_app(service: WebService, *, login: bool, secret: str | None = None) -> ASGIApp:
    """The app serving `service`; `login`: every request needs the session cookie that the secret buys."""
    from photoindex import __version__

    templates = Jinja2Templates(directory=str(_HERE / "templates"))
    templates.env.globals["version"] = __version__
    sessions = Sessions(secret) if login and secret else None
    if login and sessions is None:
        raise ValueError("a login needs a secret")

    def page(request: Request, name: str, **context: Any) -> Response:
        response = templates.TemplateResponse(request, name, {"login": login, **context})
        response.headers["cache-control"] = "no-store"
        return response

    async def search_page(request: Request) -> Response:
        roots = await run_in_threadpool(service.roots)
        return page(request, "search.html", roots=roots, max_limit=MAX_LIMIT)

    async def status_page(request: Request) -> Response:
        return page(request, "status.html")

    async def duplicates_page(request: Request) -> Response:
        roots = await run_in_threadpool(service.roots)
        return page(request, "duplicates.html", roots=roots)

    async def login_page(request: Request) -> Response:
        if sessions is None:
            return RedirectResponse("/", status_code=303)
        return page(request, "login.html", failed=False)

    async def login_post(request: Request) -> Response:
        if sessions is None:
            return RedirectResponse("/", status_code=303)
        body = await _body(request, 4096)
        given = parse_qs(body.decode("utf-8", "replace")).get("secret", [""])[0]
        if not sessions.check_secret(given):
            await asyncio.sleep(_LOGIN_FAILURE_DELAY)
            response = page(request, "login.html", failed=True)
            response.status_code = 403
            return response
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE, sessions.new(), max_age=SESSION_DAYS * 86400, httponly=True, samesite="strict", path="/"
        )
        return response

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login" if sessions else "/", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    # ------------------------------------------------------------ the API

    async def api_search(request: Request) -> Response:
        arrived = time.perf_counter()
        q = request.query_params
        text = q.get("q") or None
        if text is not None and len(text) > MAX_TEXT:
            raise BadRequest(f"the text is longer than {MAX_TEXT} characters", "describe the photo more briefly")
        image = None
        if request.method == "POST":
            kind = request.headers.get("content-type", "")
            if not (kind.startswith("image/") or kind == "application/octet-stream"):
                raise HTTPException(415, "send the photo's bytes with an image/* content type")
            cap = int(service.config.web.max_upload_mb * (1 << 20))
            image = await _body(request, cap)
        sort = q.get("sort") or "score"
        if sort not in SORTS:
            raise BadRequest(f"sort {sort!r} is not an order", "score or date")
        search = PageSearch(
            text=text,
            like=_int(q.get("like"), "like") if q.get("like") else None,
            image=image,
            limit=_int(q.get("limit", "60"), "limit", low=1, high=MAX_LIMIT),
            offset=_int(q.get("offset", "0"), "offset", low=0, high=MAX_OFFSET),
            min_score=_score(q.get("min_score")),
            sort=sort,
            folder=q.get("folder") or None,
            after=q.get("after") or None,
            before=q.get("before") or None,
            camera=q.get("camera") or None,
            place=q.get("place") or None,
            near=q.get("near") or None,
            types=tuple(t for t in q.getlist("type") if t),
        )
        inline = _int(q.get("inline", "0"), "inline", low=0, high=MAX_INLINE)

        def run() -> Response:
            # From the request's arrival to this worker thread (the hand-over, an upload's body).
            seconds: dict[str, float] = {"queue": time.perf_counter() - arrived}
            hits = service.search(search, seconds)
            for hit in hits:
                hit["thumbnail"] = f"/api/photos/{hit['id']}/thumbnail"
            answer: dict[str, Any] = {"hits": hits}
            start = time.perf_counter()
            if inline:  # the first screenful's thumbnails in the same answer: one round trip
                answer["inline_thumbnails"] = service.inline_thumbnails([h["id"] for h in hits[:inline]])
            read = time.perf_counter()
            response = JSONResponse(answer)  # encoded here, in the worker thread, not on the event loop
            seconds.update(thumbnails=read - start, json=time.perf_counter() - read)
            # The server's share of the page's Enter-to-thumbnails, readable in the browser through the
            # Performance API (PerformanceResourceTiming.serverTiming; docs/web.md, "Speed").
            response.headers["server-timing"] = ", ".join(f"{name};dur={1000 * s:.1f}" for name, s in seconds.items())
            return response

        return await run_in_threadpool(run)

    async def api_warm(request: Request) -> Response:
        text = request.query_params.get("q") or ""
        if len(text) > MAX_TEXT:  # its search is refused with the reason
            return JSONResponse({"encoded": 0})
        return JSONResponse({"encoded": await run_in_threadpool(service.warm, text)})

    async def api_photo(request: Request) -> Response:
        words = request.query_params.getlist("word")
        if len(words) > MAX_WORDS or any(len(w) > MAX_TEXT for w in words):
            raise BadRequest(f"at most {MAX_WORDS} words of {MAX_TEXT} characters", "highlight fewer words")
        return JSONResponse(await run_in_threadpool(service.photo_json, request.path_params["id"], words))

    async def api_thumbnail(request: Request) -> Response:
        photo_id = request.path_params["id"]
        # The fast path (a cached thumbnail: one indexed read and one small file) runs right here;
        # making a missing one decodes the photo, in a worker thread.
        cached, photo = service.cached_thumbnail(photo_id)
        path = cached if cached is not None else await run_in_threadpool(service.thumbnail, photo)
        etag = f'"{photo.content_hash}-{service.thumbnails.size}"'
        headers = {"cache-control": "private, max-age=600", "etag": etag}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        try:
            data = path.read_bytes()
        except OSError:  # pruned in between: make it again
            data = (await run_in_threadpool(service.thumbnail, photo)).read_bytes()
        return Response(data, media_type="image/jpeg", headers=headers)

    async def api_view(request: Request) -> Response:
        data = await run_in_threadpool(service.view, request.path_params["id"])
        return Response(data, media_type="image/jpeg", headers={"cache-control": "private, max-age=600"})

    async def api_original(request: Request) -> Response:
        path = await run_in_threadpool(service.original, request.path_params["id"])
        return FileResponse(path, filename=path.name, content_disposition_type="attachment")

    async def api_duplicates(request: Request) -> Response:
        q = request.query_params
        threshold = _score(q.get("threshold") or "0.95")
        groups = await run_in_threadpool(service.duplicates, threshold=threshold, folder=q.get("folder") or None)
        return JSONResponse({"groups": groups})

    async def api_status(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(service.status))

    async def not_found(request: Request, exc: Exception) -> Response:
        message = exc.message if isinstance(exc, NotFound) else "not found"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=404)
        return Response("not found", status_code=404, media_type="text/plain")

    async def bad_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PhotoindexError)
        if isinstance(exc, NotFound):
            return await not_found(request, exc)
        return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=400)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return await not_found(request, exc)
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    photo_routes = [
        Route("/api/photos/{id:int}", api_photo),
        Route("/api/photos/{id:int}/thumbnail", api_thumbnail),
        Route("/api/photos/{id:int}/view", api_view),
        Route("/api/photos/{id:int}/original", api_original),
    ]
    app = Starlette(
        routes=[
            Route("/", search_page),
            Route("/status", status_page),
            Route("/duplicates", duplicates_page),
            Route("/login", login_page, methods=["GET"]),
            Route("/login", login_post, methods=["POST"]),
            Route("/logout", logout, methods=["POST"]),
            Route("/api/search", api_search, methods=["GET", "POST"]),
            Route("/api/warm", api_warm),
            Route("/api/status", api_status),
            Route("/api/duplicates", api_duplicates),
            *photo_routes,
            Mount("/static", app=StaticFiles(directory=str(_HERE / "static")), name="static"),
        ],
        exception_handlers={
            PhotoindexError: bad_request,
            HTTPException: http_error,
            404: not_found,
        },
    )
    return Guard(app, names=machine_names(service.config.web.allowed_hosts), sessions=sessions)


async def _body(request: Request, cap: int) -> bytes:
    """The request body, refused (413) past `cap` bytes before it is all read."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise HTTPException(413, f"the upload is larger than {cap >> 20} MB")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            raise HTTPException(413, f"the upload is larger than {cap >> 20} MB")
        chunks.append(chunk)
    return b"".join(chunks)


def _int(value: str | None, name: str, *, low: int = 0, high: int = 2**62) -> int:
    try:
        number = int(value or "")
    except ValueError:
        raise BadRequest(f"{name} must be a whole number", None) from None
    if not low <= number <= high:
        raise BadRequest(f"{name} must be from {low} to {high}", None)
    return number


def _score(value: str | None) -> float:
    if value is None or value == "":
        return -1.0
    try:
        score = float(value)
    except ValueError:
        raise BadRequest("min_score must be a number", "cosine scores lie from -1 to 1") from None
    if not math.isfinite(score):
        raise BadRequest("min_score must be a finite number", "cosine scores lie from -1 to 1")
    return score
