"""eco2.core.fetch, the SSRF-safe fetcher: against a real local HTTP server and names that resolve to
forbidden addresses (issue 9, item 6)."""

from __future__ import annotations

import ipaddress
import ssl
import threading
import time
from collections.abc import Iterator

import pytest

from eco2.core.fetch import Fetcher, FetchFailed, FetchRefused, forbidden_reason
from tests.support.news_server import NewsServer

LOCAL = ["127.0.0.1/32"]


@pytest.fixture(scope="module")
def web() -> Iterator[NewsServer]:
    server = NewsServer()
    server.page("hello", image="/img/hello.jpg")
    yield server
    server.close()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "169.254.10.10",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::1",  # 6to4 around 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 around 169.254.169.254
        "64:ff9b::a00:1",  # NAT64 around 10.0.0.1
        "2001:db8::1",
    ],
)
def test_forbidden_addresses(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "2002:5db8:d822::1"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


def test_the_metadata_address_stays_refused_even_when_its_network_is_allowed() -> None:
    everything = [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
    assert forbidden_reason(ipaddress.ip_address("169.254.169.254"), everything) == "the cloud metadata address"
    assert forbidden_reason(ipaddress.ip_address("fd00:ec2::254"), everything) == "the cloud metadata address"
    assert forbidden_reason(ipaddress.ip_address("10.0.0.1"), everything) is None


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/x",
        "gopher://127.0.0.1:6379/_INFO",
        "javascript:alert(1)",
        "data:text/html,hi",
        "http://user:pass@example.com/",
        "http:///nohost",
        "http://exa mple.com:notaport/",
    ],
)
def test_only_plain_http_and_https_urls(url: str) -> None:
    with pytest.raises(FetchRefused):
        Fetcher().get(url)


def test_a_local_server_is_refused_by_default(web: NewsServer) -> None:
    port = web.server.server_port
    for url in (f"http://127.0.0.1:{port}/pages/hello", f"http://localhost:{port}/pages/hello"):
        with pytest.raises(FetchRefused):
            Fetcher().get(url)
    assert "hello" not in web.page_hits  # refused before connecting


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1]/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://0x7f000001/",  # 127.0.0.1 spelled in hex: resolved by the system, then refused
        "http://2130706433/",  # and as one decimal number
        "http://169.254.169.254./latest/",  # a trailing dot
    ],
)
def test_literal_and_odd_spellings_of_forbidden_addresses(url: str) -> None:
    with pytest.raises(FetchRefused):
        Fetcher(allow_networks=["0.0.0.0/0", "::/0"] if "169.254" in url or "ec2" in url else ()).get(url)


def test_a_public_ipv6_literal_is_a_valid_url() -> None:
    assert Fetcher().check_url("https://[2606:4700:4700::1111]/dns") == ("https", "2606:4700:4700::1111", 443, "/dns")


def test_fetches_from_an_explicitly_allowed_network(web: NewsServer) -> None:
    page = Fetcher(allow_networks=LOCAL).get(f"{web.base_url}/pages/hello")
    assert page.status == 200 and page.content_type == "text/html"
    assert b'property="og:image" content="/img/hello.jpg"' in page.body


@pytest.mark.parametrize(
    ("name", "addresses"),
    [
        ("metadata.attacker.test", ["169.254.169.254"]),
        ("internal.attacker.test", ["10.0.0.7"]),
        ("v6.attacker.test", ["::1"]),
        ("mixed.attacker.test", ["93.184.216.34", "192.168.0.10"]),  # one bad address refuses the name
        ("mapped.attacker.test", ["::ffff:10.0.0.1"]),
    ],
)
def test_names_resolving_to_forbidden_addresses_are_refused(name: str, addresses: list[str]) -> None:
    calls: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return addresses

    with pytest.raises(FetchRefused):
        Fetcher(resolver=resolver).get(f"http://{name}/x")
    assert calls == [name]


def test_connects_to_the_checked_address_without_a_second_lookup(web: NewsServer) -> None:
    """`pinned.test` exists only in this resolver: the page arrives, so the connection went to the
    address that was checked, and the name was resolved exactly once."""
    calls: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    page = Fetcher(resolver=resolver, allow_networks=LOCAL).get(
        f"http://pinned.test:{web.server.server_port}/pages/hello"
    )
    assert page.status == 200 and b"hello" in page.body
    assert calls == ["pinned.test"]


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, ssl.SSLContext]]:
    """A local HTTPS server whose certificate names only `pinned.test` (self-signed, made here)."""
    import subprocess

    from werkzeug.serving import make_server
    from werkzeug.wrappers import Response

    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=pinned.test",
            "-addext",
            "subjectAltName=DNS:pinned.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(cert, key)
    server = make_server("127.0.0.1", 0, Response("secure hello"), ssl_context=served)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    trusting = ssl.create_default_context(cafile=str(cert))
    yield server.server_port, trusting
    server.shutdown()
    server.server_close()


def test_https_to_the_checked_address_verifies_the_certificate_for_the_name(
    tls_server: tuple[int, ssl.SSLContext],
) -> None:
    port, trusting = tls_server
    fetcher = Fetcher(resolver=lambda host, _port: ["127.0.0.1"], allow_networks=LOCAL, tls=trusting)
    page = fetcher.get(f"https://pinned.test:{port}/")
    assert page.status == 200 and page.body == b"secure hello"
    with pytest.raises(FetchFailed):  # the same address under another name: the certificate does not match
        fetcher.get(f"https://other.test:{port}/")
    with pytest.raises(FetchFailed):  # and with the system's trust store the self-signed one is refused
        Fetcher(resolver=lambda host, _port: ["127.0.0.1"], allow_networks=LOCAL).get(f"https://pinned.test:{port}/")


def test_every_redirect_is_checked_again(web: NewsServer) -> None:
    fetcher = Fetcher(allow_networks=LOCAL)
    for target in ("http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/admin", "file:///etc/passwd"):
        with pytest.raises(FetchRefused):
            fetcher.get(f"{web.base_url}/redirect?to={target}")
    page = fetcher.get(f"{web.base_url}/redirect?to=/pages/hello")
    assert page.status == 200 and page.url == f"{web.base_url}/pages/hello"
    assert page.redirects == (f"{web.base_url}/redirect?to=/pages/hello",)


def test_redirects_are_bounded(web: NewsServer) -> None:
    loop = f"{web.base_url}/loop"
    with pytest.raises(FetchFailed, match="redirects"):
        Fetcher(allow_networks=LOCAL, max_redirects=3).get(loop)


def test_the_body_is_bounded(web: NewsServer) -> None:
    fetcher = Fetcher(allow_networks=LOCAL, max_bytes=64 * 1024, timeout=10)
    with pytest.raises(FetchFailed, match="larger than"):
        fetcher.get(f"{web.base_url}/huge")
    head = fetcher.get(f"{web.base_url}/huge", truncate=True)
    assert head.truncated and len(head.body) == 64 * 1024 and head.body.startswith(b"<html><head>")


def test_the_whole_exchange_is_bounded_in_time(web: NewsServer) -> None:
    started = time.monotonic()
    with pytest.raises(FetchFailed, match="within"):
        Fetcher(allow_networks=LOCAL, timeout=1.0).get(f"{web.base_url}/slow")
    assert time.monotonic() - started < 2.5


def test_a_closed_port_fails_cleanly() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchFailed, match="could not connect"):
        Fetcher(allow_networks=LOCAL, timeout=2).get(f"http://127.0.0.1:{port}/")
