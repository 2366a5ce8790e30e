"""The events benchmark's subscriber: deduplicated (Redis SET NX) and a trivial idempotent write."""

import time
from typing import Any

from eco2 import Context, Event, Function

fn = Function("sink", uses=("redis",))


@fn.event("bench.thing.happened.v1")
def happened(ctx: Context, event: Event[Any]) -> None:
    latency_ms = (time.time() - float(event.data["t"])) * 1000
    pipe = ctx.redis.pipeline(transaction=False)
    pipe.sadd("bench:seen", event.id)
    pipe.rpush("bench:latency", f"{latency_ms:.3f}")
    pipe.execute()
