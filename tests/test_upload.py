"""--upload: a run directory copied to S3 when the run ends, however it ends.

Real parts: a moto server on loopback (`moto_server_endpoint`) reached through
AWS_ENDPOINT_URL, as boto3 reads it; real runs on the local stack as subprocesses (the
helpers of test_sweep.py), one memory size and a 3 s step each.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from runner.errors import BadInput
from runner.outputs import S3Destination, UploadFailed, parse_s3_uri, upload_run
from runner.outputs._progress import step_line
from runner.outputs._upload import run_files
from runner.stack import PROJECT_ROOT
from tests.conftest import moto_server_endpoint
from tests.test_local_stack import wait_until
from tests.test_sweep import finish, loading, results_of, scenario, start_run, stdout_of

README = PROJECT_ROOT / "README.md"
PREFIX = "team/runs"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    # No reset: moto's state is global to the process, and the session's deployment
    # (conftest.moto_stack) may live beside it; every test here makes a bucket of its own.
    with moto_server_endpoint(reset=False) as endpoint:
        yield endpoint


@pytest.fixture
def aws(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """This process and the runs it starts reach the moto server, with no upload by default."""
    for name, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("MEMSWEEP_UPLOAD", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return s3_endpoint


def s3() -> Any:
    return boto3.session.Session().client("s3")


@pytest.fixture
def bucket(aws: str) -> str:
    name = f"memsweep-runs-{uuid.uuid4().hex[:12]}"
    s3().create_bucket(Bucket=name)
    return name


def objects(bucket: str) -> dict[str, bytes]:
    client = s3()
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listed}


def local_files(run_dir: Path) -> dict[str, bytes]:
    return {
        path.relative_to(run_dir).as_posix(): path.read_bytes()
        for path in run_dir.rglob("*")
        if path.is_file()
    }


def assert_arrived(run_dir: Path, bucket: str, prefix: str = PREFIX) -> dict[str, bytes]:
    """Every file of the run directory is in the bucket under prefix/<run-id>/, byte for byte,
    and nothing else is."""
    local = local_files(run_dir)
    assert local, run_dir
    arrived = objects(bucket)
    assert arrived == {f"{prefix}/{run_dir.name}/{name}": data for name, data in local.items()}
    return local


def one_run_dir(tmp_path: Path) -> Path:
    """A run directory as runs leave it, without running one: a file per kind and a folder."""
    run_dir = tmp_path / "reports" / "run-7"
    (run_dir / "locust").mkdir(parents=True)
    for name, text in {
        "results.json": '{"schema_version": 4}',
        "report.html": "<!doctype html><title>r</title>",
        "summary.csv": "memory_mb\n128\n",
        "summary.md": "**Recommendation: 128 MB.**\n",
        "junit.xml": "<testsuites/>",
        "lambda.log": "REPORT RequestId: 1 Duration: 1.00 ms\n",
        "locust/step01-128mb-r1_stats.csv": "memory_mb,Name\n",
        "locust/step01-128mb-r1_stats.json": "[]",
    }.items():
        (run_dir / name).write_text(text)
    (run_dir / "locust" / "binary.bin").write_bytes(bytes(range(256)))
    return run_dir


# --- the URI ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "bucket", "prefix", "run_uri"),
    [
        ("s3://my-bucket", "my-bucket", "", "s3://my-bucket/r1/"),
        ("s3://my-bucket/", "my-bucket", "", "s3://my-bucket/r1/"),
        ("s3://my-bucket/memsweep", "my-bucket", "memsweep", "s3://my-bucket/memsweep/r1/"),
        ("s3://my.bucket-2/a/b/", "my.bucket-2", "a/b", "s3://my.bucket-2/a/b/r1/"),
    ],
)
def test_given_an_s3_uri_then_bucket_prefix_and_the_runs_folder_under_it(
    uri: str, bucket: str, prefix: str, run_uri: str
) -> None:
    destination = parse_s3_uri(uri)
    assert destination == S3Destination(bucket=bucket, prefix=prefix)
    assert destination.uri("r1") == run_uri
    assert destination.key("r1", "locust/x.csv") == run_uri[len(f"s3://{bucket}/") :] + (
        "locust/x.csv"
    )


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("foo", "not an S3 URI"),
        ("https://my-bucket.s3.amazonaws.com/x", "not an S3 URI"),
        ("S3://my-bucket", "not an S3 URI"),
        ("s3://", "no bucket"),
        ("s3:///prefix", "no bucket"),
        ("s3://ab", "not an S3 bucket name"),
        ("s3://My_Bucket/x", "not an S3 bucket name"),
        ("s3://-bucket", "not an S3 bucket name"),
        ("s3://my..bucket", "not an S3 bucket name"),
        ("s3://my-bucket/a//b", "empty, '.' or '..' part"),
        ("s3://my-bucket/a/../b", "empty, '.' or '..' part"),
        ("s3://my-bucket/a\nb", "control character"),
    ],
)
def test_given_a_uri_that_names_no_s3_place_then_bad_input_in_one_line(uri: str, why: str) -> None:
    with pytest.raises(BadInput) as refused:
        parse_s3_uri(uri, given="--upload")
    message = str(refused.value)
    assert message.startswith(f"--upload {uri!r}: ") and why in message, message
    assert "\n" not in message


# --- the upload itself (in process, on a run directory made for it) --------------------------


def test_given_a_run_directory_then_every_file_arrives_under_its_run_id_with_its_type(
    tmp_path: Path, bucket: str
) -> None:
    run_dir = one_run_dir(tmp_path)
    uploaded = upload_run(run_dir, parse_s3_uri(f"s3://{bucket}/{PREFIX}/"))
    assert uploaded.uri == f"s3://{bucket}/{PREFIX}/run-7/"
    assert uploaded.line() == f"uploaded: s3://{bucket}/{PREFIX}/run-7/ (9 files)"
    local = assert_arrived(run_dir, bucket)
    client = s3()
    types = {
        name: client.head_object(Bucket=bucket, Key=f"{PREFIX}/run-7/{name}")["ContentType"]
        for name in local
    }
    assert types == {
        "results.json": "application/json",
        "report.html": "text/html; charset=utf-8",
        "summary.csv": "text/csv; charset=utf-8",
        "summary.md": "text/markdown; charset=utf-8",
        "junit.xml": "application/xml",
        "lambda.log": "text/plain; charset=utf-8",
        "locust/step01-128mb-r1_stats.csv": "text/csv; charset=utf-8",
        "locust/step01-128mb-r1_stats.json": "application/json",
        "locust/binary.bin": "application/octet-stream",
    }
    # What matters most goes first, so an upload cut short has it.
    assert [p.name for p in run_files(run_dir)][:2] == ["results.json", "report.html"]


def test_given_a_link_in_the_run_directory_then_what_it_points_at_stays_here(
    tmp_path: Path, bucket: str
) -> None:
    run_dir = one_run_dir(tmp_path)
    secret = tmp_path / "elsewhere"
    secret.mkdir()
    (secret / "credentials").write_text("not for S3")
    (run_dir / "linked-file").symlink_to(secret / "credentials")
    (run_dir / "linked-dir").symlink_to(secret)
    uploaded = upload_run(run_dir, parse_s3_uri(f"s3://{bucket}"))
    assert uploaded.files == 9
    assert not [key for key in objects(bucket) if "linked" in key]


def failure(run_dir: Path, uri: str) -> str:
    """The one line an upload that fails gives; the local copy must be as it was."""
    before = local_files(run_dir)
    with pytest.raises(UploadFailed) as failed:
        upload_run(run_dir, parse_s3_uri(uri))
    message = str(failed.value)
    assert "\n" not in message and "Traceback" not in message
    assert local_files(run_dir) == before
    assert f"the run is kept in {run_dir.resolve()}" in message
    assert f"aws s3 cp --recursive {run_dir.resolve()} {parse_s3_uri(uri).uri(run_dir.name)}" in (
        message
    )
    return message


def test_given_no_such_bucket_then_one_line_naming_it_and_the_aws_error(
    tmp_path: Path, aws: str
) -> None:
    message = failure(one_run_dir(tmp_path), "s3://no-such-bucket-here/x")
    assert message.startswith("upload to s3://no-such-bucket-here/x/run-7/ failed (0 of 9 files")
    assert "NoSuchBucket: The specified bucket does not exist" in message
    assert "create bucket 'no-such-bucket-here'" in message


def readme_policy() -> dict[str, Any]:
    """The upload's policy as README.md states it ("Keeping results")."""
    section = README.read_text().split("### Keeping results", 1)[1]
    block = re.search(r"```json\n(.*?)```", section, re.S)
    assert block, "README.md's Keeping results has no policy"
    policy: dict[str, Any] = json.loads(block.group(1))
    return policy


