"""One SSRF-safe fetcher for every server-side GET of a URL that came from outside.

    fetcher = Fetcher(timeout=3.0, max_bytes=256 * 1024)
    page = fetcher.get("https://news.example/article/1", truncate=True)   # -> Fetched

What it guarantees (issue 9, item 6):

- `http` and `https` only, no credentials in the URL;
- every address the name resolves to is checked, and one forbidden address refuses the whole
  name: loopback, private, link-local, unique-local, multicast, reserved, unspecified, shared
  (CGNAT), documentation, and anything else that is not globally routable; IPv4 carried inside
  IPv6 (mapped, 6to4, Teredo, NAT64) is checked as the IPv4 it carries; the cloud metadata
  addresses (169.254.169.254, fd00:ec2::254) are refused even when a test allow-lists their network;
- the connection goes to the checked address itself (no second DNS lookup, so DNS rebinding
  between check and connect is impossible); TLS still verifies the certificate for the name;
- every redirect is parsed and checked again, at most `max_redirects` of them;
- the whole exchange (connect, TLS, headers, body, redirects) is bounded by one deadline, and the
  body by `max_bytes`;
- proxies from the environment are ignored (a proxy would resolve the name again).

`allow_networks` is the explicit opt-in for tests and local stand-ins (e.g. ["127.0.0.1/32"]);
production passes nothing.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]

METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024


class FetchError(Exception):
    """The fetch did not produce a body (refused, failed, too slow or too large)."""


class FetchRefused(FetchError):
    """The URL, or an address its name resolves to, is not allowed."""


class FetchFailed(FetchError):
    """Network error, timeout, too many redirects, or a body over the size bound."""


@dataclass(frozen=True)
class Fetched:
    url: str  # the final URL, after redirects
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes
    truncated: bool = False
    redirects: tuple[str, ...] = field(default=())

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchFailed(f"{host}: the name does not resolve") from exc
    out: list[str] = []
    for *_rest, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in out:
            out.append(address)
    return out


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def forbidden_reason(address: IPAddress, allow: Iterable[Network] = ()) -> str | None:
    """Why `address` may not be fetched from, or None when it may."""
    if address in METADATA_ADDRESSES:
        return "the cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            reason = forbidden_reason(inner, allow)
            return None if reason is None else f"{reason} (inside {address})"
        if address.scope_id:
            return "a scoped (link-local) address"
    if any(address in network for network in allow):
        return None
    for reason, hit in (
        ("a loopback address", address.is_loopback),
        ("a link-local address", address.is_link_local),
        ("a multicast address", address.is_multicast),
        ("the unspecified address", address.is_unspecified),
        ("a private address", address.is_private),
        ("a reserved address", address.is_reserved),
    ):
        if hit:
            return reason
    if isinstance(address, ipaddress.IPv6Address) and address in ipaddress.ip_network("fc00::/7"):
        return "a unique-local address"
    if not address.is_global:
        return "an address that is not globally routable"
    return None


class _PinnedHTTP(http.client.HTTPConnection):
    """HTTP to a given address; the Host header still names the host."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a given address; SNI and certificate verification use the host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.address = address
        self.tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(raw, server_hostname=self.host)


