"""The scan burst's baseline (bench_scan.py --mode baseline): the scan pipeline written by hand
with the same libraries and none of eco2, doing the work on a scan's way to `done`:

- `submit` (functions-framework, WSGI): the access token from the `s_access` cookie checked with
  PyJWT, the revocation keys read in one MGET, a fixed-window rate limit (INCR + EXPIRE), the
  confirmed upload of the image read and checked, the job and its `queued` event written in one
  transaction, the request published to RabbitMQ with a publisher confirm (pika), 202;
- the dispatcher: `consumer.py` (a pika consumer posting each message to `worker`);
- `worker` (functions-framework, WSGI, one thread per scan in flight): the delivery deduplicated
  (SET NX), the two model calls through the openai client, each stage's events written to the
  job's Redis stream, the final result stored, `completed` published with a confirm, 200;
- `streams` (scan_streams.py, functions-framework's ASGI mode): the token checked, the job's owner
  read, the job's stream sent as Server-Sent Events with one blocking XREAD per stream until `done`.

Left out, so the baseline's work is less than eco2's: the reward path (character and users
consuming `completed`), retries and dead letters, idempotency keys, the metrics and log lines.

The openai client is built at import (it connects on first use); Redis and the publisher on
first use in each process, after gunicorn's fork.
"""

import json
import os
import queue
import threading
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

import functions_framework
import jwt
import openai
import pika
import redis

SECRET = os.environ["JWT_SECRET"]
REDIS_URL = os.environ["REDIS_URL"]
TTL = 3600
_lock = threading.Lock()
_clients: dict[str, object] = {}


def _client(name, build):  # type: ignore[no-untyped-def]
    client = _clients.get(name)
    if client is None:
        with _lock:
            client = _clients.get(name)
            if client is None:
                client = _clients[name] = build()
    return client


def _redis():  # type: ignore[no-untyped-def]
    return _client("redis", lambda: redis.Redis.from_url(REDIS_URL, max_connections=400))


class Publisher:
    """Up to 8 connections (a pika connection is not thread-safe), so concurrent publishers wait
    for their confirms in parallel rather than behind one lock."""

    def __init__(self, size: int = 8) -> None:
        self.idle: queue.LifoQueue = queue.LifoQueue()  # type: ignore[type-arg]
        self.slots = threading.BoundedSemaphore(size)

    def publish(self, queue_name: str, data: dict, event_type: str, subject: str) -> None:  # type: ignore[type-arg]
        headers = {"specversion": "1.0", "id": uuid.uuid4().hex, "source": "/baseline", "type": event_type}
        properties = pika.BasicProperties(
            content_type="application/json", delivery_mode=2, headers={**headers, "subject": subject}
        )
        with self.slots:
            try:
                channel = self.idle.get_nowait()
            except queue.Empty:
                channel = pika.BlockingConnection(pika.URLParameters(os.environ["RABBITMQ_URL"])).channel()
                channel.confirm_delivery()
            channel.basic_publish("", queue_name, json.dumps(data).encode(), properties, mandatory=True)
            self.idle.put(channel)


def _publisher() -> Publisher:
    return _client("publisher", Publisher)  # type: ignore[no-any-return]


def _claims(token):  # type: ignore[no-untyped-def]
    try:
        claims = jwt.decode(
            token,
            SECRET,
            algorithms=["HS256"],
            audience="eco2-app",
            issuer="eco2",
            leeway=10,
            options={"require": ["exp", "nbf", "iat", "sub", "jti"]},
        )
    except jwt.PyJWTError:
        return None
    return claims if claims.get("type") == "access" else None


def _revoked(values, claims) -> bool:  # type: ignore[no-untyped-def]
    revoked, before, *session = values
    return revoked is not None or (session and session[0] is not None) or bool(before and claims["iat"] <= int(float(before)))


def _revocation_keys(claims):  # type: ignore[no-untyped-def]
    keys = [f"blacklist:{claims['jti']}", f"revoked_before:{claims['sub']}"]
    if claims.get("sid"):
        keys.append(f"revoked_session:{claims['sid']}")
    return keys


def _event(stage: str, status: str, **extra) -> dict:  # type: ignore[no-untyped-def, type-arg]
    return {"stage": stage, "status": status, "ts": datetime.now(UTC).isoformat(), **extra}


def _xadd(pipe, job_id: str, event: dict) -> None:  # type: ignore[no-untyped-def, type-arg]
    pipe.xadd(f"base:stream:{job_id}", {"data": json.dumps(event, ensure_ascii=False)})


