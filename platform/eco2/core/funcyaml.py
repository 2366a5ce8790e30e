"""func.yaml: Knative func's field names and meaning, extended with a `functions:` map.

The top level holds project defaults (`run`, `deploy`, `build`, ...); each entry of `functions:`
may override any of them and inherits the rest. Unknown fields are errors. Problems are reported as
`func.yaml: functions.<name>.<field>: <problem>`.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$")
TEMPLATE_RE = re.compile(r"\{\{\s*(secret|configMap|env):([^}]+?)\s*\}\}")
QUANTITY_RE = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")
DURATION_RE = re.compile(r"^PT(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class EnvVar(_Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    value: str

    @field_validator("value")
    @classmethod
    def _template(cls, value: str) -> str:
        if "{{" in value and not TEMPLATE_RE.fullmatch(value.strip()):
            raise ValueError("templates look like {{ secret:NAME:KEY }}, {{ configMap:NAME:KEY }} or {{ env:VAR }}")
        return value


class Run(_Strict):
    envs: list[EnvVar] = Field(default_factory=list)


class Scale(_Strict):
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    metric: Literal["concurrency", "rps", "cpu", "memory"] | None = None
    target: float | None = Field(default=None, gt=0)
    utilization: float | None = Field(default=None, gt=0, le=100)
    # extension: how long the last pod stays after traffic stops (Knative's scale-to-zero retention)
    retention: str | None = None

    @field_validator("retention")
    @classmethod
    def _retention(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d+(s|m|h)", value):
            raise ValueError("a duration like 30s, 5m or 1h")
        return value


class ResourceList(_Strict):
    cpu: str | None = None
    memory: str | None = None

    @field_validator("cpu", "memory")
    @classmethod
    def _quantity(cls, value: str | None) -> str | None:
        if value is not None and not QUANTITY_RE.match(value):
            raise ValueError(f"{value!r} is not a Kubernetes quantity such as 100m or 256Mi")
        return value


class Limits(ResourceList):
    concurrency: int | None = Field(default=None, ge=0)


class Resources(_Strict):
    requests: ResourceList = Field(default_factory=ResourceList)
    limits: Limits = Field(default_factory=Limits)


class Options(_Strict):
    scale: Scale = Field(default_factory=Scale)
    resources: Resources = Field(default_factory=Resources)


class HealthEndpoints(_Strict):
    liveness: str = "/health/liveness"
    readiness: str = "/health/readiness"


class Delivery(_Strict):
    """Knative's delivery spec (the parts this project uses)."""

    retry: int | None = Field(default=None, ge=0)
    backoffPolicy: Literal["linear", "exponential"] | None = None
    backoffDelay: str | None = None
    timeout: str | None = None
    deadLetter: bool | None = None
    # extension: a function of this func.yaml (same namespace) that receives the events this
    # Trigger gave up on, instead of the broker's dead-letter queue, so it can close what waits
    # on them (rendered as the Trigger's deadLetterSink; its handler: `@fn.event(..., dead_letters=True)`)
    deadLetterSink: str | None = None

    @field_validator("backoffDelay", "timeout")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and not DURATION_RE.match(value):
            raise ValueError(f"{value!r} is not an ISO-8601 duration such as PT0.2S or PT30S")
        return value


class Subscription(_Strict):
    source: str = "eco2"  # the broker's name, as Knative func's `source`
    filters: dict[str, str]
    parallelism: int | None = Field(default=None, ge=1, le=1000)  # extension
    delivery: Delivery | None = None  # extension

    @field_validator("filters")
    @classmethod
    def _filters(cls, value: dict[str, str]) -> dict[str, str]:
        if "type" not in value:
            raise ValueError("every subscription filters on the event `type`")
        return value


_CRON_MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})


def check_cron(expression: str) -> str:
    """A PingSource schedule as Knative's robfig/cron parser accepts it (five fields with names
    such as MON/JAN, or a macro such as @hourly), checked with croniter; returns it stripped."""
    from croniter import croniter

    text = expression.strip()
    fields = text.split()
    if not (len(fields) == 5 or (len(fields) == 1 and text.lower() in _CRON_MACROS)) or not croniter.is_valid(text):
        raise ValueError(f"{expression!r} is not a cron schedule like '0 * * * *' or '@hourly'")
    return text


class Schedule(_Strict):
    """Extension: a Knative PingSource that sends an event to this function."""

    name: str
    schedule: str
    type: str
    timezone: str = "Asia/Seoul"
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        return check_cron(value)


