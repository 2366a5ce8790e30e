"""The info function's settings section and HTTP shapes (API.md "info")."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

NewsCategory = Literal["environment", "energy", "ai"]


class InfoConfig(BaseModel):
    """Read once at startup (`Function(config=...)`): field `foo_bar` comes from `FOO_BAR`.

    A source is configured when its credentials are set; with none configured, collection says so
    and, in `eco2 dev`, the page shows the shipped sample articles (NEWS_SAMPLES_URL)."""

    model_config = ConfigDict(extra="ignore")

    naver_news_client_id: str | None = None
    naver_news_client_secret: SecretStr | None = None
    naver_news_url: str = "https://openapi.naver.com/v1/search/news.json"
    naver_news_daily_budget: int = Field(default=25_000, ge=0)
    newsdata_api_key: SecretStr | None = None
    newsdata_url: str = "https://newsdata.io/api/1/latest"
    newsdata_daily_budget: int = Field(default=200, ge=0)
    news_per_query: int = Field(default=20, ge=1, le=100)
    news_source_timeout: float = Field(default=8.0, gt=0, le=60)
    news_thumbnail_timeout: float = Field(default=3.0, gt=0, le=30)
    news_thumbnail_max_bytes: int = Field(default=256 * 1024, ge=1024, le=8 * 1024 * 1024)
    news_thumbnail_workers: int = Field(default=8, ge=1, le=32)
    # all thumbnails of a run together (the delivery must finish well inside its timeout)
    news_thumbnails_seconds: float = Field(default=20.0, gt=0, le=120)
    # explicit opt-in networks for the SSRF-safe fetcher (tests and local stand-ins only: refused
    # in production, where a page on a private network is never a news thumbnail)
    news_fetch_allow_networks: str = ""
    eco2_env: str = "production"
    news_cache_ttl: int = Field(default=600, ge=1)
    news_cache: bool = True  # false: every page from PostgreSQL (the benchmark's comparison)
    # where the development stand-in serves the sample articles (set by `eco2 dev`); unset = no samples
    news_samples_url: str | None = None

    @field_validator("news_fetch_allow_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        import ipaddress

        for network in (n.strip() for n in value.split(",") if n.strip()):
            ipaddress.ip_network(network, strict=False)  # ValueError names the bad one
        return value

    @model_validator(mode="after")
    def _not_in_production(self) -> InfoConfig:
        if self.eco2_env == "production" and self.allow_networks():
            raise ValueError("NEWS_FETCH_ALLOW_NETWORKS is for tests and eco2 dev; it is refused in production")
        return self

    def allow_networks(self) -> list[str]:
        return [n.strip() for n in self.news_fetch_allow_networks.split(",") if n.strip()]


# -- news ------------------------------------------------------------------------------------------


class NewsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(default=10, ge=1, le=50)
    category: NewsCategory | Literal["all"] | None = None
    cursor: str | None = Field(default=None, max_length=200)


class Article(BaseModel):
    id: str
    title: str
    url: str
    snippet: str
    source: str = Field(description="naver, newsdata, or sample (a shipped sample article)")
    source_name: str
    published_at: datetime
    thumbnail_url: str | None
    category: NewsCategory
    source_icon_url: str | None
    keywords: list[str]


class NewsMeta(BaseModel):
    category: NewsCategory | None
    limit: int
    samples: bool = Field(description="true when these are the project's sample articles (no source configured)")
    served_from: Literal["cache", "database", "samples"]
    notice: str | None = None


class NewsPage(BaseModel):
    articles: list[Article]
    next_cursor: str | None
    has_more: bool
    meta: NewsMeta


class Category(BaseModel):
    id: str
    name: str


class Categories(BaseModel):
    categories: list[Category]


# -- recycling information -------------------------------------------------------------------------


class RecyclingCategory(BaseModel):
    id: str = Field(description="stable id of the disposal rules, e.g. recyclable_clear_pet")
    major: str
    middle: str
    name: str
    summary: str
    examples: list[str]
    steps: list[str] = Field(description="how to dispose of it, in order")


class RecyclingCategoryDetail(RecyclingCategory):
    targets: list[str]
    item_steps: dict[str, list[str]] = Field(description="extra steps for particular items")
    excluded: dict[str, str] = Field(description="items that look like they belong here, and where they go instead")
    faq: list[str] = Field(description="ids of the FAQ entries about this category")


class RecyclingCategories(BaseModel):
    categories: list[RecyclingCategory]


class ItemQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    q: str = Field(min_length=1, max_length=100)
    limit: int = Field(default=5, ge=1, le=20)


class ItemMatch(BaseModel):
    word: str = Field(description="the everyday word or item name that matched")
    category_id: str
    major: str
    middle: str
    steps: list[str]
    note: str | None = Field(default=None, description="set when the word is an exception of its category")


class ItemLookup(BaseModel):
    query: str
    matches: list[ItemMatch]


class FaqQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    q: str | None = Field(default=None, max_length=100)
    category: str | None = Field(default=None, max_length=64)


class Faq(BaseModel):
    id: str
    question: str
    answer: str
    categories: list[str]
    tags: list[str]


class FaqList(BaseModel):
    faqs: list[Faq]


# -- collection --------------------------------------------------------------------------------------


class SourceReport(BaseModel):
    source: str
    requests: int = 0
    fetched: int = 0
    added: int = 0
    duplicates: int = 0
    thumbnails: int = 0
    status: Literal["ok", "budget_exhausted", "rate_limited", "failed", "not_configured"] = "ok"
    error: str | None = None


class CollectionReport(BaseModel):
    started_at: datetime
    finished_at: datetime
    categories: list[str]
    sources: list[SourceReport]
    added: int
    note: str | None = None
