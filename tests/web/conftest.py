"""The web page's fixtures (defined in served.py, which the test modules import helpers from)."""

from served import browser, library, page, server

__all__ = ["browser", "library", "page", "server"]
