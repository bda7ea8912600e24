"""`report A B` beside client latency: the function's own Duration p50/p95, judged between the
runs as client latency is (the interval of the difference, the run-to-run margin), and the two
runs' measured AWS charges side by side.

Runs are built as a run writes them (tests/test_report.py's make_step: client latency and the
function's REPORT Durations lognormal around their medians, sigma 0.3, 2,000 requests a step),
so which difference is a change can be worked out by hand: at sigma 0.3 and 2,000 draws a
95 % interval of the difference of two medians is about ±5 % of them, inside the 15 %
run-to-run margin.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from runner.analysis import (
    RUN_TO_RUN_MARGIN,
    Analysis,
    RunDifference,
    analyse,
    compare_run_pair,
)
from runner.outputs._report import render
from runner.results import AwsCharges, ChargeLine, Results, write_results
from tests.test_report import make_results, make_step

FUNCTION_METRICS = ("duration_p50_ms", "duration_p95_ms")


def run(
    run_id: str,
    *,
    function_ms: tuple[float | None, float | None],
    seed: int = 0,
    repeats: int = 1,
) -> Results:
    """Client latency the same in both runs (60 ms at 128 MB, 12 ms at 1024 MB); the
    function's median Duration per size as given (None: a file from before they were kept)."""
    steps = [
        make_step(
            index=1 + 2 * (repeat - 1) + i,
            memory=memory,
            median_ms=median,
            billed_ms=median,
            duration_median_ms=duration,
            repeat=repeat,
            seed=seed + 10 * repeat,
        )
        for repeat in range(1, repeats + 1)
        for i, (memory, median, duration) in enumerate(
            ((128, 60.0, function_ms[0]), (1024, 12.0, function_ms[1]))
        )
    ]
    return make_results(steps, run_id=run_id)


@functools.cache
def analysed(
    run_id: str,
    function_ms: tuple[float | None, float | None],
    seed: int = 0,
    repeats: int = 1,
    intervals: bool = True,
) -> Analysis:
    """The analysis of `run(...)`, built once per module: the bootstrap behind the intervals
    takes about a second a run, and most tests compare the same A and B. Read-only."""
    results = run(run_id, function_ms=function_ms, seed=seed, repeats=repeats)
    return analyse(results, intervals=intervals)


def with_charges(analysis: Analysis, charges: AwsCharges) -> Analysis:
    """The same analysis of a run that also measured its AWS charges."""
    results = analysis.results.model_copy(update={"test_cost": charges})
    return dataclasses.replace(analysis, results=results)


def function_differences(a: Analysis, b: Analysis) -> dict[tuple[int, str], RunDifference]:
    pair = compare_run_pair(a, b)
    return {(d.memory_mb, d.metric): d for d in pair.differences if d.of_function}


def charges(total: float, **by_service: float) -> AwsCharges:
    return AwsCharges(
        total_usd=total,
        lines=[
            ChargeLine(service=service.replace("_", " "), quantity=1.0, unit="requests", usd=usd)
            for service, usd in by_service.items()
        ],
        basis="measured",
        prices_as_of="prices as of 2026-01-01",
        estimated=False,
    )


def test_given_a_function_30_percent_slower_in_b_then_its_duration_change_is_a_change() -> None:
    # GIVEN the function's median at 128 MB 40 ms in A and 52 ms in B (+30 %, twice the margin)
    a = analysed("run-a", (40.0, 8.0))
    b = analysed("run-b", (52.0, 8.0), seed=5)
    # WHEN the runs are compared
    found = function_differences(a, b)
    # THEN p50 and p95 of the function's Duration changed at 128 MB, each interval clear of the
    # margin (15 % of A's figure: one repeat a side)
    for metric in FUNCTION_METRICS:
        d = found[(128, metric)]
        assert d.a is not None and d.delta is not None and d.low is not None
        assert d.delta == pytest.approx(0.30 * d.a, rel=0.2)
        assert d.margin == pytest.approx(RUN_TO_RUN_MARGIN * d.a)
        assert d.margin is not None and d.low > d.margin
        assert d.significant is True


def test_given_the_same_function_in_both_runs_then_its_duration_is_within_noise() -> None:
    # GIVEN the same function (8 ms median at 1024 MB) measured twice, other draws
    a = analysed("run-a", (40.0, 8.0))
    b = analysed("run-b", (40.0, 8.0), seed=5)
    found = function_differences(a, b)
    # THEN no change at either size: each difference smaller than its margin
    for memory in (128, 1024):
        for metric in FUNCTION_METRICS:
            d = found[(memory, metric)]
            assert d.low is not None and d.high is not None and d.delta is not None
            assert d.significant is False
            assert d.margin is not None and abs(d.delta) < d.margin


def test_given_a_10_percent_shift_with_an_interval_clear_of_zero_then_not_a_change() -> None:
    # GIVEN the function 10 % slower in B: the interval of the difference excludes zero, but
    # the difference is inside the run-to-run margin, as for client latency
    a = analysed("run-a", (40.0, 8.0))
    b = analysed("run-b", (44.0, 8.0), seed=5)
    d = function_differences(a, b)[(128, "duration_p50_ms")]
    assert d.low is not None and d.low > 0
    assert d.margin is not None and d.delta is not None and d.delta < d.margin
    assert d.significant is False


