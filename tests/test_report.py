"""The report: analysis (verdicts, recommendation, significance), rendering, and the rendered
file opened in a real headless Chromium (Debian's /usr/bin/chromium via Playwright).

Results are built with the real schema and real HDR histograms of known distributions, so
each expected answer can be worked out by hand.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from markupsafe import escape

from runner.analysis import (
    PRICES_US_EAST_1,
    Analysis,
    analyse,
    compare_run_pair,
    latency,
    money,
    run_verdict,
)
from runner.analysis._verdict import BALANCED_COST_WEIGHT, exit_code
from runner.hdr import empty_histogram, encode
from runner.outputs import write_report
from runner.outputs._report import chart_data, pick_line, render, views
from runner.outputs._tables import matrix
from runner.results import (
    SCHEMA_VERSION,
    BilledSecond,
    DurationSecond,
    ErrorCount,
    Fidelity,
    HostRecord,
    Invocations,
    Problem,
    RequestStats,
    Results,
    Second,
    Step,
    TargetInfo,
    Trust,
    WorkerSeen,
    read_results,
    write_results,
)
from runner.scenario import Decision, Thresholds
from runner.stack import PROJECT_ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update"]
XSS = "<script>alert(1)</script></script><img src=x onerror=alert(2)>"


def histogram_of(samples_ms: np.ndarray) -> Any:
    histogram = empty_histogram()
    for value in samples_ms:
        histogram.record_value(max(1, int(value * 1000)))
    return histogram


def make_step(
    *,
    index: int,
    memory: int,
    median_ms: float,
    requests: int = 2000,
    failures: int = 0,
    repeat: int = 1,
    billed_ms: float = 10.0,
    read_units: float = 0.5,
    valid: bool = True,
    name: str = "read",
    error_kind: str = "HTTP 502",
    seed: int = 0,
    billed_noise: float = 0.05,
    duration_median_ms: float | None = None,
) -> Step:
    """billed_noise: the relative spread of each second's mean billed duration (0: none).
    duration_median_ms: the function's REPORT Durations (lognormal around it, as the client
    latency) are kept as a run writes them; None: a results.json from before they were."""
    rng = np.random.default_rng(seed + index)
    samples = median_ms * rng.lognormal(0.0, 0.3, size=requests)
    durations = function_durations(duration_median_ms, requests, rng)
    warm_per_second = (requests - 2) // 20
    billed_seconds = [
        BilledSecond(
            t=t,
            count=warm_per_second,
            billed_ms=round(
                warm_per_second * billed_ms * (1 + billed_noise * rng.standard_normal())
            ),
        )
        for t in range(20)
    ]
    histogram = histogram_of(samples)
    started = 1_790_000_000.0 + index * 100
    window_start = started + 2
    return Step(
        index=index,
        memory_mb=memory,
        repeat=repeat,
        started_at=started,
        overhead_s=1.2,
        window_start=window_start,
        window_end=window_start + 20,
        requests=requests,
        failures=failures,
        rps=requests / 20,
        latency=latency(histogram),
        histogram=encode(histogram),
        per_request=[
            RequestStats(
                name=name,
                requests=requests,
                failures=failures,
                latency=latency(histogram),
                histogram=encode(histogram),
            )
        ],
        errors=[ErrorCount(request=name, kind=error_kind, count=failures)] if failures else [],
        timeline=[
            Second(t=t, requests=requests // 20, failures=0, mean_ms=median_ms, p95_ms=median_ms)
            for t in range(20)
        ],
        invocations=Invocations(
            count=requests,
            cold_starts=2,
            init_ms_mean=300.0,
            init_ms_max=320.0,
            duration_ms_mean=billed_ms - 0.5,
            warm_duration_ms_mean=billed_ms - 1,
            warm_duration_ms_p95=billed_ms + 3,
            cold_duration_ms_mean=billed_ms + 20,
            # Two cold starts, each billing its 300 ms init on top of a warm call's time.
            billed_ms_total=int(billed_ms * requests) + 600,
            billed_ms_mean=billed_ms + 600 / requests,
            warm_billed_ms_total=int(billed_ms * (requests - 2)),
            cold_billed_ms_total=int(billed_ms * 2) + 600,
            max_memory_used_mb=80,
            read_units=read_units * requests,
            write_units=0.0,
            source="local log",
            warm_billed_by_second=billed_seconds,
            **durations,
        ),
        workers=[WorkerSeen(id="worker-a", requests=requests)],
        fidelity=Fidelity(mode="cgroup-v1", level="full", cpu_share_nominal=memory / 1769),
        valid=valid,
        problems=[]
        if valid
        else [Problem(kind="worker lost", detail="worker worker-b lost: missing")],
    )


def function_durations(
    median_ms: float | None, invocations: int, rng: np.random.Generator
) -> dict[str, Any]:
    """The Invocations fields a run writes for the window's Durations (none: median_ms None)."""
    if median_ms is None:
        return {}
    samples = median_ms * rng.lognormal(0.0, 0.3, size=invocations)
    per_second = np.array_split(samples, 20)
    return {
        "duration_histogram": encode(histogram_of(samples)),
        "duration_by_second": [
            DurationSecond(t=t, count=len(part), mean_ms=float(part.mean()))
            for t, part in enumerate(per_second)
        ],
    }


def make_results(
    steps: list[Step],
    *,
    thresholds: dict[str, Any] | None = None,
    name: str = "tutorial",
    run_id: str = "run-a",
    status: str = "complete",
    planned: list[int] | None = None,
    sweep: dict[str, Any] | None = None,
) -> Results:
    """`sweep` adds to the scenario's sweep (e.g. `{"api": ["rest", "http"]}`)."""
    scenario = {
        # The run's own name is scenario_name (below), which a hand-written file may fill
        # with anything; this echo must be a scenario memsweep would run.
        "name": "tutorial",
        "sweep": {
            "memory_mb": planned or sorted({s.memory_mb for s in steps}) or [128],
            "warmup_s": 2.0,
            **(sweep or {}),
        },
        "load": {
            "model": "closed",
            "stages": [{"users": 5, "duration_s": 10}, {"users": 10, "duration_s": 12}],
        },
        "thresholds": thresholds or {},
        "requests": [{"name": "read", "body": {"operation": "read"}}],
    }
    return Results(
        run_id=run_id,
        status=status,
        exit_code=0,
        created_at=1_790_000_000.0,
        finished_at=1_790_000_500.0,
        scenario_name=name,
        scenario=scenario,
        scenario_text=f"name: {name}\n",
        scenario_path="scenarios/test.yaml",
        versions={"memsweep": "0.1.0"},
        host=HostRecord(hostname="test"),
        target=TargetInfo(kind="local", url="http://127.0.0.1:1/dev/x"),
        steps=steps,
    )


def two_settings(**kwargs: Any) -> Results:
    return make_results(
        [
            make_step(index=1, memory=128, median_ms=60.0, billed_ms=55.0),
            make_step(index=2, memory=1024, median_ms=12.0, billed_ms=12.0),
        ],
        **kwargs,
    )


# --- analysis -----------------------------------------------------------------------------


def test_given_thresholds_then_the_cheapest_setting_meeting_them_is_recommended() -> None:
    # 128 MB: p95 ≈ 60·e^(1.645·0.3) ≈ 98 ms; 1024 MB ≈ 20 ms. Threshold p95 ≤ 50 ms.
    analysis = analyse(two_settings(thresholds={"p95_ms": 50}))
    recommendation = analysis.recommendation
    assert recommendation.cheapest is not None and recommendation.cheapest.memory_mb == 1024
    assert recommendation.fastest is not None and recommendation.fastest.memory_mb == 1024
    assert "1024 MB" in recommendation.headline
    assert exit_code(analysis) == 0


