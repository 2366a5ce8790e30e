"""Eventing benchmark (issues: eventing, 14). Real RabbitMQ, the local broker's dispatcher, and a
function served as its container runs it (gunicorn, one worker) whose handler deduplicates and
writes once; beside it, in the same run, the baseline: a minimal pika consumer (manual ack, the
same prefetch; _baseline/consumer.py) posting each message to a bare functions-framework function
doing the same Redis work (_baseline/sink.py).

Prints events/s draining 10,000 queued events (`--quick`: 2,000) at parallelism 1 and 10, each as
a ratio to the baseline (goal ≥ 0.8x), then p50/p99 publish->handler with events offered at half
of the capacity the local broker measured in this run (goal p99 < 50 ms), the baseline beside it.
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


class Outcome:
    def __init__(self, seen: int, total: int, seconds: float, latencies: list[float]) -> None:
        self.seen, self.total, self.seconds, self.latencies = seen, total, seconds, latencies

    @property
    def rate(self) -> float:
        return self.seen / self.seconds if self.seconds else 0.0

    def line(self, label: str) -> str:
        return (
            f"{label:<44} {self.rate:7.0f} events/s  publish->handler p50 {pct(self.latencies, 50):7.2f} ms "
            f"p99 {pct(self.latencies, 99):8.2f} ms  ({self.seen}/{self.total} in {self.seconds:.1f} s)"
        )


def run(port: int, parallelism: int, total: int, rate: float | None, baseline: bool = False) -> Outcome:
    """rate=None: the queue is filled first, then drained (dispatch throughput);
    rate=R: events are offered at R/s while the dispatcher runs (publish->handler latency).
    baseline: the minimal pika consumer dispatches instead of the local broker."""
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
    broker.setup()  # the exchange, the Trigger's queue and its binding: the baseline consumes the same queue
    consumer: subprocess.Popen[bytes] | None = None

    def begin() -> None:
        nonlocal consumer
        if not baseline:
            broker.start()
            broker.wait_connected()
            return
        consumer = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "_baseline" / "consumer.py"),
                RABBIT,
                Names(name).queue("sink"),
                f"http://127.0.0.1:{port}/",
                str(parallelism),
            ],
            stdout=subprocess.PIPE,
        )
        assert consumer.stdout is not None
        consumer.stdout.readline()  # "consuming"

    if rate is None:
        publish_all(name, total, None)
        t0 = time.time()
        begin()
    else:
        begin()
        t0 = time.time()
        publish_all(name, total, rate)
    deadline = time.time() + 300
    while r.scard("bench:seen") < total and time.time() < deadline:
        time.sleep(0.01)
    done = time.time()
    seen = r.scard("bench:seen")
    latencies = [float(x) for x in r.lrange("bench:latency", 0, -1)]
    if consumer is not None:
        stop(consumer)
    else:
        broker.stop()
    import pika

    c = pika.BlockingConnection(pika.URLParameters(RABBIT))
    ch = c.channel()
    ch.queue_delete(Names(name).queue("sink"))
    ch.queue_delete(Names(name).dead_letter)
    ch.exchange_delete(Names(name).exchange)
    c.close()
    return Outcome(seen, total, done - t0, latencies)


def serve(cmd: list[str], port: int, cwd: Path, extra: dict[str, str]) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "ECO2_ENV": "test",
        "REDIS_URL": REDIS,
        "LOG_LEVEL": "WARNING",
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "THREADS": "16",
        "WORKERS": os.environ.get("SINK_WORKERS", "1"),  # one pod's worker processes
        **extra,
    }
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(port, "/health/readiness", proc)
    return proc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, help="events per drain run (default 10,000; --quick 2,000)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--chart", action="store_true", help="write a PNG chart into tests/benchmarks/results/")
    args = parser.parse_args()
    total = args.events or (2000 if args.quick else 10000)
    offered_total = min(total, 1000 if args.quick else 5000)
    eco2_port, bare_port = free_port(), free_port()
    eco2 = serve(
        [sys.executable, "-m", "eco2.serving.server", str(HERE / "_bench" / "sink_fn" / "main.py")],
        eco2_port,
        HERE / "_bench",
        {"ECO2_ROOT": str(HERE / "_bench")},
    )
    bare = serve(
        [
            "functions-framework",
            "--source",
            str(HERE / "_baseline" / "sink.py"),
            "--target",
            "sink",
            "--port",
            str(bare_port),
            "--host",
            "127.0.0.1",
        ],
        bare_port,
        HERE / "_baseline",
        {},
    )
    print(
        f"eco2 eventing benchmark — {os.cpu_count()} CPUs, real RabbitMQ + Redis, {total} events, 1-worker subscriber"
    )
    figures: dict[str, float] = {}
    try:
        for parallelism in (1, 10):
            base = run(bare_port, parallelism, total, None, baseline=True)
            ours = run(eco2_port, parallelism, total, None)
            cross = run(bare_port, parallelism, total, None)  # splits the cost: the broker's or the function's
            ratio = ours.rate / base.rate if base.rate else float("nan")
            print(f"\nparallelism {parallelism}, {total} queued events drained")
            print("   " + base.line("baseline: pika consumer -> bare function"))
            print("   " + ours.line("eco2: local broker -> eco2 function"))
            print("   " + cross.line("split: local broker -> bare function"))
            print(
                f"   split: the broker alone {cross.rate / base.rate:4.2f}x, "
                f"the function alone {ours.rate / cross.rate:4.2f}x"
            )
            print(f"   ratio {ratio:4.2f}x baseline events/s ({'meets' if ratio >= 0.8 else 'misses'} the ≥ 0.8x goal)")
            figures[f"baseline p{parallelism}"], figures[f"eco2 p{parallelism}"] = base.rate, ours.rate
            offered = ours.rate / 2
            base_l = run(bare_port, parallelism, offered_total, offered, baseline=True)
            ours_l = run(eco2_port, parallelism, offered_total, offered)
            print(f"   offered {offered:.0f}/s (half the local broker's capacity above), {offered_total} events")
            print("   " + base_l.line("baseline: pika consumer -> bare function"))
            print("   " + ours_l.line("eco2: local broker -> eco2 function"))
            p99 = pct(ours_l.latencies, 99)
            base_p99 = pct(base_l.latencies, 99)
            print(
                f"   eco2 p99 {p99:.1f} ms = {p99 / base_p99:4.2f}x baseline's {base_p99:.1f} ms "
                f"({'meets' if p99 < 50 else 'misses'} the < 50 ms goal)",
                flush=True,
            )
            figures[f"baseline p99 ms p{parallelism}"] = pct(base_l.latencies, 99)
            figures[f"eco2 p99 ms p{parallelism}"] = p99
    finally:
        stop(eco2)
        stop(bare)
    if args.chart:
        import charts

        print("   chart:", charts.write("events", {"events": figures}))


if __name__ == "__main__":
    main()
