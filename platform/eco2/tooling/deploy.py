"""`eco2 deploy <fn>`: apply one function's objects with server-side apply, wait for its new Revision.

Only that function's Service, Triggers, PingSources and route are touched (field manager `eco2`);
objects the function no longer has (found by its `app.kubernetes.io/name` label) are deleted. A
Trigger's filter is immutable in eventing-rabbitmq, so a Trigger whose filter changed is deleted
and created again.

The Service runs the image pinned by digest (`repo@sha256:...`) and sends all traffic to the
latest Ready Revision. Deploy waits for the Revision its apply created: Ready prints the URL; a
failed Revision prints the reason and message Knative gives, and traffic is pinned to the Revision
that served before (field manager `eco2-rollback`, as `eco2 rollback` does), so the broken one gets
none even if it turns Ready later. The next deploy takes traffic back to the latest Revision.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from eco2.core.funcyaml import FuncYaml

FIELD_MANAGER = "eco2"
ROLLBACK_MANAGER = "eco2-rollback"
SERVICE_LABEL = "serving.knative.dev/service"
GENERATION_LABEL = "serving.knative.dev/configurationGeneration"
PLURALS = {
    "Service": "services",
    "Revision": "revisions",
    "Trigger": "triggers",
    "PingSource": "pingsources",
    "VirtualService": "virtualservices",
    "AuthorizationPolicy": "authorizationpolicies",
    "Broker": "brokers",
    "RabbitmqBrokerConfig": "rabbitmqbrokerconfigs",
}


def _path(obj: dict[str, Any], named: bool = True) -> str:
    group_version = obj["apiVersion"]
    prefix = f"/apis/{group_version}" if "/" in group_version else f"/api/{group_version}"
    namespace = obj["metadata"]["namespace"]
    base = f"{prefix}/namespaces/{namespace}/{PLURALS[obj['kind']]}"
    return f"{base}/{obj['metadata']['name']}" if named else base


class Kube:
    """The few Kubernetes calls deploy needs, through the official client's ApiClient."""

    def __init__(self, api_client: Any = None) -> None:
        if api_client is None:
            from kubernetes import client, config

            try:
                config.load_incluster_config()  # type: ignore[no-untyped-call]
            except config.ConfigException:
                # $KUBECONFIG read now: the client reads it once, when it is first imported
                config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))  # type: ignore[no-untyped-call]
            api_client = client.ApiClient()
        self.api = api_client

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        from kubernetes.client.exceptions import ApiException

        request = self.api.param_serialize(
            method,
            path,
            query_params=query or [],
            body=body,
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*request)
        raw = response.read()
        if response.status >= 400:
            raise ApiException(status=response.status, reason=response.reason)
        return json.loads(raw) if raw else {}

    def apply(self, obj: dict[str, Any], manager: str = FIELD_MANAGER) -> Any:
        return self._call(
            "PATCH",
            _path(obj),
            body=obj,
            content_type="application/apply-patch+yaml",
            query=[("fieldManager", manager), ("force", "true"), ("fieldValidation", "Strict")],
        )

    def find(self, obj: dict[str, Any]) -> Any:
        """The object, or None when it does not exist."""
        try:
            return self.get(obj)
        except Exception as exc:
            if _status_code(exc) == 404:
                return None
            raise

    def get(self, obj: dict[str, Any]) -> Any:
        return self._call("GET", _path(obj))

    def delete(self, obj: dict[str, Any]) -> None:
        self._call("DELETE", _path(obj))

    def list_labelled(self, template: dict[str, Any], selector: str) -> list[dict[str, Any]]:
        found = self._call("GET", _path(template, named=False), query=[("labelSelector", selector)])
        return list(found.get("items", []))


def _status_code(exc: Exception) -> int | None:
    return getattr(exc, "status", None)


def apply_function(kube: Kube, objects: list[dict[str, Any]], function: str) -> list[str]:
    log: list[str] = []
    for obj in objects:
        if obj["kind"] == "Trigger":
            try:
                current = kube.get(obj)
            except Exception as exc:
                if _status_code(exc) != 404:
                    raise
                current = None
            if current is not None and current.get("spec", {}).get("filter") != obj["spec"].get("filter"):
                kube.delete(obj)
                log.append(f"recreated Trigger {obj['metadata']['name']} (its filter changed)")
        kube.apply(obj)
        log.append(f"applied {obj['kind']} {obj['metadata']['namespace']}/{obj['metadata']['name']}")
    wanted = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for kind in ("Trigger", "PingSource"):
        template = next((o for o in objects if o["kind"] == "Service"), None)
        if template is None:
            continue
        probe = {**template, "kind": kind, "apiVersion": _api_version(kind)}
        for existing in kube.list_labelled(probe, f"app.kubernetes.io/name={function}"):
            name = existing["metadata"]["name"]
            if (kind, name) not in wanted:
                kube.delete({**probe, "metadata": {"name": name, "namespace": template["metadata"]["namespace"]}})
                log.append(f"deleted {kind} {name} (no longer in func.yaml)")
    return log


