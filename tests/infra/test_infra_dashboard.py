"""The Grafana dashboard of the functions: provisioned by the monitoring stack's dashboard sidecar
from a labelled ConfigMap, its JSON parses, and every query names a metric the code exports
(or one RabbitMQ's own exporter serves)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
FILE = ROOT / "infra" / "k8s" / "base" / "monitoring" / "dashboard-functions.yaml"
EXTERNAL = {"rabbitmq_queue_messages_ready"}  # RabbitMQ's prometheus plugin (the cluster operator enables it)
PROMQL_WORDS = {"sum", "by", "rate", "histogram_quantile", "max", "le", "label_values"}


def exported_metrics() -> set[str]:
    """Metric names declared in platform/eco2/core/metrics.py (histograms also export _bucket/_sum/_count)."""
    source = (ROOT / "platform" / "eco2").rglob("metrics.py")
    names: set[str] = set()
    for path in source:
        for kind, name in re.findall(r"(Counter|Gauge|Histogram|Summary)\(\s*\"(eco2_[a-z_]+)\"", path.read_text()):
            names.add(name)
            if kind == "Histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def dashboard() -> dict[str, object]:
    [config_map] = [d for d in yaml.safe_load_all(FILE.read_text(encoding="utf-8")) if d]
    assert config_map["kind"] == "ConfigMap" and config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    [text] = config_map["data"].values()
    loaded: dict[str, object] = json.loads(text)
    return loaded


def test_the_dashboard_parses_and_covers_what_the_issue_asks() -> None:
    titles = " ".join(str(p["title"]).lower() for p in dashboard()["panels"])  # type: ignore[attr-defined]
    for needed in ("requests per second", "latency", "error ratio", "in flight", "startup", "events", "dead-letter"):
        assert needed in titles, needed


def test_every_query_names_an_exported_metric() -> None:
    exported = exported_metrics()
    assert {"eco2_requests_total", "eco2_request_duration_seconds_bucket", "eco2_events_total"} <= exported
    board = dashboard()
    queries = [t["expr"] for p in board["panels"] for t in p["targets"]]  # type: ignore[attr-defined]
    queries += [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]  # type: ignore[index]
    for query in queries:
        without_strings = re.sub(r'"[^"]*"', "", query)
        without_labels = re.sub(r"\{[^}]*\}|\[[^]]*\]|\bby \([^)]*\)|, *[a-z_]+\)", ")", without_strings)
        names = set(re.findall(r"[a-z_][a-z0-9_]*", without_labels)) - PROMQL_WORDS
        assert names, query
        assert names <= exported | EXTERNAL, (query, names - exported - EXTERNAL)


def test_the_dashboard_is_part_of_the_monitoring_overlay() -> None:
    kustomization = yaml.safe_load((FILE.parent / "kustomization.yaml").read_text(encoding="utf-8"))
    assert FILE.name in kustomization["resources"]
