"""location on real PostgreSQL (PostGIS) and on SQLite: one suite, both backends.

Every behaviour test runs twice (the `backend` parameter): against the session's PostgreSQL
database (points reloaded after each test's truncation) and against a SQLite file under pytest's
tmp_path migrated exactly as `eco2 dev` migrates it. Kakao Local is a real HTTP stand-in.
"""

from __future__ import annotations

import math
import random
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from eco2.core.db import normalise_url
from eco2.serving.testing import FunctionClient
from functions.location.load import load_points, read_points
from functions.location.store import nearby_statement
from tests.conftest import ORIGIN, ROOT
from tests.support.kakao_local_server import KEY, KakaoLocalServer

R = 6_371_008.8
GOYANG_CITY_HALL = (37.6584, 126.8320)
SEOUL = (37.5665, 126.9780)
ITEM_KEYS = {
    "id",
    "name",
    "source",
    "road_address",
    "latitude",
    "longitude",
    "distance_km",
    "distance_text",
    "store_category",
    "pickup_categories",
    "is_holiday",
    "is_open",
    "start_time",
    "end_time",
    "phone",
    "place_url",
}
POINTS = read_points()


def brute_force(
    lat: float,
    lon: float,
    radius_m: float,
    limit: int,
    rows: list[dict[str, Any]] = POINTS,
) -> list[tuple[int, float]]:
    """Every point, haversine written out again here (not the function's own code)."""
    out = []
    for row in rows:
        if row["latitude"] is None:
            continue
        p1, p2 = math.radians(lat), math.radians(row["latitude"])
        a = (
            math.sin((p2 - p1) / 2) ** 2
            + math.cos(p1) * math.cos(p2) * math.sin(math.radians(row["longitude"] - lon) / 2) ** 2
        )
        d = 2 * R * math.asin(math.sqrt(a))
        if d <= radius_m:
            out.append((row["id"], d))
    out.sort(key=lambda pair: (pair[1], pair[0]))
    return out[:limit]


# -- fixtures -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from eco2.tooling.migrate import upgrade

    path = tmp_path_factory.mktemp("location") / "template.db"
    upgrade(f"sqlite:///{path}")  # what `eco2 dev` does at start: the migration loads the points
    return path


