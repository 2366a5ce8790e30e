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
from datetime import datetime
from zoneinfo import ZoneInfo

from eco2.core.funcyaml import FuncYaml, Schedule, check_cron
from eco2.events.ingress import PING_TYPE, PING_TYPE_EXTENSION
from eco2.events.message import Message, make_message
from eventing.triggers import schedule_filters

log = logging.getLogger("eco2.schedule")


class Cron:
    """A PingSource schedule (checked by `eco2.core.funcyaml.check_cron`), its next times on croniter; a
    day-of-month and a day-of-week both given match either, as in cron."""

    def __init__(self, expression: str) -> None:
        self.expression = check_cron(expression)

    def next_after(self, moment: datetime) -> datetime:
        from croniter import croniter

        found: datetime = croniter(self.expression, moment).get_next(datetime)
        return found


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
