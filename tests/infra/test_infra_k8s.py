"""infra/k8s: every overlay builds (kubectl kustomize), and the built objects say what the platform
needs: an HTTPS-only ALB Ingress on the Istio gateway's NodePorts, VirtualServices that rewrite the
authority to the Knative Service, an app of apps in sync waves, Knative settings at `data` top level."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_tools import K8S, ansible_vars, kustomize, overlays

ENVS = ["dev", "prod"]


def _by_kind(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


# -- structure without kubectl -----------------------------------------------------------------------------
def _referenced(directory: Path) -> list[Path]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text(encoding="utf-8"))
    return [directory / ref for ref in kustomization.get("resources", []) if "://" not in ref]


@pytest.mark.parametrize(
    "directory", sorted(p.parent for p in K8S.rglob("kustomization.yaml")), ids=lambda p: str(p.relative_to(K8S))
)
def test_every_referenced_resource_exists(directory: Path) -> None:
    for ref in _referenced(directory):
        assert ref.exists(), f"{directory.relative_to(K8S)} references {ref.name}, which does not exist"
        if ref.is_dir():
            assert (ref / "kustomization.yaml").exists(), ref
    # nothing under infra/k8s pulls a remote resource: builds stay offline and pinned
    text = (directory / "kustomization.yaml").read_text(encoding="utf-8")
    assert "://" not in "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def test_every_base_is_used_by_each_env() -> None:
    for env in ENVS:
        for component in ("platform", "data", "monitoring", "ingress"):
            assert (K8S / "overlays" / env / component / "kustomization.yaml").exists(), (env, component)


# -- kubectl kustomize -------------------------------------------------------------------------------------
@pytest.mark.parametrize("directory", overlays(), ids=lambda p: str(p.relative_to(K8S)))
def test_overlay_builds(directory: Path) -> None:
    docs = kustomize(directory)
    assert docs
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind") and doc["metadata"].get("name"), doc


@pytest.mark.parametrize("env", ENVS)
def test_alb_ingress(env: str) -> None:
    [ingress] = _by_kind(kustomize(K8S / "overlays" / env / "ingress"), "Ingress")
    notes = ingress["metadata"]["annotations"]
    assert json.loads(notes["alb.ingress.kubernetes.io/listen-ports"]) == [{"HTTPS": 443}]
    assert "alb.ingress.kubernetes.io/ssl-redirect" not in notes  # no port 80 listener at all
    assert notes["alb.ingress.kubernetes.io/certificate-arn"].startswith("arn:aws:acm:")
    assert notes["alb.ingress.kubernetes.io/target-type"] == "instance"
    assert notes["alb.ingress.kubernetes.io/scheme"] == "internet-facing"
    assert notes["alb.ingress.kubernetes.io/healthcheck-path"] == "/healthz/ready"
    # the health check hits the NodePort infra/ansible gives the gateway's status-port 15021
    assert notes["alb.ingress.kubernetes.io/healthcheck-port"] == str(ansible_vars()["istio_gateway_status_node_port"])
    attributes = dict(a.split("=", 1) for a in notes["alb.ingress.kubernetes.io/load-balancer-attributes"].split(","))
    assert int(attributes["idle_timeout.timeout_seconds"]) >= 120
    assert notes["alb.ingress.kubernetes.io/load-balancer-name"] == f"eco2-{env}-api"  # Terraform's alb_name
    assert notes["alb.ingress.kubernetes.io/security-groups"].startswith("sg-")
    [rule] = ingress["spec"]["rules"]
    [path] = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": "istio-ingressgateway", "port": {"number": 80}}
    assert ingress["metadata"]["namespace"] == "istio-system"
    assert ingress["spec"]["ingressClassName"] == "alb"


@pytest.mark.parametrize("env", ENVS)
def test_virtualservices_route_by_authority_rewrite(env: str) -> None:
    api = yaml.safe_load((K8S / "overlays" / env / "ingress" / "kustomization.yaml").read_text(encoding="utf-8"))
    host = next(p for p in api["patches"] if p["target"]["kind"] == "VirtualService")["patch"]
    for vs in _by_kind(kustomize(K8S / "overlays" / env / "ingress"), "VirtualService"):
        name = vs["metadata"]["name"]
        assert vs["metadata"]["namespace"] == "eco2"
        assert vs["spec"]["gateways"] == ["knative-serving/knative-ingress-gateway"]
        assert len(vs["spec"]["hosts"]) == 1 and vs["spec"]["hosts"][0] in host
        for http in vs["spec"]["http"]:
            # a prefix rule goes to the VirtualService's own function; a path rule (regex, func.yaml
            # `routes`) to the function that serves that path inside the prefix
            regex = any("regex" in m["uri"] for m in http["match"])
            target = http["rewrite"]["authority"].split(".")[0] if regex else name
            assert http["rewrite"] == {"authority": f"{target}.eco2.svc.cluster.local"}
            [route] = http["route"]
            assert route["destination"]["host"] == "knative-local-gateway.istio-system.svc.cluster.local"


@pytest.mark.parametrize("env", ENVS)
def test_app_of_apps(env: str) -> None:
    docs = kustomize(K8S / "overlays" / env)
    apps = {a["metadata"]["name"]: a for a in _by_kind(docs, "Application")}
    waves = {name: int(a["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) for name, a in apps.items()}
    assert waves["eco2-platform"] < waves["eco2-data"] <= waves["eco2-monitoring"] < waves["eco2-ingress"]
    assert waves["eco2-ingress"] < waves["eco2-functions"]
    for name, app in apps.items():
        assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"], name
        assert app["metadata"]["namespace"] == "argocd"
        if "sources" in app["spec"]:  # eco2-atlantis: chart + values + overlay (test_infra_gitops)
            continue
        path = app["spec"]["source"]["path"]
        if name != "eco2-functions":
            assert path == f"infra/k8s/overlays/{env}/{name.removeprefix('eco2-')}", name
            assert (K8S.parents[1] / path / "kustomization.yaml").exists(), path
    ignored = {d["kind"] for d in apps["eco2-platform"]["spec"]["ignoreDifferences"]}
    assert {"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} <= ignored
    # the functions app reads `eco2 manifests` output but never the objects `eco2 deploy` applies
    functions = apps["eco2-functions"]["spec"]["source"]
    assert functions["path"] == "infra/k8s/eventing"
    assert functions["directory"]["include"] == "{rabbitmqbrokerconfig-*.yaml,broker-*.yaml}"
    for pattern in ("service-", "trigger-", "pingsource-", "virtualservice-", "kustomization"):
        assert pattern not in functions["directory"]["include"], pattern
    [project] = _by_kind(docs, "AppProject")
    refused = {(r["group"], r["kind"]) for r in project["spec"]["namespaceResourceBlacklist"]}
    assert {("serving.knative.dev", "Service"), ("eventing.knative.dev", "Trigger")} <= refused


@pytest.mark.parametrize("env", ENVS)
def test_knative_settings_at_data_top_level(env: str) -> None:
    maps = {
        c["metadata"]["name"]: c
        for c in _by_kind(kustomize(K8S / "overlays" / env / "platform"), "ConfigMap")
        if c["metadata"].get("namespace") == "knative-serving"
    }
    for cm in maps.values():
        assert "_example" not in cm["data"], cm["metadata"]["name"]
    autoscaler = maps["config-autoscaler"]["data"]
    assert autoscaler["enable-scale-to-zero"] == "true"
    assert "scale-to-zero-grace-period" in autoscaler and "scale-to-zero-pod-retention-period" in autoscaler
    features = maps["config-features"]["data"]
    for key in ("kubernetes.podspec-nodeselector", "kubernetes.podspec-tolerations", "kubernetes.podspec-affinity"):
        assert features[key] == "enabled", key
    assert maps["config-network"]["data"]["default-external-scheme"] == "https"
    assert len(maps["config-domain"]["data"]) == 1


@pytest.mark.parametrize("env", ENVS)
def test_stateful_services_are_pinned_with_volumes(env: str) -> None:
    platform = kustomize(K8S / "overlays" / env / "platform")
    [rabbit] = _by_kind(platform, "RabbitmqCluster")
    terms = rabbit["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert terms[0]["matchExpressions"][0] == {"key": "eco2.io/role", "operator": "In", "values": ["rabbitmq"]}
    assert rabbit["spec"]["persistence"]["storageClassName"] == "gp3"
    [storage_class] = _by_kind(platform, "StorageClass")
    assert storage_class["provisioner"] == "ebs.csi.aws.com"
    for sts in _by_kind(kustomize(K8S / "overlays" / env / "data"), "StatefulSet"):
        name = sts["metadata"]["name"]
        assert sts["spec"]["template"]["spec"]["nodeSelector"] == {"eco2.io/role": name}
        assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "gp3"
