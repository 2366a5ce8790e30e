"""Schedules (PingSource) in the local broker: cron parsing and ticks that the Triggers route."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from eco2.core.funcyaml import parse
from eventing.catalogue import INFO_NEWS_DUE
from eventing.schedule import Cron, tick
from eventing.triggers import triggers

SEOUL = ZoneInfo("Asia/Seoul")
PROJECT = f"""
specVersion: 0.36.0
name: p
namespace: eco2
functions:
  info:
    schedules:
      - {{name: News_Every_Hour, schedule: "0 * * * *", type: {INFO_NEWS_DUE}, data: {{categories: [ai]}}}}
"""


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 * * * *", datetime(2026, 11, 23, 9, 15, tzinfo=SEOUL), datetime(2026, 11, 23, 10, 0, tzinfo=SEOUL)),
        ("*/15 * * * *", datetime(2026, 11, 23, 9, 15, tzinfo=SEOUL), datetime(2026, 11, 23, 9, 30, tzinfo=SEOUL)),
        ("30 6 * * 1-5", datetime(2026, 11, 27, 7, 0, tzinfo=SEOUL), datetime(2026, 11, 30, 6, 30, tzinfo=SEOUL)),
        ("0 0 1 * *", datetime(2026, 11, 23, 9, 0, tzinfo=SEOUL), datetime(2026, 12, 1, 0, 0, tzinfo=SEOUL)),
        # names, macros and a leap day more than a year away (the hand-written parser refused these)
        ("0 9 * * MON", datetime(2026, 11, 27, 7, 0, tzinfo=SEOUL), datetime(2026, 11, 30, 9, 0, tzinfo=SEOUL)),
        ("@hourly", datetime(2026, 11, 23, 9, 15, tzinfo=SEOUL), datetime(2026, 11, 23, 10, 0, tzinfo=SEOUL)),
        ("0 0 29 2 *", datetime(2026, 11, 23, 9, 0, tzinfo=SEOUL), datetime(2028, 2, 29, 0, 0, tzinfo=SEOUL)),
    ],
)
def test_next_run(expression: str, after: datetime, expected: datetime) -> None:
    assert Cron(expression).next_after(after) == expected


@pytest.mark.parametrize("bad", ["* * * *", "61 * * * *", "*/0 * * * *", "a * * * *", "0 * * * * *", "@often"])
def test_bad_expressions_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        Cron(bad)


def test_a_tick_matches_its_trigger_and_only_it() -> None:
    project = parse(PROJECT)
    [trigger] = triggers(project, lambda name: f"http://127.0.0.1/{name}")
    message = tick("eco2", "info", project.get("info").schedules[0], datetime(2026, 11, 23, 10, tzinfo=SEOUL))
    assert trigger.matches(message.attributes)
    assert message.attributes["type"] == "dev.knative.sources.ping"
    assert message.attributes["eco2type"] == INFO_NEWS_DUE
    assert message.attributes["source"] == "/apis/v1/namespaces/eco2/pingsources/info-news-every-hour"
    assert not trigger.matches({**message.attributes, "eco2type": "eco2.other.thing.happened.v1"})


def test_func_yaml_refuses_a_schedule_knative_would_refuse() -> None:
    from eco2.core.funcyaml import FuncYamlError

    with pytest.raises(FuncYamlError) as caught:
        parse(PROJECT.replace('"0 * * * *"', '"0 * * *"'))
    assert any("schedule" in problem for problem in caught.value.problems)
