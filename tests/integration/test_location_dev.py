"""location through `eco2 dev` with nothing configured (a real process, real HTTP): the points are
there with no extra step (the migration loads them into the embedded SQLite), and place search
goes through the Kakao Local stand-in that the function mounts for development."""

from __future__ import annotations

import os
from pathlib import Path

import requests

from tests.integration.test_eco2_dev import ORIGIN, start_dev, stop


def test_the_map_works_on_embedded_defaults(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "RABBITMQ_URL", "K_SINK")}
    env.pop("KAKAO_REST_API_KEY", None)
    env.pop("KAKAO_LOCAL_BASE_URL", None)
    env["ALLOWED_ORIGINS"] = ORIGIN
    env["ECO2_DEV_DATA"] = str(tmp_path / "data")
    proc, base = start_dev(env, tmp_path)
    try:
        api = f"{base}/api/v1/locations"
        nearby = requests.get(f"{api}/centers", params={"lat": 37.5665, "lon": 126.978, "zoom": 10}, timeout=10)
        assert nearby.status_code == 200, nearby.text
        assert len(nearby.json()) > 5 and nearby.headers["Content-Type"].startswith("application/json")
        # the stand-in knows a few stations: the first hit is the station, our points around it follow
        found = requests.get(f"{api}/search", params={"q": "강남역", "radius": 3000}, timeout=10).json()
        assert found[0]["name"] == "강남역" and found[0]["source"] == "kakao" and found[0]["distance_km"] == 0
        assert any(item["source"] in ("keco", "zerowaste") for item in found)
        suggestions = requests.get(f"{api}/suggest", params={"q": "서울역"}, timeout=10).json()
        assert suggestions[0]["place_name"] == "서울역"
        # the stand-in itself answers like Kakao, and only with its key
        direct = requests.get(f"{base}/dev/kakao-local/v2/local/search/keyword.json", params={"query": "x"}, timeout=10)
        assert direct.status_code == 401
        detail = requests.get(f"{api}/centers/{nearby.json()[0]['id']}", headers={"Origin": ORIGIN}, timeout=10)
        assert detail.status_code == 200 and detail.headers["Access-Control-Allow-Origin"] == ORIGIN
    finally:
        stop(proc)
