"""A step's figures from what was read while it ran: the workers' StepData and the readings.

Pure: it takes values and returns a results Step (or a live Load line). The sweep reads the
target (CPU accounting, fidelity, the function's logs, which on AWS means polling CloudWatch)
and the host, and passes what it read; nothing here touches a target, a process or a clock.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from runner.analysis._stats import latency
from runner.analysis._step_data import StepData, Tick
from runner.analysis._trust import HostSnapshot, cpu_delivery, judge
from runner.control_api import Delivery
from runner.hdr import encode
from runner.invocations import Phases
from runner.results import (
    ErrorCount,
    Fidelity,
    Invocations,
    OutsideWindow,
    Problem,
    ProblemKind,
    RequestStats,
    Second,
    Step,
    Trust,
    WindowMetrics,
    WorkerSeen,
)
from runner.scenario import Point


@dataclass(frozen=True, kw_only=True)
class Load:
    """The running step's load, from the workers' reports (every 3 s) and the master."""

    elapsed_s: float  # since the load started
    users: int
    requests: int  # in the measured window, as reported so far
    failures: int
    dropped: int
    achieved_rps: float | None  # over the measured window; None until it has a second
    p95_ms: float | None  # the measured window's full-resolution histogram; None if empty
    locust_rps: float  # Locust's current rate (warm-up included): shown during warm-up only


# A step whose requests mostly failed to connect means the target is down, not slow.
TARGET_DOWN_SHARE = 0.5
# The live rate waits for this much of the window in the workers' reports (they come every
# 3 s): a shorter span would swing with each report.
MIN_RATE_SPAN_S = 0.5
_CONNECTION_ERRORS = re.compile(r"(Connection|Refused|Reset|Timeout|timed out|EOF|Broken)", re.I)
# Answers a layer behind the API gives when it fails or throttles (not the caller's mistakes).
_SERVER_SIDE = re.compile(r"^HTTP (5\d\d|429)\b")
_TOO_MANY = re.compile(r"^HTTP 429\b")
# The failed requests that reached the function at all: under this share of them, the failures
# happened in front of it.
REACHED_SHARE = 0.5
# Throttled answers under this share of a step's requests leave it valid: the few it lost are
# counted by the error rate and shown in the report's CloudWatch table, and one throttled call
# in ten thousand does not make the rest of the window something other than a measurement.
# The default error_rate threshold's share (runner/analysis/_verdict.py DEFAULT_ERROR_RATE).
THROTTLED_SHARE = 0.01


# A step with one of these stops the sweep: the next steps would meet the same broken target.
# Not "throttled": a throttle is a limit met at this point's speed and load (Lambda's
# concurrency is rate x duration, which memory changes), so the next point may pass it.
STOPS_THE_SWEEP: tuple[ProblemKind, ...] = ("target down", "target failed")


class Measured(NamedTuple):
    step: Step
    problems: list[Problem]  # the step's `problems`, typed


@dataclass(frozen=True)
class Readings:
    """What the sweep read for one step, beside the workers' data: each covers its window."""

    delivery_opened: Delivery | None  # the target's CPU accounting as the window opened
    delivery_closed: Delivery | None  # ... and as it closed (None: the target has none)
    host_opened: HostSnapshot | None
    host_closed: HostSnapshot | None
    fidelity: Fidelity
    invocations: Invocations  # those whose request arrived in the window
    outside: OutsideWindow  # the others, counted by phase
    metrics: WindowMetrics | None = None  # the service's metrics for the window (AWS)


def step_window(data: StepData, *, warmup_s: float, now: float) -> Phases:
    """The step's phases: load start, the window's start (after the warm-up) and its end."""
    started = data.load_started
    ended = data.load_ended or now
    if data.measure_until:
        ended = min(ended, data.measure_until)  # workers count no request started later
    return Phases(load_started=started, window_start=started + warmup_s, window_end=ended)


