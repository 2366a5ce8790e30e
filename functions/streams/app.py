"""streams function: thin async handlers (decode → service → encode) on functions-framework's ASGI mode."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from eco2 import Function
from functions.streams import service

if TYPE_CHECKING:
    from starlette.responses import Response

    from eco2.serving.aio import AsyncContext


class StreamsConfig(BaseModel):
    """STREAMS_* variables, read once at startup."""

    streams_keepalive_seconds: float = Field(15.0, gt=0, le=15)  # scan: at least every 15 s
    streams_limit_seconds: float = Field(540.0, gt=0)  # below the Knative request timeout (600 s)
    streams_per_user: int = Field(5, ge=1)  # concurrent streams per user, across every pod
    streams_queue_limit: int = Field(1000, ge=10)  # entries a slow client may fall behind before it is closed
    streams_reader_block_ms: int = Field(1000, ge=10, le=10_000)
    streams_reader_linger_ms: float = Field(1.0, ge=0, le=100)  # a busy reader's least pause between reads
    # the async pool (REDIS_POOL_SIZE; not the WSGI functions' REDIS_MAX_CONNECTIONS); the reader has one more
    redis_pool_size: int = Field(16, ge=2, le=200)


fn = Function(
    "streams",
    uses=("redis", "jwt"),
    config=StreamsConfig,
    description="Scan and chat job progress as Server-Sent Events, thousands per process.",
)


def _hub(ctx: AsyncContext) -> service.Hub:
    hub = ctx.state.get("hub")
    if hub is None:
        config: StreamsConfig = ctx.config
        hub = service.Hub(
            ctx.clients,
            block_ms=config.streams_reader_block_ms,
            linger_ms=config.streams_reader_linger_ms,
            queue_limit=config.streams_queue_limit,
        )
        ctx.state["hub"] = hub
        ctx.runtime.stopping.append(hub.end_all)  # SIGTERM: every stream ends, the browsers resume elsewhere
        _gauges(ctx, hub)
    return hub


def _gauges(ctx: AsyncContext, hub: service.Hub) -> None:
    from prometheus_client import Counter, Gauge

    registry = ctx.runtime.metrics.registry
    Gauge("eco2_streams_open", "Event streams open now.", registry=registry).set_function(lambda: hub.streams)
    Gauge(
        "eco2_streams_redis_connections", "Redis connections in use: the pool's plus the reader's.", registry=registry
    ).set_function(lambda: ctx.clients.pool_connections() + (hub._reader is not None))
    ctx.state["closed"] = Counter(
        "eco2_streams_closed_total", "Event streams closed, by reason.", ["reason"], registry=registry
    )


async def _stream(ctx: AsyncContext, kind: service.Kind, job_id: str) -> Response:
    from starlette.responses import StreamingResponse

    config: StreamsConfig = ctx.config
    await service.owned(ctx.redis, kind, job_id, ctx.user_id)
    stream_id = service.new_stream_id()
    lease = config.streams_keepalive_seconds * 3
    await service.acquire(ctx.redis, ctx.user_id, stream_id, config.streams_per_user, lease)
    first, position, ended = await service.opening(ctx.redis, kind, job_id, ctx.request.headers.get("Last-Event-ID"))
    hub = _hub(ctx)
    closed = ctx.state["closed"]
    limits = service.Limits(config.streams_keepalive_seconds, config.streams_limit_seconds, lease)
    body = service.frames(
        ctx,
        hub,
        kind,
        job_id,
        first,
        position,
        ended,
        limits,
        stream_id,
        lambda r: closed.labels(r.split(":")[0]).inc(),
    )
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@fn.get("/api/v1/scan/{job_id}/events", auth=True)
async def scan_events(ctx: AsyncContext, job_id: str) -> Response:
    """A scan's progress as Server-Sent Events; resumes after Last-Event-ID; ends after `done`."""
    return await _stream(ctx, service.SCAN, job_id)


@fn.get("/api/v1/chat/{job_id}/events", auth=True)
async def chat_events(ctx: AsyncContext, job_id: str) -> Response:
    """A chat answer as Server-Sent Events: tokens, `token_recovery` without a usable Last-Event-ID, `done`/`error`."""
    return await _stream(ctx, service.CHAT, job_id)
