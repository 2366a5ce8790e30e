"""A local stand-in for the Kubernetes API server with Knative Serving's Revision behaviour.

It answers the calls `eco2 deploy / rollback / describe` make (server-side apply PATCH, GET,
DELETE, LIST by label) and reconciles a Knative Service the way Knative Serving does, in short:

- An apply that changes `spec.template` bumps `metadata.generation` and creates a Revision
  `<service>-NNNNN` labelled `serving.knative.dev/service` and `configurationGeneration`.
- A Revision is Ready unless its image is in `failing` (image -> (reason, message)); then it is
  Ready=False with that reason, like Knative's `ExitCode1` / `ContainerMissing`.
- `status.traffic` follows `spec.traffic`: `latestRevision: true` routes to the latest *Ready*
  Revision (a failed one gets nothing), `revisionName` routes to that Revision.
- Service Ready is False with reason `RevisionFailed` while its latest Revision failed.

Field ownership is simplified: an apply merges mappings into the stored object and replaces lists
(the `eco2-rollback` manager only ever sends `spec.traffic`).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from werkzeug.wrappers import Request, Response

SERVICE_LABEL = "serving.knative.dev/service"
GENERATION_LABEL = "serving.knative.dev/configurationGeneration"


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)
    return into


class KubeApiServer:
    def __init__(self, domain: str = "demo.example") -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.revisions: dict[str, dict[str, Any]] = {}  # path -> Revision
        self.calls: list[tuple[str, str, str]] = []
        self.applied: list[tuple[str, str, dict[str, Any]]] = []  # (path, field manager, body)
        self.failing: dict[str, tuple[str, str]] = {}
        self.domain = domain

    # -- Knative Serving ------------------------------------------------------------------------------
    def _reconcile(self, path: str, service: dict[str, Any], template_changed: bool) -> None:
        meta = service["metadata"]
        status = service.setdefault("status", {})
        if template_changed:
            meta["generation"] = meta.get("generation", 0) + 1
            number = meta["generation"]
            name = f"{meta['name']}-{number:05d}"
            container = service["spec"]["template"]["spec"]["containers"][0]
            failure = self.failing.get(container.get("image", ""))
            condition: dict[str, Any] = {"type": "Ready", "status": "True"}
            if failure is not None:
                condition = {"type": "Ready", "status": "False", "reason": failure[0], "message": failure[1]}
            revision_path = f"/apis/serving.knative.dev/v1/namespaces/{meta['namespace']}/revisions/{name}"
            self.revisions[revision_path] = {
                "apiVersion": "serving.knative.dev/v1",
                "kind": "Revision",
                "metadata": {
                    "name": name,
                    "namespace": meta["namespace"],
                    "labels": {SERVICE_LABEL: meta["name"], GENERATION_LABEL: str(number)},
                },
                "spec": copy.deepcopy(service["spec"]["template"]["spec"]),
                "status": {"conditions": [condition]},
            }
            status["latestCreatedRevisionName"] = name
            if failure is None:
                status["latestReadyRevisionName"] = name
        status["observedGeneration"] = meta.get("generation", 0)
        status["url"] = f"http://{meta['name']}.{meta['namespace']}.{self.domain}"
        traffic = []
        for target in service["spec"].get("traffic") or [{"latestRevision": True, "percent": 100}]:
            if target.get("latestRevision"):
                ready = status.get("latestReadyRevisionName")
                if ready:
                    traffic.append({"revisionName": ready, "latestRevision": True, "percent": target["percent"]})
            else:
                traffic.append({"revisionName": target["revisionName"], "percent": target["percent"]})
        status["traffic"] = traffic
        latest = status.get("latestCreatedRevisionName")
        failed = latest is not None and latest != status.get("latestReadyRevisionName")
        if failed:
            revision = self.revisions[f"/apis/serving.knative.dev/v1/namespaces/{meta['namespace']}/revisions/{latest}"]
            why = revision["status"]["conditions"][0]
            message = f'Revision "{latest}" failed with message: {why.get("message", "")}.'
            status["conditions"] = [
                {"type": "ConfigurationsReady", "status": "False", "reason": "RevisionFailed", "message": message},
                {"type": "Ready", "status": "False", "reason": "RevisionFailed", "message": message},
                {"type": "RoutesReady", "status": "True" if traffic else "False"},
            ]
        else:
            status["conditions"] = [
                {"type": "ConfigurationsReady", "status": "True"},
                {"type": "Ready", "status": "True"},
                {"type": "RoutesReady", "status": "True"},
            ]

    # -- HTTP -----------------------------------------------------------------------------------------
    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        self.calls.append((request.method, request.path, request.query_string.decode()))
        return self.handle(request)(environ, start_response)

    def handle(self, request: Request) -> Response:
        path = request.path
        if request.method == "PATCH":
            assert request.content_type == "application/apply-patch+yaml"
            assert request.args["fieldValidation"] == "Strict" and request.args["force"] == "true"
            body = json.loads(request.get_data())
            self.applied.append((path, request.args["fieldManager"], body))
            stored = self.objects.get(path)
            if stored is None:
                stored = {**copy.deepcopy(body), "metadata": {**body["metadata"], "generation": 0}}
                changed = True
            else:
                before = copy.deepcopy(stored.get("spec", {}).get("template"))
                _merge(stored, {k: v for k, v in body.items() if k != "status"})
                changed = before != stored.get("spec", {}).get("template")
            if stored["kind"] == "Service" and stored["apiVersion"].startswith("serving"):
                self._reconcile(path, stored, changed)
            self.objects[path] = stored
            return self._json(stored)
        if request.method == "DELETE":
            self.objects.pop(path, None)
            return self._json({})
        if path in self.objects:
            return self._json(self.objects[path])
        if path in self.revisions:
            return self._json(self.revisions[path])
        if "labelSelector" in request.args:
            key, _, value = request.args["labelSelector"].partition("=")
            pool = {**self.objects, **self.revisions}
            items = [
                o
                for p, o in pool.items()
                if p.startswith(path + "/") and o["metadata"].get("labels", {}).get(key) == value
            ]
            return self._json({"items": items})
        return self._json({"kind": "Status", "code": 404}, 404)

    @staticmethod
    def _json(body: Any, status: int = 200) -> Response:
        return Response(json.dumps(body), status=status, content_type="application/json")
