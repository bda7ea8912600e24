"""Secrets: a url target's API key and secret request headers are used
for the run and shown nowhere: not in results.json, the report, the logs or the terminal;
a key can come from a file or a variable, so it is never on a command line `ps` shows.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from runner.errors import BadInput
from runner.redaction import REDACTED, SCENARIO_TEXT_WITHHELD, redact_scenario_text
from runner.results import read_results
from runner.scenario import UrlTarget, load_scenario
from runner.stack import PROJECT_ROOT
from runner.targets import API_KEY_VARIABLE, LocalStackProcess
from runner.targets._url import UrlOnlyTarget
from tests.test_local_stack import post
from tests.test_report import make_results, make_step
from tests.test_sweep import children_of


def secret(label: str) -> str:
    """A value that cannot appear anywhere by chance (API Gateway keys: 20-128 characters)."""
    return f"{label}{secrets.token_hex(16)}"


# --- the scenario echo ------------------------------------------------------------------------

SCENARIO_WITH_SECRETS = """\
name: secrets  # a comment
sweep: {{memory_mb: 128}}
load: {{stages: {{users: 1, duration_s: 5}}}}
target:
  kind: url
  url: "https://example.invalid/x"
  api_key: {key}
requests:
  - name: quoted
    headers: {{Authorization: "Bearer {bearer}", X-Plain: shown-value}}
  - name: block
    headers:
      Cookie: |
        session={cookie}
      X-Session-Token: &tok {token}
      x-api-key: *tok
