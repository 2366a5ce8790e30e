"""infra/ansible's Jinja templates rendered by Ansible itself, for two hosts of an inventory built
from a sample `terraform output -json` (connection local, nothing leaves this machine), and the
results checked: kubeadm configurations carry the providerID, the Broker is the one `eco2 manifests`
renders, and the Istio gateway patch really turns the gateway into the NodePorts the ALB targets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_tools import ANSIBLE, ansible_vars, kustomize, run, sample_outputs, tool

ROLES = ANSIBLE / "roles"
TEMPLATES = {
    "kubeadm-init.yaml": "control_plane/templates/kubeadm-init.yaml.j2",
    "kubeadm-join.yaml": "node_join/templates/kubeadm-join.yaml.j2",
    "calico-installation.yaml": "calico/templates/installation.yaml.j2",
    "broker.yaml": "rabbitmq/templates/broker.yaml.j2",
    "secrets.yaml": "data_services/templates/secrets.yaml.j2",
    "root-app.yaml": "argocd/templates/root-app.yaml.j2",
}


def _istio_patches() -> list[dict[str, Any]]:
    tasks = yaml.safe_load((ROLES / "knative_serving" / "tasks" / "main.yml").read_text(encoding="utf-8"))
    [task] = [t for t in tasks if t.get("vars", {}).get("manifest_name") == "istio"]
    return task["vars"]["manifest_patches"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    work = tmp_path_factory.mktemp("render")
    outputs = work / "outputs.json"
    outputs.write_text(json.dumps(sample_outputs()), encoding="utf-8")
    tasks = [
        {
            "name": f"Render {name}",
            "ansible.builtin.template": {
                "src": str(ROLES / src),
                "dest": f"{work}/{{{{ inventory_hostname }}}}/{name}",
                "mode": "0644",
            },
        }
        for name, src in TEMPLATES.items()
    ]
    tasks.append(
        {
            "name": "Render the istio kustomization",
            "ansible.builtin.template": {
                "src": str(ROLES / "manifest" / "templates" / "kustomization.yaml.j2"),
                "dest": f"{work}/{{{{ inventory_hostname }}}}/istio/kustomization.yaml",
                "mode": "0644",
            },
            "vars": {
                "manifest_url": "https://example.invalid/istio.yaml",
                "manifest_file": "istio.yaml",
                "manifest_namespace": "",
                "manifest_patches": _istio_patches(),
            },
        }
    )
    playbook = [
        {
            "name": "Render templates",
            "hosts": "k8s-control-plane:k8s-api-auth",
            "gather_facts": False,
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                "node_join_token": "abcdef.0123456789abcdef",
                "node_join_ca_hash": "sha256:" + "0" * 64,
                "data_services_postgresql_password": "p@ss/word",
                "data_services_redis_password": "redis-secret",
                "data_services_jwt_secret": "j" * 64,
            },
            "tasks": [
                {
                    "name": "Create the output directory",
                    "ansible.builtin.file": {
                        "path": f"{work}/{{{{ inventory_hostname }}}}/istio",
                        "state": "directory",
                        "mode": "0755",
                    },
                },
                *tasks,
            ],
        }
    ]
    (work / "render.yml").write_text(yaml.safe_dump(playbook, sort_keys=False), encoding="utf-8")
    argv = [
        tool("ansible-playbook"),
        "-i",
        str(ANSIBLE / "inventory" / "terraform_inventory.py"),
        str(work / "render.yml"),
    ]
    for group_vars in sorted((ANSIBLE / "group_vars" / "all").glob("*.yml")):
        argv += ["-e", f"@{group_vars}"]
    env = {
        "ECO2_TF_OUTPUT_JSON": str(outputs),
        "ECO2_ENV": "dev",
        "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"),
        "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
        "ANSIBLE_HOME": str(work / "home"),
    }
    done = run(argv, cwd=ANSIBLE, env=env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-5000:]
    return {
        host: {name: work / host / name for name in TEMPLATES} | {"istio": work / host / "istio"}
        for host in ("k8s-control-plane", "k8s-api-auth")
    }


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def _kubelet_args(doc: dict[str, Any]) -> dict[str, str]:
    return {a["name"]: a["value"] for a in doc["nodeRegistration"]["kubeletExtraArgs"]}


def test_kubeadm_init_sets_provider_id_and_version(rendered: dict[str, dict[str, Path]]) -> None:
    init, cluster, kubelet = _docs(rendered["k8s-control-plane"]["kubeadm-init.yaml"])
    node = sample_outputs()["nodes"]["value"]["k8s-control-plane"]
    assert init["kind"] == "InitConfiguration" and init["nodeRegistration"]["name"] == "k8s-control-plane"
    assert _kubelet_args(init)["provider-id"] == node["provider_id"]
    assert cluster["kubernetesVersion"] == f"v{ansible_vars()['kubernetes_version']}"
    assert cluster["networking"]["podSubnet"] == ansible_vars()["pod_cidr"]
    assert node["public_ip"] in cluster["apiServer"]["certSANs"]  # kubectl from the admin range
    assert kubelet["cgroupDriver"] == "systemd"


def test_kubeadm_join_sets_provider_id(rendered: dict[str, dict[str, Path]]) -> None:
    [join] = _docs(rendered["k8s-api-auth"]["kubeadm-join.yaml"])
    nodes = sample_outputs()["nodes"]["value"]
    assert join["kind"] == "JoinConfiguration" and join["nodeRegistration"]["name"] == "k8s-api-auth"
    assert _kubelet_args(join)["provider-id"] == nodes["k8s-api-auth"]["provider_id"]
    assert (
        join["discovery"]["bootstrapToken"]["apiServerEndpoint"] == f"{nodes['k8s-control-plane']['private_ip']}:6443"
    )


def test_calico_uses_vxlan_with_bgp(rendered: dict[str, dict[str, Path]]) -> None:
    installation = _docs(rendered["k8s-control-plane"]["calico-installation.yaml"])[0]
    network = installation["spec"]["calicoNetwork"]
    assert network["bgp"] == "Enabled"
    assert network["ipPools"][0]["encapsulation"] == "VXLAN"


def test_broker_is_the_rendered_one(rendered: dict[str, dict[str, Path]]) -> None:
    config, broker = _docs(rendered["k8s-control-plane"]["broker.yaml"])
    assert broker["metadata"]["annotations"]["eventing.knative.dev/broker.class"] == "RabbitMQBroker"
    assert config["spec"]["rabbitmqClusterReference"]["name"] == "eco2-rabbitmq"
    manifests = pytest.importorskip("eventing.manifests")
    expected_config = manifests.broker_config(
        "eco2", name="eco2-broker-config", cluster="eco2-rabbitmq", cluster_namespace="eco2"
    )
    expected_broker = manifests.broker_object(
        "eco2", "eco2", config="eco2-broker-config", config_namespace="eco2", dead_letter_sink=None
    )
    assert (
        config["spec"] == expected_config["spec"] and config["metadata"]["name"] == expected_config["metadata"]["name"]
    )
    assert (
        broker["spec"] == expected_broker["spec"] and broker["metadata"]["name"] == expected_broker["metadata"]["name"]
    )


def test_secrets_carry_urlencoded_passwords(rendered: dict[str, dict[str, Path]]) -> None:
    secrets = {d["metadata"]["name"]: d for d in _docs(rendered["k8s-control-plane"]["secrets.yaml"])}
    assert set(secrets) == {"postgresql-auth", "redis-auth", "eco2-database", "eco2-redis", "eco2-jwt"}
    assert len(secrets["eco2-jwt"]["stringData"]["secret"]) >= 32  # JWT_SECRET's minimum
    assert secrets["eco2-database"]["stringData"]["url"].startswith(
        "postgresql://eco2:p%40ss%2Fword@postgresql.eco2-data.svc"
    )


def test_root_application_points_at_the_env_overlay(rendered: dict[str, dict[str, Path]]) -> None:
    [app] = _docs(rendered["k8s-control-plane"]["root-app.yaml"])
    assert app["spec"]["source"]["path"] == "infra/k8s/overlays/dev"
    assert (ANSIBLE.parent / "k8s" / "overlays" / "dev" / "kustomization.yaml").exists()


def test_istio_gateway_becomes_the_nodeports_the_alb_targets(rendered: dict[str, dict[str, Path]]) -> None:
    """The patch of roles/knative_serving applied by kustomize to a Service shaped like net-istio's."""
    directory = rendered["k8s-control-plane"]["istio"]
    # net-istio's istio-ingressgateway Service as released (recorded: its ports carry protocol: TCP,
    # which is part of the merge key of Service ports)
    recorded = Path(__file__).resolve().parent / "fixtures" / "net-istio-v1.22.0-istio-ingressgateway.json"
    upstream = json.loads(recorded.read_text(encoding="utf-8"))["service"]
    (directory / "istio.yaml").write_text(yaml.safe_dump(upstream), encoding="utf-8")
    done = run([tool("kubectl"), "kustomize", str(directory)])
    assert done.returncode == 0, done.stderr
    [service] = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert service["spec"]["type"] == "NodePort"
    ports = {p["port"]: p for p in service["spec"]["ports"]}
    settings = ansible_vars()
    assert ports[15021]["nodePort"] == settings["istio_gateway_status_node_port"]
    assert ports[80]["nodePort"] == settings["istio_gateway_http_node_port"]
    assert ports[80]["targetPort"] == 8080  # the rest of the upstream Service is kept
    assert len(service["spec"]["ports"]) == 3 and "nodePort" not in ports[443]
    # the ALB health-checks the NodePort of the status port, and sends traffic to the http2 one
    [ingress] = [
        d for d in kustomize(ANSIBLE.parent / "k8s" / "overlays" / "dev" / "ingress") if d["kind"] == "Ingress"
    ]
    assert ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/healthcheck-port"] == str(
        ports[15021]["nodePort"]
    )
