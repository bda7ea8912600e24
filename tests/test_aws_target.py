"""The aws target against a moto server: memory, architecture and handler set per step and
always restored; the API type's URL read from the stack.

The stack is deployed to moto with osls (the real deploy path). moto cannot invoke Lambda
functions, so the load goes to a local stack through the target's `url` override (what a
custom domain in front of the API would use); memory control, the API key and the logs go
through the AWS APIs as on a real account.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest

from runner.invocations import Phases
from runner.results import read_results
from runner.scenario import AwsTarget, UrlTarget
from runner.stack import PROJECT_ROOT, RateLimit, default_rate_limit
from runner.targets import LocalStackProcess
from runner.targets._aws import AwsStackTarget, AwsTargetError, http_route_url
from runner.targets._url import UrlOnlyTarget
from tests.conftest import MOTO_API_KEY, MOTO_STAGE
from tests.test_sweep import finish, loading, start_run

STAGE = MOTO_STAGE
FUNCTION = f"memsweep-{STAGE}-LambdaFunctionOverHttps"
API_KEY = MOTO_API_KEY

SCENARIO = """\
name: aws target
target: {{kind: aws, stack: memsweep, stage: {stage}, region: us-east-1, url: "{url}"}}
sweep: {{memory_mb: [512, 1024], settle_s: 0, warmup_s: 0}}
load:
  stages: [{{users: 2, duration_s: {duration}}}]
  think_time: {{min_s: 0.05, max_s: 0.1}}
requests:
  - name: ping
    body: {{operation: ping}}