def load_tick(tick: Tick) -> Load:
    """The running step's numbers from the master's merged, full-resolution data.

    Requests, errors and the p95 cover the measured window only (the workers count nothing
    else), so the live figures converge on the step's final ones; Locust's own p95 is rounded
    to two significant figures (12000 ms for 11 500) and includes the warm-up.
    """
    data = tick.data
    requests = sum(counts[0] for counts in data.counts.values())
    failures = sum(counts[1] for counts in data.counts.values())
    # Each worker's count is complete up to its latest report (every 3 s, staggered): their
    # mean is when the merged count stands, as each worker carries an equal share.
    times = list(data.reported_at.values())
    reported = sum(times) / len(times) if times else 0.0
    span = min(reported, data.measure_until or reported) - data.measure_from
    count = data.total.get_total_count()
    return Load(
        elapsed_s=tick.elapsed_s,
        users=tick.users,
        requests=requests,
        failures=failures,
        dropped=data.dropped,
        achieved_rps=requests / span if span >= MIN_RATE_SPAN_S else None,
        p95_ms=data.total.get_value_at_percentile(95) / 1000 if count else None,
        locust_rps=tick.locust_rps,
    )


def step_trust(
    data: StepData, readings: Readings, *, memory_mb: int, users_asked: int | None = None
) -> Trust:
    """Whether the step's figures may be believed, from what was measured in its window."""
    opened, closed = readings.delivery_opened, readings.delivery_closed
    cpu = cpu_delivery(opened, closed) if opened is not None and closed is not None else None
    trust = judge(
        memory_mb=memory_mb,
        cpu=cpu,
        generator_cpu=data.worker_cpu,
        host_before=readings.host_opened,
        host_after=readings.host_closed,
        users_spawned=max(data.users_at.values(), default=None),
        users_asked=users_asked,
    )
    if readings.fidelity.calibration_refused:
        trust.causes.append(f"CPU calibration refused: {readings.fidelity.calibration_refused}")
        trust.degraded = True
    return trust


def measure_step(
    data: StepData,
    readings: Readings,
    *,
    index: int,
    point: Point,
    repeat: int,
    phases: Phases,
    overhead_s: float | None,
    open_model: bool,
    locust_files: list[str],
    interrupted: bool,
    users_asked: int | None = None,
) -> Measured:
    """The step as results.json keeps it (figures, trust, workers), and why it is not valid.
    users_asked: the closed profile's peak users (None: an open model)."""
    requests = sum(counts[0] for counts in data.counts.values())
    failures = sum(counts[1] for counts in data.counts.values())
    measured = max(1e-9, phases.window_end - phases.window_start)
    errors, connection_failures = _errors(data)
    workers = _workers(data)
    problems = [
        Problem(kind="worker lost", detail=f"worker {w.id} lost: {w.detail}")
        for w in workers
        if w.lost
    ]
    trust = step_trust(data, readings, memory_mb=point.memory_mb, users_asked=users_asked)
    cpu = trust.cpu
    if cpu is not None and cpu.start_failures:
        # The pool watched on its own: a sandbox the host could not start is the local stack
        # failing, whatever share of the requests other sandboxes still served; named first,
        # as the requests it failed are its consequence.
        problems.insert(
            0,
            Problem(
                kind="target failed",
                detail=f"the local stack's sandbox pool could not start {cpu.start_failures} "
                f"sandbox(es) ({cpu.last_start_failure})",
            ),
        )
    layer = failing_layer(requests, errors, readings.invocations, readings.metrics)
    if layer is not None:
        problems.insert(0, layer)
    if requests and connection_failures / requests >= TARGET_DOWN_SHARE:
        problems.append(
            Problem(
                kind="target down",
                detail=f"the target stopped answering: {connection_failures} of {requests} "
                "requests failed to connect",
            )
        )
    elif requests and failures == requests:
        problems.append(
            Problem(
                kind="target failed", detail=f"the target failed every request ({errors[0].kind})"
            )
        )
    elif not requests and not interrupted:
        # Nothing to measure is not a measurement: never let an empty step pass as valid.
        problems.append(
            Problem(kind="no requests", detail="no request completed in the measured window")
        )
    if interrupted:
        problems.append(Problem(kind="interrupted", detail="step cut short by an interrupt"))
    step = Step(
        index=index,
        memory_mb=point.memory_mb,
        api=point.api,
        architecture=point.architecture,
        handler=point.handler,
        repeat=repeat,
        started_at=phases.load_started,
        overhead_s=overhead_s,
        window_start=phases.window_start,
        window_end=phases.window_end,
        requests=requests,
        failures=failures,
        rps=requests / measured,
        dropped_arrivals=data.dropped,
        offered=requests + data.dropped if open_model else None,
        latency=latency(data.total),
        histogram=encode(data.total),
        per_request=_per_request(data),
        errors=errors,
        timeline=_timeline(data, window_start=phases.window_start),
        invocations=readings.invocations,
        outside=readings.outside,
        metrics=readings.metrics,
        trust=trust,
        workers=workers,
        fidelity=readings.fidelity,
        valid=not problems,
        problems=problems,
        locust_files=locust_files,
    )
    return Measured(step, problems)