def test_given_no_setting_meets_the_thresholds_then_it_says_so_and_names_each_failure() -> None:
    analysis = analyse(two_settings(thresholds={"p95_ms": 5}))
    recommendation = analysis.recommendation
    assert recommendation.none_meet and recommendation.cheapest is None
    assert recommendation.headline.startswith("No memory size met the thresholds")
    text = " ".join(recommendation.explanation)
    assert "128 MB failed p95 ≤ 5 ms (measured" in text and "1024 MB failed" in text
    assert exit_code(analysis) == 1


def test_given_no_thresholds_then_cheapest_fastest_and_balanced_are_all_named() -> None:
    analysis = analyse(two_settings())
    recommendation = analysis.recommendation
    assert recommendation.headline.startswith("No thresholds were set")
    assert recommendation.cheapest and recommendation.balanced and recommendation.fastest
    assert exit_code(analysis) == 0


def test_given_settings_then_balanced_minimises_power_tunings_weighted_score() -> None:
    # Cost: 128 MB compute 55 ms·0.125 GB vs 1024 MB 12 ms·1 GB; p95 from the histograms.
    analysis = analyse(two_settings())
    settings = analysis.settings
    max_cost = max(s.cost.total for s in settings)
    max_p95 = max(s.p95 for s in settings)
    scores = {
        s.memory_mb: BALANCED_COST_WEIGHT * s.cost.total / max_cost
        + (1 - BALANCED_COST_WEIGHT) * s.p95 / max_p95
        for s in settings
    }
    expected = min(scores, key=scores.__getitem__)
    assert analysis.recommendation.balanced is not None
    assert analysis.recommendation.balanced.memory_mb == expected


def test_given_billed_durations_then_compute_cost_is_gb_seconds_times_the_price() -> None:
    analysis = analyse(two_settings())
    small = analysis.settings[0]
    # 55 ms × 128/1024 GB = 0.006875 GB-s per request; × 1M × $0.0000166667 = $0.11458
    assert small.cost.lambda_compute == pytest.approx(0.055 * 0.125 * 1e6 * 0.0000166667)
    assert small.cost.lambda_requests == PRICES_US_EAST_1.lambda_per_million_requests
    assert small.cost.api_gateway == 3.50
    # 0.5 RRU per request × $0.125 per 1M RRU
    assert small.cost.dynamodb == pytest.approx(0.0625)
    assert not small.cost.estimated


def test_given_different_read_units_per_setting_then_dynamodb_cost_is_pooled_and_equal() -> None:
    results = make_results(
        [
            make_step(index=1, memory=128, median_ms=60, read_units=0.4),
            make_step(index=2, memory=1024, median_ms=12, read_units=0.6),
        ]
    )
    small, large = analyse(results).settings
    assert small.cost.dynamodb == pytest.approx(large.cost.dynamodb)
    assert small.cost.dynamodb == pytest.approx(0.5 * 0.125)


def test_given_no_report_lines_then_cost_is_an_estimate_from_client_latency() -> None:
    step = make_step(index=1, memory=512, median_ms=20)
    step.invocations = Invocations(source="no function logs (url target)")
    setting = analyse(make_results([step])).settings[0]
    assert setting.cost.estimated
    assert "estimated from client latency" in setting.cost.basis
    assert setting.function.billed_ms_mean is None


def test_given_repeats_then_they_are_pooled_into_one_setting() -> None:
    results = make_results(
        [
            make_step(index=1, memory=256, median_ms=30, requests=1000, repeat=1),
            make_step(index=2, memory=256, median_ms=30, requests=1500, repeat=2),
        ]
    )
    (setting,) = analyse(results).settings
    assert setting.requests == 2500
    assert setting.histogram.get_total_count() == 2500
    assert setting.function.invocations == 2500 and setting.function.cold_starts == 4


def test_given_an_invalid_step_then_its_setting_is_left_out_and_the_exit_code_is_3() -> None:
    results = make_results(
        [
            make_step(index=1, memory=128, median_ms=60),
            make_step(index=2, memory=1024, median_ms=12, valid=False),
        ],
        thresholds={"p95_ms": 500},
    )
    analysis = analyse(results)
    assert analysis.recommendation.cheapest is not None
    assert analysis.recommendation.cheapest.memory_mb == 128
    assert any("1024 MB is left out" in line for line in analysis.recommendation.explanation)
    assert exit_code(analysis) == 3


def test_given_a_real_shift_then_the_difference_is_significant_and_worded() -> None:
    analysis = analyse(two_settings())
    p95 = next(c for c in analysis.comparisons if c.difference.statistic == "p95")
    assert p95.difference.significant and p95.difference.value < 0
    assert p95.sentence.startswith("1024 MB vs 128 MB: p95 ") and " lower (95 % CI " in p95.sentence


def test_given_identical_distributions_then_no_significant_difference() -> None:
    results = make_results(
        [
            make_step(index=1, memory=512, median_ms=20, seed=7),
            make_step(index=2, memory=1024, median_ms=20, seed=7),
        ]
    )
    # Same seed offsets by index give different samples of the same distribution.
    comparisons = analyse(results).comparisons
    assert comparisons and all(not c.difference.significant for c in comparisons)
    assert all("no significant difference" in c.sentence for c in comparisons)


def test_given_a_threshold_inside_the_confidence_interval_then_verdict_is_not_confident() -> None:
    step = make_step(index=1, memory=512, median_ms=20, requests=300)
    p95 = step.latency.p95
    assert p95 is not None
    analysis = analyse(make_results([step], thresholds={"p95_ms": p95}))
    (verdict,) = [v for v in analysis.settings[0].verdicts if v.statistic == "p95"]
    assert verdict.passed and not verdict.confident


@pytest.mark.parametrize(("limit", "drawn"), [(50, True), (1000, False)])
def test_given_a_p95_threshold_then_the_cost_chart_draws_it_only_near_the_points(
    limit: float, drawn: bool
) -> None:
    # Points at p95 ≈ 20 and ≈ 98 ms: a 1,000 ms line would squash them into one corner.
    data = chart_data(views([analyse(two_settings(thresholds={"p95_ms": limit}))]))
    assert data["cost"]["p95_limit"] == (limit if drawn else None)


# --- rendering in a real browser ------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run does this)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        yield launched
        launched.close()


class Opened:
    """A report opened in Chromium, with everything it logged and requested."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.console_errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page = browser.new_page()
        self.page.on(
            "console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None
        )
        self.page.on("pageerror", lambda e: self.console_errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))

        def on_dialog(dialog: Any) -> None:
            self.dialogs.append(dialog.message)
            dialog.dismiss()

        self.page.on("dialog", on_dialog)
        self.url = path.resolve().as_uri()
        self.page.goto(self.url)
        self.page.wait_for_selector("body[data-charts-ready]", timeout=15_000)

    def cell(self, run: str, memory: int, field: str) -> str:
        row = f"table.summary tr[data-memory='{memory}'][data-run='{run}']"
        return str(self.page.inner_text(f"{row} td[data-field='{field}']"))

    def chart_points(self, chart: str) -> list[int]:
        """Data points per dataset of the Chart.js chart drawn on canvas #chart-<chart>."""
        points: list[int] = self.page.evaluate(
            "(id) => Chart.getChart(document.getElementById(id)).data.datasets"
            ".map(d => d.data.filter(v => v !== null).length)",
            f"chart-{chart}",
        )
        return points

    def chart(self, chart: str, expression: str) -> Any:
        """`expression` evaluated with `chart` bound to the Chart.js chart #chart-<chart>."""
        return self.page.evaluate(
            f"(id) => {{ const chart = Chart.getChart(document.getElementById(id)); "
            f"return {expression}; }}",
            f"chart-{chart}",
        )

    def point_labels(self, chart: str) -> list[str]:
        """The labels the page wrote beside the chart's points, in drawing order."""
        labels: list[str] = self.chart(chart, "chart.$pointLabels.map(l => l.text)")
        return labels


