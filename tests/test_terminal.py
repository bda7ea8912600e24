"""The terminal during a run, as a user sees it: a real sweep in a real pseudo-terminal (tmux).

The piped / --quiet side (one stdout line per finished step, then the final lines) rides on
tests/test_sweep.py's two-size sweep.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from runner.analysis import Load
from runner.outputs import Phase, Planned, Progress
from runner.outputs._progress import step_line
from runner.results import read_results
from runner.scenario import describe_plan, parse_scenario
from runner.stack import PROJECT_ROOT

# One size, a short load: the fewest seconds that still show every phase of a step.
SCENARIO = """\
name: terminal
target: {kind: local, calibrate: false}
sweep: {memory_mb: [1024], settle_s: 0, warmup_s: 2}
load:
  stages: [{users: 3, duration_s: 6}]
  think_time: {min_s: 0.02, max_s: 0.05}
requests:
  - name: ping
    body: {operation: ping}
workers: {local: 1, wait_s: 30}
"""
END = "__memsweep_exit"
CAPTURE_EVERY_S = 0.1
WIDTH, HEIGHT = 160, 50


def tmux(socket: str, *args: str) -> str:
    done = subprocess.run(
        ["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout


def screen_lines(socket: str) -> list[str]:
    return [line.rstrip() for line in tmux(socket, "capture-pane", "-p", "-J").splitlines()]


def test_given_a_terminal_then_one_status_area_updates_in_place_and_the_pick_is_the_last_line(
    tmp_path: Path,
) -> None:
    # GIVEN a one-size sweep started in a 160x50 terminal
    assert shutil.which("tmux"), "tmux is needed for this test: apt-get install tmux"
    (tmp_path / "scenario.yaml").write_text(SCENARIO)
    command = (
        f"{sys.executable} -m runner {tmp_path / 'scenario.yaml'} --out {tmp_path / 'reports'} "
        f"--run-id test; echo {END} $?; sleep 60"
    )
    socket = f"memsweep-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "SLS_TELEMETRY_DISABLED": "1"}
    size = ["-x", str(WIDTH), "-y", str(HEIGHT)]
    subprocess.run(
        ["tmux", "-L", socket, "new-session", "-d", *size, "-c", str(PROJECT_ROOT), command],
        env=env,
        check=True,
        timeout=10,
    )
    screens: list[list[str]] = []
    try:
        # WHEN it runs, the screen is read ten times a second until the command ends
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            lines = screen_lines(socket)
            screens.append(lines)
            if any(line.startswith(END) for line in lines):
                break
            time.sleep(CAPTURE_EVERY_S)
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], check=False, timeout=10)
    final = [line for line in screens[-1] if line]
    results = read_results(tmp_path / "reports" / "test" / "results.json")
    # 0, or 3 when a busy host degraded the step: either way the terminal is the same
    assert final and final[-1] == f"{END} {results.exit_code}", "\n".join(final)
    step = results.steps[0]
    verdict = results.verdict
    assert verdict is not None

    # THEN while it ran, one status area: a bar line and a step line, redrawn in place (the
    # screen never grows a line per second), its phase and figures changing between captures
    live = [[line for line in lines if line] for lines in screens[:-1]]
    live = [lines for lines in live if any("ETA" in line for line in lines)]
    assert len(live) >= 10, screens
    for lines in live:
        assert len([line for line in lines if "ETA" in line]) == 1, lines
        summaries = [line for line in lines if line.startswith("step 1/1 1024 MB r1: ")]
        assert len(lines) <= 3 + len(summaries), lines  # -J: a wrapped summary is one line
    statuses = {" | ".join(lines) for lines in live}
    assert len(statuses) >= 5, statuses
    phases = {phase for lines in live for line in lines for phase in PHASES if phase in line}
    assert {"starting", "warm-up", "measuring"} <= phases, phases
    shown = " ".join(line for lines in live for line in lines)
    # Past the load's end the step winds down (~0.3 s here, often between two redraws): it
    # never counts on past its window, nor says "0 s left" (test_given_a_step_past_...).
    for done, planned in re.findall(r"measuring (\d+)/(\d+) s", shown):
        assert int(done) <= int(planned), shown
    assert "s left" not in shown
    # The p95 shown is the full-resolution one (one decimal), not Locust's rounded figure.
    assert re.search(
        r"users 3 · achieved (~?\d+\.\d|-) req/s · p95 \d+\.\d ms · errors 0", shown
    ), shown

    # AND when it ends, the area is gone: the step's summary stayed, then the report as a
    # file:// URI, and the recommendation is the last line the run printed
    run_dir = (tmp_path / "reports" / "test").resolve()
    printed = final[:-1]
    assert not [line for line in printed if "ETA" in line], printed
    steps = [line for line in printed if line.startswith("step ")]
    assert steps == [step_line(step, 1)], printed
    assert f"report: {(run_dir / 'report.html').as_uri()}" in printed
    pick = verdict.headline
    if verdict.recommended_mb is not None:  # else "No recommendation: step 1 ... degraded"
        pick = f"Recommendation: {pick}"
    assert printed[-1] == pick, printed
    assert "1024 MB" in pick or verdict.recommended_mb is None, pick


PHASES = ("starting", "seeding", "setting memory", "warm-up", "measuring", "winding down")


OPEN = """\
name: open
sweep: {memory_mb: [256, 512], settle_s: 0, warmup_s: 2}
load: {model: open, rate_per_s: 20, duration_s: 10, max_in_flight: 10}
requests: [{name: ping, body: {operation: ping}}]
"""


def test_given_a_step_past_its_load_then_it_is_winding_down_and_its_figures_stay() -> None:
    # GIVEN an open-model run of two steps, 10 s of load each with a 2 s warm-up
    plan = describe_plan(parse_scenario(OPEN))
    progress = Progress(quiet=True)
    t0 = time.monotonic()
    for event in (
        Planned(plan=plan, offered_per_s=20),
        Phase(index=1, memory_mb=256, repeat=1, phase="load"),
        Load(
            elapsed_s=0,
            users=2,
            requests=180,
            failures=1,
            dropped=3,
            achieved_rps=19.5,
            p95_ms=85.3,
            locust_rps=21.0,
        ),
    ):
        progress.update(event)
    # WHEN the status is drawn in the warm-up, in the window, and after the load's end
    _, warmup = progress.status(t0 + 1.5)
    _, measuring = progress.status(t0 + 5.5)
    fraction, past = progress.status(t0 + 11)
    # THEN the phase follows the clock, the load line shows offered vs achieved, drops, the
    # measured p95 as given and errors, and past the end it is "winding down", nothing left
    assert warmup[1] == "step 1/2 · 256 MB · repeat 1/1 · warm-up 1/2 s (not measured)"
    assert measuring[1].endswith("measuring 3/8 s")
    assert past[1] == "step 1/2 · 256 MB · repeat 1/1 · winding down"
    assert past[2] == "offered 20/s · achieved 19.5 req/s · dropped 3 · p95 85.3 ms · errors 1"
    # AND the ETA is the plan's (start-up done, two steps, the end) less the 11 s run so far
    total = 2 * plan.step_s + plan.end_s
    eta = re.search(r"ETA (\d+):(\d\d)", past[0])
    assert "0/2 steps done" in past[0] and eta, past[0]
    assert abs(int(eta[1]) * 60 + int(eta[2]) - (total - 11)) <= 1, (past[0], total)
    assert fraction == pytest.approx(11 / total, abs=0.02)


def test_given_a_confident_sweep_then_its_eta_is_a_bound() -> None:
    # GIVEN a confident sweep: each setting measures until settled, at most max_s
    scenario = parse_scenario(OPEN.replace("sweep: {", "sweep: {until: confident, "))
    assert scenario.sweep.until == "confident"
    progress = Progress(quiet=True)
    progress.update(Planned(plan=describe_plan(scenario), offered_per_s=20))
    # THEN the ETA says "at most" (its plan counts every setting to max_s), a fixed one not
    _, lines = progress.status(time.monotonic() + 1)
    assert re.search(r"ETA ≤ \d+:\d\d", lines[0]), lines[0]
    progress = Progress(quiet=True)
    progress.update(Planned(plan=describe_plan(parse_scenario(OPEN)), offered_per_s=20))
    _, lines = progress.status(time.monotonic() + 1)
    assert re.search(r"ETA \d+:\d\d", lines[0]), lines[0]
