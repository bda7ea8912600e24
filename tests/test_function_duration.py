"""Server-side latency thresholds: thresholds.duration_p50_ms/p95_ms/p99_ms on the function's own
REPORT Duration, kept per window as a run writes it (an HDR histogram and per-second batches),
judged with intervals like the client's, in the pick's resampling and a confident run's looks.

Results are built as a run writes them (tests/test_report.py's make_step with function
durations: lognormal, sigma 0.3, so a p95 is about 1.64 x the median and the answer can be
worked out by hand); the log lines are CloudWatch's REPORT format.
"""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from runner.analysis import Analysis, analyse, run_verdict
from runner.analysis._sequential import still_open
from runner.analysis._setting import Verdict
from runner.analysis._verdict import exit_code
from runner.hdr import decode
from runner.invocations import Phases, attribute
from runner.lambda_logs import format_arrival
from runner.outputs import write_exports
from runner.outputs._report import render
from runner.results import Invocations, Results, read_results, write_results
from tests.test_report import make_results, make_step

# 128 MB: client median 60 ms, function median 40 ms (p95 ~ 66 ms); 1024 MB: client 12 ms,
# function 8 ms (p95 ~ 13 ms).
SLOW, FAST = 40.0, 8.0
CONFIDENT = {"until": "confident", "round_s": 10, "min_s": 10, "max_s": 120}


def two_settings(
    thresholds: dict[str, float], *, durations: bool = True, sweep: dict[str, Any] | None = None
) -> Results:
    return make_results(
        [
            make_step(
                index=1,
                memory=128,
                median_ms=60.0,
                billed_ms=55.0,
                duration_median_ms=SLOW if durations else None,
            ),
            make_step(
                index=2,
                memory=1024,
                median_ms=12.0,
                billed_ms=12.0,
                duration_median_ms=FAST if durations else None,
            ),
        ],
        thresholds=thresholds,
        sweep=sweep,
    )


def verdict_of(analysis: Analysis, memory: int, name_start: str) -> Verdict:
    setting = next(s for s in analysis.settings if s.memory_mb == memory)
    return next(v for v in setting.verdicts if v.name.startswith(name_start))


def test_given_function_durations_then_each_setting_has_their_percentiles_with_intervals() -> None:
    analysis = analyse(two_settings({"duration_p95_ms": 30}))
    slow, fast = analysis.settings
    for setting, median in ((slow, SLOW), (fast, FAST)):
        assert setting.function_latency is not None
        assert setting.function_latency.count == 2000
        assert setting.function_latency.p50 == pytest.approx(median, rel=0.05)
        assert setting.function_latency.p95 == pytest.approx(median * 1.64, rel=0.08)
        for statistic in ("p50", "p95", "p99"):
            estimate = setting.function_estimates[statistic]
            assert estimate.low <= estimate.value <= estimate.high
            assert estimate.low < estimate.high
        assert setting.function_deff >= 1.0
    # The function's figures are their own, not the client's (60 and 12 ms medians).
    assert slow.latency.p50 is not None and slow.function_latency is not None
    assert slow.function_latency.p50 is not None
    assert slow.function_latency.p50 < slow.latency.p50 * 0.8


def test_given_a_duration_threshold_then_one_size_meets_it_and_one_misses_it_with_figures() -> None:
    analysis = analyse(two_settings({"duration_p95_ms": 30}))
    missed = verdict_of(analysis, 128, "function duration p95")
    met = verdict_of(analysis, 1024, "function duration p95")
    assert missed.name == "function duration p95 ≤ 30 ms"
    assert not missed.passed and missed.confident
    assert met.passed and met.confident
    assert met.statistic == "duration_p95"
    # The measured figure and its 95 % interval, in words.
    fast = analysis.settings[1].function_estimates["p95"]
    assert met.measured == f"{fast.value:.1f} ms (95 % interval {fast.low:.1f} to {fast.high:.1f})"
    assert analysis.recommendation.cheapest is analysis.settings[1]
    verdict = run_verdict(analysis)
    assert verdict.met == {"128": False, "1024": True}
    assert "function duration p95 ≤ 30 ms" in verdict.confidence.statement
    assert verdict.confidence.meets_share is not None and verdict.confidence.meets_share > 0.95


def test_given_a_duration_limit_inside_the_interval_then_the_verdict_is_within_noise() -> None:
    measured = (
        analyse(two_settings({"duration_p95_ms": 1000})).settings[1].function_estimates["p95"]
    )
    # A limit between the interval's low end and the figure: missed, but not confidently.
    limit = (measured.low + measured.value) / 2
    analysis = analyse(two_settings({"duration_p95_ms": limit}))
    straddled = verdict_of(analysis, 1024, "function duration p95")
    assert not straddled.passed
    assert not straddled.confident
    # No size met every threshold: nothing is picked and the exit code says so.
    assert analysis.recommendation.cheapest is None
    assert exit_code(analysis) == 1


def test_given_client_and_duration_thresholds_then_the_pick_must_meet_both() -> None:
    # The client p95 of 128 MB (~98 ms) meets 150 ms; its function p95 (~66 ms) misses 30.
    analysis = analyse(two_settings({"p95_ms": 150, "duration_p95_ms": 30}))
    assert [v.passed for v in analysis.settings[0].verdicts] == [True, False, True]
    assert analysis.recommendation.cheapest is analysis.settings[1]
    # Loosened, the cheaper 128 MB meets both and is the pick.
    loose = analyse(two_settings({"p95_ms": 150, "duration_p95_ms": 200}))
    assert loose.recommendation.cheapest is loose.settings[0]


