"""The info function's rules without servers: normalising articles, categories, the cursor, og:image,
the shipped data (topics, samples, FAQ) against the disposal rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from eco2.core.errors import BadRequest
from functions.info import guide, samples, service
from functions.info.articles import canonical_url, categorise, parse_published, plain_text, topic_ids, web_url
from functions.info.thumbnails import og_image

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://a.example/x?utm_source=n&utm_medium=m&id=1", "https://a.example/x?id=1"),
        ("https://A.Example:443/x/?b=2&a=1#frag", "https://a.example/x?a=1&b=2"),
        ("http://a.example:8080/x?gclid=1&fbclid=2", "http://a.example:8080/x"),
        ("https://a.example", "https://a.example/"),
        ("javascript:alert(1)", None),
        ("ftp://a.example/x", None),
        ("https://user:pw@a.example/x", None),
        ("not a url", None),
    ],
)
def test_canonical_url(raw: str, expected: str | None) -> None:
    assert canonical_url(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<b>분리배출</b> &quot;꿀팁&quot;", '분리배출 "꿀팁"'),
        ("A &amp; B &lt;b&gt;굵게&lt;/b&gt;", "A & B 굵게"),
        ("  줄\n바꿈\t\t과   공백 ", "줄 바꿈 과 공백"),
        (None, ""),
    ],
)
def test_plain_text(raw: str | None, expected: str) -> None:
    assert plain_text(raw) == expected


def test_plain_text_is_bounded() -> None:
    assert len(plain_text("가" * 1000, 100)) == 100


@pytest.mark.parametrize(
    ("raw", "zone", "expected"),
    [
        ("Tue, 01 Dec 2026 09:00:00 +0900", "Asia/Seoul", datetime(2026, 12, 1, 0, 0, tzinfo=UTC)),
        ("2026-12-01 01:30:15", "UTC", datetime(2026, 12, 1, 1, 30, 15, tzinfo=UTC)),
        ("2026-12-01 10:30:00", "Asia/Seoul", datetime(2026, 12, 1, 1, 30, tzinfo=UTC)),
        ("2026-12-01T01:30:00.123456Z", "UTC", datetime(2026, 12, 1, 1, 30, tzinfo=UTC)),
        ("yesterday-ish", "UTC", NOW),
        (None, "UTC", NOW),
        ("2027-06-01 00:00:00", "UTC", NOW),  # a far-future date is clamped to the collection time
    ],
)
def test_published_times_become_utc(raw: str | None, zone: str, expected: datetime) -> None:
    assert parse_published(raw, assume=zone, now=NOW) == expected


@pytest.mark.parametrize(
    ("title", "snippet", "asked", "category"),
    [
        ("태양광 패널 재활용", "재생에너지 설비", "environment", "energy"),
        ("분리배출 요령", "", "ai", "environment"),
        ("AI 로봇이 페트병을 골라요", "인공지능 선별", "environment", "ai"),
        ("오늘의 소식", "", "energy", "energy"),  # no keyword: the asked category
        ("RAIN and MAIL", "", "environment", "environment"),  # "ai" inside words is not AI
    ],
)
def test_categorise(title: str, snippet: str, asked: str, category: str) -> None:
    assert categorise(title, snippet, asked)[0] == category


def test_cursor_round_trip_and_refusals() -> None:
    article = {"published_at": "2026-12-01T00:00:00+00:00", "seq": 42}
    cursor = service.encode_cursor(article)
    assert service.decode_cursor(cursor) == (datetime(2026, 12, 1, tzinfo=UTC), 42)
    for bad in ("", "!!!", "MTp4Ong", "MTotMTox", "bm9wZQ", "A" * 150):
        with pytest.raises(BadRequest):
            service.decode_cursor(bad)


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ('<meta property="og:image" content="/i/a.jpg">', "https://p.example/i/a.jpg"),
        ('<meta content="https://c.example/b.png" property="OG:IMAGE">', "https://c.example/b.png"),
        ('<meta name="twitter:image" content="//c.example/t.png">', "https://c.example/t.png"),
        ('<meta property="og:image" content="javascript:alert(1)">', None),
        ("<title>nothing</title>", None),
        ('</head><body><meta property="og:image" content="/late.jpg">', None),  # only the head counts
    ],
)
def test_og_image(html: str, expected: str | None) -> None:
    assert og_image(f"<html><head>{html}</head></html>", "https://p.example/news/1") == expected


def test_web_url_only_http() -> None:
    assert web_url("data:image/png;base64,xx") is None
    assert web_url("https://x.example/a.png") == "https://x.example/a.png"


def test_shipped_data_is_consistent() -> None:
    assert topic_ids() == ["environment", "energy", "ai"]
    assert guide.validate() == []
    listed = samples.articles("http://h/dev/info")
    assert {a["category"] for a in listed} == set(topic_ids())
    assert len({a["id"] for a in listed}) == len(listed)
    assert [a["published_at"] for a in listed] == sorted((a["published_at"] for a in listed), reverse=True)


@pytest.mark.parametrize(
    ("words", "category_id"),
    [
        ("다 마신 생수병", "recyclable_clear_pet"),
        ("우유팩", "recyclable_paper_pack"),
        ("택배 상자", "recyclable_paper"),
        ("보조배터리", "recyclable_battery"),
        ("형광등", "recyclable_lighting"),
        ("물티슈", "general"),
    ],
)
def test_item_lookup_by_everyday_words(words: str, category_id: str) -> None:
    assert guide.lookup(words)[0].category_id == category_id


def test_item_lookup_of_nothing_known() -> None:
    assert guide.lookup("?!") == []


def test_the_fetch_allow_list_is_refused_in_production_and_checked_elsewhere() -> None:
    from eco2.core.settings import SettingsError, read_section
    from functions.info.schemas import InfoConfig

    with pytest.raises(SettingsError, match="refused in production"):
        read_section(InfoConfig, {"NEWS_FETCH_ALLOW_NETWORKS": "127.0.0.1/32"})
    with pytest.raises(SettingsError, match="NEWS_FETCH_ALLOW_NETWORKS"):
        read_section(InfoConfig, {"ECO2_ENV": "test", "NEWS_FETCH_ALLOW_NETWORKS": "not-a-network"})
    config = read_section(InfoConfig, {"ECO2_ENV": "test", "NEWS_FETCH_ALLOW_NETWORKS": "127.0.0.1/32, ::1/128"})
    assert config.allow_networks() == ["127.0.0.1/32", "::1/128"]
    assert read_section(InfoConfig, {}).allow_networks() == []
