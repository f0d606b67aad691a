"""What a search is restricted to: folder, dates, camera, place, distance, file type.

Values the user typed are checked here, once, and a bad one is a `PhotoindexError` naming its
option (`--after 2024-13`). The result is a plain value that travels to the daemon unchanged
(`to_wire`/`from_wire`) and becomes SQL in `catalog.reads.filter_clause`. Standard library only:
the CLI builds it before deciding whether the daemon or this process searches.
"""

from __future__ import annotations

import calendar
import math
import os
import re
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

from photoindex.errors import PhotoindexError

DEFAULT_NEAR_KM = 5.0
MAX_NEAR_KM = 20_000.0  # half the Earth's circumference: every point is nearer than that

# What `--type` accepts -> the formats Pillow reports (and the catalog stores); aliases users type.
TYPES: dict[str, tuple[str, ...]] = {
    "jpeg": ("JPEG", "MPO"),  # phones write multi-picture JPEGs, which Pillow calls MPO
    "jpg": ("JPEG", "MPO"),
    "heic": ("HEIF",),
    "heif": ("HEIF",),
    "png": ("PNG",),
    "webp": ("WEBP",),
    "tiff": ("TIFF",),
    "tif": ("TIFF",),
    "gif": ("GIF",),
    "bmp": ("BMP",),
    "avif": ("AVIF",),
}

