"""Image uploads, free of HTTP: presign a PUT, remember it in Redis, confirm it against S3.

Flow: `create_upload` signs an S3 PUT for `{channel}/{uuid-hex}{.ext}` (the Content-Type is part of
the signature, so S3 refuses any other) and records `image:pending:{key}` → who asked, what type,
which file name, for the URL's lifetime plus a margin. The client PUTs the bytes straight to S3,
then calls back: `confirm_upload` checks the pending record belongs to the caller and the channel,
HEADs the object, checks its type, and answers the image's record once (the pending key is removed).
No database: Redis holds the only state, and S3 the image.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from eco2.errors import BadRequest, Conflict, NotFound, UnsupportedMediaType, UpstreamError
from functions.images.schemas import ImageRecord, UploadCallback, UploadRequest, UploadTicket

if TYPE_CHECKING:
    import redis

    from eco2.settings import Settings

log = logging.getLogger("functions.images")

CHANNELS = ("scan", "chat", "my")
EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/heic": ".heic",
    "image/heif": ".heif",
}
UPLOAD_TTL = 900  # seconds a presigned PUT stays valid (API.md: 900 s)
PENDING_MARGIN = 120  # the pending record outlives the URL: an upload that began at 899 s can still call back
PENDING_PREFIX = "image:pending:"
MAX_FILENAME = 255
_KEY_RE = re.compile(r"^(?P<channel>[a-z]+)/[0-9a-f]{32}\.(?:jpg|png|webp|gif|heic|heif)$")
_MISSING = {"404", "NoSuchKey", "NotFound"}


def check_channel(channel: str) -> str:
    if channel not in CHANNELS:
        raise BadRequest(f"channel: must be one of {', '.join(CHANNELS)}", "INVALID_CHANNEL")
    return channel


def check_content_type(raw: str) -> tuple[str, str]:
    """(content type, extension) for an accepted image type; 415 UNSUPPORTED_CONTENT_TYPE otherwise.
    Case and surrounding spaces are forgiven; parameters (`; charset=…`) are not accepted."""
    content_type = raw.strip().lower()
    extension = EXTENSIONS.get(content_type)
    if extension is None:
        raise UnsupportedMediaType(
            f"content_type: only {', '.join(EXTENSIONS)} can be uploaded", "UNSUPPORTED_CONTENT_TYPE"
        )
    return content_type, extension


def safe_filename(raw: str) -> str:
    """The last path component, without control characters: `../../etc/x.png` → `x.png`,
    `C:\\photos\\a.jpg` → `a.jpg`. Nothing usable left → `image`."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    if name in ("", ".", ".."):
        return "image"
    return name[:MAX_FILENAME]


def cdn_url(settings: Settings, key: str) -> str:
    """CDN_BASE_URL/key; without a CDN, the object's own URL (the S3 endpoint, path style)."""
    if settings.cdn_base_url:
        return f"{settings.cdn_base_url.rstrip('/')}/{key}"
    if settings.s3_endpoint_url:
        return f"{settings.s3_endpoint_url.rstrip('/')}/{settings.s3_bucket}/{key}"
    return f"https://{settings.s3_bucket}.s3.{settings.s3_region}.amazonaws.com/{key}"


def pending_key(key: str) -> str:
    return PENDING_PREFIX + key


