"""Render func.yaml into Knative / Istio manifests: plain dicts, deterministic, byte-for-byte stable.

Objects (in this order, then by namespace and name):

1. `RabbitmqBrokerConfig` (eventing.knative.dev/v1alpha1): the RabbitMQ cluster the brokers use.
2. `Broker` (eventing.knative.dev/v1, class `RabbitMQBroker`): one per namespace and broker name.
3. `Service` (serving.knative.dev/v1): one per function.
4. `Trigger` (eventing.knative.dev/v1): one per subscription, and one per schedule.
5. `PingSource` (sources.knative.dev/v1): one per schedule.
6. `VirtualService` (networking.istio.io/v1): one per HTTP function (Knative's "routing across
   Knative Services" pattern, knative/docs code-samples/serving/knative-routing-go).

Decisions (see the comments at each place):

- K_SINK is rendered as a literal env var: the eventing-rabbitmq broker's address is
  `http://<broker>-broker-ingress.<namespace>.svc.<cluster domain>` (port 80, path `/`).
- A PingSource always emits `type: dev.knative.sources.ping`; `ceOverrides` cannot change a core
  attribute. So a schedule's PingSource sinks to the Broker, carries the catalogue type in the
  `eco2type` extension, and a Trigger filtering on the PingSource's `type` + `source` delivers it
  to the function, which maps `(dev.knative.sources.ping, eco2type=X)` to its handler for X.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from eco2.core.funcyaml import TEMPLATE_RE, FunctionSpec, FuncYaml, Subscription
from eventing.catalogue import CATALOGUE
from eventing.triggers import pingsource_name, schedule_filters, schedule_trigger_name, trigger_name

PART_OF = "eco2"
CONTAINER_PORT = 8080
APP_ROOT = "/app"
from eco2.events.ingress import PING_TYPE_EXTENSION  # noqa: E402  (the runtime maps such ticks to handlers)

LOCAL_GATEWAY = "knative-local-gateway.istio-system.svc.cluster.local"
INGRESS_GATEWAY = "knative-serving/knative-ingress-gateway"

KIND_ORDER = (
    "RabbitmqBrokerConfig",
    "Broker",
    "Service",
    "Trigger",
    "PingSource",
    "VirtualService",
    "AuthorizationPolicy",
)
PUBLIC_INGRESS_HEADER = "x-eco2-ingress"  # eco2.core.runtime.PUBLIC_INGRESS_HEADER, as Envoy spells headers
EVENT_PATH = "/"  # eco2.core.runtime.EVENT_PATH: where Triggers deliver (a subscriber ref has no path)
INGRESS_GATEWAY_PRINCIPAL = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
PART_OF_LABEL = "app.kubernetes.io/part-of"
NAME_LABEL = "app.kubernetes.io/name"

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class ManifestError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


# -- names ------------------------------------------------------------------------------------------
def broker_address(broker: str, namespace: str, cluster_domain: str = "cluster.local") -> str:
    """The broker ingress of the eventing-rabbitmq broker.

    knative-extensions/eventing-rabbitmq pkg/reconciler/broker/resources/ingress.go (MakeIngressService)
    creates the Service `<broker>-broker-ingress` in the Broker's namespace, port 80 -> 8080, and
    pkg/reconciler/broker/broker.go (reconcileCommonIngressResources) sets the Broker's
    status.address.url to `http://` + network.GetServiceHostname(<that service>, <namespace>), i.e.
    `<name>.<namespace>.svc.<cluster domain>`, with no path (unlike the MT channel broker's
    `broker-ingress.knative-eventing.svc/<namespace>/<broker>`).
    """
    return f"http://{broker}-broker-ingress.{namespace}.svc.{cluster_domain}"


# -- helpers ----------------------------------------------------------------------------------------
def _labels(function: str | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    labels: dict[str, str] = {}
    if function is not None:
        labels[NAME_LABEL] = function
    labels[PART_OF_LABEL] = PART_OF
    for key, value in sorted((extra or {}).items()):
        labels[key] = value
    return labels


def _meta(
    name: str, namespace: str, labels: dict[str, str], annotations: Mapping[str, str] | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if annotations:
        meta["annotations"] = {k: annotations[k] for k in sorted(annotations)}
    return meta


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _where(spec: FunctionSpec) -> str:
    return f"func.yaml: functions.{spec.name}"


def _env(spec: FunctionSpec, broker: str, cluster_domain: str, environ: Mapping[str, str]) -> list[dict[str, Any]]:
    """run.envs as container env: literals, secretKeyRef, configMapKeyRef, `{{ env:VAR }}` resolved now."""
    out: list[dict[str, Any]] = []
    problems: list[str] = []
    for index, env in enumerate(spec.run.envs):
        found = TEMPLATE_RE.fullmatch(env.value.strip())
        if found is None:
            out.append({"name": env.name, "value": env.value})
            continue
        source, argument = found.group(1), found.group(2).strip()
        if source == "env":
            if argument not in environ:
                problems.append(
                    f"{_where(spec)}.run.envs[{index}] ({env.name}): {{{{ env:{argument} }}}} needs "
                    f"${argument} set when rendering manifests, and it is not set"
                )
                continue
            out.append({"name": env.name, "value": environ[argument]})
            continue
        name, _, key = argument.partition(":")
        if not name or not key:
            problems.append(f"{_where(spec)}.run.envs[{index}] ({env.name}): expected {{{{ {source}:NAME:KEY }}}}")
            continue
        ref = "secretKeyRef" if source == "secret" else "configMapKeyRef"
        out.append({"name": env.name, "valueFrom": {ref: {"name": name.strip(), "key": key.strip()}}})
    if problems:
        raise ManifestError(problems)
    declared = {e["name"] for e in out}
    if "ECO2_ROOT" not in declared:
        out.append({"name": "ECO2_ROOT", "value": APP_ROOT})
    if "K_SINK" not in declared:
        # Rendered literally rather than injected by a SinkBinding: one object less, no webhook on the
        # function's pods, and `eco2 manifests` output shows where events go. It follows the broker's
        # address scheme (see broker_address); a SinkBinding would track status.address.url instead.
        out.append({"name": "K_SINK", "value": broker_address(broker, spec.namespace, cluster_domain)})
    return out


def _template_annotations(spec: FunctionSpec) -> dict[str, str]:
    scale = spec.deploy.options.scale
    prefix = "autoscaling.knative.dev/"
    annotations: dict[str, str] = {}
    if scale.metric in ("cpu", "memory"):
        # Knative's KPA autoscales on concurrency and rps only; cpu and memory need the HPA class,
        # which cannot scale to zero.
        annotations[prefix + "class"] = "hpa.autoscaling.knative.dev"
        if not scale.min:
            raise ManifestError(
                [f"{_where(spec)}.deploy.options.scale: metric {scale.metric} uses the HPA, which needs min >= 1"]
            )
    if scale.min is not None:
        annotations[prefix + "min-scale"] = str(scale.min)
    if scale.max is not None:
        annotations[prefix + "max-scale"] = str(scale.max)
    if scale.metric is not None:
        annotations[prefix + "metric"] = scale.metric
    if scale.target is not None:
        annotations[prefix + "target"] = _number(scale.target)
    if scale.utilization is not None:
        annotations[prefix + "target-utilization-percentage"] = _number(scale.utilization)
    if scale.retention is not None:
        annotations[prefix + "scale-to-zero-pod-retention-period"] = scale.retention
    annotations.update(spec.deploy.annotations)
    return {k: annotations[k] for k in sorted(annotations)}


def _extra_labels(spec: FunctionSpec) -> dict[str, str]:
    """deploy.labels in Knative func's form: a list of {key, value}."""
    out: dict[str, str] = {}
    for index, item in enumerate(spec.deploy.labels):
        if set(item) != {"key", "value"}:
            raise ManifestError([f"{_where(spec)}.deploy.labels[{index}]: expected {{key, value}}"])
        out[item["key"]] = item["value"]
    return out