class Fetcher:
    def __init__(
        self,
        *,
        timeout: float = 5.0,
        max_bytes: int = 1024 * 1024,
        max_redirects: int = 3,
        allow_networks: Iterable[str] = (),
        resolver: Resolver | None = None,
        user_agent: str = "Eco2-Fetcher/1.0",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if timeout <= 0 or max_bytes <= 0 or max_redirects < 0:
            raise ValueError("timeout and max_bytes must be positive, max_redirects not negative")
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.allow: tuple[Network, ...] = tuple(ipaddress.ip_network(n, strict=False) for n in allow_networks)
        self.resolve: Resolver = resolver or system_resolver
        self.user_agent = user_agent
        self.tls = tls or ssl.create_default_context()

    # -- checks ---------------------------------------------------------------------------------
    def check_url(self, url: str) -> tuple[str, str, int, str]:
        """(scheme, host, port, path+query) of an acceptable URL; FetchRefused otherwise."""
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            raise FetchRefused(f"not a valid URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise FetchRefused(f"scheme {scheme or '(none)'!r} is not allowed (http and https are)")
        if parts.username is not None or parts.password is not None:
            raise FetchRefused("credentials in the URL are not allowed")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise FetchRefused("the URL has no host")
        try:
            ipaddress.ip_address(host)  # a literal address is checked as it is
        except ValueError:
            try:
                host = host.encode("idna").decode("ascii")
            except UnicodeError:
                raise FetchRefused("the host name is not valid") from None
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return scheme, host, port or (443 if scheme == "https" else 80), target

    def addresses(self, host: str, port: int) -> list[str]:
        """Every address of `host`, each one checked; one forbidden address refuses the host."""
        try:
            literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        found = [str(literal)] if literal is not None else self.resolve(host, port)
        if not found:
            raise FetchFailed(f"{host}: the name has no address")
        for text in found:
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                raise FetchRefused(f"{host}: resolved to something that is not an address") from None
            reason = forbidden_reason(address, self.allow)
            if reason is not None:
                raise FetchRefused(f"{host} resolves to {reason}")
        return found

    # -- fetching -------------------------------------------------------------------------------
    def get(self, url: str, *, accept: str = "*/*", max_bytes: int | None = None, truncate: bool = False) -> Fetched:
        """GET `url` within the bounds. `truncate`: keep the first `max_bytes` of a larger body
        (e.g. an HTML page's head) instead of failing."""
        limit = max_bytes or self.max_bytes
        deadline = time.monotonic() + self.timeout
        seen: list[str] = []
        current = url
        while True:
            scheme, host, port, target = self.check_url(current)
            candidates = self.addresses(host, port)
            status, headers, body, truncated = self._exchange(
                scheme, host, port, target, candidates, accept, limit, truncate, deadline
            )
            if status in _REDIRECTS and headers.get("location"):
                if len(seen) >= self.max_redirects:
                    raise FetchFailed(f"more than {self.max_redirects} redirects")
                seen.append(current)
                current = urljoin(current, headers["location"])
                continue
            return Fetched(current, status, headers, body, truncated, tuple(seen))

    def _exchange(
        self,
        scheme: str,
        host: str,
        port: int,
        target: str,
        candidates: list[str],
        accept: str,
        limit: int,
        truncate: bool,
        deadline: float,
    ) -> tuple[int, dict[str, str], bytes, bool]:
        last: Exception | None = None
        for address in candidates:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            conn: http.client.HTTPConnection
            if scheme == "https":
                conn = _PinnedHTTPS(host, port, address, remaining, self.tls)
            else:
                conn = _PinnedHTTP(host, port, address, remaining)
            # a hard stop at the deadline, whatever the peer does (slow headers, a trickling body)
            watchdog = threading.Timer(remaining, _abort, args=(conn,))
            watchdog.daemon = True
            watchdog.start()
            try:
                try:
                    conn.connect()
                except OSError as exc:  # try the next address of the name
                    last = exc
                    continue
                return self._read(conn, target, accept, limit, truncate, deadline)
            except FetchError:
                raise
            except (OSError, http.client.HTTPException, ValueError) as exc:
                if time.monotonic() >= deadline:
                    raise FetchFailed(f"no answer within {self.timeout}s") from None
                raise FetchFailed(f"{host}: {type(exc).__name__}") from None
            finally:
                watchdog.cancel()
                conn.close()
        if time.monotonic() >= deadline:
            raise FetchFailed(f"no answer within {self.timeout}s")
        raise FetchFailed(f"{host}: could not connect ({type(last).__name__ if last else 'no address'})")

    def _read(
        self, conn: http.client.HTTPConnection, target: str, accept: str, limit: int, truncate: bool, deadline: float
    ) -> tuple[int, dict[str, str], bytes, bool]:
        conn.putrequest("GET", target, skip_accept_encoding=True)
        conn.putheader("Accept", accept)
        conn.putheader("Accept-Encoding", "identity")
        conn.putheader("User-Agent", self.user_agent)
        conn.putheader("Connection", "close")
        conn.endheaders()
        response = conn.getresponse()
        headers = {k.lower(): v for k, v in response.getheaders()}
        if response.status in _REDIRECTS:
            return response.status, headers, b"", False
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit and not truncate:
            raise FetchFailed(f"the body is larger than {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        truncated = False
        while True:
            if time.monotonic() >= deadline:
                raise FetchFailed(f"no answer within {self.timeout}s")
            chunk = response.read1(min(_CHUNK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                if not truncate:
                    raise FetchFailed(f"the body is larger than {limit} bytes")
                truncated = True
                break
        body = b"".join(chunks)[:limit]
        return response.status, headers, body, truncated


def _abort(conn: Any) -> None:
    sock = getattr(conn, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
