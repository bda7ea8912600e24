"""The local stack's control API: its paths, its token header and the documents it answers.

Both ends import this module and nothing else of each other: the stack
(runner/emulator/_server.py) serves these paths and builds these documents; the runner's client
(runner/targets/_local_client.py) sends to them and parses each answer once, strictly, so a
missing or mistyped key is one clear error where it arrives, not a silent default later.
Standard library only (plus runner.errors), so either side imports it cheaply.
"""

from __future__ import annotations

import ast
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypedDict, cast

from runner.errors import SetupError

# The header carrying the token the stack printed on its ready line (compared in constant time).
TOKEN_HEADER = "x-memsweep-control"

# The local stack's CFS period: the unit of /delivery's throttled-period counters. Lambda's
# throttling appears to work in 20 ms steps; a 100 ms period flattened the 128/1024 MB ratio to
# 1.5-1.7 instead of the tutorial's 2.97 (docs/ARCHITECTURE.md, 4.1).
CFS_PERIOD_US = 20_000

# GET: read-only.
STATUS_PATH = "/status"  # → StackStatus
DELIVERY_PATH = "/delivery"  # → Delivery (cumulative CPU delivery counters)
# POST with a JSON body; each answers the StackStatus after the action.
MEMORY_PATH = "/memory"  # {"memory_mb": int}: drain, replace every sandbox at this size
CALIBRATE_PATH = "/calibrate"  # {"memory_mb": [int, …]}: measure these sizes' CPU share now
RESET_TABLE_PATH = "/reset-table"  # {}: drop and re-create the table in the stack's dynalite
# {"handler": "module.function"}: drain, replace every sandbox running this handler (checked
# first with handler_problem: an unknown one is refused, nothing is retired)
HANDLER_PATH = "/handler"
# An error shows at most this much of a bad value: one line, whatever arrived.
SHOWN_CHARS = 60


class StackStatus(TypedDict):
    """What `GET /status` and every POST answer: the function's size, its CPU fidelity, its pool."""

    memory_mb: int
    handler: str  # module.function the sandboxes run (POST /handler changes it)
    cgroup: str  # the limiter: cgroup-v1, cgroup-v2 or cpu-time-pacing
    fidelity: str  # "full" or "degraded" (no enforced quota, or a refused calibration)
    calibration_refused: str  # why the host could not show the quota delivers the share; "" if not
    cpu_share_nominal: float  # memory / 1769, capped at one CPU
    cpu_share_measured: float | None  # relative to an unthrottled probe; None: not calibrated
    cpu_quota_correction: float  # the quota multiplier calibration applied (1.0: none)
    sandboxes: int
    idle_sandboxes: int
    sandbox_pids: list[int]
    cold_starts: int
    invocations: int


class Delivery(TypedDict):
    """Was the modelled CPU share delivered? `GET /delivery`; diff two to get a window's
    (runner/emulator/_lambda_pool.py measures it, runner/analysis/_trust.py judges it).

    Counters are cumulative ints over every sandbox the pool has run, each counted from the
    moment its quota applied (init runs unthrottled and is left out). In a window a busy
    sandbox got Δcpu_ns / (Δnr_periods × 20 ms) of a CPU, to compare with quota_share.
    """

    at: float  # time.time() of the snapshot
    memory_mb: int
    nominal_share: float  # memory / 1769, capped at one CPU
    quota_share: float  # what the quota is set to now (nominal × correction), capped at one CPU
    mode: str  # the limiter: cgroup-v1, cgroup-v2 or cpu-time-pacing
    cpu_ns: int  # CPU time used, summed over threads (schedstat field 1)
    run_delay_ns: int  # runnable but not running (schedstat field 2), throttling included
    throttled_ns: int  # the sandboxes' groups throttled (cpu.stat)
    nr_periods: int  # CFS periods in which a sandbox was runnable
    nr_throttled: int  # of those, periods that ran out of quota
    sandboxes_counted: int  # retired sandboxes read at retirement + live ones read now
    samples_lost: int  # sandboxes that died before a final read (last snapshot's figures kept)
    sandboxes_started: int  # sandboxes the pool has started (cold starts, init or not)
    start_failures: int  # sandboxes the host could not start (spawn refused: OSError)
    last_start_failure: str  # the last one's error, "" if none


# Delivery's cumulative counters: a window's figure is the difference of two snapshots.
DeliveryCounter = Literal["cpu_ns", "run_delay_ns", "throttled_ns", "nr_periods", "nr_throttled"]
DELIVERY_COUNTERS: tuple[DeliveryCounter, ...] = typing.get_args(DeliveryCounter)


class UsagePlan(TypedDict):
    """The usage plan's throttle, as the stack resolved it from serverless.yml."""

    rate: float
    burst: float


class ApiUrls(TypedDict):
    """The POST URL of each API type the stack serves (two listeners: on AWS, two hosts)."""

    rest: str  # REST API, payload format 1.0: http://HOST:PORT/STAGE/DynamoDBManager
    http: str  # HTTP API, payload format 2.0, stage $default: http://HOST:PORT2/DynamoDBManager


class StackReady(StackStatus):
    """The JSON line `runner local --json` prints once it serves: where it is, and its status."""

    event: str  # "ready"
    url: str  # the REST API's POST URL (what a memory-only scenario measures): urls["rest"]
    urls: ApiUrls
    api_key: str | None  # None: the route needs no key
    control_url: str  # http://127.0.0.1:PORT, the control API's base
    control_token: str  # sent as TOKEN_HEADER
    log: str  # the Lambda log (REPORT lines) the runner reads
    function: str
    code_dir: str  # where handler modules are looked up (absolute)
    architecture: str  # prices depend on it; the sandboxes run on this machine's CPU
    integration: str  # "lambda-proxy" or "lambda"
    table: str
    dynamodb_endpoint: str
    pid: int
    dynalite_pid: int | None  # None: the stack uses another DynamoDB endpoint
    usage_plan: UsagePlan | None  # None: no throttle (the runner paces its seeding to it)