@pytest.fixture(params=["postgresql", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "postgresql":
        url: str = request.getfixturevalue("clean_db")  # every table truncated: load the points again
        engine = create_engine(normalise_url(url))
        with engine.begin() as connection:
            load_points(connection)
        engine.dispose()
        return url
    path = tmp_path / "eco2.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def kakao() -> Iterator[KakaoLocalServer]:
    server = KakaoLocalServer()
    yield server
    server.close()


@pytest.fixture
def location(database_url: str, redis_url: str) -> Iterator[Callable[..., FunctionClient]]:
    opened: list[FunctionClient] = []

    def make(**extra: str) -> FunctionClient:
        env = {
            "ECO2_ENV": "test",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "JWT_SECRET": "test-secret-0123456789-0123456789-0123456789",
            "ALLOWED_ORIGINS": ORIGIN,
            "LOG_LEVEL": "ERROR",
            **extra,
        }
        client = FunctionClient("location", env, root=ROOT)
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.close()


def get(client: FunctionClient, path: str, status: int = 200) -> Any:
    response = client.get(path)
    assert response.status_code == status, (path, response.status_code, response.get_data(as_text=True))
    return response.json


def centers(client: FunctionClient, lat: float, lon: float, **params: Any) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in {"lat": lat, "lon": lon, **params}.items())
    body = get(client, f"/api/v1/locations/centers?{query}")
    assert isinstance(body, list)
    return body


# -- nearby -------------------------------------------------------------------------------------------
def test_centers_shape_nearest_first_with_distances(location: Callable[..., FunctionClient]) -> None:
    client = location()
    items = centers(client, *GOYANG_CITY_HALL, zoom=13)
    assert len(items) >= 2
    for item in items:
        assert set(item) >= ITEM_KEYS
        assert isinstance(item["id"], int) and isinstance(item["pickup_categories"], list)
        assert item["distance_km"] * 1000 <= 1200
        metres = item["distance_km"] * 1000
        assert item["distance_text"] == (f"{round(metres)}m" if metres < 999.5 else f"{metres / 1000:.1f}km")
    assert [i["distance_km"] for i in items] == sorted(i["distance_km"] for i in items)
    first = items[0]
    assert first["name"] == "고양시청 후문" and first["distance_text"].endswith("m")


@pytest.mark.parametrize("zoom", [5, 7, 10, 13, 16])
def test_zoom_gives_the_radius_of_the_table(location: Callable[..., FunctionClient], zoom: int) -> None:
    radius_km = [80, 60, 45, 30, 20, 15, 10, 8, 6, 4.5, 3, 2, 1.2, 0.8, 0.5, 0.3, 0.2, 0.15, 0.12, 0.1][zoom - 1]
    lat, lon = 37.5400, 127.0000
    items = centers(location(), lat, lon, zoom=zoom)
    expected = brute_force(lat, lon, radius_km * 1000, 10_000)
    limit = 50 if zoom <= 3 else 80 if zoom <= 6 else 120 if zoom <= 9 else 160 if zoom <= 12 else 200
    assert [i["id"] for i in items] == [pid for pid, _ in expected][:limit]


@pytest.mark.parametrize(
    ("params", "limit"),
    [
        ({"zoom": 1}, 50),
        ({"zoom": 4}, 80),
        ({"zoom": 8, "radius": 50000}, 120),
        ({"zoom": 11, "radius": 50000}, 160),
        ({"zoom": 13, "radius": 50000}, 200),
        ({"radius": 50000}, 200),
    ],
)
def test_result_limits_by_zoom(location: Callable[..., FunctionClient], params: dict[str, Any], limit: int) -> None:
    items = centers(location(), *SEOUL, **params)
    assert len(items) == limit  # more than `limit` points lie within 30 km of Seoul's city hall


def test_radius_is_clamped_not_rejected(location: Callable[..., FunctionClient]) -> None:
    client = location()
    lat, lon = 37.65814, 126.83217  # a few metres from 고양시청 후문
    small = centers(client, lat, lon, radius=20, zoom=16)
    assert [i["id"] for i in small] == [i["id"] for i in centers(client, lat, lon, radius=100)]
    assert [i["id"] for i in centers(client, lat, lon, radius=0)] == [i["id"] for i in small]
    assert [i["id"] for i in centers(client, lat, lon, radius=-30)] == [i["id"] for i in small]
    assert small and all(i["distance_km"] <= 0.1 for i in small)
    huge = centers(client, *SEOUL, radius=900000, zoom=13)
    assert [i["id"] for i in huge] == [pid for pid, _ in brute_force(*SEOUL, 50_000, 200)]
    # the app's own call after zooming out: zoom 11 and an explicit radius, which wins
    zoomed = centers(client, *SEOUL, zoom=11, radius=2399)
    assert [i["id"] for i in zoomed] == [pid for pid, _ in brute_force(*SEOUL, 2399, 160)]


def test_store_and_pickup_categories_filter(location: Callable[..., FunctionClient]) -> None:
    client = location()
    everything = centers(client, *SEOUL, zoom=4)
    refill = centers(client, *SEOUL, zoom=4, store_category="refill_zero")
    assert refill and all(i["store_category"] == "refill_zero" for i in refill)
    refill_points = [p for p in POINTS if p["store_category"] == "refill_zero"]
    assert [i["id"] for i in refill] == [pid for pid, _ in brute_force(*SEOUL, 30_000, 80, refill_points)]
    two = centers(client, *SEOUL, zoom=4, store_category="refill_zero,public_dropbox")
    assert {i["store_category"] for i in two} == {"refill_zero", "public_dropbox"}
    cans = centers(client, *SEOUL, zoom=4, pickup_category="can")
    assert cans and all("can" in i["pickup_categories"] for i in cans)
    either = centers(client, *SEOUL, zoom=4, pickup_category="glass,textile")
    assert either and all({"glass", "textile"} & set(i["pickup_categories"]) for i in either)
    both = centers(client, *SEOUL, zoom=4, store_category="public_dropbox", pickup_category="clear_pet")
    assert both and all(i["store_category"] == "public_dropbox" and "clear_pet" in i["pickup_categories"] for i in both)
    assert [i["id"] for i in centers(client, *SEOUL, zoom=4, store_category="all", pickup_category="all")] == [
        i["id"] for i in everything
    ]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("lat=37.5&lon=127&store_category=refill_zero,bakery", "store_category"),
        ("lat=37.5&lon=127&pickup_category=cans", "pickup_category"),
    ],
)
def test_unknown_categories_are_refused_listing_the_allowed_ones(
    location: Callable[..., FunctionClient], query: str, field: str
) -> None:
    body = get(location(), f"/api/v1/locations/centers?{query}", 422)
    assert body["code"] == "INVALID_CATEGORY" and body["detail"].startswith(field)
    assert "allowed: all, " in body["detail"] and ("public_dropbox" in body["detail"] or "clear_pet" in body["detail"])


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("lon=127", "lat"),
        ("lat=37.5", "lon"),
        ("lat=95&lon=127", "lat"),
        ("lat=37.5&lon=127&zoom=21", "zoom"),
        ("lat=x&lon=127", "lat"),
    ],
)
def test_bad_coordinates_and_zoom_name_the_field(
    location: Callable[..., FunctionClient], query: str, field: str
) -> None:
    body = get(location(), f"/api/v1/locations/centers?{query}", 422)
    assert field in body["detail"] and body["code"] == "VALIDATION_ERROR"


