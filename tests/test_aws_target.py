"""The aws target against a moto server: memory set per step and always restored.

The stack is deployed to moto with osls (the real deploy path). moto cannot invoke Lambda
functions, so the load goes to a local stack through the target's `url` override (what a
custom domain in front of the API would use); memory control, the API key and the logs go
through the AWS APIs as on a real account.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from runner.emulator.process import LocalStackProcess
from runner.lambda_logs import Phases
from runner.results import read_results
from runner.stack import PROJECT_ROOT
from tests.conftest import moto_server_endpoint
from tests.test_stack import serverless
from tests.test_sweep import finish, loading, start_run

STAGE = "awstest"
FUNCTION = f"memsweep-{STAGE}-LambdaFunctionOverHttps"
API_KEY = "moto-and-local-share-this-key-0123"

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


@pytest.fixture(scope="module")
def moto_stack() -> Iterator[dict[str, str]]:
    with moto_server_endpoint() as endpoint:
        env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        serverless("deploy", "--stage", STAGE, "--param", "memory=128", env=env)
        # moto's CloudFormation does not model AWS::ApiGateway::ApiKey: create the key the
        # stack would have, under the name serverless.yml gives it.
        client("apigateway", env).create_api_key(
            name=f"memsweep-{STAGE}-key", value=API_KEY, enabled=True
        )
        yield env


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


def test_given_a_sweep_then_each_step_runs_at_its_memory_and_the_original_is_restored(
    moto_stack: dict[str, str], endpoint: LocalStackProcess, tmp_path: Path
) -> None:
    assert memory_of(moto_stack) == 128
    code, stderr = finish(run_with(tmp_path, moto_stack, endpoint.url, 2))
    assert code == 0, stderr
    results = read_results(tmp_path / "reports" / "test" / "results.json")
    assert [s.fidelity.configured_memory_mb for s in results.steps if s.fidelity] == [512, 1024]
    assert all(step.requests > 0 and step.failures == 0 for step in results.steps)
    assert results.target.kind == "aws" and results.target.function == FUNCTION
    assert results.target.original_memory_mb == 128 and results.target.restored is True
    assert memory_of(moto_stack) == 128


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
    from runner.targets.aws import AwsStackTarget

    for key, value in moto_stack.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("runner.targets.aws.LOG_SETTLE_S", 0.1)
    target = AwsStackTarget(
        AwsTarget(kind="aws", stack="memsweep", stage=STAGE, region="us-east-1")
    )
    target.start()
    logs = client("logs", moto_stack)
    group = f"/aws/lambda/{FUNCTION}"
    stream = "2026/11/27/[$LATEST]abc"
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
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
    logs.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[
            {"timestamp": int((now + i * 0.01) * 1000), "message": line}
            for i, line in enumerate(lines)
        ],
    )
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
