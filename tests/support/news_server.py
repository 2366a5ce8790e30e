"""Local stand-ins for the news sources and the publishers' pages, over real HTTP (127.0.0.1).

- Naver News Search: GET /v1/search/news.json (X-Naver-Client-Id / -Secret), items with `<b>` markup
  and entities, RFC 2822 KST `pubDate`; errors as Naver sends them (`{"errorMessage", "errorCode"}`):
  401 for wrong credentials, 429 "012" for the quota, 500 for an outage.
- NewsData.io: GET /api/1/latest?apikey=&q=, `{"status": "success", "results": [...]}`; errors
  `{"status": "error", "results": {"message", "code"}}`: 401, 429 RateLimitExceeded, 500.
- Publisher pages: GET /pages/<slug> (HTML with og:image unless told otherwise), /redirect?to=<url>,
  /loop (redirects to itself), /huge (an endless body), /slow (headers, then nothing), /img/*.

Each source is scripted through `NewsServer.naver` / `.newsdata` (items per query, a mode) and every
request is recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from werkzeug.wrappers import Request, Response

from tests.support.servers import serve_wsgi

Mode = Literal["ok", "down", "rate_limited", "unauthorized", "garbage"]
NAVER_ID, NAVER_SECRET, NEWSDATA_KEY = "naver-test-id", "naver-test-secret", "newsdata-test-key"


@dataclass
class SourceScript:
    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # query -> items
    mode: Mode = "ok"
    requests: list[dict[str, str]] = field(default_factory=list)


class NewsServer:
    def __init__(self) -> None:
        self.naver = SourceScript()
        self.newsdata = SourceScript()
        self.pages: dict[str, str] = {}  # slug -> HTML
        self.page_hits: list[str] = []
        self._lock = threading.Lock()
        self.server, self.thread = serve_wsgi(self)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def env(self) -> dict[str, str]:
        """The info function's environment pointing at this server (fetches to 127.0.0.1 allowed)."""
        return {
            "NAVER_NEWS_CLIENT_ID": NAVER_ID,
            "NAVER_NEWS_CLIENT_SECRET": NAVER_SECRET,
            "NAVER_NEWS_URL": f"{self.base_url}/v1/search/news.json",
            "NEWSDATA_API_KEY": NEWSDATA_KEY,
            "NEWSDATA_URL": f"{self.base_url}/api/1/latest",
            "NEWS_FETCH_ALLOW_NETWORKS": "127.0.0.1/32",
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    # -- scripting -------------------------------------------------------------------------------
    def page(self, slug: str, image: str | None = "/img/{slug}.jpg", *, twitter: bool = False) -> str:
        """Publish a page whose og:image is `image` (relative or absolute); returns its URL."""
        meta = ""
        if image is not None:
            value = image.format(slug=slug)
            prop = 'name="twitter:image"' if twitter else 'property="og:image"'
            meta = f'<meta {prop} content="{value}">'
        self.pages[slug] = (
            f"<!doctype html><html><head><meta charset=utf-8><title>{slug}</title>{meta}</head>"
            f"<body><p>기사 본문 {slug}</p></body></html>"
        )
        return f"{self.base_url}/pages/{slug}"

    # -- WSGI ------------------------------------------------------------------------------------
    def __call__(self, environ: Any, start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        response = self._route(request)
        return response(environ, start_response)

    def _route(self, request: Request) -> Response:
        path = request.path
        if path == "/v1/search/news.json":
            return self._naver(request)
        if path == "/api/1/latest":
            return self._newsdata(request)
        if path.startswith("/pages/"):
            slug = path[len("/pages/") :]
            with self._lock:
                self.page_hits.append(slug)
            if slug in self.pages:
                return Response(self.pages[slug], content_type="text/html; charset=utf-8")
            return Response("not found", status=404)
        if path == "/redirect":
            return Response("", status=302, headers={"Location": request.args.get("to", "/")})
        if path == "/loop":
            return Response("", status=302, headers={"Location": "/loop"})
        if path == "/huge":

            def endless() -> Iterable[bytes]:
                yield b"<html><head>"
                for _ in range(100_000):
                    yield b"<!-- padding padding padding padding padding padding padding padding -->" * 16

            return Response(endless(), content_type="text/html")
        if path == "/slow":

            def trickle() -> Iterable[bytes]:
                for _ in range(60):
                    yield b" "
                    time.sleep(0.5)

            return Response(trickle(), content_type="text/html")
        if path.startswith("/img/"):
            return Response(b"\xff\xd8\xff", content_type="image/jpeg")
        return Response("not found", status=404)

    def _record(self, script: SourceScript, request: Request) -> None:
        with self._lock:
            script.requests.append({k: v for k, v in request.args.items()})

    def _naver(self, request: Request) -> Response:
        script = self.naver
        self._record(script, request)
        if (
            request.headers.get("X-Naver-Client-Id") != NAVER_ID
            or request.headers.get("X-Naver-Client-Secret") != NAVER_SECRET
            or script.mode == "unauthorized"
        ):
            return _json({"errorMessage": "Authentication failed. (인증에 실패했습니다.)", "errorCode": "024"}, 401)
        if script.mode == "rate_limited":
            return _json({"errorMessage": "Query limit exceeded. (호출 한도를 초과했습니다.)", "errorCode": "012"}, 429)
        if script.mode == "down":
            return _json({"errorMessage": "System error.", "errorCode": "SE99"}, 500)
        if script.mode == "garbage":
            return Response("<html>maintenance</html>", content_type="text/html")
        query = request.args.get("query", "")
        display = int(request.args.get("display", "10"))
        items = script.items.get(query, [])[:display]
        return _json(
            {
                "lastBuildDate": "Mon, 01 Dec 2026 10:00:00 +0900",
                "total": len(items),
                "start": 1,
                "display": len(items),
                "items": items,
            }
        )

    def _newsdata(self, request: Request) -> Response:
        script = self.newsdata
        self._record(script, request)
        if request.args.get("apikey") != NEWSDATA_KEY or script.mode == "unauthorized":
            return _json({"status": "error", "results": {"message": "Invalid API key.", "code": "Unauthorized"}}, 401)
        if script.mode == "rate_limited":
            return _json(
                {"status": "error", "results": {"message": "Rate limit exceeded.", "code": "RateLimitExceeded"}},
                429,
            )
        if script.mode == "down":
            return _json({"status": "error", "results": {"message": "Internal error", "code": "ServerError"}}, 500)
        if script.mode == "garbage":
            return Response("not json", content_type="text/plain")
        results = script.items.get(request.args.get("q", ""), [])
        return _json({"status": "success", "totalResults": len(results), "results": results, "nextPage": None})


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, content_type="application/json")


def naver_item(title: str, url: str, pub: str, description: str = "", link: str | None = None) -> dict[str, str]:
    """An item as Naver sends it (title/description carry <b> markup and entities)."""
    return {
        "title": title,
        "originallink": url,
        "link": link or url,
        "description": description,
        "pubDate": pub,
    }


def newsdata_item(
    title: str, url: str, pub: str, description: str = "", image: str | None = None, source: str = "에코뉴스"
) -> dict[str, Any]:
    return {
        "article_id": f"nd-{abs(hash(url)) % 10**8}",
        "title": title,
        "link": url,
        "keywords": None,
        "creator": None,
        "description": description,
        "content": "ONLY AVAILABLE IN PAID PLANS",
        "pubDate": pub,
        "pubDateTZ": "UTC",
        "image_url": image,
        "source_id": "econews",
        "source_name": source,
        "source_url": "https://econews.example",
        "source_icon": "https://econews.example/icon.png",
        "language": "korean",
        "country": ["south korea"],
        "category": ["environment"],
    }
