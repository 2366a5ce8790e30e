"""info function: thin handlers (decode → service → encode).

News (`/api/v1/info/news`, API.md "info") is collected on a schedule: a PingSource (the local
scheduler in `eco2 dev`) emits `eco2.info.news.collection-scheduled.v1` every 30 minutes and the
handler below collects from the configured sources. Recycling information
(`/api/v1/info/recycling/...`, `/api/v1/info/faq`) is the project's own data, shared with the chatbot
through functions/info/guide.py.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from werkzeug.wrappers import Response

from eco2 import Context, Event, Function
from eventing.catalogue import INFO_NEWS_DUE, NewsCollectionScheduled
from functions.info import guide, service
from functions.info.articles import topics
from functions.info.schemas import (
    Categories,
    Category,
    FaqList,
    FaqQuery,
    InfoConfig,
    ItemLookup,
    ItemQuery,
    NewsPage,
    NewsQuery,
    RecyclingCategories,
    RecyclingCategoryDetail,
)

fn = Function(
    "info",
    uses=("db", "redis"),
    config=InfoConfig,
    description="Recycling news collected on a schedule; recycling categories, item lookup and FAQ.",
)
log = logging.getLogger("eco2.info")


def _config(ctx: Context) -> InfoConfig:
    config: InfoConfig = ctx.config
    return config


@fn.get("/api/v1/info/news", query=NewsQuery, response=NewsPage)
def news(ctx: Context, query: NewsQuery) -> Response:
    """Articles newest first (environment, energy, ai or all), keyset cursor; first pages from Redis."""
    body = service.news_page(ctx.redis, lambda: ctx.db, _config(ctx), query)
    return Response(body, content_type="application/json")


@fn.get("/api/v1/info/news/categories", response=Categories)
def news_categories(ctx: Context) -> Categories:
    """The news categories (tabs), in order."""
    return Categories(categories=[Category(id=t.id, name=t.name) for t in topics()])


@fn.get("/api/v1/info/recycling/categories", response=RecyclingCategories)
def recycling_categories(ctx: Context) -> RecyclingCategories:
    """Every disposal category with its summary, examples and how-to steps (the project's rules)."""
    return RecyclingCategories(categories=guide.categories())


@fn.get("/api/v1/info/recycling/categories/{category_id}", response=RecyclingCategoryDetail)
def recycling_category(ctx: Context, category_id: str) -> RecyclingCategoryDetail:
    """One disposal category: steps, targets, per-item steps, exceptions and related FAQ ids (404 if unknown)."""
    return guide.category(category_id)


@fn.get("/api/v1/info/recycling/items", query=ItemQuery, response=ItemLookup)
def recycling_items(ctx: Context, query: ItemQuery) -> ItemLookup:
    """Look an item up by everyday words (q=과자 봉지): its category and how to dispose of it."""
    return ItemLookup(query=query.q, matches=guide.lookup(query.q, query.limit))


@fn.get("/api/v1/info/faq", query=FaqQuery, response=FaqList)
def faq(ctx: Context, query: FaqQuery) -> FaqList:
    """Frequently asked disposal questions, optionally filtered by words (q) or a category id."""
    return FaqList(faqs=guide.faqs(query.q, query.category))


@fn.event(INFO_NEWS_DUE, data=NewsCollectionScheduled)
def collect_news(ctx: Context, event: Event[NewsCollectionScheduled]) -> None:
    """A schedule tick: collect from every configured source (deduplicated delivery, idempotent insert)."""
    import requests

    from eco2.core.fetch import Fetcher
    from functions.info.sources import configured

    config = _config(ctx)
    fetcher = Fetcher(
        timeout=config.news_thumbnail_timeout,
        max_bytes=config.news_thumbnail_max_bytes,
        allow_networks=config.allow_networks(),
    )
    with requests.Session() as session:
        report = service.collect(
            ctx.redis,
            ctx.db,
            configured(session, config),
            list(event.data.categories),
            fetcher,
            workers=config.news_thumbnail_workers,
            thumbnail_seconds=config.news_thumbnails_seconds,
        )
    ctx.db.commit()  # the articles (and this delivery's dedupe record) first, then the cache moves on
    if report.added:
        service.invalidate(ctx.redis)
    service.remember(ctx.redis, report)
    log.info(
        "news collected",
        extra={
            "added": report.added,
            "sources": {s.source: {"added": s.added, "status": s.status} for s in report.sources},
            "note": report.note,
        },
    )


@fn.on_startup
def _check_data(_clients: Any) -> None:
    problems = guide.validate()
    if problems:
        raise RuntimeError("info data is inconsistent:\n  - " + "\n  - ".join(problems))


@fn.dev_mount("/dev/info", env=lambda base_url: {"NEWS_SAMPLES_URL": f"{base_url}/dev/info"})
def _samples_stand_in(env: Mapping[str, str]) -> Any:
    """Sample article pages and thumbnails for `eco2 dev` while no news source is configured."""
    from functions.info.samples import stand_in

    return stand_in(env.get("NEWS_SAMPLES_URL") or "/dev/info")