def _api_version(kind: str) -> str:
    return {"Trigger": "eventing.knative.dev/v1", "PingSource": "sources.knative.dev/v1"}[kind]


def _condition(obj: dict[str, Any], kind: str = "Ready") -> dict[str, Any]:
    for condition in obj.get("status", {}).get("conditions", []) or []:
        if condition.get("type") == kind:
            return dict(condition)
    return {}


def _revision(service: dict[str, Any], name: str) -> dict[str, Any]:
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Revision",
        "metadata": {"name": name, "namespace": service["metadata"]["namespace"]},
    }


def revisions(kube: Kube, service: dict[str, Any]) -> list[dict[str, Any]]:
    """The Service's Revisions, newest first."""
    probe = _revision(service, "-")
    found = kube.list_labelled(probe, f"{SERVICE_LABEL}={service['metadata']['name']}")

    def generation(revision: dict[str, Any]) -> int:
        return int(revision["metadata"].get("labels", {}).get(GENERATION_LABEL, "0"))

    return sorted(found, key=generation, reverse=True)


def serving(status: dict[str, Any]) -> str | None:
    """The Revision that takes most of the traffic, as the Service's status reports it."""
    traffic = [t for t in status.get("traffic", []) or [] if t.get("revisionName")]
    if not traffic:
        return status.get("latestReadyRevisionName")
    return str(max(traffic, key=lambda t: t.get("percent", 0))["revisionName"])


@dataclass(frozen=True)
class Outcome:
    ready: bool
    url: str
    revision: str | None
    reason: str
    serving: str | None


def wait_revision(kube: Kube, service: dict[str, Any], timeout: float, poll: float = 1.0) -> Outcome:
    """Wait until the Service has seen its latest spec and that spec's Revision is Ready or failed."""
    deadline = time.monotonic() + timeout
    reason = "timed out waiting for the new Revision"
    revision: str | None = None
    current: dict[str, Any] = {}
    while True:
        current = kube.get(service)
        status = current.get("status", {})
        seen = status.get("observedGeneration", 0) >= current.get("metadata", {}).get("generation", 0)
        revision = status.get("latestCreatedRevisionName")
        if seen and revision:
            found = kube.find(_revision(service, revision)) or {}
            condition = _condition(found)
            if condition.get("status") == "True" and _condition(current).get("status") == "True":
                return Outcome(True, status.get("url", ""), revision, "", serving(status))
            if condition.get("status") == "False":
                why = ": ".join(p for p in (condition.get("reason"), condition.get("message")) if p)
                return Outcome(False, status.get("url", ""), revision, why or "Revision failed", serving(status))
            reason = condition.get("message") or reason
        if time.monotonic() >= deadline:
            return Outcome(False, status.get("url", ""), revision, reason, serving(status))
        time.sleep(poll)


def wait_ready(kube: Kube, service: dict[str, Any], timeout: float) -> tuple[bool, str, str]:
    """(ready, url, message) of a Knative Service (any Revision; see wait_revision for a deploy)."""
    outcome = wait_revision(kube, service, timeout)
    return outcome.ready, outcome.url, outcome.reason


def pin_traffic(kube: Kube, service: dict[str, Any], revision: str) -> None:
    """All traffic to `revision`, owned by its own field manager (the deploy's apply is untouched)."""
    kube.apply(
        {
            "apiVersion": service["apiVersion"],
            "kind": "Service",
            "metadata": {"name": service["metadata"]["name"], "namespace": service["metadata"]["namespace"]},
            "spec": {"traffic": [{"revisionName": revision, "percent": 100}]},
        },
        manager=ROLLBACK_MANAGER,
    )


def with_image(objects: list[dict[str, Any]], image: str) -> None:
    """Run `image` (a reference pinned by digest) and follow the latest Ready Revision."""
    for obj in objects:
        if obj["kind"] == "Service":
            obj["spec"]["template"]["spec"]["containers"][0]["image"] = image
            obj["spec"]["traffic"] = [{"latestRevision": True, "percent": 100}]


