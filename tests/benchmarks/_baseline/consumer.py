"""The events baseline's dispatcher: a minimal pika consumer (manual ack, prefetch = parallelism)
posting each message, as a binary-mode CloudEvent, to one subscriber URL from `parallelism`
threads with keep-alive connections. No retries, no dead letters: the least a consumer can do.

    python consumer.py AMQP_URL QUEUE SUBSCRIBER_URL PARALLELISM
"""

import http.client
import sys
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pika

url, queue, subscriber, parallelism = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
target = urllib.parse.urlsplit(subscriber)
local = threading.local()


def post(body, headers):  # type: ignore[no-untyped-def]
    for _ in range(2):  # one reconnect when a keep-alive connection was closed
        conn = getattr(local, "conn", None) or http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        local.conn = conn
        try:
            conn.request("POST", target.path or "/", body, headers)
            response = conn.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException):
            conn.close()
            local.conn = None
    return 0


connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()
channel.basic_qos(prefetch_count=parallelism)
pool = ThreadPoolExecutor(parallelism)


def work(tag, props, body):  # type: ignore[no-untyped-def]
    headers = {f"ce-{k}": (v.decode() if isinstance(v, bytes) else str(v)) for k, v in (props.headers or {}).items()}
    headers["Content-Type"] = props.content_type or "application/json"
    status = post(body, headers)
    settle = channel.basic_ack if 200 <= status < 300 else channel.basic_nack
    connection.add_callback_threadsafe(lambda: settle(tag))


def on_message(ch, method, props, body):  # type: ignore[no-untyped-def]
    pool.submit(work, method.delivery_tag, props, body)


channel.basic_consume(queue, on_message, auto_ack=False)
print("consuming", flush=True)
try:
    channel.start_consuming()
except KeyboardInterrupt:
    pass
