"""Triggers from func.yaml: one per subscription, named the same way locally and in the cluster."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping

from eco2.core.funcyaml import FuncYaml, Schedule, Subscription
from eventing.delivery import DeliverySpec, TriggerSpec, parse_duration


def dns_label(text: str, max_length: int = 63) -> str:
    """A DNS-1123 label from `text`, deterministic; a hash suffix keeps long names distinct."""
    base = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    base = re.sub(r"-{2,}", "-", base) or "x"
    if len(base) <= max_length:
        return base
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{base[: max_length - 9].rstrip('-')}-{digest}"


def trigger_name(function: str, filters: Mapping[str, str]) -> str:
    """`users` + {type: eco2.character.ownership.granted.v1} -> `users-character-ownership-granted-v1`.
    Filters beyond `type` add a short hash, so two subscriptions of one function to the same type
    get distinct names. The same name is used by the local broker and the rendered Trigger."""
    name = f"{function}-{filters['type'].removeprefix('eco2.')}"
    if len(filters) > 1:
        extra = json.dumps(dict(sorted(filters.items())), separators=(",", ":"))
        name = f"{name}-{hashlib.sha256(extra.encode()).hexdigest()[:6]}"
    return dns_label(name)


def schedule_trigger_name(function: str, schedule: str) -> str:
    return dns_label(f"{function}-ping-{schedule}")


def pingsource_name(function: str, schedule: str) -> str:
    return dns_label(f"{function}-{schedule}")


def schedule_filters(namespace: str, function: str, schedule: Schedule) -> dict[str, str]:
    from eco2.events.ingress import PING_TYPE, PING_TYPE_EXTENSION

    return {
        "type": PING_TYPE,
        "source": f"/apis/v1/namespaces/{namespace}/pingsources/{pingsource_name(function, schedule.name)}",
        PING_TYPE_EXTENSION: schedule.type,
    }


def delivery_spec(subscription: Subscription, sink_url: Callable[[str], str] | None = None) -> DeliverySpec:
    """The Trigger's delivery; `sink_url(function)` resolves a deadLetterSink to the address the
    broker posts to (a function without one here, such as one not running, leaves it to the queue)."""
    d = subscription.delivery
    if d is None:
        return DeliverySpec()
    return DeliverySpec(
        retry=d.retry if d.retry is not None else 3,
        backoff_policy=d.backoffPolicy or "exponential",
        backoff_delay=parse_duration(d.backoffDelay, 0.2),
        timeout=parse_duration(d.timeout, 30.0),
        dead_letter=d.deadLetter if d.deadLetter is not None else True,
        dead_letter_sink=(sink_url(d.deadLetterSink) or None) if d.deadLetterSink and sink_url else None,
    )


def triggers(project: FuncYaml, subscriber_url: Callable[[str], str]) -> list[TriggerSpec]:
    out = []
    for spec in project.functions.values():
        for subscription in spec.deploy.subscriptions:
            out.append(
                TriggerSpec(
                    name=trigger_name(spec.name, subscription.filters),
                    subscriber=subscriber_url(spec.name),
                    filters=dict(subscription.filters),
                    delivery=delivery_spec(subscription, subscriber_url),
                    parallelism=subscription.parallelism or 1,
                )
            )
        for schedule in spec.schedules:
            out.append(
                TriggerSpec(
                    name=schedule_trigger_name(spec.name, schedule.name),
                    subscriber=subscriber_url(spec.name),
                    filters=schedule_filters(spec.namespace, spec.name, schedule),
                )
            )
    return out
