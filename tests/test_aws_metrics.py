"""Which layer throttled: the aws target's CloudWatch metrics for a step's window, read from a
moto server (GetMetricData with Sum, Maximum and SampleCount over dimensions, as moto 5.2
implements it), and the step they mark.

The session's moto stack (tests/conftest.py `moto_stack`) is the deployed function, REST and
HTTP API and table; each test puts the figures AWS would publish with put_metric_data at its
own hour in the past (moto keeps every test's metrics), then reads them through the target.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from runner.analysis._measure import Readings, failing_layer, measure_step
from runner.analysis._step_data import StepData
from runner.errors import BadInput
from runner.invocations import Phases
from runner.results import ErrorCount, Fidelity, Invocations, OutsideWindow, WindowMetrics
from runner.scenario import AwsTarget, Point
from tests.conftest import MOTO_STAGE

EVENTS = Path(__file__).parent / "events"
FUNCTION = f"memsweep-{MOTO_STAGE}-LambdaFunctionOverHttps"


def cloudwatch(env: dict[str, str]) -> Any:
    return boto3.client(
        "cloudwatch",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def target(moto_stack: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    from runner.targets._aws import AwsStackTarget

    for key, value in moto_stack.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MEMSWEEP_METRICS_WAIT_S", raising=False)
    monkeypatch.setattr("runner.targets._cloudwatch.METRICS_POLL_S", 0.05)
    started = AwsStackTarget(
        AwsTarget(kind="aws", stack="memsweep", stage=MOTO_STAGE, region="us-east-1")
    )
    started.start()
    started.metrics_wait_s = 0.3  # moto has it all at once: no minute to wait for
    return started


def window_at(hours_ago: int) -> Phases:
    """A 120 s window starting 10 s into a minute, `hours_ago` hours back: minutes 0, 1, 2."""
    minute = (time.time() // 3600 - hours_ago) * 3600
    return Phases(load_started=minute, window_start=minute + 10, window_end=minute + 130)


def put(env: dict[str, str], namespace: str, name: str, dims: dict[str, str], *points: Any) -> None:
    """Data points (epoch seconds, value or StatisticValues) as the service would publish."""
    data = []
    for at, value in points:
        datum: dict[str, Any] = {
            "MetricName": name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
            "Timestamp": datetime.fromtimestamp(at, UTC),
            "Unit": "Count",
        }
        datum.update({"StatisticValues": value} if isinstance(value, dict) else {"Value": value})
        data.append(datum)
    cloudwatch(env).put_metric_data(Namespace=namespace, MetricData=data)


def requests(count: int) -> dict[str, float]:
    """API Gateway's Count for a minute: one sample of 1 per request."""
    return {"SampleCount": count, "Sum": count, "Minimum": 1, "Maximum": 1}


def publish_lambda_throttled_step(env: dict[str, str], phases: Phases) -> None:
    """A step of 900 requests over minutes 0-2 of which Lambda throttled 412 at a concurrency
    of 10, API Gateway counting them all (its REST API, stage awstest); a few figures outside
    the minutes or of another function that must not count."""
    minute = phases.load_started
    function = {"FunctionName": FUNCTION}
    rest = {"ApiName": f"DynamoDBOperations-{MOTO_STAGE}", "Stage": MOTO_STAGE}
    for offset, invoked, throttled, peak, count, four in (
        (5, 150, 50, 6, 200, 0),
        (65, 150, 200, 10, 350, 0),
        (125, 188, 162, 9, 350, 0),
    ):
        at = minute + offset
        put(env, "AWS/Lambda", "Invocations", function, (at, invoked))
        put(env, "AWS/Lambda", "Throttles", function, (at, throttled))
        put(env, "AWS/Lambda", "ConcurrentExecutions", function, (at, peak))
        put(env, "AWS/Lambda", "Errors", function, (at, 0))
        put(env, "AWS/ApiGateway", "Count", rest, (at, requests(count)))
        put(env, "AWS/ApiGateway", "4XXError", rest, (at, four))
        put(env, "AWS/ApiGateway", "5XXError", rest, (at, throttled))
    put(env, "AWS/Lambda", "Throttles", function, (minute - 30, 999))  # the minute before
    put(env, "AWS/Lambda", "Throttles", function, (minute + 185, 999))  # the minute after
    put(env, "AWS/Lambda", "Throttles", {"FunctionName": "another"}, (minute + 65, 999))


