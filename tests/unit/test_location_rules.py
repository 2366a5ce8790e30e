"""location's rules without a database: zoom table, radius clamp, limits, distance text,
categories, opening state at fixed clock times, hours normalisation, the map-coordinate fit."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from eco2.core.errors import Unprocessable
from functions.location import geo
from functions.location.build_data import MapFit, fit_map_coordinates, normalise_hours
from functions.location.load import pickup_categories, rules, store_category
from functions.location.service import opening, parse_categories

KST = timezone(timedelta(hours=9))
WEEK = {
    "mon": "09:00-18:00",
    "tue": "closed",
    "wed": "09:00-12:00,14:00-17:00",
    "thu": "00:00-24:00",
    "fri": "",
    "sat": "closed",
    "sun": "closed",
    "holiday": "closed",
}


@pytest.mark.parametrize(
    ("zoom", "km"),
    [
        (1, 80),
        (2, 60),
        (3, 45),
        (4, 30),
        (5, 20),
        (6, 15),
        (7, 10),
        (8, 8),
        (9, 6),
        (10, 4.5),
        (11, 3),
        (12, 2),
        (13, 1.2),
        (14, 0.8),
        (15, 0.5),
        (16, 0.3),
        (17, 0.2),
        (18, 0.15),
        (19, 0.12),
        (20, 0.1),
    ],
)
def test_zoom_table(zoom: int, km: float) -> None:
    assert geo.search_radius_m(None, zoom) == pytest.approx(km * 1000)


@pytest.mark.parametrize(
    ("zoom", "limit"),
    [(1, 50), (3, 50), (4, 80), (6, 80), (7, 120), (9, 120), (10, 160), (12, 160), (13, 200), (20, 200), (None, 200)],
)
def test_limit_by_zoom(zoom: int | None, limit: int) -> None:
    assert geo.zoom_limit(zoom) == limit


def test_radius_is_clamped_never_rejected_and_wins_over_zoom() -> None:
    assert geo.search_radius_m(20, 16) == 100
    assert geo.search_radius_m(-5, None) == 100
    assert geo.search_radius_m(2399, 11) == 2399
    assert geo.search_radius_m(900_000, None) == 50_000
    assert geo.search_radius_m(None, None) == 5_000


@pytest.mark.parametrize(
    ("metres", "text"),
    [(0, "0m"), (349.6, "350m"), (999.4, "999m"), (999.6, "1.0km"), (1234, "1.2km"), (45_050, "45.0km")],
)
def test_distance_text(metres: float, text: str) -> None:
    assert geo.distance_text(metres) == text


def test_haversine_known_distance() -> None:
    # one degree of a meridian, and of the equator, is R * pi / 180 on the sphere
    assert geo.haversine_m(36.0, 127.0, 37.0, 127.0) == pytest.approx(111_195.08, abs=0.01)
    assert geo.haversine_m(0.0, 127.0, 0.0, 128.0) == pytest.approx(111_195.08, abs=0.01)


def test_categories_all_list_and_unknown_values_list_the_allowed_ones() -> None:
    allowed = rules().store_categories
    assert parse_categories("all", "store_category", allowed) is None
    assert parse_categories("", "store_category", allowed) is None
    assert parse_categories(" Refill_Zero,cafe_bakery,refill_zero ", "store_category", allowed) == [
        "refill_zero",
        "cafe_bakery",
    ]
    with pytest.raises(Unprocessable) as caught:
        parse_categories("refill_zero,bogus", "store_category", allowed)
    assert "bogus" in caught.value.detail and "cafe_bakery" in caught.value.detail
    assert caught.value.detail.startswith("store_category")


def test_categories_are_derived_from_keywords() -> None:
    assert store_category("보틀팩토리", "지하는 리필스테이션, 1층은 일회용 없는 카페", "") == "refill_zero"
    assert store_category("주교동 행정복지센터", "", "") == "public_dropbox"
    assert store_category("어느 빵집 베이커리", "", "") == "cafe_bakery"
    assert store_category("무명", "", "") == "general"
    assert pickup_categories("투명페트병\n유색페트병\n알루미늄 캔\n종이박스") == [
        "clear_pet",
        "colored_pet",
        "can",
        "paper",
    ]
    assert pickup_categories("헌옷, 소형가전, 유리병") == ["glass", "textile", "electronics"]
    assert pickup_categories("") == ["general"]


def at(day: int, hh: int, mm: int) -> datetime:
    """2026-11-30 is a Monday: day 0 = Monday, in Asia/Seoul."""
    return datetime(2026, 11, 30 + day, hh, mm, tzinfo=KST) if day < 1 else datetime(2026, 12, day, hh, mm, tzinfo=KST)


def test_opening_state_at_fixed_clock_times() -> None:
    monday = datetime(2026, 11, 30, 10, 0, tzinfo=KST)
    assert opening(WEEK, monday) == {
        "is_holiday": False,
        "is_open": True,
        "start_time": "09:00",
        "end_time": "18:00",
        "opening_status": "open",
        "opening_text": "영업 중 · 18:00까지",
    }
    assert opening(WEEK, monday.replace(hour=8, minute=59))["is_open"] is False
    assert opening(WEEK, monday.replace(hour=18, minute=0))["is_open"] is False  # the end is exclusive
    tuesday = monday + timedelta(days=1)
    assert opening(WEEK, tuesday) | {"opening_text": ""} == {
        "is_holiday": True,
        "is_open": False,
        "start_time": None,
        "end_time": None,
        "opening_status": "holiday",
        "opening_text": "",
    }
    wednesday_lunch = monday + timedelta(days=2, hours=3)  # 13:00, between two ranges
    state = opening(WEEK, wednesday_lunch)
    assert (state["is_open"], state["start_time"], state["end_time"]) == (False, "09:00", "17:00")
    assert opening(WEEK, wednesday_lunch + timedelta(hours=1))["is_open"] is True
    assert opening(WEEK, monday + timedelta(days=3, hours=13, minutes=59))["is_open"] is True  # Thu 23:59, all day
    friday = opening(WEEK, monday + timedelta(days=4))
    assert friday["is_open"] is None and friday["opening_status"] == "unknown"  # no hours: say so


def test_opening_uses_seoul_time_whatever_the_clock_zone() -> None:
    # 2026-11-30 00:30 UTC is Monday 09:30 in Seoul; 2026-11-29 23:30 UTC is Monday 08:30 in Seoul
    assert opening(WEEK, datetime(2026, 11, 30, 0, 30, tzinfo=UTC))["is_open"] is True
    assert opening(WEEK, datetime(2026, 11, 29, 23, 30, tzinfo=UTC))["is_open"] is False


def test_a_public_holiday_uses_the_holiday_hours() -> None:
    # 2026-10-09 (Friday) is Hangul Day; 2026-10-16 is an ordinary Friday
    week = {**WEEK, "fri": "09:00-18:00", "holiday": "closed"}
    assert opening(week, datetime(2026, 10, 9, 10, 0, tzinfo=KST))["is_holiday"] is True
    assert opening(week, datetime(2026, 10, 16, 10, 0, tzinfo=KST))["is_open"] is True
    open_on_holidays = {**week, "holiday": "10:00-12:00"}
    assert opening(open_on_holidays, datetime(2026, 10, 9, 11, 0, tzinfo=KST))["is_open"] is True


@pytest.mark.parametrize(
    ("raw", "spec", "notes"),
    [
        ("", "", []),
        ("휴무", "closed", []),
        ("전체휴무", "closed", []),
        ("상시", "00:00-24:00", []),
        ("09:00 ~ 21:00", "09:00-21:00", []),
        ("9:00~11:00", "09:00-11:00", []),
        ("08시~22시", "08:00-22:00", []),
        ("09:00 ~ 12:00,\n14:00 ~ 17:00", "09:00-12:00,14:00-17:00", []),
        ("10시~22시         (하절기(7~9월) 10시~23시)", "10:00-22:00", ["7~9월", "하절기 10시~23시"]),
        ("10:00~12:00\n14:00~16:00\n(1,3,5주)", "10:00-12:00,14:00-16:00", ["1,3,5주"]),
    ],
)
def test_hours_normalisation(raw: str, spec: str, notes: list[str]) -> None:
    assert normalise_hours(raw) == (spec, notes)


def test_map_coordinate_fit_recovers_a_known_projection() -> None:
    # a smooth synthetic grid -> (lat, lon) mapping: the fit must reproduce held-out points closely
    samples = []
    for i in range(12):
        for j in range(12):
            x, y = 300_000 + i * 60_000, 400_000 + j * 70_000
            lat = 33 + (y - 400_000) / 250_000 + 1e-13 * (x - 600_000) ** 2
            lon = 125 + (x - 300_000) / 220_000 - 2e-13 * (y - 800_000) ** 2
            samples.append((float(x), float(y), lat, lon))
    fit, errors = fit_map_coordinates(samples)
    assert isinstance(fit, MapFit) and errors[-1] < 1.0
    lat, lon = fit(600_000, 800_000)
    assert lat == pytest.approx(33 + 1.6, abs=1e-5) and lon == pytest.approx(125 + 300_000 / 220_000, abs=1e-5)


def test_the_public_holiday_file_is_what_the_holidays_package_says() -> None:
    from functions.location.build_data import HOLIDAY_YEARS, public_holidays
    from functions.location.service import public_holidays as served

    expected = {date.fromisoformat(day) for day, _ in public_holidays()}
    assert served() == expected
    assert (
        date(2026, 10, 9) in expected and date(2026, 10, 5) in expected
    )  # 한글날; 개천절 (a Saturday) moved to Monday
    assert date(2026, 10, 14) not in expected
    assert min(expected).year == HOLIDAY_YEARS.start and max(expected).year == HOLIDAY_YEARS.stop - 1


def test_the_data_file_is_what_build_data_makes_from_the_reference_data() -> None:
    import csv
    from pathlib import Path

    from functions.location.build_data import OUT, build

    reference = Path(__file__).resolve().parents[3] / "shared" / "reference-data" / "collection-points.csv.gz"
    if not reference.exists():
        pytest.skip(f"the shared reference data is not beside this checkout ({reference})")
    with OUT.open(encoding="utf-8", newline="") as fh:
        committed = list(csv.DictReader(fh))
    built = build(reference)
    assert built == committed
    assert len(built) == 760 and sum(1 for r in built if r["coordinates"] == "map") == 150