def written(tmp_path: Path, results: Results, name: str = "run-a") -> Path:
    path = tmp_path / name / "results.json"
    write_results(results, path)
    return path


def test_given_a_report_then_it_opens_with_no_errors_no_network_and_drawn_charts(
    tmp_path: Path, browser: Any
) -> None:
    report = write_report([written(tmp_path, two_settings(thresholds={"p95_ms": 50}))])
    assert report == tmp_path / "run-a" / "report.html"
    opened = Opened(browser, report)
    assert opened.console_errors == []
    assert opened.requests == [opened.url]  # the file itself, nothing else
    # Latency over time: mean + p95 per setting, 20 seconds each.
    assert opened.chart_points("timeline") == [20, 20, 20, 20]
    assert opened.chart_points("percentiles") == [9, 9]
    assert opened.chart_points("cost") == [2]
    assert opened.chart_points("memory") == [2, 2]
    assert "1024 MB (recommended)" in opened.point_labels("cost")
    # Stage 2 starts 10 s into the load, 8 s into the window (2 s of warm-up before it).
    boundaries = opened.chart(
        "timeline", "Object.values(chart.options.plugins.annotation.annotations).map(a => a.xMin)"
    )
    assert boundaries == [8]
    pdf = opened.page.pdf(format="A4")  # printable: print CSS, charts included
    assert pdf.startswith(b"%PDF") and len(pdf) > 20_000


def test_given_a_report_then_table_values_equal_results_json(tmp_path: Path, browser: Any) -> None:
    path = written(tmp_path, two_settings())
    data = json.loads(path.read_text())
    opened = Opened(browser, write_report([path]))
    for step in data["steps"]:
        memory = step["memory_mb"]
        assert opened.cell("A", memory, "requests") == str(step["requests"])
        assert opened.cell("A", memory, "failures").startswith(str(step["failures"]))
        for statistic in ("p50", "p95", "p99", "mean"):
            shown = opened.cell("A", memory, statistic).splitlines()[0]
            assert shown == f"{step['latency'][statistic]:,.1f}"
        assert opened.cell("A", memory, "cold_starts") == str(step["invocations"]["cold_starts"])
        warm = opened.page.inner_text(
            f"table.function tr[data-memory='{memory}'] td[data-field='warm']"
        )
        mean, p95 = (step["invocations"][f"warm_duration_ms_{s}"] for s in ("mean", "p95"))
        assert warm == f"{mean:,.1f} / {p95:,.1f}"


def test_given_script_in_every_user_supplied_field_then_it_is_text_and_never_runs(
    tmp_path: Path, browser: Any
) -> None:
    step = make_step(
        index=1, memory=128, median_ms=20, failures=3, name=XSS, error_kind=f"HTTP 500: {XSS}"
    )
    step.workers = [WorkerSeen(id=XSS, requests=1, lost=True, detail=XSS)]
    step.problems = [Problem(kind="worker lost", detail=XSS)]
    step.valid = False
    results = make_results([step], name=XSS, status="failed")
    results.scenario_text = f"name: '{XSS}'\n"
    results.problems = [Problem(kind="stopped", detail=XSS)]
    opened = Opened(browser, write_report([written(tmp_path, results)]))
    assert opened.dialogs == []
    assert opened.console_errors == []
    assert opened.page.evaluate("document.querySelectorAll('img').length") == 0
    # The page's own scripts only: the chart data, the library, the drawing code.
    assert opened.page.evaluate("document.querySelectorAll('script').length") == 3
    body = opened.page.inner_text("body")
    assert body.count(XSS) >= 6
    assert opened.page.title() == f"memsweep: {XSS}"


def test_given_two_runs_then_one_report_sets_them_side_by_side_with_their_differences(
    tmp_path: Path, browser: Any
) -> None:
    before = written(tmp_path, two_settings(run_id="before"), "before")
    slower = make_results(
        [
            make_step(index=1, memory=128, median_ms=80, billed_ms=120, seed=3),
            make_step(index=2, memory=1024, median_ms=12, billed_ms=12, seed=3),
        ],
        run_id="after",
    )
    after = written(tmp_path, slower, "after")
    report = write_report([before, after])
    assert report == tmp_path / "after" / "compare-before.html"
    opened = Opened(browser, report)
    assert opened.console_errors == []
    # It opens with whether the answer changed.
    first = opened.page.locator("[data-role=pair] .headline").inner_text()
    # 128 MB billed 120 ms after (was 55): 1024 MB at 12 ms is now the cheaper one (by 0.8 %).
    assert first == "The recommendation changed: 128 MB in before, 1024 MB in after."
    picks = opened.page.locator("[data-role=recommendation] [data-field=pick]").all_inner_texts()
    assert [p.strip() for p in picks] == [
        "A Recommendation: 128 MB",
        "B Recommendation: 1024 MB",
    ]
    # Per size: A's row, B's row, then B - A with its interval and whether it is a change.
    rows = opened.page.locator("table.summary tr[data-memory='128']")
    assert [rows.nth(i).get_attribute("data-run") for i in range(3)] == ["A", "B", "B-A"]
    p95 = opened.page.locator(
        "table.summary tr[data-run='B-A'][data-memory='128'] [data-field=p95]"
    )
    assert p95.inner_text().startswith("+") and "a change" in p95.inner_text()
    assert p95.get_attribute("data-significant") == "yes"
    # Cost too: B - A, the interval of the difference, and what the rule makes of it.
    cost = opened.page.locator(
        "table.summary tr[data-run='B-A'][data-memory='128'] [data-field=cost]"
    )
    change, interval, verdict = cost.inner_text().splitlines()
    assert change.startswith("+$") and change.endswith(" %")
    low, _, high = interval.partition(" to ")
    assert low.startswith("+$") and high.startswith("+$")  # wholly above zero
    assert verdict == "a change" and cost.get_attribute("data-relation") == "different"
    same = opened.page.locator(
        "table.summary tr[data-run='B-A'][data-memory='1024'] [data-field=cost]"
    )
    assert same.inner_text().splitlines()[-1] == "the same cost"
    assert same.get_attribute("data-significant") == "no"
    assert opened.chart_points("percentiles") == [9, 9, 9, 9]


def test_given_a_run_that_failed_before_any_step_then_the_report_says_so(
    tmp_path: Path, browser: Any
) -> None:
    results = make_results([], status="failed", thresholds={"p95_ms": 100})
    results.problems = [
        Problem(kind="stopped", detail="the local stack did not start: port in use")
    ]
    opened = Opened(browser, write_report([written(tmp_path, results)]))
    text = opened.page.inner_text("body")
    assert "This run failed" in text and "port in use" in text
    assert "No recommendation: no memory size has a valid measurement." in text
    assert opened.console_errors == []


# --- the command and bad files ----------------------------------------------------------------


def report_command(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runner", "report", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
    )


