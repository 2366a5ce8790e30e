"""Prometheus metrics of one function: requests, latency, in-flight, events, startup duration."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

CONTENT_TYPE = CONTENT_TYPE_LATEST
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """One registry per function runtime, so `eco2 dev` can host every function in one process."""

    def __init__(self, function: str) -> None:
        self.function = function
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "eco2_requests_total",
            "HTTP requests handled, by route template and status.",
            ["function", "route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "eco2_request_duration_seconds",
            "Time from request received to response ready.",
            ["function", "route", "method"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "eco2_requests_in_flight", "Requests being handled now.", ["function"], registry=self.registry
        )
        self.events = Counter(
            "eco2_events_total",
            "CloudEvents received, by type and outcome (handled, duplicate, rejected, failed).",
            ["function", "type", "outcome"],
            registry=self.registry,
        )
        self.startup = Gauge(
            "eco2_startup_duration_seconds",
            "Time from process start to clients ready.",
            ["function"],
            registry=self.registry,
        )

        self.in_flight_child = self.in_flight.labels(function)
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def observe(self, route: str, method: str, status: str, seconds: float) -> None:
        """Count one request; the labelled children are cached (labels() costs a lock and a lookup)."""
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(self.function, route, method, status),
                self.latency.labels(self.function, route, method),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
