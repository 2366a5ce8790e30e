"""The info function on real PostgreSQL and Redis, with the news sources played by local HTTP
stand-ins (tests/support/news_server.py): pages, cursor and cache; collection (dedupe, budgets,
outages, og:image and SSRF); samples; recycling information."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis as redis_lib
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from eco2.core.db import normalise_url
from eco2.serving.testing import FunctionClient
from eventing.catalogue import INFO_NEWS_DUE
from functions.info import service, store
from functions.info.articles import Candidate, canonical_url, url_key
from functions.info.schemas import NewsPage
from tests.support.news_server import NewsServer, naver_item, newsdata_item

pytestmark = pytest.mark.integration
Make = Callable[..., FunctionClient]
NEWSDATA_ENV_Q = "분리배출 OR 재활용 OR 자원순환"


@pytest.fixture
def news() -> Iterator[NewsServer]:
    server = NewsServer()
    yield server
    server.close()


@pytest.fixture
def r(redis_url: str) -> redis_lib.Redis:
    return redis_lib.Redis.from_url(redis_url, decode_responses=True)


@pytest.fixture
def db(clean_db: str) -> Iterator[Callable[[], Session]]:
    engine = create_engine(normalise_url(clean_db))
    yield lambda: Session(engine)
    engine.dispose()


def info(function_client: Make, **env: str) -> FunctionClient:
    return function_client("info", **env)


def seed(db: Callable[[], Session], published: list[datetime], category: str = "environment") -> list[str]:
    """Store articles directly (as a collection would), returning their urls."""
    urls = []
    with db() as session:
        for when in published:
            url = f"https://news.example/{uuid.uuid4().hex}"
            candidate = Candidate(
                url=url,
                url_key=url_key(url),
                title=f"기사 {when.isoformat()}",
                snippet="분리배출 이야기",
                source="naver",
                source_name="news.example",
                published_at=when,
                category=category,
                keywords=("분리배출",),
            )
            assert store.insert_new(session, candidate, datetime.now(UTC))
            urls.append(url)
        session.commit()
    return urls


def collect(client: FunctionClient, r: redis_lib.Redis, event_id: str | None = None) -> dict[str, Any]:
    # exactly as a PingSource tick arrives: fixed type, the catalogue type in the eco2type extension
    response = client.cloudevent(
        "dev.knative.sources.ping",
        {"categories": ["environment", "energy", "ai"]},
        source="/apis/v1/namespaces/eco2/pingsources/info-news",
        event_id=event_id,
        extensions={"eco2type": INFO_NEWS_DUE},
    )
    assert response.status_code == 200, response.text
    return dict(json.loads(r.get(service.LAST_RUN_KEY) or "{}"))


def by_source(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["source"]: s for s in report["sources"]}


def all_pages(client: FunctionClient, limit: int, category: str | None = None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(200):
        params = (
            f"limit={limit}" + (f"&category={category}" if category else "") + (f"&cursor={cursor}" if cursor else "")
        )
        body = client.get(f"/api/v1/info/news?{params}").json
        NewsPage.model_validate(body)  # the documented shape (the hot path builds it without models)
        out.extend(body["articles"])
        if not body["has_more"]:
            assert body["next_cursor"] is None
            return out
        cursor = body["next_cursor"]
    raise AssertionError("the pages never end")


# -- pages, cursor, cache ----------------------------------------------------------------------------


def test_pages_are_newest_first_and_keyset_cursor_covers_everything_once(
    function_client: Make, db: Callable[[], Session]
) -> None:
    base = datetime(2026, 11, 30, 12, tzinfo=UTC)
    # ties on published_at on purpose: the order still is total
    seed(db, [base - timedelta(minutes=i // 3) for i in range(23)])
    seed(db, [base - timedelta(minutes=5)], category="energy")
    client = info(function_client)
    articles = all_pages(client, 4)
    assert len(articles) == 24 and len({a["id"] for a in articles}) == 24
    stamps = [a["published_at"] for a in articles]
    assert stamps == sorted(stamps, reverse=True)
    assert [a["category"] for a in all_pages(client, 10, "energy")] == ["energy"]
    assert len(all_pages(client, 50, "environment")) == 23
    first = client.get("/api/v1/info/news?limit=10").json
    assert set(first["articles"][0]) == {
        "id",
        "title",
        "url",
        "snippet",
        "source",
        "source_name",
        "published_at",
        "thumbnail_url",
        "category",
        "source_icon_url",
        "keywords",
    }
    assert first["has_more"] is True and first["meta"]["samples"] is False


def test_pagination_is_stable_under_concurrent_inserts(
    function_client: Make, db: Callable[[], Session], r: redis_lib.Redis
) -> None:
    """While a reader scrolls, a writer keeps inserting articles newer than everything, older than
    everything, and at exactly the timestamps being paged (and moves the cache on each time): every
    article that existed when scrolling began is returned exactly once."""
    base = datetime(2026, 11, 30, 12, tzinfo=UTC)
    existing_times = [base - timedelta(minutes=i // 2) for i in range(140)]  # deeper than the cached head
    initial = set(seed(db, existing_times))
    client = info(function_client)
    stop = threading.Event()
    inserted: list[str] = []

    def writer() -> None:
        rng = random.Random(7)
        while not stop.is_set():
            when = rng.choice(
                [base + timedelta(minutes=rng.randint(1, 60)), base - timedelta(days=2), rng.choice(existing_times)]
            )
            inserted.extend(seed(db, [when]))
            service.invalidate(r)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen: list[str] = []
        served: set[str] = set()
        cursor: str | None = None
        for _ in range(200):  # bounded: a cursor that does not advance fails instead of hanging
            body = client.get("/api/v1/info/news?limit=9" + (f"&cursor={cursor}" if cursor else "")).json
            seen.extend(a["url"] for a in body["articles"])
            served.add(body["meta"]["served_from"])
            if not body["has_more"]:
                break
            cursor = body["next_cursor"]
    finally:
        stop.set()
        thread.join()
    assert len(inserted) > 10  # the writer really ran meanwhile
    assert len(seen) == len(set(seen)), "an article came twice"
    assert initial <= set(seen), f"{len(initial - set(seen))} articles were skipped"
    assert served == {"database", "cache"} or served == {"database"}


def test_first_pages_come_from_the_cache_and_collection_refreshes_it(
    function_client: Make, db: Callable[[], Session], r: redis_lib.Redis, news: NewsServer
) -> None:
    seed(db, [datetime(2026, 11, 30, 12, tzinfo=UTC) - timedelta(hours=i) for i in range(30)])
    client = info(function_client, **news.env())
    first = client.get("/api/v1/info/news?limit=10").json
    assert first["meta"]["served_from"] == "database"
    again = client.get("/api/v1/info/news?limit=10").json
    assert again["meta"]["served_from"] == "cache" and again["articles"] == first["articles"]
    second = client.get(f"/api/v1/info/news?limit=10&cursor={again['next_cursor']}").json
    assert second["meta"]["served_from"] == "cache"  # still inside the cached head
    assert client.get("/api/v1/info/news?limit=10&category=environment").json["meta"]["served_from"] == "database"
    fresh = news.page("fresh")
    news.naver.items["분리배출"] = [
        naver_item("방금 들어온 <b>분리배출</b> 소식", fresh, "Tue, 01 Dec 2026 09:00:00 +0900")
    ]
    assert collect(client, r)["added"] == 1
    after = client.get("/api/v1/info/news?limit=10").json
    assert after["meta"]["served_from"] == "database"
    assert after["articles"][0]["title"] == "방금 들어온 분리배출 소식"
    assert client.get("/api/v1/info/news?limit=10").json["meta"]["served_from"] == "cache"


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("cursor=not-a-cursor", 400, "INVALID_CURSOR"),
        ("cursor=MTp4Ong", 400, "INVALID_CURSOR"),  # "1:x:x"
        ("cursor=Mjo1OjE", 400, "INVALID_CURSOR"),  # "2:5:1", an unknown version
        ("limit=0", 422, "VALIDATION_ERROR"),
        ("limit=51", 422, "VALIDATION_ERROR"),
        ("category=sports", 422, "VALIDATION_ERROR"),
    ],
)
def test_bad_queries_are_4xx_in_the_error_shape(function_client: Make, query: str, status: int, code: str) -> None:
    response = info(function_client).get(f"/api/v1/info/news?{query}")
    assert response.status_code == status
    assert response.json["code"] == code and response.json["detail"]


def test_categories(function_client: Make) -> None:
    body = info(function_client).get("/api/v1/info/news/categories").json
    assert body == {
        "categories": [
            {"id": "environment", "name": "환경"},
            {"id": "energy", "name": "에너지"},
            {"id": "ai", "name": "AI"},
        ]
    }


# -- collection --------------------------------------------------------------------------------------


def script_sources(news: NewsServer) -> dict[str, str]:
    pages = {
        "a": news.page("a", image="/img/a.jpg"),
        "b": news.page("b", image="https://cdn.example/b.png"),
        "f": news.page("f", image=None),
        "t": news.page("t", image="/img/t.jpg", twitter=True),
    }
    news.naver.items["분리배출"] = [
        naver_item(
            "<b>분리배출</b> &quot;제대로&quot; 하는 법",
            pages["a"] + "?utm_source=naver&utm_medium=news",
            "Tue, 01 Dec 2026 09:00:00 +0900",
            "헷갈리는 <b>분리배출</b>, 이렇게 &amp; 저렇게",
        ),
        naver_item("이미지 없는 페이지", pages["f"], "Tue, 01 Dec 2026 08:00:00 +0900", "분리배출 안내"),
    ]
    news.naver.items["재활용"] = [
        # found by an environment query, but about energy
        naver_item(
            "폐 태양광 패널, 재생에너지 시대의 숙제", pages["b"], "Tue, 01 Dec 2026 07:00:00 +0900", "패널 재활용"
        ),
        naver_item("트위터 카드만 있는 기사", pages["t"], "Tue, 01 Dec 2026 06:00:00 +0900", "재활용"),
    ]
    news.naver.items["AI 재활용"] = [
        naver_item(
            "AI 선별 로봇 (메타데이터)",
            "http://169.254.169.254/latest/meta-data/iam",
            "Tue, 01 Dec 2026 05:00:00 +0900",
        ),
        naver_item(
            "AI 재활용 (내부망으로 넘기는 기사)",
            f"{news.base_url}/redirect?to=http://10.0.0.1/admin",
            "Tue, 01 Dec 2026 04:00:00 +0900",
        ),
    ]
    news.newsdata.items[NEWSDATA_ENV_Q] = [
        # the same article as Naver's first, another tracking parameter and a fragment
        newsdata_item("분리배출 제대로 하는 법", pages["a"] + "?fbclid=abc#comments", "2026-12-01 00:00:00"),
        newsdata_item(
            "자원순환 센터 문 열어",
            "https://econews.example/2026/12/center",
            "2026-12-01 02:30:00",
            "폐기물 자원순환",
            image="https://econews.example/center.jpg",
        ),
    ]
    return pages


def test_collection_normalises_dedupes_and_fetches_thumbnails(
    function_client: Make, r: redis_lib.Redis, news: NewsServer
) -> None:
    pages = script_sources(news)
    client = info(function_client, **news.env())
    report = collect(client, r)
    sources = by_source(report)
    assert sources["naver"]["status"] == "ok" and sources["naver"]["requests"] == 9  # 3 categories x 3 queries
    assert sources["newsdata"]["status"] == "ok" and sources["newsdata"]["requests"] == 3  # one per category
    assert sources["naver"]["added"] == 6 and sources["newsdata"]["added"] == 1
    assert sources["newsdata"]["duplicates"] == 1  # the same article as Naver's, by canonical URL
    assert report["added"] == 7
    assert news.newsdata.requests[0]["q"] == NEWSDATA_ENV_Q and news.newsdata.requests[0]["language"] == "ko"

    articles = {a["title"]: a for a in all_pages(client, 50)}
    assert len(articles) == 7
    a = articles['분리배출 "제대로" 하는 법']  # markup and entities gone
    assert a["snippet"] == "헷갈리는 분리배출 , 이렇게 & 저렇게"
    assert a["url"] == pages["a"]  # tracking parameters stripped
    assert datetime.fromisoformat(a["published_at"]) == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)  # KST -> UTC
    assert a["thumbnail_url"] == f"{news.base_url}/img/a.jpg"  # og:image, made absolute
    assert a["category"] == "environment" and "분리배출" in a["keywords"] and a["source"] == "naver"
    assert a["source_name"] == "127.0.0.1"
    energy = articles["폐 태양광 패널, 재생에너지 시대의 숙제"]
    assert energy["category"] == "energy" and energy["thumbnail_url"] == "https://cdn.example/b.png"
    assert articles["트위터 카드만 있는 기사"]["thumbnail_url"] == f"{news.base_url}/img/t.jpg"
    assert articles["이미지 없는 페이지"]["thumbnail_url"] is None
    # SSRF targets: the articles are kept, their pages are never fetched from inside
    assert articles["AI 선별 로봇 (메타데이터)"]["thumbnail_url"] is None
    assert articles["AI 선별 로봇 (메타데이터)"]["category"] == "ai"
    assert articles["AI 재활용 (내부망으로 넘기는 기사)"]["thumbnail_url"] is None
    center = articles["자원순환 센터 문 열어"]
    assert center["source"] == "newsdata" and center["source_name"] == "에코뉴스"
    assert center["thumbnail_url"] == "https://econews.example/center.jpg"  # the source's image: no page fetch
    assert center["source_icon_url"] == "https://econews.example/icon.png"
    assert datetime.fromisoformat(center["published_at"]) == datetime(2026, 12, 1, 2, 30, tzinfo=UTC)
    assert {"a", "f", "b", "t"} <= set(news.page_hits)


def test_dedupe_across_runs_and_redeliveries(
    function_client: Make, r: redis_lib.Redis, news: NewsServer, db: Callable[[], Session]
) -> None:
    script_sources(news)
    client = info(function_client, **news.env())
    assert collect(client, r, event_id="tick-1")["added"] == 7
    asked = len(news.naver.requests)
    second = collect(client, r, event_id="tick-2")  # a later tick finds the same articles
    assert second["added"] == 0 and by_source(second)["naver"]["duplicates"] == 6
    assert len(news.naver.requests) == 2 * asked
    r.delete(service.LAST_RUN_KEY)
    collect(client, r, event_id="tick-2")  # the broker redelivers tick-2: not run again
    assert r.get(service.LAST_RUN_KEY) is None and len(news.naver.requests) == 2 * asked
    with db() as session:
        assert session.scalar(select(func.count()).select_from(store.news_articles)) == 7


def test_daily_budgets_are_kept_in_redis_and_respected(
    function_client: Make, r: redis_lib.Redis, news: NewsServer
) -> None:
    script_sources(news)
    client = info(function_client, **news.env(), NAVER_NEWS_DAILY_BUDGET="4", NEWSDATA_DAILY_BUDGET="1")
    report = by_source(collect(client, r))
    assert report["naver"]["status"] == "budget_exhausted" and report["naver"]["requests"] == 4
    assert report["newsdata"]["status"] == "budget_exhausted" and report["newsdata"]["requests"] == 1
    assert len(news.naver.requests) == 4 and len(news.newsdata.requests) == 1
    keys = sorted(r.scan_iter("info:news:budget:*"))
    assert [k.split(":")[3] for k in keys] == ["naver", "newsdata"]
    assert [int(r.get(k) or 0) for k in keys] == [4, 1] and all(0 < r.ttl(k) <= 2 * 86400 for k in keys)
    again = by_source(collect(client, r))  # the same day: nothing more is asked
    assert again["naver"]["requests"] == 0 and again["newsdata"]["requests"] == 0
    assert len(news.naver.requests) == 4 and len(news.newsdata.requests) == 1


@pytest.mark.parametrize(
    ("failing", "mode", "status"),
    [
        ("naver", "down", "failed"),
        ("naver", "rate_limited", "rate_limited"),
        ("naver", "unauthorized", "failed"),
        ("newsdata", "down", "failed"),
        ("newsdata", "rate_limited", "rate_limited"),
        ("newsdata", "garbage", "failed"),
    ],
)
def test_one_failing_source_never_stops_the_other(
    function_client: Make, r: redis_lib.Redis, news: NewsServer, failing: str, mode: str, status: str
) -> None:
    script_sources(news)
    getattr(news, failing).mode = mode
    client = info(function_client, **news.env())
    report = by_source(collect(client, r))
    other = "newsdata" if failing == "naver" else "naver"
    assert report[failing]["status"] == status and report[failing]["added"] == 0
    assert report[failing]["requests"] == 1  # it is not asked again in the same run
    assert report[other]["status"] == "ok" and report[other]["added"] > 0
    assert all(a["source"] == other for a in all_pages(client, 50))


def test_without_the_allow_list_no_local_page_is_fetched(
    function_client: Make, r: redis_lib.Redis, news: NewsServer
) -> None:
    script_sources(news)
    env = {**news.env(), "NEWS_FETCH_ALLOW_NETWORKS": ""}
    client = info(function_client, **env)
    assert collect(client, r)["added"] == 7
    assert news.page_hits == []  # 127.0.0.1 is refused like any private address
    thumbnails = {a["title"]: a["thumbnail_url"] for a in all_pages(client, 50)}
    assert thumbnails['분리배출 "제대로" 하는 법'] is None
    assert thumbnails["자원순환 센터 문 열어"] == "https://econews.example/center.jpg"


def test_slow_pages_cannot_hold_a_collection_run(function_client: Make, r: redis_lib.Redis, news: NewsServer) -> None:
    """Twenty pages that trickle for 30 s each: the run stops waiting for thumbnails after
    NEWS_THUMBNAILS_SECONDS and stores the articles without them."""
    news.naver.items["분리배출"] = [
        naver_item(f"느린 페이지 {i}", f"{news.base_url}/slow?i={i}", "Tue, 01 Dec 2026 09:00:00 +0900")
        for i in range(20)
    ]
    client = info(function_client, **news.env(), NEWS_THUMBNAIL_TIMEOUT="10", NEWS_THUMBNAILS_SECONDS="1")
    started = time.monotonic()
    report = collect(client, r)
    assert time.monotonic() - started < 5
    assert by_source(report)["naver"]["added"] == 20 and by_source(report)["naver"]["thumbnails"] == 0
    assert all(a["thumbnail_url"] is None for a in all_pages(client, 50))


def test_no_source_configured(function_client: Make, r: redis_lib.Redis) -> None:
    client = info(function_client)
    report = collect(client, r)
    assert report["added"] == 0 and report["sources"] == []
    assert "no news source is configured" in report["note"]
    body = client.get("/api/v1/info/news").json
    assert body["articles"] == [] and body["has_more"] is False and body["meta"]["samples"] is False


def test_samples_when_no_source_is_configured_and_only_then(function_client: Make, news: NewsServer) -> None:
    samples_url = "http://127.0.0.1:8000/dev/info"
    client = info(function_client, NEWS_SAMPLES_URL=samples_url)
    first = client.get("/api/v1/info/news?limit=10").json
    assert first["meta"]["samples"] is True and first["meta"]["served_from"] == "samples" and first["meta"]["notice"]
    assert all(a["source"] == "sample" and "샘플" in a["keywords"] for a in first["articles"])
    assert all(a["url"].startswith(samples_url + "/samples/") for a in first["articles"])
    everything = all_pages(client, 10)
    assert len(everything) == 34 and len({a["id"] for a in everything}) == 34
    for category in ("environment", "energy", "ai"):
        tab = all_pages(client, 10, category)
        assert len(tab) > 10 and {a["category"] for a in tab} == {category}  # more than one page per tab
    configured = info(function_client, NEWS_SAMPLES_URL=samples_url, **news.env())
    assert configured.get("/api/v1/info/news").json["meta"]["samples"] is False


# -- recycling information ---------------------------------------------------------------------------


def test_recycling_categories_items_and_faq(function_client: Make) -> None:
    client = info(function_client)
    categories = client.get("/api/v1/info/recycling/categories").json["categories"]
    assert len(categories) == 18 and all(c["steps"] for c in categories)
    assert categories[0]["major"] == "재활용폐기물"
    pet = client.get("/api/v1/info/recycling/categories/recyclable_clear_pet").json
    assert pet["middle"] == "무색페트병" and "pet-vs-plastic" in pet["faq"] and pet["excluded"]
    missing = client.get("/api/v1/info/recycling/categories/nope")
    assert missing.status_code == 404 and missing.json["code"] == "CATEGORY_NOT_FOUND"
    matches = client.get("/api/v1/info/recycling/items?q=과자 봉지 어떻게 버려요").json["matches"]
    assert matches[0]["category_id"] == "recyclable_vinyl" and matches[0]["steps"]
    assert client.get("/api/v1/info/recycling/items?q=").status_code == 422
    battery = client.get("/api/v1/info/faq?category=recyclable_battery").json["faqs"]
    assert [f["id"] for f in battery] == ["battery"]
    assert [f["id"] for f in client.get("/api/v1/info/faq?q=우유팩").json["faqs"]] == ["paper-pack"]
    assert len(client.get("/api/v1/info/faq").json["faqs"]) >= 12


def test_openapi_documents_every_info_route(function_client: Make) -> None:
    paths = info(function_client).get("/openapi.json").json["paths"]
    wanted = {
        "/api/v1/info/news",
        "/api/v1/info/news/categories",
        "/api/v1/info/recycling/categories",
        "/api/v1/info/recycling/categories/{category_id}",
        "/api/v1/info/recycling/items",
        "/api/v1/info/faq",
    }
    assert wanted <= set(paths)
    for path in wanted:
        assert paths[path]["get"]["summary"], path


def test_canonical_urls_are_the_dedupe_key() -> None:
    same = [
        "https://News.Example.com/a/b/?utm_source=x&id=3&fbclid=y#top",
        "http://news.example.com:80/a/b?id=3",
        "https://news.example.com/a/b?id=3&utm_campaign=z",
    ]
    canon = {canonical_url(u) for u in same}
    assert len({url_key(c or "") for c in canon}) == 1
    assert url_key(canonical_url("https://news.example.com/a/b?id=4") or "") not in {url_key(c or "") for c in canon}
