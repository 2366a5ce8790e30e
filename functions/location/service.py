"""Collection-point rules, free of HTTP: nearby search, place search and suggestions, detail,
categories, opening state. `now` is a parameter wherever the answer depends on the clock."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from eco2.core.errors import NotFound, Unprocessable
from functions.location import geo, store
from functions.location.load import DATA, rules
from functions.location.places import Place, PlaceSearch, PlacesUnavailable
from functions.location.schemas import Center, CenterDetail, Suggestion

SEOUL = ZoneInfo("Asia/Seoul")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SAME_PLACE_M = 25.0  # a provider place this close to one of our points is that point
SEARCH_LIMIT = 200
SUGGEST_LIMIT = 10
PROVIDER_PAGE = 15


# -- categories -------------------------------------------------------------------------------------
def parse_categories(raw: str, field: str, allowed: Sequence[str]) -> list[str] | None:
    """'all' (or nothing) -> None; 'cafe_bakery,refill_zero' -> the list; anything unknown -> 422."""
    values = [v.strip().lower() for v in raw.split(",") if v.strip()]
    if not values or "all" in values:
        return None
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise Unprocessable(
            f"{field}: unknown value {', '.join(repr(u) for u in unknown)}; allowed: all, {', '.join(allowed)}",
            "INVALID_CATEGORY",
        )
    return list(dict.fromkeys(values))


# -- opening state ----------------------------------------------------------------------------------
@functools.cache
def public_holidays() -> frozenset[date]:
    """South Korea's public holidays (data/public_holidays.csv, built by build_data.py)."""
    lines = (DATA / "public_holidays.csv").read_text(encoding="utf-8").splitlines()[1:]
    return frozenset(date.fromisoformat(line.split(",", 1)[0]) for line in lines if line)


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def opening(hours: dict[str, str], now: datetime) -> dict[str, Any]:
    """Today's state in Asia/Seoul: a public holiday uses the holiday hours when the point has them."""
    local = now.astimezone(SEOUL)
    spec = hours.get(WEEKDAYS[local.weekday()], "")
    if local.date() in public_holidays() and hours.get("holiday"):
        spec = hours["holiday"]
    if not spec:
        return {
            "is_holiday": False,
            "is_open": None,
            "start_time": None,
            "end_time": None,
            "opening_status": "unknown",
            "opening_text": "영업시간 정보가 없어요",
        }
    if spec == "closed":
        return {
            "is_holiday": True,
            "is_open": False,
            "start_time": None,
            "end_time": None,
            "opening_status": "holiday",
            "opening_text": "오늘은 쉬는 날이에요",
        }
    ranges = [part.split("-") for part in spec.split(",")]
    minute = local.hour * 60 + local.minute
    is_open = any(_minutes(a) <= minute < _minutes(b) for a, b in ranges)
    start, end = ranges[0][0], ranges[-1][1]
    if is_open:
        text = f"영업 중 · {end}까지"
    elif minute < _minutes(start):
        text = f"영업 전 · {start}에 열어요"
    else:
        text = "오늘 영업이 끝났어요" if minute >= _minutes(end) else "잠시 쉬는 시간이에요"
    return {
        "is_holiday": False,
        "is_open": is_open,
        "start_time": start,
        "end_time": end,
        "opening_status": "open" if is_open else "closed",
        "opening_text": text,
    }


# -- items ------------------------------------------------------------------------------------------
def _item_fields(row: dict[str, Any], distance_m: float | None, now: datetime) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "source": row["source"],
        "road_address": row["road_address"] or row["lot_address"] or None,
        "latitude": row["latitude"],
        "longitude": row["longitude"],
        "distance_km": None if distance_m is None else round(distance_m / 1000, 4),
        "distance_text": None if distance_m is None else geo.distance_text(distance_m),
        "store_category": row["store_category"],
        "pickup_categories": [p for p in row["pickup_categories"].split(",") if p],
        "phone": row["phone"] or None,
        "place_url": row["place_url"] or None,
        **opening(json.loads(row["hours"]), now),
    }


def _center(row: dict[str, Any], distance_m: float | None, now: datetime) -> Center:
    return Center(**_item_fields(row, distance_m, now))


def _provider_center(place: Place, distance_m: float) -> Center:
    """A provider place in the item shape: negative ids, so they never collide with our points."""
    return Center(
        id=-int(place.id) if place.id.isdigit() else -(int(hashlib.sha1(place.id.encode()).hexdigest()[:12], 16) + 1),
        name=place.name,
        source="kakao",
        road_address=place.road_address or place.address or None,
        latitude=place.latitude,
        longitude=place.longitude,
        distance_km=round(distance_m / 1000, 4),
        distance_text=geo.distance_text(distance_m),
        store_category=rules().default_store,
        pickup_categories=[],
        is_holiday=False,
        is_open=None,
        start_time=None,
        end_time=None,
        phone=place.phone or None,
        place_url=place.place_url or None,
        opening_status="unknown",
        opening_text="영업시간 정보가 없어요",
    )