def deploy(
    project: FuncYaml,
    function: str,
    *,
    wait: bool = True,
    timeout: float = 300,
    public_host: str = "api.eco2.example",
    kube: Kube | None = None,
    image: str | None = None,
    poll: float = 1.0,
) -> int:
    from eventing import manifests

    project.get(function)
    objects = manifests.render_function(project, function, public_host=public_host)
    if image is not None:
        with_image(objects, image)
    kube = kube or Kube()
    service = next(o for o in objects if o["kind"] == "Service")
    before = kube.find(service)
    previous = serving(before.get("status", {})) if before else None
    from eco2.tooling.progress import step

    with step(f"{function}: apply {len(objects)} objects"):
        for line in apply_function(kube, objects, function):
            print(f"  {line}")
    if not wait:
        return 0
    with step(f"{function}: wait for the new Revision"):
        outcome = wait_revision(kube, service, timeout, poll)
    if outcome.ready:
        print(f"{function}: Revision {outcome.revision} is ready; {function} is ready at {outcome.url}")
        return 0
    print(f"{function}: Revision {outcome.revision or '(none)'} failed: {outcome.reason}", file=sys.stderr)
    if previous and previous != outcome.revision:
        pin_traffic(kube, service, previous)
        print(f"{function}: traffic stays on {previous}", file=sys.stderr)
    elif not previous:
        print(f"{function}: no earlier Revision serves traffic", file=sys.stderr)
    return 1


def resolve(reference: str) -> str | None:
    """`--image REF`: the reference pinned by digest (a tag is looked up in its registry)."""
    from eco2.tooling.registry import Reference, Registry, RegistryError

    try:
        ref = Reference.parse(reference)
        if ref.digest:
            return ref.pinned(ref.digest)
        _, digest = Registry.for_host(ref.registry).manifest(ref.repository, ref.ref)
    except RegistryError as exc:
        print(f"eco2 deploy: {exc}", file=sys.stderr)
        return None
    return ref.pinned(digest)


def _service_stub(project: FuncYaml, function: str) -> dict[str, Any]:
    spec = project.get(function)
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": spec.name, "namespace": spec.namespace},
    }


def rollback(project: FuncYaml, function: str, *, kube: Kube | None = None, to: str | None = None) -> int:
    """Traffic back to the Ready Revision before the one serving now (or to `to`)."""
    kube = kube or Kube()
    service = _service_stub(project, function)
    current = kube.find(service)
    if current is None:
        print(f"{function}: no Knative Service {service['metadata']['namespace']}/{function}", file=sys.stderr)
        return 1
    now = serving(current.get("status", {}))
    ready = [r for r in revisions(kube, service) if _condition(r).get("status") == "True"]
    names = [r["metadata"]["name"] for r in ready]
    if to is not None:
        if to not in names:
            print(f"{function}: {to} is not a Ready Revision (Ready: {', '.join(names) or 'none'})", file=sys.stderr)
            return 1
        target = to
    else:
        older = names[names.index(now) + 1 :] if now in names else names[1:]
        if not older:
            print(f"{function}: no Ready Revision before {now}", file=sys.stderr)
            return 1
        target = older[0]
    pin_traffic(kube, service, target)
    after = serving(kube.get(service).get("status", {}))
    print(f"{function}: traffic on {target} (was {now})")
    if after != target:
        print(f"{function}: the Service still reports traffic on {after}", file=sys.stderr)
        return 1
    return 0


def describe(project: FuncYaml, function: str, *, kube: Kube | None = None) -> int:
    """Revisions, traffic, URL and conditions of the function's Service."""
    kube = kube or Kube()
    service = _service_stub(project, function)
    current = kube.find(service)
    if current is None:
        print(f"{function}: no Knative Service {service['metadata']['namespace']}/{function}", file=sys.stderr)
        return 1
    status = current.get("status", {})
    print(f"{function}  {status.get('url', '(no URL yet)')}")
    print("revisions:")
    for revision in revisions(kube, service):
        name = revision["metadata"]["name"]
        containers = revision.get("spec", {}).get("containers", [{}])
        condition = _condition(revision)
        state = {"True": "Ready", "False": "Failed"}.get(condition.get("status", ""), "Unknown")
        why = ": ".join(p for p in (condition.get("reason"), condition.get("message")) if p)
        line = f"  {name}  {state}  {containers[0].get('image', '')}"
        print(line + (f"  ({why})" if why and state != "Ready" else ""))
    print("traffic:")
    for target in status.get("traffic", []) or []:
        latest = "  (latest Ready)" if target.get("latestRevision") else ""
        print(f"  {target.get('revisionName', '?')}  {target.get('percent', 0)}%{latest}")
    print("conditions:")
    for condition in status.get("conditions", []) or []:
        why = ": ".join(p for p in (condition.get("reason"), condition.get("message")) if p)
        print(f"  {condition.get('type')}={condition.get('status')}" + (f"  {why}" if why else ""))
    return 0
