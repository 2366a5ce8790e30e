"""News rules, free of HTTP: the keyset cursor, the Redis cache of the first pages, collection.

Cache: the newest HEAD articles of each category (and of all) are kept in Redis as one JSON list
under a key that carries a generation number. A collection that adds articles bumps the
generation after its commit, so readers move to fresh keys at once and a reader that filled an old
key while the collection ran can never be read again (no stale first page after new articles).
A page whose window lies inside the cached head (the first pages, at any limit) is served from
Redis; deeper pages come from PostgreSQL by keyset.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from eco2.core.errors import BadRequest
from functions.info import articles as norm
from functions.info import samples, store
from functions.info.schemas import (
    CollectionReport,
    InfoConfig,
    NewsCategory,
    NewsQuery,
    SourceReport,
)
from functions.info.sources import RateLimited, RawItem, Source, SourceFailed

if TYPE_CHECKING:
    import redis
    from sqlalchemy.orm import Session

    from eco2.core.fetch import Fetcher

log = logging.getLogger("eco2.info")
HEAD = 100  # articles per category kept in the cache: the first pages at any limit up to 50
GENERATION_KEY = "info:news:gen"
LAST_RUN_KEY = "info:news:last-run"
_SEOUL = ZoneInfo("Asia/Seoul")


# -- cursor ------------------------------------------------------------------------------------------


def encode_cursor(article: dict[str, Any]) -> str:
    published = datetime.fromisoformat(article["published_at"])
    raw = f"1:{int(published.timestamp())}:{int(article['seq'])}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> store.Position:
    """(published_at, seq) from an opaque cursor; 400 INVALID_CURSOR for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        version, seconds, seq = raw.split(":")
        if version != "1" or not seconds.isdigit() or not seq.isdigit():
            raise ValueError(raw)
        return datetime.fromtimestamp(int(seconds), UTC), int(seq)
    except (ValueError, UnicodeDecodeError, binascii.Error, OverflowError, OSError):
        raise BadRequest("cursor: not a cursor this API gave out; start again without it.", "INVALID_CURSOR") from None


def _position(article: dict[str, Any]) -> store.Position:
    return datetime.fromisoformat(article["published_at"]), int(article["seq"])


def _after(items: list[dict[str, Any]], position: store.Position | None) -> list[dict[str, Any]]:
    if position is None:
        return items
    return [a for a in items if _position(a) < position]


# -- listing -----------------------------------------------------------------------------------------


def samples_shown(config: InfoConfig) -> bool:
    from functions.info.sources import configured_names

    return bool(config.news_samples_url) and not configured_names(config)


def _head_key(generation: str, category: str | None) -> str:
    return f"info:news:head:{generation}:{category or 'all'}"


def cached_head(
    r: redis.Redis, session_factory: Callable[[], Session], category: str | None, ttl: int, generation: str
) -> tuple[list[dict[str, Any]], bool]:
    """(the newest HEAD + 1 articles of the category, served from the cache)."""
    key = _head_key(generation, category)
    raw = r.get(key)
    if raw is not None:
        return json.loads(raw), True
    session = session_factory()
    head = store.page(session, category, None, HEAD + 1)
    r.set(key, json.dumps(head, ensure_ascii=False, separators=(",", ":")), ex=ttl)
    # where the head ends: a cursor at or past it goes to PostgreSQL without reading the head
    edge = "complete" if len(head) <= HEAD else encode_cursor(head[-1])
    r.set(_edge_key(generation, category), edge, ex=ttl)
    return head, False


def _edge_key(generation: str, category: str | None) -> str:
    return f"info:news:edge:{generation}:{category or 'all'}"


def _past_the_head(r: redis.Redis, generation: str, category: str | None, position: store.Position) -> bool:
    edge = r.get(_edge_key(generation, category))
    return edge is not None and edge != "complete" and position <= decode_cursor(str(edge))


