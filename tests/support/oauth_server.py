"""The development OAuth provider on a real HTTP port (127.0.0.1), with switchable faults.

    server = start_oauth_server({"ECO2_PUBLIC_URL": "http://127.0.0.1:8080"})
    client = function_client("auth", ECO2_PUBLIC_URL="http://127.0.0.1:8080", **server.env())
    server.fail("token", status=500)      # the token endpoint answers 500
    server.delay("profile", seconds=2.0)  # the profile endpoint answers after 2 s
    server.reset()
    server.close()

Faults are a WSGI middleware in front of the provider, so the provider itself stays as shipped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from werkzeug.serving import BaseWSGIServer
from werkzeug.wrappers import Request, Response

from functions.auth.devprovider import DevOAuthProvider, dev_provider_env, make_dev_provider
from tests.support.servers import serve_wsgi

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

MAX_DELAY = 2.0
ENDPOINTS = ("authorize", "token", "profile")


@dataclass
class Fault:
    status: int | None = None  # answer this status instead of the provider
    delay: float = 0.0  # sleep first (≤ 2 s)
    body: str = '{"error": "server_error"}'


@dataclass
class FaultInjector:
    app: Any
    faults: dict[str, Fault] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        endpoint = Request(environ).path.rstrip("/").rsplit("/", 1)[-1]
        with self.lock:
            self.calls[endpoint] = self.calls.get(endpoint, 0) + 1
            fault = self.faults.get(endpoint)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status is not None:
                return Response(fault.body, status=fault.status, content_type="application/json")(
                    environ, start_response
                )
        result: Iterable[bytes] = self.app(environ, start_response)
        return result


@dataclass
class OAuthServer:
    provider: DevOAuthProvider
    injector: FaultInjector
    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def env(self) -> dict[str, str]:
        """KAKAO_/GOOGLE_/NAVER_ settings pointing the auth function at this server."""
        return dev_provider_env(self.url)

    def fail(self, endpoint: str, status: int = 500, body: str = '{"error": "server_error"}') -> None:
        assert endpoint in ENDPOINTS
        with self.injector.lock:
            self.injector.faults[endpoint] = Fault(status=status, body=body)

    def delay(self, endpoint: str, seconds: float) -> None:
        assert endpoint in ENDPOINTS and 0 < seconds <= MAX_DELAY
        with self.injector.lock:
            self.injector.faults[endpoint] = Fault(delay=seconds)

    def reset(self) -> None:
        with self.injector.lock:
            self.injector.faults.clear()
            self.injector.calls.clear()

    def calls(self, endpoint: str) -> int:
        with self.injector.lock:
            return self.injector.calls.get(endpoint, 0)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def start_oauth_server(env: Mapping[str, str] | None = None) -> OAuthServer:
    """`env`: the auth function's callback settings (ECO2_PUBLIC_URL, <P>_REDIRECT_URIS), the only
    places the provider redirects to."""
    provider = make_dev_provider(env=env or {})
    injector = FaultInjector(provider)
    server, thread = serve_wsgi(injector)
    return OAuthServer(provider, injector, server, thread)


@contextmanager
def oauth_server(env: Mapping[str, str] | None = None) -> Iterator[OAuthServer]:
    """`with oauth_server(env) as server:` — or wrap it in a pytest fixture."""
    server = start_oauth_server(env)
    try:
        yield server
    finally:
        server.close()
