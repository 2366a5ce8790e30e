"""The event catalogue against func.yaml, the handlers and the docs."""

from __future__ import annotations

import re
from pathlib import Path

from eco2.core import funcyaml
from eco2.serving.entry import import_function
from eventing.catalogue import CATALOGUE, markdown_table

ROOT = Path(__file__).resolve().parents[2]
TYPE_RE = re.compile(r"^eco2\.[a-z]+\.[a-z][a-z-]*\.[a-z][a-z-]*\.v\d+$")


def test_types_follow_the_naming_rule() -> None:
    for event_type, spec in CATALOGUE.items():
        assert TYPE_RE.match(event_type), event_type
        assert spec.type == event_type
        assert spec.schema()["type"] == "object"
        assert spec.source.startswith("/eco2/")


def test_subscriptions_handlers_and_catalogue_agree() -> None:
    project = funcyaml.load(ROOT / "func.yaml")
    for spec in project.functions.values():
        function = import_function(spec.module)
        # a schedule (PingSource) subscribes its function to its type, as `eco2 validate` counts it
        subscribed = {s.filters["type"] for s in spec.deploy.subscriptions} | {s.type for s in spec.schedules}
        for event_type in subscribed | set(function.events):
            assert event_type in CATALOGUE, f"{spec.name}: {event_type} is not in the catalogue"
        dead = {t for t, h in function.events.items() if h.dead_letters}
        assert subscribed == set(function.events) - dead, (
            f"{spec.name}: subscriptions {subscribed} vs handlers {set(function.events) - dead}"
        )
        # a dead-letter handler exactly where a Trigger names this function its deadLetterSink
        assert dead == project.dead_letter_types(spec.name), spec.name
        for event_type in subscribed:
            assert spec.name in CATALOGUE[event_type].consumers, f"{spec.name} is not a listed consumer of {event_type}"


def test_catalogue_consumers_exist_when_their_function_does() -> None:
    project = funcyaml.load(ROOT / "func.yaml")
    for spec in CATALOGUE.values():
        for consumer in spec.consumers:
            if consumer in project.functions:
                entry = project.functions[consumer]
                types = {s.filters["type"] for s in entry.deploy.subscriptions} | {s.type for s in entry.schedules}
                assert spec.type in types, f"{consumer} is listed as consuming {spec.type} but does not subscribe"


def test_readme_table_is_current() -> None:
    text = (ROOT / "eventing" / "README.md").read_text(encoding="utf-8")
    table = text.split("<!-- catalogue:start -->")[1].split("<!-- catalogue:end -->")[0].strip()
    assert table == markdown_table(), "regenerate with: python -m eventing.catalogue"
