"""Image uploads, free of HTTP: presign a PUT, remember it in Redis, confirm it against S3.

Flow: `create_upload` picks the key `{channel}/{uuid-hex}{.ext}` and signs an S3 PUT of its
*pending* object `pending/{key}` (the Content-Type is part of the signature, and the Content-Length
too when the client declared a size, so S3 refuses any other), and records `image:pending:{key}`
→ who asked, what type, which size, for the URL's lifetime plus a margin. The client PUTs the
bytes straight to S3, then calls back: `confirm_upload` checks the pending record belongs to the
caller and the channel, HEADs the pending object, checks its type and size (an oversized or empty
object is deleted, and the answer says why), copies it to `{key}` (where the CDN serves it), removes
the pending object, and records the confirmed upload for `scan` (functions/common/uploads.py).

Unconfirmed uploads expire: `pending/` is the prefix of the bucket's lifecycle rule in AWS
(infra/terraform/modules/images), and `sweep_pending` deletes what is older than
IMAGES_PENDING_MAX_AGE, at most once per IMAGES_SWEEP_INTERVAL (a presign starts it), everywhere
else. No database: Redis holds the state, and S3 the image.
"""

from __future__ import annotations

import json
import logging
import threading
import unicodedata
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from eco2.core.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
    UpstreamError,
)
from functions.common.uploads import CHANNELS, KEY_RE, ConfirmedUpload, ConfirmedUploads
from functions.images.config import PENDING_MARGIN, UPLOAD_TTL, ImagesConfig
from functions.images.schemas import ImageRecord, UploadCallback, UploadRequest, UploadTicket

if TYPE_CHECKING:
    import redis

    from eco2.core.settings import Settings

log = logging.getLogger("functions.images")

EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/heic": ".heic",
    "image/heif": ".heif",
}
PENDING_PREFIX = "image:pending:"  # Redis: the pending upload's record
PENDING_OBJECTS = "pending/"  # S3: where an upload waits for its callback (the lifecycle rule's prefix)
SWEEP_LOCK = "image:sweep"
SWEEP_BATCH = 1000  # keys per DeleteObjects call (S3's maximum)
SWEEP_PAGES = 10  # a sweep looks at 10 000 pending objects at most; the next one goes on
MAX_FILENAME = 255
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


def check_size(size: int | None, limit: int) -> None:
    if size is not None and size > limit:
        raise PayloadTooLarge(f"size: {size} bytes is more than the {limit} bytes an image may have", "IMAGE_TOO_LARGE")


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


def pending_object(key: str) -> str:
    return PENDING_OBJECTS + key


def _storage_failed(what: str, exc: BaseException) -> UpstreamError:
    code = ""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
    log.error(f"S3 {what} failed", extra={"error": code or type(exc).__name__})
    return UpstreamError("The image store failed; try again shortly.", "STORAGE_UNAVAILABLE")


def create_upload(
    s3: Any,
    redis_client: redis.Redis,
    settings: Settings,
    config: ImagesConfig,
    user_id: str,
    channel: str,
    request: UploadRequest,
) -> UploadTicket:
    check_channel(channel)
    content_type, extension = check_content_type(request.content_type)
    check_size(request.size, config.images_max_bytes)
    filename = safe_filename(request.filename)
    key = f"{channel}/{uuid.uuid4().hex}{extension}"
    params: dict[str, Any] = {"Bucket": settings.s3_bucket, "Key": pending_object(key), "ContentType": content_type}
    headers = {"Content-Type": content_type}
    if request.size is not None:
        params["ContentLength"] = request.size
        headers["Content-Length"] = str(request.size)
    try:
        url: str = s3.generate_presigned_url("put_object", Params=params, ExpiresIn=UPLOAD_TTL, HttpMethod="PUT")
    except Exception as exc:  # botocore: no credentials, bad configuration
        log.error("presigning failed", extra={"error": type(exc).__name__})
        raise UpstreamError("Uploads are unavailable right now; try again shortly.", "STORAGE_UNAVAILABLE") from None
    record = {
        "user_id": user_id,
        "channel": channel,
        "content_type": content_type,
        "size": request.size,
        "filename": filename,
        "created_at": datetime.now(UTC).isoformat(),
    }
    redis_client.set(pending_key(key), json.dumps(record, ensure_ascii=False), ex=UPLOAD_TTL + PENDING_MARGIN)
    maybe_sweep(s3, redis_client, settings.s3_bucket, config)
    return UploadTicket(
        key=key,
        upload_url=url,
        cdn_url=cdn_url(settings, key),
        expires_in=UPLOAD_TTL,
        required_headers=headers,
        filename=filename,
    )