def test_matches_brute_force_for_200_random_centres_and_radii(location: Callable[..., FunctionClient]) -> None:
    client = location()
    rng = random.Random(20261201)
    placed = [p for p in POINTS if p["latitude"] is not None]
    for _ in range(200):
        anchor = rng.choice(placed)  # near real points, so most answers are not empty
        lat = anchor["latitude"] + rng.uniform(-0.1, 0.1)
        lon = anchor["longitude"] + rng.uniform(-0.1, 0.1)
        radius = math.exp(rng.uniform(math.log(100), math.log(50_000)))
        zoom = rng.randint(1, 20)
        items = centers(client, round(lat, 6), round(lon, 6), radius=round(radius, 1), zoom=zoom)
        limit = 50 if zoom <= 3 else 80 if zoom <= 6 else 120 if zoom <= 9 else 160 if zoom <= 12 else 200
        expected = brute_force(round(lat, 6), round(lon, 6), round(radius, 1), limit)
        assert [i["id"] for i in items] == [pid for pid, _ in expected]
        for item, (_, metres) in zip(items, expected, strict=True):
            assert abs(item["distance_km"] * 1000 - metres) < 1.0


# -- detail -------------------------------------------------------------------------------------------
def test_detail_shape_and_not_found(location: Callable[..., FunctionClient]) -> None:
    client = location()
    body = get(client, "/api/v1/locations/centers/3")
    assert ITEM_KEYS | {"lot_address", "collection_items", "introduction"} <= set(body)
    assert body["name"] == "고양시청 후문" and body["lot_address"] == "경기도 고양시 덕양구 주교동 600"
    assert "투명페트병" in body["collection_items"] and body["introduction"]
    assert isinstance(body["pickup_categories"], list) and "clear_pet" in body["pickup_categories"]
    assert body["hours"]["tue"] == "11:00-14:00" and body["hours"]["mon"] == "휴무"
    assert body["distance_km"] is None
    near = get(client, "/api/v1/locations/centers/3?lat=37.6584&lon=126.8320")
    assert 0 < near["distance_km"] < 0.1
    zero_waste = get(client, "/api/v1/locations/centers/194097729")
    assert zero_waste["source"] == "zerowaste" and zero_waste["is_open"] is None
    assert zero_waste["opening_status"] == "unknown" and zero_waste["pickup_categories"]
    for missing in ("999", "-5", "abc", "0"):
        assert get(client, f"/api/v1/locations/centers/{missing}", 404)["code"] == "LOCATION_NOT_FOUND"