def with_late_metrics(step: Step, metrics: WindowMetrics) -> Step:
    """The step judged again with CloudWatch's metrics read after the run (each step reads
    them once, before its minutes are published): the layer failing_layer names from them
    replaces the one it named without them, and the step is valid only without problems."""
    before = failing_layer(step.requests, step.errors, step.invocations, step.metrics)
    after = failing_layer(step.requests, step.errors, step.invocations, metrics)
    problems = [problem for problem in step.problems if problem != before]
    if after is not None:
        problems.insert(0, after)
    return step.model_copy(update={"metrics": metrics, "problems": problems, "valid": not problems})


def failing_layer(
    requests: int,
    errors: Sequence[ErrorCount],
    invocations: Invocations,
    metrics: WindowMetrics | None = None,
) -> Problem | None:
    """The layer that failed the step, from one reading of two sources, or None (including when
    the function itself failed: a timeout or an out-of-memory kill is a memory effect, and the
    error rate judges it).

    CloudWatch's metrics first, when the window's are published: if throttles they count
    explain most of the step's 5xx and 429 answers and those are at least THROTTLED_SHARE of its
    requests, the step was "throttled" (by Lambda, API Gateway or DynamoDB, with their figures).
    Otherwise the function's logs, when 5xx and 429 are most of the requests ("target failed"):
    API Gateway when most failed requests have no invocation behind them (its integration or
    throttle, or Lambda throttling the call), DynamoDB when most failed calls logged a DynamoDB
    failure (a dead database was once reported as a memory verdict); with published metrics
    the line says what they counted, so the two never disagree unsaid.
    """
    failed = sum(error.count for error in errors if _SERVER_SIDE.match(error.kind))
    if (
        metrics is not None
        and metrics.published
        and failed
        and failed >= THROTTLED_SHARE * requests
    ):
        too_many = sum(error.count for error in errors if _TOO_MANY.match(error.kind))
        throttled = _throttled(requests, failed, too_many, metrics)
        if throttled is not None:
            return Problem(kind="throttled", detail=throttled)
    layer = _layer_from_logs(requests, failed, invocations)
    if layer is None:
        return None
    if metrics is not None and metrics.published:
        layer += f"; CloudWatch counted too few throttles to explain them ({_counted(metrics)})"
    return Problem(kind="target failed", detail=layer)


def _throttled(requests: int, failed: int, too_many: int, metrics: WindowMetrics) -> str | None:
    """The throttling layers, most first, when their throttles explain most failed requests."""
    m = metrics
    lambda_throttles = m.lambda_throttles or 0
    # API Gateway's own throttle answers 429 (counted in 4XX) before any invocation: the
    # requests it counted that Lambda neither ran nor throttled, no more than the 429s seen.
    behind = (m.lambda_invocations or 0) + lambda_throttles
    not_reached = max(0, (m.api_requests or 0) - behind)
    api_throttles = min(too_many, m.api_4xx or 0, not_reached)
    dynamodb = (m.dynamodb_read_throttles or 0) + (m.dynamodb_write_throttles or 0)
    layers = [
        (lambda_throttles, _lambda_line(m)),
        (
            api_throttles,
            f"API Gateway throttled {api_throttles} request(s) before the function "
            f"({m.api_4xx} 4XX of {m.api_requests} requests, {not_reached} with no "
            "invocation behind them: the usage plan's or the stage's throttle)",
        ),
        (
            dynamodb,
            f"DynamoDB throttled {dynamodb} request(s) (ReadThrottleEvents "
            f"{m.dynamodb_read_throttles}, WriteThrottleEvents {m.dynamodb_write_throttles})",
        ),
    ]
    counted = sum(count for count, _ in layers)
    if counted < REACHED_SHARE * failed:
        return None
    named = "; ".join(line for count, line in sorted(layers, key=lambda x: -x[0]) if count)
    return (
        f"{named}: {failed} of {requests} requests failed with 5xx or 429, and CloudWatch "
        f"counted {counted} throttle(s) in {_minutes(m)}: a limit, not a memory effect"
    )


