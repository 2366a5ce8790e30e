"""scan function: thin handlers (decode → service → encode)."""

from __future__ import annotations

import time
from functools import cache

from werkzeug.wrappers import Response

from eco2 import Context, Event, Function
from eco2.core.runtime import json_response
from eventing.catalogue import SCAN_REQUESTED, ScanRequested
from functions.common.llmmodels import ScanModels
from functions.common.scanjobs import JobStore
from functions.scan import service
from functions.scan.schemas import ScanAccepted, ScanRequest

fn = Function(
    "scan", uses=("redis", "jwt", "events"), description="Submit a photo and follow its scan.", config=ScanModels
)


@cache
def _hosts(configured: tuple[str, ...], cdn: str, s3: str) -> frozenset[str]:
    return service.allowed_hosts(configured, cdn, s3)


# an image URL of 2048 characters and 1000 characters of Korean (3 bytes each) fit with room to spare
@fn.post(
    "/api/v1/scan",
    auth=True,
    body=ScanRequest,
    response=ScanAccepted,
    status=202,
    rate="20/minute",
    max_body=16 * 1024,
)
def submit(ctx: Context, body: ScanRequest) -> ScanAccepted:
    """Queue a scan of a photo this user uploaded and confirmed (honours X-Idempotency-Key for an hour)."""
    s = ctx.settings
    service.check_model(body.model, ctx.config)
    service.check_image_url(body.image_url, _hosts(s.scan_image_hosts, s.cdn_base_url, s.s3_endpoint_url))
    user_id = ctx.user_id
    service.check_uploaded(ctx.redis, body.image_url, user_id)

    def publish(job_id: str) -> None:
        data = ScanRequested(
            job_id=job_id, user_id=user_id, image_url=body.image_url, user_input=body.user_input, model=body.model
        )
        ctx.publish(SCAN_REQUESTED, data, subject=job_id)

    assert ctx.request is not None
    return service.submit(ctx.redis, user_id, body, ctx.request.headers.get("X-Idempotency-Key"), publish)


@fn.event(SCAN_REQUESTED, data=ScanRequested, dead_letters=True)
def on_undelivered(ctx: Context, event: Event[ScanRequested]) -> None:
    """A scan request scan-worker failed on every retry (this function is its Trigger's dead-letter
    sink, func.yaml): the job fails now, so the app stops waiting and the user can try again."""
    service.fail_undelivered(ctx.redis, event.data.job_id, event.extensions.get("knativeerrorcode"))


@fn.get("/api/v1/scan/categories")
def categories(ctx: Context) -> Response:
    """The waste categories with short instructions."""
    from functions.common.recycling import categories as load

    return json_response(load(), headers={"Cache-Control": "public, max-age=300"})


@fn.get("/api/v1/scan/{job_id}/result", auth=True)
def get_result(ctx: Context, job_id: str) -> Response:
    """The final result (200), or the stage reached so far (202 + Retry-After)."""
    status, body = service.result(ctx.redis, job_id, ctx.user_id)
    headers = {"Retry-After": "2"} if status == 202 else None
    return json_response(body, status, headers)


@fn.get("/api/v1/scan/{job_id}/events", auth=True)
def events(ctx: Context, job_id: str) -> Response:
    """Progress as Server-Sent Events; resumes after Last-Event-ID; ends after `done`."""
    store: JobStore = service.owned_job(ctx.redis, job_id, ctx.user_id)
    assert ctx.request is not None
    last = ctx.request.headers.get("Last-Event-ID")
    request = ctx.request

    def check() -> None:  # the session, again at every keepalive
        from eco2.core.security import ACCESS_COOKIE, bearer, verify

        token = request.cookies.get(ACCESS_COOKIE) or bearer(request.headers.get("Authorization"))
        verify(ctx.clients.tokens, ctx.redis, token, "access")

    stream = service.sse_events(store, job_id, last, time.monotonic, check)
    return Response(
        stream,
        content_type="text/event-stream; charset=utf-8",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        direct_passthrough=True,
    )