def test_given_a_steps_metrics_in_cloudwatch_then_the_target_reads_its_minutes_figures(
    target: Any, moto_stack: dict[str, str]
) -> None:
    phases = window_at(100)
    # GIVEN CloudWatch holding a Lambda-throttled step's figures (and some that are not its)
    publish_lambda_throttled_step(moto_stack, phases)
    # WHEN the target reads the window's metrics
    metrics = target.window_metrics(phases)
    # THEN the minutes around the window, summed (peak concurrency: the maximum)
    assert metrics.published and metrics.source == "CloudWatch GetMetricData"
    assert (metrics.start, metrics.end, metrics.period_s) == (
        phases.load_started,
        phases.load_started + 180,
        60,
    )
    assert metrics.api == "rest" and metrics.polls == 1
    assert (metrics.lambda_invocations, metrics.lambda_throttles, metrics.lambda_errors) == (
        488,
        412,
        0,
    )
    assert metrics.concurrent_executions_max == 10
    assert (metrics.api_requests, metrics.api_4xx, metrics.api_5xx) == (900, 0, 412)
    # AND a table with no throttle events reads 0 once the window is published
    assert (metrics.dynamodb_read_throttles, metrics.dynamodb_write_throttles) == (0, 0)
    # AND the concurrency limit, or why it is unknown (moto has no GetAccountSettings)
    assert metrics.concurrency_limit is None
    assert "the account's Lambda concurrency could not be read" in (
        metrics.concurrency_limit_source
    )


def test_given_an_http_api_step_then_its_metrics_are_the_http_apis_by_id(
    target: Any, moto_stack: dict[str, str]
) -> None:
    from runner.targets._aws import AwsStackTarget
    from tests.test_aws_target import small_stack

    phases = window_at(101)
    minute = phases.load_started
    # GIVEN a stack whose HTTP API's route is at its default endpoint (moto's CloudFormation
    # keeps no HttpApi resource: the id comes from the output's host, as on AWS)
    http_url = "https://h77p1d.execute-api.us-east-1.amazonaws.com/DynamoDBManager"
    outputs = {
        "FunctionName": FUNCTION,
        "ApiUrl": "https://r1.execute-api.us-east-1.amazonaws.com/httpmetrics/DynamoDBManager",
        "HttpApiRouteUrl": http_url,
        "TableName": "lambda-apigateway",
    }
    # AND an HTTP API step's figures (metrics 4xx/5xx/Count by ApiId and its $default stage)
    http = {"ApiId": "h77p1d", "Stage": "$default"}
    for offset in (5, 65, 125):
        put(moto_stack, "AWS/ApiGateway", "Count", http, (minute + offset, 100))
        put(moto_stack, "AWS/ApiGateway", "4xx", http, (minute + offset, 30))
        put(moto_stack, "AWS/ApiGateway", "5xx", http, (minute + offset, 1))
    with small_stack(moto_stack, "httpmetrics", outputs):
        http_target = AwsStackTarget(
            AwsTarget(kind="aws", stack="memsweep", stage="httpmetrics", region="us-east-1")
        )
        http_target.metrics_wait_s = 0
        with http_target:
            http_target.set_api("http")
            metrics = http_target.window_metrics(phases)
    # THEN the HTTP API's figures are read, not the REST API's
    assert metrics.published and metrics.api == "http", metrics.source
    assert (metrics.api_requests, metrics.api_4xx, metrics.api_5xx) == (300, 90, 3)


