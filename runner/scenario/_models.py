"""The scenario format: the only place YAML is read. Typed models, errors that name the line.

A scenario says what to sweep (memory sizes, repeats, order), how to load the target
(closed model: stages of users with think time, like the tutorial's Postman run; open
model: an arrival rate with a cap on requests in flight), what to send (a weighted mix of
requests whose JSON bodies may use templates), what to seed, and the thresholds a setting
must meet. `python -m runner validate FILE` checks one; `scenarios/scenario.schema.json` is
generated from these models for editors. runner/scenario_errors.py says what the models
refuse in plain words, one line each; this module adds the file and the line.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.functional_validators import AfterValidator

from runner.errors import BadInput
from runner.lambda_facts import (
    API_NAMES,
    MAX_MEMORY_MB,
    MIN_MEMORY_MB,
    ApiType,
    Architecture,
)
from runner.scenario._errors import MAX_MESSAGE_CHARS as MAX_MESSAGE_CHARS
from runner.scenario._errors import (
    explain,
    explain_override,
    explain_target,
    field_path,
    one_line,
    shown_option,
)
from runner.stack import PROJECT_ROOT

SCHEMA_PATH = PROJECT_ROOT / "scenarios" / "scenario.schema.json"

# Templates allowed inside request bodies and seed items (runner/locustfile.py renders them;
# a path or header is sent as written, so a template there is refused):
#   {{uuid}}   a new random id          {{seq}}  a per-worker counter
#   {{seeded}} the id of a random item seeded before the step
#   {{int:A:B}} a random integer in [A, B], A <= B
TEMPLATE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
# DynamoDB numbers hold at most 38 significant digits (its documented data-type limits):
# a bound with more digits could not be stored as written.
MAX_TEMPLATE_INT_DIGITS = 38
_TEMPLATE_NAMES = re.compile(
    rf"^(uuid|seq|seeded|int:(?P<low>-?\d{{1,{MAX_TEMPLATE_INT_DIGITS}}})"
    rf":(?P<high>-?\d{{1,{MAX_TEMPLATE_INT_DIGITS}}}))$"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _printable(value: str) -> str:
    """Names are printed on terminals and in reports: no control characters (escapes, CR/LF)."""
    found = _CONTROL.search(value)
    if found:
        raise ValueError(f"holds the control character {found.group(0)!r}")
    return value


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_printable)]


class _Model(BaseModel):
    # .inf and .nan are never a meaningful setting (an infinite weight or think time only
    # fails at run time), and pydantic would also take the strings "inf" and "nan".
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _one_item(value: Any) -> Any:
    """A single value where a list is meant (`memory_mb: 512`, `expect_status: 200`) is that
    one-item list; anything else is left for the type check to judge."""
    return value if isinstance(value, list) else [value]


def _one_mapping(value: Any) -> Any:
    """A single mapping where a list of them is meant (one stage, one request)."""
    return [value] if isinstance(value, dict) else value


class LocalTarget(_Model):
    """The local stack started by the runner (no AWS account needed)."""

    kind: Literal["local"] = Field(
        "local",
        description="the local stack: API Gateway, Lambda and DynamoDB on this machine",
        examples=["local"],
    )
    handler: str | None = Field(
        None,
        description="module.function to run instead of serverless.yml's handler",
        examples=["tutorial_handler.lambda_handler"],
    )
    code_dir: str | None = Field(
        None,
        description="directory holding the handler's module (default: the project's)",
        examples=["tests/handlers"],
    )
    integration: Literal["lambda-proxy", "lambda"] | None = Field(
        None,
        description="API Gateway integration (default: serverless.yml's); lambda is the AWS "
        "tutorial's original non-proxy API",
        examples=["lambda"],
    )
    latency_ms: float = Field(
        0.0,
        ge=0,
        le=10_000,
        description="network latency added to every request, to read local numbers beside AWS",
        examples=[20],
    )
    concurrency: int = Field(
        100,
        ge=1,
        le=1000,
        description="most sandboxes at once (Lambda's concurrency limit)",
        examples=[50],
    )
    calibrate: bool = Field(
        True,
        description="measure and correct the CPU share each memory size gets",
        examples=[False],
    )


class AwsTarget(_Model):
    """A stack deployed with `npx serverless deploy`, found by name in CloudFormation."""

    kind: Literal["aws"] = Field(
        ..., description="a stack deployed with `npx serverless deploy`", examples=["aws"]
    )
    stack: str = Field(
        "memsweep", min_length=1, description="service name in serverless.yml", examples=["shop"]
    )
    stage: str = Field(
        "dev", min_length=1, description="the serverless stage deployed", examples=["prod"]
    )
    region: str | None = Field(
        None,
        description="AWS region (default: the AWS SDK's configured region)",
        examples=["eu-west-1"],
    )
    url: str | None = Field(
        None,
        description="send load here instead of the stack's ApiUrl (e.g. a custom domain)",
        examples=["https://api.example.com/DynamoDBManager"],
    )


class UrlTarget(_Model):
    """Any HTTP endpoint; no memory control, memory sizes are labels only."""

    kind: Literal["url"] = Field(
        ..., description="any HTTP endpoint; memory sizes are labels only", examples=["url"]
    )
    url: str = Field(
        ...,
        pattern=r"^https?://\S+$",
        description="the endpoint requests go to",
        examples=["https://abc123.execute-api.us-east-1.amazonaws.com/dev/DynamoDBManager"],
    )
    api_key: str | None = Field(
        None,
        description="x-api-key header value; prefer api_key_env or api_key_file (kept out of "
        "the file)",
        examples=["a-usage-plan-key"],
    )
    api_key_env: str | None = Field(
        None, description="read the API key from this variable", examples=["MEMSWEEP_API_KEY"]
    )
    api_key_file: str | None = Field(
        None, description="read the API key from this file", examples=["~/.memsweep/api-key"]
    )


def _tag(key: str, default: str) -> Any:
    """A discriminator whose tag may be left out (then `default`)."""

    def pick(value: Any) -> str:
        if isinstance(value, dict):
            return str(value.get(key, default))
        return str(getattr(value, key, default))

    return Discriminator(pick)


TARGET_KINDS = ("local", "aws", "url")


def _target_shorthand(value: Any) -> Any:
    """`target: local` is `target: {kind: local}`, that kind with its defaults; `target:
    https://...` is `{kind: url, url: https://...}`."""
    if isinstance(value, str) and re.match(r"^https?://", value):
        return {"kind": "url", "url": value}
    return {"kind": value} if isinstance(value, str) else value


Target = Annotated[
    Annotated[LocalTarget, Tag("local")]
    | Annotated[AwsTarget, Tag("aws")]
    | Annotated[UrlTarget, Tag("url")],
    _tag("kind", "local"),
]

MemoryMb = Annotated[int, Field(ge=MIN_MEMORY_MB, le=MAX_MEMORY_MB)]


# Python's module.function, as Lambda's Handler setting names it (a package path is dotted).
HANDLER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$"
HandlerName = Annotated[str, Field(pattern=HANDLER_PATTERN, max_length=128)]
AXES = ("api", "architecture", "handler")  # swept beside memory_mb


class Point(_Model):
    """One explicit sweep point: a memory size and, for each other axis, a value (left out:
    the target's own, e.g. the REST API)."""

    memory_mb: MemoryMb = Field(..., description="memory size of this point", examples=[512])
    api: ApiType | None = Field(
        None, description="rest (REST API) or http (HTTP API)", examples=["http"]
    )
    architecture: Architecture | None = Field(
        None, description="x86_64 or arm64 (arm64 runs on AWS only)", examples=["arm64"]
    )
    handler: HandlerName | None = Field(
        None,
        description="the function's handler, module.function",
        examples=["tutorial_handler.lambda_handler"],
    )


def _axis(value: Any) -> Any:
    """`api: http` is `api: [http]`; left out (None) is not swept."""
    return value if value is None or isinstance(value, list) else [value]


def _points_give_memory(data: Any) -> Any:
    """With an explicit list of points, memory_mb is theirs (in first-seen order): a file
    gives either the lists or the points, never both."""
    if not isinstance(data, dict) or data.get("points") is None:
        return data
    given = [key for key in ("api", "architecture", "handler") if data.get(key) is not None]
    if given:
        raise ValueError(
            f"give either points or the {given[0]} list, not both (points name every axis)"
        )
    points = data["points"]
    if not isinstance(points, list):
        return data  # the type check names it
    sizes = list(
        dict.fromkeys(p["memory_mb"] for p in points if isinstance(p, dict) and "memory_mb" in p)
    )
    if data.get("memory_mb") is None:
        return {**data, "memory_mb": sizes}
    if _one_item(data["memory_mb"]) != sizes:
        raise ValueError("give either points or memory_mb, not both (points name every size)")
    return data


class Sweep(_Model):
    """Which settings are measured, how often and in what order: memory sizes and, beside
    them, optionally API types, architectures and handlers (every combination is a point), or
    an explicit list of points."""

    memory_mb: Annotated[
        list[MemoryMb], BeforeValidator(_one_item, json_schema_input_type=MemoryMb | list[MemoryMb])
    ] = Field(
        ...,
        min_length=1,
        description="memory sizes to measure, in Lambda's range (any whole MB); one size or a list",
        examples=[[128, 512, 1024]],
    )
    repeats: int = Field(1, ge=1, le=100, description="times each size is measured", examples=[3])
    order: Literal["as-listed", "interleaved"] = Field(
        "as-listed",
        description="as-listed: each size's repeats together; interleaved: the whole list once "
        "per repeat, so a drift hits every size",
        examples=["interleaved"],
    )
    settle_s: float = Field(
        0.0, ge=0, le=3600, description="wait after a memory change, before the load", examples=[2]
    )
    warmup_s: float = Field(
        0.0,
        ge=0,
        le=3600,
        description="first part of each step's load that is not measured (shorter than the load)",
        examples=[10],
    )

    api: Annotated[
        list[ApiType] | None, BeforeValidator(_axis, json_schema_input_type=ApiType | list[ApiType])
    ] = Field(
        None,
        min_length=1,
        description="API types to measure beside memory: rest (REST API, $3.50 per 1M) and/or "
        "http (HTTP API, $1.00 per 1M); left out: the target's REST API",
        examples=[["rest", "http"]],
    )
    architecture: Annotated[
        list[Architecture] | None,
        BeforeValidator(_axis, json_schema_input_type=Architecture | list[Architecture]),
    ] = Field(
        None,
        min_length=1,
        description="instruction set architectures to measure: x86_64 and/or arm64 (arm64 only "
        "on the aws target: the local stack runs on this machine's CPU)",
        examples=[["x86_64", "arm64"]],
    )
    handler: Annotated[
        list[HandlerName] | None,
        BeforeValidator(_axis, json_schema_input_type=HandlerName | list[HandlerName]),
    ] = Field(
        None,
        min_length=1,
        description="handler variants to measure (module.function in the deployed package)",
        examples=[["handler.lambda_handler", "tutorial_handler.lambda_handler"]],
    )
    points: list[Point] | None = Field(
        None,
        min_length=1,
        description="an explicit list of points instead of every combination of the lists "
        "(then memory_mb, api, architecture and handler are left out)",
        examples=[[{"memory_mb": 128, "api": "rest"}, {"memory_mb": 1024, "api": "http"}]],
    )

    @field_validator("memory_mb")
    @classmethod
    def _unique(cls, value: list[int]) -> list[int]:
        duplicates = sorted({m for m in value if value.count(m) > 1})
        if duplicates:
            raise ValueError(f"lists {duplicates[0]} more than once (use repeats)")
        return value

    @model_validator(mode="before")
    @classmethod
    def _points_or_lists(cls, data: Any) -> Any:
        return _points_give_memory(data)

    @field_validator("api", "architecture", "handler")
    @classmethod
    def _unique_values(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            duplicates = sorted({v for v in value if value.count(v) > 1})
            if duplicates:
                raise ValueError(f"lists {duplicates[0]} more than once")
        return value

    @field_validator("points")
    @classmethod
    def _unique_points(cls, value: list[Point] | None) -> list[Point] | None:
        if value is not None:
            for i, point in enumerate(value):
                if point in value[:i]:
                    raise ValueError(f"lists point {i + 1} twice ({point_label(point)})")
        return value

    @property
    def swept_axes(self) -> list[str]:
        """The axes beside memory this sweep moves (an explicit point list: those it names)."""
        if self.points is not None:
            return [a for a in AXES if any(getattr(p, a) is not None for p in self.points)]
        return [a for a in AXES if getattr(self, a) is not None]

    def planned_points(self) -> list[Point]:
        """Every point once, in run order. The product changes the costliest axes least often
        (architecture and handler need a code update on AWS), memory fastest."""
        if self.points is not None:
            return list(self.points)
        none: list[None] = [None]  # an axis not swept: the target's own value
        architectures: list[Architecture | None] = (
            [*self.architecture] if self.architecture else [*none]
        )
        handlers: list[str | None] = [*self.handler] if self.handler else [*none]
        apis: list[ApiType | None] = [*self.api] if self.api else [*none]
        return [
            Point(memory_mb=memory, api=api, architecture=architecture, handler=handler)
            for architecture in architectures
            for handler in handlers
            for api in apis
            for memory in self.memory_mb
        ]


class AtPoint:
    """A record of one sweep point (a setting, a report row): its memory size and its label."""

    point: Point

    @property
    def memory_mb(self) -> int:
        return self.point.memory_mb

    @property
    def label(self) -> str:
        """ "512 MB", or "512 MB · HTTP API · handler.fn" when the sweep moves more."""
        return point_label(self.point)


def point_label(point: Point) -> str:
    """ "512 MB", or with the other axes the point names: "512 MB · HTTP API · arm64"."""
    parts = [value_name("memory_mb", point.memory_mb)]
    parts += [value_name(axis, getattr(point, axis)) for axis in AXES if getattr(point, axis)]
    return " · ".join(parts)


def value_name(axis: str, value: object) -> str:
    """An axis value as labels, the report and the exports write it: "HTTP API", "arm64",
    "128 MB"."""
    if axis == "memory_mb":
        return f"{value} MB"
    return API_NAMES.get(str(value), str(value))


class Stage(_Model):
    """Run `users` for `duration_s`; the first `ramp_s` of it move linearly from the last level."""

    users: int = Field(
        ..., ge=1, le=100_000, description="simulated users by the end of the ramp", examples=[10]
    )
    duration_s: float = Field(
        ...,
        gt=0,
        le=86_400,
        description="how long the stage lasts, its ramp included",
        examples=[60],
    )
    ramp_s: float = Field(
        0.0,
        ge=0,
        description="first part of the stage, moving linearly from the previous level (0 for "
        "the first stage); at most duration_s",
        examples=[30],
    )

    @model_validator(mode="after")
    def _ramp_within_stage(self) -> Stage:
        if self.ramp_s > self.duration_s:
            raise ValueError(
                f"ramp_s ({self.ramp_s:g} s) is longer than duration_s ({self.duration_s:g} s)"
            )
        return self


# A user thinking for an hour between requests sends nothing in any step we can measure.
MAX_THINK_TIME_S = 3600


class ThinkTime(_Model):
    """Each user's wait between its requests, uniform in [min_s, max_s]."""

    min_s: float = Field(
        0.0,
        ge=0,
        le=MAX_THINK_TIME_S,
        description="shortest wait of a user between its requests",
        examples=[1.2],
    )
    max_s: float = Field(
        0.0,
        ge=0,
        le=MAX_THINK_TIME_S,
        description="longest wait (each wait is uniform in [min_s, max_s])",
        examples=[1.8],
    )

    @model_validator(mode="after")
    def _ordered(self) -> ThinkTime:
        if self.max_s < self.min_s:
            raise ValueError(f"max_s ({self.max_s:g} s) is below min_s ({self.min_s:g} s)")
        return self


class ClosedLoad(_Model):
    """A fixed population of users, each sending, waiting its think time, sending again."""

    model: Literal["closed"] = Field(
        "closed",
        description="closed: a population of users, each waiting for its answer, then thinking",
        examples=["closed"],
    )
    stages: Annotated[
        list[Stage], BeforeValidator(_one_mapping, json_schema_input_type=Stage | list[Stage])
    ] = Field(
        ...,
        min_length=1,
        description="the user profile, run in order (one mapping or a list)",
        examples=[[{"users": 3, "duration_s": 30}, {"users": 10, "duration_s": 60, "ramp_s": 30}]],
    )
    think_time: ThinkTime = Field(
        ThinkTime(),
        description="each user's wait between its requests",
        examples=[{"min_s": 1.2, "max_s": 1.8}],
    )

    @property
    def duration_s(self) -> float:
        return sum(stage.duration_s for stage in self.stages)

    @property
    def peak_users(self) -> int:
        return max(stage.users for stage in self.stages)


class OpenLoad(_Model):
    """Requests arrive at a rate whatever the target does; over max_in_flight they are dropped."""

    model: Literal["open"] = Field(
        ...,
        description="open: requests arrive at a rate, whatever the target does",
        examples=["open"],
    )
    rate_per_s: float = Field(
        ..., gt=0, le=100_000, description="arrivals per second", examples=[50]
    )
    duration_s: float = Field(
        ..., gt=0, le=86_400, description="how long each step's load lasts", examples=[45]
    )
    max_in_flight: int = Field(
        100,
        ge=1,
        le=100_000,
        description="requests waiting for an answer at once; arrivals beyond are dropped and "
        "counted",
        examples=[50],
    )
    arrivals: Literal["poisson", "uniform"] = Field(
        "poisson",
        description="poisson: random gaps, as independent clients; uniform: evenly spaced",
        examples=["uniform"],
    )


Load = Annotated[
    Annotated[ClosedLoad, Tag("closed")] | Annotated[OpenLoad, Tag("open")],
    _tag("model", "closed"),
]


def _check_templates(value: Any, where: str) -> None:
    if isinstance(value, str):
        for match in TEMPLATE.finditer(value):
            known = _TEMPLATE_NAMES.match(match.group(1))
            if not known:
                raise ValueError(
                    f"unknown template {match.group(0)!r} in {where}: use {{{{uuid}}}}, "
                    f"{{{{seq}}}}, {{{{seeded}}}} or {{{{int:A:B}}}} (A and B whole numbers of "
                    f"at most {MAX_TEMPLATE_INT_DIGITS} digits)"
                )
            if known["low"] is not None and int(known["low"]) > int(known["high"]):
                raise ValueError(
                    f"template {match.group(0)!r} in {where}: its lower bound is above its upper"
                )
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_templates(key, where)
            _check_templates(item, where)
    elif isinstance(value, list):
        for item in value:
            _check_templates(item, where)


def _sent_as_written(value: str, where: str) -> None:
    """A path or header goes out byte for byte: no templates, no CR/LF (header injection)."""
    found = TEMPLATE.search(value)
    if found:
        raise ValueError(
            f"{found.group(0)!r}: templates are rendered only in body and seed.item; the "
            f"{where} is sent as written"
        )
    control = re.search(r"[\x00-\x08\x0a-\x1f\x7f]", value)
    if control:
        raise ValueError(f"holds the control character {control.group(0)!r}")


# RFC 9110 section 5.1: a field name is a token.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Weights are relative; a million to one already means a request that never runs, and a
# bound keeps the cumulative weights the load generator sums finite.
MAX_WEIGHT = 1_000_000
# RFC 9110 section 15: a status code is three digits, 100 to 599.
HttpStatus = Annotated[int, Field(ge=100, le=599)]


class RequestSpec(_Model):
    """One request of the mix; each user picks the next one at random by weight."""

    name: Name = Field(
        ..., description="label of this request in the results (unique)", examples=["read"]
    )
    weight: float = Field(
        1.0,
        gt=0,
        le=MAX_WEIGHT,
        description="relative share of the mix (weights 3 and 1: 75 % and 25 %)",
        examples=[3],
    )
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = Field(
        "POST", description="HTTP method", examples=["GET"]
    )
    path: str | None = Field(
        None,
        pattern=r"^(/|https?://)",
        description="/path on the target's host, or a full URL (default: the target's route); "
        "sent as written",
        examples=["/dev/DynamoDBManager"],
    )
    body: Any = Field(
        None,
        description="JSON body; strings may hold {{uuid}}, {{seq}}, {{seeded}}, {{int:A:B}}",
        examples=[{"operation": "read", "payload": {"Key": {"id": "{{seeded}}"}}}],
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="extra HTTP headers, sent as written",
        examples=[{"X-Team": "perf"}],
    )
    expect_status: Annotated[
        list[HttpStatus],
        BeforeValidator(_one_item, json_schema_input_type=HttpStatus | list[HttpStatus]),
    ] = Field(
        [200],
        min_length=1,
        description="HTTP statuses that count as success (one or a list); others are errors",
        examples=[[200, 404]],
    )

    @field_validator("body")
    @classmethod
    def _templates(cls, value: Any) -> Any:
        _check_templates(value, "body")
        return value

    @field_validator("path")
    @classmethod
    def _path_as_written(cls, value: str | None) -> str | None:
        if value is not None:
            _sent_as_written(value, "path")
            if re.search(r"\s", value):
                raise ValueError("holds white space (percent-encode it as %20)")
        return value

    @field_validator("headers")
    @classmethod
    def _headers_as_written(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"header name {name!r} is not an HTTP token (RFC 9110)")
            try:
                _sent_as_written(text, f"header {name}")
            except ValueError as exc:
                raise ValueError(f"header {name}: {exc}") from None
        return value


class Seed(_Model):
    """Items written through the API before each step, for requests to read."""

    items: int = Field(
        0,
        ge=0,
        le=100_000,
        description="items written through the API before each step ({{seeded}} picks one)",
        examples=[100],
    )
    reset: bool = Field(
        False, description="empty the table before each step's seeding", examples=[True]
    )
    item: dict[str, Any] = Field(
        default_factory=lambda: {"id": "seed-{{seq}}", "number": "{{int:1:1000}}"},
        description="the Item written; must include the table's key (id); may hold templates",
        examples=[{"id": "seed-{{seq}}", "price": "{{int:1:100}}"}],
    )

    @field_validator("item")
    @classmethod
    def _templates(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_templates(value, "item")
        return value


class Thresholds(_Model):
    """What a memory size must meet to be recommended; an unset threshold is not checked."""

    p50_ms: float | None = Field(
        None, gt=0, description="median latency a size must stay under", examples=[100]
    )
    p95_ms: float | None = Field(
        None, gt=0, description="95th percentile latency a size must stay under", examples=[250]
    )
    p99_ms: float | None = Field(
        None, gt=0, description="99th percentile latency a size must stay under", examples=[500]
    )
    error_rate: float | None = Field(
        None, ge=0, le=1, description="most failed / total requests", examples=[0.01]
    )
    min_rps: float | None = Field(
        None, gt=0, description="fewest requests per second a size must serve", examples=[50]
    )
    # Open model: dropped arrivals / offered arrivals in the window. Applies to every size
    # even when no other threshold is set: a size that cannot take the offered load has not
    # been measured at it.
    max_drop_rate: float = Field(
        0.01,
        ge=0,
        le=1,
        description="open model: most dropped / offered arrivals (applies even when no other "
        "threshold is set)",
        examples=[0.001],
    )


class Workers(_Model):
    """The Locust processes that generate the load."""

    local: int | None = Field(
        None,
        ge=0,
        le=256,
        description="Locust worker processes on this machine (default: one per core)",
        examples=[2],
    )
    expect_remote: int = Field(
        0,
        ge=0,
        le=1000,
        description="workers joining from other machines (`python -m runner worker`)",
        examples=[2],
    )
    wait_s: float = Field(
        60.0, gt=0, le=3600, description="how long to wait for workers to join", examples=[120]
    )


class Scenario(_Model):
    name: Name = Field(
        ..., description="what this scenario measures; shown in reports", examples=["crud mix"]
    )
    description: str = Field(
        "", description="free text shown in the report", examples=["60 % reads, 40 % writes"]
    )
    target: Annotated[
        Target,
        BeforeValidator(
            _target_shorthand,
            json_schema_input_type=Literal["local", "aws", "url"]
            | Annotated[str, Field(pattern=r"^https?://\S+$")]
            | Target,
        ),
    ] = Field(
        LocalTarget(),
        description="where load goes: local, aws or url (a kind alone takes its defaults), "
        "an http(s):// URL (a url target), or a mapping with kind and its keys",
        examples=["local", {"kind": "aws", "stage": "prod"}],
    )
    sweep: Sweep = Field(
        ...,
        description="which memory sizes, how often, in what order",
        examples=[{"memory_mb": [128, 1024]}],
    )
    load: Load = Field(
        ...,
        description="closed model (stages of users) or open model (an arrival rate)",
        examples=[{"stages": [{"users": 10, "duration_s": 60}]}],
    )
    requests: Annotated[
        list[RequestSpec],
        BeforeValidator(_one_mapping, json_schema_input_type=RequestSpec | list[RequestSpec]),
    ] = Field(
        ...,
        min_length=1,
        description="the weighted request mix (one mapping or a list)",
        examples=[[{"name": "list", "body": {"operation": "list", "payload": {}}}]],
    )
    seed: Seed = Field(
        Seed(), description="items written before each step", examples=[{"items": 100}]
    )
    thresholds: Thresholds = Field(
        Thresholds(),
        description="what a size must meet to be recommended",
        examples=[{"p95_ms": 250, "error_rate": 0.01}],
    )
    workers: Workers = Field(
        Workers(), description="Locust load generators", examples=[{"local": 2}]
    )

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
        names = TEMPLATE.findall(json.dumps([spec.body for spec in self.requests]))
        uses_seeded = "seeded" in names  # also "{{ seeded }}", which renders the same
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

# A scenario is a hand-written config: the shipped ones are under 2 KB. 1 MB leaves room for
# bodies far past what the target takes (a DynamoDB item is at most 400 KB), and refuses, before
# parsing, a file that would be parsed for seconds and copied into results.json and the report.
MAX_SCENARIO_BYTES = 1_000_000
# Aliases share one parsed value, but every request serialises the value in full: the
# billion-laughs file is a few hundred bytes and expands to gigabytes. Bound what the document
# expands to (characters of scalars plus one per node). A file without aliases expands to
# about its own size, so four times the file limit never refuses one.
MAX_EXPANDED_SIZE = 4 * MAX_SCENARIO_BYTES
# DynamoDB nests attributes at most 32 levels (its documented attribute limits); a body that
# puts such an item sits a few levels below the scenario's top. 64 is twice that, and far
# below Python's recursion limit, which deeper YAML hit (RecursionError, exit 3).
MAX_DEPTH = 64
# DynamoDB numbers hold 38 significant digits; 100 characters leaves room for a sign, an
# exponent, underscores and a deliberately out-of-range test value, and stays far below
# Python's 4300-digit limit on converting text to int (a ValueError, exit 3, before).
MAX_NUMBER_CHARS = 100
_JSON_TAGS = {
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "seq", "map")
}


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key and sequence item, and takes
    only what JSON can say: strings, numbers, booleans, null, lists and string-keyed mappings,
    bounded in depth and in what aliases expand to."""

    # Dates stay text: a date value is not JSON, and a body sends what the file says.
    yaml_implicit_resolvers = {  # noqa: RUF012 (PyYAML's own class attribute)
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, text: str, path: str) -> None:
        super().__init__(text)
        self.name = path
        self.at: list[int | str] = []  # the field being composed or constructed
        self.sizes: dict[int, int] = {}  # id(node) -> expanded size, once composed

    def fail(self, node_or_mark: Any, message: str) -> BadInput:
        mark = getattr(node_or_mark, "start_mark", node_or_mark)
        field = field_path(tuple(self.at))
        return BadInput(one_line(f"{self.name}:{mark.line + 1}: {field}: {message}"))

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event: Any = self.peek_event()  # type: ignore[no-untyped-call]
            target = super().compose_node(parent, index)
            if id(target) not in self.sizes:  # its anchor is still open: the alias is inside it
                raise self.fail(event, f"alias *{event.anchor} is inside its own anchor")
            return target
        part: int | str | None = None
        if isinstance(index, int):
            part = index
        elif isinstance(index, yaml.ScalarNode):
            part = str(index.value)
        elif parent is not None:
            part = "(a key)"
        if part is not None:
            self.at.append(part)
        if len(self.at) > MAX_DEPTH:
            where = self.peek_event()  # type: ignore[no-untyped-call]
            raise self.fail(where, f"nested more than {MAX_DEPTH} levels deep")
        node: Any = super().compose_node(parent, index)
        if isinstance(node, yaml.ScalarNode):
            size = 1 + len(node.value)
        elif isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self.sizes[id(child)] for child in node.value)
        else:
            size = 1 + sum(self.sizes[id(k)] + self.sizes[id(v)] for k, v in node.value)
        if size > MAX_EXPANDED_SIZE:
            raise self.fail(
                node,
                f"its aliases expand to more than {MAX_EXPANDED_SIZE:,} characters "
                "(a YAML alias bomb?): write the value out or use fewer aliases",
            )
        self.sizes[id(node)] = size
        if part is not None:
            self.at.pop()
        return node

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        if node.tag not in _JSON_TAGS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            raise self.fail(
                node,
                f"the YAML tag {tag} is not allowed: a scenario holds strings, numbers, "
                "booleans, null, lists and mappings",
            )
        return super().construct_object(node, deep=deep)


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    lines: dict[Any, int] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise loader.fail(key_node, "a key must be a plain string, not a list or a mapping")
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            kind = "null" if key is None else "a boolean" if isinstance(key, bool) else "a number"
            raise loader.fail(key_node, f"the key {key_node.value!r} is read as {kind}: quote it")
        loader.at.append(key)
        if key in mapping:
            raise loader.fail(key_node, "appears twice")
        mapping[key] = loader.construct_object(value_node, deep=True)
        loader.at.pop()
        lines[key] = key_node.start_mark.line + 1
    return _LinedDict(mapping, lines, node.start_mark.line + 1)


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> list[Any]:
    items = []
    for index, child in enumerate(node.value):
        loader.at.append(index)
        items.append(loader.construct_object(child, deep=True))
        loader.at.pop()
    return _LinedList(items, [child.start_mark.line + 1 for child in node.value])


def _construct_number(loader: _LineLoader, node: yaml.ScalarNode) -> int | float:
    if len(node.value) > MAX_NUMBER_CHARS:
        raise loader.fail(
            node, f"a number of {len(node.value)} characters (at most {MAX_NUMBER_CHARS})"
        )
    if node.tag.endswith(":int"):
        return int(loader.construct_yaml_int(node))
    number = float(loader.construct_yaml_float(node))
    if not math.isfinite(number):
        raise loader.fail(node, f"must be a finite number, got {node.value}")
    return number


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
_LineLoader.add_constructor("tag:yaml.org,2002:int", _construct_number)
_LineLoader.add_constructor("tag:yaml.org,2002:float", _construct_number)


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


def parse_scenario(text: str, *, path: str = "<scenario>") -> Scenario:
    """A Scenario from YAML text; BadInput naming file, line and field on any problem."""
    if len(text) > MAX_SCENARIO_BYTES:
        raise BadInput(f"{path}:1: is {len(text):,} characters; {_TOO_BIG}")
    loader: _LineLoader | None = None
    try:
        loader = _LineLoader(text, path)
        document = loader.get_single_data()
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (e.g. NUL)
        line = text.count("\n", 0, exc.position) + 1
        raise BadInput(
            f"{path}:{line}: not valid YAML: the character {chr(exc.character)!r} is not allowed"
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = " ".join(str(exc.problem or exc).split())
        raise BadInput(f"{path}:{line}: not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}:1: not valid YAML: {' '.join(str(exc).split())}") from None
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(document, dict):
        raise BadInput(f"{path}:1: a scenario is a mapping of keys (name, sweep, load, ...)")
    try:
        return Scenario.model_validate(document)
    except ValidationError as exc:
        messages = explain(exc, path=path, line_of=partial(_line_of, document))
        raise BadInput("\n".join(messages)) from None


_TOO_BIG = f"a scenario is at most {MAX_SCENARIO_BYTES:,} bytes (MAX_SCENARIO_BYTES)"
_FILE_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


def read_scenario_text(path: str | Path) -> str:
    """A scenario file's text, read only if it is a regular file of sane size."""
    file = Path(path)
    try:
        # Non-blocking: opening a FIFO for reading would wait for a writer for ever.
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise BadInput(f"{file}: no such scenario file") from None
    except OSError as exc:
        raise BadInput(f"{file}: cannot read it: {exc.strerror}") from None
    try:
        info = os.fstat(fd)  # of what was opened, not of what the name points to now
        if not stat.S_ISREG(info.st_mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
            raise BadInput(f"{file}: is {kind}, not a scenario file")
        if info.st_size > MAX_SCENARIO_BYTES:
            raise BadInput(f"{file}: is {info.st_size:,} bytes; {_TOO_BIG}")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_SCENARIO_BYTES:  # bounded even if the file grows while read
            chunk = os.read(fd, MAX_SCENARIO_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_SCENARIO_BYTES:
            raise BadInput(f"{file}: is over {MAX_SCENARIO_BYTES:,} bytes; {_TOO_BIG}")
    except OSError as exc:
        raise BadInput(f"{file}: cannot read it: {exc.strerror}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise BadInput(
            f"{file}:{line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save it as UTF-8"
        ) from None


def load_scenario(path: str | Path) -> Scenario:
    return parse_scenario(read_scenario_text(path), path=str(path))


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
        raise BadInput(explain_target(exc, kind=kind, flags=TARGET_FLAGS[kind])) from None
    return scenario.model_copy(update={"target": target})


def json_schema() -> dict[str, Any]:
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "memsweep scenario"
    return schema


def write_json_schema(path: Path = SCHEMA_PATH) -> Path:
    path.write_text(json.dumps(json_schema(), indent=2) + "\n")
    return path


# --- quick tries: command-line overrides --------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|sec|m|min|h)?\s*$")
_DURATION_UNITS = {None: 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}


def parse_duration(text: str, *, option: str = "--duration") -> float:
    """Seconds from `20`, `20s`, `2m`, `1.5h`."""
    found = _DURATION.match(text)
    if not found:
        raise BadInput(
            f"{option} {shown_option(text)}: expected seconds (20 or 20s), minutes (2m) or "
            "hours (1h)"
        )
    return float(found[1]) * _DURATION_UNITS[found[2]]


def parse_memory_list(text: str, *, option: str = "--memory") -> list[int]:
    """MB sizes from `256,512` (spaces allowed)."""
    sizes = []
    for part in text.split(","):
        part = part.strip()
        if not re.fullmatch(r"\d{1,9}", part):
            shown = f"`{part}`" if part else "an empty item"
            raise BadInput(
                f"{option} {shown_option(text)}: {shown_option(shown)} is not a whole number "
                "of MB (give e.g. 256,512,1024)"
            )
        sizes.append(int(part))
    return sizes


def with_overrides(
    scenario: Scenario,
    *,
    memory: str | None = None,
    duration: str | None = None,
    users: int | None = None,
    rate: float | None = None,
    repeats: int | None = None,
) -> tuple[Scenario, list[str]]:
    """The scenario with `run`'s quick-try options applied, and notes on what they replaced.

    The changed document goes through the same models as a file, so an option's value meets
    the same bounds; an error names the option (`--memory 100: must be at least 128 MB`).
    --users makes the load one closed stage of that many users; --rate makes it an open load
    at that rate; either replaces the other model's load, and a note says so. --duration sets
    the load's length (a closed profile's stages and ramps scale to it).
    """
    if users is not None and rate is not None:  # the CLI's argparse refuses it first
        raise BadInput(
            "--users and --rate are both given: --users runs a closed load, --rate an open one"
        )
    data = scenario.model_dump(mode="json")
    given: dict[str, str] = {}  # option -> the value as typed, for messages
    notes: list[str] = []
    if memory is not None:
        sizes = parse_memory_list(memory)
        points = data["sweep"].get("points")
        if points is not None:
            # An explicit point list: --memory keeps the points at these sizes.
            kept = [point for point in points if point["memory_mb"] in sizes]
            if not kept:
                raise BadInput(
                    f"--memory {memory}: no point of sweep.points has that size (they have "
                    f"{', '.join(str(m) for m in scenario.sweep.memory_mb)} MB)"
                )
            data["sweep"]["points"], data["sweep"]["memory_mb"] = kept, None
        else:
            data["sweep"]["memory_mb"] = sizes
        given["--memory"] = memory
    if repeats is not None:
        data["sweep"]["repeats"] = repeats
        given["--repeats"] = str(repeats)
    load = data["load"]
    # The notes name the length the run will have: --duration's when given.
    seconds = parse_duration(duration) if duration is not None else None
    length = seconds if seconds is not None else scenario.load.duration_s
    if users is not None:
        given["--users"] = str(users)
        if isinstance(scenario.load, OpenLoad):
            notes.append(
                f"--users {users} replaces the scenario's open load ({scenario.load.rate_per_s:g} "
                f"req/s) with a closed load: {users} users without think time for "
                f"{length:g} s"
            )
            think: dict[str, Any] = {}
        else:
            think = load["think_time"]
            if len(scenario.load.stages) > 1 or scenario.load.stages[0].ramp_s:
                notes.append(
                    f"--users {users} replaces the scenario's {len(scenario.load.stages)} "
                    f"stage(s) with one: {users} users for {length:g} s, no ramp"
                )
        load = {
            "model": "closed",
            "stages": [{"users": users, "duration_s": length}],
            "think_time": think,
        }
    if rate is not None:
        given["--rate"] = f"{rate:g}"
        if isinstance(scenario.load, ClosedLoad):
            notes.append(
                f"--rate {rate:g} replaces the scenario's closed load (up to "
                f"{scenario.load.peak_users} users) with an open load: {rate:g} req/s for "
                f"{length:g} s, at most 100 in flight"
            )
            load = {"model": "open", "rate_per_s": rate, "duration_s": length}
        else:
            load = {**load, "rate_per_s": rate}
    if duration is not None and seconds is not None:
        given["--duration"] = duration
        if load["model"] == "open":
            load = {**load, "duration_s": seconds}
        else:
            total = sum(stage["duration_s"] for stage in load["stages"])
            scale = seconds / total if total and math.isfinite(seconds) else 0.0
            load = {
                **load,
                "stages": [
                    {
                        **stage,
                        "duration_s": stage["duration_s"] * scale or seconds,
                        "ramp_s": stage.get("ramp_s", 0) * scale,
                    }
                    for stage in load["stages"]
                ],
            }
    data["load"] = load
    if not given:
        return scenario, notes
    try:
        return Scenario.model_validate(data), notes
    except ValidationError as exc:
        raise BadInput(explain_override(exc, given)) from None