# -- the four calls ---------------------------------------------------------------------------------
def nearby_rows(
    session: Session,
    lat: float,
    lon: float,
    radius_m: float,
    limit: int,
    store_categories: Sequence[str] | None = None,
    pickup_categories: Sequence[str] | None = None,
) -> list[tuple[float, dict[str, Any]]]:
    candidates = store.nearby_candidates(session, lat, lon, radius_m, limit, store_categories, pickup_categories)
    return geo.nearest(candidates, lat, lon, radius_m, limit)


def centers(
    session: Session,
    *,
    lat: float,
    lon: float,
    radius: float | None,
    zoom: int | None,
    store_category: str,
    pickup_category: str,
    now: datetime,
) -> list[Center]:
    stores = parse_categories(store_category, "store_category", rules().store_categories)
    pickups = parse_categories(pickup_category, "pickup_category", rules().pickup_categories)
    radius_m = geo.search_radius_m(radius, zoom)
    found = nearby_rows(session, lat, lon, radius_m, geo.zoom_limit(zoom), stores, pickups)
    return [_center(row, d, now) for d, row in found]


def search(session: Session, places: PlaceSearch | None, *, q: str, radius: float, now: datetime) -> list[Center]:
    """The provider's places for `q` and our points around its first hit, nearest to that hit
    first; without a provider (or when it fails) our points matching `q` and those around the best."""
    radius_m = geo.clamp_radius(radius)
    found: list[Place] = []
    if places is not None:
        try:
            found = places.keyword(q.strip(), size=PROVIDER_PAGE)
        except PlacesUnavailable:
            found = []
    if found:
        lat, lon = found[0].latitude, found[0].longitude
        ours = nearby_rows(session, lat, lon, radius_m, SEARCH_LIMIT)
        items = [(d, _center(row, d, now)) for d, row in ours]
        for place in found:
            if any(
                geo.haversine_m(place.latitude, place.longitude, r["latitude"], r["longitude"]) <= SAME_PLACE_M
                for _, r in ours
            ):
                continue
            d = geo.haversine_m(lat, lon, place.latitude, place.longitude)
            items.append((d, _provider_center(place, d)))
    else:
        matches = [r for r in store.text_matches(session, q, SEARCH_LIMIT) if r["latitude"] is not None]
        if not matches:
            return []
        lat, lon = matches[0]["latitude"], matches[0]["longitude"]
        around = nearby_rows(session, lat, lon, radius_m, SEARCH_LIMIT)
        seen = {row["id"] for _, row in around}
        rows = around + [
            (geo.haversine_m(lat, lon, r["latitude"], r["longitude"]), r) for r in matches if r["id"] not in seen
        ]
        items = [(d, _center(row, d, now)) for d, row in rows]
    items.sort(key=lambda pair: (pair[0], pair[1].id))
    return [center for _, center in items[:SEARCH_LIMIT]]


def suggest(session: Session, places: PlaceSearch | None, *, q: str) -> list[Suggestion]:
    if places is not None:
        try:
            return [
                Suggestion(
                    place_name=p.name,
                    address=p.road_address or p.address,
                    latitude=p.latitude,
                    longitude=p.longitude,
                    place_url=p.place_url or None,
                )
                for p in places.keyword(q.strip(), size=SUGGEST_LIMIT)
            ]
        except PlacesUnavailable:
            pass
    return [
        Suggestion(
            place_name=r["name"],
            address=r["road_address"] or r["lot_address"],
            latitude=r["latitude"],
            longitude=r["longitude"],
            place_url=r["place_url"] or None,
        )
        for r in store.text_matches(session, q, SUGGEST_LIMIT * 2)
        if r["latitude"] is not None
    ][:SUGGEST_LIMIT]


def detail(
    session: Session, point_id: int, *, now: datetime, lat: float | None = None, lon: float | None = None
) -> CenterDetail:
    row = store.by_id(session, point_id) if point_id > 0 else None
    if row is None:
        raise NotFound("그런 수거 장소가 없어요.", "LOCATION_NOT_FOUND")
    distance = None
    if lat is not None and lon is not None and row["latitude"] is not None:
        distance = geo.haversine_m(lat, lon, row["latitude"], row["longitude"])
    hours = json.loads(row["hours"])
    return CenterDetail(
        **_item_fields(row, distance, now),
        lot_address=row["lot_address"] or None,
        collection_items=row["collection_items"] or None,
        introduction=row["introduction"] or None,
        place_description=row["place_description"] or None,
        hours={day: ("휴무" if v == "closed" else v or None) for day, v in hours.items()},
        hours_note=row["hours_note"] or None,
    )
