"""The shipped sample articles (data/sample_articles.yaml) and the development stand-in that serves
their pages and thumbnails in `eco2 dev` (mounted at /dev/info), so a newcomer's info page is not
empty before any news source is configured. Samples are never stored: they are listed from the file.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from functions.common.datafiles import load_yaml

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

SOURCE = "sample"
SOURCE_NAME = "Eco² 샘플 기사"
NOTICE = "뉴스 소스가 아직 설정되지 않아 Eco²가 준비한 샘플 기사를 보여 드려요."
_NAMESPACE = uuid.UUID("5f0c7c2e-7f43-4a56-9a0e-8f1f2b8e0c11")
_COLOURS = {"environment": ("#2e7d32", "#c8e6c9"), "energy": ("#ef6c00", "#ffe0b2"), "ai": ("#3949ab", "#c5cae9")}
_LABELS = {"environment": "환경", "energy": "에너지", "ai": "AI"}


@cache
def _entries() -> tuple[dict[str, Any], ...]:
    text = resources.files("functions.info").joinpath("data/sample_articles.yaml").read_text(encoding="utf-8")
    return tuple(load_yaml(text)["articles"])


@cache
def _anchor() -> datetime:
    """Samples are dated relative to the first time they are listed (the process's start, in effect)."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def articles(base_url: str) -> list[dict[str, Any]]:
    """Every sample as an API article (+ `seq`), newest first; URLs point at the stand-in."""
    base = base_url.rstrip("/")
    out = []
    for index, entry in enumerate(_entries()):
        published = _anchor() - timedelta(hours=int(entry["hours_ago"]))
        out.append(
            {
                "id": str(uuid.uuid5(_NAMESPACE, entry["slug"])),
                "title": entry["title"],
                "url": f"{base}/samples/{entry['slug']}",
                "snippet": entry["snippet"],
                "source": SOURCE,
                "source_name": SOURCE_NAME,
                "published_at": published.isoformat(),
                "thumbnail_url": f"{base}/thumbnails/{entry['category']}.svg",
                "category": entry["category"],
                "source_icon_url": None,
                "keywords": [*entry.get("keywords", []), "샘플"],
                "seq": len(_entries()) - index,
            }
        )
    out.sort(key=lambda a: (a["published_at"], a["seq"]), reverse=True)
    return out


# -- the development stand-in ----------------------------------------------------------------------


def _page(entry: Mapping[str, Any], base: str) -> str:
    title = html.escape(entry["title"])
    return (
        "<!doctype html><html lang=ko><head><meta charset=utf-8>"
        f"<title>{title}</title>"
        f'<meta property="og:title" content="{title}">'
        f'<meta property="og:image" content="{html.escape(base)}/thumbnails/{entry["category"]}.svg">'
        "<style>body{font-family:sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;line-height:1.6}"
        ".note{background:#fff3cd;padding:.75rem 1rem;border-radius:.5rem}</style></head><body>"
        f"<p class=note>{html.escape(NOTICE)}</p><h1>{title}</h1><p>{html.escape(entry['snippet'])}</p>"
        "</body></html>"
    )


def _thumbnail(category: str) -> str:
    dark, light = _COLOURS[category]
    label = _LABELS[category]
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="640" height="360" viewBox="0 0 640 360">'
        f'<rect width="640" height="360" fill="{light}"/>'
        f'<circle cx="520" cy="90" r="120" fill="{dark}" opacity=".18"/>'
        f'<text x="48" y="200" font-size="72" font-family="sans-serif" fill="{dark}">{label}</text>'
        f'<text x="50" y="250" font-size="28" font-family="sans-serif" fill="{dark}">Eco² 샘플</text></svg>'
    )


def stand_in(base_url: str) -> Any:
    """A WSGI app: /samples/<slug> (an HTML page with og:image) and /thumbnails/<category>.svg."""
    by_slug = {e["slug"]: e for e in _entries()}
    base = base_url.rstrip("/")
    prefix = "/" + base.split("://", 1)[-1].partition("/")[2]

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(prefix):
            path = path[len(prefix) :]
        body: str | None = None
        content_type = "text/html; charset=utf-8"
        if path.startswith("/samples/") and path[len("/samples/") :] in by_slug:
            body = _page(by_slug[path[len("/samples/") :]], base)
        elif path.startswith("/thumbnails/") and path.endswith(".svg"):
            category = path[len("/thumbnails/") : -len(".svg")]
            if category in _COLOURS:
                body, content_type = _thumbnail(category), "image/svg+xml"
        if body is None:
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return ["샘플을 찾을 수 없어요.".encode()]
        payload = body.encode()
        start_response(
            "200 OK",
            [("Content-Type", content_type), ("Content-Length", str(len(payload))), ("Cache-Control", "max-age=3600")],
        )
        return [payload]

    return app