def test_given_the_readmes_policy_then_its_prefix_is_written_and_another_denied_in_one_line(
    tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The least-privilege policy is enough, and a prefix outside it is AccessDenied, said in
    one line naming the permission to grant (moto enforcing IAM, as AWS would)."""
    from moto.core.authorization import enable_iam_authentication

    document = json.dumps(readme_policy()).replace("BUCKET", bucket).replace("PREFIX", PREFIX)
    iam = boto3.session.Session().client("iam")
    user = f"uploader-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="memsweep-upload", PolicyDocument=document)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    run_dir = one_run_dir(tmp_path)
    with enable_iam_authentication():
        upload_run(run_dir, parse_s3_uri(f"s3://{bucket}/{PREFIX}"))
        message = failure(run_dir, f"s3://{bucket}/elsewhere")
    assert_arrived(run_dir, bucket)  # the allowed prefix holds the run, nothing went elsewhere
    assert "AccessDenied" in message and f"(bucket '{bucket}')" in message, message
    assert f"s3:PutObject on arn:aws:s3:::{bucket}/elsewhere/*" in message, message


def test_given_no_credentials_then_one_line_saying_where_to_give_them(
    tmp_path: Path, aws: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    message = failure(one_run_dir(tmp_path), "s3://some-bucket")
    assert "NoCredentialsError: Unable to locate credentials" in message
    assert "AWS_ACCESS_KEY_ID" in message


def test_given_an_unreachable_endpoint_then_one_line_within_seconds(
    tmp_path: Path, aws: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    message = failure(one_run_dir(tmp_path), "s3://some-bucket/x")
    assert time.monotonic() - started < 20  # bounded retries, not botocore's minutes
    assert "EndpointConnectionError" in message and "AWS_ENDPOINT_URL" in message


# --- runs (subprocesses on the local stack) --------------------------------------------------


def test_given_upload_and_thresholds_no_setting_meets_then_every_file_arrives_and_the_exit_stands(
    tmp_path: Path, bucket: str
) -> None:
    path = scenario(
        tmp_path, duration=3, workers=1, sizes="[1024]", extra="thresholds: {p50_ms: 0.001}"
    )
    code, printed = finish(start_run(path, tmp_path, "--upload", f"s3://{bucket}/{PREFIX}"))
    results = results_of(tmp_path)
    # 1: the thresholds missed; 3 when a busy host degraded the step: the run's own code either way
    assert code == results.exit_code and code in (1, 3), printed
    assert "Traceback" not in printed and "memsweep: upload" not in printed, printed
    run_dir = (tmp_path / "reports" / "test").resolve()
    local = assert_arrived(run_dir, bucket)
    assert {"results.json", "report.html", "summary.csv", "junit.xml", "summary.md"} <= set(local)
    assert "lambda.log" in local and any(name.startswith("locust/") for name in local)
    # The last lines: results, report, where it was uploaded, confidence, the answer last.
    verdict = results.verdict
    assert verdict is not None
    assert stdout_of_run(tmp_path) == [
        step_line(results.steps[0], 1),
        f"results: {run_dir / 'results.json'}",
        f"report: {(run_dir / 'report.html').as_uri()}",
        f"uploaded: s3://{bucket}/{PREFIX}/test/ ({len(local)} files)",
        f"confidence: {verdict.confidence.statement}",
        verdict.headline,  # "No memory size met the thresholds. ..." or "No recommendation: ..."
    ]


def stdout_of_run(tmp_path: Path) -> list[str]:
    return (tmp_path / "stdout.txt").read_text().splitlines()


def test_given_a_run_that_fails_to_start_its_load_then_its_files_arrive_too(
    tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers that never arrive fail the run (exit 3, status failed) with an exception in
    flight; $MEMSWEEP_UPLOAD still sends what it left."""
    monkeypatch.setenv("MEMSWEEP_UPLOAD", f"s3://{bucket}/{PREFIX}")
    path = scenario(tmp_path, workers=0, wait=2, sizes="[1024]")
    code, printed = finish(start_run(path, tmp_path, "--expect-workers", "1"))
    assert code == 3, printed
    assert results_of(tmp_path).status == "failed"
    run_dir = (tmp_path / "reports" / "test").resolve()
    local = assert_arrived(run_dir, bucket)
    assert {"results.json", "report.html", "summary.md"} <= set(local)
    assert f"uploaded: s3://{bucket}/{PREFIX}/test/ ({len(local)} files)" in printed
    assert "Traceback" not in printed


def test_given_ctrl_c_and_a_missing_bucket_then_one_line_the_local_copy_and_exit_130(
    tmp_path: Path, aws: str
) -> None:
    run = start_run(
        scenario(tmp_path, duration=20, workers=1, sizes="[1024]"),
        tmp_path,
        "--upload",
        "s3://no-such-bucket-for-memsweep/x",
    )
    assert wait_until(lambda: loading(run), 60)
    time.sleep(1)
    os.killpg(run.pid, signal.SIGINT)  # a terminal's Ctrl-C
    code, printed = finish(run, timeout=60)
    assert code == 130, printed  # the run's own code: the failed upload changes nothing
    assert results_of(tmp_path).status == "interrupted"
    run_dir = (tmp_path / "reports" / "test").resolve()
    assert (run_dir / "results.json").is_file() and (run_dir / "report.html").is_file()
    lines = [line for line in printed.splitlines() if "upload" in line]
    assert len(lines) == 1, printed
    assert lines[0].startswith("memsweep: upload to s3://no-such-bucket-for-memsweep/x/test/ ")
    assert "NoSuchBucket" in lines[0] and "create bucket 'no-such-bucket-for-memsweep'" in lines[0]
    assert f"the run is kept in {run_dir}" in lines[0]
    assert "Traceback" not in printed
    assert not [line for line in stdout_of(run).splitlines() if line.startswith("uploaded:")]


@pytest.mark.parametrize(
    ("given", "env", "said"),
    [
        (["--upload", "foo"], {}, "memsweep: --upload 'foo': not an S3 URI"),
        ([], {"MEMSWEEP_UPLOAD": "s3://"}, "memsweep: $MEMSWEEP_UPLOAD 's3://': no bucket"),
    ],
    ids=["option", "variable"],
)
def test_given_a_bad_upload_uri_then_exit_2_in_one_line_before_anything_starts(
    tmp_path: Path, given: list[str], env: dict[str, str], said: str
) -> None:
    path = scenario(tmp_path, sizes="[1024]")
    done = subprocess.run(
        [sys.executable, "-m", "runner", str(path), "--out", str(tmp_path / "reports"), *given],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(said) and "s3://BUCKET/PREFIX" in done.stderr, done.stderr
    assert not (tmp_path / "reports").exists()  # nothing started, no run directory