# -- place search and suggestions ---------------------------------------------------------------------
def test_search_and_suggest_without_a_provider_key_use_the_database(location: Callable[..., FunctionClient]) -> None:
    client = location()
    found = get(client, "/api/v1/locations/search?q=고양시청")
    assert found[0]["name"] == "고양시청 후문" and found[0]["distance_km"] == 0
    assert all(set(i) >= ITEM_KEYS for i in found) and len(found) > 1
    assert [i["distance_km"] for i in found] == sorted(i["distance_km"] for i in found)
    assert get(client, "/api/v1/locations/search?q=없는장소zzz") == []
    suggestions = get(client, "/api/v1/locations/suggest?q=리필")
    assert suggestions and all("리필" in s["place_name"] or "리필" in s["address"] for s in suggestions)
    assert set(suggestions[0]) == {"place_name", "address", "latitude", "longitude", "place_url"}
    assert get(client, "/api/v1/locations/search?q=", 422)["code"] == "VALIDATION_ERROR"
    assert get(client, "/api/v1/locations/suggest?q=" + "가" * 101, 422)["code"] == "VALIDATION_ERROR"


PROVIDER_PLACES = [
    ("27500001", "고양시청", "경기 고양시 덕양구 고양시청로 10", 37.6584, 126.8320),
    # the same spot as our point 3 (고양시청 후문): dropped as a duplicate
    ("27500002", "고양시청 후문 쉼터", "경기 고양시 덕양구 주교동 600", 37.6581404, 126.8321693),
    ("27500003", "고양시청 민원실", "경기 고양시 덕양구 주교동 601", 37.6590, 126.8330),
]


def test_search_merges_provider_places_with_our_points(
    location: Callable[..., FunctionClient], kakao: KakaoLocalServer
) -> None:
    kakao.reset(PROVIDER_PLACES)
    client = location(KAKAO_LOCAL_BASE_URL=kakao.base_url, KAKAO_REST_API_KEY=KEY)
    found = get(client, "/api/v1/locations/search?q=고양시청&radius=2000")
    assert kakao.requests and kakao.requests[0]["auth"] == f"KakaoAK {KEY}"
    assert kakao.requests[0]["args"]["query"] == "고양시청"
    assert found[0] == found[0] | {"id": -27500001, "name": "고양시청", "source": "kakao", "distance_km": 0}
    names = [i["name"] for i in found]
    assert "고양시청 후문 쉼터" not in names and "고양시청 후문" in names and "고양시청 민원실" in names
    assert [pid for pid, _ in brute_force(37.6584, 126.8320, 2000, 200)] == [i["id"] for i in found if i["id"] > 0]
    assert len({i["id"] for i in found}) == len(found)
    assert [i["distance_km"] for i in found] == sorted(i["distance_km"] for i in found)
    assert all(set(i) >= ITEM_KEYS for i in found)


def test_suggest_uses_the_provider(location: Callable[..., FunctionClient], kakao: KakaoLocalServer) -> None:
    kakao.reset(PROVIDER_PLACES)
    client = location(KAKAO_LOCAL_BASE_URL=kakao.base_url, KAKAO_REST_API_KEY=KEY)
    suggestions = get(client, "/api/v1/locations/suggest?q=고양시청 민원")
    assert suggestions == [
        {
            "place_name": "고양시청 민원실",
            "address": "경기 고양시 덕양구 주교동 601",
            "latitude": 37.659,
            "longitude": 126.833,
            "place_url": "http://place.map.kakao.com/27500003",
        }
    ]


