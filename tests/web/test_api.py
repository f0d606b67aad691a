"""The JSON API and the guard of a real `photoindex serve`, spoken to over HTTP (no browser)."""

from __future__ import annotations

import http.client
import json
import os
import stat
from typing import Any

from served import Library, Server, run_cli

from photoindex.web.security import host_allowed, is_loopback


def request(
    server: Server, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request (the path is sent exactly as given: no client normalises `../`)."""
    con = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        con.request(method, path, body=body, headers=headers or {})
        response = con.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        con.close()


def get_json(server: Server, path: str, **kw: Any) -> tuple[int, Any]:
    status, _, body = request(server, "GET", path, **kw)
    return status, json.loads(body)


def test_a_hit_has_the_fields_of_search_json(server: Server, library: Library) -> None:
    status, data = get_json(server, "/api/search?q=red&limit=5")
    assert status == 200
    cli = json.loads(run_cli(library.env, "search", "red", "--limit", "5", "--json").stdout)
    web = data["hits"]
    assert [h["path"] for h in web] == [h["path"] for h in cli]
    for w, c in zip(web, cli, strict=True):
        assert set(w) == set(c) | {"thumbnail"}
        assert {k: w[k] for k in c if k != "score"} == {k: c[k] for k in c if k != "score"}
        assert abs(w["score"] - c["score"]) < 1e-5
        assert w["thumbnail"] == f"/api/photos/{w['id']}/thumbnail"
        assert "/red/" in w["path"]


def test_a_search_carries_its_first_thumbnails_inline_when_asked(server: Server, library: Library) -> None:
    import base64

    from photoindex.config import load_config
    from photoindex.photos.scanner import content_hash
    from photoindex.photos.thumbnails import thumbnail_store

    _, plain = get_json(server, "/api/search?q=red&limit=8")
    assert "inline_thumbnails" not in plain
    status, data = get_json(server, "/api/search?q=red&limit=8&inline=5")
    assert status == 200
    assert data["hits"] == plain["hits"]  # the hits are those of `search --json`, untouched
    inline = data["inline_thumbnails"]
    assert sorted(inline) == sorted(str(h["id"]) for h in data["hits"][:5])
    for hit in data["hits"][:5]:
        url = inline[str(hit["id"])]
        assert url.startswith("data:image/jpeg;base64,")
        _, _, served = request(server, "GET", hit["thumbnail"])
        assert base64.b64decode(url.split(",", 1)[1]) == served
    # A thumbnail that is not cached is left out (the page asks for it by URL): no search waits on a decode.
    store = thumbnail_store(load_config(environ=library.env))
    fifth = data["hits"][4]
    store.path_for(content_hash(fifth["path"])).unlink()
    _, again = get_json(server, "/api/search?q=red&limit=8&inline=5")
    assert sorted(again["inline_thumbnails"]) == sorted(str(h["id"]) for h in data["hits"][:4])
    assert request(server, "GET", fifth["thumbnail"])[0] == 200  # made again on request
    assert get_json(server, "/api/search?q=red&inline=61")[0] == 400


def test_a_search_answer_says_where_the_server_s_time_went(server: Server) -> None:
    """Server-Timing: the hand-over to the worker thread, the query vector, the search, the inline thumbnails'
    reads and the JSON encoding, in ms (the page's Performance API shows them beside the browser's own times;
    benchmarks/web.py reports them)."""
    status, headers, body = request(server, "GET", "/api/search?q=red&limit=8&inline=5")
    assert status == 200 and len(json.loads(body)["inline_thumbnails"]) == 5
    parts = dict(part.strip().split(";dur=") for part in headers["server-timing"].split(","))
    assert list(parts) == ["queue", "vector", "search", "thumbnails", "json"]
    assert all(float(ms) >= 0 for ms in parts.values())


def test_warming_a_query_encodes_its_texts_once_and_its_search_reuses_them(server: Server) -> None:
    """`/api/warm` (the page's pause in typing) encodes the query's texts into the library's recent ones."""
    assert get_json(server, "/api/warm?q=a%20crimson%20kite") == (200, {"encoded": 1})
    assert get_json(server, "/api/warm?q=a%20crimson%20kite") == (200, {"encoded": 0})  # kept
    assert get_json(server, "/api/warm?q=a%20crimson%20kite%20%2B%20sky%20-%20sand") == (200, {"encoded": 2})
    # A search keeps its texts too, and finds the same photos after a warm as without one.
    _, cold = get_json(server, "/api/search?q=teal%20water&limit=5")
    assert get_json(server, "/api/warm?q=teal%20water") == (200, {"encoded": 0})
    _, warmed = get_json(server, "/api/search?q=a%20crimson%20kite&limit=5")
    _, again = get_json(server, "/api/search?q=a%20crimson%20kite&limit=5")
    assert [h["id"] for h in warmed["hits"]] == [h["id"] for h in again["hits"]] and len(cold["hits"]) == 5
    # Nothing to encode is not an error (the page does not show warm answers; the search says why).
    for query in ("", "%20%20", "-%20", "x" * 4097):
        assert get_json(server, f"/api/warm?q={query}") == (200, {"encoded": 0}), query


def test_photo_thumbnail_and_view(server: Server) -> None:
    _, data = get_json(server, "/api/search?q=blue&limit=1")
    hit = data["hits"][0]
    status, photo = get_json(server, f"/api/photos/{hit['id']}")
    assert status == 200
    assert photo["path"] == hit["path"] and photo["width"] == 160 and photo["height"] == 120
    status, headers, body = request(server, "GET", hit["thumbnail"])
    assert status == 200 and headers["content-type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
    etag = headers["etag"]
    status, _, body = request(server, "GET", hit["thumbnail"], headers={"If-None-Match": etag})
    assert status == 304 and body == b""
    status, headers, body = request(server, "GET", f"/api/photos/{hit['id']}/view")
    assert status == 200 and body[:2] == b"\xff\xd8"


def test_only_catalog_ids_reach_a_file(server: Server) -> None:
    for path in (
        "/static/../photoindex.db",
        "/static/../../../etc/passwd",
        "/api/photos/../photoindex.db",
        "/api/photos/1/../../../etc/passwd",
        "/api/photos/%2e%2e%2fphotoindex.db/original",
        "/api/photos/99999999/original",
        "/api/photos/99999999",
        "/static/",
        "/static/..%2f..%2fphotoindex.db",
    ):
        status, _, body = request(server, "GET", path)
        assert status == 404, (path, status)
        assert b"photoindex.db" not in body[:0] and b"root:" not in body


def test_every_answer_carries_the_security_headers(server: Server) -> None:
    for path in ("/", "/status", "/api/status", "/static/search.js", "/api/photos/99999999"):
        _, headers, _ = request(server, "GET", path)
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        # data: images (the inline thumbnails) on the search page only
        assert ("data:" in csp) == (path == "/"), (path, csp)


def test_the_page_links_nothing_outside_the_package(server: Server) -> None:
    for path in ("/", "/status", "/static/search.js", "/static/status.js", "/static/photoindex.css"):
        _, _, body = request(server, "GET", path)
        text = body.decode()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, path


def test_the_host_header_is_checked(server: Server) -> None:
    assert request(server, "GET", "/api/status", headers={"Host": "evil.example"})[0] == 400
    assert request(server, "GET", "/api/status", headers={"Host": f"evil.example:{server.port}"})[0] == 400
    assert request(server, "GET", "/api/status", headers={"Host": f"localhost:{server.port}"})[0] == 200
    assert request(server, "GET", "/api/status", headers={"Host": f"[::1]:{server.port}"})[0] == 200


def test_a_cross_site_post_is_refused(server: Server) -> None:
    headers = {"Content-Type": "image/jpeg", "Sec-Fetch-Site": "cross-site"}
    status, _, _ = request(server, "POST", "/api/search?q=red", body=b"x", headers=headers)
    assert status == 403
    status, _, _ = request(
        server, "POST", "/api/search?q=red", body=b"x", headers={"Content-Type": "image/jpeg", "Origin": "http://evil.example"}
    )
    assert status == 403


def test_uploads_are_checked(library: Library) -> None:
    server = Server({**library.env, "PHOTOINDEX_WEB_MAX_UPLOAD_MB": "0.01"})  # 10 KiB
    try:
        photo = (library.outside / "blue-example.jpg").read_bytes()
        assert len(photo) < 10 * 1024
        status, _, body = request(server, "POST", "/api/search", body=photo, headers={"Content-Type": "image/jpeg"})
        assert status == 200 and "/blue/" in json.loads(body)["hits"][0]["path"]
        status, _, _ = request(server, "POST", "/api/search", body=photo, headers={"Content-Type": "text/plain"})
        assert status == 415
        big = (library.outside / "big-example.png").read_bytes()
        assert len(big) > 10 * 1024
        status, _, _ = request(server, "POST", "/api/search", body=big, headers={"Content-Type": "image/png"})
        assert status == 413
        png = {"Content-Type": "image/png"}
        status, _, body = request(server, "POST", "/api/search", body=b"not an image", headers=png)
        assert status == 400 and "not a supported image" in json.loads(body)["error"]
    finally:
        server.stop()


def test_the_filters_of_search_work_on_the_page_s_api(server: Server, library: Library) -> None:
    status, data = get_json(server, "/api/search?q=yellow&camera=pixel&limit=10")
    assert status == 200
    assert sorted(h["path"].rsplit("/", 1)[-1] for h in data["hits"]) == ["pixel-0.jpg", "pixel-1.jpg"]
    assert all(h["camera"] == "Google Pixel 7" for h in data["hits"])
    # Filters alone list the photos, newest first, without scores.
    status, data = get_json(server, "/api/search?after=2021-05&before=2021-05")
    assert status == 200
    assert [h["path"].rsplit("/", 1)[-1] for h in data["hits"]] == ["pixel-1.jpg", "pixel-0.jpg"]
    assert all(h["score"] is None for h in data["hits"])
    status, data = get_json(server, f"/api/search?q=red&folder={library.photos / 'red'}&limit=100")
    assert status == 200 and len(data["hits"]) == 8
    status, data = get_json(server, "/api/search?q=red&type=png")
    assert status == 200 and data["hits"] == []
    # Query arithmetic: red + blue - red is blue.
    status, data = get_json(server, "/api/search?q=red%20%2B%20blue%20-%20red&limit=3")
    assert status == 200 and all("/blue/" in h["path"] for h in data["hits"])
    # Paging: the second page continues the first.
    _, first = get_json(server, "/api/search?q=green&limit=4")
    _, second = get_json(server, "/api/search?q=green&limit=4&offset=4")
    _, both = get_json(server, "/api/search?q=green&limit=8")
    assert [h["id"] for h in first["hits"] + second["hits"]] == [h["id"] for h in both["hits"]]


def test_a_query_term_naming_a_file_is_refused(server: Server, library: Library) -> None:
    path = library.outside / "blue-example.jpg"
    status, data = get_json(server, f"/api/search?q={path}")
    assert status == 400 and "text only" in data["error"]


def test_duplicates_are_grouped_with_thumbnails(server: Server) -> None:
    # The toy model embeds a photo's colour: each colour's photos are near-duplicates of each other.
    status, data = get_json(server, "/api/duplicates?threshold=0.95")
    assert status == 200
    groups = data["groups"]
    assert len(groups) >= 5
    for g in groups:
        folders = {h["path"].rsplit("/", 2)[-2] for h in g["photos"]}
        assert len(folders) == 1 or folders <= {"yellow", "exif"}, folders
        assert all(h["thumbnail"] == f"/api/photos/{h['id']}/thumbnail" for h in g["photos"])
    assert get_json(server, "/api/duplicates?threshold=2")[0] == 400


def test_bad_parameters_are_400(server: Server) -> None:
    bad = ("q=red&limit=0", "q=red&limit=x", "q=red&min_score=nan", "like=abc", "", "q=" + "a" * 5000,
           "q=red&sort=size", "q=red&after=yesterday", "q=red&near=north", "q=red&type=doc", "q=red&offset=-1")
    for query in bad:
        status, data = get_json(server, f"/api/search?{query}")
        assert status == 400, query
        assert data["error"]


def test_off_loopback_every_request_needs_the_session(library: Library) -> None:
    secret = "correct horse battery staple"
    server = Server({**library.env, "PHOTOINDEX_WEB_SECRET": secret}, "--host", "0.0.0.0")
    try:
        assert request(server, "GET", "/api/status")[0] == 401
        assert request(server, "GET", "/api/photos/1/thumbnail")[0] == 401
        status, headers, _ = request(server, "GET", "/")
        assert status == 303 and headers["location"] == "/login"
        assert request(server, "GET", "/login")[0] == 200
        assert request(server, "GET", "/static/search.js")[0] == 200  # the login page's own assets
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        assert request(server, "POST", "/login", body=b"secret=wrong", headers=form)[0] == 403
        status, headers, _ = request(server, "POST", "/login", body=f"secret={secret}".encode(), headers=form)
        assert status == 303
        cookie = headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        session = cookie.split(";")[0]
        assert request(server, "GET", "/api/status", headers={"Cookie": session})[0] == 200
        forged = session.split(".")[0] + ".AAAA"
        assert request(server, "GET", "/api/status", headers={"Cookie": forged})[0] == 401
    finally:
        server.stop()
    # A generated secret is kept 0600 in the home.
    server = Server(library.env, "--host", "0.0.0.0")
    server.stop()
    mode = stat.S_IMODE(os.stat(library.home / "web-secret").st_mode)
    assert mode == 0o600


def test_a_short_configured_secret_is_refused(library: Library) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "photoindex", "serve", "--host", "0.0.0.0", "--port", "0"],
        env={**library.env, "PHOTOINDEX_WEB_SECRET": "short"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "error: [web] secret is shorter than 12 characters" in proc.stderr


def test_a_port_in_use_is_an_error_with_a_hint(server: Server, library: Library) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "photoindex", "serve", "--port", str(server.port)],
        env=library.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert f"error: cannot listen on 127.0.0.1:{server.port}" in proc.stderr and "hint:" in proc.stderr


def test_status_json(server: Server) -> None:
    status, data = get_json(server, "/api/status")
    assert status == 200
    # Other tests may add roots to the shared library: check the relations, not the numbers.
    assert data["counts"]["indexed"] == sum(r["photos"] for r in data["roots"]) >= 40
    [model] = data["models"]
    assert model["configured"] and model["vectors"] == data["vectors"] and model["photos"] == data["counts"]["indexed"]
    assert data["daemon"]["running"] is False


def test_loopback_and_host_rules() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.1.2.3")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("::")
    names = {"localhost", "board"}
    assert host_allowed("board:8765", names) and host_allowed("BOARD.:8765", names)
    assert host_allowed("192.168.1.5:8765", names) and host_allowed("[fe80::1]:8765", names)
    assert not host_allowed("evil.example", names) and not host_allowed("", names)
    assert not host_allowed("board.evil.example:8765", names)
