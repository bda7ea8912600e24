"""The scenario format: the only place YAML is read. Typed models, errors that name the line.

A scenario says what to sweep (memory sizes, repeats, order), how to load the target
(closed model: stages of users with think time, like the tutorial's Postman run; open
model: an arrival rate with a cap on requests in flight), what to send (a weighted mix of
requests whose JSON bodies may use templates), what to seed, and the thresholds a setting
must meet. `python -m runner validate FILE` checks one; `scenarios/scenario.schema.json` is
generated from these models for editors.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from runner.errors import BadInput

# Lambda's memory range, MB.
MIN_MEMORY_MB = 128
MAX_MEMORY_MB = 10_240
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "scenarios" / "scenario.schema.json"

# Templates allowed inside request bodies and seed items:
#   {{uuid}}   a new random id          {{seq}}  a per-worker counter
#   {{seeded}} the id of a random item seeded before the step
#   {{int:A:B}} a random integer in [A, B]
TEMPLATE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_TEMPLATE_NAMES = re.compile(r"^(uuid|seq|seeded|int:-?\d+:-?\d+)$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalTarget(_Model):
    """The local stack started by the runner (no AWS account needed)."""

    kind: Literal["local"] = "local"
    handler: str | None = Field(None, description="module.function instead of serverless.yml's")
    code_dir: str | None = Field(None, description="directory of the handler's module")
    integration: Literal["lambda-proxy", "lambda"] | None = None
    latency_ms: float = Field(0.0, ge=0, le=10_000, description="added network latency")
    concurrency: int = Field(100, ge=1, le=1000)
    calibrate: bool = Field(True, description="measure and correct the CPU share per size")


class AwsTarget(_Model):
    """A stack deployed with `npx serverless deploy`, found by name in CloudFormation."""

    kind: Literal["aws"]
    stack: str = Field("memsweep", min_length=1, description="service name in serverless.yml")
    stage: str = Field("dev", min_length=1)
    region: str | None = Field(None, description="default: the AWS SDK's configured region")
    url: str | None = Field(
        None, description="send load here instead of the stack's ApiUrl (e.g. a custom domain)"
    )


class UrlTarget(_Model):
    """Any HTTP endpoint; no memory control, memory sizes are labels only."""

    kind: Literal["url"]
    url: str = Field(..., pattern=r"^https?://\S+$")
    api_key: str | None = None
    api_key_env: str | None = Field(None, description="read the API key from this variable")


def _tag(key: str, default: str) -> Any:
    """A discriminator whose tag may be left out (then `default`)."""

    def pick(value: Any) -> str:
        if isinstance(value, dict):
            return str(value.get(key, default))
        return str(getattr(value, key, default))

    return Discriminator(pick)


Target = Annotated[
    Annotated[LocalTarget, Tag("local")]
    | Annotated[AwsTarget, Tag("aws")]
    | Annotated[UrlTarget, Tag("url")],
    _tag("kind", "local"),
]


class Sweep(_Model):
    memory_mb: list[Annotated[int, Field(ge=MIN_MEMORY_MB, le=MAX_MEMORY_MB)]] = Field(
        ..., min_length=1
    )
    repeats: int = Field(1, ge=1, le=100)
    order: Literal["as-listed", "interleaved"] = "as-listed"
    settle_s: float = Field(0.0, ge=0, le=3600, description="wait after a memory change")
    warmup_s: float = Field(0.0, ge=0, le=3600, description="load not measured at step start")

    @field_validator("memory_mb")
    @classmethod
    def _unique(cls, value: list[int]) -> list[int]:
        duplicates = sorted({m for m in value if value.count(m) > 1})
        if duplicates:
            raise ValueError(f"lists {duplicates[0]} more than once (use repeats)")
        return value


class Stage(_Model):
    """Run `users` for `duration_s`; the first `ramp_s` of it move linearly from the last level."""

    users: int = Field(..., ge=1, le=100_000)
    duration_s: float = Field(..., gt=0, le=86_400)
    ramp_s: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _ramp_within_stage(self) -> Stage:
        if self.ramp_s > self.duration_s:
            raise ValueError(
                f"ramp_s ({self.ramp_s}) is longer than duration_s ({self.duration_s})"
            )
        return self


class ThinkTime(_Model):
    min_s: float = Field(0.0, ge=0)
    max_s: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> ThinkTime:
        if self.max_s < self.min_s:
            raise ValueError(f"max_s ({self.max_s}) is below min_s ({self.min_s})")
        return self


class ClosedLoad(_Model):
    """A fixed population of users, each sending, waiting its think time, sending again."""

    model: Literal["closed"] = "closed"
    stages: list[Stage] = Field(..., min_length=1)
    think_time: ThinkTime = ThinkTime()

    @property
    def duration_s(self) -> float:
        return sum(stage.duration_s for stage in self.stages)

    @property
    def peak_users(self) -> int:
        return max(stage.users for stage in self.stages)


class OpenLoad(_Model):
    """Requests arrive at a rate whatever the target does; over max_in_flight they are dropped."""

    model: Literal["open"]
    rate_per_s: float = Field(..., gt=0, le=100_000)
    duration_s: float = Field(..., gt=0, le=86_400)
    max_in_flight: int = Field(100, ge=1, le=100_000)
    arrivals: Literal["poisson", "uniform"] = "poisson"


Load = Annotated[
    Annotated[ClosedLoad, Tag("closed")] | Annotated[OpenLoad, Tag("open")],
    _tag("model", "closed"),
]


def _check_templates(value: Any, where: str) -> None:
    if isinstance(value, str):
        for match in TEMPLATE.finditer(value):
            if not _TEMPLATE_NAMES.match(match.group(1)):
                raise ValueError(
                    f"unknown template {match.group(0)!r} in {where}: use {{{{uuid}}}}, "
                    "{{seq}}, {{seeded}} or {{int:A:B}}"
                )
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_templates(key, where)
            _check_templates(item, where)
    elif isinstance(value, list):
        for item in value:
            _check_templates(item, where)


class RequestSpec(_Model):
    name: str = Field(..., min_length=1, max_length=200)
    weight: float = Field(1.0, gt=0)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: str | None = Field(None, description="default: the target's route")
    body: Any = Field(None, description="JSON body; strings may hold templates")
    headers: dict[str, str] = Field(default_factory=dict)
    expect_status: list[int] = Field([200], min_length=1)

    @field_validator("body")
    @classmethod
    def _templates(cls, value: Any) -> Any:
        _check_templates(value, "body")
        return value


class Seed(_Model):
    items: int = Field(0, ge=0, le=100_000)
    reset: bool = Field(False, description="empty the table before each step")
    item: dict[str, Any] = Field(
        default_factory=lambda: {"id": "seed-{{seq}}", "number": "{{int:1:1000}}"},
        description="the Item written; must include the table's key",
    )

    @field_validator("item")
    @classmethod
    def _templates(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_templates(value, "item")
        return value


class Thresholds(_Model):
    p50_ms: float | None = Field(None, gt=0)
    p95_ms: float | None = Field(None, gt=0)
    p99_ms: float | None = Field(None, gt=0)
    error_rate: float | None = Field(None, ge=0, le=1, description="failed / total, e.g. 0.01")
    min_rps: float | None = Field(None, gt=0)
    # Open model: dropped arrivals / offered arrivals in the window. Applies to every size
    # even when no other threshold is set: a size that cannot take the offered load has not
    # been measured at it.
    max_drop_rate: float = Field(
        0.01, ge=0, le=1, description="open model: dropped / offered arrivals, e.g. 0.01"
    )


class Workers(_Model):
    local: int | None = Field(None, ge=0, le=256, description="default: one per core")
    expect_remote: int = Field(0, ge=0, le=1000)
    wait_s: float = Field(60.0, gt=0, le=3600, description="how long to wait for workers")


class Scenario(_Model):
    name: str = Field(..., min_length=1, max_length=200)
    description: str = ""
    target: Target = LocalTarget()
    sweep: Sweep
    load: Load
    requests: list[RequestSpec] = Field(..., min_length=1)
    seed: Seed = Seed()
    thresholds: Thresholds = Thresholds()
    workers: Workers = Workers()

    @field_validator("requests")
    @classmethod
    def _unique_names(cls, value: list[RequestSpec]) -> list[RequestSpec]:
        names = [spec.name for spec in value]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"request name {name!r} is used more than once")
        return value

    @model_validator(mode="after")
    def _seeded_needs_seed(self) -> Scenario:
        uses_seeded = "{{seeded}}" in json.dumps([spec.body for spec in self.requests])
        if uses_seeded and self.seed.items == 0:
            raise ValueError("seed.items: is 0 but requests use {{seeded}}")
        return self

    @model_validator(mode="after")
    def _warmup_leaves_a_window(self) -> Scenario:
        if self.sweep.warmup_s >= self.load.duration_s:
            raise ValueError(
                f"sweep.warmup_s: {self.sweep.warmup_s:g} s leaves nothing to measure: it must be "
                f"shorter than the load's duration ({self.load.duration_s:g} s)"
            )
        return self


# --- reading YAML with line numbers ----------------------------------------------------------


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key and sequence item."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    lines: dict[Any, int] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            raise BadInput(f"{loader.name}:{key_node.start_mark.line + 1}: {key!r} appears twice")
        mapping[key] = loader.construct_object(value_node, deep=True)
        lines[key] = key_node.start_mark.line + 1
    return _LinedDict(mapping, lines, node.start_mark.line + 1)


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> list[Any]:
    items = [loader.construct_object(child, deep=True) for child in node.value]
    return _LinedList(items, [child.start_mark.line + 1 for child in node.value])


class _LinedDict(dict[Any, Any]):
    def __init__(self, data: dict[Any, Any], lines: dict[Any, int], line: int) -> None:
        super().__init__(data)
        self.lines = lines
        self.line = line


class _LinedList(list[Any]):
    def __init__(self, data: list[Any], lines: list[int]) -> None:
        super().__init__(data)
        self.lines = lines


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _line_of(document: Any, location: tuple[int | str, ...]) -> int:
    """The line of the deepest part of `location` that exists in the document."""
    line = getattr(document, "line", 1)
    node = document
    for part in location:
        if isinstance(node, _LinedDict) and part in node:
            line = node.lines.get(part, line)
            node = node[part]
        elif isinstance(node, _LinedList) and isinstance(part, int) and part < len(node):
            line = node.lines[part]
            node = node[part]
        else:
            break
    return line


_TAGS = {"target": {"local", "aws", "url"}, "load": {"closed", "open"}}


def _without_tags(location: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Drop a discriminated union's tag, which pydantic puts in the path after its key."""
    if len(location) > 1 and location[1] in _TAGS.get(str(location[0]), ()):
        return (location[0], *location[2:])
    return location


