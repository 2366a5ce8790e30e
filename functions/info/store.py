"""The news table and its two queries: a keyset page, and an insert that skips known URLs.

Order: newest first by `published_at`, then by `seq` (an insertion counter) — a total order on
values that never change after insert, so a keyset cursor `(published_at, seq)` returns every
article that existed when paging started exactly once, whatever is inserted meanwhile (new articles
sort above or below the cursor, never onto a page already returned twice). Migration: 0004_info.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text, select, tuple_
from sqlalchemy.orm import Session

from functions.common.models import UTCDateTime
from functions.info.articles import Candidate

metadata = MetaData()
news_articles = Table(
    "news_articles",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("url_key", String(64), nullable=False, unique=True),
    Column("url", String(2048), nullable=False),
    Column("title", String(500), nullable=False),
    Column("snippet", Text, nullable=False),
    Column("source", String(32), nullable=False),
    Column("source_name", String(200), nullable=False),
    Column("category", String(32), nullable=False),
    Column("keywords", Text, nullable=False),  # a JSON list
    Column("thumbnail_url", String(2048)),
    Column("source_icon_url", String(2048)),
    Column("published_at", UTCDateTime, nullable=False),
    Column("collected_at", UTCDateTime, nullable=False),
    Index("ix_news_articles_order", "published_at", "seq"),
    Index("ix_news_articles_category_order", "category", "published_at", "seq"),
)
Position = tuple[datetime, int]  # (published_at, seq)


def as_article(row: Any) -> dict[str, Any]:
    """A row -> the API's article (plus `seq`, the cursor's tie-breaker, removed before sending)."""
    return {
        "id": row.id,
        "title": row.title,
        "url": row.url,
        "snippet": row.snippet,
        "source": row.source,
        "source_name": row.source_name,
        "published_at": row.published_at.astimezone(UTC).isoformat(),
        "thumbnail_url": row.thumbnail_url,
        "category": row.category,
        "source_icon_url": row.source_icon_url,
        "keywords": json.loads(row.keywords),
        "seq": row.seq,
    }


def page(session: Session, category: str | None, after: Position | None, count: int) -> list[dict[str, Any]]:
    """Up to `count` articles strictly after `after` in the order, newest first."""
    t = news_articles.c
    query = select(news_articles)
    if category is not None:
        query = query.where(t.category == category)
    if after is not None:
        published, seq = after
        # a row comparison: PostgreSQL reads it as one range of the (published_at, seq) index
        query = query.where(tuple_(t.published_at, t.seq) < tuple_(published, seq))
    query = query.order_by(t.published_at.desc(), t.seq.desc()).limit(count)
    return [as_article(row) for row in session.execute(query)]


def known_keys(session: Session, keys: Iterable[str]) -> set[str]:
    wanted = list(set(keys))
    found: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found.update(session.scalars(select(news_articles.c.url_key).where(news_articles.c.url_key.in_(chunk))))
    return found


def insert_new(session: Session, candidate: Candidate, collected_at: datetime) -> bool:
    """Insert unless the URL is known (also against a concurrent run); True when inserted."""
    values = {
        "id": str(uuid.uuid4()),
        "url_key": candidate.url_key,
        "url": candidate.url[:2048],
        "title": candidate.title[:500],
        "snippet": candidate.snippet,
        "source": candidate.source,
        "source_name": candidate.source_name[:200],
        "category": candidate.category,
        "keywords": json.dumps(list(candidate.keywords), ensure_ascii=False),
        "thumbnail_url": candidate.thumbnail_url,
        "source_icon_url": candidate.source_icon_url,
        "published_at": candidate.published_at.replace(microsecond=0),  # the cursor counts whole seconds
        "collected_at": collected_at,
    }
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(news_articles).values(values).on_conflict_do_nothing(index_elements=["url_key"])
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(news_articles).values(values).on_conflict_do_nothing(index_elements=["url_key"])
    result = session.execute(statement)
    return bool(getattr(result, "rowcount", 0))
