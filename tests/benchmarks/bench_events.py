"""Eventing benchmark (issue: eventing). Real RabbitMQ, the local broker's dispatcher, and a
function served as its container runs it (gunicorn) whose handler deduplicates and writes once.

Prints events/s and p50/p99 publish->handler latency for 10,000 events at parallelism 1 and 10
(published as fast as confirms allow), then p50/p99 at a fixed offered rate of 500 events/s.
Anchor: Knative eventing-rabbitmq's published figures, ~750 events/s per Trigger at parallelism 1
and ~1,000 events/s at 1-3 ms with parallelism 100 (GKE).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import redis as redis_lib

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_framework import free_port, stop, wait_ready

from eco2.events.amqp import AmqpPublisher, Names
from eco2.events.message import make_message
from eventing.delivery import DeliverySpec, TriggerSpec
from eventing.rabbitmq import RabbitBroker

HERE = Path(__file__).resolve().parent
RABBIT = os.environ.get("ECO2_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
REDIS = os.environ.get("ECO2_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


def pct(values: list[float], q: float) -> float:
    data = sorted(values)
    return data[min(len(data) - 1, int(q / 100 * len(data)))] if data else float("nan")


def publish_all(name: str, total: int, rate: float | None, threads: int = 4) -> float:
    """Publish `total` events from `threads` publishers (each with confirms); returns seconds taken."""
    import threading

    def worker(k: int) -> None:
        publisher = AmqpPublisher(RABBIT, name)
        t0 = time.time()
        mine = range(k, total, threads)
        for n, i in enumerate(mine):
            if rate:
                delay = t0 + n / (rate / threads) - time.time()
                if delay > 0:
                    time.sleep(delay)
            publisher.publish(
                make_message("bench.thing.happened.v1", {"t": f"{time.time():.6f}"}, source="/bench", event_id=f"e{i}")
            )
        publisher.close()

    started = time.time()
    workers = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.time() - started


def run(port: int, parallelism: int, total: int, rate: float | None) -> str:
    """rate=None: the queue is filled first, then drained (dispatch throughput);
    rate=R: events are offered at R/s while the dispatcher runs (publish->handler latency)."""
    r = redis_lib.Redis.from_url(REDIS, decode_responses=True)
    r.flushdb()
    name = f"bench{uuid.uuid4().hex[:6]}"
    trigger = TriggerSpec(
        "sink",
        f"http://127.0.0.1:{port}/",
        {"type": "bench.thing.happened.v1"},
        DeliverySpec(retry=3, backoff_delay=0.05, timeout=10),
        parallelism=parallelism,
    )
    broker = RabbitBroker(RABBIT, [trigger], broker=name)
    broker.setup()
    if rate is None:
        publish_all(name, total, None)
        t0 = time.time()
        broker.start()
    else:
        broker.start()
        broker.wait_connected()
        t0 = time.time()
        publish_all(name, total, rate)
    deadline = time.time() + 300
    while r.scard("bench:seen") < total and time.time() < deadline:
        time.sleep(0.02)
    done = time.time()
    seen = r.scard("bench:seen")
    latencies = [float(x) for x in r.lrange("bench:latency", 0, -1)]
    broker.stop()
    import pika

    c = pika.BlockingConnection(pika.URLParameters(RABBIT))
    ch = c.channel()
    ch.queue_delete(Names(name).queue("sink"))
    ch.queue_delete(Names(name).dead_letter)
    ch.exchange_delete(Names(name).exchange)
    c.close()
    if rate is None:
        return (
            f"parallelism {parallelism:>2}, {total} queued events drained: {seen / (done - t0):7.0f} events/s "
            f"({seen}/{total} handled in {done - t0:.1f} s)"
        )
    return (
        f"parallelism {parallelism:>2}, offered {rate:.0f}/s: {seen / (done - t0):7.0f} events/s  "
        f"publish->handler p50 {pct(latencies, 50):6.2f} ms  p99 {pct(latencies, 99):7.2f} ms  ({seen}/{total})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10000)
    args = parser.parse_args()
    port = free_port()
    env = {
        **os.environ,
        "ECO2_ENV": "test",
        "REDIS_URL": REDIS,
        "LOG_LEVEL": "WARNING",
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "THREADS": "16",
        "WORKERS": os.environ.get("SINK_WORKERS", "1"),  # one pod's worker processes
        "ECO2_ROOT": str(HERE / "_bench"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "eco2.serving.server", str(HERE / "_bench" / "sink_fn" / "main.py")],
        env=env,
        cwd=HERE / "_bench",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_ready(port, "/health/readiness", proc)
    print(f"eco2 eventing benchmark — {os.cpu_count()} CPUs, real RabbitMQ + Redis, {args.events} events")
    try:
        print(run(port, 1, args.events, None), flush=True)
        print(run(port, 10, args.events, None), flush=True)
        print(run(port, 1, min(args.events, 5000), 500.0), flush=True)
        print(run(port, 10, min(args.events, 5000), 500.0), flush=True)
    finally:
        stop(proc)


if __name__ == "__main__":
    main()
