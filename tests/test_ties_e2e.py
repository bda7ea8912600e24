"""Settings that cost the same, measured for real: the pick is decided by latency (or the
smallest), the headline says so, and two identical runs pick the same.

A read-and-echo mix on the local stack at 128 and 512 MB: API Gateway's $3.50 per 1M is the
bill, and the two sizes' compute differs by a fraction of a cent (128 MB bills a few ms on
0.125 GB, 512 MB about 1 ms on 0.5 GB). Two confident sweeps, run once per module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runner.results import Results, read_results
from runner.stack import PROJECT_ROOT

TIED = """\
name: read and echo
target: {kind: local, calibrate: false}
sweep: {memory_mb: [128, 512], settle_s: 0, warmup_s: 1, until: confident, round_s: 3,
        min_s: 3, max_s: 9}
load:
  stages: [{users: 4, duration_s: 10}]
  think_time: {min_s: 0.02, max_s: 0.05}
requests:
  - name: read
    body: {operation: read, tableName: lambda-apigateway, payload: {Key: {id: "{{seeded}}"}}}
  - name: echo
    weight: 2
    body: {operation: echo, payload: {k: v}}
seed: {items: 5}
workers: {local: 1}
"""


def run_once(tmp_path: Path, run_id: str) -> tuple[int, Path, str]:
    path = tmp_path / "tied.yaml"
    path.write_text(TIED)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "runner",
            str(path),
            "--out",
            str(tmp_path / "reports"),
            "--run-id",
            run_id,
            "--quiet",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.returncode, tmp_path / "reports" / run_id / "results.json", done.stderr


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[int, Path, str]]:
    root = tmp_path_factory.mktemp("ties")
    return [run_once(root, run_id) for run_id in ("a", "b")]


def verdict_of(path: Path) -> Results:
    results = read_results(path)
    assert results.verdict is not None
    return results


@pytest.mark.node
def test_given_sizes_that_cost_the_same_then_latency_or_size_decides_and_the_headline_says_so(
    pair: list[tuple[int, Path, str]],
) -> None:
    for code, path, stderr in pair:
        results = verdict_of(path)
        verdict = results.verdict
        assert verdict is not None
        if any(step.trust.degraded for step in results.steps):
            pytest.skip(f"a step was degraded on this busy host: {verdict.headline}")
        (difference,) = verdict.cost_differences
        assert difference.relation == "same", difference
        assert verdict.equivalent == ["128", "512"]
        if verdict.confidence.level == "too close to call":
            assert code == 3 and verdict.headline.startswith("No recommendation: too close")
            continue
        assert code == 0, stderr
        assert verdict.decided_by in ("latency among equal costs", "smallest among equals")
        assert "128 MB and 512 MB cost the same" in verdict.headline
        if verdict.decided_by == "latency among equal costs":
            assert verdict.recommended_mb == 512
            assert "More memory is free here." in verdict.headline


@pytest.mark.node
def test_given_two_identical_runs_of_a_tied_mix_then_report_a_b_shows_the_same_pick(
    pair: list[tuple[int, Path, str]],
) -> None:
    (_, a, _), (_, b, _) = pair
    if any(step.trust.degraded for path in (a, b) for step in read_results(path).steps):
        pytest.skip("a step was degraded on this busy host")
    done = subprocess.run(
        [sys.executable, "-m", "runner", "report", str(a), str(b), "--json"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["recommendation"]["a"] == data["recommendation"]["b"], data["recommendation"]
    assert data["changed"] is False
