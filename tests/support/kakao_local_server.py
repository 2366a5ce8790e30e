"""A local Kakao Local keyword-search server for tests, over real HTTP.

It answers from scripted documents (the same shape as Kakao's) with the development stand-in's
logic, and can be told to be slow, answer 5xx, send garbage or refuse connections (an outage).
Requests are recorded for assertions.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Literal

from werkzeug.wrappers import Request, Response

from functions.location.devplaces import KakaoLocalStandIn, document
from tests.support.servers import serve_wsgi

KEY = "test-kakao-rest-key"
Mode = Literal["ok", "slow", "error", "garbage"]


class KakaoLocalServer:
    def __init__(self) -> None:
        self.standin = KakaoLocalStandIn(KEY, [])
        self.mode: Mode = "ok"
        self.delay = 3.0
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.server, self.thread = serve_wsgi(self)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def reset(self, places: list[tuple[str, str, str, float, float]] | None = None, mode: Mode = "ok") -> None:
        """places: (id, name, address, lat, lon)."""
        with self._lock:
            self.standin.documents = [document(*p) for p in places or []]
            self.mode = mode
            self.requests.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        with self._lock:
            self.requests.append(
                {"path": request.path, "args": dict(request.args), "auth": request.headers.get("Authorization")}
            )
            mode = self.mode
        if mode == "slow":
            time.sleep(self.delay)
        if mode == "error":
            return Response('{"errorType":"InternalServerError"}', 500)(environ, start_response)
        if mode == "garbage":
            return Response("<html>maintenance</html>", 200, content_type="text/html")(environ, start_response)
        return self.standin(environ, start_response)
