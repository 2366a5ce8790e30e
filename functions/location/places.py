"""The place-search provider: Kakao Local keyword search, behind one small port.

    GET {KAKAO_LOCAL_BASE_URL}/v2/local/search/keyword.json?query=..&size=..
    Authorization: KakaoAK {KAKAO_REST_API_KEY}

Every call is time-bounded (KAKAO_LOCAL_TIMEOUT, connect and read); a timeout, a refused
connection, a non-200 answer or a body that is not Kakao's shape raises `PlacesUnavailable`, which
the service turns into database results. The adapter is built once per process on first use.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from functions.location.schemas import LocationConfig

log = logging.getLogger("eco2.location.places")
KEYWORD_PATH = "/v2/local/search/keyword.json"


class PlacesUnavailable(Exception):
    """The provider did not answer usefully in time."""


@dataclass(frozen=True)
class Place:
    id: str
    name: str
    address: str
    road_address: str
    latitude: float
    longitude: float
    phone: str
    place_url: str


class PlaceSearch(Protocol):
    def keyword(self, query: str, *, size: int) -> list[Place]: ...


class KakaoLocal:
    def __init__(self, base_url: str, api_key: str, timeout: float) -> None:
        self.url = base_url.rstrip("/") + KEYWORD_PATH
        self._auth = f"KakaoAK {api_key}"
        self.timeout = timeout
        self._local = threading.local()  # one keep-alive session per thread (requests' are not thread safe)

    def _session(self) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            import requests

            session = self._local.session = requests.Session()
        return session

    def keyword(self, query: str, *, size: int) -> list[Place]:
        import requests

        try:
            response = self._session().get(
                self.url,
                params={"query": query, "size": max(1, min(15, size))},
                headers={"Authorization": self._auth},
                timeout=(self.timeout, self.timeout),
            )
        except requests.RequestException as exc:
            log.warning("place search failed", extra={"error": type(exc).__name__})
            raise PlacesUnavailable(type(exc).__name__) from None
        if response.status_code != 200:
            log.warning("place search answered an error", extra={"status": response.status_code})
            raise PlacesUnavailable(f"HTTP {response.status_code}")
        try:
            return [_place(doc) for doc in response.json()["documents"]]
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("place search answered an unexpected body", extra={"error": type(exc).__name__})
            raise PlacesUnavailable("unexpected body") from None


def _place(doc: dict[str, Any]) -> Place:
    return Place(
        id=str(doc["id"]),
        name=str(doc["place_name"]),
        address=str(doc.get("address_name") or ""),
        road_address=str(doc.get("road_address_name") or ""),
        latitude=float(doc["y"]),
        longitude=float(doc["x"]),
        phone=str(doc.get("phone") or ""),
        place_url=str(doc.get("place_url") or ""),
    )


@functools.cache
def provider(config: LocationConfig) -> PlaceSearch | None:
    """The configured provider, or None without a key (search then uses the database alone)."""
    if config.kakao_rest_api_key is None or not config.kakao_rest_api_key.get_secret_value():
        return None
    return KakaoLocal(
        config.kakao_local_base_url, config.kakao_rest_api_key.get_secret_value(), config.kakao_local_timeout
    )