def _field_path(location: tuple[int | str, ...]) -> str:
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


# A check across fields names the field it blames first: "sweep.warmup_s: ..."
_BLAMED_FIELD = re.compile(r"^(?P<field>[a-z_]+(?:\.[a-z_]+)+): (?P<message>.*)$", re.DOTALL)


def _messages(path: str, document: Any, error: ValidationError) -> list[str]:
    out = []
    for item in error.errors():
        location = tuple(item["loc"])
        clean = _without_tags(location)
        message = item["msg"].removeprefix("Value error, ")
        blamed = _BLAMED_FIELD.match(message) if not clean else None
        if blamed:
            field = tuple(blamed["field"].split("."))
            out.append(
                f"{path}:{_line_of(document, field)}: {blamed['field']}: {blamed['message']}"
            )
            continue
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "missing":
            message = "is required"
        elif item["type"] == "union_tag_invalid":
            expected = item.get("ctx", {}).get("expected_tags", "")
            message = f"must be one of {expected}"
        got = (
            ""
            if item["type"] in {"missing", "extra_forbidden"}
            else f", got {_shown(item['input'])}"
        )
        if item["type"] == "extra_forbidden":
            got = ""
        out.append(f"{path}:{_line_of(document, clean)}: {_field_path(clean)}: {message}{got}")
    return out