def _not_pending() -> NotFound:
    return NotFound("No pending upload for this key.", "NOT_FOUND")


def _load_pending(redis_client: redis.Redis, user_id: str, channel: str, key: str) -> dict[str, Any]:
    """The caller's pending upload of `key` in `channel`; 404 for anything else (unknown, expired,
    already confirmed, another user's, another channel's: all look the same from outside)."""
    found = KEY_RE.fullmatch(key)
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
        raise _storage_failed("HEAD", exc) from None
    except BotoCoreError as exc:
        raise _storage_failed("HEAD", exc) from None
    return head


def _bare_etag(value: str) -> str:
    value = value.strip()
    if value.startswith("W/"):
        value = value[2:]
    return value.strip('"')


def _refuse(
    s3: Any, redis_client: redis.Redis, bucket: str, key: str, error: Conflict | PayloadTooLarge | Unprocessable
) -> None:
    """This upload can never be confirmed: its object and its record go, the client asks for a new URL."""
    from botocore.exceptions import BotoCoreError, ClientError

    redis_client.delete(pending_key(key))
    try:
        s3.delete_object(Bucket=bucket, Key=pending_object(key))
    except (BotoCoreError, ClientError) as exc:  # the sweep or the lifecycle rule gets it later
        log.warning("deleting a refused upload failed", extra={"error": type(exc).__name__})
    raise error


def _check_stored(
    s3: Any, redis_client: redis.Redis, bucket: str, config: ImagesConfig, key: str, pending: dict[str, Any]
) -> tuple[str, int, str]:
    """(content type, size, etag) of the pending object, when its type and size are what was asked for."""
    head = _head(s3, bucket, pending_object(key))
    stored_type = str(head.get("ContentType", "")).split(";")[0].strip().lower()
    size = int(head.get("ContentLength", 0))
    limit = config.images_max_bytes
    if stored_type != pending.get("content_type"):
        _refuse(
            s3,
            redis_client,
            bucket,
            key,
            Conflict(
                f"content_type: the stored object is {stored_type or 'untyped'}, not {pending.get('content_type')}",
                "CONTENT_TYPE_MISMATCH",
            ),
        )
    if size > limit:
        detail = f"size: the uploaded image is {size} bytes, more than the {limit} allowed; it was deleted"
        _refuse(s3, redis_client, bucket, key, PayloadTooLarge(detail, "IMAGE_TOO_LARGE"))
    if size == 0:
        _refuse(s3, redis_client, bucket, key, Unprocessable("size: the uploaded image is empty", "IMAGE_EMPTY"))
    declared = pending.get("size")
    if declared is not None and size != declared:
        detail = f"size: the uploaded image is {size} bytes, not the {declared} declared; it was deleted"
        _refuse(s3, redis_client, bucket, key, Unprocessable(detail, "SIZE_MISMATCH"))
    return stored_type, size, _bare_etag(str(head.get("ETag", "")))


