"""The events baseline's subscriber: a bare functions-framework function doing the eco2 sink's work
(dedupe by event id in a Redis set, record publish->handler latency), nothing else."""

import json
import os
import time

import functions_framework
import redis

REDIS = redis.Redis.from_url(os.environ["REDIS_URL"])


@functions_framework.http
def sink(request):  # type: ignore[no-untyped-def]
    if request.path == "/health/readiness":
        return "ok"
    data = json.loads(request.get_data())
    latency_ms = (time.time() - float(data["t"])) * 1000
    pipe = REDIS.pipeline(transaction=False)
    pipe.sadd("bench:seen", request.headers["ce-id"])
    pipe.rpush("bench:latency", f"{latency_ms:.3f}")
    pipe.execute()
    return "", 204
