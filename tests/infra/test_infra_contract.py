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


def _base_virtualservices() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((K8S / "base" / "ingress").glob("virtualservice-*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d)
    return docs


def _prefix_rules(vs: dict[str, Any]) -> list[dict[str, Any]]:
    return [http for http in vs["spec"]["http"] if not any("regex" in m["uri"] for m in http["match"])]


def _prefixes(vs: dict[str, Any]) -> list[str]:
    """The prefixes a VirtualService serves: each prefix rule matches `exact: P` and `prefix: P/`."""
    out = []
    for http in _prefix_rules(vs):
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
    """func.yaml `routes` (the streams function's event paths, `{param}` = one segment) are rules of
    the VirtualService whose prefix holds them, placed before its prefix rule: the order of rules
    inside one VirtualService is fixed (across VirtualServices Istio goes by creation time)."""
    import re

    by_name = {vs["metadata"]["name"]: vs for vs in _base_virtualservices()}
    ingress = _ingress_by_function()
    for owner, paths in _routes_by_function().items():
        assert owner not in by_name, f"{owner} has path routes only: no VirtualService of its own"
        for path in paths:
            [holder] = [n for n, prefixes in ingress.items() if any(path.startswith(p + "/") for p in prefixes)]
            rules = by_name[holder]["spec"]["http"]
            regex = "^" + re.sub(r"\{[a-z_][a-z0-9_]*\}", "[^/]+", path) + "$"
            [index] = [i for i, r in enumerate(rules) if {"regex": regex} in [m["uri"] for m in r["match"]]]
            assert rules[index]["rewrite"]["authority"].startswith(f"{owner}."), (holder, path)
            assert index < min(i for i, r in enumerate(rules) if r in _prefix_rules(by_name[holder])), holder
            concrete = re.sub(r"\{[a-z_][a-z0-9_]*\}", "0123abcd", path)
            assert re.fullmatch(regex, concrete) and not re.fullmatch(regex, concrete + "/x"), path


def test_one_virtualservice_per_http_function_in_every_env() -> None:
    functions = set(_ingress_by_function())
    for env in ("dev", "prod"):
        names = {
            d["metadata"]["name"]
            for d in kustomize(K8S / "overlays" / env / "ingress")
            if d["kind"] == "VirtualService"
        }
        assert names == functions, env


def test_virtualservices_are_what_eco2_manifests_renders() -> None:
    from eco2.core import funcyaml
    from eventing import manifests

    project = funcyaml.load(FUNC_YAML)
    rendered = {o["metadata"]["name"]: o for o in manifests.render(project) if o["kind"] == "VirtualService"}
    ours = {vs["metadata"]["name"]: vs for vs in _base_virtualservices()}
    assert set(rendered) == set(ours) == set(_ingress_by_function())
    for name, vs in rendered.items():
        assert vs == ours[name], name


def test_func_yaml_path_is_the_project_root() -> None:
    assert Path(FUNC_YAML).parent == ROOT
