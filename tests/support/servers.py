"""Serve functions on real HTTP ports (127.0.0.1) for tests that cross a network boundary."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from eco2.serving.testing import FunctionClient


@dataclass
class Served:
    client: FunctionClient
    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        self.client.close()


def serve_wsgi(app: Any) -> tuple[BaseWSGIServer, threading.Thread]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def serve_function(name: str, env: Mapping[str, str], root: Path) -> Served:
    client = FunctionClient(name, env, root=root)
    server, thread = serve_wsgi(client.app)
    return Served(client, server, thread)