# -- objects ----------------------------------------------------------------------------------------
def service(
    spec: FunctionSpec,
    *,
    broker: str = "eco2",
    cluster_domain: str = "cluster.local",
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The function's Knative Service."""
    deploy = spec.deploy
    resources: dict[str, dict[str, str]] = {}
    for part, values in (("requests", deploy.options.resources.requests), ("limits", deploy.options.resources.limits)):
        chosen = {k: v for k, v in (("cpu", values.cpu), ("memory", values.memory)) if v is not None}
        if chosen:
            resources[part] = chosen
    container: dict[str, Any] = {
        "name": "function",
        "image": spec.image,
        "command": ["python", "-m", "eco2.serving.server", spec.main_path],
        "ports": [{"name": "http1", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "env": _env(spec, broker, cluster_domain, os.environ if environ is None else environ),
    }
    if resources:
        container["resources"] = resources
    # Knative allows a probe port only when it equals the serving port: leave it out and Knative
    # fills it in (and its queue-proxy runs the readiness probe itself).
    container["readinessProbe"] = {"httpGet": {"path": deploy.healthEndpoints.readiness}}
    container["livenessProbe"] = {"httpGet": {"path": deploy.healthEndpoints.liveness}}
    pod: dict[str, Any] = {}
    if deploy.options.resources.limits.concurrency is not None:
        pod["containerConcurrency"] = deploy.options.resources.limits.concurrency
    if deploy.timeoutSeconds is not None:
        pod["timeoutSeconds"] = deploy.timeoutSeconds
    if deploy.serviceAccountName:
        pod["serviceAccountName"] = deploy.serviceAccountName
    pod["containers"] = [container]
    labels = _labels(spec.name, _extra_labels(spec))
    # Every Service is cluster-local: Knative then makes no public host for it (a public one would
    # answer `Host: <name>.<namespace>.<domain>` on the ingress gateway, event path included). The
    # public API reaches HTTP functions only through the VirtualServices below, per prefix.
    labels["networking.knative.dev/visibility"] = "cluster-local"
    template_meta: dict[str, Any] = {"labels": _labels(spec.name)}
    annotations = _template_annotations(spec)
    if annotations:
        template_meta["annotations"] = annotations
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": _meta(spec.name, spec.namespace, labels),
        "spec": {"template": {"metadata": template_meta, "spec": pod}},
    }


def broker_config(namespace: str, *, name: str, cluster: str, cluster_namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "eventing.knative.dev/v1alpha1",
        "kind": "RabbitmqBrokerConfig",
        "metadata": _meta(name, namespace, _labels(None)),
        "spec": {
            "rabbitmqClusterReference": {"name": cluster, "namespace": cluster_namespace},
            "queueType": "quorum",
        },
    }


def broker_object(
    name: str, namespace: str, *, config: str, config_namespace: str, dead_letter_sink: str | None
) -> dict[str, Any]:
    # Defaults for Triggers without their own delivery. Without a dead-letter sink, an event that
    # exhausts its retries is dropped by the RabbitMQ broker's dispatcher (and logged).
    delivery: dict[str, Any] = {"retry": 3, "backoffPolicy": "exponential", "backoffDelay": "PT0.2S"}
    if dead_letter_sink:
        delivery["deadLetterSink"] = _service_ref(dead_letter_sink, namespace)
    return {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Broker",
        "metadata": _meta(name, namespace, _labels(None), {"eventing.knative.dev/broker.class": "RabbitMQBroker"}),
        "spec": {
            "config": {
                "apiVersion": "eventing.knative.dev/v1alpha1",
                "kind": "RabbitmqBrokerConfig",
                "name": config,
                "namespace": config_namespace,
            },
            "delivery": delivery,
        },
    }


def _service_ref(name: str, namespace: str) -> dict[str, Any]:
    return {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": name, "namespace": namespace}}


def _delivery(subscription: Subscription, namespace: str, dead_letter_sink: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    spec = subscription.delivery
    if spec is None:
        return out
    if spec.retry is not None:
        out["retry"] = spec.retry
    if spec.backoffPolicy is not None:
        out["backoffPolicy"] = spec.backoffPolicy
    if spec.backoffDelay is not None:
        out["backoffDelay"] = spec.backoffDelay
    if spec.timeout is not None:
        # the per-attempt delivery timeout: Knative's `delivery-timeout` feature, on by default since
        # Eventing 1.22 (the CRD schema keeps delivery fields open for such features)
        out["timeout"] = spec.timeout
    if spec.deadLetterSink:  # this Trigger's own sink (a function of the same namespace) wins
        out["deadLetterSink"] = _service_ref(spec.deadLetterSink, namespace)
    elif spec.deadLetter and dead_letter_sink:
        out["deadLetterSink"] = _service_ref(dead_letter_sink, namespace)
    return out


def trigger(
    spec: FunctionSpec,
    name: str,
    *,
    broker: str,
    filters: Mapping[str, str],
    delivery: Mapping[str, Any] | None = None,
    parallelism: int | None = None,
) -> dict[str, Any]:
    annotations = {"rabbitmq.eventing.knative.dev/parallelism": str(parallelism)} if parallelism else None
    body: dict[str, Any] = {
        "broker": broker,
        "filter": {"attributes": {k: filters[k] for k in sorted(filters)}},
        "subscriber": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": spec.name}},
    }
    if delivery:
        body["delivery"] = dict(delivery)
    return {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": _meta(name, spec.namespace, _labels(spec.name), annotations),
        "spec": body,
    }


def _triggers(spec: FunctionSpec, dead_letter_sink: str | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    problems: list[str] = []
    used: set[str] = set()
    for index, subscription in enumerate(spec.deploy.subscriptions):
        event_type = subscription.filters["type"]
        if event_type not in CATALOGUE:
            problems.append(
                f"{_where(spec)}.deploy.subscriptions[{index}].filters.type: {event_type!r} is not in the "
                "event catalogue (eventing/catalogue.py)"
            )
            continue
        name = trigger_name(spec.name, subscription.filters)
        if name in used:
            problems.append(f"{_where(spec)}.deploy.subscriptions[{index}]: the same filters appear twice")
        used.add(name)
        out.append(
            trigger(
                spec,
                name,
                broker=subscription.source,
                filters=subscription.filters,
                delivery=_delivery(subscription, spec.namespace, dead_letter_sink),
                parallelism=subscription.parallelism,
            )
        )
    if problems:
        raise ManifestError(problems)
    return out


def _schedule_objects(spec: FunctionSpec, broker: str) -> list[dict[str, Any]]:
    """PingSource -> Broker -> Trigger(type=dev.knative.sources.ping, source=<this PingSource>) -> function.

    A PingSource always emits `type: dev.knative.sources.ping` and `source:
    /apis/v1/namespaces/<ns>/pingsources/<name>` (knative/eventing pkg/adapter/mtping/runner.go,
    makeEvent). `ceOverrides.extensions` cannot replace `type`: cloudevents sdk-go's
    EventContextV1.SetExtension refuses a core attribute name ("CloudEvents spec attribute MUST NOT
    be overwritten by extension") and the adapter ignores that error. So the catalogue type travels
    as the `eco2type` extension and the function's runtime dispatches such an event to its handler
    for that type. Going through the Broker (not straight to the Service) gives the tick the same
    durable queue, retry and backoff as every other event.
    """
    out: list[dict[str, Any]] = []
    problems: list[str] = []
    for index, schedule in enumerate(spec.schedules):
        where = f"{_where(spec)}.schedules[{index}]"
        event = CATALOGUE.get(schedule.type)
        if event is None:
            problems.append(f"{where}.type: {schedule.type!r} is not in the event catalogue (eventing/catalogue.py)")
            continue
        data_model: Any = event.data  # (catalogue's EventSpec.type field confuses mypy about `type[...]`)
        try:
            data_model.model_validate(schedule.data)
        except ValueError as exc:
            problems.append(f"{where}.data: does not match the schema of {schedule.type}: {exc}")
            continue
        name = pingsource_name(spec.name, schedule.name)
        out.append(
            {
                "apiVersion": "sources.knative.dev/v1",
                "kind": "PingSource",
                "metadata": _meta(name, spec.namespace, _labels(spec.name)),
                "spec": {
                    "schedule": schedule.schedule,
                    "timezone": schedule.timezone,
                    "contentType": "application/json",
                    "data": json.dumps(schedule.data, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
                    "ceOverrides": {"extensions": {PING_TYPE_EXTENSION: schedule.type}},
                    "sink": {"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": broker}},
                },
            }
        )
        out.append(
            trigger(
                spec,
                schedule_trigger_name(spec.name, schedule.name),
                broker=broker,
                filters=schedule_filters(spec.namespace, spec.name, schedule),
            )
        )
    if problems:
        raise ManifestError(problems)
    return out


def path_regex(template: str) -> str:
    """`/api/v1/scan/{job_id}/events` -> `^/api/v1/scan/[^/]+/events$` (one segment per parameter)."""
    return "^" + re.sub(r"\\\{[a-z_][a-z0-9_]*\\\}", "[^/]+", re.escape(template)) + "$"


def _public_rule(matches: list[dict[str, Any]], authority: str) -> dict[str, Any]:
    return {
        "match": matches,
        "rewrite": {"authority": authority},
        # marks what came from the internet; the runtime and the AuthorizationPolicy refuse events
        # that carry it (a client cannot remove a header set here)
        "headers": {"request": {"set": {PUBLIC_INGRESS_HEADER: "public"}}},
        "route": [{"destination": {"host": LOCAL_GATEWAY, "port": {"number": 80}}, "weight": 100}],
    }


def inner_routes(spec: FunctionSpec, project: FuncYaml) -> list[tuple[str, FunctionSpec]]:
    """Other functions' func.yaml `routes` (exact paths) that fall under one of `spec`'s prefixes."""
    return [
        (template, other)
        for other in sorted(project.functions.values(), key=lambda f: f.name)
        if other.name != spec.name
        for template in other.routes
        if any(template.startswith(prefix.rstrip("/") + "/") for prefix in spec.ingress)
    ]


def virtual_service(
    spec: FunctionSpec,
    *,
    public_host: str,
    cluster_domain: str = "cluster.local",
    inner: Sequence[tuple[str, FunctionSpec]] = (),
) -> dict[str, Any]:
    """Routes `<public_host><prefix>` to the function (knative/docs code-samples/serving/knative-routing-go,
    routing-internal.yaml): match the prefix, rewrite the authority to the Knative Service's cluster
    host, send to the local gateway, which routes by that host. `inner`: exact paths under a prefix
    that another function serves (the streams function's event paths), matched first *in this
    VirtualService*: the order of rules within one VirtualService is fixed, while Istio merges the
    VirtualServices of one host in creation order."""

    def authority(target: FunctionSpec) -> str:
        return f"{target.name}.{target.namespace}.svc.{cluster_domain}"

    rules = [_public_rule([{"uri": {"regex": path_regex(template)}}], authority(other)) for template, other in inner]
    # `/api/v1/info` itself and everything below `/api/v1/info/`, but not `/api/v1/information`:
    # Istio's prefix match is a plain string prefix
    rules += [
        _public_rule([{"uri": {"exact": prefix}}, {"uri": {"prefix": prefix.rstrip("/") + "/"}}], authority(spec))
        for prefix in spec.ingress
    ]
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": _meta(spec.name, spec.namespace, _labels(spec.name)),
        "spec": {"gateways": [INGRESS_GATEWAY], "hosts": [public_host], "http": rules},
    }


def authorization_policy(spec: FunctionSpec) -> dict[str, Any]:
    """Defence in depth for the private event path (with sidecar injection in the namespace):
    refuse `POST /` to anything the public ingress forwarded — marked by the VirtualServices'
    header, or sent by the ingress gateway's identity. Triggers' deliveries (the RabbitMQ
    dispatcher) carry neither and are allowed; the runtime makes the same check itself."""
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": _meta(f"{spec.name}-event-path", spec.namespace, _labels(spec.name)),
        "spec": {
            "selector": {"matchLabels": {"serving.knative.dev/service": spec.name}},
            "action": "DENY",
            "rules": [
                {
                    "to": [{"operation": {"paths": [EVENT_PATH]}}],
                    "when": [{"key": f"request.headers[{PUBLIC_INGRESS_HEADER}]", "values": ["*"]}],
                },
                {
                    "from": [{"source": {"principals": [INGRESS_GATEWAY_PRINCIPAL]}}],
                    "to": [{"operation": {"paths": [EVENT_PATH]}}],
                },
            ],
        },
    }


# -- rendering --------------------------------------------------------------------------------------
def _sort_key(obj: Mapping[str, Any]) -> tuple[int, str, str]:
    meta = obj["metadata"]
    return (KIND_ORDER.index(obj["kind"]), meta.get("namespace", ""), meta["name"])


def _function_objects(
    spec: FunctionSpec,
    project: FuncYaml,
    *,
    broker: str,
    public_host: str,
    cluster_domain: str,
    dead_letter_sink: str | None,
    environ: Mapping[str, str] | None,
    routes: bool,
) -> list[dict[str, Any]]:
    out = [service(spec, broker=broker, cluster_domain=cluster_domain, environ=environ)]
    out += _triggers(spec, dead_letter_sink)
    out += _schedule_objects(spec, broker)
    if routes and spec.http:
        inner = inner_routes(spec, project)
        out.append(virtual_service(spec, public_host=public_host, cluster_domain=cluster_domain, inner=inner))
    out.append(authorization_policy(spec))
    return out


def _check_unique(objects: list[dict[str, Any]]) -> None:
    seen: dict[tuple[str, str, str], int] = {}
    problems: list[str] = []
    for obj in objects:
        key = (obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if key in seen:
            problems.append(f"two {key[0]} objects named {key[2]} in namespace {key[1]}")
        seen[key] = 1
        if not _DNS1123_LABEL.match(key[2]) or len(key[2]) > 63:
            problems.append(f"{key[0]} {key[2]!r}: not a DNS-1123 label of at most 63 characters")
    if problems:
        raise ManifestError(problems)


def render(
    project: FuncYaml,
    *,
    broker: str = "eco2",
    only: str | None = None,
    public_host: str = "api.eco2.example",
    cluster_domain: str = "cluster.local",
    rabbitmq_cluster: str = "eco2-rabbitmq",
    rabbitmq_namespace: str | None = None,
    dead_letter_sink: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Every object for the project, sorted by kind (KIND_ORDER), namespace and name.

    `only`: one function's objects (Service, Triggers, PingSources, VirtualService), without the
    shared Broker and RabbitmqBrokerConfig. `environ` resolves `{{ env:VAR }}` (default os.environ).
    `dead_letter_sink`: the name of a Knative Service in each broker's namespace that receives
    events after their last retry (Broker default, and Triggers whose delivery says deadLetter);
    None renders no dead-letter sink.
    """
    specs = [project.get(only)] if only is not None else [project.functions[n] for n in sorted(project.functions)]
    objects: list[dict[str, Any]] = []
    problems: list[str] = []
    for spec in specs:
        try:
            objects += _function_objects(
                spec,
                project,
                broker=broker,
                public_host=public_host,
                cluster_domain=cluster_domain,
                dead_letter_sink=dead_letter_sink,
                environ=environ,
                routes=True,
            )
        except ManifestError as exc:
            problems += exc.problems
    if problems:
        raise ManifestError(problems)
    if only is None:
        config_name = f"{broker}-broker-config"
        home = project.project.namespace
        cluster_ns = rabbitmq_namespace or home
        objects.append(broker_config(home, name=config_name, cluster=rabbitmq_cluster, cluster_namespace=cluster_ns))
        # a Broker wherever a function publishes (K_SINK: the default broker in its namespace) or
        # a Trigger / PingSource names one (a Trigger's broker must be in the Trigger's namespace)
        brokers = {(spec.namespace, broker) for spec in specs}
        brokers |= {(spec.namespace, sub.source) for spec in specs for sub in spec.deploy.subscriptions}
        for namespace, name in sorted(brokers):
            objects.append(
                broker_object(
                    name, namespace, config=config_name, config_namespace=home, dead_letter_sink=dead_letter_sink
                )
            )
    _check_unique(objects)
    return sorted(objects, key=_sort_key)


def render_function(
    project: FuncYaml,
    name: str,
    *,
    broker: str = "eco2",
    routes: bool = True,
    public_host: str = "api.eco2.example",
    cluster_domain: str = "cluster.local",
    dead_letter_sink: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """What `eco2 deploy <name>` applies: the function's Service, Triggers, PingSources and (with
    `routes`, for an HTTP function) its VirtualService. The Broker is shared and deployed with
    `eco2 manifests`."""
    objects = _function_objects(
        project.get(name),
        project,
        broker=broker,
        public_host=public_host,
        cluster_domain=cluster_domain,
        dead_letter_sink=dead_letter_sink,
        environ=environ,
        routes=routes,
    )
    _check_unique(objects)
    return sorted(objects, key=_sort_key)


# -- output -----------------------------------------------------------------------------------------
def file_name(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{obj['kind'].lower()}-{meta['name']}.yaml"


def dump(obj: Mapping[str, Any]) -> str:
    """One object as YAML: keys in the order rendered, no timestamps, stable across runs."""
    return yaml.safe_dump(dict(obj), sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000)


def to_yaml(objects: list[dict[str, Any]]) -> str:
    """All objects as one multi-document YAML stream."""
    return "".join(f"---\n{dump(obj)}" for obj in objects)


def write(objects: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """One file per object plus kustomization.yaml listing them; returns the paths written.

    Two objects of one kind and name in different namespaces would share a file name: that is an
    error (this project keeps one namespace per name)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [file_name(obj) for obj in objects]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ManifestError([f"two objects would be written to {n}" for n in duplicates])
    written: list[Path] = []
    for obj, name in zip(objects, names, strict=True):
        path = out_dir / name
        path.write_text(dump(obj), encoding="utf-8")
        written.append(path)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": names,
    }
    path = out_dir / "kustomization.yaml"
    path.write_text(dump(kustomization), encoding="utf-8")
    written.append(path)
    return written
