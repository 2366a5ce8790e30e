"""`eco2 deploy <fn>`: apply one function's objects with server-side apply, wait for Ready, print the URL.

Only that function's Service, Triggers, PingSources and route are touched (field manager `eco2`);
objects the function no longer has (found by its `app.kubernetes.io/name` label) are deleted. A
Trigger's filter is immutable in eventing-rabbitmq, so a Trigger whose filter changed is deleted
and created again.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from eco2.funcyaml import FuncYaml

FIELD_MANAGER = "eco2"
PLURALS = {
    "Service": "services",
    "Trigger": "triggers",
    "PingSource": "pingsources",
    "VirtualService": "virtualservices",
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
                config.load_kube_config()  # type: ignore[no-untyped-call]
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

    def apply(self, obj: dict[str, Any]) -> Any:
        return self._call(
            "PATCH",
            _path(obj),
            body=obj,
            content_type="application/apply-patch+yaml",
            query=[("fieldManager", FIELD_MANAGER), ("force", "true"), ("fieldValidation", "Strict")],
        )

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


def wait_ready(kube: Kube, service: dict[str, Any], timeout: float) -> tuple[bool, str, str]:
    """(ready, url, message) of a Knative Service."""
    deadline = time.monotonic() + timeout
    message = ""
    while True:
        status = kube.get(service).get("status", {})
        for condition in status.get("conditions", []):
            if condition.get("type") == "Ready":
                message = condition.get("message", "") or condition.get("reason", "")
                if condition.get("status") == "True":
                    return True, status.get("url", ""), message
                if condition.get("status") == "False":
                    return False, status.get("url", ""), message
        if time.monotonic() >= deadline:
            return False, status.get("url", ""), message or "timed out waiting for Ready"
        time.sleep(1.0)


def deploy(
    project: FuncYaml,
    function: str,
    *,
    wait: bool = True,
    timeout: float = 300,
    public_host: str = "api.eco2.example",
    kube: Kube | None = None,
) -> int:
    from eventing import manifests

    project.get(function)
    objects = manifests.render_function(project, function, public_host=public_host)
    kube = kube or Kube()
    for line in apply_function(kube, objects, function):
        print(line)
    if not wait:
        return 0
    service = next(o for o in objects if o["kind"] == "Service")
    ready, url, message = wait_ready(kube, service, timeout)
    if ready:
        print(f"{function} is ready at {url}")
        return 0
    print(f"{function} is not ready: {message}", file=sys.stderr)
    return 1