def _render(window: list[dict[str, Any]], limit: int, category: str | None, served: str) -> str:
    """The page as the JSON the API sends (the shape of schemas.NewsPage, built without models:
    the articles are API-shaped already, and this is the hot path)."""
    has_more = len(window) > limit
    items = window[:limit]
    body = {
        "articles": [{k: v for k, v in a.items() if k != "seq"} for a in items],
        "next_cursor": encode_cursor(items[-1]) if has_more and items else None,
        "has_more": has_more,
        "meta": {
            "category": category,
            "limit": limit,
            "samples": served == "samples",
            "served_from": served,
            "notice": samples.NOTICE if served == "samples" else None,
        },
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def news_page(r: redis.Redis, session_factory: Callable[[], Session], config: InfoConfig, query: NewsQuery) -> str:
    """One page of `GET /news` as its JSON body. A first page (no cursor) is kept rendered in Redis
    for each category and limit; other pages inside the cached head are cut from it; the rest is a
    keyset query."""
    category: NewsCategory | None = None if query.category == "all" else query.category
    position = decode_cursor(query.cursor) if query.cursor else None
    limit = query.limit
    if samples_shown(config):
        assert config.news_samples_url is not None
        pool = [a for a in samples.articles(config.news_samples_url) if category in (None, a["category"])]
        return _render(_after(pool, position)[: limit + 1], limit, category, "samples")
    if not config.news_cache:
        return _render(store.page(session_factory(), category, position, limit + 1), limit, category, "database")
    generation = str(r.get(GENERATION_KEY) or "0")
    page_key = f"info:news:page:{generation}:{category or 'all'}:{limit}"
    if position is None:
        rendered = r.get(page_key)
        if rendered is not None:
            return str(rendered)
    elif _past_the_head(r, generation, category, position):
        return _render(store.page(session_factory(), category, position, limit + 1), limit, category, "database")
    head, hit = cached_head(r, session_factory, category, config.news_cache_ttl, generation)
    rest = _after(head, position)
    if len(rest) > limit or len(head) <= HEAD:  # inside the head, or the head is the whole category
        window = rest[: limit + 1]
        if position is None:
            r.set(page_key, _render(window, limit, category, "cache"), ex=config.news_cache_ttl)
        return _render(window, limit, category, "cache" if hit else "database")
    return _render(store.page(session_factory(), category, position, limit + 1), limit, category, "database")


def invalidate(r: redis.Redis) -> int:
    """After new articles are committed: every reader moves to fresh cache keys."""
    return int(r.incr(GENERATION_KEY))


# -- collection --------------------------------------------------------------------------------------


class Budget:
    """A source's daily request budget in Redis (the day in Korea, when the sources reset), shared
    by every pod: a request is made only after its unit is taken."""

    def __init__(self, r: redis.Redis, source: str, limit: int, now: Callable[[], datetime]) -> None:
        self.r = r
        self.source = source
        self.limit = limit
        self.now = now

    def key(self) -> str:
        return f"info:news:budget:{self.source}:{self.now().astimezone(_SEOUL):%Y%m%d}"

    def take(self) -> bool:
        key = self.key()
        used = int(self.r.incr(key))
        if used == 1:
            self.r.expire(key, int(timedelta(days=2).total_seconds()))
        if used > self.limit:
            self.r.decr(key)
            return False
        return True

    def used(self) -> int:
        return int(self.r.get(self.key()) or 0)


def _normalise(source: Source, item: RawItem, asked: str, now: datetime) -> norm.Candidate | None:
    canonical = norm.canonical_url(item.url)
    if canonical is None:
        return None
    title = norm.plain_text(item.title, 300)
    if not title:
        return None
    snippet = norm.plain_text(item.snippet, 400)
    category, keywords = norm.categorise(title, snippet, asked)
    return norm.Candidate(
        url=canonical,
        url_key=norm.url_key(canonical),
        title=title,
        snippet=snippet,
        source=source.name,
        source_name=norm.plain_text(item.source_name, 200) or norm.host_name(canonical),
        published_at=norm.parse_published(item.published, assume=item.published_zone, now=now),
        category=category,
        keywords=keywords,
        thumbnail_url=norm.web_url(item.image_url),
        source_icon_url=norm.web_url(item.icon_url),
    )


def gather(
    r: redis.Redis, source: Source, categories: list[str], now: Callable[[], datetime]
) -> tuple[list[norm.Candidate], SourceReport]:
    """Ask one source for every query of the categories, within its budget; never raises."""
    report = SourceReport(source=source.name)
    budget = Budget(r, source.name, source.daily_budget, now)
    found: list[norm.Candidate] = []
    for topic in norm.topics():
        if topic.id not in categories:
            continue
        for query in source.plan(topic.queries):
            if not budget.take():
                report.status, report.error = "budget_exhausted", f"daily budget of {source.daily_budget} used"
                return found, report
            report.requests += 1
            try:
                items = source.search(query)
            except RateLimited as exc:
                report.status, report.error = "rate_limited", str(exc)
                return found, report
            except SourceFailed as exc:
                report.status, report.error = "failed", str(exc)
                return found, report
            except Exception as exc:  # an adapter bug must not stop the other sources
                log.exception("news source failed", extra={"source": source.name})
                report.status, report.error = "failed", type(exc).__name__
                return found, report
            report.fetched += len(items)
            for item in items:
                candidate = _normalise(source, item, topic.id, now())
                if candidate is not None:
                    found.append(candidate)
    return found, report


def collect(
    r: redis.Redis,
    session: Session,
    sources: list[Source],
    categories: list[str],
    fetcher: Fetcher,
    *,
    workers: int = 8,
    thumbnail_seconds: float = 20.0,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> CollectionReport:
    """One collection run: every source (one failing never stops the others), dedupe by canonical
    URL within the run and against the table, thumbnails from og:image for the new ones without
    an image, insert. The caller commits, then calls `invalidate` when anything was added."""
    started = now()
    wanted = [c for c in categories if c in norm.topic_ids()] or norm.topic_ids()
    if not sources:
        return CollectionReport(
            started_at=started,
            finished_at=now(),
            categories=wanted,
            sources=[],
            added=0,
            note="no news source is configured (NAVER_NEWS_CLIENT_ID/SECRET, NEWSDATA_API_KEY)",
        )
    reports: list[SourceReport] = []
    batch: dict[str, norm.Candidate] = {}
    for source in sources:
        found, report = gather(r, source, wanted, now)
        for candidate in found:
            if candidate.url_key in batch:
                report.duplicates += 1
            else:
                batch[candidate.url_key] = candidate
        reports.append(report)
    known = store.known_keys(session, batch)
    fresh = [c for key, c in batch.items() if key not in known]
    by_source = {rep.source: rep for rep in reports}
    for key in known:
        by_source[batch[key].source].duplicates += 1
    needing = [c for c in fresh if c.thumbnail_url is None]
    if needing:
        images = thumbnails_within(fetcher, needing, workers, thumbnail_seconds)
        fresh = [c if c.thumbnail_url else _with_thumbnail(c, images.get(c.url_key)) for c in fresh]
    collected_at = now()
    for candidate in sorted(fresh, key=lambda c: c.published_at):
        report = by_source[candidate.source]
        if store.insert_new(session, candidate, collected_at):
            report.added += 1
            report.thumbnails += candidate.thumbnail_url is not None
        else:
            report.duplicates += 1  # a concurrent run stored it first
    return CollectionReport(
        started_at=started,
        finished_at=now(),
        categories=wanted,
        sources=reports,
        added=sum(rep.added for rep in reports),
    )


def thumbnails_within(
    fetcher: Fetcher, candidates: list[norm.Candidate], workers: int, seconds: float
) -> dict[str, str | None]:
    """og:image of each candidate's page, fetched `workers` at a time; whatever is not known after
    `seconds` stays empty, so a run of slow pages cannot hold the delivery past its timeout."""
    from concurrent.futures import wait

    from functions.info.thumbnails import thumbnail

    pool = ThreadPoolExecutor(max_workers=min(workers, len(candidates)), thread_name_prefix="og-image")
    futures = {pool.submit(thumbnail, fetcher, c.url): c.url_key for c in candidates}
    done, _late = wait(futures, timeout=seconds)
    pool.shutdown(wait=False, cancel_futures=True)  # started fetches end within the fetcher's own bound
    return {futures[f]: f.result() if f.exception() is None else None for f in done}


def _with_thumbnail(candidate: norm.Candidate, url: str | None) -> norm.Candidate:
    from dataclasses import replace

    return replace(candidate, thumbnail_url=url)


def remember(r: redis.Redis, report: CollectionReport) -> None:
    r.set(LAST_RUN_KEY, report.model_dump_json(), ex=int(timedelta(days=7).total_seconds()))
