"""scripts/setup.sh, the README's set-up and CI's: one line naming the command to run when a
system package is missing and it cannot install it, and no apt-get when nothing is missing.

The script runs for real here, with stand-ins first on PATH for what would install or change
something (python, so pip; npm; apt-get, recording its calls; id, to be someone other than root)
and the machine's own commands after them, apt-get and sudo left out where a case says so.
MEMSWEEP_SETUP_ASSUME_MISSING makes a package count as missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "setup.sh"
BASH = shutil.which("bash") or "/bin/bash"

# What the tests need (the script fails without one) and what only `python -m bench` needs.
TEST_NEEDS = ("node", "npm", "tmux")
BENCH_NEEDS = ("wrk", "nginx")

MISSING_LINE = re.compile(
    r"memsweep setup: missing (?P<packages>[a-z0-9 .+-]+); "
    r"run: (?P<sudo>(sudo )?)apt-get update && (?P=sudo)apt-get install -y (?P=packages) "
    r"\((?P<why>.+)\)"
)


def machine_is_set_up() -> bool:
    """Node.js 20+, /usr/bin/chromium, tmux, wrk and nginx are here (CI's set-up ran)."""
    if not all(shutil.which(name) for name in (*TEST_NEEDS, *BENCH_NEEDS)):
        return False
    if not os.access("/usr/bin/chromium", os.X_OK):
        return False
    major = subprocess.run(
        ["node", "-p", "process.versions.node.split('.')[0]"], capture_output=True, text=True
    ).stdout
    return major.strip().isdigit() and int(major) >= 20


needs_set_up_machine = pytest.mark.skipif(
    not machine_is_set_up(),
    reason="needs Node.js 20+, /usr/bin/chromium, tmux, wrk and nginx: bash scripts/setup.sh",
)


def run_setup(
    tmp_path: Path, *, leave_out: tuple[str, ...] = (), uid: int | None = None, assume: str = ""
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the script with stand-ins for python, npm, apt-get (and id when `uid` is given) first
    on PATH and links to the machine's commands but `leave_out` after them; returns the run and
    the stand-ins' calls."""
    calls = tmp_path / "calls"
    fakes = tmp_path / "fakes"
    fakes.mkdir()
    stand_ins = {"python": "", "npm": "", "apt-get": ""}
    if uid is not None:
        stand_ins["id"] = f"echo {uid}\n"
    for name, body in stand_ins.items():
        if name in leave_out:
            continue
        fake = fakes / name
        fake.write_text(f'#!/bin/sh\necho "{name} $*" >> "{calls}"\n{body}')
        fake.chmod(0o755)
    machine = tmp_path / "machine"
    machine.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            link = machine / entry.name
            if entry.name in leave_out or link.is_symlink() or not os.access(entry.path, os.X_OK):
                continue
            link.symlink_to(entry.path)
    env = {
        **os.environ,
        "PATH": f"{fakes}{os.pathsep}{machine}",
        "MEMSWEEP_SETUP_ASSUME_MISSING": assume,
    }
    run = subprocess.run(
        [BASH, str(SCRIPT)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    return run, calls.read_text().splitlines() if calls.exists() else []


def the_missing_line(run: subprocess.CompletedProcess[str]) -> re.Match[str]:
    """The one line about missing packages, the last of stdout, in the documented form."""
    lines = [line for line in run.stdout.splitlines() if "missing" in line]
    assert len(lines) == 1, run.stdout + run.stderr
    assert run.stdout.splitlines()[-1] == lines[0]
    match = MISSING_LINE.fullmatch(lines[0])
    assert match, lines[0]
    return match


def test_no_apt_get_names_the_command_and_fails_for_what_the_tests_need(tmp_path: Path) -> None:
    run, calls = run_setup(tmp_path, leave_out=("apt-get", "sudo"), assume="chromium tmux")

    assert run.returncode == 1, run.stdout + run.stderr
    line = the_missing_line(run)
    assert {"chromium", "tmux"} <= set(line["packages"].split())
    assert line["sudo"] == ("" if os.geteuid() == 0 else "sudo ")
    assert line["why"].startswith("no apt-get here")
    # It went on with what it can do.
    assert "python -m pip install -q -e .[test]" in calls


def test_not_root_without_sudo_names_the_command_and_runs_no_apt_get(tmp_path: Path) -> None:
    run, calls = run_setup(tmp_path, leave_out=("sudo",), uid=1000, assume="chromium")

    assert run.returncode == 1, run.stdout + run.stderr
    line = the_missing_line(run)
    assert "chromium" in line["packages"].split()
    assert line["sudo"] == "sudo "
    assert line["why"] == "not root and no passwordless sudo"
    assert not [call for call in calls if call.startswith("apt-get")]
    assert "python -m pip install -q -e .[test]" in calls


@needs_set_up_machine
def test_a_package_only_the_benchmarks_need_is_named_without_failing(tmp_path: Path) -> None:
    run, _ = run_setup(tmp_path, leave_out=("apt-get", "sudo"), assume="nginx")

    assert run.returncode == 0, run.stdout + run.stderr
    line = the_missing_line(run)
    assert line["packages"] == "nginx"
    assert "the tests do not need them, python -m bench does" in line["why"]


@needs_set_up_machine
def test_with_everything_present_it_runs_no_apt_get(tmp_path: Path) -> None:
    run, calls = run_setup(tmp_path)

    assert run.returncode == 0, run.stdout + run.stderr
    assert not [call for call in calls if call.startswith("apt-get")], calls
    assert "python -m pip install -q -e .[test]" in calls
    assert run.stdout.splitlines()[-1].startswith("memsweep setup: ready (Node.js v")
    assert "missing" not in run.stdout