"""


def scenario_text() -> tuple[str, list[str]]:
    values = [secret("key"), secret("bearer"), secret("cookie"), secret("token")]
    key, bearer, cookie, token = values
    return SCENARIO_WITH_SECRETS.format(key=key, bearer=bearer, cookie=cookie, token=token), values


def test_given_secrets_in_a_scenario_then_its_text_shows_none_and_keeps_the_rest() -> None:
    text, values = scenario_text()
    shown = redact_scenario_text(text)
    assert not [value for value in values if value in shown]
    document = yaml.safe_load(shown)
    assert document["target"]["api_key"] == REDACTED
    headers = [request["headers"] for request in document["requests"]]
    assert headers[0] == {"Authorization": REDACTED, "X-Plain": "shown-value"}
    assert headers[1]["Cookie"] == REDACTED and headers[1]["x-api-key"] == REDACTED
    assert "# a comment" in shown  # an edit of the file, not a re-dump


def test_given_a_secret_also_in_a_comment_then_the_text_is_withheld_whole() -> None:
    text, values = scenario_text()
    assert redact_scenario_text(f"{text}# old key: {values[0]}\n") == SCENARIO_TEXT_WITHHELD


def test_given_results_built_with_secrets_then_neither_echo_holds_them(tmp_path: Path) -> None:
    text, values = scenario_text()
    results = make_results([make_step(index=1, memory=128, median_ms=10.0)])
    built = results.model_copy(update={}).model_validate(
        {**results.model_dump(), "scenario": yaml.safe_load(text), "scenario_text": text}
    )
    dumped = built.model_dump_json()
    assert not [value for value in values if value in dumped]
    assert built.scenario.requests[0].headers["X-Plain"] == "shown-value"


def test_given_credentials_in_the_target_url_then_no_echo_shows_them() -> None:
    password, token = secret("password"), secret("token")
    url = f"https://someone:{password}@api.example.com/dev/items?token={token}&page=2"
    text = (
        f"name: creds\ntarget:\n  kind: url\n  url: '{url}'\nsweep: {{memory_mb: 128}}\n"
        "load: {stages: {users: 1, duration_s: 5}}\nrequests: [{name: read}]\n"
    )
    results = make_results([make_step(index=1, memory=128, median_ms=10.0)])
    built = results.model_validate(
        {
            **results.model_dump(),
            "scenario": yaml.safe_load(text),
            "scenario_text": text,
            "target": {**results.target.model_dump(), "url": url},
        }
    )
    dumped = built.model_dump_json()
    assert password not in dumped and token not in dumped
    # Where the run went is still said: host, path and plain parameters stay.
    assert built.target.url == "https://not-shown@api.example.com/dev/items?token=not-shown&page=2"
    assert built.scenario.target.url == built.target.url  # type: ignore[union-attr]
    assert built.target.url in built.scenario_text


# --- where the key comes from -----------------------------------------------------------------


def url_target(**fields: str) -> UrlTarget:
    return UrlTarget(kind="url", url="http://127.0.0.1:9/x", **fields)


def test_given_a_key_file_then_its_key_is_sent_without_the_trailing_newline(
    tmp_path: Path,
) -> None:
    key = secret("file")
    path = tmp_path / "key"
    path.write_text(f"{key}\n")
    assert UrlOnlyTarget(url_target(api_key_file=str(path))).headers() == {"x-api-key": key}


def test_given_a_key_variable_or_memsweep_api_key_then_it_is_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key, fallback = secret("env"), secret("fallback")
    monkeypatch.setenv("MY_KEY", key)
    monkeypatch.setenv(API_KEY_VARIABLE, fallback)
    assert UrlOnlyTarget(url_target(api_key_env="MY_KEY")).headers() == {"x-api-key": key}
    assert UrlOnlyTarget(url_target()).headers() == {"x-api-key": fallback}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("", "is empty"),
        ("two\nlines", "control character"),
        ("x" * 9000, "longer than 8192 bytes"),
        ("fifo", "not a regular file"),
    ],
    ids=["missing", "empty", "line-break", "huge", "fifo"],
)
def test_given_a_bad_key_file_then_refused_naming_the_file_not_the_key(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    path = tmp_path / "key"
    if content == "fifo":
        os.mkfifo(path)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(BadInput, match=expected) as caught:
        UrlOnlyTarget(url_target(api_key_file=str(path)))
    assert str(path) in str(caught.value) and "two" not in str(caught.value)


def test_given_a_key_two_ways_then_refused() -> None:
    with pytest.raises(BadInput, match=r"target\.api_key_file and target\.api_key are both set"):
        UrlOnlyTarget(url_target(api_key="a" * 20, api_key_file="/nonexistent"))


# --- `runner local`: a key from a file or the environment, never in `ps` ----------------------


def command_lines(pid: int) -> str:
    """What `ps` shows of a process and its children: their full command lines."""
    pids = [pid, *children_of(pid)]
    out = subprocess.run(
        ["ps", "-o", "args=", "-p", ",".join(map(str, pids))], capture_output=True, text=True
    )
    return out.stdout


@pytest.mark.parametrize("source", ["file", "environment"])
def test_given_the_local_stacks_key_from_a_file_or_variable_then_ps_never_shows_it(
    tmp_path: Path,
    config_json: Path,
    source: str,
) -> None:
    key = secret("local")
    args = ["--config-json", str(config_json), "--log", str(tmp_path / "l.log"), "--no-calibrate"]
    env = dict(os.environ)
    if source == "file":
        (tmp_path / "key").write_text(key + "\n")
        args += ["--api-key-file", str(tmp_path / "key")]
    else:
        env[API_KEY_VARIABLE] = key
    with LocalStackProcess(args, env=env) as stack:
        assert stack.api_key == key
        assert key not in command_lines(stack.pid)
        assert post(stack.url, {"operation": "ping"}).status == 403
        ping = post(stack.url, {"operation": "ping"}, headers={"x-api-key": key})
        assert ping.status == 200


def test_given_the_local_stacks_key_from_a_file_then_its_banner_does_not_print_it(
    tmp_path: Path,
    config_json: Path,
) -> None:
    key = secret("banner")
    (tmp_path / "key").write_text(key)
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "runner", "local", "--config-json", str(config_json)),
            *("--log", str(tmp_path / "l.log"), "--no-calibrate"),
            *("--api-key-file", str(tmp_path / "key")),
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = [process.stdout.readline() for _ in range(2)]  # title, URL
        banner.append(process.stdout.readline())  # the API key line
    finally:
        process.terminate()
        rest, _ = process.communicate(timeout=30)
    assert "API key:" in banner[2] and REDACTED in banner[2]
    assert key not in "".join(banner) + rest


# --- a whole url-target run: the key and headers are used, and shown nowhere ------------------

RUN = """\
name: secret run
target: {{kind: url, url: "{url}", api_key: "{key}"}}
sweep: {{memory_mb: [1024], warmup_s: 1}}
load:
  stages: [{{users: 2, duration_s: 4}}]
  think_time: {{min_s: 0.05, max_s: 0.1}}
