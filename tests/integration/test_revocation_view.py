"""The local view of the revocation keys (eco2.core.security.RevocationView) on real Redis: a
revocation made by another process is refused here within the stated bound without a Redis round
trip per request; a lost feed (closed, or silently frozen by a real TCP proxy in between) is still
refused (the per-request MGET again); a reconnect reloads what was revoked while it was down."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis as redis_lib
import redis.asyncio

from eco2.core import security
from eco2.core.security import RevocationView, TokenRevoked, check_not_revoked, ensure_not_revoked
from eco2.core.tokens import TokenClaims
from eco2.serving.testing import FunctionClient
from functions.common.models import User
from tests.conftest import REDIS_URL, ROOT


class Proxy:
    """A real TCP proxy in front of Redis: `frozen` stops forwarding (sockets stay open: a
    partition with no FIN), `down` closes every connection and refuses new ones."""

    def __init__(self, port: int) -> None:
        self.upstream = ("127.0.0.1", port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.down = False
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            upstream = socket.create_connection(self.upstream)
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while True:
                data = source.recv(65536)
                if not data:
                    break
                self.flowing.wait()
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    def freeze(self) -> None:
        self.flowing.clear()

    def thaw(self) -> None:
        self.flowing.set()

    def take_down(self) -> None:
        self.down = True
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self.sockets.clear()

    def bring_up(self) -> None:
        self.down = False

    def close(self) -> None:
        self.take_down()
        self.listener.close()
        self.thaw()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis_lib.Redis]:
    c = redis_lib.Redis.from_url(redis_url)
    yield c
    c.close()


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    p = Proxy(redis_lib.Redis.from_url(REDIS_URL).connection_pool.connection_kwargs["port"])
    yield p
    p.close()


def claims_for(user: str = "u", sid: str | None = None) -> TokenClaims:
    now = int(time.time())
    return TokenClaims(user, uuid.uuid4().hex, "access", now - 5, now - 5, now + 600, "kakao", sid or uuid.uuid4().hex)


def wait_current(view: RevocationView, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not view.current():
        assert time.monotonic() < deadline, "the view never became current"
        time.sleep(0.01)


def refused(client: redis_lib.Redis, claims: TokenClaims, view: RevocationView | None = None) -> bool:
    try:
        check_not_revoked(client, claims, view)
    except TokenRevoked:
        return True
    return False


@contextlib.contextmanager
def mgets_naming(key: str) -> Iterator[list[str]]:
    """Every MGET naming `key` on this test's database while the block runs (Redis MONITOR)."""
    seen: list[str] = []
    stop = threading.Event()
    db = redis_lib.Redis.from_url(REDIS_URL).connection_pool.connection_kwargs.get("db", 0)
    monitor_client = redis_lib.Redis.from_url(REDIS_URL, socket_timeout=0.2)
    ready = threading.Event()

    def watch() -> None:
        with monitor_client.monitor() as m:
            ready.set()
            while not stop.is_set():
                try:
                    command = m.next_command()
                except (redis_lib.TimeoutError, TimeoutError):
                    continue
                text = command["command"]
                if int(command.get("db", -1)) == int(db) and text.upper().startswith("MGET") and key in text:
                    seen.append(text)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    ready.wait(5)
    time.sleep(0.1)
    try:
        yield seen
    finally:
        time.sleep(0.3)  # MONITOR lines still in flight
        stop.set()
        thread.join(5)
        monitor_client.close()