def test_given_a_straddled_duration_threshold_then_a_confident_run_keeps_the_setting_open() -> None:
    measured = (
        analyse(two_settings({"duration_p95_ms": 1000})).settings[1].function_estimates["p95"]
    )
    analysis = analyse(two_settings({"duration_p95_ms": measured.value}, sweep=CONFIDENT))
    reasons = {point.memory_mb: why for point, why in still_open(analysis, looks=12).items()}
    assert reasons[1024].startswith(f"function duration p95 ≤ {measured.value:g} ms")
    assert "straddles" in reasons[1024]
    # A limit far from both: settled on that count.
    settled = analyse(two_settings({"duration_p95_ms": 500}, sweep=CONFIDENT))
    assert not any("function duration" in why for why in still_open(settled, looks=12).values())


def test_given_a_results_file_without_durations_then_it_reads_and_says_why_no_duration_verdict(
    tmp_path: Path,
) -> None:
    path = tmp_path / "results.json"
    write_results(two_settings({"duration_p95_ms": 30}, durations=False), path)
    assert '"duration_histogram": null' in path.read_text()
    results = read_results(path)
    analysis = analyse(results)
    for setting in analysis.settings:
        assert setting.function_histogram is None and setting.function_estimates == {}
        verdict = verdict_of(analysis, setting.memory_mb, "function duration p95")
        assert not verdict.passed  # never passes silently
        assert verdict.statistic is None  # nothing to resample
        assert verdict.measured == (
            f"not judged: step {setting.steps[0].index} holds none: its results.json is from a "
            "memsweep that did not keep them; re-run to judge them"
        )
    assert analysis.recommendation.cheapest is None
    assert exit_code(analysis) == 1
    # Without a duration threshold the same file is judged as before.
    assert analyse(two_settings({"p95_ms": 150}, durations=False)).recommendation.cheapest


def test_given_a_url_target_without_logs_then_a_duration_threshold_says_there_are_none() -> None:
    results = two_settings({"duration_p95_ms": 30})
    for step in results.steps:
        step.invocations = Invocations()  # no REPORT lines at all
    verdict = verdict_of(analyse(results), 1024, "function duration p95")
    assert verdict.measured == "not judged: no function logs in the window"
    assert not verdict.passed


def test_given_report_lines_then_the_window_keeps_every_duration_cold_ones_without_init() -> None:
    phases = Phases(load_started=1000.0, window_start=1002.0, window_end=1005.0)
    lines = []
    # 1002.5: a cold start (Duration 30 ms, Init 250 ms); 1003.2 and 1003.7: warm 10 and 20 ms;
    # 1001.0 (warm-up) and 1006 (after the window): not in it.
    for request_id, arrived, duration, init in (
        ("cold", 1002.5, 30.0, 250.0),
        ("a", 1003.2, 10.0, None),
        ("b", 1003.7, 20.0, None),
        ("warmup", 1001.0, 99.0, None),
        ("late", 1006.0, 99.0, None),
    ):
        lines.append(format_arrival(request_id, arrived))
        lines.append(
            f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\tBilled Duration: "
            f"{int(duration) + 1} ms\tMemory Size: 128 MB\tMax Memory Used: 70 MB\t"
            + (f"Init Duration: {init:.2f} ms\t" if init else "")
        )
    window, outside = attribute(((None, line) for line in lines), phases, "local log")
    assert window.duration_histogram is not None
    histogram = decode(window.duration_histogram)
    assert histogram.get_total_count() == 3
    assert histogram.get_max_value() < 31_000  # µs: the cold one's 30 ms, its init left out
    assert [(s.t, s.count, s.mean_ms) for s in window.duration_by_second] == [
        (0, 1, 30.0),
        (1, 2, 15.0),
    ]
    assert outside.warmup.duration_histogram is None  # only the window's are kept


def test_given_duration_thresholds_then_the_report_and_exports_show_both_sides(
    tmp_path: Path,
) -> None:
    path = tmp_path / "results.json"
    write_results(two_settings({"p95_ms": 150, "duration_p95_ms": 30}), path)
    analysis = analyse(read_results(path))
    html = render([analysis])
    table = html[html.index('id="client-function"') : html.index('id="function"')]
    slow = analysis.settings[0]
    assert slow.function_latency is not None and slow.function_latency.p95 is not None
    assert slow.latency.p95 is not None
    estimate = slow.function_estimates["p95"]
    # Client and function p95 side by side, each with its interval, and the gap between them.
    assert f"{slow.latency.p95:.1f}<br>" in table
    assert f'{slow.function_latency.p95:.1f}<br><span class="ci">{estimate.low:.1f}' in table
    assert f'data-field="outside_p95">{slow.latency.p95 - slow.function_latency.p95:.1f}<' in table
    assert "Outside the function (client p50 minus function p50):" in table
    write_exports(path)
    rows = {int(r["memory_mb"]): r for r in csv.DictReader((tmp_path / "summary.csv").open())}
    assert float(rows[128]["function_p95_ms"]) == pytest.approx(slow.function_latency.p95)
    assert float(rows[128]["function_p95_ms_low"]) == pytest.approx(estimate.low, abs=5e-4)
    assert "function duration p95 <= 30 ms (measured" in rows[128]["verdict_detail"]
    summary = (tmp_path / "summary.md").read_text()
    assert "| function duration p95 ≤ 30 ms | ❌ fail" in summary
    junit = ET.parse(tmp_path / "junit.xml").getroot()
    names = {case.get("name"): case for case in junit.iter("testcase")}
    failed = next(case for name, case in names.items() if name and "function duration" in name)
    assert failed.find("failure") is not None
    stored = json.loads(path.read_text())["steps"][0]["invocations"]
    assert stored["duration_histogram"] and len(stored["duration_by_second"]) == 20