def test_given_a_run_directory_then_report_writes_report_html_and_prints_its_path(
    tmp_path: Path,
) -> None:
    path = written(tmp_path, two_settings())
    done = report_command(path.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(path.parent / "report.html")
    assert (path.parent / "report.html").read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such results file"),
        ('{"schema_version": 1, "run_id": ', "not valid JSON"),
        ("[1, 2]", "not a memsweep results file"),
        ('{"schema_version": 0, "run_id": "x"}', "results schema version 0"),
        ('{"schema_version": 1, "run_id": "x"}', "older memsweep (schema 1)"),
        ('{"schema_version": 5, "run_id": "x"}', "results schema version 5, this memsweep"),
        ('{"schema_version": 4, "run_id": "x"}', "not a valid results file: status"),
    ],
    ids=["missing", "truncated", "not-an-object", "odd-version", "v1", "newer", "missing-field"],
)
def test_given_a_bad_results_file_then_one_clear_line_and_exit_2(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    done = report_command(path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and str(path) in lines[0]
    assert not (tmp_path / "report.html").exists()


def test_given_a_schema_2_file_then_it_reads_with_its_text_problems_kept(tmp_path: Path) -> None:
    """Version 2 kept problems as text and the host as a loose mapping; its figures are
    version 3's, so the file is read, not refused."""
    results = two_settings(status="failed")
    results.steps[0].problems = [Problem(kind="worker lost", detail="worker b lost: missing")]
    results.problems = [Problem(kind="stopped", detail="the target stopped answering")]
    old = results.model_dump(mode="json")
    old["schema_version"] = 2
    old["problems"] = ["the target stopped answering"]
    old["steps"][0]["problems"] = ["worker b lost: missing"]
    old["host"] = {"hostname": "test", "platform": "Linux", "cpus": 2, "load": [0.5]}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(old))
    read = read_results(path)
    assert read.schema_version == SCHEMA_VERSION and read.host == HostRecord(
        hostname="test", platform="Linux", cpus=2
    )
    assert read.problems == [Problem(kind="recorded", detail="the target stopped answering")]
    assert [p.detail for p in read.steps[0].problems] == ["worker b lost: missing"]
    assert read.steps[1:] == results.steps[1:] and read.scenario == results.scenario


def test_given_three_results_files_then_refused_clearly(tmp_path: Path) -> None:
    path = written(tmp_path, two_settings())
    done = report_command(path, path, path)
    assert done.returncode == 2
    assert "one results.json, or two to compare; got 3" in done.stderr


def test_given_no_intervals_then_the_same_verdict_without_the_bootstrap() -> None:
    results = two_settings(thresholds={"p95_ms": 5})
    quick, full = analyse(results, intervals=False), analyse(results)
    assert exit_code(quick) == exit_code(full) == 1
    assert quick.comparisons == [] and all(not s.estimates for s in quick.settings)


# --- the layout: Power Tuning's chart, labelled points, explained columns, 800 px, A B --------

SIZES = (128, 256, 512, 1024)
NARROW, WIDE = 800, 1440


def four_sizes(run_id: str = "run-a", *, slower: float = 1.0, seed: int = 0) -> Results:
    """128-1024 MB, each size about twice as fast as the one below; p95 ≤ 60 ms is met from
    256 MB (p95 ≈ 51 ms) up; 256 and 512 MB cost the same (28 ms on 0.25 GB, 14 ms on 0.5 GB)
    and 512 MB is clearly faster: the pick; 1024 MB bills 12 ms on 1 GB (2 % more)."""
    medians = {128: 60.0, 256: 32.0, 512: 18.0, 1024: 12.0}
    billed = {128: 55.0, 256: 28.0, 512: 14.0, 1024: 12.0}
    return make_results(
        [
            make_step(
                index=i,
                memory=memory,
                median_ms=medians[memory] * (slower if memory < 1024 else 1.0),
                billed_ms=billed[memory] * (slower if memory < 512 else 1.0),
                seed=seed,
                requests=800,
            )
            for i, memory in enumerate(SIZES, start=1)
        ],
        run_id=run_id,
        thresholds={"p95_ms": 60},
    )


@pytest.fixture(scope="module")
def layout_runs() -> tuple[Analysis, Analysis]:
    """A run of four sizes and a slower second run of the same, analysed once per module."""
    return analyse(four_sizes()), analyse(four_sizes("run-b", slower=1.3, seed=3))


@pytest.fixture(scope="module")
def reports(
    tmp_path_factory: pytest.TempPathFactory, layout_runs: tuple[Analysis, Analysis]
) -> dict[str, Path]:
    """The first run's report, and the report of both (`report A B`)."""
    root = tmp_path_factory.mktemp("layout")
    a, b = layout_runs
    paths = {"one": root / "one.html", "two": root / "two.html"}
    paths["one"].write_text(render([a]), encoding="utf-8")
    paths["two"].write_text(render([a, b], pair=compare_run_pair(a, b)), encoding="utf-8")
    return paths


def open_at(browser: Any, path: Path, width: int) -> Opened:
    opened = Opened(browser, path)
    opened.page.set_viewport_size({"width": width, "height": 900})
    opened.page.wait_for_function(f"document.documentElement.clientWidth === {width}")
    # Chart.js redraws a chart for its new box on a later frame (a ResizeObserver): until then
    # a canvas keeps the width of the window it was first drawn in. Polled from here: the
    # page's Content-Security-Policy forbids the eval a wait_for_function predicate needs.
    for _ in range(100):
        if opened.page.evaluate(
            "[...document.querySelectorAll('canvas')].every(c => "
            "Math.round(c.getBoundingClientRect().width) <= c.parentElement.clientWidth)"
        ):
            break
        opened.page.wait_for_timeout(50)
    return opened


def page_height(opened: Opened) -> int:
    height: int = opened.page.evaluate("document.documentElement.scrollHeight")
    return height


def test_given_verdicts_then_the_headline_names_the_pick_in_the_verdicts_own_words(
    layout_runs: tuple[Analysis, Analysis],
) -> None:
    verdict = run_verdict(layout_runs[0])
    assert pick_line(verdict) == "Recommendation: 512 MB"
    close = verdict.model_copy(
        update={"confidence": verdict.confidence.model_copy(update={"level": "too close to call"})}
    )
    assert pick_line(close) == "Recommendation: 512 MB (too close to call)"
    none_meet = run_verdict(analyse(two_settings(thresholds={"p95_ms": 5}), intervals=False))
    assert none_meet.recommended_mb is None
    assert pick_line(none_meet) == "No recommendation"
    degraded = none_meet.model_copy(
        update={"headline": "No recommendation: step 2 (1024 MB) is degraded: host saturated."}
    )
    assert pick_line(degraded) == degraded.headline


def test_given_a_sweep_then_the_memory_chart_draws_cost_and_p95_per_size_from_zero(
    reports: dict[str, Path], browser: Any
) -> None:
    opened = open_at(browser, reports["one"], WIDE)
    assert opened.console_errors == []
    # Memory only: no matrix, no effects block, no per-axis pick; the first column is memory.
    for extra in ("table.matrix", "[data-role=effects]", "[data-role=deploy]", "td.point"):
        assert opened.page.locator(extra).count() == 0, extra
    assert opened.page.inner_text("table.summary thead th >> nth=0") == "memory"
    assert opened.chart("memory", "chart.data.labels") == [f"{m} MB" for m in SIZES]
    # Two series (cost on the left axis, p95 on the right), one drawn point per size.
    axes = opened.chart("memory", "chart.data.datasets.map(d => d.yAxisID)")
    assert axes == ["y", "y1"]
    drawn = opened.chart(
        "memory",
        "chart.data.datasets.map((d, i) => chart.getDatasetMeta(i).data"
        ".filter(p => !p.skip && chart.chartArea.left <= p.x && p.x <= chart.chartArea.right"
        " && chart.chartArea.top <= p.y && p.y <= chart.chartArea.bottom).length)",
    )
    assert drawn == [4, 4]
    assert opened.chart("memory", "[chart.scales.y.min, chart.scales.y1.min]") == [0, 0]
    labels = opened.point_labels("memory")
    assert len(labels) == 8 and sum(t.startswith("$") for t in labels) == 4
    assert sum(t.endswith(" ms") for t in labels) == 4
    # The pick: a band over its size, its tick label says so, and the title names it.
    band = opened.chart(
        "memory",
        "Object.values(chart.options.plugins.annotation.annotations)"
        ".filter(a => a.type === 'box').map(a => (a.xMin + a.xMax) / 2)",
    )
    assert band == [SIZES.index(512)]
    ticks = opened.chart("memory", "chart.scales.x.ticks.map(t => t.label)")
    assert ticks[SIZES.index(512)] == ["512 MB", "▲ recommended"]
    assert "recommended: 512 MB" in opened.chart("memory", "chart.options.plugins.title.text")
    # Drawn: the canvas holds pixels of both series' colours.
    coloured = opened.page.evaluate(
        """() => { const c = document.getElementById('chart-memory');
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                   let blue = 0, vermilion = 0;
                   for (let i = 0; i < d.length; i += 4) {
                     const [r, g, b] = [d[i], d[i + 1], d[i + 2]];
                     if (r < 20 && g > 100 && g < 130 && b > 160) blue++;
                     if (r > 200 && g > 80 && g < 110 && b < 20) vermilion++;
                   }
                   return [blue, vermilion]; }"""
    )
    assert min(coloured) > 200, coloured


def test_given_a_sweep_then_every_scatter_point_is_labelled_with_its_size_on_axes_from_zero(
    reports: dict[str, Path], browser: Any
) -> None:
    opened = open_at(browser, reports["one"], NARROW)
    assert opened.chart("cost", "[chart.scales.x.min, chart.scales.y.min]") == [0, 0]
    assert opened.point_labels("cost") == ["128 MB", "256 MB", "512 MB (recommended)", "1024 MB"]
    # Every label inside the canvas, none over another.
    boxes = opened.chart("cost", "chart.$pointLabels")
    width, height = opened.chart("cost", "[chart.width, chart.height]")
    for box in boxes:
        assert box["x"] >= 0 and box["x"] + box["width"] <= width and 0 <= box["y"] <= height
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            apart = (
                a["x"] + a["width"] <= b["x"]
                or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"]
                or b["y"] + b["height"] <= a["y"]
            )
            assert apart, (a, b)


def unexplained_columns(opened: Opened) -> list[str]:
    """Table headers without a tooltip, or not explained in the legend under their table (a
    matrix's value header, "HTTP API", is explained by its axis's header in the same row)."""
    unexplained: list[str] = opened.page.evaluate(
        """() => [...document.querySelectorAll('table')].flatMap(table => {
             const block = table.closest('.scroll') || table;
             const legend = block.nextElementSibling;
             const text = legend && legend.matches('dl.legend') ? legend.textContent : '';
             return [...table.querySelectorAll('thead th')].filter(th => {
               const abbr = th.querySelector('abbr[title]');
               const label = th.dataset.column === 'size' ? 'each memory size'
                 : th.hasAttribute('data-value')
                 ? th.closest('tr').querySelector('th:not([data-value])').textContent.trim()
                 : th.textContent.trim();
               return !abbr || abbr.title.length < 15 || !text.includes(label);
             }).map(th => table.className + ': ' + th.textContent.trim());
           })"""
    )
    return unexplained


def test_given_a_report_then_every_column_has_a_tooltip_and_a_legend_under_its_table(
    reports: dict[str, Path], browser: Any
) -> None:
    opened = open_at(browser, reports["two"], WIDE)
    assert unexplained_columns(opened) == []
    legend = opened.page.inner_text(".scroll:has(table.steps) + dl.legend")
    assert "overhead s" in legend and "Seconds from the previous step's load end" in legend
    summary = opened.page.inner_text(".scroll:has(table.summary) + dl.legend")
    assert "95 % confidence interval" in summary and "per one million requests" in summary


@pytest.mark.parametrize("which", ["one", "two"])
def test_given_an_800_px_window_then_the_page_does_not_overflow_and_the_summary_is_readable(
    reports: dict[str, Path], browser: Any, which: str
) -> None:
    opened = open_at(browser, reports[which], NARROW)
    page = opened.page
    assert page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    summary = page.locator(".scroll:has(table.summary)")
    fits = summary.evaluate("s => s.scrollWidth <= s.clientWidth")
    if which == "one":
        assert fits  # one run's summary is fully visible at 800 px
    else:
        # Two runs side by side scroll in their own box; the size and run stay in view.
        assert summary.evaluate("s => getComputedStyle(s).overflowX") == "auto"
        summary.evaluate("s => { s.scrollLeft = s.scrollWidth; }")
        first = page.locator("table.summary tbody tr[data-run='B'] td").first
        box, frame = first.bounding_box(), summary.bounding_box()
        assert box is not None and frame is not None and abs(box["x"] - frame["x"]) < 2
        assert first.inner_text().strip() == "128 MB B"
    for chart in ("memory", "cost", "percentiles", "timeline"):
        assert opened.chart(chart, "chart.width") <= NARROW


def test_given_two_runs_then_one_set_of_charts_overlays_a_and_b_and_is_shorter_than_two(
    reports: dict[str, Path], browser: Any
) -> None:
    one = open_at(browser, reports["one"], WIDE)
    two = open_at(browser, reports["two"], WIDE)
    assert two.console_errors == []
    assert two.page.locator("canvas").count() == 4
    assert two.page.locator("table.summary").count() == 1
    # Memory chart: cost and p95 for A and for B, each run its own colour and marker.
    series = two.chart(
        "memory",
        "chart.data.datasets.map(d => [d.label.split(':')[0], d.borderColor, d.pointStyle])",
    )
    assert [s[0] for s in series] == ["A (run-a)", "A (run-a)", "B (run-b)", "B (run-b)"]
    assert series[0][1:] == series[1][1:] and series[2][1:] == series[3][1:]
    assert series[0][1] != series[2][1] and series[0][2] != series[2][2]
    assert two.chart_points("memory") == [4, 4, 4, 4]
    legend = two.chart("memory", "chart.legend.legendItems.map(i => i.text)")
    assert any(t.startswith("A (run-a)") for t in legend)
    assert any(t.startswith("B (run-b)") for t in legend)
    assert two.chart("cost", "chart.data.datasets.map(d => d.label)") == ["A (run-a)", "B (run-b)"]
    assert len(two.point_labels("cost")) == 8
    # Both runs picked 512 MB: one band, named for both.
    ticks = two.chart("memory", "chart.scales.x.ticks.map(t => t.label)")
    assert ticks[SIZES.index(512)] == ["512 MB", "▲ recommended", "by A and B"]
    # Two stacked reports would be twice as tall as one; the overlay adds far less.
    assert page_height(two) < 1.5 * page_height(one), (page_height(two), page_height(one))


def test_given_a_degraded_step_then_its_points_say_so_on_both_charts(
    tmp_path: Path, browser: Any
) -> None:
    """A figure measured on a starved host is marked where it is drawn, not only in a table."""
    results = four_sizes()
    starved = results.steps[3].model_copy(
        update={"trust": Trust(degraded=True, causes=["host saturated: 6% of the CPU"])}
    )
    results = results.model_copy(update={"steps": [*results.steps[:3], starved]})
    opened = open_at(browser, write_report([written(tmp_path, results)]), WIDE)
    assert opened.console_errors == []
    ticks = opened.chart("memory", "chart.scales.x.ticks.map(t => t.label)")
    assert ticks[SIZES.index(1024)] == ["1024 MB", "⚠ degraded"]
    assert ticks[SIZES.index(256)] == "256 MB"
    marked = [label for label in opened.point_labels("memory") if label.endswith(" ⚠")]
    assert len(marked) == 2  # its cost and its p95
    assert "1024 MB ⚠ degraded" in opened.point_labels("cost")


# --- a sweep over more than memory: the matrix, labels, what moves the bill -----------------

HARDENED, TUTORIAL = "handler.lambda_handler", "tutorial_handler.lambda_handler"
POINT_SWEEP = {"api": ["rest", "http"], "handler": [HARDENED, TUTORIAL]}
PICK = "128 MB · HTTP API · handler.lambda_handler"
POINT_REQUESTS = 200  # per step: few histogram buckets, so the bootstrap stays quick


@functools.cache  # building HDR histograms takes ~1 s: once per process, copied per use
def _whole_bill_steps() -> tuple[Step, ...]:
    figures = {  # (memory, handler): median ms, billed ms
        (128, HARDENED): (20.0, 5.0),
        (1024, HARDENED): (8.0, 3.0),
        (128, TUTORIAL): (150.0, 140.0),
        (1024, TUTORIAL): (15.0, 12.0),
    }
    steps = []
    index = 0
    for handler in (HARDENED, TUTORIAL):
        for api in ("rest", "http"):
            for memory in (128, 1024):
                if (memory, api, handler) == (1024, "http", TUTORIAL):
                    continue  # never reached
                index += 1
                median, billed = figures[(memory, handler)]
                step = make_step(
                    index=index,
                    memory=memory,
                    median_ms=median,
                    billed_ms=billed,
                    requests=POINT_REQUESTS,
                    valid=(memory, api, handler) != (128, "rest", TUTORIAL),
                )
                steps.append(step.model_copy(update={"api": api, "handler": handler}))
    return tuple(steps)


def whole_bill(*, degraded: bool = False, run_id: str = "run-a") -> Results:
    """memory × API type × handler, as scenarios/whole_bill.yaml plans it (8 points). The run
    stopped before its last point (1024 MB · HTTP API · tutorial handler); 128 MB · REST API ·
    tutorial handler lost a worker (not valid). Under p95 ≤ 60 ms the cheapest is 128 MB behind
    the HTTP API with the hardened handler (p95 ≈ 33 ms: $1.00 for API Gateway, not $3.50).
    `degraded`: 1024 MB · REST API · hardened was measured on a starved host."""
    steps = [step.model_copy(deep=True) for step in _whole_bill_steps()]
    if degraded:
        starved = next(
            i
            for i, s in enumerate(steps)
            if (s.memory_mb, s.api, s.handler) == (1024, "rest", HARDENED)
        )
        steps[starved].trust = Trust(degraded=True, causes=["host saturated: 30% of the CPU"])
    return make_results(
        steps,
        thresholds={"p95_ms": 60},
        status="interrupted",
        planned=[128, 1024],
        sweep=POINT_SWEEP,
        run_id=run_id,
    )


@pytest.fixture(scope="module")
def points_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Analysis, Path]:
    analysis = analyse(whole_bill())
    path = tmp_path_factory.mktemp("points") / "report.html"
    path.write_text(render([analysis]), encoding="utf-8")
    return analysis, path