workers: {{local: 1}}
"""


def client(service: Any, env: dict[str, str]) -> Any:
    return boto3.client(
        service,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def memory_of(env: dict[str, str]) -> int:
    configuration = client("lambda", env).get_function_configuration(FunctionName=FUNCTION)
    return int(configuration["MemorySize"])


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[LocalStackProcess]:
    stack = LocalStackProcess(
        [
            "--api-key",
            API_KEY,
            "--no-calibrate",
            "--memory",
            "1024",
            "--log",
            str(tmp_path / "local.log"),
        ]
    )
    stack.start()
    yield stack
    stack.stop()


def run_with(tmp_path: Path, env: dict[str, str], url: str, duration: float) -> Any:
    path = tmp_path / "aws.yaml"
    path.write_text(SCENARIO.format(stage=STAGE, url=url, duration=duration))
    # moto publishes no API Gateway metrics: read each step's once instead of waiting for them
    env = {**env, "MEMSWEEP_METRICS_WAIT_S": "0"}
    old = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        return start_run(path, tmp_path)
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def shipping_logs(local_log: Path, env: dict[str, str]) -> Iterator[list[int]]:
    """What Lambda does with a function's output, for the local stack's real invocations:
    every START/END/REPORT and handler line it writes goes to the function's CloudWatch log
    group (moto's), stamped when it was written. Yields the count of lines shipped."""
    logs = client("logs", env)
    group, stream = f"/aws/lambda/{FUNCTION}", f"2026/12/07/[$LATEST]{time.time_ns()}"
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    shipped = [0]
    stop = threading.Event()

    def ship() -> None:
        offset = 0
        while not stop.is_set():
            stop.wait(0.2)
            if not local_log.exists():
                continue
            with local_log.open("rb") as log:
                log.seek(offset)
                text = log.read()
            complete = text[: text.rfind(b"\n") + 1]
            offset += len(complete)
            lines = [
                line
                for line in complete.decode().splitlines()
                if line and "memsweep.arrival" not in line  # the local stack's own, not AWS's
            ]
            if lines:
                now = int(time.time() * 1000)
                logs.put_log_events(
                    logGroupName=group,
                    logStreamName=stream,
                    logEvents=[{"timestamp": now, "message": line} for line in lines],
                )
                shipped[0] += len(lines)

    shipper = threading.Thread(target=ship, daemon=True)
    shipper.start()
    try:
        yield shipped
    finally:
        stop.set()
        shipper.join(timeout=10)


def test_given_a_sweep_then_each_step_runs_at_its_memory_and_the_original_is_restored(
    moto_stack: dict[str, str], endpoint: LocalStackProcess, tmp_path: Path
) -> None:
    assert memory_of(moto_stack) == 128
    # GIVEN the function's log lines reaching CloudWatch Logs as the sweep runs (the local
    # stack's real invocations behind the aws target's URL, shipped as Lambda ships them)
    with shipping_logs(tmp_path / "local.log", moto_stack) as shipped:
        code, stderr = finish(run_with(tmp_path, moto_stack, endpoint.url, 2))
    assert code == 0, stderr
    assert shipped[0] > 0
    results = read_results(tmp_path / "reports" / "test" / "results.json")
    assert [s.fidelity.configured_memory_mb for s in results.steps if s.fidelity] == [512, 1024]
    assert all(step.requests > 0 and step.failures == 0 for step in results.steps)
    assert results.target.kind == "aws" and results.target.function == FUNCTION
    assert results.target.original_memory_mb == 128 and results.target.restored is True
    assert memory_of(moto_stack) == 128
    # AND the run's own AWS charges: estimated as it started, measured as it ended, Lambda's
    # requests and GB-seconds from the logged invocations' billed time at each step's memory
    # (only log bytes rest on an assumption; a step with no log lines: tests/test_test_cost.py)
    assert "AWS charges of this test: about $" in stderr
    assert "AWS charges of this test, measured: $" in stderr
    estimate, measured = results.test_cost_estimate, results.test_cost
    assert estimate is not None and "60 ms billed per call" in estimate.basis
    assert measured is not None and not measured.estimated
    api_requests = next(line for line in measured.lines if line.service == "API Gateway REST")
    assert api_requests.quantity >= sum(step.requests for step in results.steps)
    invocations = sum(
        step.invocations.count
        + step.outside.before.count
        + step.outside.warmup.count
        + step.outside.after_window
        + step.outside.unattributed
        for step in results.steps
        if step.invocations is not None
    )
    lambda_requests = next(line for line in measured.lines if line.service == "Lambda requests")
    compute = next(line for line in measured.lines if line.service == "Lambda compute")
    assert lambda_requests.quantity >= invocations > 0
    assert not lambda_requests.estimated and not compute.estimated and compute.quantity > 0
    assert "no invocations in the function's log" not in measured.basis
    # AND the function's own Durations from CloudWatch, for duration thresholds as on the
    # local stack: a histogram of the window's invocations and their per-second batches
    for step in results.steps:
        assert step.invocations is not None and step.invocations.count > 0
        assert step.invocations.duration_histogram and step.invocations.duration_by_second
    # AND `report A B` of this run against itself lines up its measured charges by service
    # and compares the function's own durations (no change: the same figures)
    from runner.analysis import analyse, compare_run_pair

    same = analyse(results, intervals=False)
    pair = compare_run_pair(same, same)
    assert pair.test_charges is not None and pair.test_charges.total.delta == 0.0
    assert [c.service for c in pair.test_charges.services] == [
        line.service for line in measured.lines
    ]
    assert {d.metric for d in pair.differences if d.of_function} == {
        "duration_p50_ms",
        "duration_p95_ms",
    }


def test_given_the_endpoint_dies_mid_sweep_then_exit_3_and_memory_restored(
    moto_stack: dict[str, str], endpoint: LocalStackProcess, tmp_path: Path
) -> None:
    run = run_with(tmp_path, moto_stack, endpoint.url, 8)
    assert wait(lambda: loading(run))
    time.sleep(1.5)
    assert memory_of(moto_stack) == 512
    endpoint.stop(signal.SIGKILL)
    code, stderr = finish(run)
    assert code == 3, stderr
    assert "stopped answering" in stderr
    assert memory_of(moto_stack) == 128
    assert read_results(tmp_path / "reports" / "test" / "results.json").target.restored is True


def test_given_sigint_mid_sweep_then_exit_130_and_memory_restored(
    moto_stack: dict[str, str], endpoint: LocalStackProcess, tmp_path: Path
) -> None:
    run = run_with(tmp_path, moto_stack, endpoint.url, 20)
    assert wait(lambda: loading(run))
    time.sleep(1.5)
    assert memory_of(moto_stack) == 512
    os.killpg(run.pid, signal.SIGINT)
    code, stderr = finish(run, timeout=60)
    assert code == 130, stderr
    assert memory_of(moto_stack) == 128
    results = read_results(tmp_path / "reports" / "test" / "results.json")
    assert results.status == "interrupted" and results.target.restored is True


def test_given_no_such_stack_then_exit_2_naming_the_stack_and_the_fix_before_the_run(
    moto_stack: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "aws.yaml"
    path.write_text(SCENARIO.format(stage="nosuchstage", url="http://127.0.0.1:9/x", duration=1))
    done = subprocess.run(
        [sys.executable, "-m", "runner", str(path), "--out", str(tmp_path / "out"), "--quiet"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **moto_stack},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert one_line(done) == (
        "memsweep: stack memsweep-nosuchstage not found in us-east-1: deploy it with `npx "
        "serverless deploy --stage nosuchstage --region us-east-1`, or name the deployed one "
        "with --stage/--region/--stack"
    )
    assert not (tmp_path / "out").exists()  # a run that never started: no results, no report


def wait(condition: Any, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_given_report_lines_in_cloudwatch_then_the_window_is_summarised(
    moto_stack: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.scenario import AwsTarget
    from runner.targets._aws import AwsStackTarget

    for key, value in moto_stack.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("runner.targets._aws.LOG_SETTLE_S", 0.1)
    target = AwsStackTarget(
        AwsTarget(kind="aws", stack="memsweep", stage=STAGE, region="us-east-1")
    )
    target.start()
    logs = client("logs", moto_stack)
    group = f"/aws/lambda/{FUNCTION}"
    now = time.time()
    lines = [
        "REPORT RequestId: a\tDuration: 10.00 ms\tBilled Duration: 300 ms\tMemory Size: 512 MB\t"
        "Max Memory Used: 80 MB\tInit Duration: 289.50 ms\t",
        '{"type": "memsweep.invocation", "requestId": "a", "operation": "create", '
        '"status": 200, "consumedCapacity": {"write": 1.0, "read": 0.0}}',
        "REPORT RequestId: b\tDuration: 4.00 ms\tBilled Duration: 4 ms\tMemory Size: 512 MB\t"
        "Max Memory Used: 81 MB\t",
        "START RequestId: b Version: $LATEST",
    ]
    put_log_lines(logs, "2026/11/27/[$LATEST]abc", lines, at=now)
    long_ago, _ = target.invocations(Phases(now - 200, now - 190, now - 150))
    assert long_ago.count == 0
    inside, outside = target.invocations(Phases(now - 10, now - 1, now + 5))
    assert (inside.count, inside.cold_starts, inside.billed_ms_total) == (2, 1, 304)
    assert inside.write_units == 1.0 and inside.max_memory_used_mb == 81
    assert inside.source == f"CloudWatch Logs {group}"
    # The cold call ended at `now` after 299.5 ms of init and duration: its request arrived
    # before a window opening at now - 0.2, so it belongs to the warm-up, not the window.
    window, outside = target.invocations(Phases(now - 10, now - 0.2, now + 5))
    assert (window.count, window.cold_starts) == (1, 0)
    assert (outside.warmup.count, outside.warmup.cold_starts) == (1, 1)


EVENTS = Path(__file__).parent / "events"


def test_given_a_json_format_function_with_a_custom_log_group_then_the_same_as_text(
    moto_stack: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.scenario import AwsTarget
    from runner.targets._aws import AwsStackTarget

    for key, value in moto_stack.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("runner.targets._aws.LOG_SETTLE_S", 0.1)
    recorded = json.loads((EVENTS / "cloudwatch-json-format-invocations.json").read_text())
    logging_config = json.loads((EVENTS / "lambda-logging-config-json.json").read_text())
    target = AwsStackTarget(
        AwsTarget(kind="aws", stack="memsweep", stage=STAGE, region="us-east-1")
    )

    # GIVEN a function whose LoggingConfig names the JSON format and its own group (moto does
    # not keep LoggingConfig: its answer gets the documented shape added)
    def with_logging_config(parsed: dict[str, Any], **_: Any) -> None:
        parsed.update(logging_config)

    target.lambda_client.meta.events.register(
        "after-call.lambda.GetFunctionConfiguration", with_logging_config
    )
    target.start()
    group = logging_config["LoggingConfig"]["LogGroup"]
    assert (target.log_group, target.log_format) == (group, "JSON")
    logs = client("logs", moto_stack)
    logs.create_log_group(logGroupName=group)
    # AND one cold and one warm invocation there as JSON records, and the same two as text
    # lines in the default group, ten hours ago (the module's moto keeps every case's logs)
    at = time.time() - 36_000
    put_log_lines(logs, "2026/12/06/[$LATEST]json", recorded["json"], at=at, group=group)
    put_log_lines(logs, "2026/12/06/[$LATEST]json", recorded["text"], at=at)
    phases = Phases(at - 10, at - 5, at + 5)
    from_json, _ = target.invocations(phases)
    target.log_group, target.log_format = f"/aws/lambda/{FUNCTION}", "Text"
    from_text, _ = target.invocations(phases)
    # THEN both give the same invocations, billed duration, cold starts and capacity
    assert from_json.source == f"CloudWatch Logs {group}"
    figures = (
        "count",
        "cold_starts",
        "billed_ms_total",
        "init_ms_max",
        "write_units",
        "read_units",
    )
    assert [getattr(from_json, f) for f in figures] == [getattr(from_text, f) for f in figures]
    assert (from_json.count, from_json.cold_starts, from_json.billed_ms_total) == (2, 1, 304)
    assert from_json.read_units == 0.5 and from_json.capacity_records == 2


def _answer_from(path: Path) -> Callable[..., Any]:
    """A before-call hook answering one call with a recorded response (moto does not
    implement it): botocore sends nothing for that call."""
    from botocore.awsrequest import AWSResponse, HTTPHeaders

    recorded = json.loads(path.read_text())
    status = recorded.get("ResponseMetadata", {}).get("HTTPStatusCode", 200)

    def answer(**_: Any) -> tuple[Any, dict[str, Any]]:
        url = "https://lambda.us-east-1.amazonaws.com"
        return AWSResponse(url, status, HTTPHeaders(), None), recorded

    return answer


def _started_target(moto_stack: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    from runner.scenario import AwsTarget
    from runner.targets._aws import AwsStackTarget

    for key, value in moto_stack.items():
        monkeypatch.setenv(key, value)
    target = AwsStackTarget(
        AwsTarget(kind="aws", stack="memsweep", stage=STAGE, region="us-east-1")
    )
    target.start()
    return target


def _plan(users: int) -> Any:
    from runner.scenario import Scenario

    return Scenario.model_validate(
        {
            "name": "limits",
            "target": {"kind": "aws", "stack": "memsweep", "stage": STAGE},
            "sweep": {"memory_mb": [128]},
            "load": {"model": "closed", "stages": [{"users": users, "duration_s": 10}]},
            "requests": [{"name": "read", "body": {"operation": "read"}}],
        }
    )


def test_given_a_new_accounts_concurrency_then_a_larger_plan_is_refused_and_a_close_one_warned(
    moto_stack: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.scenario import concurrency_check

    target = _started_target(moto_stack, monkeypatch)
    # GIVEN an account whose concurrency is a new account's 10 (recorded: moto has no call)
    target.lambda_client.meta.events.register(
        "before-call.lambda.GetAccountSettings",
        _answer_from(EVENTS / "lambda-get-account-settings-new-account.json"),
    )
    limit, where = target.concurrency_limit()
    assert limit == 10 and where.startswith("the account's unreserved concurrency in us-east-1")
    # THEN 20 users are refused in one line saying what to do; 9 are warned about; 5 pass
    refused, line = concurrency_check(_plan(20), limit, where)
    assert refused and line is not None and "\n" not in line
    assert line.startswith("the plan's peak concurrency is 20 (20 users at the peak), above ")
    assert "'Concurrent executions' quota" in line
    warned, warning = concurrency_check(_plan(9), limit, where)
    assert not warned and warning is not None and warning.startswith("warning: ")
    assert concurrency_check(_plan(5), limit, where) == (False, None)
    # AND a function's reserved concurrency (moto keeps it) is the limit instead
    client("lambda", moto_stack).put_function_concurrency(
        FunctionName=target.function, ReservedConcurrentExecutions=4
    )
    try:
        assert target.concurrency_limit() == (4, f"{target.function}'s reserved concurrency")
    finally:
        client("lambda", moto_stack).delete_function_concurrency(FunctionName=target.function)


def test_given_a_memory_size_the_account_refuses_then_awss_message_and_what_to_do(
    moto_stack: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from runner.targets._aws import AwsTargetError

    target = _started_target(moto_stack, monkeypatch)
    original = target.original_memory
    refusal = _answer_from(EVENTS / "lambda-update-memory-refused.json")
    target.lambda_client.meta.events.register(
        "before-call.lambda.UpdateFunctionConfiguration", refusal
    )
    with pytest.raises(AwsTargetError) as refused:
        target.set_memory(10240)
    said = str(refused.value)
    assert "'MemorySize' value failed to satisfy constraint" in said  # AWS's own message
    assert "This account does not allow 10240 MB" in said and "Service Quotas" in said
    assert "\n" not in said
    # AND nothing changed on the function: restoring finds it as it was
    target.lambda_client.meta.events.unregister(
        "before-call.lambda.UpdateFunctionConfiguration", refusal
    )
    target.restore()
    configuration = client("lambda", moto_stack).get_function_configuration(
        FunctionName=target.function
    )
    assert configuration["MemorySize"] == original


def _report(request_id: str) -> str:
    return (
        f"REPORT RequestId: {request_id}\tDuration: 4.00 ms\tBilled Duration: 4 ms\t"
        "Memory Size: 512 MB\tMax Memory Used: 81 MB\t"
    )


def _record(request_id: str, status: int, error: str = "") -> str:
    record = {"type": "memsweep.invocation", "requestId": request_id, "status": status}
    return json.dumps(record | ({"error": error} if error else {}))


def put_log_lines(
    logs: Any, stream: str, lines: Sequence[str], *, at: float, group: str = ""
) -> None:
    """The lines in a stream of their own in the function's log group (or `group`), as Lambda
    writes them: stamped from `at` (epoch s), 10 ms apart."""
    group = group or f"/aws/lambda/{FUNCTION}"
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[
            {"timestamp": int((at + i * 0.01) * 1000), "message": line}
            for i, line in enumerate(lines)
        ],
    )


# What the function's log holds in a step of 100 requests the client saw fail 90 times with
# HTTP 500/502, and which layer that names (None: the function's own failures, e.g. timeouts,
# which the error rate judges as a memory effect).
DYNAMODB_DOWN = (
    'EndpointConnectionError: Could not connect to the endpoint URL: "https://dynamodb.'
    'us-east-1.amazonaws.com/"'
)
LAYERS = {
    "dynamodb": (
        [_report(f"r{i}") for i in range(100)]
        + [_record(f"r{i}", 500, DYNAMODB_DOWN) for i in range(90)]
        + [_record(f"r{i}", 200) for i in range(90, 100)],
        "DynamoDB: 90 of 100 requests failed with 5xx or 429; the function's calls to DynamoDB "
        f"failed in 90 of them ({DYNAMODB_DOWN})",
    ),
    "api gateway": (
        [_report(f"r{i}") for i in range(10)] + [_record(f"r{i}", 200) for i in range(10)],
        "API Gateway: 90 of 100 requests failed with 5xx or 429 with 10 Lambda invocation(s) "
        "in the window: they failed in front of the function",
    ),
    "the function itself": ([_report(f"r{i}") for i in range(100)], None),
}


@pytest.mark.parametrize("layer", list(LAYERS))
def test_given_5xx_most_of_a_step_then_the_layer_its_logs_point_to_is_named(
    moto_stack: dict[str, str], monkeypatch: pytest.MonkeyPatch, layer: str
) -> None:
    from runner.analysis._measure import failing_layer
    from runner.results import ErrorCount
    from runner.scenario import AwsTarget
    from runner.targets._aws import AwsStackTarget

    lines, expected = LAYERS[layer]
    for key, value in moto_stack.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("runner.targets._aws.LOG_SETTLE_S", 0.1)
    target = AwsStackTarget(
        AwsTarget(kind="aws", stack="memsweep", stage=STAGE, region="us-east-1")
    )
    target.start()
    # GIVEN the function's log in CloudWatch (moto) for a step whose client saw 90 of 100 fail
    logs = client("logs", moto_stack)
    # An hour apart per case: the module's moto keeps every case's log group
    at = time.time() - 3600 * (1 + list(LAYERS).index(layer))
    put_log_lines(logs, f"2026/12/06/[$LATEST]{layer.replace(' ', '')}", lines, at=at)
    window, _ = target.invocations(Phases(at - 10, at - 5, at + 5))
    errors = [ErrorCount(request="read", kind="HTTP 500", count=90)]
    # THEN the layer is named, with the figures that point to it
    named = failing_layer(100, errors, window)
    if expected is None:
        assert named is None
    else:
        assert named is not None and named.detail.startswith(expected), named
        assert named.kind == "target failed"
    # AND a step where errors are not most of it names no layer
    assert (
        failing_layer(100, [ErrorCount(request="read", kind="HTTP 500", count=20)], window) is None
    )


def test_given_target_flags_then_a_local_scenario_runs_against_the_aws_stack(
    moto_stack: dict[str, str], tmp_path: Path
) -> None:
    # scenarios/memory_sweep.yaml names the local target; the flags point it at AWS.
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "runner",
            "scenarios/memory_sweep.yaml",
            "--target",
            "aws",
            "--stage",
            "nosuchstage",
            "--region",
            "us-east-1",
            "--out",
            str(tmp_path),
            "--quiet",
        ],
        cwd=PROJECT_ROOT,
        env={**os.environ, **moto_stack},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "stack memsweep-nosuchstage not found in us-east-1" in one_line(done)


def one_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def without_aws(**keep: str) -> dict[str, str]:
    """This environment with no AWS configuration at all: no variables, files or IMDS."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
        # boto3 would ask the EC2 instance metadata service last: no traffic off loopback.
        AWS_EC2_METADATA_DISABLED="true",
    )
    return {**env, **keep}


def run_aws(tmp_path: Path, env: dict[str, str], *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "runner",
            "scenarios/memory_sweep.yaml",
            "--target",
            "aws",
            *flags,
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_given_no_aws_region_then_exit_2_saying_how_to_set_one_before_the_run(
    tmp_path: Path,
) -> None:
    # Was: "internal error: NoRegionError ... (a bug)", exit 3, and an empty report.
    done = run_aws(tmp_path, without_aws())
    assert done.returncode == 2
    assert one_line(done) == (
        "memsweep: no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), --region, or "
        "target.region in the scenario"
    )
    assert not (tmp_path / "out").exists()


def test_given_aws_region_only_in_aws_region_then_it_is_used(tmp_path: Path) -> None:
    # boto3 reads AWS_DEFAULT_REGION only; AWS_REGION (set by other SDKs and CI) counts too.
    done = run_aws(tmp_path, without_aws(AWS_REGION="eu-west-1"))
    assert done.returncode == 2
    assert "no AWS credentials" in one_line(done)


def test_given_no_aws_credentials_then_exit_2_saying_how_to_give_them_before_the_run(
    tmp_path: Path,
) -> None:
    done = run_aws(tmp_path, without_aws(), "--region", "eu-west-1")
    assert done.returncode == 2
    assert one_line(done) == (
        "memsweep: no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
        "AWS_PROFILE, or run `aws configure` (or `aws sso login`)"
    )
    assert not (tmp_path / "out").exists()


def test_given_an_aws_profile_that_does_not_exist_then_exit_2_naming_it(tmp_path: Path) -> None:
    done = run_aws(tmp_path, without_aws(AWS_PROFILE="no-such-profile"), "--region", "eu-west-1")
    assert done.returncode == 2
    assert "The config profile (no-such-profile) could not be found" in one_line(done)
    assert not (tmp_path / "out").exists()


def test_given_credentials_and_region_but_no_stack_there_then_exit_2_with_the_deploy_command(
    moto_stack: dict[str, str], tmp_path: Path
) -> None:
    # The stack is deployed to us-east-1; the run asks for eu-west-1.
    env = without_aws(**{**moto_stack, "AWS_DEFAULT_REGION": "eu-west-1"})
    done = run_aws(tmp_path, env, "--stage", STAGE)
    assert done.returncode == 2
    assert one_line(done) == (
        f"memsweep: stack memsweep-{STAGE} not found in eu-west-1: deploy it with `npx "
        f"serverless deploy --stage {STAGE} --region eu-west-1`, or name the deployed one with "
        "--stage/--region/--stack"
    )
    assert not (tmp_path / "out").exists()


# -- the usage plan's throttle, read for seeding's pace ----------------------------------------


@pytest.fixture
def aws_env(moto_stack: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in moto_stack.items():
        monkeypatch.setenv(key, value)
    return moto_stack


def started_target() -> AwsStackTarget:
    target = AwsStackTarget(AwsTarget(kind="aws", stack="memsweep", stage=STAGE))
    target.start()
    return target


def rest_api_id(env: dict[str, str]) -> str:
    resources = client("cloudformation", env).list_stack_resources(StackName=f"memsweep-{STAGE}")[
        "StackResourceSummaries"
    ]
    return next(
        str(r["PhysicalResourceId"])
        for r in resources
        if r["LogicalResourceId"] == "ApiGatewayRestApi"
    )


@contextlib.contextmanager
def usage_plan(env: dict[str, str], **plan: Any) -> Iterator[str]:
    """A usage plan on the stack's stage holding its API key: what serverless.yml deploys and
    moto's CloudFormation leaves out (it does not model AWS::ApiGateway::UsagePlan)."""
    apigateway = client("apigateway", env)
    plan_id = apigateway.create_usage_plan(name=f"memsweep-{STAGE}", **plan)["id"]
    key_id = apigateway.get_api_keys(nameQuery=f"memsweep-{STAGE}-key")["items"][0]["id"]
    apigateway.create_usage_plan_key(usagePlanId=plan_id, keyId=key_id, keyType="API_KEY")
    try:
        yield plan_id
    finally:
        apigateway.delete_usage_plan_key(usagePlanId=plan_id, keyId=key_id)
        apigateway.delete_usage_plan(usagePlanId=plan_id)


def test_given_a_usage_plan_of_7_per_s_burst_3_then_rate_limit_is_that_plan(
    aws_env: dict[str, str],
) -> None:
    stage = {"apiId": rest_api_id(aws_env), "stage": STAGE}
    with usage_plan(aws_env, apiStages=[stage], throttle={"rateLimit": 7.0, "burstLimit": 3}):
        assert started_target().rate_limit() == RateLimit(rate=7.0, burst=3.0)


def test_given_a_lower_per_method_throttle_in_the_plan_then_rate_limit_is_the_method_s(
    aws_env: dict[str, str],
) -> None:
    stage = {
        "apiId": rest_api_id(aws_env),
        "stage": STAGE,
        "throttle": {"/DynamoDBManager/POST": {"rateLimit": 2.0, "burstLimit": 1}},
    }
    with usage_plan(aws_env, apiStages=[stage], throttle={"rateLimit": 7.0, "burstLimit": 3}):
        assert started_target().rate_limit() == RateLimit(rate=2.0, burst=1.0)


def test_given_a_plan_on_another_stage_only_then_rate_limit_is_none(
    aws_env: dict[str, str],
) -> None:
    stage = {"apiId": rest_api_id(aws_env), "stage": "elsewhere"}
    with usage_plan(aws_env, apiStages=[stage], throttle={"rateLimit": 7.0, "burstLimit": 3}):
        assert started_target().rate_limit() is None


def test_given_no_usage_plan_then_rate_limit_is_none(aws_env: dict[str, str]) -> None:
    assert client("apigateway", aws_env).get_usage_plans()["items"] == []
    assert started_target().rate_limit() is None


def test_given_stage_throttling_below_the_plan_then_rate_limit_is_the_stage_s(
    aws_env: dict[str, str],
) -> None:
    api_id = rest_api_id(aws_env)
    apigateway = client("apigateway", aws_env)
    throttling = [
        {"op": "replace", "path": "/*/*/throttling/rateLimit", "value": "4"},
        {"op": "replace", "path": "/*/*/throttling/burstLimit", "value": "2"},
    ]
    apigateway.update_stage(restApiId=api_id, stageName=STAGE, patchOperations=throttling)
    try:
        stage = {"apiId": api_id, "stage": STAGE}
        with usage_plan(aws_env, apiStages=[stage], throttle={"rateLimit": 7.0, "burstLimit": 3}):
            assert started_target().rate_limit() == RateLimit(rate=4.0, burst=2.0)
    finally:
        off = [{**operation, "value": "-1"} for operation in throttling]
        apigateway.update_stage(restApiId=api_id, stageName=STAGE, patchOperations=off)


class _RefusesUsagePlans(http.server.BaseHTTPRequestHandler):
    """API Gateway behind an IAM policy that grants the API key but not the usage plans or
    stages: AccessDeniedException (403), as API Gateway answers an apigateway:GET it refuses.
    Everything else goes on to moto."""

    upstream = ""

    def do_GET(self) -> None:
        if self.path.startswith("/usageplans") or "/stages/" in self.path:
            body = json.dumps(
                {
                    "message": "User: arn:aws:iam::123456789012:user/sweeper is not authorized "
                    "to perform: apigateway:GET on resource: "
                    "arn:aws:apigateway:us-east-1::/usageplans"
                }
            ).encode()
            self.send_response(403)
            self.send_header("x-amzn-ErrorType", "AccessDeniedException")
        else:
            request = urllib.request.Request(self.upstream + self.path, headers=dict(self.headers))
            with urllib.request.urlopen(request, timeout=10) as response:
                body = response.read()
                self.send_response(response.status)
                self.send_header("Content-Type", response.headers.get("Content-Type", ""))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


def test_given_access_denied_to_usage_plans_then_the_default_plan_and_one_line(
    aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    handler = type("Refuses", (_RefusesUsagePlans,), {"upstream": aws_env["AWS_ENDPOINT_URL"]})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        # boto3 sends one service to its own endpoint (AWS_ENDPOINT_URL_<SERVICE_ID>).
        monkeypatch.setenv(
            "AWS_ENDPOINT_URL_API_GATEWAY", f"http://127.0.0.1:{server.server_address[1]}"
        )
        target = started_target()
        assert target.headers() == {"x-api-key": API_KEY}
        capsys.readouterr()
        assert target.rate_limit() == default_rate_limit()
        assert target.rate_limit() == default_rate_limit()  # read once: one line per run
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert "AccessDeniedException" in lines[0] and "Traceback" not in lines[0]
    assert "grant apigateway:GET" in lines[0]
    assert "serverless.yml's default usage plan (100 requests/s, burst 200)" in lines[0]


# -- the axes beside memory: architecture, handler, API type ------------------------------------

# The tutorial's original function, deployed beside handler.py (serverless.yml's package).
OTHER_HANDLER = "tutorial_handler.lambda_handler"


@pytest.fixture
def moto_applies_architectures() -> Iterator[None]:
    """moto 5.2 ignores UpdateFunctionCode's Architectures, which AWS applies (UpdateFunctionCode
    reference: "Architectures: the instruction set architecture that the function supports").
    The moto server runs in this process: its function model is given that one rule, the rest
    of the call (the package read from S3, CodeSha256) is moto's own."""
    from moto.awslambda.models import LambdaFunction

    original = LambdaFunction.update_function_code

    def update_function_code(self: LambdaFunction, updated_spec: dict[str, Any]) -> dict[str, Any]:
        if updated_spec.get("Architectures") and not updated_spec.get("DryRun"):
            self.architectures = updated_spec["Architectures"]
        return original(self, updated_spec)

    LambdaFunction.update_function_code = update_function_code  # type: ignore[method-assign]
    yield
    LambdaFunction.update_function_code = original  # type: ignore[method-assign]


def live(env: dict[str, str]) -> tuple[int, str, str, str]:
    """Memory, architecture, handler and code hash as GetFunction reads them back."""
    configuration = client("lambda", env).get_function(FunctionName=FUNCTION)["Configuration"]
    return (
        int(configuration["MemorySize"]),
        configuration["Architectures"][0],
        configuration["Handler"],
        configuration["CodeSha256"],
    )


def run_like_the_sweep(target: AwsStackTarget, body: Any) -> None:
    """What Sweep.run does around its steps: `with target:`, the steps, restore in finally."""
    with target:
        try:
            body(target)
        finally:
            target.restore()


def test_given_arm64_and_another_handler_then_both_go_live_and_a_normal_end_restores_them(
    aws_env: dict[str, str], moto_applies_architectures: None
) -> None:
    memory, architecture, handler, code = live(aws_env)
    assert (memory, architecture, handler) == (128, "x86_64", "handler.lambda_handler")
    target = AwsStackTarget(AwsTarget(kind="aws", stack="memsweep", stage=STAGE))
    seen: list[tuple[int, str, str, str]] = []

    def steps(target: AwsStackTarget) -> None:
        target.set_architecture("arm64")
        target.set_handler(OTHER_HANDLER)
        target.set_memory(256)
        seen.append(live(aws_env))
        assert target.info().architecture == "arm64"

    run_like_the_sweep(target, steps)
    # The same package (same CodeSha256) runs on arm64, with the other handler, at 256 MB.
    assert seen == [(256, "arm64", OTHER_HANDLER, code)]
    assert live(aws_env) == (128, "x86_64", "handler.lambda_handler", code)
    assert target.info().architecture == "x86_64"
    target.restore()  # twice: nothing left to do
    assert live(aws_env) == (128, "x86_64", "handler.lambda_handler", code)


def test_given_an_exception_mid_run_then_architecture_and_handler_are_restored(
    aws_env: dict[str, str], moto_applies_architectures: None
) -> None:
    original = live(aws_env)
    target = AwsStackTarget(AwsTarget(kind="aws", stack="memsweep", stage=STAGE))

    def steps(target: AwsStackTarget) -> None:
        target.set_handler(OTHER_HANDLER)
        target.set_architecture("arm64")
        assert live(aws_env)[1:3] == ("arm64", OTHER_HANDLER)
        raise RuntimeError("the step broke")

    with pytest.raises(RuntimeError, match="the step broke"):
        run_like_the_sweep(target, steps)
    assert live(aws_env) == original


# Python leaves SIGINT ignored when it starts with it ignored (a CI job started in the
# background by a non-interactive shell): the child takes Ctrl-C as a terminal would give it.
CHANGE_THEN_WAIT = f"""
import signal
import time
from runner.scenario import AwsTarget
from runner.targets import AwsStackTarget

signal.signal(signal.SIGINT, signal.default_int_handler)

target = AwsStackTarget(AwsTarget(kind="aws", stack="memsweep", stage="{STAGE}"))
with target:
    try:
        target.set_architecture("arm64")
        target.set_handler("{OTHER_HANDLER}")
        print("changed", flush=True)
        time.sleep(60)
    finally:
        target.restore()
        print("restored", flush=True)
"""


def test_given_sigint_after_the_changes_then_the_child_restores_them_before_it_exits(
    aws_env: dict[str, str], moto_applies_architectures: None
) -> None:
    original = live(aws_env)
    child = subprocess.Popen(
        [sys.executable, "-c", CHANGE_THEN_WAIT],
        cwd=PROJECT_ROOT,
        env={**os.environ, **aws_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "changed\n", child.stderr and child.stderr.read()
        assert live(aws_env)[1:3] == ("arm64", OTHER_HANDLER)
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
        child.wait()
    assert out == "restored\n", err
    assert "KeyboardInterrupt" in err  # it was the signal that ended it
    assert live(aws_env) == original


def test_given_values_no_lambda_takes_then_refuses_says_why_in_one_line(
    aws_env: dict[str, str],
) -> None:
    target = started_target()
    assert target.refuses("architecture", "arm64") is None  # the package is found and matches
    assert target.refuses("architecture", "x86_64") is None
    assert target.refuses("architecture", "arm") == "must be one of x86_64, arm64"
    assert target.refuses("handler", OTHER_HANDLER) is None
    assert target.refuses("handler", "handler") == (
        "must be module.function (e.g. handler.lambda_handler): a Python module in the deployed "
        "package and a function in it"
    )
    assert target.refuses("handler", "x." + "y" * 130) == "longer than Lambda's 128 characters"
    assert target.refuses("handler", "nosuchmodule.lambda_handler") == (
        "nosuchmodule.py is not in the deployed package: add it to serverless.yml's "
        "package.patterns and redeploy"
    )
    # The module is there, the function is not: read from the package as the local stack reads
    # its code directory (parsed, never run).
    assert target.refuses("handler", "handler.lambda_handlr") == (
        "handler handler.lambda_handlr: handler.py defines no lambda_handlr at module level"
    )
    assert target.refuses("api", "rest") is None
    assert target.refuses("api", "grpc") == "must be one of rest, http"
    with pytest.raises(ValueError, match="architecture 'sparc': must be one of x86_64, arm64"):
        target.set_architecture("sparc")
    with pytest.raises(ValueError, match=r"handler 'handler': must be module\.function"):
        target.set_handler("handler")


@contextlib.contextmanager
def small_stack(env: dict[str, str], stage: str, outputs: dict[str, str]) -> Iterator[None]:
    """A stack named like serverless's (memsweep-<stage>) with these outputs and no resource
    of the function's: what an older or hand-made deploy looks like."""
    cloudformation = client("cloudformation", env)
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in outputs.items()},
    }
    name = f"memsweep-{stage}"
    cloudformation.create_stack(StackName=name, TemplateBody=json.dumps(template))
    try:
        yield
    finally:
        cloudformation.delete_stack(StackName=name)


def test_given_a_stack_with_an_http_api_then_set_api_switches_the_url_both_ways(
    aws_env: dict[str, str],
) -> None:
    rest = "https://rest.example.com/httptest/DynamoDBManager"
    outputs = {
        "FunctionName": FUNCTION,
        "ApiUrl": rest,
        "HttpApiRouteUrl": "https://http.example.com/DynamoDBManager",
    }
    with small_stack(aws_env, "httptest", outputs):
        target = AwsStackTarget(AwsTarget(kind="aws", stack="memsweep", stage="httptest"))
        with target:
            assert target.refuses("api", "http") is None
            target.set_api("http")
            assert target.url == "https://http.example.com/DynamoDBManager"
            assert target.info().url == target.url
            target.set_api("rest")
            assert target.url == rest


@pytest.mark.parametrize(
    ("outputs", "resources", "url"),
    [
        # serverless.yml's output: the route's URL as it is
        (
            {"HttpApiRouteUrl": "https://a.example.com/DynamoDBManager"},
            {},
            "https://a.example.com/DynamoDBManager",
        ),
        # osls's own output alone: the API's base, the route appended
        ({"HttpApiUrl": "https://b.example.com"}, {}, "https://b.example.com/DynamoDBManager"),
        # no output (outputs unread), the HttpApi resource's id
        (
            {},
            {"HttpApi": "abc123"},
            "https://abc123.execute-api.eu-west-1.amazonaws.com/DynamoDBManager",
        ),
        ({"ApiUrl": "https://rest.example.com/dev/DynamoDBManager"}, {}, ""),  # no HTTP API
    ],
)
def test_given_the_stack_s_outputs_then_the_http_api_route_url(
    outputs: dict[str, str], resources: dict[str, str], url: str
) -> None:
    assert http_route_url(outputs, resources, "eu-west-1") == url


def test_given_a_stack_without_http_api_or_package_then_those_axes_are_refused(
    aws_env: dict[str, str],
) -> None:
    outputs = {"FunctionName": FUNCTION, "ApiUrl": "https://rest.example.com/old/DynamoDBManager"}
    with small_stack(aws_env, "old", outputs):
        target = AwsStackTarget(AwsTarget(kind="aws", stack="memsweep", stage="old"))
        with target:
            assert target.refuses("api", "http") == (
                "stack memsweep-old has no HTTP API (no HttpApiUrl output): redeploy with the "
                "current serverless.yml (`npx serverless deploy --stage old --region us-east-1`)"
            )
            refused = target.refuses("architecture", "arm64")
            assert refused is not None and "\n" not in refused
            assert refused.startswith("changing the architecture needs the function's package: ")
            assert "no S3Bucket/S3Key package" in refused
            assert target.refuses("handler", "nosuchmodule.lambda_handler") is None  # unknown
            with pytest.raises(AwsTargetError, match="no HTTP API"):
                target.set_api("http")


def test_given_a_url_target_then_every_axis_but_the_rest_api_is_refused_in_one_line() -> None:
    target = UrlOnlyTarget(UrlTarget(kind="url", url="https://api.example.com/x"))
    assert target.refuses("api", "rest") is None
    assert target.refuses("api", "http") == (
        "a url target is a bare URL and cannot switch API types: point target.url at that API's "
        "URL in a scenario of its own"
    )
    assert target.refuses("architecture", "arm64") == (
        "a url target is a bare URL and cannot change its architecture: sweep architecture on "
        "the local or aws target"
    )
    assert target.refuses("handler", "handler.lambda_handler") == (
        "a url target is a bare URL and cannot change its handler: sweep handler on the local "
        "or aws target"
    )


class RecordedInsights:
    """Answers StartQuery and GetQueryResults (moto's Logs Insights has no `stats`) from
    tests/events/logs-insights-results-text-pair.json: which query by its text, which range
    by its start (the window's, else the warm-up's or before the load). Keeps what was sent."""

    def __init__(self, window_start: float, status: str = "Complete") -> None:
        from runner.targets._insights import QUERIES

        self.recorded = json.loads((EVENTS / "logs-insights-results-text-pair.json").read_text())
        self.window_start = window_start
        self.status = status
        self.tails = {name: query.rsplit("_ms}", 1)[1] for name, query in QUERIES.items()}
        self.sent: list[dict[str, Any]] = []
        self.calls: list[str] = []  # "start" or "poll", in the order they came

    def register(self, logs: Any) -> None:
        logs.meta.events.register("before-parameter-build.logs.StartQuery", self._keep)
        logs.meta.events.register("before-call.logs.StartQuery", self._started)
        logs.meta.events.register("before-call.logs.GetQueryResults", self._results)

    def _keep(self, params: dict[str, Any], **_: Any) -> None:
        self.sent.append(dict(params))
        self.calls.append("start")

    def _started(self, **_: Any) -> tuple[Any, dict[str, Any]]:
        from botocore.awsrequest import AWSResponse, HTTPHeaders

        ok = AWSResponse("https://logs.us-east-1.amazonaws.com", 200, HTTPHeaders(), None)
        return ok, {"queryId": str(len(self.sent) - 1)}

    def _results(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        from botocore.awsrequest import AWSResponse, HTTPHeaders

        self.calls.append("poll")
        sent = self.sent[int(json.loads(params["body"])["queryId"])]
        name = next(n for n, tail in self.tails.items() if sent["queryString"].endswith(tail))
        where = "window" if sent["startTime"] == int(self.window_start) else "outside"
        answer = dict(self.recorded[where][name], status=self.status)
        ok = AWSResponse("https://logs.us-east-1.amazonaws.com", 200, HTTPHeaders(), None)
        return ok, answer


def test_given_a_step_above_the_line_limit_then_logs_insights_gives_the_same_figures(
    moto_stack: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = _started_target(moto_stack, monkeypatch)
    monkeypatch.setattr("runner.targets._aws.LOG_SETTLE_S", 0.1)
    recorded = json.loads((EVENTS / "cloudwatch-json-format-invocations.json").read_text())
    # GIVEN one cold and one warm invocation as text lines, in a stream of their own
    logs = client("logs", moto_stack)
    group = f"/aws/lambda/{FUNCTION}"
    at = time.time() - 20_000
    put_log_lines(logs, "2026/12/07/[$LATEST]insights", recorded["text"], at=at)
    phases = Phases(at - 10, at - 1, at + 5)
    by_line, _ = target.invocations(phases)
    # WHEN the step has more invocations than are read line by line (here: more than 1)
    monkeypatch.setattr("runner.targets._aws.INSIGHTS_ABOVE_INVOCATIONS", 1)
    insights = RecordedInsights(phases.window_start)
    insights.register(target.logs)
    by_query, outside = target.invocations(phases)
    # THEN Logs Insights' aggregates give what the lines gave
    figures = (
        "count",
        "cold_starts",
        "billed_ms_total",
        "warm_billed_ms_total",
        "cold_billed_ms_total",
        "init_ms_max",
        "max_memory_used_mb",
        "duration_ms_mean",
        "duration_ms_p50",
        "warm_duration_ms_p95",
        "write_units",
        "read_units",
        "capacity_records",
        "failed_calls",
    )
    assert [getattr(by_query, f) for f in figures] == [getattr(by_line, f) for f in figures]
    assert by_query.warm_billed_by_second == by_line.warm_billed_by_second
    assert (outside.warmup.count, outside.before.count) == (0, 0)
    # AND the step says which method it used and what that cannot give
    assert by_query.source.startswith(f"CloudWatch Logs Insights {group} (aggregates")
    assert "no per-request join" in by_query.source
    # AND the queries ran on the function's group over the window's milliseconds
    window = [q for q in insights.sent if q["startTime"] == int(phases.window_start)]
    assert {q["logGroupName"] for q in insights.sent} == {group}
    assert len(window) == 5 and all(
        str(int(phases.window_start * 1000)) in q["queryString"] for q in window
    )
    # AND the three ranges' 9 queries were all started before the first poll: one wait
    assert insights.calls[:10] == ["start"] * 9 + ["poll"]


def test_given_an_insights_query_that_fails_then_the_step_says_why_it_has_no_invocations(
    moto_stack: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = _started_target(moto_stack, monkeypatch)
    monkeypatch.setattr("runner.targets._aws.LOG_SETTLE_S", 0.1)
    monkeypatch.setattr("runner.targets._aws.INSIGHTS_ABOVE_INVOCATIONS", 0)
    logs = client("logs", moto_stack)
    at = time.time() - 30_000
    put_log_lines(logs, "2026/12/07/[$LATEST]failed", [_report("f41l")], at=at)
    phases = Phases(at - 10, at - 1, at + 5)
    RecordedInsights(phases.window_start, status="Failed").register(target.logs)
    invocations, _ = target.invocations(phases)
    assert invocations.count == 0
    assert invocations.source == (
        "CloudWatch Logs unavailable: Logs Insights query 'all' ended Failed"
    )


def test_given_an_html_page_for_an_aws_answer_then_the_error_says_one_short_line() -> None:
    from botocore.exceptions import ClientError

    from runner.targets._aws import _said

    # GIVEN the 404 page a stand-in endpoint (moto, a proxy) answers a call it lacks with:
    # botocore puts the page whole into the message
    page = "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n" + "<p>x</p>\n" * 200
    error = ClientError(
        {"Error": {"Code": "404", "Message": page}},
        "GetAccountSettings",
    )
    # THEN what memsweep quotes of it is its first line, marked as cut, and bounded
    said = _said(error)
    assert said == (
        "An error occurred (404) when calling the GetAccountSettings operation: <!doctype html> …"
    )
    assert (
        _said(RuntimeError("x" * 1000)).endswith("…")
        and len(_said(RuntimeError("x" * 1000))) == 300
    )
