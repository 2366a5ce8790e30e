"""News sources, one adapter each, base URLs and keys from configuration (InfoConfig).

An adapter turns one search into raw items (`RawItem`), and its failures into two errors the
collection understands: `RateLimited` (the source said "too many" or "quota": stop asking it for
this run) and `SourceFailed` (outage, bad credentials, an answer we cannot read). Normalising the
items (URLs, text, time, category) is shared, in `articles.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import requests

    from functions.info.schemas import InfoConfig


class SourceError(Exception):
    pass


class SourceFailed(SourceError):
    """The source is down, refused our credentials, or answered something we cannot read."""


class RateLimited(SourceError):
    """The source said we asked too often (or the day's quota is spent)."""


@dataclass(frozen=True)
class RawItem:
    url: str
    title: str
    snippet: str
    published: str | None
    published_zone: str  # the zone of `published` when it carries none
    source_name: str | None = None
    image_url: str | None = None
    icon_url: str | None = None


class Source(Protocol):
    name: str
    daily_budget: int

    def plan(self, queries: tuple[str, ...]) -> list[str]:
        """The searches to make for one category's queries (one request each)."""
        ...

    def search(self, query: str) -> list[RawItem]: ...


def _answer(response: requests.Response, source: str) -> Any:
    if response.status_code == 429:
        raise RateLimited(f"{source} answered 429")
    if response.status_code >= 400:
        raise SourceFailed(f"{source} answered {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise SourceFailed(f"{source} answered something that is not JSON") from None


class NaverNews:
    """Naver Search API, news (GET .../v1/search/news.json; X-Naver-Client-Id / -Secret headers).

    Items carry `title`, `originallink` (the publisher's page), `link` (Naver's copy or the same),
    `description` and `pubDate` (RFC 2822, KST); markup (`<b>`) and entities are in the text; no
    image. Errors are JSON `{"errorMessage", "errorCode"}`; quota and speed limits answer 429."""

    name = "naver"

    def __init__(self, session: requests.Session, config: InfoConfig) -> None:
        assert config.naver_news_client_id and config.naver_news_client_secret
        self.session = session
        self.url = config.naver_news_url
        self.headers = {
            "X-Naver-Client-Id": config.naver_news_client_id,
            "X-Naver-Client-Secret": config.naver_news_client_secret.get_secret_value(),
        }
        self.display = config.news_per_query
        self.timeout = config.news_source_timeout
        self.daily_budget = config.naver_news_daily_budget

    def plan(self, queries: tuple[str, ...]) -> list[str]:
        return list(queries)  # a generous quota: one search per query

    def search(self, query: str) -> list[RawItem]:
        import requests

        params: dict[str, str | int] = {"query": query, "display": self.display, "start": 1, "sort": "date"}
        try:
            response = self.session.get(self.url, params=params, headers=self.headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise SourceFailed(f"naver: {type(exc).__name__}") from None
        body = _answer(response, "naver")
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise SourceFailed("naver: the answer has no items list")
        out = []
        for item in items:
            if not isinstance(item, dict):
                continue
            url = item.get("originallink") or item.get("link")
            if isinstance(url, str) and url:
                out.append(
                    RawItem(
                        url=url,
                        title=str(item.get("title") or ""),
                        snippet=str(item.get("description") or ""),
                        published=item.get("pubDate"),
                        published_zone="Asia/Seoul",
                    )
                )
        return out


class NewsData:
    """NewsData.io (GET .../api/1/latest?apikey=&q=&language=ko).

    `{"status": "success", "results": [{"article_id", "title", "link", "description", "pubDate"
    ("YYYY-MM-DD HH:MM:SS"), "pubDateTZ", "image_url", "source_name", "source_icon", ...}]}`; errors
    are `{"status": "error", "results": {"message", "code"}}`, 429 when the quota is spent."""

    name = "newsdata"

    def __init__(self, session: requests.Session, config: InfoConfig) -> None:
        assert config.newsdata_api_key
        self.session = session
        self.url = config.newsdata_url
        self.key = config.newsdata_api_key.get_secret_value()
        self.size = min(config.news_per_query, 10)  # the free plan's page size
        self.timeout = config.news_source_timeout
        self.daily_budget = config.newsdata_daily_budget

    def plan(self, queries: tuple[str, ...]) -> list[str]:
        # 200 credits a day: one search per category, its queries joined with NewsData's OR
        return [" OR ".join(queries)]

    def search(self, query: str) -> list[RawItem]:
        import requests

        params: dict[str, str | int] = {"apikey": self.key, "q": query, "language": "ko", "size": self.size}
        try:
            response = self.session.get(self.url, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise SourceFailed(f"newsdata: {type(exc).__name__}") from None
        body = _answer(response, "newsdata")
        if not isinstance(body, dict) or body.get("status") != "success" or not isinstance(body.get("results"), list):
            code = body.get("results", {}).get("code") if isinstance(body, dict) else None
            if code in ("RateLimitExceeded", "TooManyRequests"):
                raise RateLimited(f"newsdata: {code}")
            raise SourceFailed(f"newsdata: unexpected answer ({code or 'no results'})")
        out = []
        for item in body["results"]:
            if not isinstance(item, dict) or not isinstance(item.get("link"), str):
                continue
            out.append(
                RawItem(
                    url=item["link"],
                    title=str(item.get("title") or ""),
                    snippet=str(item.get("description") or ""),
                    published=item.get("pubDate"),
                    published_zone=str(item.get("pubDateTZ") or "UTC"),
                    source_name=item.get("source_name") or item.get("source_id"),
                    image_url=item.get("image_url"),
                    icon_url=item.get("source_icon"),
                )
            )
        return out


def configured(session: requests.Session, config: InfoConfig) -> list[Source]:
    """The sources whose credentials are set, in a fixed order."""
    out: list[Source] = []
    if config.naver_news_client_id and config.naver_news_client_secret:
        out.append(NaverNews(session, config))
    if config.newsdata_api_key:
        out.append(NewsData(session, config))
    return out


def configured_names(config: InfoConfig) -> list[str]:
    names = []
    if config.naver_news_client_id and config.naver_news_client_secret:
        names.append("naver")
    if config.newsdata_api_key:
        names.append("newsdata")
    return names
