"""A step's invocations from Lambda's log lines: counted in the phase their request arrived in
(before the load, warm-up, the measured window, after), joined by request id.

Both targets return these (the local stack from its log file, the aws target from CloudWatch
Logs); the line formats themselves are runner/lambda_logs.py's.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from runner.hdr import HDR_HIGHEST_US, HDR_LOWEST_US, empty_histogram, encode
from runner.lambda_logs import (
    HandlerRecord,
    InvocationReport,
    parse_arrival,
    parse_handler_record,
    parse_report,
)
from runner.results import BilledSecond, DurationSecond, Invocations, OutsideWindow

# A handler error DynamoDB caused: handler.py's "DynamoDB error <code>" for codes it does not
# map, a connection to the endpoint refused or dropped (dynalite killed: botocore's
# EndpointConnectionError), or DynamoDB's own server-side codes in a message.
DYNAMODB_FAILURE = re.compile(
    r"DynamoDB|dynamodb|EndpointConnectionError|ConnectionClosedError|ReadTimeoutError|"
    r"ProvisionedThroughputExceeded|ThrottlingException|RequestLimitExceeded|"
    r"InternalServerError|ServiceUnavailable"
)


def percentile_ms(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of a small list (e.g. per-invocation durations of one step)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summarise_lines(lines: Iterable[str], source: str) -> Invocations:
    """Invocation statistics from Lambda log lines (REPORT + handler.py's JSON line)."""
    reports: list[InvocationReport] = []
    records: list[HandlerRecord] = []
    for line in lines:
        report = parse_report(line)
        if report is not None:
            reports.append(report)
            continue
        record = parse_handler_record(line)
        if record is not None:
            records.append(record)
    return summarise(reports, records, source)


def summarise(
    reports: Iterable[InvocationReport], records: Iterable[HandlerRecord], source: str
) -> Invocations:
    """Statistics of these invocations; capacity units from their handler records.

    Cold and warm invocations are split: a cold one's Duration excludes its Init Duration,
    but the caller waited for both, and at small memory sizes the two differ by seconds.
    """
    warm: list[float] = []
    cold: list[float] = []
    inits: list[float] = []
    billed = warm_billed = cold_billed = 0
    max_memory = 0
    for report in reports:
        billed += report.billed_duration_ms
        max_memory = max(max_memory, report.max_memory_used_mb)
        if not report.cold_start:
            warm.append(report.duration_ms)
            warm_billed += report.billed_duration_ms
        else:
            cold.append(report.duration_ms)
            cold_billed += report.billed_duration_ms
            inits.append(report.start_ms)
    reads = writes = 0.0
    logged = 0
    failed: Counter[str] = Counter()
    dynamodb = 0
    for record in records:
        reads += record.read_units
        writes += record.write_units
        logged += 1
        if record.status >= 500 or record.status == 429:
            error = record.error or f"HTTP {record.status}"
            failed[error] += 1
            dynamodb += record.status == 429 or bool(DYNAMODB_FAILURE.search(error))
    durations = warm + cold
    count = len(durations)
    return Invocations(
        count=count,
        cold_starts=len(inits),
        init_ms_mean=statistics.fmean(inits) if inits else None,
        init_ms_max=max(inits) if inits else None,
        duration_ms_mean=statistics.fmean(durations) if durations else None,
        duration_ms_p50=percentile_ms(durations, 50),
        duration_ms_p95=percentile_ms(durations, 95),
        duration_ms_p99=percentile_ms(durations, 99),
        warm_duration_ms_mean=statistics.fmean(warm) if warm else None,
        warm_duration_ms_p95=percentile_ms(warm, 95),
        cold_duration_ms_mean=statistics.fmean(cold) if cold else None,
        billed_ms_total=billed,
        billed_ms_mean=billed / count if count else None,
        warm_billed_ms_total=warm_billed,
        cold_billed_ms_total=cold_billed,
        max_memory_used_mb=max_memory or None,
        read_units=reads,
        write_units=writes,
        capacity_records=logged,
        failed_calls=sum(failed.values()),
        dynamodb_failures=dynamodb,
        top_error=failed.most_common(1)[0][0] if failed else "",
        source=source,
    )


@dataclass(frozen=True)
class Phases:
    """A step's phases on one clock (epoch seconds): load start, window start, window end."""

    load_started: float
    window_start: float
    window_end: float

    def of(self, arrived_at: float) -> str:
        if arrived_at < self.load_started:
            return "before"
        if arrived_at < self.window_start:
            return "warmup"
        if arrived_at <= self.window_end:
            return "window"
        return "after"


def attribute(
    events: Iterable[tuple[float | None, str]], phases: Phases, source: str
) -> tuple[Invocations, OutsideWindow]:
    """The window's invocations and those outside it: each counted in the phase its request
    arrived in, joined by request id.

    events: (timestamp or None, log line). The arrival time of an invocation comes from, in
    order: the local stack's arrival line, handler.py's `requestTimeEpoch` (API Gateway's
    own clock, on AWS too), or the REPORT event's timestamp less its duration and init (a
    CloudWatch event is stamped when the line is written, at the invocation's end).
    Invocations with none of these are counted as unattributed, never guessed into a window.
    """
    reports: dict[str, InvocationReport] = {}
    ended_at: dict[str, float] = {}
    records: dict[str, HandlerRecord] = {}
    arrivals: dict[str, float] = {}
    for timestamp, line in events:
        report = parse_report(line)
        if report is not None:
            reports[report.request_id] = report
            if timestamp is not None:
                ended_at[report.request_id] = timestamp
            continue
        arrival = parse_arrival(line)
        if arrival is not None:
            arrivals[arrival[0]] = arrival[1]
            continue
        record = parse_handler_record(line)
        if record is not None:
            records[record.request_id] = record
    grouped: dict[str, list[InvocationReport]] = {
        "before": [],
        "warmup": [],
        "window": [],
        "after": [],
    }
    unattributed = 0
    warm_by_second: dict[int, tuple[int, int]] = {}  # second of the window -> (count, billed)
    durations = _WindowDurations()
    for request_id, report in reports.items():
        record = records.get(request_id)
        arrived = arrivals.get(request_id)
        if arrived is None and record is not None:
            arrived = record.request_time
        if arrived is None and request_id in ended_at:
            spent = report.duration_ms + report.start_ms
            arrived = ended_at[request_id] - spent / 1000
        if arrived is None:
            unattributed += 1
            continue
        phase = phases.of(arrived)
        grouped[phase].append(report)
        if phase == "window":
            durations.add(int(arrived - phases.window_start), report.duration_ms)
        if phase == "window" and not report.cold_start:
            second = int(arrived - phases.window_start)
            count, billed = warm_by_second.get(second, (0, 0))
            warm_by_second[second] = (count + 1, billed + report.billed_duration_ms)

    def summary(phase: str) -> Invocations:
        chosen = grouped[phase]
        return summarise(
            chosen, [records[r.request_id] for r in chosen if r.request_id in records], source
        )

    window = summary("window").model_copy(
        update={
            "warm_billed_by_second": [
                BilledSecond(t=second, count=count, billed_ms=billed)
                for second, (count, billed) in sorted(warm_by_second.items())
            ],
            "duration_histogram": durations.encoded(),
            "duration_by_second": durations.by_second(),
        }
    )
    return window, OutsideWindow(
        before=summary("before"),
        warmup=summary("warmup"),
        after_window=len(grouped["after"]),
        unattributed=unattributed,
    )


class _WindowDurations:
    """The window's REPORT Durations as an HDR histogram (µs, the client latency's range) and
    per second of arrival (count, sum): never the raw list, so a long window stays small."""

    def __init__(self) -> None:
        self.histogram = empty_histogram()
        self.seconds: dict[int, tuple[int, float]] = {}

    def add(self, second: int, duration_ms: float) -> None:
        micros = min(HDR_HIGHEST_US, max(HDR_LOWEST_US, round(duration_ms * 1000)))
        self.histogram.record_value(micros)
        count, total = self.seconds.get(second, (0, 0.0))
        self.seconds[second] = (count + 1, total + duration_ms)

    def encoded(self) -> str | None:
        return encode(self.histogram)

    def by_second(self) -> list[DurationSecond]:
        return [
            DurationSecond(t=second, count=count, mean_ms=total / count)
            for second, (count, total) in sorted(self.seconds.items())
        ]