class Deploy(_Strict):
    namespace: str | None = None
    image: str | None = None
    annotations: dict[str, str] = Field(default_factory=dict)
    labels: list[dict[str, str]] = Field(default_factory=list)
    options: Options = Field(default_factory=Options)
    healthEndpoints: HealthEndpoints = Field(default_factory=HealthEndpoints)
    subscriptions: list[Subscription] = Field(default_factory=list)
    serviceAccountName: str | None = None
    timeoutSeconds: int | None = Field(default=None, ge=1, le=3600)


class Build(_Strict):
    builder: Literal["host", "pack", "s2i", "eco2"] = "eco2"
    buildEnvs: list[EnvVar] = Field(default_factory=list)
    baseImage: str | None = None
    source: str | None = None  # extension: the image's org.opencontainers.image.source label


class FunctionEntry(_Strict):
    """One entry of `functions:`. Every field but `module` may override a project default."""

    description: str = ""
    module: str | None = None  # default: functions.<name_with_underscores>.app:fn
    ingress: list[str] = Field(default_factory=list)  # extension: public path prefixes
    # extension: public paths (`{param}` segments) this function serves inside another's prefix;
    # routed ahead of every prefix (an async streams function serving /api/v1/scan/{job_id}/events)
    routes: list[str] = Field(default_factory=list)
    schedules: list[Schedule] = Field(default_factory=list)
    run: dict[str, Any] | None = None
    deploy: dict[str, Any] | None = None
    build: dict[str, Any] | None = None

    @field_validator("ingress")
    @classmethod
    def _prefixes(cls, value: list[str]) -> list[str]:
        for prefix in value:
            if not re.fullmatch(r"/api/v1/[a-z][a-z0-9-]*", prefix):
                raise ValueError(f"{prefix!r} is not a prefix like /api/v1/<domain>")
        return value

    @field_validator("routes")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        for path in value:
            if not re.fullmatch(r"/api/v1/[a-z][a-z0-9-]*(/([a-z0-9-]+|\{[a-z_][a-z0-9_]*\}))+", path):
                raise ValueError(f"{path!r} is not a path like /api/v1/<domain>/{{param}}/<name>")
        return value


class Project(_Strict):
    specVersion: str
    name: str
    runtime: Literal["python"] = "python"
    registry: str = ""
    namespace: str = "default"
    created: str | None = None
    build: Build = Field(default_factory=Build)
    run: Run = Field(default_factory=Run)
    deploy: Deploy = Field(default_factory=Deploy)
    functions: dict[str, FunctionEntry]


@dataclass(frozen=True)
class FunctionSpec:
    """A function with the project defaults applied."""

    name: str
    description: str
    module: str
    ingress: tuple[str, ...]
    schedules: tuple[Schedule, ...]
    image: str
    namespace: str
    run: Run
    deploy: Deploy
    build: Build
    routes: tuple[str, ...] = ()  # public paths inside other functions' prefixes, routed first

    @property
    def main_path(self) -> str:
        """The functions-framework source file, relative to the project root."""
        package = self.module.split(":")[0].rsplit(".", 1)[0]
        return package.replace(".", "/") + "/main.py"

    @property
    def env(self) -> dict[str, str]:
        return {e.name: e.value for e in self.run.envs}

    @property
    def http(self) -> bool:
        return bool(self.ingress)


@dataclass(frozen=True)
class FuncYaml:
    path: Path
    project: Project
    functions: dict[str, FunctionSpec]

    def dead_letter_types(self, name: str) -> set[str]:
        """The event types whose dead letters reach function `name` (Triggers naming it their
        deadLetterSink): what its `dead_letters=True` handlers must cover."""
        return {
            s.filters["type"]
            for spec in self.functions.values()
            for s in spec.deploy.subscriptions
            if s.delivery is not None and s.delivery.deadLetterSink == name
        }

    def get(self, name: str) -> FunctionSpec:
        try:
            return self.functions[name]
        except KeyError:
            known = ", ".join(sorted(self.functions))
            raise FuncYamlError([f"func.yaml: functions.{name}: no such function (known: {known})"]) from None


