"""The main command end to end: real local stack, real Locust master and worker processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from runner.analysis import analyse
from runner.outputs._progress import step_line
from runner.results import Problem, read_results
from runner.stack import PROJECT_ROOT
from tests.test_exports import check_a_real_runs_directory
from tests.test_local_stack import alive, wait_until

SHORT = """\
name: short sweep
target: {{kind: local, calibrate: false}}
sweep: {{memory_mb: {sizes}, settle_s: 0, warmup_s: 1{axes}}}
load:
  stages: [{{users: 4, duration_s: {duration}}}]
  think_time: {{min_s: 0.02, max_s: 0.05}}
requests:
  - name: create
    weight: 2
    body:
      operation: create
      tableName: lambda-apigateway
      payload: {{Item: {{id: "{{{{uuid}}}}", n: "{{{{int:1:9}}}}"}}}}
  - name: read
    body:
      operation: read
      tableName: lambda-apigateway
      payload: {{Key: {{id: "{{{{seeded}}}}"}}}}
  - name: ping
    body: {{operation: ping}}
seed: {{items: 10}}
workers: {{local: {workers}, wait_s: {wait}}}
{extra}
"""


def scenario(
    tmp_path: Path,
    *,
    duration: float = 3,
    workers: int = 2,
    wait: float = 30,
    extra: str = "",
    sizes: str = "[1024, 512]",
    axes: str = "",
) -> Path:
    """The short sweep; one size (`sizes="[1024]"`) where a test needs no second step (CI time);
    `axes` adds sweep keys beside memory_mb (", api: [rest, http]")."""
    path = tmp_path / "scenario.yaml"
    path.write_text(
        SHORT.format(
            duration=duration, workers=workers, wait=wait, extra=extra, sizes=sizes, axes=axes
        )
    )
    return path


def start_run(path: Path, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    log = open(tmp_path / "stderr.txt", "w")  # noqa: SIM115 - closed by finish()
    out = open(tmp_path / "stdout.txt", "w")  # noqa: SIM115 - closed by finish()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runner",
            str(path),
            "--out",
            str(tmp_path / "reports"),
            "--run-id",
            "test",
            "--quiet",
            *args,
        ],
        cwd=PROJECT_ROOT,
        stdout=out,  # the step lines and the final lines; diagnostics on stderr
        stderr=log,
        text=True,
        start_new_session=True,  # its own process group, as a shell gives a foreground job
    )
    process.log_path = tmp_path / "stderr.txt"  # type: ignore[attr-defined]
    return process


def stderr_of(process: subprocess.Popen[str]) -> str:
    return Path(process.log_path).read_text()  # type: ignore[attr-defined]


def stdout_of(process: subprocess.Popen[str]) -> str:
    return Path(process.log_path).with_name("stdout.txt").read_text()  # type: ignore[attr-defined]


def finish(process: subprocess.Popen[str], timeout: float = 180) -> tuple[int, str]:
    """The exit code and all the run printed: diagnostics (stderr), then its lines (stdout)."""
    process.wait(timeout=timeout)
    return process.returncode, stderr_of(process) + stdout_of(process)


def loading(process: subprocess.Popen[str]) -> bool:
    """The first step's load is running (its one diagnostic line was printed)."""
    return "load running" in stderr_of(process)


def results_of(tmp_path: Path) -> Any:
    return read_results(tmp_path / "reports" / "test" / "results.json")


def report_of(tmp_path: Path, stderr: str) -> str:
    """The run's report.html, which every run ends by writing and naming."""
    path = tmp_path / "reports" / "test" / "report.html"
    assert f"report: {path.resolve().as_uri()}" in stderr
    return path.read_text()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(line) for line in out.split()]


# The whole bill's axes beside memory: 2 sizes x 2 API types x 2 handlers, the
# tutorial's original handler beside the hardened one (it needs tableName in every body).
WHOLE_BILL_AXES = (
    ", api: [rest, http], handler: [handler.lambda_handler, tutorial_handler.lambda_handler]"
)