@functions_framework.http
def submit(request):  # type: ignore[no-untyped-def]
    if request.path == "/health/readiness":
        return "ok"
    claims = _claims(request.cookies.get("s_access", ""))
    if claims is None:
        return {"detail": "unauthorized"}, 401
    r = _redis()
    if _revoked(r.mget(_revocation_keys(claims)), claims):
        return {"detail": "revoked"}, 403
    user_id = claims["sub"]
    pipe = r.pipeline(transaction=False)
    window = f"base:rate:{user_id}:{int(datetime.now(UTC).timestamp()) // 60}"
    pipe.incr(window)
    pipe.expire(window, 60)
    if pipe.execute()[0] > 20:
        return {"detail": "slow down"}, 429
    body = request.get_json(silent=True) or {}
    image_url = str(body.get("image_url", ""))
    key = urlsplit(image_url).path.split("/", 2)[-1]
    upload = r.get(f"image:confirmed:{key}")
    if upload is None or json.loads(upload).get("user_id") != user_id:
        return {"detail": "not your upload"}, 422
    job_id = uuid.uuid4().hex
    pipe = r.pipeline()
    pipe.hset(f"base:job:{job_id}", mapping={"user_id": user_id, "status": "queued"})
    pipe.expire(f"base:job:{job_id}", TTL)
    _xadd(pipe, job_id, _event("queued", "completed"))
    pipe.execute()
    data = {"job_id": job_id, "user_id": user_id, "image_url": image_url, "user_input": body.get("user_input")}
    _publisher().publish(os.environ["BASE_QUEUE"], data, "eco2.scan.job.requested.v1", job_id)
    return {"job_id": job_id, "stream_url": f"/api/v1/scan/{job_id}/events"}, 202


# built at import, as a serverless function's global client usually is (it connects on first use)
OPENAI = openai.OpenAI(api_key=os.environ["OPENAI_API_KEY"], base_url=os.environ["OPENAI_BASE_URL"])


def _openai():  # type: ignore[no-untyped-def]
    return OPENAI


def _ask(messages) -> dict:  # type: ignore[no-untyped-def, type-arg]
    response = _openai().chat.completions.create(
        model="gpt-4o-mini", messages=messages, temperature=0, response_format={"type": "json_object"}
    )
    try:
        value = json.loads(response.choices[0].message.content or "")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@functions_framework.http
def worker(request):  # type: ignore[no-untyped-def]
    if request.path == "/health/readiness":
        return "ok"
    r = _redis()
    if not r.set(f"base:seen:{request.headers['ce-source']}:{request.headers['ce-id']}", 1, nx=True, ex=TTL):
        return "", 200  # a redelivery of what was handled
    data = json.loads(request.get_data())
    job_id = data["job_id"]
    pipe = r.pipeline()
    _xadd(pipe, job_id, _event("vision", "started"))
    pipe.hset(f"base:job:{job_id}", "status", "processing")
    pipe.execute()
    text = data.get("user_input") or "사진 속 물건을 분류해 줘."
    vision = _ask(
        [
            {"role": "system", "content": "Classify the waste in the photo as JSON."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": text},
                    {"type": "image_url", "image_url": {"url": data["image_url"], "detail": "low"}},
                ],
            },
        ]
    )
    pipe = r.pipeline()
    _xadd(pipe, job_id, _event("vision", "completed", result=vision))
    _xadd(pipe, job_id, _event("answer", "started"))
    pipe.execute()
    answer = _ask(
        [
            {"role": "system", "content": "Say how to dispose of it, as JSON."},
            {"role": "user", "content": json.dumps(vision, ensure_ascii=False)},
        ]
    )
    result = {"job_id": job_id, "status": "completed", "classification": vision, "answer": answer}
    pipe = r.pipeline()
    _xadd(pipe, job_id, _event("answer", "completed"))
    pipe.set(f"base:result:{job_id}", json.dumps(result, ensure_ascii=False), ex=TTL)
    pipe.hset(f"base:job:{job_id}", "status", "completed")
    _xadd(pipe, job_id, _event("done", "completed", result=result))
    pipe.execute()
    completed = {"job_id": job_id, "user_id": data["user_id"], "classification": vision}
    _publisher().publish(os.environ["BASE_COMPLETED_QUEUE"], completed, "eco2.scan.job.completed.v1", job_id)
    return "", 200
