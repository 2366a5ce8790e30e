"""The news schedule end to end on real servers: func.yaml's `info` schedule -> the tick the local
scheduler publishes (the same attributes as the rendered PingSource) -> the local broker on
RabbitMQ -> the schedule's Trigger -> the info function over HTTP -> articles in PostgreSQL; a
redelivered tick collects nothing twice."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pika
import pytest
import redis as redis_lib
from sqlalchemy import create_engine, func, select

from eco2 import funcyaml
from eco2.db import normalise_url
from eventing.catalogue import INFO_NEWS_DUE
from eventing.rabbitmq import Names, RabbitBroker
from eventing.schedule import tick
from eventing.triggers import triggers
from functions.info import service, store
from tests.support.news_server import NewsServer, naver_item
from tests.support.servers import Served, serve_function

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
RABBIT = os.environ.get("ECO2_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


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


def test_the_schedule_fires_the_handler_through_the_local_broker_on_rabbitmq(
    served: Served, news: NewsServer, clean_db: str, redis_url: str
) -> None:
    project = funcyaml.load(ROOT / "func.yaml")
    spec = project.get("info")
    [schedule] = spec.schedules
    assert schedule.type == INFO_NEWS_DUE
    specs = [t for t in triggers(project, lambda name: served.url) if t.filters.get("eco2type") == INFO_NEWS_DUE]
    assert len(specs) == 1
    name = f"t{uuid.uuid4().hex[:8]}"
    broker = RabbitBroker(RABBIT, specs, broker=name)
    broker.start()
    engine = create_engine(normalise_url(clean_db))
    r = redis_lib.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert broker.wait_connected(10)
        news.naver.items["분리배출"] = [
            naver_item("<b>분리배출</b> 새 소식", news.page("tick"), "Tue, 01 Dec 2026 09:00:00 +0900")
        ]
        message = tick(spec.namespace, "info", schedule, datetime.now(UTC))
        assert message.attributes["type"] == "dev.knative.sources.ping"
        broker.publisher.publish(message)

        def stored() -> int:
            with engine.connect() as connection:
                return int(connection.scalar(select(func.count()).select_from(store.news_articles)) or 0)

        assert wait_for(lambda: stored() == 1 and r.get(service.LAST_RUN_KEY) is not None)
        asked = len(news.naver.requests)
        assert asked == 9
        broker.publisher.publish(message)  # at-least-once: the same tick delivered again
        time.sleep(1.0)
        assert len(news.naver.requests) == asked and stored() == 1
        assert broker.depths()[broker.names.dead_letter] == 0
    finally:
        broker.stop()
        engine.dispose()
        connection = pika.BlockingConnection(pika.URLParameters(RABBIT))
        channel = connection.channel()
        names = Names(name)
        for trigger in specs:
            channel.queue_delete(names.queue(trigger.name))
        channel.queue_delete(names.dead_letter)
        channel.exchange_delete(names.exchange)
        connection.close()
