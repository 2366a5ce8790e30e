"""`eco2 dev` with no news keys (and nothing else configured): the web app's info page works on the
shipped sample articles — the tabs, infinite scroll with the cursor, each article's page and
thumbnail — and says they are samples. Real HTTP against a real `eco2 dev` process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests

from tests.integration.test_eco2_dev import ORIGIN, start_dev, stop

pytestmark = pytest.mark.integration
NEWS_KEYS = ("NAVER_NEWS_CLIENT_ID", "NAVER_NEWS_CLIENT_SECRET", "NEWSDATA_API_KEY", "NEWS_SAMPLES_URL")


def scroll(base: str, category: str | None) -> list[dict[str, object]]:
    """What the info page does: first page of the tab, then `cursor` until has_more is false."""
    out: list[dict[str, object]] = []
    params: dict[str, str | int] = {"limit": 10}
    if category:
        params["category"] = category
    for _ in range(20):
        response = requests.get(f"{base}/api/v1/info/news", params=params, headers={"Origin": ORIGIN}, timeout=10)
        assert response.status_code == 200, response.text
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        body = response.json()
        assert body["meta"]["samples"] is True and body["meta"]["notice"]
        out.extend(body["articles"])
        if not body["has_more"]:
            return out
        params["cursor"] = body["next_cursor"]
    raise AssertionError("the pages never end")


def test_info_page_shows_the_sample_articles_with_tabs_and_scrolling(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "RABBITMQ_URL", "K_SINK", *NEWS_KEYS)
    }
    env["ALLOWED_ORIGINS"] = ORIGIN
    env["ECO2_DEV_DATA"] = str(tmp_path / "data")
    proc, base = start_dev(env, tmp_path)
    try:
        tabs = requests.get(f"{base}/api/v1/info/news/categories", timeout=10).json()["categories"]
        assert [t["id"] for t in tabs] == ["environment", "energy", "ai"]
        everything = scroll(base, None)  # 전체
        assert len(everything) == 34 and len({a["id"] for a in everything}) == 34
        assert all(a["source"] == "sample" for a in everything)
        for tab in tabs:
            articles = scroll(base, str(tab["id"]))
            assert len(articles) > 10 and {a["category"] for a in articles} == {tab["id"]}
        first = everything[0]
        page = requests.get(str(first["url"]), timeout=10)
        assert page.status_code == 200 and "og:image" in page.text and str(first["title"]) in page.text
        image = requests.get(str(first["thumbnail_url"]), timeout=10)
        assert image.status_code == 200 and image.headers["Content-Type"] == "image/svg+xml"
        faq = requests.get(f"{base}/api/v1/info/faq", timeout=10)
        assert faq.status_code == 200 and faq.json()["faqs"]
    finally:
        stop(proc)
