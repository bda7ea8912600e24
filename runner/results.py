"""results.json: the one schema of a run's results, its writer and its reader.

Versioned: a reader refuses a file from another major version with a clear message. Written
atomically (temp file + rename) after every step, so an interrupted run still leaves a valid
partial file. Latency histograms are HDR encodings (microseconds) so the report can compute
any percentile and compare settings without raw samples.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from runner import hdr
from runner.errors import BadInput, MemsweepError, one_line
from runner.lambda_facts import MAX_MEMORY_MB, MIN_MEMORY_MB, ApiType, Architecture
from runner.redaction import redact_scenario, redact_scenario_text, redact_url
from runner.scenario import HandlerName, Point, Scenario, point_label

# 2: one measured window for every figure (invocations outside it are counted apart), the
# step's trust record (delivered CPU, load generator), dropped load, and the run's verdict.
# 3: typed records where 2 kept free text or loose dicts: the scenario is a Scenario, the host
# a HostRecord, problems are Problem(kind, detail). A version 2 file is read by moving its
# text problems and host over (read_results); its figures are the same.
# 4: cost with an interval: each window's warm billed duration per second
# (Invocations.warm_billed_by_second), and the verdict's tie rule (decided_by, equivalent,
# costs, cost_differences) and pick share. A version 3 file reads as it is: the new fields
# are empty, and its verdict is re-derived when a report is rendered.
# Version 4 files may also carry each window's function durations (Invocations.
# duration_histogram, duration_by_second): optional, so a file without them reads, and a
# duration threshold then says it has nothing to judge.
SCHEMA_VERSION = 4


# --- bounds on what a results file may hold --------------------------------------------------
# Checked before decoding, so a hostile file costs a bounded read and one pass, never a
# RecursionError, a float overflow or a decompression bomb.

# A long sweep's file: steps x (histograms of up to ~290 KB + a timeline of ~100 bytes a
# second); 256 MiB is far above any sweep the scenario limits allow to finish in a day.
MAX_RESULTS_BYTES = 256 * 1024 * 1024
# Results nest ~6 deep; the scenario echo holds request bodies, which DynamoDB caps at 32
# levels of nesting (DynamoDB developer guide, "Quotas": nested attribute depth 32). Python's
# JSON decoder recurses once per level, with a default recursion limit of 1000.
MAX_JSON_DEPTH = 200
# Every number memsweep writes fits a float or a 64-bit count: at most 20 digits in a row.
MAX_NUMBER_DIGITS = 30
# Epoch seconds the report can print as a date (datetime stops at the end of year 9999).
MAX_EPOCH_S = 253_402_300_799.0
# A count no run reaches (2**53: the largest integer a float, and JavaScript, hold exactly).
MAX_COUNT = 2**53


def _check_histogram(encoded: str | None) -> str | None:
    """An HDR encoding at the workers' settings that decodes, or ValueError saying why not."""
    if encoded is None:
        return None
    total = hdr.check(encoded)
    if not 0 <= total <= MAX_COUNT:
        raise ValueError(f"HDR histogram counts {total} values")
    return encoded