_PERIOD = re.compile(r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?$")


class FilterError(PhotoindexError):
    """A filter value that cannot be understood; the message names the option."""


@dataclass(frozen=True)
class Near:
    """Within `km` kilometres of (lat, lon) as the great circle goes."""

    lat: float
    lon: float
    km: float = DEFAULT_NEAR_KM


@dataclass(frozen=True)
class Filters:
    """The photos a search may return. Dates are the photo's own wall-clock day (as its camera showed it).

    `after` is the first day included, `before` the first day excluded (both ISO `YYYY-MM-DD`).
    `folder` is absolute and resolved. `camera` and `place` match case-insensitively (camera: any
    part of make and model; place: a city's or country's name in any spelling GeoNames knows).
    """

    folder: str | None = None
    after: str | None = None
    before: str | None = None
    camera: str | None = None
    place: str | None = None
    near: Near | None = None
    formats: tuple[str, ...] = field(default=())

    @property
    def empty(self) -> bool:
        """True when nothing is filtered."""
        return self == Filters()

    @property
    def metadata_only(self) -> Filters:
        """These filters without the folder (the folder alone has its own fast path)."""
        return replace(self, folder=None)

    @classmethod
    def from_options(
        cls,
        *,
        folder: str | os.PathLike[str] | None = None,
        after: str | None = None,
        before: str | None = None,
        camera: str | None = None,
        place: str | None = None,
        near: str | None = None,
        types: str | list[str] | tuple[str, ...] | None = None,
    ) -> Filters:
        """Filters from what the user typed (options as strings); raises `FilterError` naming the option."""
        start = parse_period(after, "--after")[0] if after is not None else None
        end = parse_period(before, "--before")[1] if before is not None else None
        if start and end and start >= end:
            raise FilterError(
                f"--after {after} --before {before}: no day is in both",
                "the period of --after must start before the end of --before's",
            )
        return cls(
            folder=resolve_folder(folder) if folder is not None else None,
            after=start,
            before=end,
            camera=_text(camera, "--camera"),
            place=_text(place, "--place"),
            near=parse_near(near) if near is not None else None,
            formats=parse_types(types) if types is not None else (),
        )

    def to_wire(self) -> dict[str, Any]:
        """A JSON object (only the filters that are set)."""
        out: dict[str, Any] = {}
        for name in ("folder", "after", "before", "camera", "place"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.near is not None:
            out["near"] = [self.near.lat, self.near.lon, self.near.km]
        if self.formats:
            out["formats"] = list(self.formats)
        return out

    @classmethod
    def from_wire(cls, data: Any) -> Filters:
        """The inverse of `to_wire`; raises ValueError on anything it would not write."""
        known = {"folder", "after", "before", "camera", "place", "near", "formats"}
        if not isinstance(data, dict) or set(data) - known:
            raise ValueError("filters must be an object of known filters")
        folder = data.get("folder")
        if folder is not None and (not isinstance(folder, str) or not os.path.isabs(folder) or "\0" in folder):
            raise ValueError("the folder must be an absolute path")
        days = {}
        for name in ("after", "before"):
            value = data.get(name)
            if value is not None:
                if not isinstance(value, str):
                    raise ValueError(f"{name} must be a day")
                date.fromisoformat(value)  # raises ValueError
            days[name] = value
        texts = {}
        for name in ("camera", "place"):
            value = data.get(name)
            if value is not None and (not isinstance(value, str) or not value or len(value) > 200):
                raise ValueError(f"{name} must be a short text")
            texts[name] = value
        near = data.get("near")
        if near is not None:
            if not (isinstance(near, list) and len(near) == 3 and all(_number(v) for v in near)):
                raise ValueError("near must be [lat, lon, km]")
            near = _checked_near(float(near[0]), float(near[1]), float(near[2]), "near")
        formats = data.get("formats", [])
        stored = {f for fs in TYPES.values() for f in fs}
        if not isinstance(formats, list) or not all(isinstance(f, str) and f in stored for f in formats):
            raise ValueError("formats must be known image formats")
        return cls(folder=folder, near=near, formats=tuple(formats), **days, **texts)


def resolve_folder(folder: str | os.PathLike[str]) -> str:
    """The absolute, resolved spelling of a `--folder` (as the catalog stores paths).

    An empty one is an error, not the current folder (`Path("")` is "."): `--folder "$DIR"` with
    an unset variable must not quietly search wherever the command runs.
    """
    if not os.fspath(folder).strip():
        raise FilterError("--folder: empty", "give a folder, e.g. --folder ~/Pictures/2024 (or . for this one)")
    # os.path.expanduser leaves `~nosuchuser` as it is, where Path.expanduser raises RuntimeError.
    return str(Path(os.path.expanduser(os.fspath(folder))).resolve())


def parse_period(value: str, option: str) -> tuple[str, str]:
    """A year, month or day (`2024`, `2024-06`, `2024-06-15`) as [first day, first day after) in ISO."""
    m = _PERIOD.match(value.strip())
    hint = "give a year, a month or a day: 2024, 2024-06 or 2024-06-15"
    if m is None:
        raise FilterError(f"{option} {value!r}: not a year, a month or a day", hint)
    year = int(m.group(1))
    month = int(m.group(2)) if m.group(2) else None
    day = int(m.group(3)) if m.group(3) else None
    try:
        if month is None:
            start, end = date(year, 1, 1), date(year + 1, 1, 1) if year < 9999 else date(9999, 12, 31)
        elif day is None:
            start = date(year, month, 1)
            end = date(year + (month == 12), month % 12 + 1, 1) if (year, month) != (9999, 12) else date(9999, 12, 31)
        else:
            start = date(year, month, day)
            end = date.fromordinal(start.toordinal() + 1) if start != date(9999, 12, 31) else start
    except ValueError:
        what = "month" if month is not None and not 1 <= month <= 12 else "day"
        if what == "day" and month is not None and 1 <= month <= 12 and day is not None:
            last = calendar.monthrange(year, month)[1]
            hint = f"{year}-{month:02d} has days 1 to {last}"
        raise FilterError(f"{option} {value!r}: no such {what}", hint) from None
    if year < 1800:
        raise FilterError(f"{option} {value!r}: no photo is that old", hint)
    return start.isoformat(), end.isoformat()


def parse_near(value: str) -> Near:
    """`LAT,LON` or `LAT,LON,KM` in decimal degrees (south and west negative)."""
    parts = [p.strip() for p in value.split(",")]
    hint = "give LAT,LON[,KM] in decimal degrees, e.g. --near 48.8566,2.3522,10"
    if len(parts) not in (2, 3):
        raise FilterError(f"--near {value!r}: not LAT,LON or LAT,LON,KM", hint)
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise FilterError(f"--near {value!r}: not numbers", hint) from None
    km = numbers[2] if len(numbers) == 3 else DEFAULT_NEAR_KM
    return _checked_near(numbers[0], numbers[1], km, "--near")


def parse_types(types: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """`jpeg`, `heic,png`, ... as the stored format names; unknown ones name the option."""
    items = [types] if isinstance(types, str) else list(types)
    names = [n.strip().lower().lstrip(".") for item in items for n in item.split(",") if n.strip()]
    if items and not names:  # `--type ''` (an unset shell variable) must not drop the filter
        raise FilterError("--type: empty", "give a type such as jpeg or heic,png, or leave out --type")
    formats: list[str] = []
    for name in names:
        if name not in TYPES:
            raise FilterError(f"--type {name!r}: not an image type", "one of: " + ", ".join(sorted(TYPES)))
        formats += [f for f in TYPES[name] if f not in formats]
    return tuple(formats)


def _checked_near(lat: float, lon: float, km: float, option: str) -> Near:
    if not (math.isfinite(lat) and -90.0 <= lat <= 90.0):
        raise FilterError(f"{option}: latitude {lat:g} is not between -90 and 90", "give LAT,LON[,KM], latitude first")
    if not (math.isfinite(lon) and -180.0 <= lon <= 180.0):
        raise FilterError(f"{option}: longitude {lon:g} is not between -180 and 180", "give LAT,LON[,KM]")
    if not (math.isfinite(km) and 0.0 < km <= MAX_NEAR_KM):
        raise FilterError(f"{option}: distance {km:g} km is not above 0 and at most {MAX_NEAR_KM:g}", "give LAT,LON,KM")
    return Near(lat, lon, km)


def _text(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise FilterError(f"{option}: empty", f"give some text to match, or leave out {option}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not text in the terminal's encoding (a lone surrogate)
        raise FilterError(
            f"{option} {value.encode('utf-8', 'backslashreplace').decode()}: not valid text",
            "type the name again; the catalog stores camera and place names as UTF-8",
        ) from None
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
