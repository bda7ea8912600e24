"""Function-duration thresholds measured for real: a short sweep on the local stack at 128 and
1024 MB writes each window's REPORT Durations into results.json, judges duration_p95_ms with
intervals, and its report (opened in Chromium) shows client and function latency side by side.

The limit is set far above any echo's Duration (the handler answers in well under 100 ms even
at 128 MB) and the client thresholds are left unset, so the verdict is "met" on both sizes
whatever the host's load; what is checked is that the figures exist, agree with each other
(the function's p50 under the client's: the client also waits for the front) and reach every
output.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.analysis import analyse
from runner.hdr import decode
from runner.results import Results, read_results
from runner.stack import PROJECT_ROOT
from tests.test_report import CHROMIUM, CHROMIUM_FLAGS

SCENARIO = """\
name: function durations
target: {kind: local, calibrate: false}
sweep: {memory_mb: [128, 1024], settle_s: 0, warmup_s: 1}
load:
  stages: [{users: 4, duration_s: 4}]
  think_time: {min_s: 0.02, max_s: 0.05}
requests:
  - name: echo
    body: {operation: echo, payload: {k: v}}
thresholds: {duration_p95_ms: 2000}
workers: {local: 1}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path, str]:
    root = tmp_path_factory.mktemp("durations")
    path = root / "durations.yaml"
    path.write_text(SCENARIO)
    done = subprocess.run(
        [
            *(sys.executable, "-m", "runner", str(path)),
            *("--out", str(root / "reports"), "--run-id", "d", "--quiet"),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return done.returncode, root / "reports" / "d", done.stderr


@pytest.fixture(scope="module")
def results(run: tuple[int, Path, str]) -> Results:
    code, run_dir, stderr = run
    assert code == 0, stderr
    return read_results(run_dir / "results.json")


@pytest.mark.node
def test_given_a_local_run_then_results_hold_each_windows_function_durations(
    results: Results,
) -> None:
    for step in results.steps:
        invocations = step.invocations
        assert invocations.duration_histogram is not None
        # Every invocation in the window, cold ones included.
        assert decode(invocations.duration_histogram).get_total_count() == invocations.count
        assert sum(s.count for s in invocations.duration_by_second) == invocations.count
        assert len(invocations.duration_by_second) >= 2


@pytest.mark.node
def test_given_a_local_run_then_the_duration_threshold_is_judged_with_intervals(
    results: Results,
) -> None:
    assert results.verdict is not None
    assert results.verdict.met == {"128": True, "1024": True}
    analysis = analyse(results)
    for setting in analysis.settings:
        assert setting.function_latency is not None
        estimate = setting.function_estimates["p95"]
        assert estimate.low <= estimate.value <= estimate.high
        assert setting.latency.p50 is not None and setting.function_latency.p50 is not None
        assert setting.function_latency.p50 < setting.latency.p50
        (verdict,) = (v for v in setting.verdicts if v.statistic == "duration_p95")
        assert verdict.passed and verdict.confident
        assert verdict.name == "function duration p95 ≤ 2000 ms"
        assert "95 % interval" in verdict.measured


@pytest.fixture(scope="module")
def page(run: tuple[int, Path, str]) -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run does this)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        opened = browser.new_page()
        opened.goto((run[1] / "report.html").resolve().as_uri())
        opened.wait_for_selector("body[data-charts-ready]", timeout=15_000)
        yield opened
        browser.close()


@pytest.mark.node
def test_given_a_local_run_then_the_report_shows_client_and_function_side_by_side(
    page: Any, results: Results
) -> None:
    analysis = analyse(results)
    for setting in analysis.settings:
        row = page.locator(f'table.client-function tr[data-memory="{setting.memory_mb}"]')
        client = row.locator('[data-field="client_p95"]').inner_text()
        function = row.locator('[data-field="function_p95"]').inner_text()
        assert setting.latency.p95 is not None and setting.function_latency is not None
        assert client.startswith(f"{setting.latency.p95:.1f}")
        assert function.startswith(f"{setting.function_latency.p95:.1f}")
        assert "–" in function  # its interval under it
        assert row.locator('[data-field="outside_p95"]').is_visible()
    note = page.locator('[data-role="client-function-note"]').inner_text()
    assert note.startswith("Outside the function (client p50 minus function p50):")
    thresholds = page.locator("table.verdicts").inner_text()
    assert "function duration p95 ≤ 2000 ms" in thresholds


@pytest.mark.node
def test_given_a_local_run_then_summary_csv_and_md_carry_the_function_figures(
    run: tuple[int, Path, str], results: Results
) -> None:
    run_dir = run[1]
    with (run_dir / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert all(float(row["function_p95_ms"]) > 0 for row in rows)
    assert "| function duration p95 ≤ 2000 ms | ✅ pass" in (run_dir / "summary.md").read_text()
