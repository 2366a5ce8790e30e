from __future__ import annotations

import pytest

from eco2.core.funcyaml import FuncYamlError, load, parse

BASE = """
specVersion: 0.36.0
name: p
registry: reg.example/team
namespace: ns
run:
  envs:
    - {name: A, value: "1"}
    - {name: B, value: "{{ secret:s:k }}"}
deploy:
  options:
    scale: {min: 0, max: 5, target: 10}
functions:
  one:
    ingress: [/api/v1/one]
    run:
      envs:
        - {name: B, value: override}
        - {name: C, value: "{{ env:HOME }}"}
    deploy:
      options:
        scale: {max: 2}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(FuncYamlError) as info:
        parse(text)
    return info.value.problems


def test_defaults_are_inherited_and_overridden() -> None:
    spec = parse(BASE).get("one")
    assert spec.env == {"A": "1", "B": "override", "C": "{{ env:HOME }}"}
    assert (spec.deploy.options.scale.min, spec.deploy.options.scale.max, spec.deploy.options.scale.target) == (
        0,
        2,
        10,
    )
    assert spec.image == "reg.example/team/p-one:latest"
    assert spec.namespace == "ns"
    assert spec.main_path == "functions/one/main.py"


def test_unknown_fields_are_errors_with_their_path() -> None:
    text = BASE.replace("        scale: {max: 2}", "        scael: {max: 2}")
    assert problems(text) == ["func.yaml: functions.one.deploy.options.scael: unknown field"]
    assert problems(BASE.replace("namespace: ns", "namespce: ns")) == ["func.yaml: namespce: unknown field"]
    assert problems(BASE.replace("    ingress: [/api/v1/one]", "    ingress: [/api/v1/one]\n    colour: red")) == [
        "func.yaml: functions.one.colour: unknown field"
    ]


def test_bad_values_are_reported() -> None:
    bad = BASE.replace("scale: {max: 2}", "scale: {max: -1}\n        resources: {requests: {memory: lots}}")
    found = problems(bad)
    assert any(p.startswith("func.yaml: functions.one.deploy.options.scale.max:") for p in found)
    assert any(p.startswith("func.yaml: functions.one.deploy.options.resources.requests.memory:") for p in found)
    assert any(
        "functions.one.run.envs[1].value" in p
        for p in problems(BASE.replace("value: override", 'value: "{{ vault:x }}"'))
    )
    assert any("not a prefix" in p for p in problems(BASE.replace("[/api/v1/one]", "[/one]")))
    assert problems(BASE.replace("specVersion: 0.36.0\n", "")) == ["func.yaml: specVersion: required field is missing"]


def test_unreachable_function_and_duplicate_prefix() -> None:
    assert problems(BASE + "  two: {}\n") == [
        "func.yaml: functions.two: no ingress, subscription or schedule reaches this function"
    ]
    dup = BASE + "  two:\n    ingress: [/api/v1/one]\n"
    assert problems(dup) == ["func.yaml: functions.two.ingress: /api/v1/one is already routed to one"]


def _worker(sink: str, extra: str = "") -> str:
    return BASE + (
        "  two:\n    deploy:\n      subscriptions:\n        - filters: {type: eco2.x.y.z.v1}\n"
        f"          delivery: {{retry: 1, deadLetterSink: {sink}{extra}}}\n"
    )


def test_a_dead_letter_sink_is_another_function_of_the_same_namespace() -> None:
    [subscription] = parse(_worker("one")).get("two").deploy.subscriptions
    assert subscription.delivery is not None and subscription.delivery.deadLetterSink == "one"
    where = "func.yaml: functions.two.deploy.subscriptions[0].delivery.deadLetterSink"
    assert problems(_worker("three")) == [f"{where}: no function named 'three'"]
    assert problems(_worker("two")) == [f"{where}: a function cannot be its own dead-letter sink"]
    false = problems(_worker("one", ", deadLetter: false"))
    assert false == [f"{where}: deadLetter is false, so nothing would reach one"]
    elsewhere = _worker("one").replace("  two:\n    deploy:\n", "  two:\n    deploy:\n      namespace: other\n")
    assert problems(elsewhere) == [f"{where}: one is in namespace ns, not other"]


def test_the_project_func_yaml_is_valid() -> None:
    project = load()
    assert {"auth", "users"} <= set(project.functions)
