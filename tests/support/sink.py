"""A stand-in for the Knative broker ingress: accepts CloudEvents (binary mode) with 202 and keeps them."""

from __future__ import annotations

import json
import threading
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.support.servers import serve_wsgi


class EventSink:
    def __init__(self) -> None:
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
        return Response(status=202)(environ, start_response)

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["attributes"].get("type") == event_type]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
