"""`eco2 dev` with nothing configured starts an embedded S3 (moto): the banner says where, and the
upload flow works on it end to end (presign, the browser's PUT, confirm, served at its key); the
browser may PUT only from the web app's origins (CORS)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import requests

from tests.integration.test_eco2_dev import ORIGIN, sign_in, start_dev, stop

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))


def test_embedded_s3_banner_and_upload_flow(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "RABBITMQ_URL", "K_SINK", "S3_ENDPOINT_URL", "S3_BUCKET")
    }
    env["ALLOWED_ORIGINS"] = ORIGIN
    env["ECO2_DEV_DATA"] = str(tmp_path / "data")
    proc, base = start_dev(env, tmp_path)
    try:
        banner = (tmp_path / "dev.log").read_text()
        found = re.search(r"embedded S3 \(moto\) at (http://127\.0\.0\.1:\d+), bucket (\S+)", banner)
        assert found, banner
        endpoint, bucket = found.group(1), found.group(2)
        assert bucket == "eco2-images"
        assert "loopback only, no credential checks" in banner

        session = sign_in(base, provider="kakao", nickname="uploader")
        headers = {"Origin": ORIGIN}
        ticket = session.post(
            f"{base}/api/v1/images/scan",
            json={"filename": "bottle.png", "content_type": "image/png", "size": len(PNG)},
            headers=headers,
            timeout=10,
        )
        assert ticket.status_code == 200, ticket.text
        body = ticket.json()
        assert body["upload_url"].startswith(f"{endpoint}/{bucket}/pending/{body['key']}?")

        # CORS on the embedded bucket: the web app's origin may PUT, another origin may not
        def preflight(origin: str) -> requests.Response:
            return requests.options(
                body["upload_url"],
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": "PUT",
                    "Access-Control-Request-Headers": "content-type",
                },
                timeout=10,
            )

        allowed = preflight(ORIGIN)
        assert allowed.status_code == 200 and allowed.headers.get("Access-Control-Allow-Origin") == ORIGIN
        assert "PUT" in allowed.headers.get("Access-Control-Allow-Methods", "")
        assert preflight("http://evil.example").status_code == 403  # the browser never sends the PUT

        put = requests.put(
            body["upload_url"], data=PNG, headers={**body["required_headers"], "Origin": ORIGIN}, timeout=10
        )
        assert put.status_code == 200, put.text
        assert requests.get(f"{endpoint}/{bucket}/{body['key']}", timeout=10).status_code == 404  # not yet served

        confirmed = session.post(
            f"{base}/api/v1/images/scan/callback",
            json={"key": body["key"], "etag": put.headers["ETag"]},
            headers=headers,
            timeout=10,
        )
        assert confirmed.status_code == 200, confirmed.text
        record = confirmed.json()
        assert record["size"] == len(PNG) and record["content_type"] == "image/png"
        served = requests.get(record["cdn_url"], timeout=10)  # what the app's <img> does: no credentials
        assert served.status_code == 200 and served.content == PNG
        # an unconfirmed upload is never served (as in production, where the CDN may not read pending/)
        other = session.post(
            f"{base}/api/v1/images/scan", json={"filename": "x.png", "content_type": "image/png"}, timeout=10
        ).json()
        assert requests.put(other["upload_url"], data=PNG, headers=other["required_headers"], timeout=10).ok
        pending = other["upload_url"].split("?")[0]
        assert requests.get(pending, timeout=10).status_code == 403
    finally:
        stop(proc)
