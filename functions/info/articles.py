"""What every collected article goes through, whatever its source: canonical URL (the dedupe key),
HTML stripped from the text, published time in UTC, and a keyword category. No I/O but reading
the project's topics file once."""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from functions.common.datafiles import load_yaml

# query parameters that only say where a click came from (never which article it is)
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "gbraid",
        "wbraid",
        "msclkid",
        "yclid",
        "igshid",
        "mc_cid",
        "mc_eid",
        "_ga",
        "_gl",
        "ref",
        "ref_src",
        "referrer",
        "spm",
        "cmpid",
        "ncid",
        "ocid",
        "from",
        "utm",
    }
)
_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
FUTURE_SLACK = timedelta(minutes=10)


@dataclass(frozen=True)
class Topic:
    id: str
    name: str
    queries: tuple[str, ...]
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Candidate:
    """One normalised article, before it is stored."""

    url: str
    url_key: str
    title: str
    snippet: str
    source: str
    source_name: str
    published_at: datetime
    category: str
    keywords: tuple[str, ...]
    thumbnail_url: str | None = None
    source_icon_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@cache
def topics() -> tuple[Topic, ...]:
    text = resources.files("functions.info").joinpath("data/news_topics.yaml").read_text(encoding="utf-8")
    return tuple(
        Topic(str(c["id"]), str(c["name"]), tuple(c["queries"]), tuple(str(k) for k in c["keywords"]))
        for c in load_yaml(text)["categories"]
    )


def topic_ids() -> list[str]:
    return [t.id for t in topics()]


# -- URLs ------------------------------------------------------------------------------------------


def canonical_url(url: str) -> str | None:
    """The article's URL without tracking parameters or fragment, host lower-cased, default port and
    trailing slash dropped, remaining parameters sorted. None when it is not an http(s) URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in ("http", "https") or not host or parts.username or parts.password:
        return None
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    if ":" in host and not host.startswith("["):
        netloc = f"[{host}]" if port is None else f"[{host}]:{port}"
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith("utm_") and k.lower() not in TRACKING_PARAMS
    ]
    path = parts.path or "/"
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    return urlunsplit((scheme, netloc, path, urlencode(sorted(query)), ""))


def url_key(canonical: str) -> str:
    """The dedupe key: the canonical URL without its scheme (http and https are the same article)."""
    without_scheme = canonical.split("://", 1)[-1]
    return hashlib.sha256(without_scheme.encode()).hexdigest()


def web_url(value: Any, base: str | None = None) -> str | None:
    """An absolute http(s) URL for the browser (thumbnails, icons), or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    from urllib.parse import urljoin

    absolute = urljoin(base, value.strip()) if base else value.strip()
    try:
        parts = urlsplit(absolute)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or len(absolute) > 2048:
        return None
    return absolute


def host_name(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    return host[4:] if host.startswith("www.") else host


# -- text and time ---------------------------------------------------------------------------------


def plain_text(value: Any, limit: int = 500) -> str:
    """Tags removed, entities decoded, whitespace collapsed, at most `limit` characters."""
    if not isinstance(value, str):
        return ""
    text = html.unescape(_TAG.sub(" ", value))
    text = _TAG.sub(" ", text)  # markup that was escaped once (&lt;b&gt;) is markup too
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def parse_published(value: Any, *, assume: str = "UTC", now: datetime | None = None) -> datetime:
    """RFC 2822 ("Mon, 01 Dec 2026 10:00:00 +0900"), ISO 8601, or "YYYY-MM-DD HH:MM:SS" in the zone
    `assume` -> an aware UTC datetime, whole seconds; missing, unreadable or far-future times become
    `now` (the time of collection)."""
    from zoneinfo import ZoneInfo

    current = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    parsed: datetime | None = None
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                parsed = None
    if parsed is None:
        return current
    if parsed.tzinfo is None:
        try:
            parsed = parsed.replace(tzinfo=ZoneInfo(assume))
        except (KeyError, ValueError):
            parsed = parsed.replace(tzinfo=UTC)
    result = parsed.astimezone(UTC).replace(microsecond=0)
    return current if result > current + FUTURE_SLACK else result


# -- categories ------------------------------------------------------------------------------------


@cache
def _patterns() -> tuple[tuple[str, tuple[tuple[str, re.Pattern[str]], ...]], ...]:
    out = []
    for topic in topics():
        compiled = []
        for word in topic.keywords:
            if word.isascii():
                compiled.append((word, re.compile(rf"(?<![A-Za-z0-9]){re.escape(word)}(?![A-Za-z0-9])", re.I)))
            else:
                compiled.append((word, re.compile(re.escape(word))))
        out.append((topic.id, tuple(compiled)))
    return tuple(out)


def categorise(title: str, snippet: str, asked: str) -> tuple[str, tuple[str, ...]]:
    """(category, matched keywords): the title counts twice, the snippet once; `asked` (the category
    whose query found the article) wins ties and articles with no keyword at all."""
    scores: dict[str, int] = {}
    matched: dict[str, list[str]] = {}
    for category, patterns in _patterns():
        for word, pattern in patterns:
            hits = 2 * len(pattern.findall(title)) + len(pattern.findall(snippet))
            if hits:
                scores[category] = scores.get(category, 0) + hits
                matched.setdefault(category, []).append(word)
    if not scores:
        return asked, ()
    best = max(scores.values())
    category = asked if scores.get(asked) == best else next(c for c in topic_ids() if scores.get(c) == best)
    return category, tuple(matched[category][:5])
