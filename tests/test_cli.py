"""python -m runner: the entry point a user types first."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from runner import __version__
from runner.stack import PROJECT_ROOT


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return python("-m", "runner", *args, env=env)


def python(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """This Python with `args` in the project, its environment plus `env`."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
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
        rest = re.search(r"REST API:\s+POST (\S+)", text)
        http = re.search(r"HTTP API:\s+POST (\S+)", text)
        key = re.search(r"API key:\s+(\S+)", text)
        assert rest and http and key, text
        for url in (rest.group(1), http.group(1)):  # one key for both API types
            request = urllib.request.Request(
                url, data=b'{"operation":"ping"}', headers={"x-api-key": key.group(1)}
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


# --- careless input on the command line ---------------------------------------------------


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The single line saying what is wrong (argparse's usage line aside); no traceback."""
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if not line.startswith("usage:")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_given_no_arguments_then_usage_on_stderr_and_exit_2() -> None:
    done = run_cli()
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("usage: python -m runner")
    assert "give a scenario file" in one_error_line(done)


def test_given_an_abbreviated_option_then_exit_2_naming_it_and_the_option_meant(
    tmp_path: Path,
) -> None:
    # argparse expanded `--work 3` to `--workers 3` and ran a whole sweep.
    done = run_cli("scenarios/crud_mix.yaml", "--work", "3", "--out", str(tmp_path))
    assert done.returncode == 2
    line = one_error_line(done)
    assert "unrecognized arguments: --work 3" in line
    assert "did you mean --workers?" in line
    assert not list(tmp_path.iterdir())  # nothing started


def test_given_abbreviations_anywhere_then_every_parser_refuses_them() -> None:
    from runner.cli import _subparser, build_parser

    parser = build_parser()
    commands = ["run", "validate", "schema", "report", "worker", "local"]
    assert not parser.allow_abbrev
    assert all(not _subparser(parser, command).allow_abbrev for command in commands)
    for argv in (
        ["--vers"],
        ["worker", "--master-host", "x", "--master-p", "1"],
        ["local", "--mem", "512"],
        ["validate", "--scen", "x"],
    ):
        done = run_cli(*argv)
        assert done.returncode == 2, argv
        assert "unrecognized arguments" in one_error_line(done)


def test_given_an_unknown_command_then_exit_2_naming_it_with_the_commands() -> None:
    done = run_cli("valdate", "scenarios/crud_mix.yaml")
    assert done.returncode == 2
    line = one_error_line(done)
    assert "'valdate' is neither a command nor a scenario file" in line
    assert "did you mean validate?" in line and "commands: init, local, report, run" in line


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--workers", "-1"], "argument --workers: must be a whole number 0-256, got '-1'"),
        (["--workers", "10000"], "argument --workers: must be a whole number 0-256, got '10000'"),
        (["--workers", "two"], "argument --workers: must be a whole number 0-256, got 'two'"),
        (["--expect-workers", "-3"], "argument --expect-workers: must be a whole number 0-1000"),
        (
            ["--workers", "0"],  # and no remote ones: the run waited 23 s, then "every worker lost"
            "--workers 0 and no remote workers expected: no Locust worker would send the load",
        ),
        (["--master-port", "70000"], "argument --master-port: must be a whole number 0-65535"),
        (
            ["--master-bind-host", "192.0.2.1"],  # TEST-NET-1: an address of no machine here
            "--master-bind-host 192.0.2.1: not an address of this machine",
        ),
        (
            # Not a host name at all: refused without asking a DNS server (loopback only).
            ["--master-bind-host", "no..such"],
            "--master-bind-host 'no..such': not an IP address or host name",
        ),
    ],
)
def test_given_a_bad_run_flag_then_exit_2_with_one_line_before_anything_starts(
    argv: list[str], expected: str, tmp_path: Path
) -> None:
    done = run_cli("scenarios/crud_mix.yaml", *argv, "--out", str(tmp_path / "out"))
    assert done.returncode == 2, done.stderr
    assert expected in one_error_line(done)
    assert not (tmp_path / "out").exists()  # no run directory, no report


