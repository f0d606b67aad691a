"""How the CLI shows results: tables and lines on a terminal, JSON documents, warnings and log lines on stderr."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # the served search imports this module: no typing, logging or pathlib at import
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Any

    from photoindex.search.duplicates import DuplicateGroup
    from photoindex.search.protocol import Hit


def log_to_stderr() -> None:
    """Send library warnings (an NPU fallback, an unwatched folder) to stderr as `warning: ...` lines.

    Never to stdout, which `--json` keeps for its document; lowercase like the CLI's own
    `error:`/`hint:` lines. The daemon sets its own level and format.
    """
    import logging

    class LevelPrefix(logging.Formatter):
        """Prefixes each message with its level in lowercase (`warning: ...`)."""

        def format(self, record: logging.LogRecord) -> str:
            return f"{record.levelname.lower()}: {super().format(record)}"

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LevelPrefix("%(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])


class ShownHit:
    """The fields of a hit these functions show, from its JSON object (a served search has no `Hit`s)."""

    __slots__ = ("path", "score", "taken_at", "words")

    def __init__(self, path: str, score: float | None, taken_at: str | None, words: Sequence[str]) -> None:
        self.path, self.score, self.taken_at, self.words = path, score, taken_at, tuple(words)

    @classmethod
    def of(cls, data: dict[str, Any]) -> ShownHit:
        """From `Hit.to_json()`'s object; fields of the wrong type are shown empty."""
        score, taken, words = data.get("score"), data.get("taken_at"), data.get("words")
        return cls(
            data["path"],
            float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None,
            taken if isinstance(taken, str) else None,
            [w for w in words if isinstance(w, str)] if isinstance(words, list) else (),
        )


def json_document(data: Any) -> None:
    """Print `data` (dataclasses and paths included) as one indented JSON document on stdout."""
    import json

    def default(o: Any) -> Any:
        import dataclasses
        from pathlib import Path

        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return dataclasses.asdict(o)
        if isinstance(o, Path):
            return str(o)
        raise TypeError(type(o).__name__)

    text = json.dumps(data, default=default, ensure_ascii=False, indent=2)
    # A non-UTF-8 file name holds lone surrogates: write them as \udcXX escapes, valid JSON from
    # which json.loads + os.fsencode give the exact name back, whatever stdout's error handler.
    sys.stdout.write(text.encode("utf-8", "backslashreplace").decode("utf-8") + "\n")


def not_encoded_warning(model: str, missing: int) -> None:
    """Say on stderr that `missing` photos are not encoded for `model` yet (a model switch): results are partial."""
    if not missing:
        return
    print(
        f"warning: {missing} photo{'' if missing == 1 else 's'} not encoded for model {model} yet: "
        "they cannot be found until they are",
        file=sys.stderr,
    )
    print("hint: run `photoindex reindex` (or let the running daemon catch up)", file=sys.stderr)


def display(path: str) -> str:
    """A path as the terminal can show it (non-UTF-8 names keep their bytes as \\xNN escapes)."""
    return path.encode("utf-8", "backslashreplace").decode("utf-8")


def hits_lines(hits: Sequence[Hit | ShownHit], *, paths_only: bool = False) -> None:
    """Plain lines for scripts and pipes: `score<TAB>path<TAB>taken` (no header, no padding), or paths only.

    A hit found by the words read in it (docs/ocr.md) adds a fourth field: those words, space-separated.

    Paths are written as their exact bytes (a non-UTF-8 name stays usable by `xargs -d '\\n'`).
    """
    import os
    import sys

    out = sys.stdout.buffer
    for h in hits:
        path = os.fsencode(h.path)
        if paths_only:
            out.write(path + b"\n")
            continue
        score = f"{h.score:.3f}" if h.score is not None else ""
        words = b"\t" + " ".join(h.words).encode() if h.words else b""
        out.write(score.encode() + b"\t" + path + b"\t" + (h.taken_at or "").encode() + words + b"\n")
    out.flush()


def hits_table(hits: Sequence[Hit | ShownHit]) -> None:
    """Score, path (a file:// link where the terminal supports it), when, where and which camera."""
    from pathlib import Path

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
        if h.words:  # the words read in the photo that matched (docs/ocr.md)
            cell += "  [bold]" + escape(" ".join(h.words)) + "[/bold]"
        cells = [cell, h.taken_at or ""]
        if scored:
            cells.insert(0, f"{h.score:.3f}" if h.score is not None else "")
        table.add_row(*cells)
    Console(soft_wrap=False).print(table, markup=True, highlight=False)


def hits_preview(hits: Sequence[Hit], thumbnails: Sequence[Path | None]) -> None:
    """Each hit's line, then its thumbnail drawn by textual-image in the terminal's image protocol
    (kitty graphics or sixel when the terminal answers for them, else Unicode half blocks)."""
    from rich.console import Console
    from textual_image.renderable import Image as TerminalImage

    console = Console(soft_wrap=False)
    for h, thumb in zip(hits, thumbnails, strict=True):
        score = f"{h.score:.3f}  " if h.score is not None else ""
        console.print(f"{score}{display(h.path)}  {h.taken_at or ''}", markup=False, highlight=False)
        if thumb is not None:
            console.print(TerminalImage(thumb, width=24))


def size_text(n: int) -> str:
    """Bytes as a short human figure (1.2 MB)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def duplicate_groups(groups: Sequence[DuplicateGroup]) -> None:
    """Each group: a heading with what could be reclaimed, then its photos (the one to keep first)."""
    import typer

    total = sum(g.reclaimable for g in groups)
    for number, g in enumerate(groups, 1):
        kind = "exact copies" if g.exact else "near-duplicates"
        typer.echo(f"group {number}: {len(g.photos)} {kind}, {size_text(g.reclaimable)} in all but the first")
        for p in g.photos:
            pixels = f"{p.width}x{p.height}" if p.width and p.height else "?"
            same = "copy " if p.same_content and p is not g.photos[0] else ""
            typer.echo(f"  {p.score:6.3f}  {pixels:>11}  {size_text(p.size):>9}  {same}{display(p.path)}")
    typer.echo(f"{len(groups)} groups, {size_text(total)} in all but the first photo of each (nothing deleted)")
