"""Triggers from func.yaml: one per subscription, named the same way locally and in the cluster."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping

from eco2.funcyaml import FuncYaml, Subscription
from eventing.delivery import DeliverySpec, TriggerSpec, parse_duration


def trigger_name(function: str, filters: Mapping[str, str]) -> str:
    """`users` + {type: eco2.character.ownership.granted.v1} -> `users-character-ownership-granted-v1`
    (DNS-1123, at most 63 characters). Filters beyond `type` add a short hash, so two
    subscriptions of one function to the same type get distinct names."""
    short = filters["type"].removeprefix("eco2.")
    name = re.sub(r"[^a-z0-9-]+", "-", f"{function}-{short}".lower()).strip("-")
    if len(filters) > 1:
        extra = json.dumps(dict(sorted(filters.items())), separators=(",", ":"))
        name = f"{name}-{hashlib.sha256(extra.encode()).hexdigest()[:6]}"
    if len(name) <= 63:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:54].rstrip('-')}-{digest}"


def delivery_spec(subscription: Subscription) -> DeliverySpec:
    d = subscription.delivery
    if d is None:
        return DeliverySpec()
    return DeliverySpec(
        retry=d.retry if d.retry is not None else 3,
        backoff_policy=d.backoffPolicy or "exponential",
        backoff_delay=parse_duration(d.backoffDelay, 0.2),
        timeout=parse_duration(d.timeout, 30.0),
        dead_letter=d.deadLetter if d.deadLetter is not None else True,
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
                    delivery=delivery_spec(subscription),
                    parallelism=subscription.parallelism or 1,
                )
            )
    return out