def test_given_a_sweep_over_api_and_handler_then_a_matrix_shows_each_point_and_the_pick(
    points_report: tuple[Analysis, Path], browser: Any
) -> None:
    analysis, path = points_report
    opened = open_at(browser, path, NARROW)
    page = opened.page
    assert opened.console_errors == []
    assert page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    # Columns nest handler (outer) over API type (inner); rows are the memory sizes.
    heads = page.locator("table.matrix thead tr")
    assert heads.nth(0).get_attribute("data-axis") == "handler"
    assert heads.nth(0).locator("th[data-value]").all_inner_texts() == [HARDENED, TUTORIAL]
    assert [
        heads.nth(0).locator("th[data-value]").nth(i).get_attribute("colspan") for i in range(2)
    ] == ["2", "2"]
    assert heads.nth(1).locator("th[data-value]").all_inner_texts() == ["REST API", "HTTP API"] * 2
    assert page.locator("table.matrix tbody th").all_inner_texts() == ["128 MB", "1024 MB"]
    cells = page.locator("table.matrix tbody td")
    assert cells.count() == 8
    labels = [cells.nth(i).get_attribute("data-point") for i in range(8)]
    assert labels == [
        f"{memory} MB · {api} · {handler}"
        for memory in (128, 1024)
        for handler in (HARDENED, TUTORIAL)
        for api in ("REST API", "HTTP API")
    ]
    # Each measured cell holds the setting's p95 and cost, as the summary table shows them.
    for setting in analysis.settings:
        cell = page.locator(f"table.matrix td[data-point='{setting.label}']")
        row = f"table.summary tr[data-point='{setting.label}']"
        assert cell.locator("[data-field=p95]").inner_text() == f"p95 {setting.latency.p95:,.1f} ms"
        shown_cost = page.inner_text(f"{row} td[data-field=cost]")
        assert cell.locator("[data-field=cost]").inner_text() == shown_cost.split()[0]
    # The pick is highlighted, the rest marked by what they are.
    marks = {
        label: page.inner_text(f"td[data-point='{label}'] [data-field=mark]") for label in labels
    }
    assert marks[PICK] == "▲ recommended"
    assert page.locator("table.matrix td.picked").all() and [
        c.get_attribute("data-point") for c in page.locator("table.matrix td.picked").all()
    ] == [PICK]
    assert marks[f"128 MB · REST API · {TUTORIAL}"] == "⚠ not valid"
    assert marks[f"1024 MB · HTTP API · {TUTORIAL}"] == "not measured"
    assert marks[f"128 MB · REST API · {TUTORIAL}"] == "⚠ not valid"
    assert marks[f"128 MB · HTTP API · {TUTORIAL}"] == "✗ missed"  # p95 ≈ 245 ms
    assert marks[f"1024 MB · REST API · {HARDENED}"] == "✓ met"
    picked = page.locator("table.matrix td.picked")
    assert picked.evaluate("c => getComputedStyle(c).outlineStyle") == "solid"
    assert unexplained_columns(opened) == []


