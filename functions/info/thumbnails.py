"""An article's thumbnail from its page's `og:image` (or `twitter:image`), read with the SSRF-safe
fetcher: only the page's first bytes, within a time bound; any failure is "no thumbnail"."""

from __future__ import annotations

import logging
from html.parser import HTMLParser
from typing import TYPE_CHECKING

from functions.info.articles import web_url

if TYPE_CHECKING:
    from eco2.core.fetch import Fetcher

log = logging.getLogger("eco2.info")
_WANTED = ("og:image:secure_url", "og:image", "og:image:url", "twitter:image", "twitter:image:src")


class _MetaImages(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: dict[str, str] = {}
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.done = True
        if tag != "meta" or self.done:
            return
        values = {k.lower(): (v or "") for k, v in attrs}
        key = (values.get("property") or values.get("name") or "").strip().lower()
        if key in _WANTED and values.get("content", "").strip():
            self.found.setdefault(key, values["content"].strip())


def og_image(html_text: str, page_url: str) -> str | None:
    """The page's preview image as an absolute http(s) URL, or None."""
    parser = _MetaImages()
    try:
        parser.feed(html_text)
        parser.close()
    except Exception:  # a broken page has no thumbnail
        return None
    for key in _WANTED:
        if key in parser.found:
            found = web_url(parser.found[key], page_url)
            if found is not None:
                return found
    return None


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value:
            return value.strip("\"' ")
    return "utf-8"


def thumbnail(fetcher: Fetcher, page_url: str) -> str | None:
    from eco2.core.fetch import FetchError

    try:
        page = fetcher.get(page_url, accept="text/html,application/xhtml+xml", truncate=True)
    except FetchError as exc:
        log.info("no thumbnail", extra={"url": page_url, "reason": str(exc)})
        return None
    if page.status != 200 or page.content_type not in ("text/html", "application/xhtml+xml", ""):
        return None
    try:
        text = page.body.decode(_charset(page.headers.get("content-type", "")), errors="replace")
    except LookupError:
        text = page.body.decode("utf-8", errors="replace")
    return og_image(text, page.url)
