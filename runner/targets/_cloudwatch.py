"""CloudWatch metrics of one step's window on the aws target: which layer throttled.

One GetMetricData call reads every figure for the whole minutes around the window (period 60:
Lambda and API Gateway publish one-minute figures), repeated a bounded number of times until
the window's last minute is published. What each metric is, its dimensions and statistic, as
AWS documents them:

- AWS/Lambda, dimension FunctionName: Invocations, Errors and Throttles with Sum;
  ConcurrentExecutions with Maximum, emitted for every function at one-minute granularity
  (Lambda developer guide, "Types of metrics for Lambda functions",
  https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html, and
  "Monitoring concurrency", .../lambda/latest/dg/monitoring-concurrency.html). Invocations
  does not count throttled requests, so Throttles + Invocations is what API Gateway asked for.
- AWS/ApiGateway, REST API: 4XXError and 5XXError with Sum, Count with SampleCount (the
  statistic the page names for it), dimensions ApiName and Stage ("Amazon API Gateway
  dimensions and metrics", .../apigateway/latest/developerguide/api-gateway-metrics-and-
  dimensions.html). HTTP API: 4xx, 5xx and Count, dimensions ApiId and Stage ("Monitor
  CloudWatch metrics for HTTP APIs", .../apigateway/latest/developerguide/http-api-
  metrics.html); that page names no statistic, each request counts one, so Sum.
- AWS/DynamoDB, dimension TableName: ReadThrottleEvents and WriteThrottleEvents with Sum
  ("DynamoDB Metrics and dimensions", .../amazondynamodb/latest/developerguide/metrics-
  dimensions.html; "CloudWatch throttling metrics", .../TroubleshootingThrottling-
  cloudwatch.html). ThrottledRequests would need one query per operation (its dimensions
  are TableName and Operation); on a table without indexes, as the stack's, each throttled
  single-item request is one event.

Lambda sends a metric only for minutes where it is not zero, so a missing minute is zero only
once the window is known to be published: its last minute holds API Gateway's Count (every
request counts, so a minute with load has one). Until then, and when CloudWatch refuses the
call (no cloudwatch:GetMetricData), the record carries no figures and says why.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from runner.errors import BadInput
from runner.invocations import Phases
from runner.results import WindowMetrics

# CloudWatch's standard resolution for AWS services' metrics (one-minute figures).
PERIOD_S = 60
# API Gateway and Lambda figures reach CloudWatch a minute or more after the minute they count
# (the pages above: "sends metric data every minute"); waited for at most this long after the
# window's last minute closed, polling this often. A minute left unpublished is recorded as such.
# The environment variable sets the wait (0: read once, at once, e.g. where no API Gateway
# publishes, as on a moto server), up to MAX_WAIT_S.
METRICS_WAIT_S = 240.0
METRICS_POLL_S = 20.0
WAIT_VARIABLE = "MEMSWEEP_METRICS_WAIT_S"
MAX_WAIT_S = 900.0
SOURCE = "CloudWatch GetMetricData"


@dataclass(frozen=True, kw_only=True)
class MetricsOf:
    """Whose metrics a step reads: the function, the step's API (None: not known), the table."""

    function: str
    api: str
    # ApiName+Stage (REST) or ApiId+Stage (HTTP); empty when the API's name could not be read
    api_dimensions: Mapping[str, str]
    table: str


@dataclass(frozen=True)
class _Query:
    field: str  # the WindowMetrics field it fills
    namespace: str
    metric: str
    dimensions: Mapping[str, str]
    stat: str


def queries(of: MetricsOf) -> list[_Query]:
    """The metrics a step reads, each for one WindowMetrics field."""
    function = {"FunctionName": of.function}
    out = [
        _Query("lambda_invocations", "AWS/Lambda", "Invocations", function, "Sum"),
        _Query("lambda_errors", "AWS/Lambda", "Errors", function, "Sum"),
        _Query("lambda_throttles", "AWS/Lambda", "Throttles", function, "Sum"),
        _Query(
            "concurrent_executions_max", "AWS/Lambda", "ConcurrentExecutions", function, "Maximum"
        ),
    ]
    if of.api_dimensions:
        rest = of.api == "rest"
        names = ("Count", "4XXError", "5XXError") if rest else ("Count", "4xx", "5xx")
        fields = ("api_requests", "api_4xx", "api_5xx")
        for field, name in zip(fields, names, strict=True):
            stat = "SampleCount" if rest and name == "Count" else "Sum"
            out.append(_Query(field, "AWS/ApiGateway", name, of.api_dimensions, stat))
    if of.table:
        table = {"TableName": of.table}
        out += [
            _Query("dynamodb_read_throttles", "AWS/DynamoDB", "ReadThrottleEvents", table, "Sum"),
            _Query("dynamodb_write_throttles", "AWS/DynamoDB", "WriteThrottleEvents", table, "Sum"),
        ]
    return out


