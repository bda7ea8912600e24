"""The scenario format's models: every section, key, bound and default (the only place a
default lives).

A scenario says what to sweep (memory sizes, repeats, order), how to load the target
(closed model: stages of users with think time, like the tutorial's Postman run; open
model: an arrival rate with a cap on requests in flight), what to send (a weighted mix of
requests whose JSON bodies may use templates), what to seed, and the thresholds a setting
must meet. `python -m runner validate FILE` checks one; `scenarios/scenario.schema.json` is
generated from these models for editors. _reading reads the YAML (with each key's line),
_errors says what the models refuse in plain words, one line each.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)
from pydantic.functional_validators import AfterValidator

from runner.lambda_facts import (
    API_NAMES,
    MAX_MEMORY_MB,
    MIN_MEMORY_MB,
    ApiType,
    Architecture,
)
from runner.stack import PROJECT_ROOT

SCHEMA_PATH = PROJECT_ROOT / "scenarios" / "scenario.schema.json"

# Templates allowed inside request bodies and seed items (runner/load/locustfile.py renders them;
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
    until: Literal["fixed", "confident"] = Field(
        "fixed",
        description="fixed: each step runs the load profile as written; confident: settings are "
        "measured in interleaved rounds at the profile's peak load, each until nothing the "
        "verdict needs about it is unsettled (min_s to max_s measured per setting)",
        examples=["confident"],
    )
    round_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="until: confident: measured seconds per setting per round (warm-up added)",
        examples=[10],
    )
    min_s: float = Field(
        10.0,
        ge=0,
        le=86_400,
        description="until: confident: measured seconds per setting before it may stop",
        examples=[10],
    )
    max_s: float = Field(
        120.0,
        gt=0,
        le=86_400,
        description="until: confident: measured seconds per setting at most (then the verdict "
        "says what is still unsettled)",
        examples=[120],
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

    @model_validator(mode="after")
    def _confident_bounds(self) -> Sweep:
        if self.until == "confident":
            if self.repeats != 1:
                raise ValueError(
                    "sweep.repeats: until: confident measures in rounds until the answer is "
                    "known; bound it with min_s and max_s instead of repeats"
                )
            if self.min_s > self.max_s:
                raise ValueError(
                    f"sweep.min_s: {self.min_s:g} s is more than max_s ({self.max_s:g} s)"
                )
        return self

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


def step_load(scenario: Scenario) -> ClosedLoad | OpenLoad:
    """The load of one step: the profile as written (until: fixed), or one round (until:
    confident): the profile's peak users (or its rate) for the warm-up and round_s."""
    load, sweep = scenario.load, scenario.sweep
    if sweep.until == "fixed":
        return load
    length = sweep.warmup_s + sweep.round_s
    if isinstance(load, OpenLoad):
        return load.model_copy(update={"duration_s": length})
    peak = Stage(users=load.peak_users, duration_s=length)
    return load.model_copy(update={"stages": [peak]})


class PointRecord:
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
    # The same percentiles of the function's own REPORT Duration (cold invocations included,
    # their Init Duration not): immune to the network between the load and the region, blind
    # to API Gateway's overhead and to init (README, "Client or function latency").
    duration_p50_ms: float | None = Field(
        None,
        gt=0,
        description="median of the function's own Duration (REPORT lines) a size must stay "
        "under; not the network's, not API Gateway's, not init",
        examples=[20],
    )
    duration_p95_ms: float | None = Field(
        None,
        gt=0,
        description="95th percentile of the function's own Duration a size must stay under "
        "(use when the load comes from far from the region)",
        examples=[50],
    )
    duration_p99_ms: float | None = Field(
        None,
        gt=0,
        description="99th percentile of the function's own Duration a size must stay under",
        examples=[100],
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


class Decision(_Model):
    """How settings are told apart: when two costs are "the same", and when one p95 is
    clearly lower than another."""

    cost_tolerance_pct: float = Field(
        0.5,
        ge=0,
        le=100,
        description="two settings cost the same when their difference per 1M requests lies "
        "wholly within this percentage of the cheaper bill (or cannot be told from zero); "
        "among those, the clearly faster one is the pick",
        examples=[1.0],
    )
    latency_tolerance_pct: float = Field(
        10.0,
        ge=0,
        le=100,
        description="among settings that cost the same, a p95 is clearly higher only when the "
        "95 % interval of the difference lies wholly above this percentage of the lower p95 "
        "(or latency_tolerance_ms, whichever is larger); within it, settings are as fast and "
        "the smallest memory is the pick",
        examples=[5.0],
    )
    latency_tolerance_ms: float = Field(
        1.0,
        ge=0,
        le=10_000,
        description="the smallest p95 difference that can make one setting clearly faster, in "
        "ms (a floor under latency_tolerance_pct for p95s of a few ms)",
        examples=[2.0],
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
    # Pods on a cluster start in any order: a worker may start a minute after its master.
    wait_s: float = Field(
        120.0,
        gt=0,
        le=3600,
        description="how long the master waits for every worker to join (--worker-wait), then "
        "fails naming how many did",
        examples=[300],
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
    decision: Decision = Field(
        Decision(),
        description="how the pick is decided: the cost margin within which settings tie",
        examples=[{"cost_tolerance_pct": 1.0}],
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


def json_schema() -> dict[str, Any]:
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "memsweep scenario"
    return schema


def write_json_schema(path: Path = SCHEMA_PATH) -> Path:
    path.write_text(json.dumps(json_schema(), indent=2) + "\n")
    return path