def _lambda_line(m: WindowMetrics) -> str:
    throttles, invocations = m.lambda_throttles or 0, m.lambda_invocations or 0
    peak = m.concurrent_executions_max
    line = f"Lambda throttled {throttles} of {throttles + invocations} invocation requests"
    if peak is None:
        return line
    if m.concurrency_limit is None:
        return f"{line} (ConcurrentExecutions peaked at {peak})"
    if peak >= m.concurrency_limit:
        return (
            f"{line} (ConcurrentExecutions peaked at {peak}: the limit, "
            f"{m.concurrency_limit_source})"
        )
    return (
        f"{line} (ConcurrentExecutions peaked at {peak}, under the limit of "
        f"{m.concurrency_limit}: {m.concurrency_limit_source})"
    )


def _counted(m: WindowMetrics) -> str:
    return (
        f"Lambda Throttles {m.lambda_throttles}, API Gateway 4XX {m.api_4xx} and 5XX "
        f"{m.api_5xx} of {m.api_requests} requests, DynamoDB throttle events "
        f"{(m.dynamodb_read_throttles or 0) + (m.dynamodb_write_throttles or 0)}, in "
        f"{_minutes(m)}"
    )


def _minutes(m: WindowMetrics) -> str:
    if m.start is None or m.end is None:
        return "the window's minutes"
    first = time.strftime("%H:%M", time.gmtime(m.start))
    last = time.strftime("%H:%M", time.gmtime(m.end))
    return f"the minutes {first}-{last} UTC"


def _layer_from_logs(requests: int, failed: int, invocations: Invocations) -> str | None:
    """The layer the function's logs point to when 5xx and 429 are most of the requests."""
    if not requests or failed < TARGET_DOWN_SHARE * requests:
        return None
    if invocations.capacity_records is None or invocations.logs_unread:
        return None  # no logs to tell the layers apart
    shown = f"{failed} of {requests} requests failed with 5xx or 429"
    if invocations.count < REACHED_SHARE * failed:
        return (
            f"API Gateway: {shown} with {invocations.count} Lambda invocation(s) in the window: "
            "they failed in front of the function (API Gateway's integration or throttle, or "
            "Lambda throttling the call)"
        )
    if invocations.dynamodb_failures >= REACHED_SHARE * failed:
        return (
            f"DynamoDB: {shown}; the function's calls to DynamoDB failed in "
            f"{invocations.dynamodb_failures} of them ({invocations.top_error})"
        )
    return None


def _errors(data: StepData) -> tuple[list[ErrorCount], int]:
    """The errors by request and kind, most frequent first, and how many failed to connect."""
    errors = []
    connection_failures = 0
    for key, count in sorted(data.errors.items(), key=lambda item: -item[1]):
        name, _, kind = key.partition("\t")
        errors.append(ErrorCount(request=name, kind=kind, count=count))
        if _CONNECTION_ERRORS.search(kind):
            connection_failures += count
    return errors, connection_failures


def _timeline(data: StepData, *, window_start: float) -> list[Second]:
    timeline = []
    for second in sorted(data.seconds):
        stats = data.seconds[second]
        timeline.append(
            Second(
                t=int(second - window_start),
                requests=stats.n,
                failures=stats.failures,
                mean_ms=stats.mean_ms,
                p95_ms=stats.current_p95_ms(),
                users=data.users_at.get(second),
            )
        )
    return timeline


def _workers(data: StepData) -> list[WorkerSeen]:
    """Every worker that reported, and every one lost (also one lost before it reported)."""
    workers = [
        WorkerSeen(
            id=worker,
            requests=sent,
            lost=worker in data.lost_workers,
            lost_at=data.lost_at.get(worker),
            detail=data.lost_workers.get(worker, ""),
        )
        for worker, sent in sorted(data.per_worker.items())
    ]
    for worker, why in data.lost_workers.items():
        if worker not in data.per_worker:
            workers.append(
                WorkerSeen(id=worker, lost=True, lost_at=data.lost_at.get(worker), detail=why)
            )
    return workers


def _per_request(data: StepData) -> list[RequestStats]:
    return [
        RequestStats(
            name=name,
            requests=data.counts.get(name, [0, 0])[0],
            failures=data.counts.get(name, [0, 0])[1],
            latency=latency(hist),
            histogram=encode(hist),
        )
        for name, hist in sorted(data.by_name.items())
    ]
