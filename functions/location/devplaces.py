"""A stand-in for Kakao Local keyword search (development and tests): the same path, auth header
and answer shape, over the project's own collection points and a few well-known places.

    GET <prefix>/v2/local/search/keyword.json?query=강남역&size=15
    Authorization: KakaoAK <key>
    -> {"documents": [{"id", "place_name", "address_name", "road_address_name", "x", "y",
                       "phone", "place_url", "category_name", "distance"}], "meta": {...}}
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import Any

from werkzeug.wrappers import Request, Response

from functions.location.load import POINTS_FILE
from functions.location.places import KEYWORD_PATH

# a handful of stations and squares, so "search here" finds somewhere in development
LANDMARKS = (
    ("9000000001", "서울역", "서울 용산구 한강대로 405", 37.5547, 126.9707),
    ("9000000002", "서울시청", "서울 중구 세종대로 110", 37.5663, 126.9779),
    ("9000000003", "강남역", "서울 강남구 강남대로 396", 37.4979, 127.0276),
    ("9000000004", "홍대입구역", "서울 마포구 양화로 160", 37.5572, 126.9245),
    ("9000000005", "수원역", "경기 수원시 팔달구 덕영대로 924", 37.2660, 127.0001),
    ("9000000006", "대전역", "대전 동구 중앙로 215", 36.3325, 127.4343),
    ("9000000007", "동대구역", "대구 동구 동대구로 550", 35.8794, 128.6286),
    ("9000000008", "광주송정역", "광주 광산구 상무대로 201", 35.1375, 126.7930),
    ("9000000009", "전주역", "전북 전주시 덕진구 동부대로 680", 35.8499, 127.1618),
    ("9000000010", "부산역", "부산 동구 중앙대로 206", 35.1152, 129.0422),
)


def document(
    place_id: str, name: str, address: str, lat: float, lon: float, *, road: str = "", phone: str = "", url: str = ""
) -> dict[str, Any]:
    return {
        "id": place_id,
        "place_name": name,
        "address_name": address,
        "road_address_name": road or address,
        "x": f"{lon:.7f}",
        "y": f"{lat:.7f}",
        "phone": phone,
        "place_url": url or f"http://place.map.kakao.com/{place_id}",
        "category_name": "",
        "category_group_code": "",
        "distance": "",
    }


class KakaoLocalStandIn:
    """WSGI app answering keyword searches from `documents` (every query word in name or address)."""

    def __init__(self, key: str, documents: Iterable[dict[str, Any]]) -> None:
        self.key = key
        self.documents = list(documents)

    @classmethod
    def with_project_points(cls, key: str) -> KakaoLocalStandIn:
        docs = [document(*landmark) for landmark in LANDMARKS]
        with POINTS_FILE.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                if row["latitude"]:
                    docs.append(
                        document(
                            f"8{row['id']:0>10}",
                            row["name"],
                            row["lot_address"] or row["road_address"],
                            float(row["latitude"]),
                            float(row["longitude"]),
                            road=row["road_address"],
                            phone=row["phone"],
                        )
                    )
        return cls(key, docs)

    def search(self, query: str, size: int) -> list[dict[str, Any]]:
        words = query.lower().split()
        hits = [
            d
            for d in self.documents
            if words
            and all(w in f"{d['place_name']} {d['address_name']} {d['road_address_name']}".lower() for w in words)
        ]
        hits.sort(key=lambda d: not d["place_name"].lower().startswith(words[0]) if words else True)
        return hits[:size]

    def respond(self, request: Request) -> Response:
        if not request.path.endswith(KEYWORD_PATH):
            return _json({"errorType": "NotFound", "message": "unknown path"}, 404)
        if request.headers.get("Authorization") != f"KakaoAK {self.key}":
            return _json({"errorType": "AccessDeniedError", "message": "wrong appkey"}, 401)
        query = request.args.get("query", "").strip()
        if not query:
            return _json({"errorType": "MissingParameter", "message": "query parameter required"}, 400)
        size = max(1, min(15, int(request.args.get("size", "15") or 15)))
        hits = self.search(query, size)
        meta = {"total_count": len(hits), "pageable_count": len(hits), "is_end": True, "same_name": None}
        return _json({"documents": hits, "meta": meta})

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.respond(Request(environ))(environ, start_response)


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, content_type="application/json")