def parse_scenario(text: str, *, path: str = "<scenario>") -> Scenario:
    """A Scenario from YAML text; BadInput naming file, line and field on any problem."""
    loader = _LineLoader(text)
    loader.name = path
    try:
        document = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise BadInput(f"{path}:{line}: not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    if not isinstance(document, dict):
        raise BadInput(f"{path}:1: a scenario is a mapping of keys (name, sweep, load, ...)")
    try:
        return Scenario.model_validate(document)
    except ValidationError as exc:
        messages = _messages(path, document, exc)
        raise BadInput("\n".join(messages)) from None


def load_scenario(path: str | Path) -> Scenario:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{file}: no such scenario file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{file}: cannot read it: {exc}") from None
    return parse_scenario(text, path=str(file))


# The target fields a command-line flag may set, per kind.
TARGET_FLAGS = {"local": (), "aws": ("stack", "stage", "region", "url"), "url": ("url",)}


def with_target(scenario: Scenario, *, kind: str | None = None, **fields: str | None) -> Scenario:
    """The scenario with its target chosen or adjusted on the command line.

    `--target KIND` picks the kind (keeping the file's target fields when the kind is the
    same); `--stage`, `--region`, `--stack`, `--url` then set fields of that target. A flag
    that means nothing for the kind is an error, not silently ignored.
    """
    given = {name: value for name, value in fields.items() if value is not None}
    if kind is None and not given:
        return scenario
    kind = kind or scenario.target.kind
    for name in given:
        if name not in TARGET_FLAGS[kind]:
            applies = ", ".join(f"--{flag}" for flag in TARGET_FLAGS[kind]) or "no flags"
            raise BadInput(f"--{name} does not apply to a {kind} target (it takes {applies})")
    keep = scenario.target.model_dump(exclude_none=True) if scenario.target.kind == kind else {}
    try:
        target: LocalTarget | AwsTarget | UrlTarget = TypeAdapter(Target).validate_python(
            {**keep, **given, "kind": kind}
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        location = tuple(first["loc"])
        where = ".".join(str(part) for part in location[1:] if location and location[0] == kind)
        message = "is required" if first["type"] == "missing" else first["msg"]
        flag = f"--{where}" if where in TARGET_FLAGS[kind] else f"target.{where}"
        got = "" if first["type"] == "missing" else f", got {_shown(first['input'])}"
        raise BadInput(f"--target {kind}: {flag}: {message}{got}") from None
    return scenario.model_copy(update={"target": target})


def json_schema() -> dict[str, Any]:
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "memsweep scenario"
    return schema


def write_json_schema(path: Path = SCHEMA_PATH) -> Path:
    path.write_text(json.dumps(json_schema(), indent=2) + "\n")
    return path
