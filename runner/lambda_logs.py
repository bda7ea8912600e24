"""Lambda's log lines: the REPORT line per invocation and handler.py's own JSON line.

One format and one parser for both targets: the local stack writes CloudWatch-format
REPORT lines to its log file, the aws target reads the same lines from CloudWatch Logs.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from runner.results import Invocations, OutsideWindow
from runner.stats import percentile_ms

# handler.py's marker for its one structured line per invocation.
HANDLER_LOG_TYPE = "memsweep.invocation"
# The local stack's line per invocation saying when its request reached the front (the
# emulated API Gateway): the join key for invocations whose handler writes no line of its own.
ARRIVAL_LOG_TYPE = "memsweep.arrival"

_REPORT = re.compile(
    r"^REPORT RequestId: (?P<request_id>\S+)\s+"
    r"Duration: (?P<duration>[\d.]+) ms\s+"
    r"Billed Duration: (?P<billed>\d+) ms\s+"
    r"Memory Size: (?P<memory>\d+) MB\s+"
    r"Max Memory Used: (?P<max_memory>\d+) MB"
    r"(?:\s+Init Duration: (?P<init>[\d.]+) ms)?"
)


@dataclass(frozen=True)
class InvocationReport:
    """What Lambda reports about one invocation."""

    request_id: str
    duration_ms: float
    billed_duration_ms: int
    memory_size_mb: int
    max_memory_used_mb: int
    init_duration_ms: float | None = None

    @property
    def cold_start(self) -> bool:
        return self.init_duration_ms is not None


@dataclass(frozen=True)
class HandlerRecord:
    """handler.py's line: operation, status and consumed DynamoDB capacity."""

    request_id: str
    operation: str | None
    status: int
    read_units: float
    write_units: float
    request_time: float | None = None  # epoch s: when API Gateway received the request


def billed_duration_ms(duration_ms: float, init_duration_ms: float | None) -> int:
    """Billed time at 1 ms granularity.

    Since 1 August 2025 Lambda bills the INIT phase of on-demand ZIP functions on managed
    runtimes too, so a cold invocation bills init + invoke.
    """
    return max(1, math.ceil(duration_ms + (init_duration_ms or 0.0)))


def format_report(report: InvocationReport) -> str:
    """The REPORT line exactly as CloudWatch Logs shows it (tab-separated fields)."""
    line = (
        f"REPORT RequestId: {report.request_id}\t"
        f"Duration: {report.duration_ms:.2f} ms\t"
        f"Billed Duration: {report.billed_duration_ms} ms\t"
        f"Memory Size: {report.memory_size_mb} MB\t"
        f"Max Memory Used: {report.max_memory_used_mb} MB\t"
    )
    if report.init_duration_ms is not None:
        line += f"Init Duration: {report.init_duration_ms:.2f} ms\t"
    return line


def parse_report(line: str) -> InvocationReport | None:
    """The REPORT line's fields, or None for any other line."""
    match = _REPORT.match(line.strip())
    if match is None:
        return None
    init = match.group("init")
    return InvocationReport(
        request_id=match.group("request_id"),
        duration_ms=float(match.group("duration")),
        billed_duration_ms=int(match.group("billed")),
        memory_size_mb=int(match.group("memory")),
        max_memory_used_mb=int(match.group("max_memory")),
        init_duration_ms=float(init) if init is not None else None,
    )


def parse_handler_record(line: str) -> HandlerRecord | None:
    """handler.py's JSON line, or None for any other line."""
    start = line.find("{")
    if start < 0 or HANDLER_LOG_TYPE not in line:
        return None
    try:
        data = json.loads(line[start:])
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("type") != HANDLER_LOG_TYPE:
        return None
    capacity = data.get("consumedCapacity") or {}
    epoch_ms = data.get("requestTimeEpoch")
    return HandlerRecord(
        request_id=str(data.get("requestId", "")),
        operation=data.get("operation"),
        status=int(data.get("status", 0)),
        read_units=float(capacity.get("read", 0.0)),
        write_units=float(capacity.get("write", 0.0)),
        request_time=epoch_ms / 1000 if isinstance(epoch_ms, (int, float)) else None,
    )


def format_arrival(request_id: str, arrived_at: float) -> str:
    return json.dumps({"type": ARRIVAL_LOG_TYPE, "requestId": request_id, "arrivedAt": arrived_at})


def parse_arrival(line: str) -> tuple[str, float] | None:
    """(Lambda request id, epoch seconds its request arrived) from the local stack's line."""
    if ARRIVAL_LOG_TYPE not in line:
        return None
    try:
        data = json.loads(line[line.find("{") :])
        return str(data["requestId"]), float(data["arrivedAt"])
    except (ValueError, KeyError, TypeError):
        return None


def reports_in(lines: Iterable[str]) -> Iterator[InvocationReport]:
    for line in lines:
        report = parse_report(line)
        if report is not None:
            yield report


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
        if report.init_duration_ms is None:
            warm.append(report.duration_ms)
            warm_billed += report.billed_duration_ms
        else:
            cold.append(report.duration_ms)
            cold_billed += report.billed_duration_ms
            inits.append(report.init_duration_ms)
    reads = writes = 0.0
    logged = 0
    for record in records:
        reads += record.read_units
        writes += record.write_units
        logged += 1
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
    for request_id, report in reports.items():
        record = records.get(request_id)
        arrived = arrivals.get(request_id)
        if arrived is None and record is not None:
            arrived = record.request_time
        if arrived is None and request_id in ended_at:
            spent = report.duration_ms + (report.init_duration_ms or 0.0)
            arrived = ended_at[request_id] - spent / 1000
        if arrived is None:
            unattributed += 1
            continue
        grouped[phases.of(arrived)].append(report)

    def summary(phase: str) -> Invocations:
        chosen = grouped[phase]
        return summarise(
            chosen, [records[r.request_id] for r in chosen if r.request_id in records], source
        )

    return summary("window"), OutsideWindow(
        before=summary("before"),
        warmup=summary("warmup"),
        after_window=len(grouped["after"]),
        unattributed=unattributed,
    )
