"""Who is calling: the access token from the `s_access` cookie or `Authorization: Bearer`,
verified, then checked against the Redis revocation keys: from this process's `RevocationView`
(no round trip) while its feed is current, else in one MGET."""

from __future__ import annotations

import functools
import logging
import os
import select
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from eco2.core.errors import Forbidden, Unauthorized
from eco2.core.tokens import (
    TokenClaims,
    TokenCodec,
    TokenType,
    blacklist_key,
    revoked_before_key,
    session_revoked_key,
)

if TYPE_CHECKING:
    import redis

ACCESS_COOKIE = "s_access"
REFRESH_COOKIE = "s_refresh"
log = logging.getLogger("eco2.security")


class TokenRevoked(Forbidden):
    default_code = "TOKEN_REVOKED"
    default_detail = "This session was revoked; sign in again."


def bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def ensure_not_revoked(redis_client: redis.Redis, claims: TokenClaims) -> None:
    """The token itself, its session (refresh family) and every session of its user, in one MGET."""
    keys = [blacklist_key(claims.jti), revoked_before_key(claims.sub)]
    if claims.sid:
        keys.append(session_revoked_key(claims.sid))
    revoked, revoked_before, *session = redis_client.mget(keys)
    if revoked is not None or (session and session[0] is not None):
        raise TokenRevoked()
    if revoked_before is not None and claims.iat <= int(float(revoked_before)):
        raise TokenRevoked()


def verify(
    codec: TokenCodec, redis_client: redis.Redis, token: str | None, token_type: TokenType = "access"
) -> TokenClaims:
    if not token:
        raise Unauthorized()
    claims = codec.verify(token, token_type)
    check_not_revoked(redis_client, claims)
    return claims


def check_not_revoked(redis_client: redis.Redis, claims: TokenClaims, view: RevocationView | None = None) -> None:
    """`ensure_not_revoked` against this process's view of the keys (`view`, default the one kept for
    `redis_client`) when it is current (`RevocationView.current`), else against Redis (one MGET)."""
    view = view or revocation_view(redis_client)
    if view is not None and view.current():
        ensure_not_revoked(view, claims)  # type: ignore[arg-type]
    else:
        ensure_not_revoked(redis_client, claims)


def revoke(redis_client: redis.Redis, claims: TokenClaims, now: float | None = None) -> bool:
    """Blacklist one token for the rest of its lifetime. False when it already was (reuse)."""
    ttl = claims.seconds_left(now)
    if ttl <= 0:
        return True
    return bool(redis_client.set(blacklist_key(claims.jti), "1", ex=ttl, nx=True))


def revoke_session(redis_client: redis.Redis, session_id: str, max_lifetime: int) -> None:
    """Every token of the session (refresh family) is refused, including ones issued later from it."""
    redis_client.set(session_revoked_key(session_id), str(int(time.time())), ex=max_lifetime)


def revoke_all(redis_client: redis.Redis, user_id: str, max_lifetime: int) -> None:
    """Every token of the user issued up to now is refused (account deletion)."""
    redis_client.set(revoked_before_key(user_id), str(int(time.time())), ex=max_lifetime)


# -- the local view of the revocation keys ----------------------------------------------------------
REVOCATION_PREFIXES = ("blacklist:", "revoked_before:", "revoked_session:")
STALENESS_BOUND = 1.0  # seconds: the view answers only while confirmed current up to this long ago
PING_INTERVAL = 0.1  # seconds between the feed's heartbeats (well under the bound: two make one proof)
IDLE_STOP = 30.0  # seconds without a check before the feed is closed (reopened by the next check)
_LOAD_BATCH = 500


@functools.cache
def _poll_now() -> Any:
    """poll(2) of one descriptor with a zero timeout, called with the GIL held: `select.poll`
    gives the GIL up around every call, and under concurrent requests taking it back costs a
    thread switch; this check runs on every authenticated request (tests/benchmarks/
    bench_framework.py, the no-I/O route: 0.85x the bare hello with select.poll, 0.90x without
    any check). A zero timeout never blocks, so holding the GIL through it is safe. Where libc
    cannot be loaded this way, select.poll stands in. Built on first use (ctypes is imported only
    by processes that keep a view)."""
    try:
        import ctypes

        class PollFd(ctypes.Structure):
            _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]

        libc_poll = ctypes.PyDLL(None).poll  # PyDLL: the call keeps the GIL
        libc_poll.argtypes = [ctypes.POINTER(PollFd), ctypes.c_ulong, ctypes.c_int]
        libc_poll.restype = ctypes.c_int
    except (ImportError, OSError, AttributeError):
        libc_poll = None
    mask = select.POLLIN | select.POLLERR | select.POLLHUP

    def pending(fd: int) -> bool:
        """Unread bytes, end of file or an error on `fd` (True also when the check itself fails)."""
        if libc_poll is not None:
            entry = PollFd(fd, mask, 0)
            return bool(libc_poll(ctypes.byref(entry), 1, 0) != 0)
        poller = select.poll()
        try:
            poller.register(fd, mask)
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    return pending


