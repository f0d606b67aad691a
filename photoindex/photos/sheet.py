"""Contact sheets: search hits as one image, a grid of thumbnails each with its score and name (docs/web.md)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from photoindex.errors import PhotoindexError

if TYPE_CHECKING:
    from PIL import ImageDraw, ImageFont

_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}
_BACKGROUND = (24, 26, 31)
_CAPTION = (230, 232, 238)
_MUTED = (154, 163, 178)
_PAD = 8


@dataclass(frozen=True)
class Tile:
    """One hit on the sheet: its thumbnail file (None: shown as an empty frame), score and name."""

    thumbnail: Path | None
    score: float | None  # None: a listing by filters, without a query
    name: str


def write_contact_sheet(out: Path, tiles: list[Tile], *, columns: int = 5, cell: int = 240) -> Path:
    """Write the tiles as a grid image to `out` (JPEG, PNG or WebP by its ending), atomically; returns `out`."""
    from PIL import Image, ImageDraw

    fmt = _FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise PhotoindexError(f"{out}: a contact sheet is written as .jpg, .png or .webp", "name the file so")
    if not tiles:
        raise PhotoindexError("no photos to put on a contact sheet", "search for something that matches")
    font = _font(max(10, cell // 16))
    line = max(12, cell // 12)
    columns = max(1, min(columns, len(tiles)))
    rows = (len(tiles) + columns - 1) // columns
    width = columns * (cell + _PAD) + _PAD
    height = rows * (cell + 2 * line + _PAD) + _PAD
    sheet = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for i, tile in enumerate(tiles):
        x = _PAD + (i % columns) * (cell + _PAD)
        y = _PAD + (i // columns) * (cell + 2 * line + _PAD)
        if tile.thumbnail is not None:
            try:
                with Image.open(tile.thumbnail) as im:
                    im = im.convert("RGB")
                    im.thumbnail((cell, cell))
                    sheet.paste(im, (x + (cell - im.width) // 2, y + (cell - im.height) // 2))
            except OSError:
                draw.rectangle((x, y, x + cell - 1, y + cell - 1), outline=_MUTED)
        else:
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), outline=_MUTED)
        if tile.score is not None:
            draw.text((x, y + cell + 2), f"{tile.score:.3f}", fill=_CAPTION, font=font)
        draw.text((x, y + cell + 2 + line), _fit(draw, tile.name, font, cell), fill=_MUTED, font=font)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            sheet.save(fh, format=fmt, **({"quality": 88} if fmt != "PNG" else {}))
        os.replace(tmp, out)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return out


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans where the system has it (accents, Greek, Cyrillic), else Pillow's own font."""
    from PIL import ImageFont

    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        pass
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow built without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> str:
    """`text` shortened with an ellipsis in the middle until it fits `width` pixels."""
    measure = draw.textlength
    if measure(text, font=font) <= width:
        return text
    keep = len(text)
    while keep > 4:
        keep -= 1
        head, tail = text[: keep // 2], text[len(text) - keep // 2 :]
        short = f"{head}…{tail}"
        if measure(short, font=font) <= width:
            return short
    return text[:4] + "…"