def test_given_the_master_port_in_use_then_exit_2_naming_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(
            "scenarios/crud_mix.yaml", "--master-port", str(port), "--out", str(tmp_path / "o")
        )
    assert done.returncode == 2, done.stderr
    assert f"--master-port {port}: already in use on 127.0.0.1" in one_error_line(done)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["no-such-scenario.yaml"], "no-such-scenario.yaml: no such scenario file"),
        (["scenarios"], "scenarios: is a directory, not a scenario file"),
        (["validate", "scenarios"], "scenarios: is a directory, not a scenario file"),
        (["run"], "the following arguments are required: scenario"),
        (["worker", "--master-host", "x", "--master-port", "0"], "must be a whole number 1-65535"),
        (
            ["worker", "--master-host", "no..such"],
            "--master-host 'no..such': not an IP address or host name",
        ),
        (["local", "--port", "-5"], "argument --port: must be a whole number 0-65535, got '-5'"),
        (["local", "--concurrency", "0"], "--concurrency: must be a whole number 1-1000, got '0'"),
        (["local", "--timeout", "-1"], "--timeout: must be seconds in (0, 900], got '-1'"),
        (["local", "--idle-timeout", "nan"], "--idle-timeout: must be seconds in (0, 86400]"),
        (["local", "--request-timeout", "inf"], "--request-timeout: must be seconds in (0, 3600]"),
    ],
)
def test_given_a_careless_path_or_flag_then_exit_2_with_one_line(
    argv: list[str], expected: str
) -> None:
    done = run_cli(*argv)
    assert done.returncode == 2, done.stderr
    assert expected in one_error_line(done)


@pytest.mark.parametrize("run_id", ["../escaped", "/tmp/abs", ".hidden", "a/b", "x" * 101])
def test_given_a_run_id_that_is_not_one_directory_name_then_exit_2_and_nothing_written(
    run_id: str, tmp_path: Path
) -> None:
    out = tmp_path / "a" / "out"
    done = run_cli("scenarios/crud_mix.yaml", "--out", str(out), "--run-id", run_id)
    assert done.returncode == 2
    assert "argument --run-id: must be 1-100 letters, digits" in one_error_line(done)
    assert not list(tmp_path.iterdir())


def test_given_out_that_is_a_file_then_exit_2_naming_it(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    done = run_cli("scenarios/crud_mix.yaml", "--out", str(tmp_path / "file" / "reports"))
    assert done.returncode == 2
    assert f"{tmp_path / 'file'} is not a directory" in one_error_line(done)


def test_given_the_run_id_of_an_earlier_run_then_exit_2_and_the_earlier_run_is_kept(
    tmp_path: Path,
) -> None:
    earlier = tmp_path / "r1" / "results.json"
    earlier.parent.mkdir()
    earlier.write_text("{}")
    done = run_cli("scenarios/crud_mix.yaml", "--out", str(tmp_path), "--run-id", "r1")
    assert done.returncode == 2
    assert "--run-id r1: " in one_error_line(done) and "already holds a run" in done.stderr
    assert earlier.read_text() == "{}" and sorted(earlier.parent.iterdir()) == [earlier]


def test_given_a_reader_that_left_then_no_internal_error() -> None:
    # `python -m runner validate FILE | head -0`: the pipe has no reader when the line is written.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "runner", "validate", "scenarios/crud_mix.yaml"],
            cwd=PROJECT_ROOT,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 128 + signal.SIGPIPE
    assert done.stderr == ""


def test_given_an_ascii_only_terminal_then_symbols_are_spelled_out_not_a_crash() -> None:
    # GIVEN a terminal that can only show ASCII (an old locale, a CI log, PYTHONIOENCODING)
    ascii_only = {"PYTHONIOENCODING": "ascii"}
    # WHEN the plan (its ÷ and ×) is printed
    done = run_cli("validate", "scenarios/memory_sweep.yaml", env=ascii_only)
    # THEN it prints, in ASCII spellings, and exits 0 (it was "internal error", exit 3)
    assert done.returncode == 0, done.stderr
    assert "internal error" not in done.stderr
    assert " x " in done.stdout and "÷" not in done.stdout
    # AND a run's last lines (a confidence line's ≤) take the same spelling; an unknown
    # symbol becomes "?"
    printed = python(
        "-c",
        "from runner.cli import _plain_streams; _plain_streams(); "
        "print('confidence: meets p95 ≤ 200 ms in 99% · ±0.3 % · ☃')",
        env=ascii_only,
    ).stdout
    assert printed == "confidence: meets p95 <= 200 ms in 99% - +/-0.3 % - ?\n"


def test_given_two_runs_claiming_one_run_directory_then_the_second_is_refused(
    tmp_path: Path,
) -> None:
    from runner.errors import BadInput
    from runner.results import claim_run_directory

    # GIVEN a run that claimed --run-id same (its results.json created exclusively)
    assert claim_run_directory(tmp_path, "same", named=True) == "same"
    (tmp_path / "same" / "results.json").write_text("the first run's")
    # WHEN a second run names the same directory at the same time: refused, one line
    with pytest.raises(BadInput, match=r"^--run-id same: .*same already holds a run"):
        claim_run_directory(tmp_path, "same", named=True)
    # THEN the first run's file is untouched; and generated ids that meet take a suffix
    assert (tmp_path / "same" / "results.json").read_text() == "the first run's"
    claimed = [claim_run_directory(tmp_path, "20261206-000000-crud", named=False) for _ in "abc"]
    assert claimed == ["20261206-000000-crud", "20261206-000000-crud-2", "20261206-000000-crud-3"]