@pytest.mark.parametrize("outage", ["slow", "error", "garbage", "refused", "wrong_key"])
def test_a_provider_outage_degrades_to_database_results(
    location: Callable[..., FunctionClient], kakao: KakaoLocalServer, outage: str
) -> None:
    expected_search = get(location(), "/api/v1/locations/search?q=고양시청")
    expected_suggest = get(location(), "/api/v1/locations/suggest?q=리필")
    kakao.reset(PROVIDER_PLACES, mode="ok" if outage in ("refused", "wrong_key") else outage)  # type: ignore[arg-type]
    kakao.delay = 2.0
    url = "http://127.0.0.1:9" if outage == "refused" else kakao.base_url
    key = "not-the-key" if outage == "wrong_key" else KEY
    client = location(KAKAO_LOCAL_BASE_URL=url, KAKAO_REST_API_KEY=key, KAKAO_LOCAL_TIMEOUT="0.3")
    started = time.monotonic()
    assert get(client, "/api/v1/locations/search?q=고양시청") == expected_search
    assert get(client, "/api/v1/locations/suggest?q=리필") == expected_suggest
    assert time.monotonic() - started < 1.8  # two calls, each bounded by the 0.3 s timeout
    if outage != "refused":
        assert len(kakao.requests) == 2


# -- the index, the loader ----------------------------------------------------------------------------
@pytest.mark.parametrize("radius", [4500, 300])  # the KNN-ordered form and the sorted one
def test_the_nearby_query_uses_the_index(database_url: str, radius: float) -> None:
    engine = create_engine(normalise_url(database_url))
    dialect = engine.dialect.name
    try:
        with engine.begin() as connection:
            if dialect == "postgresql":
                # enough rows for the planner to prefer an index at all: 20,000 synthetic points
                connection.execute(
                    text(
                        "INSERT INTO collection_points (id, source, source_pk, name, latitude, longitude, "
                        "store_category, pickup_categories, content_hash) "
                        "SELECT 10000000000 + g, 'synthetic', g::text, 'p' || g, 33.5 + random() * 4.5, "
                        "126.0 + random() * 3.5, 'general', 'general', '' FROM generate_series(1, 20000) g"
                    )
                )
                connection.execute(text("ANALYZE collection_points"))
            statement = nearby_statement(dialect, 37.5665, 126.978, radius, 160)
            sql = str(statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
            explain = "EXPLAIN " if dialect == "postgresql" else "EXPLAIN QUERY PLAN "
            plan = "\n".join(str(row[-1]) for row in connection.execute(text(explain + sql)))
    finally:
        engine.dispose()
    if dialect == "postgresql":
        assert "ix_collection_points_geog" in plan, plan
        assert "Seq Scan" not in plan, plan
    else:
        assert "USING INDEX ix_collection_points_lat_lon" in plan, plan
        assert "SCAN collection_points" not in plan, plan


def test_loading_is_idempotent_and_updates_changed_rows(
    database_url: str, location: Callable[..., FunctionClient]
) -> None:
    engine = create_engine(normalise_url(database_url))
    try:
        with engine.begin() as connection:
            again = load_points(connection)
        assert (again.inserted, again.updated, again.removed, again.unchanged) == (0, 0, 0, len(POINTS))
        changed = [dict(p) for p in POINTS if p["id"] != 1]
        three = next(p for p in changed if p["id"] == 3)
        three.update(name="고양시청 후문 (이전)", content_hash="changed")
        with engine.begin() as connection:
            report = load_points(connection, changed)
        assert (report.inserted, report.updated, report.removed) == (0, 1, 1)
        client = location()
        assert get(client, "/api/v1/locations/centers/3")["name"] == "고양시청 후문 (이전)"
        assert get(client, "/api/v1/locations/centers/1", 404)["code"] == "LOCATION_NOT_FOUND"
        with engine.begin() as connection:
            back = load_points(connection)
        assert (back.inserted, back.updated, back.removed) == (1, 1, 0)
        assert get(client, "/api/v1/locations/centers/3")["name"] == "고양시청 후문"
    finally:
        engine.dispose()


# -- opening state at fixed clock times, and text search, on each backend -----------------------------
def test_opening_state_at_fixed_clock_times(database_url: str) -> None:
    from datetime import datetime, timedelta, timezone

    from sqlalchemy.orm import Session

    from functions.location import service

    kst = timezone(timedelta(hours=9))
    engine = create_engine(normalise_url(database_url))

    def state(now: datetime, point_id: int = 3) -> tuple[Any, ...]:
        with Session(engine) as session:
            items = service.centers(
                session,
                lat=37.6581404,
                lon=126.8321693,
                radius=30,
                zoom=None,
                store_category="all",
                pickup_category="all",
                now=now,
            )
            item = (
                next(i for i in items if i.id == point_id)
                if point_id == 3
                else service.detail(session, point_id, now=now)
            )
        return item.is_holiday, item.is_open, item.start_time, item.end_time, item.opening_status

    try:
        # 고양시청 후문 opens on Tuesdays 11:00-14:00 only, and not on public holidays
        assert state(datetime(2026, 12, 1, 12, 0, tzinfo=kst)) == (False, True, "11:00", "14:00", "open")
        assert state(datetime(2026, 12, 1, 10, 59, tzinfo=kst)) == (False, False, "11:00", "14:00", "closed")
        assert state(datetime(2026, 12, 1, 14, 0, tzinfo=kst)) == (False, False, "11:00", "14:00", "closed")
        assert state(datetime(2026, 12, 1, 3, 30, tzinfo=UTC)) == (False, True, "11:00", "14:00", "open")  # 12:30 KST
        assert state(datetime(2026, 11, 30, 12, 0, tzinfo=kst)) == (True, False, None, None, "holiday")  # Monday
        assert state(datetime(2026, 5, 5, 12, 0, tzinfo=kst)) == (True, False, None, None, "holiday")  # 어린이날, Tue
        assert state(datetime(2026, 12, 1, 12, 0, tzinfo=kst), 194097729) == (False, None, None, None, "unknown")
    finally:
        engine.dispose()


def test_text_search_without_a_provider(database_url: str, location: Callable[..., FunctionClient]) -> None:
    client = location()
    exact = get(client, "/api/v1/locations/suggest?q=보틀팩토리")
    assert exact[0]["place_name"] == "보틀팩토리"
    words = get(client, "/api/v1/locations/suggest?q=고양시청 후문")
    assert words[0]["place_name"] == "고양시청 후문"
    for wildcard in ("%25", "_"):  # LIKE wildcards are escaped: only text that holds them matches
        hits = get(client, f"/api/v1/locations/suggest?q={wildcard}")
        assert all(("%" if wildcard == "%25" else "_") in s["place_name"] + s["address"] for s in hits)
    typo = get(client, "/api/v1/locations/suggest?q=고양시쳥")  # one syllable wrong
    if database_url.startswith("postgresql"):
        assert typo and all("고양" in s["address"] or "고양" in s["place_name"] for s in typo)  # pg_trgm
    else:
        assert typo == []  # SQLite: substrings only


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_the_migration_goes_down_and_up_again(backend: str, tmp_path: Path) -> None:
    import uuid

    import psycopg

    from eco2.tooling.migrate import upgrade
    from tests.conftest import ADMIN_URL

    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'migrate.db'}"
    else:
        name = f"eco2_test_location_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = f"{ADMIN_URL.rpartition('/')[0]}/{name}"
    engine = create_engine(normalise_url(url))
    try:
        upgrade(url)
        count = "SELECT count(*) FROM collection_points"
        with engine.connect() as connection:
            assert connection.execute(text(count)).scalar() == len(POINTS)
        _downgrade(url, "0002_events")
        with engine.connect() as connection:
            tables = {
                r[0]
                for r in connection.execute(
                    text(
                        "SELECT name FROM sqlite_master WHERE type='table'"
                        if backend == "sqlite"
                        else "SELECT tablename FROM pg_tables WHERE schemaname='public'"
                    )
                )
            }
        assert "collection_points" not in tables and "event_outbox" in tables
        upgrade(url)
        with engine.connect() as connection:
            assert connection.execute(text(count)).scalar() == len(POINTS)
    finally:
        engine.dispose()
        if backend == "postgresql":
            with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')


def _downgrade(url: str, revision: str) -> None:
    from alembic import command

    from eco2.tooling.migrate import alembic_config

    command.downgrade(alembic_config(url), revision)  # type: ignore[arg-type]
