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
import math
import os
import re
import stat
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
from pydantic.functional_validators import AfterValidator

from runner.errors import BadInput
from runner.redaction import REDACTED, redact_headers, secret_name

# Lambda's memory range, MB.
MIN_MEMORY_MB = 128
MAX_MEMORY_MB = 10_240
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "scenarios" / "scenario.schema.json"

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
    api_key: str | None = Field(None, description="prefer api_key_env or api_key_file")
    api_key_env: str | None = Field(None, description="read the API key from this variable")
    api_key_file: str | None = Field(None, description="read the API key from this file")


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


# A user thinking for an hour between requests sends nothing in any step we can measure.
MAX_THINK_TIME_S = 3600


class ThinkTime(_Model):
    min_s: float = Field(0.0, ge=0, le=MAX_THINK_TIME_S)
    max_s: float = Field(0.0, ge=0, le=MAX_THINK_TIME_S)

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
    name: Name
    weight: float = Field(1.0, gt=0, le=MAX_WEIGHT)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: str | None = Field(
        None,
        pattern=r"^(/|https?://)",
        description="default: the target's route; /path on the target's host, or a URL",
    )
    body: Any = Field(None, description="JSON body; strings may hold templates")
    headers: dict[str, str] = Field(default_factory=dict)
    expect_status: list[HttpStatus] = Field([200], min_length=1)

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
    name: Name
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
        field = _field_path(tuple(self.at))
        return BadInput(_one_line(f"{self.name}:{mark.line + 1}: {field}: {message}"))

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


_TAGS = {"target": {"local", "aws", "url"}, "load": {"closed", "open"}}


def _without_tags(location: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Drop a discriminated union's tag, which pydantic puts in the path after its key."""
    if len(location) > 1 and location[1] in _TAGS.get(str(location[0]), ()):
        return (location[0], *location[2:])
    return location


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]{1,60}$|^\(a key\)$")


def _field_path(location: tuple[int | str, ...]) -> str:
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.match(str(part)):
            text += f".{part}" if text else str(part)
        else:  # a key with dots, spaces or newlines is shown quoted, so the line stays one
            text += f"[{_shown(str(part))}]"
    if len(text) > 80:  # 64 levels of [0] say nothing more than their start does
        text = text[:77] + "..."
    return text or "(top level)"


# One problem, one line: a message never spans lines nor fills the screen.
MAX_MESSAGE_CHARS = 400


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def _without_secrets(location: tuple[Any, ...], value: Any) -> Any:
    """An offending value as it may be printed: a key or a secret header is not echoed."""
    if any(secret_name(part) for part in location):
        return REDACTED
    if location and location[-1] == "headers" and isinstance(value, dict):
        return redact_headers(value)
    return value


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
                _one_line(
                    f"{path}:{_line_of(document, field)}: {blamed['field']}: {blamed['message']}"
                )
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
            else f", got {_shown(_without_secrets(clean, item['input']))}"
        )
        if item["type"] == "extra_forbidden":
            got = ""
        out.append(
            _one_line(f"{path}:{_line_of(document, clean)}: {_field_path(clean)}: {message}{got}")
        )
    return out


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
        messages = _messages(path, document, exc)
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