def test_given_the_last_minute_not_published_yet_then_no_figures_and_why(
    target: Any, moto_stack: dict[str, str]
) -> None:
    phases = window_at(102)
    rest = {"ApiName": f"DynamoDBOperations-{MOTO_STAGE}", "Stage": MOTO_STAGE}
    # GIVEN only the window's first minute in CloudWatch (the last one still on its way)
    put(moto_stack, "AWS/ApiGateway", "Count", rest, (phases.load_started + 5, requests(200)))
    put(moto_stack, "AWS/Lambda", "Throttles", {"FunctionName": FUNCTION}, (phases.load_started, 0))
    # WHEN a step reads them as it ends (once), and the run after its last step (waiting)
    once = target.window_metrics(phases)
    metrics = target.window_metrics(phases, wait=True)
    # THEN the step records that its metrics were not published: no zeros read as no throttles,
    # and pending, to be read again after the run
    assert once.polls == 1 and once.pending and not once.published
    assert not metrics.published and metrics.polls >= 2
    assert "had not published the window's last minute" in metrics.source
    assert metrics.lambda_throttles is None and metrics.api_requests is None
    # AND failing_layer does not call a step throttled (or not) from them
    errors = [ErrorCount(request="read", kind="HTTP 429", count=60)]
    assert failing_layer(100, errors, Invocations(source="CloudWatch Logs"), metrics) is None


def test_given_access_denied_then_the_step_records_why_and_the_permission(
    target: Any,
) -> None:
    from botocore.awsrequest import AWSResponse, HTTPHeaders

    recorded = json.loads((EVENTS / "cloudwatch-get-metric-data-access-denied.json").read_text())

    def refuse(**_: Any) -> tuple[Any, dict[str, Any]]:
        url = "https://monitoring.us-east-1.amazonaws.com"
        return AWSResponse(url, 403, HTTPHeaders(), None), recorded

    # GIVEN credentials without cloudwatch:GetMetricData (AWS's answer, recorded)
    target.cloudwatch.meta.events.register("before-call.cloudwatch.GetMetricData", refuse)
    # WHEN a step's window is read
    metrics = target.window_metrics(window_at(103))
    # THEN no crash, no figures, and the reason with the permission to grant
    assert not metrics.published and metrics.lambda_throttles is None
    assert metrics.source.startswith("CloudWatch metrics unavailable (AccessDenied: User: ")
    assert metrics.source.endswith("; grant cloudwatch:GetMetricData")
    assert "\n" not in metrics.source


def test_given_a_bad_wait_in_the_environment_then_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from runner.targets._cloudwatch import metrics_wait_s

    for bad in ("-1", "soon", "nan", "1e9"):
        monkeypatch.setenv("MEMSWEEP_METRICS_WAIT_S", bad)
        with pytest.raises(BadInput) as refused:
            metrics_wait_s()
        assert str(refused.value).startswith(f"MEMSWEEP_METRICS_WAIT_S='{bad}': must be seconds")
    monkeypatch.setenv("MEMSWEEP_METRICS_WAIT_S", "0")
    assert metrics_wait_s() == 0


def step_with(errors: dict[str, int], requests_sent: int, phases: Phases) -> StepData:
    failed = sum(errors.values())
    return StepData(
        step="step01-128mb-r1",
        counts={"read": [requests_sent, failed]},
        errors={f"read\t{kind}": count for kind, count in errors.items()},
        load_started=phases.load_started,
        load_ended=phases.window_end,
        measure_from=phases.window_start,
        measure_until=phases.window_end,
    )


def measured(data: StepData, phases: Phases, metrics: WindowMetrics | None, invoked: int) -> Any:
    readings = Readings(
        delivery_opened=None,
        delivery_closed=None,
        host_opened=None,
        host_closed=None,
        fidelity=Fidelity(mode="aws", level="real"),
        invocations=Invocations(count=invoked, capacity_records=invoked, source="CloudWatch Logs"),
        outside=OutsideWindow(),
        metrics=metrics,
    )
    return measure_step(
        data,
        readings,
        index=1,
        point=Point(memory_mb=128),
        repeat=1,
        phases=phases,
        overhead_s=None,
        open_model=False,
        locust_files=[],
        interrupted=False,
    )


