"""Lambda's log lines: the report per invocation and handler.py's own JSON line.

One parser for both targets: the local stack writes CloudWatch-format REPORT lines to its log
file, the aws target reads Lambda's lines from CloudWatch Logs. A function with Lambda's
advanced logging controls (`LoggingConfig.LogFormat: JSON`, common with Powertools) writes its
report as a `platform.report` JSON record instead of the text line (AWS, "Lambda Telemetry API
Event schema reference": record.requestId, record.metrics.durationMs, billedDurationMs,
memorySizeMB, maxMemoryUsedMB, initDurationMs and restoreDurationMs where present); both
read as the same InvocationReport.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

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
    r"(?:\s+Restore Duration: (?P<restore>[\d.]+) ms)?"
)
# The JSON log format's report record type.
PLATFORM_REPORT = "platform.report"


@dataclass(frozen=True)
class InvocationReport:
    """What Lambda reports about one invocation."""

    request_id: str
    duration_ms: float
    billed_duration_ms: int
    memory_size_mb: int
    max_memory_used_mb: int
    init_duration_ms: float | None = None
    restore_duration_ms: float | None = None  # SnapStart: a restore instead of an init

    @property
    def cold_start(self) -> bool:
        """A new execution environment: an init, or a SnapStart restore."""
        return self.init_duration_ms is not None or self.restore_duration_ms is not None

    @property
    def start_ms(self) -> float:
        """What starting the environment took before the call ran (0 for a warm call)."""
        return (self.init_duration_ms or 0.0) + (self.restore_duration_ms or 0.0)


@dataclass(frozen=True)
class HandlerRecord:
    """handler.py's line: operation, status and consumed DynamoDB capacity."""

    request_id: str
    operation: str | None
    status: int
    read_units: float
    write_units: float
    request_time: float | None = None  # epoch s: when API Gateway received the request
    error: str = ""  # what the handler logged with a 5xx answer ("" for any other)


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
    """The report's fields, from the text REPORT line or the JSON `platform.report` record;
    None for any other line."""
    match = _REPORT.match(line.strip())
    if match is None:
        return _platform_report(line)
    init, restore = match.group("init"), match.group("restore")
    return InvocationReport(
        request_id=match.group("request_id"),
        duration_ms=float(match.group("duration")),
        billed_duration_ms=int(match.group("billed")),
        memory_size_mb=int(match.group("memory")),
        max_memory_used_mb=int(match.group("max_memory")),
        init_duration_ms=float(init) if init is not None else None,
        restore_duration_ms=float(restore) if restore is not None else None,
    )


def _platform_report(line: str) -> InvocationReport | None:
    """A JSON log format `platform.report` record, or None (any other line, or a record
    missing a figure the report needs: never a zero in its place)."""
    data = _json_object(line, PLATFORM_REPORT)
    if data is None or data.get("type") != PLATFORM_REPORT:
        return None
    record = data.get("record")
    metrics = record.get("metrics") if isinstance(record, dict) else None
    if not isinstance(record, dict) or not isinstance(metrics, dict):
        return None
    request_id = record.get("requestId")
    needed = ("durationMs", "billedDurationMs", "memorySizeMB", "maxMemoryUsedMB")
    figures = [_number(metrics.get(key)) for key in needed]
    if not isinstance(request_id, str) or None in figures:
        return None
    duration, billed, memory, used = (float(value or 0.0) for value in figures)
    init, restore = (
        _number(metrics.get("initDurationMs")),
        _number(metrics.get("restoreDurationMs")),
    )
    return InvocationReport(
        request_id=request_id,
        duration_ms=duration,
        billed_duration_ms=round(billed),
        memory_size_mb=round(memory),
        max_memory_used_mb=round(used),
        init_duration_ms=init,
        restore_duration_ms=restore,
    )


def _number(value: object) -> float | None:
    """A finite JSON number as a float; None for anything else (a string, true, NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _json_object(line: str, marker: str) -> dict[str, Any] | None:
    """The JSON object the line holds (from its first "{"), if the line names `marker`; one
    the JSON log format wrapped as {"message": "..."} is unwrapped."""
    start = line.find("{")
    if start < 0 or marker not in line:
        return None
    try:
        data = json.loads(line[start:])
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    message = data.get("message")
    if data.get("type") is None and isinstance(message, str) and marker in message:
        return _json_object(message, marker)
    return data


# A handler's error is kept to this many characters: a step names its most common one.
MAX_ERROR_CHARS = 200


def parse_handler_record(line: str) -> HandlerRecord | None:
    """handler.py's JSON line, or None for any other line."""
    data = _json_object(line, HANDLER_LOG_TYPE)
    if data is None or data.get("type") != HANDLER_LOG_TYPE:
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
        error=str(data.get("error") or "")[:MAX_ERROR_CHARS],
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
