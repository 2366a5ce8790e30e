"""images against a real S3-compatible server over HTTP (tests/support/s3_server.py) and the real Redis.

The presigned URL is exercised with real bytes through `requests`, as the app's browser would, and
the object is then read back with boto3; a PUT with another Content-Type (or, when a size was
declared, another length) is refused by the server's signature check, as S3 refuses it. Uploads
wait under `pending/` until the callback checks them and publishes them at their key; oversized
ones are deleted with a 413 that says why, and unconfirmed ones are swept.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from eco2.serving.testing import FunctionClient
from functions.common.uploads import ConfirmedUploads
from functions.images import service
from functions.images.config import ImagesConfig
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
        # the sweep of unconfirmed uploads runs only where a test asks for it
        return function_client("images", **{**s3_server.env(), "IMAGES_SWEEP_INTERVAL": "0", **extra})

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
    client: FunctionClient,
    access: str,
    channel: str = "scan",
    content_type: str = "image/png",
    filename: str = "a.png",
    **extra: Any,
) -> dict[str, Any]:
    body = {"filename": filename, "content_type": content_type, **extra}
    response = client.post(f"/api/v1/images/{channel}", json=body, headers=auth(access))
    assert response.status_code == 200, response.get_data(as_text=True)
    return dict(response.json)


def callback(client: FunctionClient, access: str, key: str, channel: str = "scan", **extra: str) -> Any:
    return client.post(f"/api/v1/images/{channel}/callback", json={"key": key, **extra}, headers=auth(access))


def exists(s3_server: S3Server, key: str) -> bool:
    try:
        s3_server.client().head_object(Bucket=s3_server.bucket, Key=key)
    except ClientError as exc:
        assert exc.response["Error"]["Code"] in ("404", "NoSuchKey")
        return False
    return True


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
    # the PUT goes to the upload's pending object, under the lifecycle rule's prefix
    assert ticket["upload_url"].startswith(f"{s3_server.url}/{s3_server.bucket}/pending/{ticket['key']}?")
    assert "X-Amz-SignedHeaders=content-type%3Bhost" in ticket["upload_url"]  # the type is signed
    assert "X-Amz-Expires=900" in ticket["upload_url"]

    record = pending(images, ticket["key"])
    assert record is not None
    assert (record["user_id"], record["content_type"], record["filename"]) == (user_id, "image/jpeg", "photo.jpeg")
    assert 900 < images.runtime.clients.redis.ttl(f"image:pending:{ticket['key']}") <= 900 + 120

    # the browser's PUT: raw bytes, the requested Content-Type, no cookies
    put = requests.put(ticket["upload_url"], data=JPEG, headers=ticket["required_headers"], timeout=10)
    assert put.status_code == 200, put.text
    s3 = s3_server.client()
    stored = s3.get_object(Bucket=s3_server.bucket, Key=f"pending/{ticket['key']}")
    assert stored["Body"].read() == JPEG and stored["ContentType"] == "image/jpeg"
    assert not exists(s3_server, ticket["key"])  # not served before it is confirmed

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

    # published at its key, the pending object gone; scan can now see it was this user's
    published = s3.get_object(Bucket=s3_server.bucket, Key=ticket["key"])
    assert published["Body"].read() == JPEG and published["ContentType"] == "image/jpeg"
    assert not exists(s3_server, f"pending/{ticket['key']}")
    confirmed = ConfirmedUploads(images.runtime.clients.redis).owned(ticket["key"], user_id)
    assert confirmed is not None and confirmed.cdn_url == ticket["cdn_url"] and confirmed.size == len(JPEG)
    assert ConfirmedUploads(images.runtime.clients.redis).owned(ticket["key"], str(uuid.uuid4())) is None

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
    assert not exists(s3_server, f"pending/{ticket['key']}")

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
    pending_object = f"pending/{ticket['key']}"
    s3_server.client().put_object(Bucket=s3_server.bucket, Key=pending_object, Body=b"<html>", ContentType="text/html")
    assert_error(callback(images, access, ticket["key"]), 409, "CONTENT_TYPE_MISMATCH")
    assert pending(images, ticket["key"]) is None
    assert not exists(s3_server, pending_object) and not exists(s3_server, ticket["key"])


def test_an_etag_that_does_not_match_is_refused(images: FunctionClient) -> None:
    _, access = token(images)
    ticket = presign(images, access)
    put = requests.put(ticket["upload_url"], data=PNG, headers=ticket["required_headers"], timeout=10)
    assert put.status_code == 200
    assert_error(callback(images, access, ticket["key"], etag='"0123456789abcdef"'), 409, "ETAG_MISMATCH")
    response = callback(images, access, ticket["key"], etag=put.headers["ETag"])  # quoted, as S3 sends it
    assert response.status_code == 200


# -- size bounds -------------------------------------------------------------------------------------


def test_a_declared_size_is_signed_and_s3_refuses_any_other_length(images: FunctionClient, s3_server: S3Server) -> None:
    _, access = token(images)
    ticket = presign(images, access, size=len(PNG))
    assert ticket["required_headers"] == {"Content-Type": "image/png", "Content-Length": str(len(PNG))}
    assert "X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost" in ticket["upload_url"]
    assert pending(images, ticket["key"])["size"] == len(PNG)  # type: ignore[index]

    longer = requests.put(
        ticket["upload_url"], data=PNG + b"\x00" * 4096, headers={"Content-Type": "image/png"}, timeout=10
    )
    assert longer.status_code == 403 and "SignatureDoesNotMatch" in longer.text
    assert not exists(s3_server, f"pending/{ticket['key']}")

    ok = requests.put(ticket["upload_url"], data=PNG, headers=ticket["required_headers"], timeout=10)
    assert ok.status_code == 200, ok.text
    response = callback(images, access, ticket["key"])
    assert response.status_code == 200 and response.json["size"] == len(PNG)


def test_a_declared_size_over_the_limit_is_413_at_presign(make_images: Callable[..., FunctionClient]) -> None:
    images = make_images(IMAGES_MAX_BYTES="1000")
    _, access = token(images)
    response = images.post(
        "/api/v1/images/scan",
        json={"filename": "a.png", "content_type": "image/png", "size": 1001},
        headers=auth(access),
    )
    body = assert_error(response, 413, "IMAGE_TOO_LARGE")
    assert "1001" in body["detail"] and "1000" in body["detail"]
    assert images.runtime.clients.redis.keys("image:pending:*") == []
    assert presign(images, access, size=1000)["required_headers"]["Content-Length"] == "1000"
    for bad in (0, -5, "big"):
        response = images.post(
            "/api/v1/images/scan",
            json={"filename": "a.png", "content_type": "image/png", "size": bad},
            headers=auth(access),
        )
        assert_error(response, 422, "VALIDATION_ERROR")


def test_an_oversized_upload_is_deleted_at_the_callback_with_413(
    make_images: Callable[..., FunctionClient], s3_server: S3Server
) -> None:
    images = make_images(IMAGES_MAX_BYTES="1000")
    _, access = token(images)
    ticket = presign(images, access)  # no size declared: S3 takes any length, the callback checks it
    big = PNG + b"\x00" * 2000
    assert requests.put(ticket["upload_url"], data=big, headers=ticket["required_headers"], timeout=10).ok
    assert exists(s3_server, f"pending/{ticket['key']}")

    body = assert_error(callback(images, access, ticket["key"]), 413, "IMAGE_TOO_LARGE")
    assert str(len(big)) in body["detail"] and "1000" in body["detail"] and "deleted" in body["detail"]
    assert not exists(s3_server, f"pending/{ticket['key']}") and not exists(s3_server, ticket["key"])
    assert pending(images, ticket["key"]) is None
    assert ConfirmedUploads(images.runtime.clients.redis).get(ticket["key"]) is None
    assert_error(callback(images, access, ticket["key"]), 404, "NOT_FOUND")  # it can never be confirmed now


def test_an_empty_upload_or_another_length_than_declared_is_refused(
    images: FunctionClient, s3_server: S3Server
) -> None:
    _, access = token(images)
    ticket = presign(images, access)
    assert requests.put(ticket["upload_url"], data=b"", headers=ticket["required_headers"], timeout=10).ok
    assert_error(callback(images, access, ticket["key"]), 422, "IMAGE_EMPTY")
    assert not exists(s3_server, f"pending/{ticket['key']}")

    ticket = presign(images, access, size=10)
    # written behind the function's back, so the signed length did not apply
    s3_server.client().put_object(
        Bucket=s3_server.bucket, Key=f"pending/{ticket['key']}", Body=PNG, ContentType="image/png"
    )
    body = assert_error(callback(images, access, ticket["key"]), 422, "SIZE_MISMATCH")
    assert str(len(PNG)) in body["detail"] and "10" in body["detail"]
    assert not exists(s3_server, f"pending/{ticket['key']}")


# -- unconfirmed uploads expire ----------------------------------------------------------------------


def test_the_sweep_deletes_only_old_pending_objects(images: FunctionClient, s3_server: S3Server) -> None:
    _, access = token(images)
    s3 = images.runtime.clients.s3
    confirmed = presign(images, access)
    assert requests.put(confirmed["upload_url"], data=PNG, headers=confirmed["required_headers"], timeout=10).ok
    assert callback(images, access, confirmed["key"]).status_code == 200
    left = presign(images, access)
    assert requests.put(left["upload_url"], data=PNG, headers=left["required_headers"], timeout=10).ok

    # young: kept (its callback may still come)
    service.sweep_pending(s3, s3_server.bucket, 1020)
    assert exists(s3_server, f"pending/{left['key']}")
    # seen from 1021 s later: gone; the confirmed image is not under pending/ and stays
    later = datetime.now(UTC) + timedelta(seconds=1021)
    assert service.sweep_pending(s3, s3_server.bucket, 1020, now=lambda: later) >= 1
    assert not exists(s3_server, f"pending/{left['key']}")
    assert exists(s3_server, confirmed["key"])
    assert_error(callback(images, access, left["key"]), 404, "UPLOAD_NOT_FOUND")


def test_a_presign_starts_one_sweep_per_interval(
    make_images: Callable[..., FunctionClient], s3_server: S3Server
) -> None:
    images = make_images(IMAGES_SWEEP_INTERVAL="60", IMAGES_PENDING_MAX_AGE="1")
    redis_client = images.runtime.clients.redis
    _, access = token(images)
    old = presign(images, access)
    assert requests.put(old["upload_url"], data=PNG, headers=old["required_headers"], timeout=10).ok
    assert 0 < redis_client.ttl(service.SWEEP_LOCK) <= 60  # the first presign took the interval's sweep
    time.sleep(2.1)  # S3 times are whole seconds: now the upload is older than 1 s

    redis_client.delete(service.SWEEP_LOCK)  # the interval is over
    presign(images, access)  # starts the sweep in the background; the answer does not wait for it
    deadline = time.monotonic() + 10
    while exists(s3_server, f"pending/{old['key']}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not exists(s3_server, f"pending/{old['key']}")

    # within the interval no other sweep starts
    config = ImagesConfig(images_sweep_interval=60, images_pending_max_age=1)
    assert service.maybe_sweep(images.runtime.clients.s3, redis_client, s3_server.bucket, config) is None
    redis_client.delete(service.SWEEP_LOCK)
    thread = service.maybe_sweep(images.runtime.clients.s3, redis_client, s3_server.bucket, config)
    assert thread is not None
    thread.join(10)
    off = ImagesConfig(images_sweep_interval=0)
    redis_client.delete(service.SWEEP_LOCK)
    assert service.maybe_sweep(images.runtime.clients.s3, redis_client, s3_server.bucket, off) is None


def test_concurrent_callbacks_confirm_once(images: FunctionClient, s3_server: S3Server) -> None:
    from concurrent.futures import ThreadPoolExecutor

    _, access = token(images)
    ticket = presign(images, access)
    assert requests.put(ticket["upload_url"], data=PNG, headers=ticket["required_headers"], timeout=10).ok
    with ThreadPoolExecutor(6) as pool:
        statuses = sorted(pool.map(lambda _: callback(images, access, ticket["key"]).status_code, range(6)))
    assert statuses[0] == 200 and statuses.count(200) == 1 and set(statuses[1:]) <= {404}, statuses
    assert exists(s3_server, ticket["key"]) and not exists(s3_server, f"pending/{ticket['key']}")


def test_a_body_over_the_routes_bound_is_413(images: FunctionClient) -> None:
    _, access = token(images)
    body = json.dumps({"filename": "a" * 20000 + ".png", "content_type": "image/png"})
    response = images.post("/api/v1/images/scan", data=body, content_type="application/json", headers=auth(access))
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


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