def test_given_429s_that_lambda_throttles_explain_then_the_step_names_lambda_and_is_not_valid(
    target: Any, moto_stack: dict[str, str]
) -> None:
    phases = window_at(104)
    publish_lambda_throttled_step(moto_stack, phases)
    metrics = target.window_metrics(phases)
    # GIVEN a step whose client saw 412 of 900 requests fail with 429, the logs 488 invocations
    data = step_with({"HTTP 429": 412}, 900, phases)
    step, problems = measured(data, phases, metrics, invoked=488)
    # THEN it is throttled by Lambda, with the figures, and not valid (not a memory effect)
    assert [p.kind for p in problems] == ["throttled"]
    assert problems[0].detail.startswith(
        "Lambda throttled 412 of 900 invocation requests (ConcurrentExecutions peaked at 10"
    )
    assert "412 of 900 requests failed with 5xx or 429" in problems[0].detail
    assert "a limit, not a memory effect" in problems[0].detail
    assert not step.valid and step.metrics == metrics
    # AND with the account's limit known (a new account's 10) the line says it was the limit
    limited = metrics.model_copy(
        update={"concurrency_limit": 10, "concurrency_limit_source": "the account's limit"}
    )
    named = failing_layer(900, step.errors, step.invocations, limited)
    assert named is not None and "peaked at 10: the limit, the account's limit)" in named.detail
    # AND 5 throttled answers in 900 requests (0.6 %, under the default error rate's 1 %)
    # leave the step a measurement: the error rate and the CloudWatch table count them
    few_errors = [ErrorCount(request="ping", kind="HTTP 429", count=5)]
    few = failing_layer(900, few_errors, step.invocations, metrics)
    assert few is None
    # AND the throttle does not stop the sweep: another size may stay under the limit
    from runner.analysis import STOPS_THE_SWEEP

    assert "throttled" not in STOPS_THE_SWEEP


def test_given_metrics_published_after_the_step_then_the_run_marks_it_throttled_at_its_end(
    target: Any, moto_stack: dict[str, str]
) -> None:
    from runner.analysis import with_late_metrics

    phases = window_at(106)
    # GIVEN a step measured before CloudWatch had its minutes: 412 of 900 answers were 429s,
    # the step valid for now (the error rate judges it), its metrics pending
    data = step_with({"HTTP 429": 412}, 900, phases)
    pending = target.window_metrics(phases)
    step, problems = measured(data, phases, pending, invoked=488)
    assert pending.pending and problems == [] and step.valid
    # WHEN the run reads them again after its last step, the minutes now published
    publish_lambda_throttled_step(moto_stack, phases)
    late = target.window_metrics(phases, api=step.api, wait=True)
    judged = with_late_metrics(step, late)
    # THEN the step is throttled by Lambda, with the figures, and not valid: as if read at once
    assert late.published and not late.pending and judged.metrics == late
    assert [p.kind for p in judged.problems] == ["throttled"] and not judged.valid
    assert judged.problems[0].detail.startswith("Lambda throttled 412 of 900 invocation requests")
    # AND judging it again changes nothing (the layer replaced, not added twice)
    assert with_late_metrics(judged, late).problems == judged.problems


