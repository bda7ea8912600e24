"""python -m runner: the entry point a user types first."""

from __future__ import annotations

import subprocess
import sys

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
