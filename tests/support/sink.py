"""A stand-in for the Knative broker ingress: keeps the CloudEvents posted to it, answers 202."""

from __future__ import annotations

import json
import threading
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.support.servers import serve_wsgi


class EventSink:
    """Records every CloudEvent posted to it; answers `status` (202, or e.g. 503 to stand in for a
    subscriber that crashes on every delivery) with `body`."""

    def __init__(self, status: int = 202, body: str = "") -> None:
        self.status, self.body = status, body
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.server, self.thread = serve_wsgi(self)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/"

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        attrs = {k[3:].lower(): v for k, v in request.headers.items() if k.lower().startswith("ce-")}
        with self._lock:
            self.events.append(
                {
                    "attributes": attrs,
                    "data": json.loads(request.get_data() or b"null"),
                    "content_type": request.content_type,
                }
            )
        return Response(self.body, status=self.status)(environ, start_response)

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["attributes"].get("type") == event_type]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