def test_given_a_sweep_over_api_and_handler_then_every_setting_is_named_by_its_label(
    points_report: tuple[Analysis, Path], browser: Any
) -> None:
    analysis, path = points_report
    opened = open_at(browser, path, NARROW)
    page = opened.page
    # The pick, with every axis (architecture: not swept, the target's).
    assert page.inner_text("[data-field=pick]").strip() == f"Recommendation: {PICK}"
    deploy = {
        d.get_attribute("data-axis"): (d.locator("dt").inner_text(), d.locator("dd").inner_text())
        for d in page.locator("[data-role=deploy] > div").all()
    }
    assert deploy == {
        "memory": ("memory", "128 MB"),
        "api": ("API type", "HTTP API"),
        "architecture": ("architecture", "x86_64 (not swept: the target's)"),
        "handler": ("handler", HARDENED),
    }
    # Tables: the summary's rows in the analysis's order, each by its label; steps too.
    labels = [s.label for s in analysis.settings]
    assert page.locator("table.summary tbody td:first-child").all_inner_texts() == labels
    assert page.inner_text("table.summary tr.picked td >> nth=0") == PICK
    steps = page.locator("table.steps tbody tr td:nth-child(2)").all_inner_texts()
    assert steps == [step.label for step in analysis.results.steps]
    # Charts: the memory chart draws a pair of lines per API type × handler, its legend one
    # entry per pair, labels only on the pick; the scatter colours by combination.
    combos = [f"REST API · {HARDENED}", f"HTTP API · {HARDENED}"]
    combos += [f"REST API · {TUTORIAL}", f"HTTP API · {TUTORIAL}"]
    assert opened.chart("memory", "chart.data.datasets.length") == 8
    assert opened.chart("memory", "chart.legend.legendItems.map(i => i.text)") == combos
    assert f"recommended: {PICK}" in opened.chart("memory", "chart.options.plugins.title.text")
    assert len(opened.point_labels("memory")) == 2  # the pick's cost and p95
    ticks = opened.chart("memory", "chart.scales.x.ticks.map(t => t.label)")
    assert ticks[0][:2] == ["128 MB", "▲ recommended"]
    assert opened.chart("cost", "chart.data.datasets.map(d => d.label)") == combos
    assert sorted(opened.point_labels("cost")) == sorted(
        f"{s.memory_mb} MB"
        + (" (recommended)" if s.label == PICK else "")
        + (" ⚠ degraded" if not s.valid else "")
        for s in analysis.settings
    )
    assert opened.chart("percentiles", "chart.data.datasets.map(d => d.label)") == labels
    timeline = opened.chart("timeline", "chart.data.datasets.map(d => d.label)")
    assert timeline == [f"{label} {stat}" for label in labels for stat in ("mean", "p95")]
    for chart in ("memory", "cost", "percentiles", "timeline"):
        assert opened.chart(chart, "chart.width") <= NARROW