def test_revoked_in_another_process_is_refused_here_within_the_bound(
    function_client: Callable[..., FunctionClient],
) -> None:
    users = function_client("users")
    session = users.runtime.clients.db.session()
    user = User(nickname="분리수거왕", last_login_provider="kakao")
    session.add(user)
    session.commit()
    sid = uuid.uuid4().hex
    issued = users.runtime.clients.tokens.issue(str(user.id), "access", "kakao", session_id=sid)
    session.close()
    headers = {"Authorization": f"Bearer {issued.token}"}
    assert users.get("/api/v1/users/me", headers=headers).status_code == 200
    view = security.revocation_view(users.runtime.clients.redis)
    assert view is not None
    wait_current(view)
    reloads = view.reloads
    with mgets_naming(f"blacklist:{issued.claims.jti}") as round_trips:
        for _ in range(20):
            assert users.get("/api/v1/users/me", headers=headers).status_code == 200
    # the view answered; the only MGETs allowed are checks during a reload (a FLUSHDB anywhere on
    # this shared server reloads the view, and a check meanwhile falls back to Redis)
    assert len(round_trips) <= 2 * (view.reloads - reloads), round_trips

    # another process signs the session out (the auth function's own code path)
    code = (
        "import sys, redis; sys.path.insert(0, 'platform'); from eco2.core.security import revoke_session; "
        f"revoke_session(redis.Redis.from_url({REDIS_URL!r}), {sid!r}, 600)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=30)
    revoked_at = time.monotonic()
    statuses = []
    while time.monotonic() - revoked_at < view.bound:
        statuses.append(users.get("/api/v1/users/me", headers=headers).status_code)
        if statuses[-1] == 403:
            break
    assert statuses and statuses[-1] == 403, f"not refused within {view.bound} s: {statuses}"
    assert users.get("/api/v1/users/me", headers=headers).json["code"] == "TOKEN_REVOKED"
    # and the refusal is the view's own answer now, still no round trip per request
    wait_current(view)
    assert view.mget([f"revoked_session:{sid}"])[0] is not None
    reloads = view.reloads
    with mgets_naming(f"blacklist:{issued.claims.jti}") as round_trips:
        for _ in range(10):
            assert users.get("/api/v1/users/me", headers=headers).status_code == 403
    assert len(round_trips) <= 2 * (view.reloads - reloads), round_trips


def test_a_revocation_by_another_client_is_refused_by_the_next_check(client: redis_lib.Redis) -> None:
    """Better than the bound in practice: Redis writes the invalidation to the feed's socket no later
    than the revoker's reply, and a check first looks for unread bytes there (a poll, no round trip)."""
    view = RevocationView(client)
    wait_current(view)
    other = redis_lib.Redis.from_url(REDIS_URL)
    for _ in range(50):
        claims = claims_for()
        assert not refused(client, claims, view)
        security.revoke(other, claims)
        assert refused(client, claims, view)
    other.close()
    view.stop()


def test_a_closed_feed_is_refused_at_once(client: redis_lib.Redis) -> None:
    view = RevocationView(client)
    wait_current(view)
    claims = claims_for()
    assert not refused(client, claims, view)
    client.execute_command("CLIENT", "KILL", "ID", view.feed_client_id)
    security.revoke(client, claims)  # right after the feed is cut: its invalidation is never delivered
    assert refused(client, claims, view)
    assert not refused(client, claims_for(), view)  # others still pass (the MGET), no outage
    view.stop()


def test_a_silently_frozen_feed_is_refused_after_the_bound(client: redis_lib.Redis, proxy: Proxy) -> None:
    view = RevocationView(client, feed_kwargs={"port": proxy.port}, bound=0.5, ping_interval=0.05)
    wait_current(view)
    claims = claims_for()
    proxy.freeze()
    security.revoke(client, claims)  # straight to Redis; the feed never hears of it
    revoked_at = time.monotonic()
    while time.monotonic() - revoked_at < view.bound + 0.2:  # the bound, plus the time to take one check
        time.sleep(0.01)
    assert not view.current(), "a feed unconfirmed for longer than the bound is not trusted"
    for _ in range(20):
        assert refused(client, claims, view)
        assert not refused(client, claims_for(), view)
        time.sleep(0.02)
    view.stop()


def test_a_reconnect_reloads_what_was_revoked_while_down(client: redis_lib.Redis, proxy: Proxy) -> None:
    view = RevocationView(client, feed_kwargs={"port": proxy.port}, bound=0.5, ping_interval=0.05)
    wait_current(view)
    loads = view.reloads
    token, session, everything = claims_for(), claims_for(), claims_for(user=f"user-{uuid.uuid4().hex}")
    proxy.take_down()
    security.revoke(client, token)
    security.revoke_session(client, session.sid, 600)
    time.sleep(1.1)  # revoke_all refuses tokens issued at or before the stored second
    security.revoke_all(client, everything.sub, 600)
    assert not view.current()
    assert all(refused(client, c, view) for c in (token, session, everything))  # the MGET meanwhile
    proxy.bring_up()
    wait_current(view)
    assert view.reloads > loads
    # the view's own copy refuses them now, without Redis
    for c in (token, session, everything):
        with pytest.raises(TokenRevoked):
            ensure_not_revoked(view, c)  # type: ignore[arg-type]
    ensure_not_revoked(view, claims_for())  # type: ignore[arg-type]
    view.stop()


def test_the_embedded_client_has_no_view_and_the_switch_turns_it_off(
    client: redis_lib.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eco2.core.embedded import redis_client

    assert security.revocation_view(redis_client("memory://")) is None
    assert security.revocation_view(redis_lib.asyncio.Redis.from_url(REDIS_URL)) is None  # type: ignore[arg-type]
    monkeypatch.setenv("ECO2_REVOCATION_VIEW", "off")
    assert security.revocation_view(redis_lib.Redis.from_url(REDIS_URL)) is None
