"""The scan burst baseline's streams (see scan_pipeline.py): functions-framework's ASGI mode."""

import json
import os
import sys

import functions_framework.aio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scan_pipeline import REDIS_URL, _claims, _revocation_keys, _revoked  # noqa: E402

_async: dict[str, object] = {}


@functions_framework.aio.http
async def streams(request):  # type: ignore[no-untyped-def]
    import redis.asyncio
    from starlette.responses import PlainTextResponse, StreamingResponse

    if request.url.path == "/health/readiness":
        return PlainTextResponse("ok")
    r = _async.get("redis")
    if r is None:
        r = _async["redis"] = redis.asyncio.Redis.from_url(REDIS_URL, max_connections=1000)
    claims = _claims(request.cookies.get("s_access", ""))
    if claims is None:
        return PlainTextResponse("unauthorized", 401)
    if _revoked(await r.mget(_revocation_keys(claims)), claims):
        return PlainTextResponse("revoked", 403)
    job_id = request.url.path.split("/")[4]
    if (await r.hget(f"base:job:{job_id}", "user_id") or b"").decode() != claims["sub"]:
        return PlainTextResponse("no such job", 404)

    async def frames():  # type: ignore[no-untyped-def]
        last = "0"
        while True:
            found = await r.xread({f"base:stream:{job_id}": last}, count=100, block=15_000)
            if not found:
                yield ": keepalive\n\n"
                continue
            for _key, entries in found:
                for entry_id, fields in entries:
                    last = entry_id
                    data = fields[b"data"].decode()
                    yield f"id: {entry_id.decode()}\ndata: {data}\n\n"
                    if json.loads(data)["stage"] == "done":
                        return

    return StreamingResponse(frames(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