def test_given_a_sweep_over_memory_api_and_handler_then_valid_results_for_every_point(
    tmp_path: Path,
) -> None:
    run = start_run(scenario(tmp_path, axes=WHOLE_BILL_AXES), tmp_path)
    code, stderr = finish(run, timeout=300)
    results = results_of(tmp_path)
    # 2 s windows: the verdict may rightly be too close to call (exit 3, the run complete)
    assert results.verdict is not None, stderr
    too_close = results.verdict.confidence.level == "too close to call"
    assert code == (3 if too_close else 0), stderr
    assert results.status == "complete" and results.exit_code == code
    # Piped (--quiet): stdout holds one line per finished step, then the final lines, the
    # recommendation last; stderr only diagnostics; nothing is printed per second.
    run_dir = (tmp_path / "reports" / "test").resolve()
    assert results.verdict is not None
    assert stdout_of(run).splitlines() == [
        *(step_line(step, 8) for step in results.steps),
        f"results: {run_dir / 'results.json'}",
        f"report: {(run_dir / 'report.html').as_uri()}",
        f"confidence: {results.verdict.confidence.statement}",
        # "No recommendation: too close to call ..." stands alone, never after "Recommendation:"
        results.verdict.headline if too_close else f"Recommendation: {results.verdict.headline}",
    ]
    assert step_line(results.steps[0], 8).startswith(
        "step 1/8 1024 MB · REST API · handler.lambda_handler r1: "
    )
    diagnostics = stderr_of(run).splitlines()
    assert len([line for line in diagnostics if "load running" in line]) == 8, diagnostics
    assert not [line for line in diagnostics if "req/s" in line or "p95" in line], diagnostics
    assert results.target.architecture == "x86_64"  # serverless.yml's, for the prices
    # Memory changes every step, the API every two, the handler (a code update on AWS) once.
    assert [(step.memory_mb, step.api, step.handler) for step in results.steps] == [
        (memory, api, handler)
        for handler in ("handler.lambda_handler", "tutorial_handler.lambda_handler")
        for api in ("rest", "http")
        for memory in (1024, 512)
    ]
    for step in results.steps:
        assert step.valid, step.problems
        assert step.requests > 0 and step.failures == 0
        assert step.latency.p50 is not None and step.latency.p99 is not None
        assert step.rps > 0
        # Every request counted once: the total equals what the workers reported.
        assert sum(w.requests for w in step.workers) == step.requests
        assert len(step.workers) == 2
        assert sum(r.requests for r in step.per_request) == step.requests
        assert {r.name for r in step.per_request} == {"create", "read", "ping"}
        assert step.timeline and sum(s.requests for s in step.timeline) == step.requests
        assert step.invocations.count >= step.requests * 0.9
        if step.handler == "handler.lambda_handler":  # the tutorial's reports no capacity
            assert step.invocations.write_units > 0
        assert step.fidelity is not None and step.fidelity.level in ("full", "degraded")
        assert any(f.endswith("_stats.csv") for f in step.locust_files)
    assert "results:" in stderr
    html = report_of(tmp_path, stderr)
    assert 'data-memory="512"' in html and "512 MB · HTTP API · tutorial_handler" in html
    # The file itself: plain JSON, versioned, with the verdict and the scenario as written.
    data = json.loads((tmp_path / "reports" / "test" / "results.json").read_text())
    assert data["schema_version"] == 4
    verdict = data["verdict"]
    assert verdict["exit_code"] == 0 and verdict["recommended_mb"] in (512, 1024)
    # The pick on every axis; the API type's price gap ($2.50 per 1M) decides it here.
    recommended = verdict["recommended"]
    assert recommended["memory_mb"] == verdict["recommended_mb"]
    assert (recommended["api"], recommended["architecture"]) == ("http", "x86_64")
    assert recommended["handler"] in ("handler.lambda_handler", "tutorial_handler.lambda_handler")
    assert len(verdict["met"]) == 8
    # The API type moves the bill most: REST's $3.50 against HTTP's $1.00 per 1M, give or take
    # the few tenths of a cent the points' measured compute differs by.
    effects = analyse(results, intervals=False).effects
    assert effects[0].axis == "api" and effects[0].cost_delta == pytest.approx(-2.50, abs=0.05)
    assert data["scenario_text"].startswith("name: short sweep")
    # summary.csv, junit.xml, summary.md and Locust's own CSVs beside it.
    check_a_real_runs_directory(run_dir, results)