def test_given_a_sweep_over_api_and_handler_then_the_report_says_what_moves_the_bill(
    points_report: tuple[Analysis, Path], browser: Any
) -> None:
    analysis, path = points_report
    opened = open_at(browser, path, WIDE)
    page = opened.page
    effects = page.locator("[data-role=effects]")
    assert effects.locator("[data-field=most]").inner_text().strip() == (
        "Most: HTTP API instead of REST API saves $2.50 per 1M."
    )
    rows = effects.locator("tbody tr")
    assert [rows.nth(i).get_attribute("data-axis") for i in range(rows.count())] == [
        e.axis for e in analysis.effects
    ]
    api = effects.locator("tr[data-axis=api]")
    assert api.locator("[data-field=change]").inner_text() == "REST API → HTTP API"
    assert api.locator("[data-field=cost]").inner_text() == "\u2212$2.50"  # a minus sign
    memory = effects.locator("tr[data-axis=memory_mb]")
    assert memory.locator("[data-field=change]").inner_text() == "128 MB → 1024 MB"
    # It sits between the recommendation and the matrix, and the banner does not repeat it.
    order = page.evaluate(
        "['[data-role=recommendation]', '[data-role=effects]', 'table.matrix']"
        ".map(s => document.querySelector(s).getBoundingClientRect().top)"
    )
    assert order == sorted(order)
    assert "What moves the bill" not in page.inner_text("[data-role=recommendation]")


def test_given_a_degraded_point_then_its_matrix_cell_and_chart_point_say_so() -> None:
    analysis = analyse(whole_bill(degraded=True), intervals=False)
    grid = matrix(analysis)
    assert grid is not None
    states = {cell.label: cell.state for _, cells in grid.rows for cell in cells if cell}
    assert states[f"1024 MB · REST API · {HARDENED}"] == "degraded"
    assert not any(cell.picked for _, cells in grid.rows for cell in cells if cell)
    page = render([analysis])
    assert f'data-point="1024 MB · REST API · {HARDENED}" data-state="degraded"' in page
    assert "with a degraded step (above) are left out of these pairs" in page
    data = chart_data(views([analysis]))
    rest = next(s for s in data["memory"]["series"] if s["label"] == f"REST API · {HARDENED}")
    assert rest["degraded"] == [False, True] and data["memory"]["degraded"]


def test_given_two_runs_of_points_then_their_rows_are_matched_by_point(
    points_report: tuple[Analysis, Path],
) -> None:
    a = points_report[0]
    b = analyse(whole_bill(run_id="after"), intervals=False)
    page = render([a, b], pair=compare_run_pair(a, b))
    for setting in a.settings:
        rows = re.findall(
            rf'<tr[^>]*data-point="{re.escape(setting.label)}" data-run="([^"]+)"', page
        )
        assert rows[:3] == ["A", "B", "B-A"], (setting.label, rows)
    assert f"Same recommendation in both runs: {PICK}." in page
    assert page.count('<table class="matrix"') == 2


# --- the rule, cost intervals and cost differences --------------------------------------------


def priced_pair(tolerance_pct: float | None = None) -> Results:
    """128 MB at $3.88 per 1M and 1024 MB at $3.96 (2.2 % more, its 95 % interval +$0.078 to
    +$0.093) whose p95 is 5× lower: a different cost at the default 0.5 % margin, the same at
    3 %."""
    results = two_settings(thresholds={"p95_ms": 200})
    if tolerance_pct is not None:
        results.scenario = results.scenario.model_copy(
            update={"decision": Decision(cost_tolerance_pct=tolerance_pct)}
        )
    return results


def test_given_a_report_then_each_cost_shows_its_interval_as_the_latency_columns_do(
    tmp_path: Path, browser: Any
) -> None:
    analysis = analyse(priced_pair())
    opened = Opened(browser, write_report([written(tmp_path, priced_pair())]))
    for setting in analysis.settings:
        estimate = setting.cost_estimate
        assert estimate is not None and estimate.low < setting.cost.total < estimate.high
        cell = opened.page.locator(
            f"table.summary tr[data-memory='{setting.memory_mb}'] td[data-field=cost]"
        )
        # The bill, and under it the half-width of its interval: "$3.88" / "± 0.12 %".
        figure, spread = cell.inner_text().splitlines()
        half = 50 * (estimate.high - estimate.low) / setting.cost.total
        assert (figure, spread) == (money(setting.cost.total), f"± {half:.2f} %")
        title = cell.locator("[data-field=cost_interval]").get_attribute("title")
        assert title == f"95 % interval: {money(estimate.low)} to {money(estimate.high)} per 1M"


def test_given_a_faster_setting_beyond_the_margin_then_the_report_lays_out_the_trade(
    tmp_path: Path, browser: Any
) -> None:
    # GIVEN 1024 MB 2.2 % dearer than 128 MB (beyond the 0.5 % margin) and 5× faster
    analysis = analyse(priced_pair())
    # WHEN the report is opened
    opened = Opened(browser, write_report([written(tmp_path, priced_pair())]))
    page = opened.page
    assert opened.console_errors == []
    banner = page.locator("[data-role=recommendation]")
    # THEN the banner names the pick, which part of the rule decided it, and the rule itself
    assert banner.locator("[data-field=pick]").inner_text().strip() == "Recommendation: 128 MB"
    assert banner.locator("[data-role=decided-by]").inner_text() == (
        "Decided by cost: the cheapest setting that meets every threshold; no other is known "
        "to cost the same."
    )
    rule = banner.locator("[data-role=rule]").inner_text()
    assert rule.startswith(f"The rule: {analysis.rule} ")
    assert "within 0.5 % of the cheaper bill" in rule and "decision.cost_tolerance_pct" in rule
    assert page.locator("[data-role=rule]").count() == 1  # stated once
    # ... and what the faster setting would buy, with the margin it missed
    assert (
        "The fastest, 1024 MB, has a p95 5.2× lower (19.0 vs 99.4 ms) for $0.085 more per 1M "
        "requests (+2.2 %): beyond the 0.5 % margin of the cheapest's cost (128 MB), a "
        "different cost, so the rule keeps the cheaper 128 MB; with decision: "
        "{cost_tolerance_pct: 2.5} it would count as costing the same as 128 MB."
    ) in banner.inner_text()
    # The cost differences: the cheapest first, then each other candidate against it.
    block = page.locator("[data-role=cost-differences]")
    rows = block.locator("tbody tr")
    assert [rows.nth(i).get_attribute("data-candidate") for i in range(2)] == ["128 MB", "1024 MB"]
    cheapest, other = analysis.settings
    (difference,) = analysis.recommendation.decision.differences  # type: ignore[union-attr]

    def field(row: int, name: str) -> str:
        return str(rows.nth(row).locator(f"[data-field={name}]").inner_text())

    assert field(0, "relation") == "the cheapest" and field(0, "delta") == "–"
    assert "▲ pick" in rows.nth(0).inner_text()
    assert field(1, "cost").splitlines() == [money(other.cost.total), other.cost_spread]
    assert field(1, "delta") == f"+{money(difference.value)}" == "+$0.085"
    assert field(1, "pct") == "+2.20 %"
    assert field(1, "interval") == f"+{money(difference.low)} to +{money(difference.high)}"
    assert field(1, "interval") == "+$0.078 to +$0.093"
    assert field(1, "margin") == f"±{money(difference.margin)}" == "±$0.019"
    assert field(1, "relation") == "different"
    assert field(1, "p95").splitlines()[0] == f"{other.latency.p95:,.1f}"
    assert field(0, "p95").splitlines()[0] == f"{cheapest.latency.p95:,.1f}"
    assert field(1, "p95_versus") == "p95 5.2× lower"
    assert unexplained_columns(opened) == []
    # It sits between the recommendation and the summary table.
    order = page.evaluate(
        "['[data-role=recommendation]', '[data-role=cost-differences]', 'table.summary']"
        ".map(s => document.querySelector(s).getBoundingClientRect().top)"
    )
    assert order == sorted(order)


