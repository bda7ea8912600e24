"""A step's invocations from CloudWatch Logs Insights aggregates, for steps too large to read
line by line.

FilterLogEvents returns every REPORT and handler line of a step, 10,000 events a page: at
1,000 requests a second a 120 s step is 24 pages, read again on every settle poll. Above
INSIGHTS_ABOVE_INVOCATIONS the aws target asks Logs Insights for the figures the verdict uses
instead (count, cold starts, duration percentiles, billed milliseconds, warm billed ms per
second, capacity units, failed calls by error), a few queries whatever the step's size.

What aggregates cannot give: the per-request join. Lines are read by request id and each
invocation is counted in the phase its request *arrived* in (runner/invocations.py); an
aggregate counts the invocations whose REPORT was *written* in the range, i.e. that ended in
it. The window's first calls may have arrived in the warm-up and its last in-flight calls
fall outside; a step says so in its source. Warm calls last milliseconds, so their
per-second batches (by when each ended) shift by well under a second.

Fields: Lambda's text REPORT line is discovered as @type "REPORT" with @duration,
@billedDuration, @maxMemoryUsed (bytes: /1000/1000 is MB) and @initDuration on a cold start
(the AWS Lambda Operator Guide's "Useful Insights queries"); the JSON log format's
platform.report record as type "platform.report" with record.metrics.durationMs,
billedDurationMs, maxMemoryUsedMB, initDurationMs or restoreDurationMs. handler.py's line is
a JSON object, discovered as type "memsweep.invocation" with status, error and
consumedCapacity.read/write.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runner.invocations import DYNAMODB_FAILURE, Phases
from runner.lambda_logs import HANDLER_LOG_TYPE, PLATFORM_REPORT
from runner.results import BilledSecond, Invocations, OutsideWindow

# A step with more invocations than this is read with Logs Insights, not line by line.
INSIGHTS_ABOVE_INVOCATIONS = 10_000
QUERY_TIMEOUT_S = 120.0
QUERY_POLL_S = 1.0
# Insights returns at most this many rows: the per-second query of a window up to 10,000 s.
ROWS = 10_000

# Both log formats' report figures under one name each; `start` is present on a cold start.
_REPORTS = (
    f'filter @type = "REPORT" or type = "{PLATFORM_REPORT}"\n'
    "| fields coalesce(@duration, record.metrics.durationMs) as duration,"
    " coalesce(@billedDuration, record.metrics.billedDurationMs) as billed,"
    " coalesce(@maxMemoryUsed / 1000 / 1000, record.metrics.maxMemoryUsedMB) as used,"
    " coalesce(@initDuration, record.metrics.initDurationMs, record.metrics.restoreDurationMs)"
    " as start, toMillis(@timestamp) as ended\n"
    "| filter ended >= {start_ms} and ended < {end_ms}\n"
)
QUERIES: dict[str, str] = {
    "all": _REPORTS + "| stats count(*) as calls, count(start) as cold, avg(start) as start_mean,"
    " max(start) as start_max, sum(duration) as duration_sum, pct(duration, 50) as p50,"
    " pct(duration, 95) as p95, pct(duration, 99) as p99, sum(billed) as billed,"
    " max(used) as used",
    "warm": _REPORTS + "| filter not ispresent(start)\n"
    "| stats count(*) as calls, sum(duration) as duration_sum, pct(duration, 95) as p95,"
    " sum(billed) as billed",
    # Seconds of the window, as runner/invocations.py counts them (bin(1s) would cut at the
    # clock's whole seconds, not the window's).
    "warm_by_second": _REPORTS + "| filter not ispresent(start)\n"
    "| fields floor((ended - {start_ms}) / 1000) as t\n"
    "| stats count(*) as calls, sum(billed) as billed by t",
    "capacity": f'filter type = "{HANDLER_LOG_TYPE}"\n'
    "| fields toMillis(@timestamp) as ended\n"
    "| filter ended >= {start_ms} and ended < {end_ms}\n"
    "| stats count(*) as records, sum(consumedCapacity.read) as reads,"
    " sum(consumedCapacity.write) as writes",
    "failures": f'filter type = "{HANDLER_LOG_TYPE}" and (status >= 500 or status = 429)\n'
    "| fields toMillis(@timestamp) as ended\n"
    "| filter ended >= {start_ms} and ended < {end_ms}\n"
    "| stats count(*) as calls by status, error",
}
WINDOW_QUERIES = tuple(QUERIES)
# Outside the window only the counts and the bill matter (cold starts in the warm-up).
OUTSIDE_QUERIES = ("all", "capacity")

Rows = list[dict[str, str]]
QueryRange = tuple[tuple[str, ...], float, float]  # query names, start and end (epoch s)


class InsightsError(Exception):
    """A query that failed, was cancelled or did not finish in time (the detail says which)."""


@dataclass(frozen=True)
class InsightsReader:
    """Runs Logs Insights queries on one log group (`logs`: a boto3 CloudWatch Logs client)."""

    logs: Any
    group: str
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def run(self, ranges: Mapping[str, QueryRange]) -> dict[str, dict[str, Rows]]:
        """Each range's named queries' rows (a range: query names and [start, end], epoch s,
        by when the line was written): every query of every range started at once (9 for a
        step, under the account's 30 concurrent queries), then polled until each completes.
        One wait for a step, not one per range."""
        started = {
            (key, name): self._start(QUERIES[name], start, end)
            for key, (names, start, end) in ranges.items()
            for name in names
        }
        deadline = self.clock() + QUERY_TIMEOUT_S
        done: dict[tuple[str, str], Rows] = {}
        while len(done) < len(started):
            for (key, name), query_id in started.items():
                if (key, name) not in done:
                    rows = self._poll(name, query_id)
                    if rows is not None:
                        done[key, name] = rows
            if len(done) < len(started):
                if self.clock() > deadline:
                    waiting = sorted(
                        {f"{name} ({key})" for key, name in started if (key, name) not in done}
                    )
                    raise InsightsError(
                        f"Logs Insights queries not complete after {QUERY_TIMEOUT_S:.0f} s: "
                        + ", ".join(waiting)
                    )
                self.sleep(QUERY_POLL_S)
        return {
            key: {name: done[key, name] for name in names} for key, (names, _, _) in ranges.items()
        }

    def _start(self, query: str, start: float, end: float) -> str:
        # The query's range is whole seconds; the filter on toMillis(@timestamp) cuts it to
        # the window's milliseconds.
        text = query.replace("{start_ms}", str(int(start * 1000))).replace(
            "{end_ms}", str(int(end * 1000))
        )
        answer = self.logs.start_query(
            logGroupName=self.group,
            startTime=int(start),
            endTime=int(end) + 1,
            queryString=text,
            limit=ROWS,
        )
        return str(answer["queryId"])

    def _poll(self, name: str, query_id: str) -> Rows | None:
        answer = self.logs.get_query_results(queryId=query_id)
        status = answer.get("status")
        if status in ("Scheduled", "Running", "Unknown", None):
            return None
        if status != "Complete":
            raise InsightsError(f"Logs Insights query {name!r} ended {status}")
        return [
            {cell["field"]: cell.get("value", "") for cell in row}
            for row in answer.get("results", [])
        ]


def _number(row: Mapping[str, str], field: str) -> float | None:
    """A row's figure; None when Insights left it out (no matching lines) or it is not one."""
    try:
        return float(row[field])
    except (KeyError, ValueError):
        return None


def _count(row: Mapping[str, str], field: str) -> int:
    return round(_number(row, field) or 0)


def _one(rows: Rows) -> dict[str, str]:
    return rows[0] if rows else {}


def summary(results: Mapping[str, Rows], source: str) -> Invocations:
    """Invocations from the queries' rows (those that ran: the warm split and the per-second
    batches only in the window)."""
    every = _one(results.get("all", []))
    calls, cold = _count(every, "calls"), _count(every, "cold")
    billed = _count(every, "billed")
    warm_row = _one(results.get("warm", []))
    warm_calls = _count(warm_row, "calls")
    warm_billed = _count(warm_row, "billed")
    duration_sum = _number(every, "duration_sum") or 0.0
    warm_sum = _number(warm_row, "duration_sum") or 0.0
    capacity = _one(results.get("capacity", []))
    failed, dynamodb, top = _failures(results.get("failures", []))
    by_second = [
        BilledSecond(
            t=_count(row, "t"), count=_count(row, "calls"), billed_ms=_count(row, "billed")
        )
        for row in results.get("warm_by_second", [])
        if _number(row, "t") is not None
    ]
    has_split = "warm" in results
    return Invocations(
        count=calls,
        cold_starts=cold,
        init_ms_mean=_number(every, "start_mean") if cold else None,
        init_ms_max=_number(every, "start_max") if cold else None,
        duration_ms_mean=duration_sum / calls if calls else None,
        duration_ms_p50=_number(every, "p50"),
        duration_ms_p95=_number(every, "p95"),
        duration_ms_p99=_number(every, "p99"),
        warm_duration_ms_mean=warm_sum / warm_calls if warm_calls else None,
        warm_duration_ms_p95=_number(warm_row, "p95") if warm_calls else None,
        cold_duration_ms_mean=(duration_sum - warm_sum) / cold if cold and has_split else None,
        billed_ms_total=billed,
        billed_ms_mean=billed / calls if calls else None,
        warm_billed_ms_total=warm_billed if has_split else billed,
        cold_billed_ms_total=billed - warm_billed if has_split else 0,
        max_memory_used_mb=round(used) if (used := _number(every, "used")) else None,
        read_units=_number(capacity, "reads") or 0.0,
        write_units=_number(capacity, "writes") or 0.0,
        capacity_records=_count(capacity, "records"),
        failed_calls=failed,
        dynamodb_failures=dynamodb,
        top_error=top,
        source=source,
        warm_billed_by_second=sorted(by_second, key=lambda second: second.t),
    )


def _failures(rows: Rows) -> tuple[int, int, str]:
    """(failed calls, of them DynamoDB's, the most common error) from the rows by status and
    error, judged as runner/invocations.py judges single records."""
    failed = dynamodb = 0
    by_error: dict[str, int] = {}
    for row in rows:
        calls = _count(row, "calls")
        status = _count(row, "status")
        error = row.get("error") or f"HTTP {status}"
        failed += calls
        by_error[error] = by_error.get(error, 0) + calls
        if status == 429 or DYNAMODB_FAILURE.search(error):
            dynamodb += calls
    top = max(by_error, key=lambda error: by_error[error]) if by_error else ""
    return failed, dynamodb, top


def read_step(
    reader: InsightsReader, phases: Phases, *, lookbehind_s: float
) -> tuple[Invocations, OutsideWindow]:
    """The window's invocations and the warm-up's and before-the-load's, by when each call
    ended (module docstring: no per-request join)."""
    source = (
        f"CloudWatch Logs Insights {reader.group} (aggregates, more than "
        f"{INSIGHTS_ABOVE_INVOCATIONS:,} invocations: counted by when each call ended, not "
        "when its request arrived; no per-request join)"
    )
    # Phases.of counts a request arriving at window_end itself in the window: so does this.
    rows = reader.run(
        {
            "window": (WINDOW_QUERIES, phases.window_start, phases.window_end + 0.001),
            "warmup": (OUTSIDE_QUERIES, phases.load_started, phases.window_start),
            "before": (
                OUTSIDE_QUERIES,
                phases.load_started - lookbehind_s,
                phases.load_started,
            ),
        }
    )
    return summary(rows["window"], source), OutsideWindow(
        before=summary(rows["before"], source),
        warmup=summary(rows["warmup"], source),
    )
