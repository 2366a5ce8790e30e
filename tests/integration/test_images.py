"""images against a real S3-compatible server over HTTP (tests/support/s3_server.py) and the real Redis.

The presigned URL is exercised with real bytes through `requests`, as the app's browser would, and
the object is then read back with boto3; a PUT with another Content-Type is refused by the server's
signature check, as S3 refuses it.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from eco2.testing import FunctionClient
from tests.support.s3_server import S3Server, s3_server_fixture  # noqa: F401  (registers the s3_server fixture)

# a 1×1 PNG and the start of a JPEG: real image bytes (S3 does not look inside, but the test is honest)
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
JPEG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffdb0043000806060706050806") + b"\x00" * 64 + b"\xff\xd9"
KEY_RE = re.compile(r"^(scan|chat|my)/[0-9a-f]{32}\.(jpg|png|webp|gif|heic|heif)$")

Make = Callable[..., FunctionClient]


@pytest.fixture
def make_images(function_client: Make, s3_server: S3Server) -> Callable[..., FunctionClient]:
    """The images function pointed at the test S3 server (credentials through its settings)."""

    def make(**extra: str) -> FunctionClient:
        return function_client("images", **{**s3_server.env(), **extra})

    return make


@pytest.fixture
def images(make_images: Callable[..., FunctionClient]) -> FunctionClient:
    return make_images()


def token(client: FunctionClient, user_id: str | None = None) -> tuple[str, str]:
    user_id = user_id or str(uuid.uuid4())
    return user_id, client.runtime.clients.tokens.issue(user_id, "access", "kakao").token


def auth(access: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access}"}


def assert_error(response: Any, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.json
    assert set(body) == {"detail", "code"}, body
    assert body["code"] == code and isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in body["detail"]
    return dict(body)


def presign(
    client: FunctionClient, access: str, channel: str = "scan", content_type: str = "image/png", filename: str = "a.png"
) -> dict[str, Any]:
    response = client.post(
        f"/api/v1/images/{channel}", json={"filename": filename, "content_type": content_type}, headers=auth(access)
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return dict(response.json)


def callback(client: FunctionClient, access: str, key: str, channel: str = "scan", **extra: str) -> Any:
    return client.post(f"/api/v1/images/{channel}/callback", json={"key": key, **extra}, headers=auth(access))


def pending(client: FunctionClient, key: str) -> dict[str, Any] | None:
    raw = client.runtime.clients.redis.get(f"image:pending:{key}")
    return None if raw is None else dict(json.loads(raw))


# -- the whole flow ----------------------------------------------------------------------------------


def test_presigned_put_stores_real_bytes_and_callback_answers_the_record(
    images: FunctionClient,
    s3_server: S3Server,
) -> None:
    user_id, access = token(images)
    ticket = presign(images, access, "scan", "image/jpeg", "photo.jpeg")

    assert set(ticket) >= {"key", "upload_url", "cdn_url", "expires_in", "required_headers"}
    assert KEY_RE.match(ticket["key"]) and ticket["key"].startswith("scan/") and ticket["key"].endswith(".jpg")
    assert ticket["expires_in"] == 900
    assert ticket["required_headers"] == {"Content-Type": "image/jpeg"}
    assert ticket["cdn_url"] == f"{s3_server.url}/{s3_server.bucket}/{ticket['key']}"
    assert ticket["upload_url"].startswith(f"{s3_server.url}/{s3_server.bucket}/{ticket['key']}?")
    assert "X-Amz-SignedHeaders=content-type%3Bhost" in ticket["upload_url"]  # the type is signed
    assert "X-Amz-Expires=900" in ticket["upload_url"]

    record = pending(images, ticket["key"])
    assert record is not None
    assert (record["user_id"], record["content_type"], record["filename"]) == (user_id, "image/jpeg", "photo.jpeg")
    assert 900 < images.runtime.clients.redis.ttl(f"image:pending:{ticket['key']}") <= 900 + 120

    # the browser's PUT: raw bytes, the requested Content-Type, no cookies
    put = requests.put(ticket["upload_url"], data=JPEG, headers=ticket["required_headers"], timeout=10)
    assert put.status_code == 200, put.text
    stored = s3_server.client().get_object(Bucket=s3_server.bucket, Key=ticket["key"])
    assert stored["Body"].read() == JPEG and stored["ContentType"] == "image/jpeg"

    response = callback(images, access, ticket["key"], etag=put.headers["ETag"])
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.json
    assert set(body) >= {"key", "channel", "content_type", "size", "etag", "cdn_url", "uploaded_at"}
    assert body["key"] == ticket["key"] and body["channel"] == "scan"
    assert body["content_type"] == "image/jpeg" and body["size"] == len(JPEG)
    assert body["etag"] == hashlib.md5(JPEG).hexdigest()
    assert body["cdn_url"] == ticket["cdn_url"] and body["filename"] == "photo.jpeg"
    assert datetime.fromisoformat(body["uploaded_at"]).utcoffset() is not None
    assert pending(images, ticket["key"]) is None

    assert_error(callback(images, access, ticket["key"]), 404, "NOT_FOUND")  # once only


def test_cookie_auth_and_the_other_channels(images: FunctionClient) -> None:
    _, access = token(images)
    images.set_cookie("s_access", access)
    for channel in ("chat", "my"):
        response = images.post(f"/api/v1/images/{channel}", json={"filename": "x.webp", "content_type": "image/webp"})
        assert response.status_code == 200
        assert response.json["key"].startswith(f"{channel}/") and response.json["key"].endswith(".webp")


def test_cdn_url_uses_the_cdn_base_url(make_images: Callable[..., FunctionClient]) -> None:
    client = make_images(CDN_BASE_URL="https://images.example.com/")
    _, access = token(client)
    ticket = presign(client, access, "my", "image/png")
    assert ticket["cdn_url"] == f"https://images.example.com/{ticket['key']}"


@pytest.mark.parametrize(
    ("content_type", "extension"),
    [
        ("image/jpeg", ".jpg"),
        ("image/png", ".png"),
        ("image/webp", ".webp"),
        ("image/gif", ".gif"),
        ("image/heic", ".heic"),
        ("image/heif", ".heif"),
        (" IMAGE/PNG ", ".png"),
    ],
)
def test_the_extension_comes_from_the_content_type(images: FunctionClient, content_type: str, extension: str) -> None:
    _, access = token(images)
    ticket = presign(images, access, content_type=content_type, filename="whatever.exe")
    assert ticket["key"].endswith(extension) and KEY_RE.match(ticket["key"])
    assert ticket["required_headers"] == {"Content-Type": content_type.strip().lower()}


# -- S3 enforces what was signed ---------------------------------------------------------------------


def test_a_put_with_another_content_type_is_refused(images: FunctionClient, s3_server: S3Server) -> None:
    _, access = token(images)
    ticket = presign(images, access, content_type="image/png")

    refused = requests.put(ticket["upload_url"], data=PNG, headers={"Content-Type": "text/html"}, timeout=10)
    assert refused.status_code == 403 and "SignatureDoesNotMatch" in refused.text
    refused = requests.put(ticket["upload_url"], data=PNG, headers={"Content-Type": "image/jpeg"}, timeout=10)
    assert refused.status_code == 403 and "SignatureDoesNotMatch" in refused.text
    with pytest.raises(ClientError) as missing:
        s3_server.client().head_object(Bucket=s3_server.bucket, Key=ticket["key"])
    assert missing.value.response["Error"]["Code"] in ("404", "NoSuchKey")

    # nothing uploaded: the callback says so and the pending upload stays for a retry
    assert_error(callback(images, access, ticket["key"]), 404, "UPLOAD_NOT_FOUND")
    assert pending(images, ticket["key"]) is not None

    ok = requests.put(ticket["upload_url"], data=PNG, headers=ticket["required_headers"], timeout=10)
    assert ok.status_code == 200
    response = callback(images, access, ticket["key"])
    assert response.status_code == 200 and response.json["size"] == len(PNG)


def test_the_signed_key_cannot_be_changed(images: FunctionClient) -> None:
    _, access = token(images)
    ticket = presign(images, access)
    other = ticket["upload_url"].replace(ticket["key"], f"scan/{uuid.uuid4().hex}.png")
    refused = requests.put(other, data=PNG, headers=ticket["required_headers"], timeout=10)
    assert refused.status_code == 403


def test_an_object_of_another_type_at_the_key_is_not_confirmed(images: FunctionClient, s3_server: S3Server) -> None:
    _, access = token(images)
    ticket = presign(images, access, content_type="image/png")
    # written behind the function's back (not through the presigned URL)
    s3_server.client().put_object(Bucket=s3_server.bucket, Key=ticket["key"], Body=b"<html>", ContentType="text/html")
    assert_error(callback(images, access, ticket["key"]), 409, "CONTENT_TYPE_MISMATCH")
    assert pending(images, ticket["key"]) is None


def test_an_etag_that_does_not_match_is_refused(images: FunctionClient) -> None:
    _, access = token(images)
    ticket = presign(images, access)
    put = requests.put(ticket["upload_url"], data=PNG, headers=ticket["required_headers"], timeout=10)
    assert put.status_code == 200
    assert_error(callback(images, access, ticket["key"], etag='"0123456789abcdef"'), 409, "ETAG_MISMATCH")
    response = callback(images, access, ticket["key"], etag=put.headers["ETag"])  # quoted, as S3 sends it
    assert response.status_code == 200


# -- who may call back -------------------------------------------------------------------------------


def test_another_users_key_is_not_found(images: FunctionClient) -> None:
    _, owner = token(images)
    _, stranger = token(images)
    ticket = presign(images, owner)
    assert requests.put(ticket["upload_url"], data=PNG, headers=ticket["required_headers"], timeout=10).ok

    assert_error(callback(images, stranger, ticket["key"]), 404, "NOT_FOUND")
    assert pending(images, ticket["key"]) is not None  # the stranger consumed nothing
    assert callback(images, owner, ticket["key"]).status_code == 200


def test_the_channel_must_match(images: FunctionClient) -> None:
    _, access = token(images)
    ticket = presign(images, access, "scan")
    assert requests.put(ticket["upload_url"], data=PNG, headers=ticket["required_headers"], timeout=10).ok
    assert_error(callback(images, access, ticket["key"], channel="chat"), 404, "NOT_FOUND")
    assert callback(images, access, ticket["key"], channel="scan").status_code == 200


@pytest.mark.parametrize(
    "key",
    [f"scan/{uuid.uuid4().hex}.png", "scan/../../etc/passwd", "scan/", "x" * 300, "scan/ABC.png"],
)
def test_unknown_keys_are_not_found(images: FunctionClient, key: str) -> None:
    _, access = token(images)
    assert_error(callback(images, access, key), 404, "NOT_FOUND")


# -- input checks ------------------------------------------------------------------------------------


def test_a_bad_channel_is_400(images: FunctionClient) -> None:
    _, access = token(images)
    response = images.post(
        "/api/v1/images/avatar", json={"filename": "a.png", "content_type": "image/png"}, headers=auth(access)
    )
    body = assert_error(response, 400, "INVALID_CHANNEL")
    assert "channel" in body["detail"]
    assert_error(callback(images, access, f"avatar/{uuid.uuid4().hex}.png", channel="avatar"), 400, "INVALID_CHANNEL")


@pytest.mark.parametrize(
    "content_type",
    ["application/pdf", "text/html", "image/svg+xml", "image/jpeg; charset=binary", "video/mp4", "image/"],
)
def test_non_image_types_are_refused(images: FunctionClient, content_type: str) -> None:
    _, access = token(images)
    response = images.post(
        "/api/v1/images/scan", json={"filename": "a.png", "content_type": content_type}, headers=auth(access)
    )
    body = assert_error(response, 415, "UNSUPPORTED_CONTENT_TYPE")
    assert "content_type" in body["detail"]


@pytest.mark.parametrize(
    ("filename", "kept"),
    [
        ("../../etc/x.png", "x.png"),
        ("/abs/path/y.jpg", "y.jpg"),
        ("C:\\Users\\me\\사진.png", "사진.png"),
        ("..", "image"),
        ("../", "image"),
        ("a\x00b\nc.png", "abc.png"),
    ],
)
def test_filename_path_components_are_stripped(images: FunctionClient, filename: str, kept: str) -> None:
    _, access = token(images)
    ticket = presign(images, access, filename=filename)
    assert ticket["filename"] == kept
    assert ".." not in ticket["key"] and KEY_RE.match(ticket["key"])
    record = pending(images, ticket["key"])
    assert record is not None and record["filename"] == kept


@pytest.mark.parametrize(
    "body",
    [{}, {"filename": "a.png"}, {"content_type": "image/png"}, {"filename": "", "content_type": "image/png"}],
)
def test_missing_fields_are_422(images: FunctionClient, body: dict[str, str]) -> None:
    _, access = token(images)
    response = images.post("/api/v1/images/scan", json=body, headers=auth(access))
    assert_error(response, 422, "VALIDATION_ERROR")


def test_unauthenticated_calls_are_401(images: FunctionClient) -> None:
    body = {"filename": "a.png", "content_type": "image/png"}
    assert_error(images.post("/api/v1/images/scan", json=body), 401, "NOT_AUTHENTICATED")
    assert_error(images.post("/api/v1/images/scan/callback", json={"key": "scan/x.png"}), 401, "NOT_AUTHENTICATED")
    response = images.post("/api/v1/images/scan", json=body, headers=auth("not-a-token"))
    assert response.status_code == 401 and set(response.json) == {"detail", "code"}
    refresh = images.runtime.clients.tokens.issue(str(uuid.uuid4()), "refresh", "kakao").token
    response = images.post("/api/v1/images/scan", json=body, headers=auth(refresh))
    assert response.status_code == 401 and set(response.json) == {"detail", "code"}


def test_readiness_and_wrong_method(images: FunctionClient) -> None:
    assert images.get("/health/readiness").json["checks"] == {"jwt": "ok", "redis": "ok", "s3": "ok"}
    assert_error(images.get("/api/v1/images/scan"), 405, "METHOD_NOT_ALLOWED")