class RevocationView:
    """This process's copy of every revocation key (`blacklist:*`, `revoked_before:*`,
    `revoked_session:*`), kept current from Redis so a request's revocation check needs no network
    round trip; the rule applied is `ensure_not_revoked`, unchanged (the view stands in for MGET).

    The feed: one dedicated connection (RESP2) with server-assisted client tracking in broadcast
    mode on those prefixes, redirected to itself and subscribed to `__redis__:invalidate`. Redis
    then names every key written, deleted or expired under the prefixes, by anyone: the functions'
    own `revoke*` above, the auth function's refresh-reuse pipeline, an operator's redis-cli. No
    publisher has to remember to announce anything and no server configuration is needed
    (keyspace notifications would need `notify-keyspace-events`). A named key is re-read (MGET) and
    the copy updated; a flush (a null invalidation) reloads everything. On every (re)connect,
    tracking is switched on first, then the keys are loaded with SCAN + MGET, so a write during the
    load shows up as an invalidation after it.

    Staleness bound, stated and enforced: the view answers only while `current()`, i.e.
      1. synced: loaded since the last (re)connect, and
      2. confirmed current within `bound` seconds (default 1 s): the feed sends `PING` every
         `ping_interval` (0.1 s), one at a time. Redis queues broadcast invalidations before the
         replies of the next event-loop turn, so when the answer to ping k arrives, every
         invalidation of a write executed before ping k-1 was sent has been applied;
         `confirmed` is that send time, and a check at t uses the view only if
         t - confirmed <= bound, and
      3. nothing pending: the feed's socket has no unread bytes and no batch is being applied
         (a `poll` of the socket, no round trip). A revocation is usually written to the feed
         before its writer gets its reply, so in practice a check right after a revocation
         elsewhere already sees it; the guarantee is the bound.
    So a revocation is refused everywhere at most `bound` seconds after Redis executed it.

    Fail-closed: when the feed is lost (connection closed, heartbeat unanswered for `bound`,
    tracking refused, a reload in progress) the view is not current and `check_not_revoked`
    falls back to the per-request MGET until the feed is back and reloaded. Falling back rather
    than refusing: the MGET is the check as strict as before (and if Redis itself is unreachable
    it raises, which the runtime answers 503), so losing the feed costs latency, never a
    revocation and never an outage of every signed-in request.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        *,
        bound: float = STALENESS_BOUND,
        ping_interval: float = PING_INTERVAL,
        idle_stop: float = IDLE_STOP,
        feed_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """`feed_kwargs`: connection settings of the feed (default: the client's own server)."""
        pool = redis_client.connection_pool
        self._client = weakref.ref(redis_client)
        self._connection_class = pool.connection_class
        kwargs = {k: v for k, v in pool.connection_kwargs.items() if not k.startswith(("maint_notifications", "orig_"))}
        self._kwargs = {**kwargs, **(feed_kwargs or {}), "protocol": 2, "socket_timeout": max(bound, 1.0)}
        self.bound, self.ping_interval, self.idle_stop = bound, ping_interval, idle_stop
        self._values: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._pid = os.getpid()
        self._synced = False
        self._busy = False
        self._confirmed = float("-inf")
        self._fd: int | None = None
        self._feed_id: int | None = None
        self.last_used = time.monotonic()
        self.reloads = 0  # full loads done (each (re)connect, each flush)

    # -- asked by the request threads
    def current(self) -> bool:
        """May the copy answer now (see the class docstring)? Starts the feed when it is not running."""
        self.last_used = time.monotonic()
        if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
            self.start()
            return False
        if not self._synced or self._busy or time.monotonic() - self._confirmed > self.bound:
            return False
        fd = self._fd
        if fd is None:
            return False
        if _poll_now()(fd):
            return False  # something arrived that is not applied yet (or the socket failed)
        return self._synced and not self._busy  # re-read after the socket: a batch read before the poll is applied

    def mget(self, keys: Iterable[str]) -> list[Any]:
        values = self._values
        return [values.get(key) for key in keys]

    @property
    def feed_client_id(self) -> int | None:
        """The feed connection's Redis client id (CLIENT LIST / CLIENT KILL), None while down."""
        return self._feed_id

    # -- the feed
    def start(self) -> None:
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's thread and socket are not ours
                self._pid, self._thread, self._synced, self._fd = os.getpid(), None, False, None
                self._stopping = threading.Event()
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stopping,), name="eco2-revocation-view", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)

    def _run(self, stopping: threading.Event) -> None:
        backoff = 0.05
        while not stopping.is_set():
            if time.monotonic() - self.last_used > self.idle_stop or self._client() is None:
                return
            try:
                self._session(stopping)
                backoff = 0.05
            except Exception as exc:
                log.warning("revocation feed lost, checking in Redis per request", extra={"error": repr(exc)})
            finally:
                self._synced, self._fd, self._feed_id, self._confirmed = False, None, None, float("-inf")
            stopping.wait(backoff)
            backoff = min(backoff * 2, 2.0)

    def _session(self, stopping: threading.Event) -> None:
        connection = self._connection_class(**self._kwargs)
        try:
            connection.connect()
            connection.send_command("CLIENT", "ID")
            feed_id = int(connection.read_response())
            connection.send_command(
                "CLIENT", "TRACKING", "ON", "REDIRECT", feed_id, "BCAST",
                *(part for prefix in REVOCATION_PREFIXES for part in ("PREFIX", prefix)),
            )  # fmt: skip
            if connection.read_response() not in (b"OK", "OK"):
                raise RuntimeError("CLIENT TRACKING refused")
            connection.send_command("SUBSCRIBE", "__redis__:invalidate")
            connection.read_response()
            self._fd, self._feed_id = connection._sock.fileno(), feed_id
            self._reload()
            sent: float | None = None  # the outstanding ping's send time
            previous: float | None = None  # the send time of the last answered one
            next_ping, seq = 0.0, 0
            while not stopping.is_set():
                now = time.monotonic()
                if now - self.last_used > self.idle_stop or self._client() is None:
                    return
                if sent is None and now >= next_ping:
                    seq += 1
                    sent, next_ping = now, now + self.ping_interval
                    connection.send_command("PING", str(seq))
                elif sent is not None and now - sent > self.bound:
                    raise TimeoutError("revocation feed heartbeat unanswered")
                wait = next_ping - now if sent is None else self.bound - (now - sent)
                poller = select.poll()
                poller.register(self._fd, select.POLLIN | select.POLLERR | select.POLLHUP)
                poller.poll(max(1, int(wait * 1000)))
                self._busy = True
                try:
                    while connection.can_read(timeout=0):
                        message = connection.read_response()
                        kind = message[0] if isinstance(message, list) and message else None
                        if kind in (b"pong", "pong"):
                            if previous is not None:
                                self._confirmed = previous
                            previous, sent = sent, None
                        elif kind in (b"message", "message"):
                            self._invalidate(message[2])
                finally:
                    self._busy = False
        finally:
            self._synced = False
            connection.disconnect()

    def _redis(self) -> redis.Redis:
        client = self._client()
        if client is None:
            raise RuntimeError("the Redis client is gone")
        return client

    def _reload(self) -> None:
        self._synced = False
        client = self._redis()
        keys = [k for prefix in REVOCATION_PREFIXES for k in client.scan_iter(match=prefix + "*", count=1000)]
        values: dict[str, Any] = {}
        for i in range(0, len(keys), _LOAD_BATCH):
            batch = [k.decode() if isinstance(k, bytes) else str(k) for k in keys[i : i + _LOAD_BATCH]]
            for key, value in zip(batch, client.mget(batch), strict=True):
                if value is not None:
                    values[key] = value
        self._values = values
        self.reloads += 1
        self._synced = True

    def _invalidate(self, keys: Sequence[Any] | None) -> None:
        if keys is None:  # FLUSHDB / FLUSHALL (on any database: tracking is server-wide)
            self._reload()
            return
        names = [k.decode() if isinstance(k, bytes) else str(k) for k in keys]
        fresh = self._redis().mget(names)  # a key of another database reads as absent here
        values = dict(self._values)
        for key, value in zip(names, fresh, strict=True):
            if value is None:
                values.pop(key, None)
            else:
                values[key] = value
        self._values = values