def test_given_remote_workers_joining_by_command_line_then_each_carries_the_load(
    tmp_path: Path,
) -> None:
    """`runner worker` and stock `locust --worker -f -` (which fetches the locustfile from the
    master) join one run; each carries load and every request is counted once."""
    port = free_port()
    run = start_run(
        scenario(tmp_path, workers=0, sizes="[1024]"),
        tmp_path,
        "--expect-workers",
        "2",
        "--master-port",
        str(port),
    )
    master = ["--master-host", "127.0.0.1", "--master-port", str(port)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", *command, *master],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for command, cwd in (
            (["runner", "worker"], PROJECT_ROOT),
            (["locust", "--worker", "-f", "-"], tmp_path),
        )
    ]
    try:
        code, stderr = finish(run)
    finally:
        exited = [wait_until(lambda w=w: w.poll() is not None, 30) for w in workers]
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    assert code == 0, stderr
    assert all(exited), "a worker did not exit after the run"
    step = results_of(tmp_path).steps[0]
    assert len(step.workers) == 2 and all(w.requests > 0 for w in step.workers)
    assert sum(w.requests for w in step.workers) == step.requests


def test_given_workers_that_never_arrive_then_exit_3_with_one_clear_line(tmp_path: Path) -> None:
    started = time.monotonic()
    code, stderr = finish(
        start_run(scenario(tmp_path, workers=0, wait=2), tmp_path, "--expect-workers", "2")
    )
    assert code == 3
    assert time.monotonic() - started < 60
    lines = [line for line in stderr.splitlines() if line.startswith("memsweep:")]
    assert len(lines) == 1 and "expected 2 Locust workers" in lines[0]
    assert "0 arrived within 2 s" in lines[0]
    assert "Traceback" not in stderr
    assert results_of(tmp_path).status == "failed"


def test_given_arm64_on_the_local_stack_then_exit_2_in_one_line_before_any_load(
    tmp_path: Path,
) -> None:
    """The local stack runs on this machine's CPU: it cannot measure an arm64 function, and
    says so before a single request (the x86_64 point is not run either)."""
    path = scenario(tmp_path, workers=1, sizes="[1024]", axes=", architecture: [x86_64, arm64]")
    code, stderr = finish(start_run(path, tmp_path))
    assert code == 2, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("memsweep:")]
    assert len(lines) == 1 and lines[0].startswith("memsweep: sweep.architecture: arm64: "), lines
    assert "on AWS" in lines[0] and "Traceback" not in stderr
    assert "starting the local target" not in stderr  # refused before the stack started
    results = results_of(tmp_path)
    assert results.status == "failed" and results.steps == [] and results.exit_code == 2
    assert [problem.kind for problem in results.problems] == ["stopped"]


# A worker killed mid-step: test_multihost.py (SIGKILL on a worker host, the same detection
# code; one run fewer here).


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


def test_given_the_target_dies_mid_step_then_errors_are_counted_and_exit_3(
    tmp_path: Path,
) -> None:
    # One size: the sweep stops at the step whose target died (no second step to measure).
    run = start_run(scenario(tmp_path, duration=8, sizes="[1024]"), tmp_path)
    stack: list[int] = []

    def local_stack_running() -> bool:
        stack[:] = [pid for pid in children_of(run.pid) if "-m runner local" in _cmdline(pid)]
        return bool(stack) and len(children_of(stack[0])) >= 2  # dynalite + a sandbox

    assert wait_until(local_stack_running, 60)
    assert wait_until(lambda: loading(run), 60)
    time.sleep(2)
    os.kill(stack[0], signal.SIGKILL)
    code, stderr = finish(run)
    assert code == 3, stderr
    assert "memsweep: step 1:" in stderr and ("exited" in stderr or "stopped answering" in stderr)
    results = results_of(tmp_path)
    assert results.status == "failed"
    step = results.steps[0]
    assert step.failures > 0
    assert any("Connection" in error.kind or "Refused" in error.kind for error in step.errors)


