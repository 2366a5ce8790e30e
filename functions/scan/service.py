"""Scan rules free of HTTP: image URL policy, idempotent submission, result and progress reads."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from redis.exceptions import RedisError

from eco2.core.errors import AppError, BadRequest, NotFound, ServiceUnavailable, Unprocessable
from functions.common.scanjobs import JobStore, stream_key
from functions.common.uploads import ConfirmedUploads, key_in_path
from functions.scan.schemas import ScanAccepted, ScanRequest

if TYPE_CHECKING:
    import redis

    from functions.common.llmmodels import ScanModels

log = logging.getLogger("eco2.scan")
IDEMPOTENCY_TTL = 3600
KEEPALIVE_SECONDS = 15
STREAM_LIMIT_SECONDS = 600


def allowed_hosts(configured: tuple[str, ...], cdn_base_url: str, s3_endpoint_url: str) -> frozenset[str]:
    """The hosts a scan image may come from: SCAN_IMAGE_HOSTS, else the CDN and S3 endpoint hosts."""
    hosts = set(configured)
    if not hosts:
        for url in (cdn_base_url, s3_endpoint_url):
            if url:
                hosts.add(urlsplit(url).netloc.lower())
    return frozenset(hosts)


def check_model(model: str | None, models: ScanModels) -> None:
    """A requested model must be one this deployment offers for scans (it decides what is billed)."""
    if model is not None and model not in models.offered():
        raise Unprocessable(
            f"model: not a model offered for scans; choose one of {', '.join(models.offered())}", "MODEL_NOT_ALLOWED"
        )


def check_image_url(url: str, hosts: frozenset[str]) -> None:
    """Only http(s) URLs on the configured image hosts: the worker never fetches arbitrary URLs.
    Whitespace, control characters (CR/LF) and non-ASCII are refused before parsing, since
    urlsplit would silently drop some of them."""
    if not url.isascii() or any(ch <= " " or ch == "\x7f" for ch in url):
        raise BadRequest("image_url must be a plain URL (no spaces or control characters).", "INVALID_IMAGE_URL")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise BadRequest("image_url is not a URL.", "INVALID_IMAGE_URL") from None
    if parts.scheme not in ("https", "http") or not parts.netloc or parts.username or parts.password:
        raise BadRequest("image_url must be an http(s) URL of an uploaded image.", "INVALID_IMAGE_URL")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise BadRequest("image_url must be an uploaded image's URL, without a query.", "INVALID_IMAGE_URL")
    host = parts.netloc.lower()
    if host not in hosts and (parts.hostname or "") not in hosts:
        raise BadRequest("image_url must point at this service's image storage.", "IMAGE_HOST_NOT_ALLOWED")


def check_uploaded(client: redis.Redis, url: str, user_id: str) -> None:
    """The URL must be exactly where the images function serves an upload this user confirmed:
    a key never uploaded, not yet confirmed, or confirmed by someone else is refused the same way."""
    key = key_in_path(urlsplit(url).path)
    upload = None if key is None else ConfirmedUploads(client).owned(key, user_id)
    if upload is None or upload.cdn_url != url:
        raise Unprocessable(
            "image_url: not a photo you uploaded; upload it (POST /api/v1/images/scan, then its callback) first",
            "IMAGE_NOT_UPLOADED",
        )


def accepted(job_id: str) -> ScanAccepted:
    return ScanAccepted(
        job_id=job_id,
        stream_url=f"/api/v1/scan/{job_id}/events",
        result_url=f"/api/v1/scan/{job_id}/result",
        status="queued",
    )


def submit(
    client: redis.Redis,
    user_id: str,
    request: ScanRequest,
    idempotency_key: str | None,
    publish: Callable[[str], None],
) -> ScanAccepted:
    """Create the job and request the scan; the same idempotency key gets the same job for an hour."""
    store = JobStore(client)
    job_id = uuid.uuid4().hex
    idem = None
    if idempotency_key:
        if len(idempotency_key) > 200:
            raise BadRequest("X-Idempotency-Key is too long (200 characters at most).", "INVALID_IDEMPOTENCY_KEY")
        idem = f"scan:idem:{user_id}:{idempotency_key}"
        if not client.set(idem, job_id, ex=IDEMPOTENCY_TTL, nx=True):
            existing = client.get(idem)
            if existing:
                return accepted(str(existing))
    store.create(job_id, user_id)
    try:
        publish(job_id)
    except Exception as exc:
        store.delete(job_id)
        if idem:
            client.delete(idem)
        raise ServiceUnavailable("The scan could not be queued; try again.", "SCAN_NOT_QUEUED") from exc
    return accepted(job_id)


UNDELIVERED = "지금은 사진을 분석할 수 없었어요. 잠시 뒤에 다시 시도해 주세요."


def fail_undelivered(client: redis.Redis, job_id: str, code: str | None) -> None:
    """The job of a scan request that never got through ends as failed (once; a job that finished
    or expired meanwhile is left as it is)."""
    if JobStore(client).fail_unfinished(job_id, UNDELIVERED):
        log.warning("scan request undeliverable; job failed", extra={"job_id": job_id, "code": code})


def owned_job(client: redis.Redis, job_id: str, user_id: str) -> JobStore:
    store = JobStore(client)
    job = store.get(job_id)
    if job is None or job.user_id != user_id:  # another user's job is as unknown as a missing one
        raise NotFound("No such scan.", "SCAN_NOT_FOUND")
    return store


def result(client: redis.Redis, job_id: str, user_id: str) -> tuple[int, dict[str, Any]]:
    store = owned_job(client, job_id, user_id)
    done = store.result(job_id)
    if done is not None:
        return 200, done
    job = store.get(job_id)
    assert job is not None
    return 202, {"status": "processing", "current_stage": job.current_stage, "progress": job.progress}


def sse_events(
    store: JobStore,
    job_id: str,
    last_event_id: str | None,
    clock: Callable[[], float],
    check: Callable[[], None] | None = None,
) -> Iterator[bytes]:
    """The fallback reader (one thread and one Redis connection per stream), for `eco2 run scan`
    and direct calls: in `eco2 dev` and the cluster the streams function serves this path."""
    for frame in _frames(store, job_id, last_event_id, clock, check):
        yield frame.encode()


def _frames(
    store: JobStore,
    job_id: str,
    last_event_id: str | None,
    clock: Callable[[], float],
    check: Callable[[], None] | None,
) -> Iterator[str]:
    """The job's progress as SSE frames: resume after Last-Event-ID, keepalive every 15 s, end after
    done; a finished job the client has seen to its end closes at once; `check` (the session) runs
    at every keepalive and ends the stream when it raises."""
    after = last_event_id if last_event_id and _is_stream_id(last_event_id) else "0"
    started = clock()
    yield "retry: 3000\n\n"
    try:
        tail = store.redis.xrevrange(stream_key(job_id), "+", "-", count=1)
    except RedisError:
        log.warning("progress stream interrupted by Redis", extra={"job_id": job_id})
        return
    if tail and _id(after) >= _id(str(tail[0][0])):
        if tail[0][1].get("stage") == "done":
            return
        after = str(tail[0][0])  # an id from the future: follow from the end
    while clock() - started < STREAM_LIMIT_SECONDS:
        try:
            entries = store.read(job_id, after, block_ms=KEEPALIVE_SECONDS * 1000)
        except RedisError:
            # end the stream cleanly: the browser reconnects (retry: 3000) with Last-Event-ID
            log.warning("progress stream interrupted by Redis", extra={"job_id": job_id})
            return
        if not entries:
            if check is not None:
                try:
                    check()
                except AppError:
                    return  # expired or revoked: the reconnect gets the 401/403
            yield f"event: keepalive\ndata: {json.dumps({'job_id': job_id})}\n\n"
            continue
        for entry_id, stage, data in entries:
            after = entry_id
            yield f"id: {entry_id}\nevent: {stage}\ndata: {data}\n\n"
            if stage == "done":
                return


def _id(value: str) -> tuple[int, int]:
    head, _, tail = value.partition("-")
    return int(head), int(tail or 0)


def _is_stream_id(value: str) -> bool:
    head, _, tail = value.partition("-")
    return head.isdigit() and (tail == "" or tail.isdigit())