def test_given_errors_but_no_throttles_then_the_step_is_not_called_throttled(
    target: Any, moto_stack: dict[str, str]
) -> None:
    phases = window_at(105)
    minute = phases.load_started
    rest = {"ApiName": f"DynamoDBOperations-{MOTO_STAGE}", "Stage": MOTO_STAGE}
    function = {"FunctionName": FUNCTION}
    # GIVEN a published window where the function failed 60 of 100 calls, nothing throttled
    for offset, count in ((5, 30), (65, 40), (125, 30)):
        put(moto_stack, "AWS/ApiGateway", "Count", rest, (minute + offset, requests(count)))
        put(moto_stack, "AWS/ApiGateway", "5XXError", rest, (minute + offset, count * 0.6))
        put(moto_stack, "AWS/Lambda", "Invocations", function, (minute + offset, count))
        put(moto_stack, "AWS/Lambda", "Errors", function, (minute + offset, count * 0.6))
    metrics = target.window_metrics(phases)
    assert metrics.published and metrics.lambda_throttles == 0 and metrics.api_5xx == 60
    # WHEN the step is measured
    step, problems = measured(step_with({"HTTP 502": 60}, 100, phases), phases, metrics, 100)
    # THEN it is not throttled: the function's own failures are the error rate's to judge
    assert "throttled" not in [p.kind for p in problems] and step.valid
    # AND when the logs say the failures never reached the function, the layer is named and the
    # line says the metrics counted too few throttles to explain them (one reading, two sources)
    named = failing_layer(100, step.errors, Invocations(count=5, capacity_records=5), metrics)
    assert named is not None and named.kind == "target failed"
    assert named.detail.startswith("API Gateway: 60 of 100 requests failed")
    assert "CloudWatch counted too few throttles to explain them (Lambda Throttles 0" in (
        named.detail
    )


def test_given_a_throttled_step_then_the_report_and_summary_show_its_figures_and_old_files_read(
    tmp_path: Path,
) -> None:
    from runner.outputs import write_exports, write_report
    from runner.results import Problem, read_results, write_results
    from tests.test_report import make_results, make_step

    # GIVEN a run whose 128 MB step Lambda throttled and whose 1024 MB step's metrics were
    # not published in time
    throttled = make_step(index=1, memory=128, median_ms=60.0, billed_ms=55.0)
    line = "Lambda throttled 412 of 900 invocation requests (ConcurrentExecutions peaked at 10)"
    throttled.problems = [Problem(kind="throttled", detail=line)]
    throttled.valid = False
    throttled.metrics = WindowMetrics(
        source="CloudWatch GetMetricData",
        published=True,
        start=1_790_000_040.0,
        end=1_790_000_160.0,
        polls=3,
        api="rest",
        lambda_invocations=488,
        lambda_errors=0,
        lambda_throttles=412,
        concurrent_executions_max=10,
        concurrency_limit=10,
        concurrency_limit_source="the account's unreserved concurrency in us-east-1",
        api_requests=900,
        api_4xx=0,
        api_5xx=412,
        dynamodb_read_throttles=0,
        dynamodb_write_throttles=0,
    )
    late = make_step(index=2, memory=1024, median_ms=12.0, billed_ms=12.0)
    late.metrics = WindowMetrics(
        source="CloudWatch had not published the window's last minute (13:02 UTC, api_requests)",
        start=1_790_000_100.0,
        end=1_790_000_220.0,
        polls=13,
    )
    path = tmp_path / "results.json"
    write_results(make_results([throttled, late]), path)
    # WHEN the report and the exports are written
    html = write_report([path]).read_text()
    summary = next(p for p in write_exports(path) if p.name == "summary.md").read_text()
    # THEN the CloudWatch table shows each step's figures or why it has none
    table = html[
        html.index('<table class="cloudwatch">') : html.index(
            "</table>", html.index('<table class="cloudwatch">')
        )
    ]
    assert '<span class="fail">412</span> / 900' in table
    assert '10 / <span title="the account&#39;s unreserved concurrency in us-east-1">10</span>' in (
        table
    )
    assert "0 / 412 of 900 (rest)" in table
    assert "had not published the window&#39;s last minute" in table
    # AND the step's problem names the layer in the steps table and in summary.md
    assert line in html and line in summary
    # AND a results.json written before the metrics (no `metrics` key) still reads
    data = json.loads(path.read_text())
    for step in data["steps"]:
        step.pop("metrics", None)
    path.write_text(json.dumps(data))
    assert [s.metrics for s in read_results(path).steps] == [None, None]
