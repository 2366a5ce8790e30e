"""End-to-end on a real cluster built by infra/ (Terraform -> Ansible -> ArgoCD).

Needs KUBECONFIG (a cluster where infra/ansible/site.yml ran) and, for the HTTP checks,
ECO2_E2E_BASE_URL (the ALB, e.g. https://api.dev.eco2.example). Without KUBECONFIG every test here
skips. Optional: ECO2_E2E_FUNCTIONS (comma-separated subset to deploy), ECO2_E2E_SCALE_TIMEOUT
(seconds to wait for scale to zero, default 900: func.yaml's retention is 5 minutes),
ECO2_E2E_EVENT_DISPLAY_IMAGE (the sink used to observe a broker delivery).

1. `eco2 deploy <fn>` (subprocess) for every function of func.yaml; each must turn Ready.
2. Every HTTP function's /health/readiness through the ingress: the ALB forwards to the Istio
   gateway, which routes by Host; the Host is the function's Knative URL (status.url), so the
   request takes the same ALB -> gateway -> activator/pod path as the app's traffic.
3. An event through the RabbitMQ broker: a Trigger filtering on a unique type delivers to an
   event_display sink; the event id must show up in the sink's log.
4. Scale to zero and back: a function with no traffic goes to 0 pods, and one request brings it back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "eco2"
BROKER = "eco2"
KUBECONFIG = os.environ.get("KUBECONFIG", "")
BASE_URL = os.environ.get("ECO2_E2E_BASE_URL", "").rstrip("/")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not KUBECONFIG or not all(Path(p).exists() for p in KUBECONFIG.split(os.pathsep) if p),
        reason="KUBECONFIG is not set (or names no file): these tests need a real cluster built by infra/",
    ),
]


def _functions() -> dict[str, dict[str, Any]]:
    functions: dict[str, dict[str, Any]] = yaml.safe_load((ROOT / "func.yaml").read_text(encoding="utf-8"))["functions"]
    only = [f for f in os.environ.get("ECO2_E2E_FUNCTIONS", "").split(",") if f]
    return {name: spec or {} for name, spec in functions.items() if not only or name in only}


def _http_functions() -> list[str]:
    return [name for name, spec in _functions().items() if spec.get("ingress")]


def _need_base_url() -> str:
    if not BASE_URL:
        pytest.skip("ECO2_E2E_BASE_URL is not set (the ALB's https URL, e.g. https://api.dev.eco2.example)")
    return BASE_URL


@pytest.fixture(scope="module")
def k8s() -> Any:
    kubernetes = pytest.importorskip("kubernetes")
    kubernetes.config.load_kube_config()
    return kubernetes.client


def _ksvc(k8s: Any, name: str) -> dict[str, Any]:
    return k8s.CustomObjectsApi().get_namespaced_custom_object(  # type: ignore[no-any-return]
        "serving.knative.dev", "v1", NAMESPACE, "services", name
    )


def _ready(obj: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in obj.get("status", {}).get("conditions", [])
    )


def _eco2() -> list[str]:
    exe = shutil.which("eco2")
    return [exe] if exe else [sys.executable, "-m", "eco2.tooling.cli"]


@pytest.fixture(scope="module")
def deployed(k8s: Any) -> list[str]:
    """`eco2 deploy <fn>` for every function (it waits for Ready itself)."""
    public_host = urlparse(BASE_URL).hostname if BASE_URL else None
    names = list(_functions())
    for name in names:
        argv = [*_eco2(), "--root", str(ROOT), "deploy", name, "--timeout", "600"]
        if public_host:
            argv += ["--public-host", public_host]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
        assert done.returncode == 0, f"eco2 deploy {name} failed:\n{done.stdout}\n{done.stderr}"
    for name in names:
        assert _ready(_ksvc(k8s, name)), f"Knative Service {name} is not Ready after eco2 deploy"
    return names


def _readiness(k8s: Any, name: str, timeout: float = 180) -> Any:
    import requests

    host = urlparse(_ksvc(k8s, name)["status"]["url"]).hostname
    return requests.get(f"{_need_base_url()}/health/readiness", headers={"Host": host}, timeout=timeout)


def test_every_function_deploys_and_turns_ready(deployed: list[str]) -> None:
    assert deployed


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("name", _http_functions())
def test_readiness_through_the_ingress(k8s: Any, deployed: list[str], name: str) -> None:
    response = _readiness(k8s, name)
    assert response.status_code == 200, f"{name}: {response.status_code} {response.text[:500]}"
    assert response.json()["status"] == "ok"


@pytest.fixture
def event_sink(k8s: Any) -> Iterator[tuple[str, str]]:
    """An event_display Knative Service and a Trigger on a unique event type; removed afterwards."""
    suffix = uuid.uuid4().hex[:8]
    name, event_type = f"e2e-sink-{suffix}", f"eco2.e2e.probe.{suffix}.v1"
    api = k8s.CustomObjectsApi()
    image = os.environ.get(
        "ECO2_E2E_EVENT_DISPLAY_IMAGE", "gcr.io/knative-releases/knative.dev/eventing/cmd/event_display"
    )
    api.create_namespaced_custom_object(
        "serving.knative.dev",
        "v1",
        NAMESPACE,
        "services",
        {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "metadata": {"name": name, "labels": {"networking.knative.dev/visibility": "cluster-local"}},
            "spec": {
                "template": {
                    "metadata": {"annotations": {"autoscaling.knative.dev/min-scale": "1"}},
                    "spec": {"containers": [{"image": image}]},
                }
            },
        },
    )
    api.create_namespaced_custom_object(
        "eventing.knative.dev",
        "v1",
        NAMESPACE,
        "triggers",
        {
            "apiVersion": "eventing.knative.dev/v1",
            "kind": "Trigger",
            "metadata": {"name": name},
            "spec": {
                "broker": BROKER,
                "filter": {"attributes": {"type": event_type}},
                "subscriber": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": name}},
            },
        },
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            trigger = api.get_namespaced_custom_object("eventing.knative.dev", "v1", NAMESPACE, "triggers", name)
            if _ready(trigger) and _ready(_ksvc(k8s, name)):
                break
            time.sleep(5)
        else:
            pytest.fail(f"the probe Trigger/Service {name} did not turn Ready")
        yield name, event_type
    finally:
        api.delete_namespaced_custom_object("eventing.knative.dev", "v1", NAMESPACE, "triggers", name)
        api.delete_namespaced_custom_object("serving.knative.dev", "v1", NAMESPACE, "services", name)


@pytest.mark.timeout(600)
def test_an_event_goes_through_the_broker(k8s: Any, deployed: list[str], event_sink: tuple[str, str]) -> None:
    sink, event_type = event_sink
    event_id = f"e2e-{uuid.uuid4()}"
    # POST to the broker ingress through the API server's service proxy (binary-mode CloudEvent)
    k8s.CoreV1Api().api_client.call_api(
        f"/api/v1/namespaces/{NAMESPACE}/services/{BROKER}-broker-ingress:80/proxy/",
        "POST",
        header_params={
            "Content-Type": "application/json",
            "Ce-Specversion": "1.0",
            "Ce-Type": event_type,
            "Ce-Source": "/eco2/e2e",
            "Ce-Id": event_id,
        },
        body={"probe": event_id},
        auth_settings=["BearerToken"],
        _preload_content=False,
    )
    core = k8s.CoreV1Api()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        pods = core.list_namespaced_pod(NAMESPACE, label_selector=f"serving.knative.dev/service={sink}").items
        logs = "".join(
            core.read_namespaced_pod_log(p.metadata.name, NAMESPACE, container="user-container") for p in pods
        )
        if event_id in logs:
            return
        time.sleep(5)
    pytest.fail(f"event {event_id} ({event_type}) never reached the sink {sink} through broker {BROKER}")


def _replicas(k8s: Any, name: str) -> int:
    deployments = (
        k8s.AppsV1Api()
        .list_namespaced_deployment(NAMESPACE, label_selector=f"serving.knative.dev/service={name}")
        .items
    )
    return sum(d.status.replicas or 0 for d in deployments)


@pytest.mark.timeout(int(os.environ.get("ECO2_E2E_SCALE_TIMEOUT", "900")) + 300)
def test_scale_to_zero_and_back(k8s: Any, deployed: list[str]) -> None:
    http = [n for n in _http_functions() if n in deployed]
    if not http:
        pytest.skip("no HTTP function deployed")
    name = http[0]
    deadline = time.monotonic() + float(os.environ.get("ECO2_E2E_SCALE_TIMEOUT", "900"))
    while _replicas(k8s, name) > 0:
        if time.monotonic() > deadline:
            pytest.fail(f"{name} did not scale to zero (still {_replicas(k8s, name)} pods)")
        time.sleep(10)
    response = _readiness(k8s, name, timeout=120)  # cold start through the activator
    assert response.status_code == 200, response.text[:500]
    assert _replicas(k8s, name) >= 1
