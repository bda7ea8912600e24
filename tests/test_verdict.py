"""The verdict: degraded steps, dropped load, steady-state cost, how sure the pick is, and a
comparison of two runs that tells noise from change. Built on the report tests' real
histograms (tests/test_report.py), so every expected answer is worked out by hand."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runner.analysis import analyse, compare_run_pair, run_verdict
from runner.analysis._decision import cost_se
from runner.analysis._stats import Batch, design_effect
from runner.analysis._verdict import exit_code
from runner.results import CpuDelivery, Invocations, Results, Second, Trust, write_results
from runner.scenario import Thresholds
from tests.test_report import make_results, make_step, two_settings


def test_given_a_degraded_step_then_no_recommendation_rests_on_it_and_the_run_exits_3() -> None:
    results = two_settings(thresholds={"p95_ms": 200})
    cause = "host saturated: 1024 MB sandboxes waited for a CPU 41% of the time they were runnable"
    results.steps[1].trust = Trust(degraded=True, causes=[cause])
    analysis = analyse(results)
    verdict = run_verdict(analysis)
    assert verdict.recommended_mb is None and verdict.exit_code == 3 == exit_code(analysis)
    assert [(d.step, d.memory_mb, d.cause) for d in verdict.degraded_steps] == [(2, 1024, cause)]
    assert verdict.headline == f"No recommendation: step 2 (1024 MB) is degraded: {cause}."
    assert verdict.met == {"128": True, "1024": False}


def test_given_an_open_model_size_that_dropped_half_its_arrivals_then_it_misses_on_drops() -> None:
    results = two_settings()  # no thresholds set: max_drop_rate still applies
    results.steps[0].offered, results.steps[0].dropped_arrivals = 740, 356
    results.steps[1].offered, results.steps[1].dropped_arrivals = 740, 3
    analysis = analyse(results)
    small, large = analysis.settings
    assert not small.meets and large.meets
    drop = next(v for v in small.verdicts if v.name.startswith("dropped"))
    assert drop.name == "dropped ≤ 1% of offered" and drop.measured == "48.1% (356 of 740)"
    assert run_verdict(analysis).met == {"128": False, "1024": True}


def test_given_cold_starts_then_cost_ranks_on_warm_calls_and_prices_cold_starts_apart() -> None:
    results = two_settings()
    # 1024 MB: 40 cold starts in its window, 128 MB: 2 (make_step's default).
    big = results.steps[1].invocations
    results.steps[1].invocations = big.model_copy(
        update={
            "cold_starts": 40,
            "cold_billed_ms_total": 40 * 308,
            "warm_billed_ms_total": 8 * 1960,
        }
    )
    analysis = analyse(results)
    small, large = analysis.settings
    # Steady state: 55 ms × 0.125 GB vs 8 ms × 1 GB of compute per call.
    assert small.cost.lambda_compute < large.cost.lambda_compute
    assert large.cost.lambda_compute == pytest.approx(8 / 1000 * 1e6 * 0.0000166667)
    # 1024 MB cold start: 308 - 8 = 300 ms extra at 1 GB; 40 per 2,000 requests.
    assert large.cold.extra_billed_ms == 300 and large.cold.comparable
    assert large.cold.per_million_requests_count == 20_000
    assert small.cold.cold_starts == 2 and not small.cold.comparable
    assert "too few to compare" in " ".join(analysis.recommendation.explanation)


def test_given_a_pick_far_inside_its_threshold_then_it_is_sure() -> None:
    analysis = analyse(two_settings(thresholds={"p95_ms": 200}))
    confidence = analysis.confidence
    assert confidence is not None and confidence.level == "sure"
    assert confidence.meets_share == 1.0 and confidence.too_close == []
    assert confidence.pick_share == 1.0
    assert confidence.statement == (
        "128 MB is the pick in 100% of resamples; it meets p95 ≤ 200 ms in 100%."
    )


def test_given_a_cheaper_size_near_the_limit_then_it_is_too_close_to_call() -> None:
    # 128 MB's p95 ≈ 60·e^(1.645·0.3) ≈ 98 ms: a limit at its p95 makes it a coin toss.
    results = make_results(
        [
            make_step(index=1, memory=128, median_ms=60.0, billed_ms=10.0, requests=300),
            make_step(index=2, memory=1024, median_ms=12.0, billed_ms=8.0, requests=300),
        ]
    )
    p95 = analyse(results).settings[0].latency.p95
    assert p95 is not None
    results.scenario = results.scenario.model_copy(
        update={"thresholds": Thresholds(p95_ms=p95 + 0.5)}
    )
    analysis = analyse(results)
    confidence = analysis.confidence
    assert confidence is not None
    # In about half the joint resamples 128 MB misses its limit and 1024 MB is picked: no pick
    # rests on that; the run names both and how much more measuring would tell them apart.
    assert confidence.level == "too close to call"
    assert confidence.pick_share is not None and confidence.pick_share < 0.9
    assert confidence.too_close == ["too close to call between 128 MB and 1024 MB"] or (
        confidence.too_close == ["too close to call between 1024 MB and 128 MB"]
    )
    assert analysis.recommendation.cheapest is None and analysis.recommendation.too_close
    assert analysis.recommendation.headline.startswith("No recommendation: too close to call")
    assert exit_code(analysis) == 3
    assert confidence.seconds_needed is not None and confidence.seconds_needed > 15
    assert "s measured per setting would settle it" in confidence.statement


def test_given_latency_that_drifts_over_the_window_then_requests_count_as_fewer_draws() -> None:
    flat = [[Batch(20, 50.0) for _ in range(30)]]
    drifting = [[Batch(20, 30.0 + 2.0 * t) for t in range(30)]]
    assert design_effect(flat, variance_ms2=100.0) == 1.0
    assert design_effect(drifting, variance_ms2=100.0) > 10
    # Two repeats that disagree by 20 ms in their mean inflate it too.
    repeats = [[Batch(20, 40.0)] * 10, [Batch(20, 60.0)] * 10]
    assert design_effect(repeats, variance_ms2=100.0) > 10


def test_given_a_drifting_timeline_then_the_interval_widens() -> None:
    steady = analyse(two_settings()).settings[0]
    results = two_settings()
    results.steps[0].timeline = [
        Second(t=t, requests=100, failures=0, mean_ms=40.0 + 2 * t) for t in range(20)
    ]
    drifting = analyse(results).settings[0]
    assert drifting.deff > 1.0 == steady.deff
    width = {s: s.estimates["p95"].high - s.estimates["p95"].low for s in (steady, drifting)}
    assert width[drifting] > 2 * width[steady]


def test_given_two_identical_runs_then_report_a_b_json_shows_the_same_recommendation(
    tmp_path: Path,
) -> None:
    paths = []
    for run in ("a", "b"):
        results = two_settings(thresholds={"p95_ms": 200})
        results.run_id = f"run-{run}"
        path = tmp_path / run / "results.json"
        write_results(results, path)
        paths.append(path)
    done = subprocess.run(
        [sys.executable, "-m", "runner", "report", str(paths[0]), str(paths[1]), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["recommendation"] == {"a": 128, "b": 128} and data["changed"] is False
    assert data["warnings"] == []
    keys = {"memory_mb", "metric", "a", "b", "delta", "low", "high", "significant", "relation"}
    assert all(keys <= set(row) for row in data["differences"])
    latency = [row for row in data["differences"] if row["metric"].endswith("_ms")]
    assert latency and not any(row["significant"] for row in latency)
    # Cost too has the interval of its difference: zero apart, the same cost.
    cost = [row for row in data["differences"] if row["metric"] == "cost_per_1m"]
    assert [row["memory_mb"] for row in cost] == [128, 1024]
    for row in cost:
        assert row["delta"] == 0 and row["low"] < 0 < row["high"]
        assert row["relation"] == "same" and row["significant"] is False


def test_given_a_faster_second_run_then_the_comparison_calls_the_change_significant() -> None:
    a = analyse(two_settings(thresholds={"p95_ms": 200}))
    faster = make_results(
        [
            make_step(index=1, memory=128, median_ms=30.0, billed_ms=55.0),
            make_step(index=2, memory=1024, median_ms=12.0, billed_ms=12.0, seed=7),
        ],
        thresholds={"p95_ms": 200},
        run_id="run-b",
    )
    pair = compare_run_pair(a, analyse(faster))
    row = next(d for d in pair.differences if d.memory_mb == 128 and d.metric == "p95_ms")
    assert row.significant and row.delta is not None and row.delta < 0
    assert row.delta_pct is not None and -60 < row.delta_pct < -40
    assert pair.headline == "Same recommendation in both runs: 128 MB."


def test_invocations_defaults_keep_older_steps_readable() -> None:
    assert Invocations().warm_billed_ms_total == 0 and np.isfinite(1.0)


def test_given_runs_whose_sandboxes_got_different_cpu_then_the_comparison_warns() -> None:
    def with_share(share: float, run_id: str) -> Results:
        results = two_settings(thresholds={"p95_ms": 200})
        results.run_id = run_id
        results.steps[0].trust = Trust(
            cpu=CpuDelivery(
                nominal_share=0.072,
                quota_share=0.072,
                cpu_s=1.0,
                run_delay_s=10.0,
                throttled_s=9.9,
                host_wait_s=0.1,
                per_period_share=share,
                throttled_periods=0.7,
            )
        )
        return results

    pair = compare_run_pair(
        analyse(with_share(0.062, "run-a")), analyse(with_share(0.072, "run-b"))
    )
    assert pair.warnings == [
        "128 MB: the sandboxes got 0.062 of a CPU per period in run-a and 0.072 in run-b: "
        "latency differences at this size may come from the host, not the code"
    ]


def test_given_a_dearer_second_run_then_report_a_b_gives_the_cost_change_its_interval() -> None:
    # GIVEN run b billing 128 MB 60 ms a call (a was 55: +$0.010, 0.3 % of a $3.88 bill) and
    # 1024 MB as before (other random draws of the same billing)
    a = analyse(two_settings(thresholds={"p95_ms": 200}))
    dearer = make_results(
        [
            make_step(index=1, memory=128, median_ms=60.0, billed_ms=60.0, seed=5),
            make_step(index=2, memory=1024, median_ms=12.0, billed_ms=12.0, seed=5),
        ],
        thresholds={"p95_ms": 200},
        run_id="run-b",
    )
    b = analyse(dearer)
    # WHEN the runs are compared
    pair = compare_run_pair(a, b)
    cost = {d.memory_mb: d for d in pair.differences if d.metric == "cost_per_1m"}
    # THEN each size's cost difference has the interval of both runs' cost intervals combined
    for memory, row in cost.items():
        old, new = (next(s for s in run.settings if s.memory_mb == memory) for run in (a, b))
        se_a, se_b = (cost_se(s) for s in (old, new))
        assert se_a is not None and se_b is not None and row.delta is not None
        half = 1.96 * math.hypot(se_a, se_b)
        assert row.low == pytest.approx(row.delta - half)
        assert row.high == pytest.approx(row.delta + half)
        assert row.margin == pytest.approx(0.005 * min(old.cost.total, new.cost.total))
    # ... 128 MB's is clear of zero but inside the 0.5 % margin: not a change, as the rule
    # would call two settings that far apart the same cost
    small = cost[128]
    assert small.low is not None and small.low > 0
    assert small.relation == "same" and small.significant is False
    large = cost[1024]
    assert large.low is not None and large.high is not None
    assert large.relation == "same" and large.low < 0 < large.high
    as_json = {(row["memory_mb"], row["metric"]): row for row in pair.as_json()["differences"]}
    assert as_json[128, "cost_per_1m"]["low"] == small.low
    assert as_json[128, "cost_per_1m"]["relation"] == "same"
    # AND a cost change beyond the margin is called one
    much = compare_run_pair(
        a,
        analyse(
            make_results(
                [make_step(index=1, memory=128, median_ms=60.0, billed_ms=120.0, seed=5)],
                thresholds={"p95_ms": 200},
                run_id="run-c",
            )
        ),
    )
    (row,) = [d for d in much.differences if d.metric == "cost_per_1m"]
    assert row.relation == "different" and row.significant is True
    assert row.low is not None and row.margin is not None and row.low > row.margin
