"""results.json: the one schema of a run's results, its writer and its reader.

Versioned: a reader refuses a file from another major version with a clear message. Written
atomically (temp file + rename) after every step, so an interrupted run still leaves a valid
partial file. Latency histograms are HDR encodings (microseconds) so the report can compute
any percentile and compare settings without raw samples.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runner.errors import BadInput

# 2: one measured window for every figure (invocations outside it are counted apart), the
# step's trust record (delivered CPU, load generator), dropped load, and the run's verdict.
SCHEMA_VERSION = 2


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Latency(_Model):
    """Milliseconds, from the full-resolution histogram."""

    count: int
    mean: float | None = None
    min: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    p999: float | None = None
    max: float | None = None


class RequestStats(_Model):
    name: str
    requests: int
    failures: int
    latency: Latency
    histogram: str | None = None  # HDR encoding, µs


class ErrorCount(_Model):
    request: str
    kind: str  # e.g. "HTTP 502", "ConnectionRefusedError: ..."
    count: int


class Second(_Model):
    """One second of the measured window (t: seconds since the window started)."""

    t: int
    requests: int
    failures: int
    mean_ms: float
    p95_ms: float | None = None
    users: int | None = None


class Invocations(_Model):
    """What the function's own logs (REPORT lines) say about the step's window."""

    count: int = 0
    cold_starts: int = 0
    init_ms_mean: float | None = None
    init_ms_max: float | None = None
    duration_ms_mean: float | None = None
    duration_ms_p50: float | None = None
    duration_ms_p95: float | None = None
    duration_ms_p99: float | None = None
    # Split by cold start (Duration excludes Init Duration on the cold ones).
    warm_duration_ms_mean: float | None = None
    warm_duration_ms_p95: float | None = None
    cold_duration_ms_mean: float | None = None
    billed_ms_total: int = 0
    billed_ms_mean: float | None = None
    warm_billed_ms_total: int = 0
    cold_billed_ms_total: int = 0  # init included: Lambda bills INIT (since 1 August 2025)
    max_memory_used_mb: int | None = None
    read_units: float = 0.0
    write_units: float = 0.0
    source: str = ""  # "local log", "CloudWatch Logs", or why there is none


class OutsideWindow(_Model):
    """Invocations of a step that are not in its measured window, by when their request
    arrived: before the load (seeding, the previous step's tail), in the warm-up, or after
    the window closed (in flight at its end); unattributed ones had no arrival time."""

    before: Invocations = Invocations()
    warmup: Invocations = Invocations()
    after_window: int = 0
    unattributed: int = 0


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


class Trust(_Model):
    """Whether the step's figures may be believed, measured while its load ran."""

    degraded: bool = False
    causes: list[str] = Field(default_factory=list)  # each with its measured figure
    cpu: CpuDelivery | None = None
    generator_cpu_max: float | None = None  # % of one core, busiest Locust worker
    generator_cpu_mean: float | None = None
    steal: float | None = None  # hypervisor steal, share of the host's CPU time
    pressure: float | None = None  # /proc/pressure/cpu "some": share of wall time
    checked: list[str] = Field(default_factory=list)  # the rules applied, in words


class WorkerSeen(_Model):
    id: str
    requests: int = 0
    lost: bool = False
    lost_at: float | None = None  # epoch seconds: when the master noticed
    detail: str = ""


class Fidelity(_Model):
    mode: str  # cgroup-v1, cgroup-v2, cpu-time-pacing, aws, none
    level: Literal["full", "degraded", "real", "none"]
    cpu_share_nominal: float | None = None
    cpu_share_measured: float | None = None
    cpu_quota_correction: float | None = None
    configured_memory_mb: int | None = None  # read back from the target after setting it
    calibration_refused: str = ""  # why the CPU calibration could not be trusted, if so


class Step(_Model):
    index: int
    memory_mb: int
    repeat: int
    started_at: float  # epoch seconds: load started
    # From the previous step's load end to this one's load start (memory change, settle,
    # seeding, workers rejoining): what the sweep spends not measuring.
    overhead_s: float | None = None
    window_start: float  # the measured window (after warm-up)
    window_end: float
    requests: int
    failures: int
    rps: float
    dropped_arrivals: int = 0  # open model: arrivals in the window not sent (max_in_flight)
    offered: int | None = None  # open model: arrivals in the window, sent or dropped
    latency: Latency
    histogram: str | None = None  # HDR encoding, µs
    per_request: list[RequestStats] = Field(default_factory=list)
    errors: list[ErrorCount] = Field(default_factory=list)
    timeline: list[Second] = Field(default_factory=list)
    invocations: Invocations = Invocations()  # only those whose request arrived in the window
    outside: OutsideWindow = OutsideWindow()
    trust: Trust = Trust()
    workers: list[WorkerSeen] = Field(default_factory=list)
    fidelity: Fidelity | None = None
    valid: bool = True
    problems: list[str] = Field(default_factory=list)
    locust_files: list[str] = Field(default_factory=list)


class TargetInfo(_Model):
    kind: str
    url: str
    function: str | None = None
    architecture: str | None = None  # x86_64 or arm64 (prices differ); None: x86_64 assumed
    description: str = ""
    original_memory_mb: int | None = None
    restored: bool | None = None


class DegradedStep(_Model):
    step: int
    memory_mb: int
    cause: str


class Confidence(_Model):
    """How sure the pick is, from resamples of the measured windows."""

    level: Literal["sure", "likely", "too close to call", "by cost only", "none"]
    statement: str
    # Share of resamples in which the pick met every latency threshold.
    meets_share: float | None = None
    too_close: list[str] = Field(default_factory=list)  # "256 vs 512 MB: ..."
    repeats_needed: int | None = None  # to separate the closest call, at this noise


class RunVerdict(_Model):
    """The run's answer, so CI and scripts never re-derive it."""

    recommended_mb: int | None  # cheapest size meeting every threshold, or null
    met: dict[str, bool]  # memory size (a JSON key) -> met every threshold
    degraded_steps: list[DegradedStep] = Field(default_factory=list)
    confidence: Confidence
    headline: str
    fastest_mb: int | None = None
    balanced_mb: int | None = None
    exit_code: int = 0


class Results(_Model):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    status: Literal["running", "complete", "failed", "interrupted"]
    exit_code: int | None = None
    created_at: float
    finished_at: float | None = None
    scenario_name: str
    scenario: dict[str, Any]
    scenario_text: str
    scenario_path: str
    versions: dict[str, str]
    host: dict[str, Any]
    target: TargetInfo
    steps: list[Step] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)
    verdict: RunVerdict | None = None


def write_results(results: Results, path: Path) -> None:
    """Write atomically: readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=".results-", suffix=".json")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(results.model_dump_json(indent=1))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def read_results(path: str | Path) -> Results:
    """Results from a results.json, or BadInput saying what is wrong with the file."""
    file = Path(path)
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        raise BadInput(f"{file}: no such results file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{file}: cannot read it: {exc}") from None
    except ValueError as exc:
        raise BadInput(f"{file}: not valid JSON ({exc}); was the run killed mid-write?") from None
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
    if version != SCHEMA_VERSION:
        raise BadInput(
            f"{file}: results schema version {version!r}, this memsweep reads version "
            f"{SCHEMA_VERSION}; re-run the scenario or use the memsweep that wrote it"
        )
    try:
        return Results.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BadInput(
            f"{file}: not a valid results file: {where}: {first['msg']} "
            f"({exc.error_count()} problem(s))"
        ) from None