_VIEWS: dict[int, RevocationView] = {}
_VIEWS_LOCK = threading.Lock()


def revocation_view(redis_client: redis.Redis) -> RevocationView | None:
    """The view kept for this Redis client (created on first use), or None when it cannot have one:
    not a synchronous redis-py network client (the embedded in-memory one of `eco2 dev`; an async
    client: the async runtime keeps its view over a synchronous client of its own,
    `eco2.serving.aio.AsyncClients.revocation_view`), or switched off with `ECO2_REVOCATION_VIEW=off`."""
    view = _VIEWS.get(id(redis_client))
    if view is not None:
        return view
    pool = getattr(redis_client, "connection_pool", None)
    module = getattr(getattr(pool, "connection_class", None), "__module__", "")
    if not module.startswith("redis.") or module.startswith("redis.asyncio"):
        return None
    if os.environ.get("ECO2_REVOCATION_VIEW", "on").lower() in ("off", "0", "false", "no"):
        return None
    with _VIEWS_LOCK:
        view = _VIEWS.get(id(redis_client))
        if view is None:
            view = RevocationView(redis_client)
            key = id(redis_client)
            _VIEWS[key] = view
            weakref.finalize(redis_client, _forget, key, view)
    return view


def release_view(redis_client: redis.Redis) -> None:
    """Stop the view kept for `redis_client` (its clients are closing)."""
    view = _VIEWS.get(id(redis_client))
    if view is not None:
        _forget(id(redis_client), view)


def _forget(key: int, view: RevocationView) -> None:
    if _VIEWS.get(key) is view:
        del _VIEWS[key]
    view._stopping.set()