def test_given_the_same_difference_inside_a_wider_margin_then_the_faster_is_the_pick(
    tmp_path: Path, browser: Any
) -> None:
    # GIVEN the same two settings, and decision: {cost_tolerance_pct: 3}
    analysis = analyse(priced_pair(3.0))
    assert run_verdict(analysis).decided_by == "latency among equal costs"
    opened = Opened(browser, write_report([written(tmp_path, priced_pair(3.0))]))
    banner = opened.page.locator("[data-role=recommendation]")
    # THEN 1024 MB is the pick, the banner says why, and the trade is still said
    assert banner.locator("[data-field=pick]").inner_text().strip() == "Recommendation: 1024 MB"
    decided = banner.locator("[data-role=decided-by]").inner_text()
    assert decided == (
        "Decided by latency among equal costs: of the settings that cost the same as the "
        "cheapest, the smallest of the fastest (the lowest p95 and any not clearly above it, "
        "beyond the latency margin)."
    )
    headline = banner.locator("[data-field=headline]").inner_text()
    assert headline.startswith("Run 1024 MB: 128 MB and 1024 MB cost the same ($3.88 per 1M ± ")
    # The block still shows what "the same" spans here: 2.2 % of the bill, inside a 3 % margin.
    row = opened.page.locator("[data-role=cost-differences] tr[data-candidate='1024 MB']")
    assert row.locator("[data-field=pct]").inner_text() == "+2.20 %"
    assert row.locator("[data-field=margin]").inner_text() == "±$0.116"
    assert "within 3 % of the cheaper bill" in banner.locator("[data-role=rule]").inner_text()
    assert "Cheapest meeting the thresholds: 128 MB" in banner.inner_text()
    relation = opened.page.locator(
        "[data-role=cost-differences] tr[data-candidate='1024 MB'] [data-field=relation]"
    )
    assert relation.inner_text() == "the same"
    picked = opened.page.locator("[data-role=cost-differences] tr.picked")
    assert picked.get_attribute("data-candidate") == "1024 MB"


def test_given_a_window_short_of_data_then_the_banner_warns_and_states_the_rule(
    tmp_path: Path, browser: Any
) -> None:
    results = make_results(
        [
            make_step(index=1, memory=128, median_ms=60.0, requests=12),
            make_step(index=2, memory=1024, median_ms=12.0, requests=400),
        ],
        thresholds={"p95_ms": 200},
    )
    opened = Opened(browser, write_report([written(tmp_path, results)]))
    banner = opened.page.locator("[data-role=recommendation]")
    # A warning, like too close to call: the answer is not known yet, nothing failed.
    assert banner.get_attribute("class") == "banner warn"
    pick = banner.locator("[data-field=pick]").inner_text().strip()
    assert pick.startswith("No recommendation: 128 MB has not enough data: 12 request(s)")
    confidence = banner.locator("[data-role=confidence]").inner_text()
    assert confidence.startswith("How sure: not enough data.") and "exits 3" in confidence
    assert "Measure longer" in banner.inner_text()
    assert banner.locator("[data-role=decided-by]").count() == 0
    assert banner.locator("[data-role=rule]").count() == 1
    assert opened.page.locator("[data-role=cost-differences]").count() == 0


def test_given_a_run_too_close_to_call_then_the_banner_warns_without_repeating_itself() -> None:
    results = make_results(
        [
            make_step(index=1, memory=128, median_ms=60.0, billed_ms=10.0, requests=300),
            make_step(index=2, memory=1024, median_ms=12.0, billed_ms=8.0, requests=300),
        ]
    )
    p95 = analyse(results, intervals=False).settings[0].latency.p95
    assert p95 is not None
    results.scenario = results.scenario.model_copy(
        update={"thresholds": Thresholds(p95_ms=p95 + 0.5)}
    )
    analysis = analyse(results)
    assert analysis.confidence is not None and analysis.confidence.level == "too close to call"
    page = render([analysis])
    banner = re.search(
        r'<div class="banner (\w+)" data-role="recommendation".*?\n</div>', page, re.S
    )
    assert banner is not None and banner.group(1) == "warn"
    statement = str(escape(analysis.confidence.statement))
    assert banner.group(0).count(statement) == 1  # in "How sure", not again in the list
    assert "No pick until it is known: the run exits 3." in banner.group(0)


def test_given_the_last_good_copy_of_a_run_that_never_wrote_its_end_then_the_report_says_so() -> (
    None
):
    # GIVEN a results.json still "running": the run was killed, or its last write failed
    results = two_settings(status="running")
    page = render([analyse(results)])
    # THEN the report says it is the last good copy, and after which step
    said = re.search(r'<p data-role="last-good-copy">(.*?)</p>', page, re.S)
    assert said is not None
    assert said.group(1).startswith(
        "This results.json is the last good copy of a run that never wrote its end: it was "
        "saved after step 2 (1024 MB, round or repeat 1)"
    )
    # AND a finished run's report does not
    assert 'data-role="last-good-copy"' not in render([analyse(two_settings(status="failed"))])


def test_given_a_confident_run_then_the_cost_interval_is_said_to_hold_across_its_looks() -> None:
    confident = {"until": "confident", "round_s": 10, "min_s": 10, "max_s": 120}  # 12 looks
    analysis = analyse(two_settings(thresholds={"p95_ms": 3000}, sweep=confident))
    page = render([analysis])
    assert "widened ×1.46 to hold across its looks" in page
    # AND the sentence on two equal costs names the interval it used
    tied = make_results(
        [
            make_step(index=1, memory=512, median_ms=20.0, billed_ms=10.0),
            make_step(index=2, memory=1024, median_ms=20.0, billed_ms=5.0),
        ],
        thresholds={"p95_ms": 3000},
        sweep=confident,
    )
    said = " ".join(analyse(tied).recommendation.explanation)
    assert "interval held across the run's looks" in said and "95 % CI" not in said
    assert "interval of Δ" in page and "95 % CI of Δ" not in page
    fixed = render([analyse(two_settings(thresholds={"p95_ms": 3000}))])
    assert "its interval combines both settings' cost intervals;" in fixed
