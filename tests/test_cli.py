"""python -m runner: the entry point a user types first."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from runner import __version__
from runner.stack import PROJECT_ROOT


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_given_help_then_usage_and_exit_0() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    assert "usage: python -m runner" in done.stdout
    assert "Lambda memory size" in done.stdout


def test_given_version_then_the_package_version() -> None:
    done = run_cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"memsweep {__version__}"


def test_given_an_unknown_option_then_exit_2_with_a_message_and_no_traceback() -> None:
    done = run_cli("--no-such-flag")
    assert done.returncode == 2
    assert "unrecognized arguments: --no-such-flag" in done.stderr
    assert "Traceback" not in done.stderr


def test_given_local_then_it_prints_the_url_and_key_serves_and_stops_cleanly_on_ctrl_c(
    stack_config: dict[str, object], tmp_path: Path
) -> None:
    config = tmp_path / "serverless.json"
    config.write_text(json.dumps(stack_config))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runner",
            "local",
            "--no-calibrate",
            "--memory",
            "1024",
            "--config-json",
            str(config),
            "--log",
            str(tmp_path / "lambda.log"),
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        text = "".join(lines)
        url = re.search(r"URL:\s+POST (\S+)", text)
        key = re.search(r"API key:\s+(\S+)", text)
        assert url and key, text
        request = urllib.request.Request(
            url.group(1), data=b'{"operation":"ping"}', headers={"x-api-key": key.group(1)}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            assert json.loads(response.read()) == "pong"
    finally:
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=30)
    assert returncode == 0
    assert "Traceback" not in (process.stderr.read() if process.stderr else "")


def test_given_local_with_a_memory_outside_lambdas_range_then_exit_2_naming_it() -> None:
    done = run_cli("local", "--memory", "64")
    assert done.returncode == 2
    assert "memory 64 MB is outside Lambda's range 128-10240 MB" in done.stderr
    assert "Traceback" not in done.stderr


def test_given_local_with_a_malformed_param_then_exit_2_naming_it() -> None:
    done = run_cli("local", "--param", "memory")
    assert done.returncode == 2
    assert "--param must be NAME=VALUE, got 'memory'" in done.stderr
