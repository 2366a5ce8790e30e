"""Validate Kubernetes objects against the `openAPIV3Schema` of their CustomResourceDefinition.

What the API server enforces with server-side apply and strict field validation, checked offline:

- a field the schema does not declare is an error, unless the enclosing object schema says
  `x-kubernetes-preserve-unknown-fields: true` (an object schema without `properties` and without
  `additionalProperties` therefore accepts no fields at all, as the API server prunes them);
- `required`, `type` (`object`, `array`, `string`, `integer`, `number`, `boolean`), `enum`,
  `pattern` (strings only), `minimum`/`maximum`, `format: int32`/`int64` ranges,
  `x-kubernetes-int-or-string`, `anyOf`, `additionalProperties` given as a schema;
- `x-kubernetes-list-type: map` (unique `x-kubernetes-list-map-keys`) and `set` (unique items);
- `apiVersion`, `kind` and `metadata` at the top level, which every CRD accepts: `metadata` is
  checked against a small ObjectMeta schema (name required, DNS-1123 names, string labels and
  annotations, label values of at most 63 characters).

The version checked is the one named by the object's `apiVersion`; it must be served.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Schema = Mapping[str, Any]

_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}

_STRING_MAP: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
# The ObjectMeta fields a manifest may set (the server owns uid, resourceVersion, timestamps, ...).
OBJECT_META: Schema = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
        "finalizers": {"type": "array", "items": {"type": "string"}},
    },
}


class SchemaError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class CRDVersion:
    group: str
    kind: str
    version: str
    served: bool
    schema: Schema

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _has_type(value: object, expected: str) -> bool:
    actual = _type_name(value)
    return actual == expected or (expected == "number" and actual == "integer")


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else f"{path}[{key!r}]"


def validate_value(value: object, schema: Schema, path: str = "") -> list[str]:
    """Problems of `value` against one structural schema node, each prefixed by its path."""
    where = path or "<root>"
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            return [f"{where}: expected an integer or a string, got {_type_name(value)}"]
    elif (
        "anyOf" in schema
        and "type" not in schema
        and all(validate_value(value, option, path) for option in schema["anyOf"])
    ):
        return [f"{where}: matches none of the allowed schemas"]
    expected = schema.get("type")
    if isinstance(expected, str) and not _has_type(value, expected):
        return [f"{where}: expected {expected}, got {_type_name(value)}"]
    problems: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(repr(v) for v in schema["enum"])
        problems.append(f"{where}: {value!r} is not one of {allowed}")
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high = _INT_RANGES.get(str(schema.get("format")), (None, None))
        low = schema.get("minimum", low)
        high = schema.get("maximum", high)
        if low is not None and value < low:
            problems.append(f"{where}: {value} is below the minimum {low}")
        if high is not None and value > high:
            problems.append(f"{where}: {value} is above the maximum {high}")
    if isinstance(value, dict):
        problems.extend(_validate_object(value, schema, path))
    elif isinstance(value, list):
        problems.extend(_validate_array(value, schema, path))
    return problems


def _validate_object(value: dict[Any, Any], schema: Schema, path: str) -> list[str]:
    problems: list[str] = []
    properties: Mapping[str, Schema] = schema.get("properties", {})
    additional = schema.get("additionalProperties")
    preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
    for name in schema.get("required", []):
        if name not in value:
            problems.append(f"{_child(path, name) if path else name}: required field is missing")
    for key, item in value.items():
        if not isinstance(key, str):
            problems.append(f"{path or '<root>'}: key {key!r} is not a string")
            continue
        where = _child(path, key) if path else key
        if key in properties:
            problems.extend(validate_value(item, properties[key], where))
        elif isinstance(additional, Mapping):
            problems.extend(validate_value(item, additional, where))
        elif additional is True or preserve:
            continue
        else:
            problems.append(f"{where}: unknown field (not declared by the schema)")
    return problems


def _validate_array(value: list[Any], schema: Schema, path: str) -> list[str]:
    problems: list[str] = []
    items = schema.get("items")
    if isinstance(items, Mapping):
        for index, item in enumerate(value):
            problems.extend(validate_value(item, items, f"{path}[{index}]"))
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "map":
        keys: list[str] = list(schema.get("x-kubernetes-list-map-keys", []))
        seen: set[tuple[str, ...]] = set()
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                continue
            identity = tuple(repr(item.get(k)) for k in keys)
            if identity in seen:
                problems.append(f"{path}[{index}]: duplicate entry for key {', '.join(keys)} = {identity}")
            seen.add(identity)
    elif list_type == "set":
        seen_items: list[object] = []
        for index, item in enumerate(value):
            if item in seen_items:
                problems.append(f"{path}[{index}]: duplicate item {item!r} in a set")
            seen_items.append(item)
    return problems


def _validate_meta(metadata: object, namespaced: bool) -> list[str]:
    problems = validate_value(metadata, OBJECT_META, "metadata")
    if problems or not isinstance(metadata, dict):
        return problems
    name = metadata["name"]
    if len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        problems.append(f"metadata.name: {name!r} is not a DNS-1123 subdomain")
    namespace = metadata.get("namespace")
    if namespaced and namespace is not None and not _DNS1123_LABEL.match(namespace):
        problems.append(f"metadata.namespace: {namespace!r} is not a DNS-1123 label")
    for key, label in (metadata.get("labels") or {}).items():
        if len(label) > 63 or not _LABEL_VALUE.match(label):
            problems.append(f"metadata.labels[{key!r}]: {label!r} is not a valid label value")
    return problems


class CRDSchemas:
    """The served versions of a set of CRDs, by (apiVersion, kind)."""

    def __init__(self, versions: Iterable[CRDVersion]) -> None:
        self._versions: dict[tuple[str, str], CRDVersion] = {(v.api_version, v.kind): v for v in versions}

    @classmethod
    def load(cls, folder: Path) -> CRDSchemas:
        if not folder.is_dir():
            raise FileNotFoundError(f"no CRD folder at {folder}")
        versions: list[CRDVersion] = []
        for file in sorted(folder.glob("*.yaml")):
            for document in yaml.safe_load_all(file.read_text(encoding="utf-8")):
                if not isinstance(document, dict) or document.get("kind") != "CustomResourceDefinition":
                    continue
                spec = document["spec"]
                for version in spec["versions"]:
                    schema = version.get("schema", {}).get("openAPIV3Schema")
                    if schema is None:
                        continue
                    versions.append(
                        CRDVersion(
                            group=spec["group"],
                            kind=spec["names"]["kind"],
                            version=version["name"],
                            served=bool(version.get("served", False)),
                            schema=schema,
                        )
                    )
        if not versions:
            raise FileNotFoundError(f"no CustomResourceDefinition with a schema in {folder}")
        return cls(versions)

    def kinds(self) -> list[tuple[str, str]]:
        return sorted(self._versions)

    def covers(self, obj: Mapping[str, Any]) -> bool:
        return (str(obj.get("apiVersion")), str(obj.get("kind"))) in self._versions

    def version_for(self, api_version: str, kind: str) -> CRDVersion:
        found = self._versions.get((api_version, kind))
        if found is None:
            known = ", ".join(f"{k} {a}" for a, k in self.kinds())
            raise SchemaError([f"{kind} {api_version}: no such CRD version (known: {known})"])
        if not found.served:
            raise SchemaError([f"{kind} {api_version}: this version is not served"])
        return found

    def validate(self, obj: Mapping[str, Any]) -> list[str]:
        """Every problem of `obj`, prefixed by `<Kind>/<name>:`; empty when valid."""
        kind = str(obj.get("kind"))
        metadata = obj.get("metadata")
        name = metadata.get("name", "?") if isinstance(metadata, Mapping) else "?"
        try:
            version = self.version_for(str(obj.get("apiVersion")), kind)
        except SchemaError as exc:
            return exc.problems
        schema = dict(version.schema)
        properties = dict(schema.get("properties", {}))
        properties["apiVersion"] = {"type": "string"}
        properties["kind"] = {"type": "string"}
        properties.pop("metadata", None)
        properties.pop("status", None)  # the server owns status; a manifest must not set it
        schema["properties"] = properties
        body = {k: v for k, v in obj.items() if k != "metadata"}
        problems = validate_value(body, schema)
        if metadata is None:
            problems.insert(0, "metadata: required field is missing")
        else:
            problems = _validate_meta(metadata, namespaced=True) + problems
        return [f"{kind}/{name}: {p}" for p in problems]

    def check(self, obj: Mapping[str, Any]) -> None:
        problems = self.validate(obj)
        if problems:
            raise SchemaError(problems)
