"""The web page: `photoindex serve` and the daemon's `[web] listen` (docs/web.md).

Modules: `service` (what the page asks of the library), `app` (the Starlette app: pages and the
JSON API), `security` (Host check, login off loopback, security headers), `server` (uvicorn, in
the foreground or in a daemon thread). Importing this package imports nothing heavy; the web
stack (Starlette, uvicorn, Jinja2: the `web` extra) is imported by `app` and `server` only.
"""
