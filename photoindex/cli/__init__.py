"""The command line: a thin Typer adapter over the library (`app`), and how results are shown (`render`)."""

from __future__ import annotations

from photoindex.cli.app import app, main

__all__ = ["app", "main"]