Histogram = Annotated[str | None, AfterValidator(_check_histogram)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
# MB, in Lambda's range: a step's point is rebuilt from it (and a scenario refuses others).
Memory = Annotated[int, Field(ge=MIN_MEMORY_MB, le=MAX_MEMORY_MB)]
Epoch = Annotated[float, Field(ge=0, le=MAX_EPOCH_S)]
Millis = Annotated[float, Field(ge=0)]


class _Model(BaseModel):
    # NaN and infinities are no measurement: refused when a model is built (a bug in the
    # writer) and when a file is read (a damaged or forged one).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Latency(_Model):
    """Milliseconds, from the full-resolution histogram."""

    count: Count
    mean: Millis | None = None
    min: Millis | None = None
    p50: Millis | None = None
    p90: Millis | None = None
    p95: Millis | None = None
    p99: Millis | None = None
    p999: Millis | None = None
    max: Millis | None = None


class RequestStats(_Model):
    name: str
    requests: Count
    failures: Count
    latency: Latency
    histogram: Histogram = None  # HDR encoding, µs


class ErrorCount(_Model):
    request: str
    kind: str  # e.g. "HTTP 502", "ConnectionRefusedError: ..."
    count: Count


class Second(_Model):
    """One second of the measured window (t: seconds since the window started)."""

    t: int
    requests: Count
    failures: Count
    mean_ms: Millis
    p95_ms: Millis | None = None
    users: Count | None = None


class BilledSecond(_Model):
    """Warm invocations whose request arrived in one second of the window, and their billed
    duration: the batches cost's interval is computed from (t: seconds since the window
    started)."""

    t: int = Field(ge=0)
    count: Count
    billed_ms: Count


class DurationSecond(_Model):
    """Invocations (warm and cold) whose request arrived in one second of the window, and
    their mean REPORT Duration: the batches the function-duration intervals' design effect is
    measured from (t: seconds since the window started)."""

    t: int = Field(ge=0)
    count: Count
    mean_ms: Millis


# An Invocations' source when the target could not read the function's logs at all.
LOGS_UNAVAILABLE = "CloudWatch Logs unavailable"


class Invocations(_Model):
    """What the function's own logs (REPORT lines) say about the step's window."""

    count: Count = 0
    cold_starts: Count = 0
    init_ms_mean: Millis | None = None
    init_ms_max: Millis | None = None
    duration_ms_mean: Millis | None = None
    duration_ms_p50: Millis | None = None
    duration_ms_p95: Millis | None = None
    duration_ms_p99: Millis | None = None
    # Split by cold start (Duration excludes Init Duration on the cold ones).
    warm_duration_ms_mean: Millis | None = None
    warm_duration_ms_p95: Millis | None = None
    cold_duration_ms_mean: Millis | None = None
    billed_ms_total: Count = 0
    billed_ms_mean: Millis | None = None
    warm_billed_ms_total: Count = 0
    cold_billed_ms_total: Count = 0  # init included: Lambda bills INIT (since 1 August 2025)
    max_memory_used_mb: Count | None = None
    read_units: float = Field(0.0, ge=0)
    write_units: float = Field(0.0, ge=0)
    # Invocations whose handler logged its consumed capacity (handler.py does; the tutorial's
    # original does not): the units above are theirs. None: a schema 2 file (all of count).
    capacity_records: Count | None = None
    # Handler records that answered 5xx or 429 (the handler's 429 is DynamoDB throttling), of
    # them those DynamoDB caused, and the most common error: which layer failed a step.
    failed_calls: Count = 0
    dynamodb_failures: Count = 0
    top_error: str = ""
    source: str = ""  # "local log", "CloudWatch Logs", or why there is none
    # The measured window's warm invocations per second of arrival (empty outside the window,
    # and in a schema 3 file): cost's interval rests on them.
    warm_billed_by_second: list[BilledSecond] = Field(default_factory=list)
    # The measured window's REPORT Duration, every invocation (cold ones too: their Duration
    # is the handler's own time, their Init Duration is not in it), as an HDR histogram (µs)
    # and per second of arrival: what the function-duration percentiles' intervals and the
    # thresholds.duration_* verdicts rest on. None / empty outside the window and in a file
    # written before they were kept: such a setting has no function-duration interval.
    duration_histogram: Histogram = None
    duration_by_second: list[DurationSecond] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cold_within_count(self) -> Invocations:
        # The warm invocations (count less the cold ones) divide the warm billed time: more
        # cold starts than invocations is a damaged file, and would read as a negative bill.
        if self.cold_starts > self.count:
            raise ValueError(f"cold_starts ({self.cold_starts}) exceeds count ({self.count})")
        return self

    @property
    def logs_unread(self) -> bool:
        """The function's logs could not be read (not: read, and no invocation in them)."""
        return self.source.startswith(LOGS_UNAVAILABLE)


class OutsideWindow(_Model):
    """Invocations of a step that are not in its measured window, by when their request
    arrived: before the load (seeding, the previous step's tail), in the warm-up, or after
    the window closed (in flight at its end); unattributed ones had no arrival time."""

    before: Invocations = Invocations()
    warmup: Invocations = Invocations()
    after_window: Count = 0
    unattributed: Count = 0


class CpuDelivery(_Model):
    """What the sandboxes' CPU accounting says about the window (local stack only)."""

    nominal_share: float  # memory / 1769 of one CPU, what Lambda gives
    quota_share: float  # what the CFS quota was set to (calibration correction applied)
    cpu_s: float  # CPU time the sandboxes got in the window
    run_delay_s: float  # runnable but waiting for a CPU (run-queue wait, from schedstat)
    throttled_s: float  # of that, held back by the quota (cgroup cpu.stat)
    host_wait_s: float  # waiting for a CPU for reasons other than the quota: the host
    # host wait / (cpu + run delay): share of the time they were runnable that the host
    # (not their quota) kept them off a CPU
    host_wait_share: float | None = None
    # cpu / (cpu + host wait): of the CPU they were ready to use within their quota, the
    # share they got (comparable across sizes: the quota's own withholding is taken out)
    delivered: float | None = None
    # CPU per 20 ms period, bounded: over every active period (a lower bound of what a
    # throttled period got: unthrottled periods ran less) and over the throttled ones only
    # (an upper bound: the unthrottled periods' CPU is counted in)
    per_period_share: float | None = None
    per_throttled_period_share: float | None = None
    throttled_periods: float | None = None  # share of active periods that hit the quota
    sandboxes: int = 0
    sandboxes_started: int | None = None  # in the window (None: a file from before it was kept)
    start_failures: int = 0  # sandboxes the host could not start in the window
    last_start_failure: str = ""  # the last one's error


class Trust(_Model):
    """Whether the step's figures may be believed, measured while its load ran."""

    degraded: bool = False
    causes: list[str] = Field(default_factory=list)  # each with its measured figure
    cpu: CpuDelivery | None = None
    generator_cpu_max: float | None = None  # % of one core, busiest Locust worker
    generator_cpu_mean: float | None = None
    steal: float | None = None  # hypervisor steal, share of the host's CPU time
    pressure: float | None = None  # /proc/pressure/cpu "some": share of wall time
    host_busy: float | None = None  # the host's CPUs busy (not idle, not iowait): share
    checked: list[str] = Field(default_factory=list)  # the rules applied, in words


class WorkerSeen(_Model):
    id: str
    requests: Count = 0
    lost: bool = False
    lost_at: Epoch | None = None  # when the master noticed
    detail: str = ""


class Fidelity(_Model):
    mode: str  # cgroup-v1, cgroup-v2, cpu-time-pacing, aws, none
    level: Literal["full", "degraded", "real", "none"]
    cpu_share_nominal: float | None = None
    cpu_share_measured: float | None = None
    cpu_quota_correction: float | None = None
    configured_memory_mb: Memory | None = None  # read back from the target after setting it
    calibration_refused: str = ""  # why the CPU calibration could not be trusted, if so


class WindowMetrics(_Model):
    """What CloudWatch's metrics say about a step's window (aws target): which layer throttled.

    Lambda and API Gateway publish one-minute figures a minute or more after the fact, so the
    figures cover the whole minutes around the window ([start, end), `period_s` apart) and are
    read only once its last minute is published; until then (or when CloudWatch refused the
    call) every figure is None and `source` says why: never zeros that would read as "no
    throttles". Sums over the minutes, ConcurrentExecutions their maximum.
    """

    source: str = ""  # "CloudWatch GetMetricData", or why there are no figures
    published: bool = False  # the window's last minute was in CloudWatch when it was read
    # Not published yet when the step read it (each step reads once, without waiting): the run
    # reads it again after its last step (False: published, or refused: not worth a retry)
    pending: bool = False
    start: Epoch | None = None  # the minutes read
    end: Epoch | None = None
    period_s: int = Field(60, gt=0)
    polls: Count = 0  # GetMetricData calls made waiting for the last minute
    api: ApiType | None = None  # whose API Gateway metrics: the step's API type
    # AWS/Lambda, dimension FunctionName
    lambda_invocations: Count | None = None
    lambda_errors: Count | None = None
    lambda_throttles: Count | None = None
    concurrent_executions_max: Count | None = None
    # the concurrency that throttles the function (Target.concurrency_limit) and whose it is,
    # or why it could not be read
    concurrency_limit: Count | None = None
    concurrency_limit_source: str = ""
    # AWS/ApiGateway: REST 4XXError/5XXError/Count (ApiName, Stage), HTTP 4xx/5xx/Count
    # (ApiId, Stage)
    api_requests: Count | None = None
    api_4xx: Count | None = None
    api_5xx: Count | None = None
    # AWS/DynamoDB, dimension TableName
    dynamodb_read_throttles: Count | None = None
    dynamodb_write_throttles: Count | None = None


ProblemKind = Literal[
    # a step's (runner/analysis/_measure.py)
    "worker lost",
    "target down",
    "target failed",
    "throttled",  # a layer's throttle failed its requests (CloudWatch metrics): not memory
    "no requests",
    "interrupted",
    # the run's (runner/sweep.py)
    "stopped",  # a known failure ended the run (its one-line message is the detail)
    "internal error",  # a bug ended the run
    "not restored",  # the target's original configuration could not be put back
    "workers lost",  # the run's lost workers, named when the verdict is exit 3
    "after the run",  # the run broke after its last step (e.g. the report)
    "recorded",  # read from a schema 2 file, which kept only the text
]


class Problem(_Model):
    """Why a step is not valid, or what went wrong with the run: a kind to decide on (the
    sweep stops on some, the terminal groups by it), a detail to show."""

    kind: ProblemKind
    detail: str

    def __str__(self) -> str:
        return self.detail


def details(problems: list[Problem]) -> list[str]:
    return [problem.detail for problem in problems]


class HostRecord(_Model):
    """The machine that ran the master (comparisons warn when two runs' differ)."""

    hostname: str
    platform: str = ""
    python: str = ""
    cpus: int | None = None


class Step(_Model):
    index: int
    memory_mb: Memory
    # The axes beside memory this step set; None: the scenario does not sweep it
    # (the target's own API, architecture and handler, as in a memory-only sweep).
    api: ApiType | None = None
    architecture: Architecture | None = None
    handler: HandlerName | None = None
    repeat: int
    started_at: Epoch  # load started
    # From the previous step's load end to this one's load start (memory change, settle,
    # seeding, workers rejoining): what the sweep spends not measuring.
    overhead_s: float | None = None
    window_start: Epoch  # the measured window (after warm-up)
    window_end: Epoch
    requests: Count
    failures: Count
    rps: float = Field(ge=0)
    dropped_arrivals: Count = 0  # open model: arrivals in the window not sent (max_in_flight)
    offered: Count | None = None  # open model: arrivals in the window, sent or dropped
    latency: Latency
    histogram: Histogram = None  # HDR encoding, µs
    per_request: list[RequestStats] = Field(default_factory=list)
    errors: list[ErrorCount] = Field(default_factory=list)
    timeline: list[Second] = Field(default_factory=list)
    invocations: Invocations = Invocations()  # only those whose request arrived in the window
    outside: OutsideWindow = OutsideWindow()
    trust: Trust = Trust()
    workers: list[WorkerSeen] = Field(default_factory=list)
    fidelity: Fidelity | None = None
    # CloudWatch's metrics for the window's minutes (aws target); None: the target has none
    # (local, url) or a file written before they were read
    metrics: WindowMetrics | None = None
    valid: bool = True
    problems: list[Problem] = Field(default_factory=list)
    locust_files: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _counts_agree(self) -> Step:
        if self.failures > self.requests:
            raise ValueError(f"failures ({self.failures}) exceeds requests ({self.requests})")
        # offered counts the sent and the dropped arrivals: more dropped than offered is a
        # damaged file, and a rate read from it would be over 100 %.
        if self.offered is not None and self.dropped_arrivals > self.offered:
            raise ValueError(
                f"dropped_arrivals ({self.dropped_arrivals}) exceeds offered ({self.offered})"
            )
        return self

    @property
    def point(self) -> Point:
        return Point(
            memory_mb=self.memory_mb,
            api=self.api,
            architecture=self.architecture,
            handler=self.handler,
        )

    @property
    def label(self) -> str:
        return point_label(self.point)


class TargetInfo(_Model):
    kind: str
    url: str
    function: str | None = None
    architecture: str | None = None  # x86_64 or arm64 (prices differ); None: x86_64 assumed
    handler: str | None = None  # module.function the target ran at the start; None: unknown
    description: str = ""
    original_memory_mb: Memory | None = None
    restored: bool | None = None

    @field_validator("url")
    @classmethod
    def _url_without_credentials(cls, value: str) -> str:
        return redact_url(value)


class DegradedStep(_Model):
    step: int
    memory_mb: Memory
    cause: str
    label: str = ""  # the step's point, when the sweep moves more than memory

    @property
    def shown(self) -> str:
        return self.label or f"{self.memory_mb} MB"


class Confidence(_Model):
    """How sure the pick is, from resamples of the measured windows."""

    level: Literal["sure", "likely", "too close to call", "not enough data", "by cost only", "none"]
    statement: str
    # Share of resamples in which the pick met every latency threshold.
    meets_share: float | None = None
    too_close: list[str] = Field(default_factory=list)  # "between 256 MB and 512 MB"
    repeats_needed: int | None = None  # schema 3: repeats to separate the closest call
    # Share of joint resamples (every setting's figures together) the rule picks the pick in,
    # and the setting it picks most often instead.
    pick_share: float | None = None
    runner_up: str | None = None
    seconds_needed: float | None = None  # measured per setting to separate them, at this noise


class CostInterval(_Model):
    """Cost per 1M requests (US dollars, steady state) and its 95 % interval (None: none)."""

    value: float = Field(ge=0)
    low: float | None = None
    high: float | None = None


class CostPair(_Model):
    """b - a in dollars per 1M requests with its 95 % interval, and what the rule made of it."""

    a: str
    b: str
    value: float
    low: float
    high: float
    margin: float = Field(ge=0)
    relation: Literal["same", "different", "undetermined"]


class RecommendedPoint(_Model):
    """The pick on every axis: what to deploy. An axis the sweep did not move holds the
    target's value (the REST API; its architecture; its handler, null when unknown)."""

    memory_mb: Memory
    api: ApiType
    architecture: Architecture
    handler: str | None


class RunVerdict(_Model):
    """The run's answer, so CI and scripts never re-derive it."""

    recommended: RecommendedPoint | None = None  # the pick on every axis, or null
    recommended_mb: Memory | None  # its memory size (cheapest meeting every threshold), or null
    # A setting -> met every threshold. Its key: the memory size ("512") when the sweep moves
    # memory only, else its label ("512 MB · HTTP API").
    met: dict[str, bool]
    degraded_steps: list[DegradedStep] = Field(default_factory=list)
    confidence: Confidence
    headline: str
    fastest_mb: Memory | None = None
    balanced_mb: Memory | None = None
    exit_code: int = 0
    # Which rule decided the pick: "cost" (it is the cheapest, others cost more), "latency
    # among equal costs" (the clearly fastest of those that cost the same as the cheapest) or
    # "smallest among equals" (none clearly faster). None: no pick, or a schema 3 file.
    decided_by: str | None = None
    equivalent: list[str] = Field(default_factory=list)  # tied with the pick on cost (keys of met)
    cost_tolerance_pct: float | None = None  # the margin that decided "the same"
    costs: dict[str, CostInterval] = Field(default_factory=dict)  # per setting (keys of met)
    # every pair of trusted settings: the rule's (the cheapest against each candidate) first
    cost_differences: list[CostPair] = Field(default_factory=list)


class RoundRecord(_Model):
    """until: confident: one round of the interleaved settings, and what the look after it
    decided (keys: labels, as the verdict's `met`)."""

    round: int = Field(ge=1)
    measured: list[str]  # the settings this round measured, in order
    still_open: dict[str, str] = Field(default_factory=dict)  # kept measuring: why
    stopped: dict[str, str] = Field(default_factory=dict)  # stopped after it: why
    # Of those stopped, the ones max_s stopped with a question open: the question
    open_at_max: dict[str, str] = Field(default_factory=dict)


class ChargeLine(_Model):
    """One AWS service's share of what a test itself costs: how much of it, and its dollars."""

    service: str  # "API Gateway REST", "Lambda requests", "Lambda compute", "DynamoDB reads", ...
    quantity: float = Field(ge=0)
    unit: str  # "requests", "GB-s", "RRU", "WRU", "GB"
    usd: float = Field(ge=0)
    estimated: bool = False  # True: from an assumption (stated in the record's basis)


class AwsCharges(_Model):
    """What a run on the aws target costs AWS's customer: its own requests, Lambda time,
    DynamoDB units and log ingestion, priced with the dated table (runner/analysis/_cost.py)."""

    total_usd: float = Field(ge=0)
    lines: list[ChargeLine] = Field(default_factory=list)
    basis: str  # what it rests on, in words (the assumptions of an estimate)
    prices_as_of: str
    # True: estimated from the plan before the run; False: measured after it (a line marked
    # estimated still rests on an assumption, e.g. log bytes per invocation)
    estimated: bool


class Results(_Model):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    status: Literal["running", "complete", "failed", "interrupted"]
    exit_code: int | None = None
    created_at: Epoch
    finished_at: Epoch | None = None
    scenario_name: str
    scenario: Scenario  # as it ran (overrides applied), secrets redacted
    scenario_text: str
    scenario_path: str
    # The command line's changes to the file for this run, as typed ("--memory 256,512"): the
    # scenario above holds the values used; this says the file alone would not reproduce it.
    run_with: str = ""
    versions: dict[str, str]
    host: HostRecord
    target: TargetInfo
    steps: list[Step] = Field(default_factory=list)
    problems: list[Problem] = Field(default_factory=list)
    verdict: RunVerdict | None = None
    rounds: list[RoundRecord] = Field(default_factory=list)  # until: confident: each look
    # The aws target's own charges: estimated from the plan before the run, and what the run
    # did cost, measured from the steps' figures (None: another target, or an older file).
    test_cost_estimate: AwsCharges | None = None
    test_cost: AwsCharges | None = None

    # Secrets are taken out when the results are built, and again when a file is read (one
    # written before this redaction existed must not put its key in a new report).
    @field_validator("scenario", mode="before")
    @classmethod
    def _scenario_without_secrets(cls, value: Any) -> Any:
        if isinstance(value, Scenario):
            value = value.model_dump(mode="json")
        return redact_scenario(value)

    @field_validator("scenario_text")
    @classmethod
    def _text_without_secrets(cls, value: str) -> str:
        return redact_scenario_text(value)


def claim_run_directory(out_dir: Path, run_id: str, *, named: bool) -> str:
    """Make `out_dir/run_id` one run's alone, before anything starts: its results.json is
    created exclusively, so a second run given the same --out and --run-id at the same time is
    refused (two such runs had merged both stacks' Lambda logs into one file and kept the last
    writer's results). A generated id (`named` False) another run took gets a suffix (-2, -3,
    ...). Returns the id claimed."""
    for attempt in range(1, 10):
        claimed = run_id if attempt == 1 else f"{run_id}-{attempt}"
        run_dir = out_dir / claimed
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            with (run_dir / "results.json").open("x", encoding="utf-8"):
                return claimed
        except FileExistsError:
            if named:
                raise BadInput(
                    f"--run-id {run_id}: {run_dir} already holds a run (another run may be "
                    "writing to it now); choose another run id"
                ) from None
        except OSError as exc:  # read-only, no permission, no space: before anything starts
            raise BadInput(
                f"--out {out_dir}: cannot write there: {exc.strerror or exc}"
                + (f" ({exc.filename})" if exc.filename else "")
            ) from None
    raise BadInput(f"--out {out_dir}: no free run directory for {run_id}")


# Readable by all, as a file written with the default umask (the report is too).
RESULTS_MODE = 0o644


def write_results(results: Results, path: Path) -> None:
    """Write atomically: readers see the old file or the new one, never half of one."""
    # allow_nan=False: a NaN or infinity that reached a model by assignment is a bug, and
    # pydantic's own JSON would write it as null, a silent "not measured".
    text = json.dumps(results.model_dump(mode="json"), indent=1, allow_nan=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".results-", suffix=".json")
    except OSError as exc:
        raise OutputError(path, exc) from None
    try:
        with os.fdopen(handle, "w") as out:
            # mkstemp makes the file 0600; results.json is shared like the report it feeds
            # (CI artifacts, `report A B` by a colleague), its secrets already redacted.
            os.fchmod(out.fileno(), RESULTS_MODE)
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException as exc:
        Path(temp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(path, exc) from None
        raise


class OutputError(MemsweepError):
    """A run file could not be written (a full disk, a read-only one, no permission): one line
    naming the file and why, exit 3, with or without MEMSWEEP_DEBUG. The file on disk, if
    any, is its last complete write (writes are atomic)."""

    def __init__(self, path: Path, error: OSError) -> None:
        why = error.strerror or str(error)
        kept = (
            f"; {path.name} there is its last complete write"
            if path.exists()
            else f"; no {path.name} was written"
        )
        super().__init__(f"cannot write {path}: {why}{kept}")


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_LONG_NUMBER = re.compile(rf"\d{{{MAX_NUMBER_DIGITS + 1},}}")


def _read_bounded(file: Path) -> str:
    """The file's text, refusing what no memsweep run writes before decoding any of it."""
    try:
        # O_NONBLOCK: a FIFO would block open() until someone writes to it.
        with os.fdopen(os.open(file, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise BadInput(f"{file}: not a regular file")
            if info.st_size > MAX_RESULTS_BYTES:
                raise BadInput(
                    f"{file}: {info.st_size:,} bytes, larger than any results file memsweep "
                    f"writes (limit {MAX_RESULTS_BYTES:,})"
                )
            raw = handle.read(MAX_RESULTS_BYTES + 1)
    except FileNotFoundError:
        raise BadInput(f"{file}: no such results file") from None
    except IsADirectoryError:
        raise BadInput(f"{file}: is a directory, not a results.json") from None
    except OSError as exc:
        raise BadInput(f"{file}: cannot read it: {exc.strerror or exc}") from None
    if len(raw) > MAX_RESULTS_BYTES:
        raise BadInput(f"{file}: larger than any results file memsweep writes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{file}: not UTF-8 text (byte {exc.start}); not a results file") from None
    bare = _JSON_STRING.sub('""', text)  # brackets and digits inside strings don't count
    brackets = np.frombuffer(bare.encode(), dtype=np.uint8)
    brackets = brackets[
        (brackets == ord("[")) | (brackets == ord("{")) | (brackets == 93) | (brackets == 125)
    ]
    if brackets.size:
        depth = np.cumsum(np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1))
        if int(depth.max()) > MAX_JSON_DEPTH:
            raise BadInput(
                f"{file}: nested {int(depth.max()):,} levels deep; a results file nests at "
                f"most {MAX_JSON_DEPTH}"
            )
    long_number = _LONG_NUMBER.search(bare)
    if long_number:
        raise BadInput(
            f"{file}: a number of {len(long_number.group(0)):,} digits; memsweep writes at "
            f"most {MAX_NUMBER_DIGITS}"
        )
    return text


class _NotAFigure(ValueError):
    """A JSON number no measurement can be: NaN, an infinity, or one that overflows to one."""


def _no_constant(name: str) -> float:
    raise _NotAFigure(f"{name} is not a number memsweep writes (no measurement is {name})")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotAFigure(f"{text[:40]} is out of range (it reads as infinity)")
    return value


def read_results(path: str | Path) -> Results:
    """Results from a results.json, or BadInput saying what is wrong with the file."""
    file = Path(path)
    text = _read_bounded(file)
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except _NotAFigure as exc:
        raise BadInput(f"{file}: not a valid results file: {exc}") from None
    except ValueError as exc:
        raise BadInput(f"{file}: not valid JSON ({exc}); was the run killed mid-write?") from None
    except RecursionError:  # bounded above; kept so no input can turn into a trace
        raise BadInput(f"{file}: nested too deeply to be a results file") from None
    if not isinstance(data, dict):
        raise BadInput(f"{file}: not a memsweep results file (top level is not an object)")
    version = data.get("schema_version")
    if version == 1:
        # Version 1 counted warm-up invocations with the window's and had no trust record
        # or verdict: its figures cannot be re-read as version 2's.
        raise BadInput(
            f"{file}: written by an older memsweep (schema 1), whose function-side figures "
            "mixed the warm-up into the measured window; re-run the scenario to compare it"
        )
    if version == 2:
        data = _from_schema_2(data)
    elif version == 3:
        data = {**data, "schema_version": SCHEMA_VERSION}  # 4 only adds fields with defaults
    elif version != SCHEMA_VERSION:
        raise BadInput(
            f"{file}: results schema version {_shown(version)}, this memsweep reads version "
            f"{SCHEMA_VERSION}; re-run the scenario or use the memsweep that wrote it"
        )
    try:
        return Results.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        shown = "" if first["type"] == "missing" else f", got {_shown(first.get('input'))}"
        if first["type"] in ("value_error", "assertion_error") or not where:
            shown = ""
        raise BadInput(
            f"{file}: not a valid results file: "
            + one_line(f"{where or '(top level)'}: {message}{shown}")
            + f" ({exc.error_count()} problem(s))"
        ) from None


def _from_schema_2(data: dict[str, Any]) -> dict[str, Any]:
    """A version 2 document as the current version: the same figures (the fields added since
    take their defaults); its problems were text (kind
    unknown: "recorded") and its host a loose mapping (the fields 3 keeps)."""

    def typed(problems: Any) -> Any:
        if not isinstance(problems, list):
            return problems  # refused by the model, naming the field
        return [{"kind": "recorded", "detail": p} if isinstance(p, str) else p for p in problems]

    data = {**data, "schema_version": SCHEMA_VERSION, "problems": typed(data.get("problems", []))}
    host = data.get("host")
    if isinstance(host, dict):
        data["host"] = {key: host[key] for key in HostRecord.model_fields if key in host}
    steps = data.get("steps")
    if isinstance(steps, list):
        data["steps"] = [
            {**step, "problems": typed(step.get("problems", []))}
            if isinstance(step, dict)
            else step
            for step in steps
        ]
    return data


def _shown(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return type(value).__name__
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
