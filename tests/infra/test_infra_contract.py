"""The public routes of infra/k8s agree with func.yaml: one VirtualService per HTTP function, whose
prefixes are exactly that function's `ingress` prefixes, and the same object `eco2 manifests` renders
(so `eco2 deploy` and ArgoCD never disagree about a route)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_tools import K8S, ROOT, kustomize

FUNC_YAML = ROOT / "func.yaml"


def _func_yaml() -> dict[str, Any]:
    if not FUNC_YAML.exists():
        pytest.fail("func.yaml is missing at the project root")
    return yaml.safe_load(FUNC_YAML.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _ingress_by_function() -> dict[str, list[str]]:
    functions = _func_yaml()["functions"]
    return {name: list(spec["ingress"]) for name, spec in functions.items() if (spec or {}).get("ingress")}


def _routes_by_function() -> dict[str, list[str]]:
    """func.yaml `routes`: exact paths served inside another function's prefix (the streams function)."""
    functions = _func_yaml()["functions"]
    return {name: list(spec["routes"]) for name, spec in functions.items() if (spec or {}).get("routes")}


def _base_virtualservices(prefixed: bool = True) -> list[dict[str, Any]]:
    """The prefix VirtualServices (or, with prefixed=False, those of the path-route functions)."""
    docs = []
    paths = set(_routes_by_function())
    for path in sorted((K8S / "base" / "ingress").glob("virtualservice-*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d)
    return [d for d in docs if (d["metadata"]["name"] not in paths) == prefixed]


def _prefixes(vs: dict[str, Any]) -> list[str]:
    """The prefixes a VirtualService serves: each http route matches `exact: P` and `prefix: P/`."""
    out = []
    for http in vs["spec"]["http"]:
        uris = [m["uri"] for m in http["match"]]
        exact = [u["exact"] for u in uris if "exact" in u]
        prefix = [u["prefix"] for u in uris if "prefix" in u]
        assert len(exact) == 1 and prefix == [exact[0].rstrip("/") + "/"], uris
        out.append(exact[0])
    return out


def test_virtualservice_prefixes_are_func_yaml_ingress_prefixes() -> None:
    expected = {(name, prefix) for name, prefixes in _ingress_by_function().items() for prefix in prefixes}
    actual = {(vs["metadata"]["name"], p) for vs in _base_virtualservices() for p in _prefixes(vs)}
    assert actual == expected, (
        f"routes only in infra/k8s: {sorted(actual - expected)}; only in func.yaml: {sorted(expected - actual)}"
    )


def test_path_routes_are_func_yaml_routes_ahead_of_the_prefixes() -> None:
    """The streams VirtualService matches exactly func.yaml's `routes` (`{param}` = one segment) and
    is created first (Istio evaluates merged VirtualServices oldest first)."""
    import re

    by_name = {vs["metadata"]["name"]: vs for vs in _base_virtualservices(prefixed=False)}
    assert set(by_name) == set(_routes_by_function())
    for name, paths in _routes_by_function().items():
        vs = by_name[name]
        expected = {"^" + re.sub(r"\{[a-z_][a-z0-9_]*\}", "[^/]+", p) + "$" for p in paths}
        regexes = {m["uri"]["regex"] for http in vs["spec"]["http"] for m in http["match"]}
        assert regexes == expected, name
        assert int(vs["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) < 0, name
        for path in paths:
            concrete = re.sub(r"\{[a-z_][a-z0-9_]*\}", "0123abcd", path)
            assert any(re.fullmatch(r, concrete) for r in regexes), path
            assert not any(re.fullmatch(r, concrete + "/x") for r in regexes), path


def test_one_virtualservice_per_http_function_in_every_env() -> None:
    functions = set(_ingress_by_function()) | set(_routes_by_function())
    for env in ("dev", "prod"):
        names = {
            d["metadata"]["name"]
            for d in kustomize(K8S / "overlays" / env / "ingress")
            if d["kind"] == "VirtualService"
        }
        assert names == functions, env


def test_virtualservices_are_what_eco2_manifests_renders() -> None:
    manifests = pytest.importorskip(
        "eventing.manifests", reason="the manifest renderer (eventing/manifests.py) is not importable"
    )
    funcyaml = pytest.importorskip("eco2.core.funcyaml")
    project = funcyaml.load(FUNC_YAML) if hasattr(funcyaml, "load") else None
    if project is None:
        pytest.skip("eco2.core.funcyaml has no load(path)")
    ours = {vs["metadata"]["name"]: vs for vs in _base_virtualservices()}
    for name in _ingress_by_function():
        rendered = manifests.virtual_service(project.get(name), public_host="api.eco2.example")
        assert rendered == ours[name], name


def test_func_yaml_path_is_the_project_root() -> None:
    assert Path(FUNC_YAML).parent == ROOT
