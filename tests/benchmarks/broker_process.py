"""The local broker as its own process, for benchmarks that run each function as its own process.

    python tests/benchmarks/broker_process.py <broker-name> '<json: function -> event URL>'

The same dispatcher as `eco2 events dispatch` and bench_events.py (eventing.rabbitmq.RabbitBroker
on RABBITMQ_URL), with the Triggers derived from func.yaml's subscriptions (eventing.triggers), but
only those of the functions named in the JSON map, each delivering to that function's own event
URL. No schedules (PingSource) run. Prints `ready` once every dispatcher consumes, then on SIGTERM
or SIGINT drains in-flight deliveries and prints one JSON line: delivered / dead-lettered per
Trigger.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    name, subscribers = sys.argv[1], json.loads(sys.argv[2])
    from eco2.core import funcyaml
    from eventing.rabbitmq import RabbitBroker
    from eventing.triggers import triggers

    project = funcyaml.load(ROOT / "func.yaml")
    specs = [t for t in triggers(project, lambda fn: subscribers.get(fn, "")) if t.subscriber]
    broker = RabbitBroker(os.environ["RABBITMQ_URL"], specs, broker=name)
    broker.start()
    if not broker.wait_connected(30):
        raise SystemExit("the dispatchers did not connect to RabbitMQ")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    for d in broker.dispatchers:
        print(f"dispatching {d.trigger.name} (parallelism {d.trigger.parallelism}) -> {d.trigger.subscriber}")
    print("ready", flush=True)
    stop.wait()
    broker.stop(timeout=15)
    counts = {d.trigger.name: {"delivered": d.delivered, "dead_lettered": d.dead_lettered} for d in broker.dispatchers}
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main()
