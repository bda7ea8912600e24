"""Trust end to end: real local stack, real Locust workers, real CPU hogs.

One measured window per step (warm-up cold starts apart, invocations matching requests), a
sweep beside busy loops pinned to every core flagged degraded with exit 3 and a last line
naming the step and its cause, and the same sweep on the quiet machine not flagged.

These are the quick bench's verdict-trust runs too: with $MEMSWEEP_TRUST_RUNS set (.ci/run sets
it) each run's results.json is left there and `python -m bench --quick` works its figures out
from them instead of repeating them (bench/trust.py).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench.common import cpu_hogs
from bench.trust import TRUST_RUNS_ENV
from runner.analysis import analyse, compare_run_pair
from runner.emulator._cgroups import CgroupV1Limiter, CgroupV2Limiter
from runner.results import Results, read_results
from tests.test_sweep import finish, report_of, results_of, start_run

USERS = 4
TRUST_SCENARIO = f"""\
name: trust
target: {{kind: local, calibrate: false}}
sweep: {{memory_mb: [512, 1769], settle_s: 0, warmup_s: 2}}
load:
  stages: [{{users: {USERS}, duration_s: 6}}]
  think_time: {{min_s: 0.02, max_s: 0.05}}
requests:
  - name: list
    body: {{operation: list, payload: {{}}}}
seed: {{items: 5}}
thresholds: {{p95_ms: 2000}}
workers: {{local: 1}}
"""
pytestmark = pytest.mark.skipif(
    not (CgroupV1Limiter.available() or CgroupV2Limiter.available()),
    reason="no writable cgroup: the local stack cannot measure delivered CPU here",
)


def write_scenario(tmp_path: Path) -> Path:
    path = tmp_path / "trust.yaml"
    path.write_text(TRUST_SCENARIO)
    return path


def leave_for_the_bench(results_json: Path, name: str) -> None:
    folder = os.environ.get(TRUST_RUNS_ENV)
    if folder:
        shutil.copyfile(results_json, Path(folder) / f"{name}.json")


def assert_one_window(results: Results) -> None:
    """Every figure of each step covers its measured window."""
    for step in results.steps:
        # Each memory change starts fresh sandboxes: their cold starts land in the warm-up
        # and are counted there, not in the window.
        assert step.outside.warmup.cold_starts >= 1, step.outside
        assert step.outside.warmup.count >= step.outside.warmup.cold_starts
        # Seeding (5 creates + the table reset's list) ran before the load.
        assert step.outside.before.count >= 5
        # In the window, invocations and requests differ by at most the requests in flight
        # at its two edges.
        assert abs(step.invocations.count - step.requests) <= 2 * USERS, (
            step.invocations.count,
            step.requests,
        )
        assert step.outside.unattributed == 0
        assert step.invocations.billed_ms_total == (
            step.invocations.warm_billed_ms_total + step.invocations.cold_billed_ms_total
        )


def test_given_two_identical_quiet_runs_then_one_window_no_flag_and_the_same_pick(
    tmp_path: Path,
) -> None:
    runs = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        code, stderr = finish(start_run(write_scenario(folder), folder))
        results = results_of(folder)
        causes = [cause for step in results.steps for cause in step.trust.causes]
        assert code == 0 and not causes, (causes, stderr)
        assert all(s.trust.cpu is not None and s.trust.cpu.cpu_s > 0 for s in results.steps)
        assert results.verdict is not None and results.verdict.recommended_mb == 512
        assert_one_window(results)
        runs.append(folder / "reports" / "test" / "results.json")
        leave_for_the_bench(runs[-1], f"idle-{name}")
    # `report A B`'s analysis of the pair (its command line: tests/test_verdict.py)
    comparison = compare_run_pair(*(analyse(read_results(path)) for path in runs))
    assert comparison.as_json()["recommendation"] == {"a": 512, "b": 512}
    assert not comparison.changed


def test_given_cpu_hogs_on_every_core_then_steps_are_degraded_and_the_run_exits_3(
    tmp_path: Path,
) -> None:
    with cpu_hogs(limit_s=120):
        code, stderr = finish(start_run(write_scenario(tmp_path), tmp_path))
    leave_for_the_bench(tmp_path / "reports" / "test" / "results.json", "busy-1")
    assert code == 3, stderr
    results = results_of(tmp_path)
    degraded = [step for step in results.steps if step.trust.degraded]
    assert degraded, [step.trust for step in results.steps]
    first = degraded[0]
    assert any(cause.startswith("host saturated:") for cause in first.trust.causes)
    verdict = results.verdict
    assert verdict is not None and verdict.recommended_mb is None and verdict.exit_code == 3
    assert verdict.degraded_steps[0].step == first.index
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"No recommendation: step {first.index} ({first.memory_mb} MB) is degraded: host saturated:"
    ), last
    report = report_of(tmp_path, stderr)
    assert 'data-role="degraded"' in report
    assert report.index('data-role="degraded"') < report.index('data-role="recommendation"')