class FuncYamlError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _problems(error: ValidationError, prefix: str) -> list[str]:
    out = []
    for item in error.errors():
        where = _loc(tuple(item["loc"]))
        where = f"{prefix}.{where}" if prefix and where else (prefix or where)
        message = "unknown field" if item["type"] == "extra_forbidden" else item["msg"]
        if item["type"] == "missing":
            message = "required field is missing"
        out.append(f"func.yaml: {where}: {message}")
    return out


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if key == "envs" and isinstance(value, list) and isinstance(out.get(key), list):
            by_name = {e["name"]: e for e in out[key] if isinstance(e, dict)}
            for env in value:
                by_name[env.get("name")] = env
            out[key] = list(by_name.values())
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse(text: str, path: Path = Path("func.yaml")) -> FuncYaml:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FuncYamlError([f"func.yaml: not valid YAML: {exc}"]) from None
    if not isinstance(raw, dict):
        raise FuncYamlError(["func.yaml: the top level must be a mapping"])
    try:
        project = Project.model_validate(raw)
    except ValidationError as exc:
        raise FuncYamlError(_problems(exc, "")) from None
    problems: list[str] = []
    functions: dict[str, FunctionSpec] = {}
    defaults = {
        "run": project.run.model_dump(exclude_none=True),
        "deploy": project.deploy.model_dump(exclude_none=True),
        "build": project.build.model_dump(exclude_none=True),
    }
    for name, entry in project.functions.items():
        prefix = f"functions.{name}"
        if not NAME_RE.match(name):
            problems.append(f"func.yaml: {prefix}: a name is lowercase letters, digits and '-', 1-40 chars")
            continue
        merged: dict[str, Any] = {}
        ok = True
        for part, model in (("run", Run), ("deploy", Deploy), ("build", Build)):
            override = getattr(entry, part) or {}
            try:
                merged[part] = model.model_validate(_merge(defaults[part], override))
            except ValidationError as exc:
                problems.extend(_problems(exc, f"{prefix}.{part}"))
                ok = False
        if not ok:
            continue
        deploy: Deploy = merged["deploy"]
        scale = deploy.options.scale
        if scale.min is not None and scale.max not in (None, 0) and scale.min > (scale.max or 0):
            problems.append(f"func.yaml: {prefix}.deploy.options.scale: min is above max")
        if not entry.ingress and not entry.routes and not deploy.subscriptions and not entry.schedules:
            problems.append(f"func.yaml: {prefix}: no ingress, subscription or schedule reaches this function")
        module = entry.module or f"functions.{name.replace('-', '_')}.app:fn"
        if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", module):
            problems.append(f"func.yaml: {prefix}.module: expected 'package.module:attribute'")
            continue
        registry = project.registry.rstrip("/")
        image = deploy.image or (f"{registry}/{project.name}-{name}:latest" if registry else f"{project.name}-{name}")
        functions[name] = FunctionSpec(
            name=name,
            description=entry.description,
            module=module,
            ingress=tuple(entry.ingress),
            schedules=tuple(entry.schedules),
            image=image,
            namespace=deploy.namespace or project.namespace,
            run=merged["run"],
            deploy=deploy,
            build=merged["build"],
            routes=tuple(entry.routes),
        )
    for spec in functions.values():
        for i, subscription in enumerate(spec.deploy.subscriptions):
            sink = subscription.delivery.deadLetterSink if subscription.delivery else None
            if sink is None:
                continue
            where = f"func.yaml: functions.{spec.name}.deploy.subscriptions[{i}].delivery.deadLetterSink"
            if sink == spec.name:
                problems.append(f"{where}: a function cannot be its own dead-letter sink")
            elif sink not in functions:
                problems.append(f"{where}: no function named {sink!r}")
            elif functions[sink].namespace != spec.namespace:
                problems.append(f"{where}: {sink} is in namespace {functions[sink].namespace}, not {spec.namespace}")
            elif subscription.delivery is not None and subscription.delivery.deadLetter is False:
                problems.append(f"{where}: deadLetter is false, so nothing would reach {sink}")
    seen: dict[str, str] = {}
    for spec in functions.values():
        for prefix_path in spec.ingress:
            if prefix_path in seen:
                problems.append(
                    f"func.yaml: functions.{spec.name}.ingress: {prefix_path} is already routed to {seen[prefix_path]}"
                )
            seen[prefix_path] = spec.name
    if problems:
        raise FuncYamlError(problems)
    return FuncYaml(path=path, project=project, functions=functions)


def find_root(start: Path | None = None) -> Path:
    """The project root: the nearest folder upwards holding func.yaml (or ECO2_ROOT)."""
    import os

    if os.environ.get("ECO2_ROOT"):
        return Path(os.environ["ECO2_ROOT"]).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "func.yaml").is_file():
            return folder
    # an installed package: the repository that holds this file
    candidate = Path(__file__).resolve().parents[2]
    if (candidate / "func.yaml").is_file():
        return candidate
    raise FuncYamlError(["func.yaml: not found in this folder or any parent (set ECO2_ROOT)"])


def load(path: Path | None = None) -> FuncYaml:
    path = path or find_root() / "func.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FuncYamlError([f"func.yaml: cannot read {path}: {exc.strerror}"]) from None
    return parse(text, path)
