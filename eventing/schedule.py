"""Schedules (Knative PingSource) for the local broker: the same tick, published on time.

A tick looks exactly as a PingSource's does in the cluster: `type: dev.knative.sources.ping`,
`source: /apis/v1/namespaces/<ns>/pingsources/<name>`, the catalogue type in the `eco2type`
extension, and the schedule's data as JSON; the local broker's Triggers route it like the
rendered ones do.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from eco2.ce import PING_TYPE, PING_TYPE_EXTENSION
from eco2.funcyaml import FuncYaml, Schedule
from eventing.delivery import Message
from eventing.publisher import make_message
from eventing.triggers import schedule_filters

log = logging.getLogger("eco2.schedule")
_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


def _field(text: str, low: int, high: int) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            start, end = low, high
        elif "-" in base:
            a, b = base.split("-", 1)
            start, end = int(a), int(b)
        else:
            start = end = int(base)
            if step_text:
                end = high
        if start < low or end > high or step < 1:
            raise ValueError(f"{part!r} is outside {low}-{high}")
        out.update(range(start, end + 1, step))
    return out


class Cron:
    """Five-field cron (minute hour day-of-month month day-of-week), as PingSource accepts."""

    def __init__(self, expression: str) -> None:
        parts = expression.split()
        if len(parts) != 5:
            raise ValueError(f"{expression!r}: a schedule has five fields")
        self.fields = [_field(p, lo, hi) for p, (lo, hi) in zip(parts, _RANGES, strict=True)]
        self.fields[4] = {d % 7 for d in self.fields[4]}
        self.any_dom, self.any_dow = parts[2] == "*", parts[4] == "*"

    def matches(self, moment: datetime) -> bool:
        minute, hour, dom, month, dow = self.fields
        day_ok = (
            (moment.day in dom)
            if self.any_dow
            else (
                (moment.isoweekday() % 7) in dow
                if self.any_dom
                else (moment.day in dom or (moment.isoweekday() % 7) in dow)
            )
        )
        return moment.minute in minute and moment.hour in hour and moment.month in month and day_ok

    def next_after(self, moment: datetime) -> datetime:
        candidate = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(366 * 24 * 60):
            if self.matches(candidate):
                return candidate
            candidate += timedelta(minutes=1)
        raise ValueError("no matching time within a year")


def tick(namespace: str, function: str, schedule: Schedule, when: datetime) -> Message:
    return make_message(
        PING_TYPE,
        schedule.data,
        source=schedule_filters(namespace, function, schedule)["source"],  # the same as the rendered PingSource
        time=when.isoformat(),
        extensions={PING_TYPE_EXTENSION: schedule.type},
    )


class Scheduler(threading.Thread):
    def __init__(self, project: FuncYaml, publish: Callable[[Message], None]) -> None:
        super().__init__(name="schedules", daemon=True)
        self.entries = [
            (spec.namespace, spec.name, s, Cron(s.schedule), ZoneInfo(s.timezone))
            for spec in project.functions.values()
            for s in spec.schedules
        ]
        self.publish = publish
        self.stopping = threading.Event()

    def run(self) -> None:
        upcoming = {i: cron.next_after(datetime.now(tz)) for i, (_, _, _, cron, tz) in enumerate(self.entries)}
        while upcoming and not self.stopping.is_set():
            index, when = min(upcoming.items(), key=lambda kv: kv[1])
            wait = (when - datetime.now(when.tzinfo)).total_seconds()
            if wait > 0 and self.stopping.wait(min(wait, 30)):
                return
            if datetime.now(when.tzinfo) < when:
                continue
            namespace, function, schedule, cron, _tz = self.entries[index]
            try:
                self.publish(tick(namespace, function, schedule, when))
            except Exception:
                log.exception("schedule tick not published", extra={"schedule": schedule.name})
            upcoming[index] = cron.next_after(when)

    def stop(self) -> None:
        self.stopping.set()
