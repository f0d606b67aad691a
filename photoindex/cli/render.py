"""How the CLI shows results on a terminal (JSON goes through `app._emit_json`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from photoindex.search.protocol import Hit


def display(path: str) -> str:
    """A path as the terminal can show it (non-UTF-8 names keep their bytes as \\xNN escapes)."""
    return path.encode("utf-8", "backslashreplace").decode("utf-8")


def hits_table(hits: Sequence[Hit]) -> None:
    """Score, path (a file:// link where the terminal supports it), when, where and which camera."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    scored = any(h.score is not None for h in hits)
    table = Table(box=None, show_edge=False, pad_edge=False)
    if scored:
        table.add_column("score", justify="right")
    table.add_column("path", overflow="fold")
    table.add_column("taken")
    for h in hits:
        shown = display(h.path)
        link = Path(h.path).as_uri() if shown == h.path else None
        cell = f"[link={link}]{escape(shown)}[/link]" if link else escape(shown)
        cells = [cell, h.taken_at or ""]
        if scored:
            cells.insert(0, f"{h.score:.3f}" if h.score is not None else "")
        table.add_row(*cells)
    Console(soft_wrap=False).print(table, markup=True, highlight=False)