def test_given_ctrl_c_mid_sweep_then_partial_results_exit_130_and_no_orphans(
    tmp_path: Path,
) -> None:
    run = start_run(scenario(tmp_path, duration=20), tmp_path)
    descendants: set[int] = set()

    def loaded() -> bool:
        for child in children_of(run.pid):
            descendants.add(child)
            descendants.update(children_of(child))
        return (tmp_path / "reports" / "test" / "results.json").exists() and len(descendants) >= 4

    assert wait_until(loaded, 60)
    assert wait_until(lambda: loading(run), 60)
    time.sleep(2)
    for child in children_of(run.pid):
        descendants.add(child)
        descendants.update(children_of(child))
    os.killpg(run.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends: the whole job
    code, stderr = finish(run, timeout=60)
    assert code == 130, stderr
    results = results_of(tmp_path)
    assert results.status == "interrupted" and results.exit_code == 130
    assert results.steps and results.steps[0].requests > 0
    assert (
        Problem(kind="interrupted", detail="step cut short by an interrupt")
        in results.steps[0].problems
    )
    assert "This run was interrupted" in report_of(tmp_path, stderr)
    assert wait_until(lambda: not any(alive(pid) for pid in descendants), 20), [
        (pid, _cmdline(pid)) for pid in descendants if alive(pid)
    ]


def test_given_thresholds_no_setting_meets_then_exit_1(tmp_path: Path) -> None:
    path = scenario(tmp_path, duration=3, extra="thresholds: {p50_ms: 0.001}", sizes="[1024]")
    code, stderr = finish(start_run(path, tmp_path))
    assert code == 1, stderr
    assert results_of(tmp_path).status == "complete"
    assert "No memory size met the thresholds." in report_of(tmp_path, stderr)


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Any:
    yield


def test_given_an_open_model_faster_than_the_function_then_arrivals_are_dropped_and_counted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "open.yaml"
    path.write_text(f"""\
name: open model
target: {{kind: local, calibrate: false, handler: behaviours.lambda_handler,
         code_dir: "{PROJECT_ROOT / "tests" / "handlers"}"}}
sweep: {{memory_mb: [1769]}}
load: {{model: open, rate_per_s: 40, duration_s: 4, max_in_flight: 2, arrivals: uniform}}
requests:
  - name: slow
    body: {{action: sleep, seconds: 0.2}}
workers: {{local: 1}}
""")
    code, stderr = finish(start_run(path, tmp_path))
    results = results_of(tmp_path)
    step = results.steps[0]
    # 2 in flight x 5/s each = ~10/s served of 40/s offered: most arrivals are dropped.
    assert step.requests > 0 and step.failures == 0
    assert step.dropped_arrivals > step.requests
    assert step.offered == step.requests + step.dropped_arrivals
    # Dropping is a miss like latency (max_drop_rate, 1 % by default, set or not): exit 1.
    assert code == 1, stderr
    assert results.verdict is not None and results.verdict.met == {"1769": False}
    assert results.verdict.recommended_mb is None
    report = report_of(tmp_path, stderr)
    assert "1769 MB failed dropped ≤ 1% of offered (measured " in report


def test_given_no_request_completes_in_a_step_then_the_step_is_invalid_and_exit_3(
    tmp_path: Path,
) -> None:
    path = tmp_path / "stuck.yaml"
    path.write_text(f"""\
name: nothing completes
target: {{kind: local, calibrate: false, handler: behaviours.lambda_handler,
         code_dir: "{PROJECT_ROOT / "tests" / "handlers"}"}}
sweep: {{memory_mb: [1769]}}
load: {{stages: [{{users: 1, duration_s: 2}}]}}
requests:
  - name: slower than the step
    body: {{action: sleep, seconds: 6}}
workers: {{local: 1}}
""")
    code, stderr = finish(start_run(path, tmp_path))
    assert code == 3, stderr
    step = results_of(tmp_path).steps[0]
    assert step.requests == 0 and not step.valid
    assert [p.kind for p in step.problems] == ["no requests"]
    assert "no request completed in the measured window" in step.problems[0].detail
    assert "No recommendation" in report_of(tmp_path, stderr)


def test_given_a_ramped_stage_then_the_ramp_takes_its_first_seconds_not_extra_ones(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ramp.yaml"
    path.write_text("""\
name: ramp inside the stage
target: {kind: local, calibrate: false}
sweep: {memory_mb: [1024]}
load:
  stages: [{users: 2, duration_s: 2}, {users: 6, duration_s: 4, ramp_s: 4}]
  think_time: {min_s: 0.05, max_s: 0.1}
requests:
  - name: ping
    body: {operation: ping}
workers: {local: 1}
""")
    code, stderr = finish(start_run(path, tmp_path))
    assert code == 0, stderr
    step = results_of(tmp_path).steps[0]
    # Locust's master blocks in start() for the whole ramp: run inline, it was added to the
    # stage (2 + 4 + 4 s); the scenario says the ramp is the stage's first ramp_s.
    assert step.window_end - step.started_at == pytest.approx(6.0, abs=0.5)
    assert max(s.users or 0 for s in step.timeline) == 6
    assert abs(step.invocations.count - step.requests) <= 2 * 6  # in flight at the edges


def test_given_until_confident_then_rounds_stop_each_setting_once_settled_and_say_why(
    tmp_path: Path,
) -> None:
    # GIVEN two sizes far apart in speed, measured in 2 s rounds, at least 4 s and at most
    # 8 s each
    path = scenario(
        tmp_path,
        sizes="[128, 1024]",
        axes=", until: confident, round_s: 2, min_s: 4, max_s: 8",
        workers=1,
    )
    code, output = finish(start_run(path, tmp_path), timeout=240)
    results = read_results(tmp_path / "reports" / "test" / "results.json")

    # THEN every round is recorded with what it measured and what the look after it decided
    assert code in (0, 3), output
    assert 2 <= len(results.rounds) <= 4
    # every setting measured in at least two rounds (min_s), pooled into one setting whose
    # intervals carry the spread between its rounds
    settings = analyse(results).settings
    assert [len(s.steps) >= 2 for s in settings] == [True, True]
    assert results.rounds[0].still_open == {
        "128 MB": "under min_s (2 of 4 s measured)",
        "1024 MB": "under min_s (2 of 4 s measured)",
    } or all(why for why in results.rounds[0].still_open.values())
    assert [r.round for r in results.rounds] == list(range(1, len(results.rounds) + 1))
    stopped = {label: why for r in results.rounds for label, why in r.stopped.items()}
    assert set(stopped) == {"128 MB", "1024 MB"}, results.rounds
    assert all(why.startswith(("settled after", "max_s reached")) for why in stopped.values())
    # each round's steps are the settings still open, interleaved; the repeat is the round
    for record in results.rounds:
        steps = [s for s in results.steps if s.repeat == record.round]
        assert [f"{s.memory_mb} MB" for s in steps] == record.measured
    for record in results.rounds[:-1]:
        assert record.still_open and all(why for why in record.still_open.values())
    # the terminal says why each setting keeps measuring or stops
    assert "round 1: 128 MB " in output and "round 1: 1024 MB " in output
    # a settled setting stops before max_s; one still open at max_s says what is open
    if len(results.rounds) < 4:
        assert any(why.startswith("settled after") for why in stopped.values())
