"""Distances and the map's rules, free of any database: haversine, zoom -> radius and limit, the
exact radius cut and order shared by every backend."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

EARTH_RADIUS_M = 6_371_008.8  # the mean earth radius (IUGG), as PostGIS' sphere uses
MIN_RADIUS_M = 100.0
MAX_RADIUS_M = 50_000.0
DEFAULT_RADIUS_M = 5_000.0
# internal zoom 1..20 -> search radius (km), DOMAIN.md "Collection points"
ZOOM_RADIUS_KM = (80, 60, 45, 30, 20, 15, 10, 8, 6, 4.5, 3, 2, 1.2, 0.8, 0.5, 0.3, 0.2, 0.15, 0.12, 0.1)
DEFAULT_LIMIT = 200


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def clamp_radius(radius_m: float) -> float:
    """The app sends less than 100 m at close zoom: clamp, never reject."""
    if math.isnan(radius_m):
        return DEFAULT_RADIUS_M
    return min(MAX_RADIUS_M, max(MIN_RADIUS_M, radius_m))


def zoom_radius_m(zoom: int) -> float:
    return ZOOM_RADIUS_KM[zoom - 1] * 1000.0


def zoom_limit(zoom: int | None) -> int:
    if zoom is None:
        return DEFAULT_LIMIT
    if zoom <= 3:
        return 50
    if zoom <= 6:
        return 80
    if zoom <= 9:
        return 120
    if zoom <= 12:
        return 160
    return 200


def search_radius_m(radius: float | None, zoom: int | None) -> float:
    """`radius` wins (clamped), else the zoom's radius, else 5 km."""
    if radius is not None:
        return clamp_radius(radius)
    if zoom is not None:
        return zoom_radius_m(zoom)
    return DEFAULT_RADIUS_M


def distance_text(metres: float) -> str:
    """'350m' under a kilometre, else '1.2km'."""
    if metres < 999.5:
        return f"{round(metres)}m"
    return f"{metres / 1000:.1f}km"


def nearest(
    rows: Iterable[dict[str, Any]], lat: float, lon: float, radius_m: float, limit: int
) -> list[tuple[float, dict[str, Any]]]:
    """(distance m, row) within the radius, nearest first, ties by id, at most `limit`."""
    found = []
    for row in rows:
        if row["latitude"] is None or row["longitude"] is None:
            continue
        d = haversine_m(lat, lon, row["latitude"], row["longitude"])
        if d <= radius_m:
            found.append((d, row))
    found.sort(key=lambda pair: (pair[0], pair[1]["id"]))
    return found[:limit]
