"""The news schedule end to end on real servers: func.yaml's `info` schedule -> the tick the local
scheduler publishes (the same attributes as the rendered PingSource) -> the local broker on
RabbitMQ -> the schedule's Trigger -> the info function over HTTP -> articles in PostgreSQL; a
redelivered tick collects nothing twice; and the scheduler itself firing on time."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pika
import pytest
import redis as redis_lib
from sqlalchemy import create_engine, func, select

from eco2.core import funcyaml
from eco2.core.db import normalise_url
from eco2.events.amqp import Names
from eventing.catalogue import INFO_NEWS_DUE
from eventing.rabbitmq import RabbitBroker
from eventing.schedule import Scheduler, tick
from eventing.triggers import triggers
from functions.info import service, store
from tests.support.news_server import NewsServer, naver_item
from tests.support.servers import Served, serve_function
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
RABBIT = os.environ.get("ECO2_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


@pytest.fixture
def news() -> Iterator[NewsServer]:
    server = NewsServer()
    yield server
    server.close()


@pytest.fixture
def served(base_env: dict[str, str], news: NewsServer) -> Iterator[Served]:
    function = serve_function("info", {**base_env, **news.env()}, ROOT)
    yield function
    function.close()


@pytest.fixture
def broker(served: Served) -> Iterator[RabbitBroker]:
    """The local broker on RabbitMQ with exactly the Trigger func.yaml's info schedule renders."""
    project = funcyaml.load(ROOT / "func.yaml")
    specs = [t for t in triggers(project, lambda name: served.url) if t.filters.get("eco2type") == INFO_NEWS_DUE]
    assert len(specs) == 1
    name = f"t{uuid.uuid4().hex[:8]}"
    running = RabbitBroker(RABBIT, specs, broker=name)
    running.start()
    assert running.wait_connected(10)
    yield running
    running.stop()
    connection = pika.BlockingConnection(pika.URLParameters(RABBIT))
    channel = connection.channel()
    names = Names(name)
    for trigger in specs:
        channel.queue_delete(names.queue(trigger.name))
    channel.queue_delete(names.dead_letter)
    channel.exchange_delete(names.exchange)
    connection.close()


def stored(clean_db: str) -> int:
    engine = create_engine(normalise_url(clean_db))
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(store.news_articles)) or 0)
    finally:
        engine.dispose()


def test_a_tick_reaches_the_handler_through_the_local_broker_on_rabbitmq(
    broker: RabbitBroker, news: NewsServer, clean_db: str, redis_url: str
) -> None:
    spec = funcyaml.load(ROOT / "func.yaml").get("info")
    [schedule] = spec.schedules
    assert schedule.type == INFO_NEWS_DUE
    r = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    news.naver.items["분리배출"] = [
        naver_item("<b>분리배출</b> 새 소식", news.page("tick"), "Tue, 01 Dec 2026 09:00:00 +0900")
    ]
    message = tick(spec.namespace, "info", schedule, datetime.now(UTC))  # what the scheduler publishes
    assert message.attributes["type"] == "dev.knative.sources.ping"
    broker.publisher.publish(message)
    assert wait_for(lambda: stored(clean_db) == 1 and r.get(service.LAST_RUN_KEY) is not None)
    asked = len(news.naver.requests)
    assert asked == 9
    broker.publisher.publish(message)  # at-least-once: the same tick delivered again
    time.sleep(1.0)
    assert len(news.naver.requests) == asked and stored(clean_db) == 1
    assert broker.depths()[broker.names.dead_letter] == 0


def test_the_scheduler_fires_on_time(broker: RabbitBroker, news: NewsServer, clean_db: str) -> None:
    """The local scheduler of `eco2 dev` itself, on func.yaml's info schedule set to every minute:
    within a minute it publishes, and the broker delivers the tick to the handler."""
    text = (ROOT / "func.yaml").read_text(encoding="utf-8")
    assert text.count('schedule: "*/30 * * * *"') == 1
    project = funcyaml.parse(text.replace('schedule: "*/30 * * * *"', 'schedule: "* * * * *"'))
    news.naver.items["재활용"] = [
        naver_item("정각의 재활용 소식", news.page("on-time"), "Tue, 01 Dec 2026 09:00:00 +0900")
    ]
    scheduler = Scheduler(project, broker.publisher.publish)
    scheduler.start()
    try:
        assert wait_for(lambda: stored(clean_db) == 1, timeout=75)
    finally:
        scheduler.stop()
    assert len(news.naver.requests) == 9