def test_given_repeats_in_both_runs_then_no_margin_and_the_interval_decides() -> None:
    a = analysed("run-a", (40.0, 8.0), repeats=2)
    b = analysed("run-b", (52.0, 8.0), seed=5, repeats=2)
    d = function_differences(a, b)[(128, "duration_p95_ms")]
    assert d.margin == 0.0
    assert d.significant is True


def test_given_one_run_without_durations_then_no_function_duration_difference() -> None:
    # GIVEN A written before the durations were kept (none at either size)
    a = analysed("run-a", (None, None))
    b = analysed("run-b", (52.0, 8.0), seed=5)
    pair = compare_run_pair(a, b)
    # THEN the function's rows are absent, in --json too; the client's stay
    assert not [d for d in pair.differences if d.of_function]
    metrics = {d["metric"] for d in pair.as_json()["differences"]}
    assert metrics == {"p50_ms", "p95_ms", "mean_ms", "rps", "cost_per_1m"}
    # AND the other way round, and per size: only where both runs have durations
    assert not [d for d in compare_run_pair(b, a).differences if d.of_function]
    partial = analysed("run-c", (40.0, None))
    found = function_differences(partial, b)
    assert set(found) == {(128, "duration_p50_ms"), (128, "duration_p95_ms")}


def test_given_durations_without_intervals_then_the_figures_are_compared_plainly() -> None:
    # GIVEN analyses without the bootstrap (the durations' figures only)
    a = analysed("run-a", (40.0, 8.0), intervals=False)
    b = analysed("run-b", (52.0, 8.0), seed=5, intervals=False)
    d = function_differences(a, b)[(128, "duration_p95_ms")]
    # THEN the difference of the figures, no interval and no call
    assert d.a is not None and d.b is not None
    assert d.delta == pytest.approx(d.b - d.a)
    assert (d.low, d.high, d.significant) == (None, None, None)


def test_given_both_runs_measured_charges_then_they_are_side_by_side_by_service() -> None:
    a = with_charges(
        analysed("run-a", (40.0, 8.0)), charges(0.05, API_Gateway_REST=0.03, Lambda_compute=0.02)
    )
    b = with_charges(
        analysed("run-b", (40.0, 8.0), seed=5),
        charges(0.09, API_Gateway_REST=0.03, DynamoDB_reads=0.06),
    )
    shown = compare_run_pair(a, b).as_json()["test_charges"]
    assert shown["total"] == {
        "service": "Total",
        "a": 0.05,
        "b": 0.09,
        "delta": pytest.approx(0.04),
    }
    assert shown["services"] == [
        {"service": "API Gateway REST", "a": 0.03, "b": 0.03, "delta": 0.0},
        {"service": "Lambda compute", "a": 0.02, "b": None, "delta": None},
        {"service": "DynamoDB reads", "a": None, "b": 0.06, "delta": None},
    ]
    # AND with one run lacking them (another target, or an older file): none
    plain = analysed("run-b", (40.0, 8.0), seed=5)
    assert compare_run_pair(a, plain).as_json()["test_charges"] is None


def test_given_two_runs_then_the_report_shows_the_function_rows_and_the_charges() -> None:
    a = with_charges(
        analysed("run-a", (40.0, 8.0)), charges(0.05, API_Gateway_REST=0.03, Lambda_compute=0.02)
    )
    b = with_charges(
        analysed("run-b", (52.0, 8.0), seed=5),
        charges(0.06, API_Gateway_REST=0.03, Lambda_compute=0.03),
    )
    html = render([a, b], pair=compare_run_pair(a, b))
    # THEN a Δ row per size labelled as the function's own duration, beside the client's
    assert html.count('data-role="function-delta"') == 2
    assert "Δ B\u2212A function duration" in html  # a minus sign
    row_128 = html.split('data-point="128 MB" data-run="B-A" data-role="function-delta"')[1]
    row_128 = row_128.split("</tr>")[0]
    assert 'data-field="duration_p95" data-significant="yes"' in row_128
    assert "a change" in row_128
    row_1024 = html.split('data-point="1024 MB" data-run="B-A" data-role="function-delta"')[1]
    assert "within noise" in row_1024.split("</tr>")[0]
    # AND the runs' charges side by side, the total last
    table = html.split('data-role="charges-side-by-side"')[1].split("</table>")[0]
    assert '<tr data-service="Lambda compute">' in table
    assert "+$0.010" in table
    assert table.index("Lambda compute") < table.index("<strong>Total</strong>")
    # AND a report of runs without durations has no such row
    old = analysed("run-a", (None, None))
    assert 'data-role="function-delta"' not in render([old, a], pair=compare_run_pair(old, a))


def test_given_report_a_b_json_then_the_function_and_charges_keys_are_there(
    tmp_path: Path,
) -> None:
    paths = []
    for name, results in (
        ("a", run("run-a", function_ms=(40.0, 8.0))),
        ("b", run("run-b", function_ms=(52.0, 8.0), seed=5)),
    ):
        path = tmp_path / name / "results.json"
        path.parent.mkdir()
        write_results(results, path)
        paths.append(str(path))
    done = subprocess.run(
        [sys.executable, "-m", "runner", "report", *paths, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    shown = json.loads(done.stdout)
    changes = {(d["memory_mb"], d["metric"]): d for d in shown["differences"]}
    assert changes[(128, "duration_p95_ms")]["significant"] is True
    assert changes[(1024, "duration_p95_ms")]["significant"] is False
    assert shown["test_charges"] is None  # local runs: no AWS charges
