"""Running the local broker for a project: `eco2 events dispatch`, `eco2 dev` and `eco2 events`."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable, Mapping
from typing import Any

from eco2.core.funcyaml import FuncYaml
from eventing.schedule import Scheduler
from eventing.triggers import triggers


def subscriber_urls(project: FuncYaml, env: Mapping[str, str], gateway: str | None = None) -> Callable[[str], str]:
    """Where each function receives events: ECO2_SUBSCRIBERS (JSON name -> URL), else the dev
    gateway's internal `/_functions/<name>/` route."""
    explicit: dict[str, str] = json.loads(env.get("ECO2_SUBSCRIBERS", "{}") or "{}")
    base = (gateway or env.get("ECO2_GATEWAY_URL", "http://127.0.0.1:8000")).rstrip("/")

    def url(name: str) -> str:
        return explicit.get(name) or f"{base}/_functions/{name}/"

    return url


class LocalBroker:
    """The broker (RabbitMQ-backed, or in memory) plus the schedules that publish to it."""

    def __init__(self, broker: Any, scheduler: Scheduler) -> None:
        self.broker = broker
        self.scheduler = scheduler
        self.dispatchers = getattr(broker, "dispatchers", [])

    def stop(self) -> None:
        self.scheduler.stop()
        self.broker.stop()


def make_broker(project: FuncYaml, env: Mapping[str, str], gateway: str | None = None) -> LocalBroker:
    url = env.get("RABBITMQ_URL", "")
    specs = triggers(project, subscriber_urls(project, env, gateway))
    broker: Any
    if not url or url.startswith("memory://"):
        from eventing.memory import broker as memory_broker

        broker = memory_broker(url or "memory://")
        broker.start(specs)
    else:
        from eventing.rabbitmq import RabbitBroker

        broker = RabbitBroker(url, specs, broker=env.get("ECO2_BROKER", "eco2"))
        broker.start()
    scheduler = Scheduler(project, broker.publisher.publish)
    scheduler.start()
    return LocalBroker(broker, scheduler)


def dispatch_forever(project: FuncYaml, out: Callable[[str], None] = print) -> None:
    """Run every Trigger's dispatcher until SIGTERM/SIGINT, then drain in-flight deliveries."""
    broker = make_broker(project, os.environ)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    for dispatcher in broker.dispatchers:
        out(f"dispatching {dispatcher.trigger.name} -> {dispatcher.trigger.subscriber}")
    stop.wait()
    out("draining in-flight deliveries")
    broker.stop()