def create_upload(
    s3: Any, redis_client: redis.Redis, settings: Settings, user_id: str, channel: str, request: UploadRequest
) -> UploadTicket:
    check_channel(channel)
    content_type, extension = check_content_type(request.content_type)
    filename = safe_filename(request.filename)
    key = f"{channel}/{uuid.uuid4().hex}{extension}"
    try:
        url: str = s3.generate_presigned_url(
            "put_object",
            Params={"Bucket": settings.s3_bucket, "Key": key, "ContentType": content_type},
            ExpiresIn=UPLOAD_TTL,
            HttpMethod="PUT",
        )
    except Exception as exc:  # botocore: no credentials, bad configuration
        log.error("presigning failed", extra={"error": type(exc).__name__})
        raise UpstreamError("Uploads are unavailable right now; try again shortly.", "STORAGE_UNAVAILABLE") from None
    record = {
        "user_id": user_id,
        "channel": channel,
        "content_type": content_type,
        "filename": filename,
        "created_at": datetime.now(UTC).isoformat(),
    }
    redis_client.set(pending_key(key), json.dumps(record, ensure_ascii=False), ex=UPLOAD_TTL + PENDING_MARGIN)
    return UploadTicket(
        key=key,
        upload_url=url,
        cdn_url=cdn_url(settings, key),
        expires_in=UPLOAD_TTL,
        required_headers={"Content-Type": content_type},
        filename=filename,
    )


def _not_pending() -> NotFound:
    return NotFound("No pending upload for this key.", "NOT_FOUND")


def _load_pending(redis_client: redis.Redis, user_id: str, channel: str, key: str) -> dict[str, str]:
    """The caller's pending upload of `key` in `channel`; 404 for anything else (unknown, expired,
    already confirmed, another user's, another channel's: all look the same from outside)."""
    found = _KEY_RE.fullmatch(key)
    if found is None or found.group("channel") != channel:
        raise _not_pending()
    raw = redis_client.get(pending_key(key))
    if raw is None:
        raise _not_pending()
    try:
        pending = json.loads(raw)
    except ValueError:
        raise _not_pending() from None
    if not isinstance(pending, dict) or pending.get("user_id") != user_id or pending.get("channel") != channel:
        raise _not_pending()
    return pending


def _head(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        head: dict[str, Any] = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        if code in _MISSING or status == "404":
            raise NotFound("The image was not uploaded yet.", "UPLOAD_NOT_FOUND") from None
        log.error("S3 HEAD failed", extra={"error": code or type(exc).__name__})
        raise UpstreamError("The image store failed; try again shortly.", "STORAGE_UNAVAILABLE") from None
    except BotoCoreError as exc:
        log.error("S3 HEAD failed", extra={"error": type(exc).__name__})
        raise UpstreamError("The image store failed; try again shortly.", "STORAGE_UNAVAILABLE") from None
    return head


def _bare_etag(value: str) -> str:
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def confirm_upload(
    s3: Any, redis_client: redis.Redis, settings: Settings, user_id: str, channel: str, callback: UploadCallback
) -> ImageRecord:
    check_channel(channel)
    key = callback.key.strip()
    pending = _load_pending(redis_client, user_id, channel, key)
    head = _head(s3, settings.s3_bucket, key)
    stored_type = str(head.get("ContentType", "")).split(";")[0].strip().lower()
    if stored_type != pending.get("content_type"):
        redis_client.delete(pending_key(key))  # this upload can never be confirmed: ask for a new URL
        raise Conflict(
            f"content_type: the stored object is {stored_type or 'untyped'}, not {pending.get('content_type')}",
            "CONTENT_TYPE_MISMATCH",
        )
    etag = _bare_etag(str(head.get("ETag", "")))
    if callback.etag is not None and _bare_etag(callback.etag) != etag:
        raise Conflict("etag: the stored object is not the one you uploaded; upload it again", "ETAG_MISMATCH")
    if not redis_client.delete(pending_key(key)):
        raise _not_pending()  # a concurrent callback confirmed it first
    uploaded_at = head.get("LastModified")
    if not isinstance(uploaded_at, datetime):
        uploaded_at = datetime.now(UTC)
    return ImageRecord(
        key=key,
        channel=channel,
        content_type=stored_type,
        size=int(head.get("ContentLength", 0)),
        etag=etag,
        cdn_url=cdn_url(settings, key),
        uploaded_at=uploaded_at,
        filename=str(pending.get("filename") or "image"),
    )