requests:
  - name: ping
    body: {{operation: ping}}
    headers:
      Authorization: "Bearer {bearer}"
      Cookie: "session={cookie}"
      X-Session-Token: {token}
      X-Plain: shown-value
workers: {{local: 1, wait_s: 60}}
"""


@pytest.fixture
def keyed_stack(
    tmp_path: Path,
    config_json: Path,
) -> Iterator[tuple[LocalStackProcess, str]]:
    key = secret("runkey")
    (tmp_path / "key").write_text(key)
    args = ["--config-json", str(config_json), "--log", str(tmp_path / "lambda.log")]
    # 1024 MB: a url target cannot set memory, and 128 MB's cold start is slow.
    args += ["--memory", "1024", "--no-calibrate", "--no-usage-plan-throttle", "--api-key-file"]
    with LocalStackProcess([*args, str(tmp_path / "key")]) as stack:
        yield stack, key


def test_given_a_url_target_with_a_key_and_secret_headers_then_no_output_holds_them(
    tmp_path: Path, keyed_stack: tuple[LocalStackProcess, str]
) -> None:
    stack, key = keyed_stack
    values = [key, secret("bearer"), secret("cookie"), secret("token")]
    path = tmp_path / "scenario.yaml"
    path.write_text(
        RUN.format(url=stack.url, key=key, bearer=values[1], cookie=values[2], token=values[3])
    )
    out_dir = tmp_path / "reports"
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", str(path), "--out", str(out_dir), "--run-id", "run"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen_lines = ""
    deadline = time.monotonic() + 20
    while process.poll() is None and time.monotonic() < deadline and not children_of(process.pid):
        time.sleep(0.1)
    seen_lines = command_lines(process.pid)
    terminal, _ = process.communicate(timeout=180)
    assert process.returncode == 0, terminal

    # The run used the real values: every request passed the stack's key check.
    results = read_results(out_dir / "run" / "results.json")
    assert results.steps[0].requests > 0 and results.steps[0].failures == 0

    outputs = {"terminal": terminal, "ps": seen_lines, "lambda.log": stack_log(tmp_path)}
    for file in (out_dir / "run").rglob("*"):
        if file.is_file():
            outputs[str(file.relative_to(out_dir))] = file.read_text(errors="replace")
    leaks = [
        (where, value[:8]) for where, text in outputs.items() for value in values if value in text
    ]
    assert not leaks
    assert REDACTED in outputs["run/results.json"] and REDACTED in outputs["run/report.html"]
    assert "shown-value" in outputs["run/results.json"]  # a header that is no secret stays


def stack_log(tmp_path: Path) -> str:
    path = tmp_path / "lambda.log"
    return path.read_text(errors="replace") if path.exists() else ""


def test_given_a_bad_secret_header_in_a_scenario_then_its_error_does_not_echo_it(
    tmp_path: Path,
) -> None:
    value = secret("bearer")
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: s\ntarget: {kind: url, url: 'http://127.0.0.1:9/x'}\nrequests:\n"
        f"  - name: r\n    headers: {{Authorization: 'Bearer {value}{{{{uuid}}}}'}}\n"
        "sweep: {memory_mb: [128]}\nload: {stages: [{duration_s: 5, users: 1}]}\n"
    )
    with pytest.raises(BadInput) as raised:
        load_scenario(path)
    assert "headers" in str(raised.value) and value not in str(raised.value)