def handler_problem(handler: str, code_dir: Path) -> str | None:
    """None if `handler` names a function defined at the top of a module in `code_dir`, else
    one line saying what is wrong. Read, never imported: nothing of the module runs here.

    The name is read as awslambdaric reads it: split at the last dot, "/" in the module part
    standing for a package level (docs/ARCHITECTURE.md, section 4.3).
    """
    module, dot, function = handler.rpartition(".")
    parts = module.replace("/", ".").split(".")
    if not dot or not function.isidentifier() or not all(p.isidentifier() for p in parts):
        return f"handler {handler!r} is not module.function (e.g. handler.lambda_handler)"
    base = code_dir.joinpath(*parts)
    source = next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)
    if source is None:
        return f"handler {handler}: no module {module} in {code_dir} (looked for {base}.py)"
    try:
        tree = ast.parse(source.read_bytes(), filename=str(source))
    except (SyntaxError, ValueError) as exc:
        return f"handler {handler}: {source} does not parse: {exc}"
    if function not in _top_level_names(tree):
        return f"handler {handler}: {source} defines no {function} at module level"
    return None


def _top_level_names(tree: ast.Module) -> set[str]:
    """Names a module binds at its top level: functions, classes, assignments, imports, also
    inside a top-level if/try/with (e.g. a fallback import)."""
    names: set[str] = set()
    nodes = list(tree.body)
    while nodes:
        node = nodes.pop()
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            nodes += [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", [])]
            nodes += [n for h in getattr(node, "handlers", []) for n in h.body]
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def parse_status(document: object, *, source: str) -> StackStatus:
    """`document` as a StackStatus; SetupError naming `source` and the key if it is not one."""
    return cast(StackStatus, _typed(document, StackStatus, source))


def parse_delivery(document: object, *, source: str) -> Delivery:
    """`document` as a Delivery; SetupError naming `source` and the key if it is not one (a
    renamed counter must never read as zero CPU: it decides whether a step is degraded)."""
    return cast(Delivery, _typed(document, Delivery, source))


def parse_ready(document: object, *, source: str) -> StackReady:
    """`document` as a StackReady; SetupError naming `source` and the key if it is not one."""
    return cast(StackReady, _typed(document, StackReady, source))


def _typed(document: object, shape: Any, where: str) -> dict[str, Any]:
    """The shape's keys from `document`, each checked against its declared type (JSON numbers
    declared float become float); keys the shape does not declare are left out."""
    if not isinstance(document, dict):
        raise SetupError(f"{where}: expected a JSON object, got {_kind(document)}")
    typed: dict[str, Any] = {}
    for key, hint in typing.get_type_hints(shape).items():
        if key not in document:
            raise SetupError(f"{where}: {key} is missing")
        value = document[key]
        if not _conforms(value, hint):
            raise SetupError(f"{where}: {key} is {_shown(value)}, expected {_describe(hint)}")
        typed[key] = _value(value, hint, f"{where}: {key}")
    return typed


def _value(value: Any, hint: Any, where: str) -> Any:
    """A conforming value as its declared type: the union arm it matches, float for a JSON
    number declared float, a nested shape checked key by key."""
    for arm in _arms(hint):
        if _conforms(value, arm):
            return _value(value, arm, where)
    if hint is float:
        return float(value)
    if typing.is_typeddict(hint):
        return _typed(value, hint, where)
    return value


def _arms(hint: Any) -> tuple[Any, ...]:
    """A union's members (`int | None` → (int, NoneType)); () for anything else."""
    return typing.get_args(hint) if isinstance(hint, types.UnionType) else ()


def _conforms(value: object, hint: Any) -> bool:
    if _arms(hint):
        return any(_conforms(value, arm) for arm in _arms(hint))
    if hint is type(None):
        return value is None
    if isinstance(value, bool):  # JSON true/false is no number
        return hint is bool
    if hint is float:
        return isinstance(value, (int, float))
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_conforms(v, item) for v in value)
    if typing.is_typeddict(hint):
        return isinstance(value, dict)  # its keys are checked by the caller's recursion
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    if _arms(hint):
        return " or ".join(_describe(arm) for arm in _arms(hint))
    if hint is type(None):
        return "null"
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return "a list of " + {int: "integers", float: "numbers", str: "strings"}.get(item, "?")
    if typing.is_typeddict(hint):
        return "an object"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        hint, str(hint)
    )


def _shown(value: object) -> str:
    """The value as JSON wrote it, cut to one short line, and what kind of value that is."""
    text = json.dumps(value, default=repr)
    if len(text) > SHOWN_CHARS:
        text = text[: SHOWN_CHARS - 1] + "…"
    return text if value is None else f"{text} ({_kind(value)})"


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


__all__ = [
    "CALIBRATE_PATH",
    "DELIVERY_COUNTERS",
    "DELIVERY_PATH",
    "HANDLER_PATH",
    "MEMORY_PATH",
    "RESET_TABLE_PATH",
    "STATUS_PATH",
    "TOKEN_HEADER",
    "ApiUrls",
    "Delivery",
    "DeliveryCounter",
    "StackReady",
    "StackStatus",
    "UsagePlan",
    "handler_problem",
    "parse_delivery",
    "parse_ready",
    "parse_status",
]