def metrics_wait_s() -> float:
    """The run's wait for its steps' metrics: $MEMSWEEP_METRICS_WAIT_S, else METRICS_WAIT_S; a value
    that is not seconds from 0 to MAX_WAIT_S is refused in one line (BadInput)."""
    given = os.environ.get(WAIT_VARIABLE)
    if given is None or not given.strip():
        return METRICS_WAIT_S
    try:
        wait = float(given)
    except ValueError:
        wait = math.nan
    if not 0 <= wait <= MAX_WAIT_S:  # NaN fails too
        raise BadInput(
            f"{WAIT_VARIABLE}={given[:40]!r}: must be seconds from 0 to {MAX_WAIT_S:g} (how long "
            "a run waits, after its last step, for CloudWatch to publish its steps' metrics; 0 "
            "reads them once)"
        )
    return wait


def minutes(phases: Phases) -> tuple[float, float]:
    """The whole minutes that hold the measured window: [start, end)."""
    start = math.floor(phases.window_start / PERIOD_S) * PERIOD_S
    end = math.ceil(phases.window_end / PERIOD_S) * PERIOD_S
    return start, max(end, start + PERIOD_S)


def read_window(
    cloudwatch: Any,
    of: MetricsOf,
    phases: Phases,
    *,
    concurrency: tuple[int | None, str],
    wait_s: float = METRICS_WAIT_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> WindowMetrics:
    """The window's figures, once its last minute is published (polled for at most wait_s
    after that minute closed; 0: one read now); else a record saying why there are none."""
    start, end = minutes(phases)
    asked = queries(of)
    # The minute that proves the window published: API Gateway counts every request.
    marker = "api_requests" if of.api_dimensions else "lambda_invocations"
    deadline = max(clock(), end) + wait_s if wait_s > 0 else clock()
    base = {"start": start, "end": end, "period_s": PERIOD_S, "api": of.api}
    polls = 0
    while True:
        polls += 1
        try:
            series = _get(cloudwatch, asked, start, end)
        except ClientError as exc:
            return WindowMetrics(source=_refused(exc), polls=polls, **base)
        except BotoCoreError as exc:
            return WindowMetrics(
                source=f"CloudWatch metrics unavailable: {exc}", polls=polls, **base
            )
        if any(at >= end - PERIOD_S for at, _ in series.get(marker, [])):
            return _figures(asked, series, concurrency=concurrency, polls=polls, **base)
        if clock() + METRICS_POLL_S > deadline:
            last = datetime.fromtimestamp(end - PERIOD_S, UTC).strftime("%H:%M")
            return WindowMetrics(
                source=f"CloudWatch had not published the window's last minute ({last} UTC, "
                f"{marker}) after {polls} read(s), waiting up to {wait_s:g} s: no figures",
                polls=polls,
                pending=True,
                **base,
            )
        sleep(METRICS_POLL_S)


def _get(
    cloudwatch: Any, asked: list[_Query], start: float, end: float
) -> dict[str, list[tuple[float, float]]]:
    """One GetMetricData call (its pages): (minute start, value) per field."""
    paginator = cloudwatch.get_paginator("get_metric_data")
    pages = paginator.paginate(
        MetricDataQueries=[
            {
                "Id": f"m{index}",
                "MetricStat": {
                    "Metric": {
                        "Namespace": query.namespace,
                        "MetricName": query.metric,
                        "Dimensions": [
                            {"Name": name, "Value": value}
                            for name, value in query.dimensions.items()
                        ],
                    },
                    "Period": PERIOD_S,
                    "Stat": query.stat,
                },
                "ReturnData": True,
            }
            for index, query in enumerate(asked)
        ],
        StartTime=datetime.fromtimestamp(start, UTC),
        EndTime=datetime.fromtimestamp(end, UTC),
    )
    series: dict[str, list[tuple[float, float]]] = {}
    for page in pages:
        for result in page.get("MetricDataResults") or []:
            field = asked[int(str(result["Id"])[1:])].field
            points = zip(result.get("Timestamps") or [], result.get("Values") or [], strict=False)
            series.setdefault(field, []).extend((at.timestamp(), value) for at, value in points)
    return series


def _figures(
    asked: list[_Query],
    series: dict[str, list[tuple[float, float]]],
    *,
    concurrency: tuple[int | None, str],
    **base: Any,
) -> WindowMetrics:
    """Sums over the minutes (a missing minute is zero: the window is published), the
    maximum for ConcurrentExecutions (None when no minute has it)."""
    figures: dict[str, int | None] = {}
    for query in asked:
        values = [value for _, value in series.get(query.field, [])]
        if query.stat == "Maximum":
            figures[query.field] = round(max(values)) if values else None
        else:
            figures[query.field] = round(sum(values))
    limit, where = concurrency
    return WindowMetrics(
        source=SOURCE,
        published=True,
        concurrency_limit=limit,
        concurrency_limit_source=where,
        **base,
        **figures,
    )


def _refused(exc: ClientError) -> str:
    """Why CloudWatch gave no figures, with the permission when that is the reason."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "refused")
    why = f"{code}: {error['Message']}" if error.get("Message") else code
    fix = "; grant cloudwatch:GetMetricData" if "AccessDenied" in code else ""
    return f"CloudWatch metrics unavailable ({why}){fix}"