def _publish(s3: Any, bucket: str, key: str, etag: str) -> datetime:
    """Copy the checked pending object to its key (only if it is still the one checked), then drop it."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        copied = s3.copy_object(
            Bucket=bucket,
            Key=key,
            CopySource={"Bucket": bucket, "Key": pending_object(key)},
            CopySourceIfMatch=f'"{etag}"',
            MetadataDirective="COPY",
        )
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 412 or exc.response.get("Error", {}).get("Code") == "PreconditionFailed":
            raise Conflict(
                "The image changed while it was being confirmed; confirm it again.", "UPLOAD_CHANGED"
            ) from None
        raise _storage_failed("COPY", exc) from None
    except BotoCoreError as exc:
        raise _storage_failed("COPY", exc) from None
    try:
        s3.delete_object(Bucket=bucket, Key=pending_object(key))
    except (BotoCoreError, ClientError) as exc:  # harmless: the sweep or the lifecycle rule removes it
        log.warning("deleting a confirmed upload's pending object failed", extra={"error": type(exc).__name__})
    modified = copied.get("CopyObjectResult", {}).get("LastModified")
    return modified if isinstance(modified, datetime) else datetime.now(UTC)


def confirm_upload(
    s3: Any,
    redis_client: redis.Redis,
    settings: Settings,
    config: ImagesConfig,
    user_id: str,
    channel: str,
    callback: UploadCallback,
) -> ImageRecord:
    check_channel(channel)
    key = callback.key.strip()
    bucket = settings.s3_bucket
    pending = _load_pending(redis_client, user_id, channel, key)
    stored_type, size, head_etag = _check_stored(s3, redis_client, bucket, config, key, pending)
    if callback.etag is not None and _bare_etag(callback.etag) != head_etag:
        raise Conflict("etag: the stored object is not the one you uploaded; upload it again", "ETAG_MISMATCH")
    raw = redis_client.getdel(pending_key(key))  # claim it: of two concurrent callbacks one goes on
    if raw is None:
        raise _not_pending()
    try:
        uploaded_at = _publish(s3, bucket, key, head_etag)
    except Exception:
        redis_client.set(pending_key(key), raw, ex=UPLOAD_TTL + PENDING_MARGIN)  # let the client call back again
        raise
    record = ImageRecord(
        key=key,
        channel=channel,
        content_type=stored_type,
        size=size,
        etag=head_etag,
        cdn_url=cdn_url(settings, key),
        uploaded_at=uploaded_at,
        filename=str(pending.get("filename") or "image"),
    )
    ConfirmedUploads(redis_client).record(
        ConfirmedUpload(
            key=key,
            user_id=user_id,
            channel=channel,
            content_type=stored_type,
            size=size,
            cdn_url=record.cdn_url,
            confirmed_at=datetime.now(UTC).isoformat(),
        )
    )
    return record


# -- expiry of unconfirmed uploads -------------------------------------------------------------------


def sweep_pending(s3: Any, bucket: str, max_age: int, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> int:
    """Delete the pending objects last written more than `max_age` seconds ago; the number deleted.
    Their records are gone by then (they live UPLOAD_TTL + PENDING_MARGIN), so none can be confirmed."""
    cutoff = now() - timedelta(seconds=max_age)
    deleted = 0
    paginator = s3.get_paginator("list_objects_v2")
    pages = paginator.paginate(
        Bucket=bucket, Prefix=PENDING_OBJECTS, PaginationConfig={"MaxItems": SWEEP_BATCH * SWEEP_PAGES}
    )
    for page in pages:
        old = [{"Key": item["Key"]} for item in page.get("Contents", []) if item["LastModified"] < cutoff]
        if old:
            answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": old, "Quiet": True})
            deleted += len(old) - len(answer.get("Errors", []))
    return deleted


def maybe_sweep(s3: Any, redis_client: redis.Redis, bucket: str, config: ImagesConfig) -> threading.Thread | None:
    """Start a sweep in the background when none ran in the last IMAGES_SWEEP_INTERVAL (one across
    every pod, through a Redis lock); the caller never waits for it."""
    interval = config.images_sweep_interval
    if interval <= 0 or not redis_client.set(SWEEP_LOCK, "1", nx=True, ex=interval):
        return None

    def run() -> None:
        try:
            deleted = sweep_pending(s3, bucket, config.images_pending_max_age)
        except Exception as exc:  # a sweep that fails is retried at the next interval
            log.warning("sweeping unconfirmed uploads failed", extra={"error": type(exc).__name__})
            return
        if deleted:
            log.info("unconfirmed uploads deleted", extra={"count": deleted})

    thread = threading.Thread(target=run, name="images-sweep", daemon=True)
    thread.start()
    return thread
