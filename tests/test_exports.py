"""Files for other tools in each run directory: summary.csv, junit.xml, summary.md, and
Locust's own per-step CSVs.

The exports are built from the report tests' results (real schema, real HDR histograms of
known distributions) and read back the way their users read them: csv.DictReader, a real
JUnit parser (junitparser), plain text. One real run (a url target served by a stub on
loopback: no stack to start) checks the files the CLI writes after a run and Locust's CSVs.
"""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import junitparser
import pytest

from runner.analysis import analyse, run_verdict
from runner.outputs import write_exports
from runner.outputs._exports import SUMMARY_COLUMNS
from runner.outputs._tables import NO_VALUE
from runner.results import Results, Trust, read_results, write_results
from tests.test_report import (
    HARDENED,
    PICK,
    TUTORIAL,
    XSS,
    four_sizes,
    make_results,
    make_step,
    whole_bill,
)

# 128 MB: p95 ≈ 98 ms; 256 MB (two repeats): ≈ 49 ms; 1024 MB: ≈ 20 ms (test_report.py).
THRESHOLDS = {"p95_ms": 60, "error_rate": 0.01}
REQUESTS = 200  # per step: few buckets, so the verdict's bootstrap stays quick


def three_sizes() -> Results:
    results = make_results(
        [
            make_step(index=1, memory=128, median_ms=60.0, billed_ms=55.0, requests=REQUESTS),
            make_step(index=2, memory=256, median_ms=30.0, billed_ms=28.0, requests=REQUESTS),
            make_step(index=3, memory=256, median_ms=30.0, billed_ms=28.0, repeat=2, requests=150),
            make_step(index=4, memory=1024, median_ms=12.0, billed_ms=12.0, requests=REQUESTS),
        ],
        thresholds=THRESHOLDS,
    )
    results.verdict = run_verdict(analyse(results))  # as the sweep stores it at the run's end
    return results


def exported(tmp_path: Path, results: Results) -> dict[str, Path]:
    path = tmp_path / results.run_id / "results.json"
    write_results(results, path)
    return {file.name: file for file in write_exports(path)}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One run of three sizes (256 MB in two repeats) and its exports."""
    return exported(tmp_path_factory.mktemp("exports"), three_sizes())


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == SUMMARY_COLUMNS
        return list(reader)


def junit_cases(path: Path) -> dict[str, junitparser.TestCase]:
    xml = junitparser.JUnitXml.fromfile(str(path))
    (suite,) = list(xml)
    cases = {case.name: case for case in suite}
    # The suite's counts are those of its cases, as CI systems total them.
    assert suite.tests == len(cases)
    results = [r for case in cases.values() for r in case.result]
    assert suite.failures == sum(isinstance(r, junitparser.Failure) for r in results)
    assert suite.errors == sum(isinstance(r, junitparser.Error) for r in results)
    assert suite.skipped == sum(isinstance(r, junitparser.Skipped) for r in results)
    return cases


def only_result(case: junitparser.TestCase) -> Any:
    (result,) = case.result
    return result


# --- summary.csv ------------------------------------------------------------------------------


def test_given_a_run_then_summary_csv_has_a_row_per_size_with_the_reports_figures(
    run: dict[str, Path],
) -> None:
    rows = {int(row["memory_mb"]): row for row in csv_rows(run["summary.csv"])}
    # The figures the report shows: the analysis of the file as written, repeats pooled.
    results_json = run["summary.csv"].with_name("results.json")
    analysis = analyse(read_results(results_json), intervals=False)
    assert sorted(rows) == [s.memory_mb for s in analysis.settings] == [128, 256, 1024]
    for setting in analysis.settings:
        row = rows[setting.memory_mb]
        assert int(row["repeats"]) == len(setting.steps)
        assert int(row["requests"]) == setting.requests
        assert float(row["requests_per_s"]) == pytest.approx(setting.rps, abs=5e-4)
        assert int(row["errors"]) == setting.failures == 0
        for stat in ("mean", "p50", "p95", "p99"):
            assert float(row[f"{stat}_ms"]) == pytest.approx(
                getattr(setting.latency, stat), abs=5e-4
            )
        assert float(row["cost_per_1m_requests_usd"]) == pytest.approx(setting.cost.total, abs=5e-7)
        # Its 95 % interval, in the two columns appended after the others.
        estimate = setting.cost_estimate
        assert estimate is not None
        low, high = (float(row[f"cost_per_1m_requests_usd_{end}"]) for end in ("low", "high"))
        assert low == pytest.approx(estimate.low, abs=5e-7)
        assert high == pytest.approx(estimate.high, abs=5e-7)
        assert low < setting.cost.total < high
        assert int(row["cold_starts"]) == setting.function.cold_starts
        assert row["dropped_arrivals"] == "" and row["offered_arrivals"] == ""  # closed model
        assert row["api"] == row["architecture"] == row["handler"] == ""  # memory only
    # One repeat: the same p95 as the step in results.json; two: the repeats pooled.
    data = json.loads(results_json.read_text())
    assert float(rows[128]["p95_ms"]) == data["steps"][0]["latency"]["p95"]
    assert int(rows[256]["requests"]) == REQUESTS + 150
    assert int(rows[256]["cold_starts"]) == 4
    assert rows[256]["verdict"] == "recommended"  # the cheapest meeting p95 ≤ 60 ms
    assert rows[1024]["verdict"] == "meets thresholds"
    assert rows[128]["verdict"] == "fails thresholds"
    assert rows[128]["verdict_detail"].startswith("p95 <= 60 ms (measured ")


def test_given_a_run_that_failed_before_any_step_then_every_file_still_has_its_header(
    tmp_path: Path,
) -> None:
    results = make_results([], status="failed", thresholds={"p95_ms": 100}, planned=[128, 1024])
    files = exported(tmp_path, results)
    rows = csv_rows(files["summary.csv"])
    assert [(row["memory_mb"], row["verdict"]) for row in rows] == [
        ("128", "not measured"),
        ("1024", "not measured"),
    ]
    assert "the run ended (failed)" in rows[0]["verdict_detail"]
    cases = junit_cases(files["junit.xml"])
    assert isinstance(only_result(cases["128 MB: measured and trusted"]), junitparser.Skipped)
    markdown = files["summary.md"].read_text()
    assert "No recommendation" in markdown and "The run is failed" in markdown


# --- JUnit XML --------------------------------------------------------------------------------


def test_given_thresholds_then_junit_has_a_case_per_size_and_threshold_with_measured_and_limit(
    run: dict[str, Path],
) -> None:
    cases = junit_cases(run["junit.xml"])
    for memory in (128, 256, 1024):
        assert cases[f"{memory} MB: measured and trusted"].is_passed
        assert cases[f"{memory} MB: errors <= 1.00%"].is_passed
    assert cases["256 MB: p95 <= 60 ms"].is_passed and cases["1024 MB: p95 <= 60 ms"].is_passed
    failure = only_result(cases["128 MB: p95 <= 60 ms"])
    assert isinstance(failure, junitparser.Failure)
    assert failure.message.startswith("128 MB measured ")
    assert failure.message.endswith(" ms, limit p95 <= 60 ms")
    assert len(cases) == 3 * 3


def test_given_degraded_invalid_and_unmeasured_sizes_then_each_says_why_it_was_not_judged(
    tmp_path: Path,
) -> None:
    cause = "host saturated: 128 MB sandboxes got 31% of the CPU they were ready to use"
    degraded = make_step(index=1, memory=128, median_ms=60.0, requests=REQUESTS).model_copy(
        update={"trust": Trust(degraded=True, causes=[cause])}
    )
    invalid = make_step(index=2, memory=512, median_ms=20.0, valid=False, requests=REQUESTS)
    results = make_results(
        [degraded, invalid], thresholds=THRESHOLDS, status="interrupted", planned=[128, 512, 2048]
    )
    files = exported(tmp_path, results)

    rows = {row["memory_mb"]: row for row in csv_rows(files["summary.csv"])}
    assert rows["128"]["verdict"] == "degraded"
    assert rows["128"]["verdict_detail"] == f"step 1: {cause}"
    assert rows["512"]["verdict"] == "no data" and "worker-b lost" in rows["512"]["verdict_detail"]
    assert rows["2048"]["verdict"] == "not measured" and rows["2048"]["requests"] == ""
    assert rows["2048"]["cost_per_1m_requests_usd_low"] == ""

    cases = junit_cases(files["junit.xml"])
    error = only_result(cases["128 MB: measured and trusted"])
    assert isinstance(error, junitparser.Error) and cause in error.message
    assert isinstance(only_result(cases["512 MB: measured and trusted"]), junitparser.Error)
    skipped = only_result(cases["128 MB: p95 <= 60 ms"])
    assert isinstance(skipped, junitparser.Skipped)
    assert skipped.message.startswith("not judged: degraded: ") and cause in skipped.message
    assert isinstance(only_result(cases["2048 MB: measured and trusted"]), junitparser.Skipped)

    markdown = files["summary.md"].read_text()
    assert "**No recommendation: step 1 (128 MB) is degraded: " in markdown
    assert "> **Warning**" in markdown and "The run is interrupted" in markdown
    assert "512 MB has no valid measurement" in markdown and "2048 MB was not measured" in markdown


# --- Markdown ---------------------------------------------------------------------------------


def test_given_a_pick_then_the_markdown_leads_with_it_and_its_confidence_and_a_row_per_size(
    run: dict[str, Path],
) -> None:
    markdown = run["summary.md"].read_text()
    lines = markdown.splitlines()
    assert lines[0] == "### memsweep: tutorial (run run-a)"
    assert lines[2].startswith("**Recommendation: 256 MB.** Run 256 MB: the cheapest")
    # Which part of the rule decided, in the report's words, with the margin.
    assert lines[4] == (
        "Decided by **cost**: the cheapest setting that meets every threshold; no other is known "
        "to cost the same (margin 0.5 % of the cheaper bill)."
    )
    assert any(
        line.startswith(
            "How sure: **sure**. 256 MB is the pick in 100% of resamples; it meets p95 ≤ 60 ms"
        )
        for line in lines
    )
    assert "Warning" not in markdown
    sizes = [line for line in lines if line.startswith("| ") and " MB" in line.split("|")[1]]
    assert [line.split("|")[1].strip() for line in sizes] == ["128 MB", "**256 MB**", "1024 MB"]
    assert "| p95 ≤ 60 ms | ❌ fail " in markdown and "✅ pass" in markdown
    assert len(markdown) < 2000  # a CI job summary, not a report


def test_given_settings_that_cost_the_same_then_the_markdown_names_the_rule_and_the_tie(
    tmp_path: Path,
) -> None:
    # GIVEN 256 and 512 MB billing the same compute, 512 MB clearly faster (test_report.py)
    results = four_sizes()
    results.verdict = run_verdict(analyse(results))
    # WHEN the exports are written
    markdown = exported(tmp_path, results)["summary.md"].read_text()
    # THEN summary.md says the faster of the settings that tie on cost was picked, and which tie
    decided = next(line for line in markdown.splitlines() if line.startswith("Decided by "))
    assert decided == (
        "Decided by **latency among equal costs**: of the settings that cost the same as the "
        "cheapest, the smallest of the fastest (the lowest p95 and any not clearly above it, "
        "beyond the latency margin). "
        "Cost the same (within 0.5 % of the cheaper bill): 256 MB, 512 MB."
    )
    assert markdown.splitlines()[2].startswith("**Recommendation: 512 MB.**")


def test_given_markup_and_control_characters_in_the_scenario_name_then_every_file_stays_valid(
    tmp_path: Path,
) -> None:
    name = f"{XSS} | *bold* `code` $x$ \x07bell"
    results = make_results(
        [make_step(index=1, memory=128, median_ms=60.0, requests=REQUESTS)],
        name=name,
        thresholds=THRESHOLDS,
    )
    files = exported(tmp_path, results)
    suite = next(iter(junitparser.JUnitXml.fromfile(str(files["junit.xml"]))))
    assert suite.name == f"memsweep: {name.replace(chr(7), chr(0xFFFD))} (run-a)"
    heading = files["summary.md"].read_text().splitlines()[0]
    assert "<" not in heading and "&lt;script&gt;" in heading
    assert "\\|" in heading and "\\*bold\\*" in heading and "\\`code\\`" in heading
    assert "\\$x\\$" in heading and "\x07" not in heading


# --- a real run: the CLI writes the files, and Locust's own CSVs --------------------------------
# Checked on test_sweep.py's two-worker sweep (one real run fewer in CI), which calls this.

LOCUST_FILES = ("_stats.csv", "_stats_history.csv", "_failures.csv", "_exceptions.csv")


def check_a_real_runs_directory(run: Path, results: Results) -> None:
    """A run's exports hold its figures; Locust's files have their header and memory_mb."""

    def key(memory: object, api: object, architecture: object, handler: object) -> str:
        """A setting's row: its point, the axes a sweep did not move left empty."""
        return ",".join(
            "" if value is None else str(value) for value in (memory, api, architecture, handler)
        )

    rows = {
        key(
            row["memory_mb"],
            row["api"] or None,
            row["architecture"] or None,
            row["handler"] or None,
        ): row
        for row in csv_rows(run / "summary.csv")
    }
    points = {
        step.label: key(step.memory_mb, step.api, step.architecture, step.handler)
        for step in results.steps
    }
    assert sorted(rows) == sorted(points.values())  # one repeat: a row per step
    cases = junit_cases(run / "junit.xml")
    assert cases and all(case.is_passed for case in cases.values())
    assert results.verdict is not None and results.verdict.recommended is not None
    pick = results.verdict.recommended
    picked = [
        s.label
        for s in results.steps
        if s.memory_mb == pick.memory_mb
        and s.api in (None, pick.api)
        and s.handler in (None, pick.handler)
    ]
    assert len(picked) == 1 and rows[points[picked[0]]]["verdict"] == "recommended"
    assert f"**Recommendation: {picked[0]}.**" in (run / "summary.md").read_text().replace(
        "\\_", "_"
    )
    for step in results.steps:
        row = rows[points[step.label]]
        assert int(row["requests"]) == step.requests > 0  # one repeat: the step's own figures
        assert float(row["p95_ms"]) == step.latency.p95

        # Locust's files: every CSV has its header and a memory_mb column, also with no rows.
        base = run / "locust" / f"step{step.index:02d}-{step.memory_mb}mb-r{step.repeat}"
        assert sorted(step.locust_files) == sorted(
            [f"{base}{suffix}" for suffix in LOCUST_FILES] + [f"{base}_stats.json"]
        )
        tables = {}
        for suffix in LOCUST_FILES:
            with open(f"{base}{suffix}", newline="") as handle:
                reader = csv.DictReader(handle)
                assert reader.fieldnames and reader.fieldnames[0] == "memory_mb", suffix
                tables[suffix] = list(reader)
                assert all(r["memory_mb"] == str(step.memory_mb) for r in tables[suffix])
        assert tables["_failures.csv"] == [] and tables["_exceptions.csv"] == []
        aggregated = tables["_stats.csv"][-1]
        assert aggregated["Name"] == "Aggregated" and int(aggregated["Request Count"]) > 0
        # Counted from the end of the warm-up: the history starts there, ends with the totals.
        history = tables["_stats_history.csv"]
        assert int(history[0]["Timestamp"]) >= int(step.window_start)
        assert history[-1]["Total Request Count"] == aggregated["Request Count"]
        entries = json.loads(Path(f"{base}_stats.json").read_text())
        assert entries and all(entry["memory_mb"] == step.memory_mb for entry in entries)


# --- a sweep over more than memory -------------------------------------------------------------


@pytest.fixture(scope="module")
def points_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """test_report.whole_bill: 8 planned points of memory × API type × handler, 7 measured
    (one not valid), the pick 128 MB · HTTP API · hardened handler."""
    results = whole_bill()
    results.verdict = run_verdict(analyse(results, intervals=False))
    return exported(tmp_path_factory.mktemp("points"), results)


def test_given_a_sweep_over_api_and_handler_then_summary_csv_has_a_row_per_point(
    points_run: dict[str, Path],
) -> None:
    rows = csv_rows(points_run["summary.csv"])
    assert SUMMARY_COLUMNS[:4] == ("memory_mb", "api", "architecture", "handler")
    keys = [(row["memory_mb"], row["api"], row["architecture"], row["handler"]) for row in rows]
    # The report's order (handler, then API type, memory rising), then the point never reached.
    assert keys == [
        ("128", "rest", "", HARDENED),
        ("1024", "rest", "", HARDENED),
        ("128", "http", "", HARDENED),
        ("1024", "http", "", HARDENED),
        ("128", "rest", "", TUTORIAL),
        ("1024", "rest", "", TUTORIAL),
        ("128", "http", "", TUTORIAL),
        ("1024", "http", "", TUTORIAL),
    ]
    verdicts = [row["verdict"] for row in rows]
    assert verdicts == [
        "meets thresholds",
        "meets thresholds",
        "recommended",
        "meets thresholds",
        "no data",
        "meets thresholds",
        "fails thresholds",
        "not measured",
    ]
    assert rows[7]["repeats"] == "0" and rows[7]["requests"] == ""
    assert "before this setting was measured" in rows[7]["verdict_detail"]
    # The API type moves the cost: the same memory and handler, $2.50 apart.
    rest, http = (float(rows[i]["cost_per_1m_requests_usd"]) for i in (0, 2))
    assert rest - http == pytest.approx(2.50)


def test_given_a_sweep_over_api_and_handler_then_junit_cases_are_named_by_point(
    points_run: dict[str, Path],
) -> None:
    cases = junit_cases(points_run["junit.xml"])
    # a trust case per point; the p95 threshold and the default error rate per measured one
    assert len(cases) == 8 + 7 + 7
    assert cases[f"{PICK}: errors <= 1.00% (default)"].is_passed
    assert cases[f"{PICK}: measured and trusted"].is_passed
    assert cases[f"{PICK}: p95 <= 60 ms"].is_passed
    invalid = only_result(cases[f"128 MB · REST API · {TUTORIAL}: measured and trusted"])
    assert isinstance(invalid, junitparser.Error)
    assert invalid.message.startswith(f"128 MB · REST API · {TUTORIAL} could not be judged")
    missed = only_result(cases[f"128 MB · HTTP API · {TUTORIAL}: p95 <= 60 ms"])
    assert isinstance(missed, junitparser.Failure)
    assert missed.message.startswith(f"128 MB · HTTP API · {TUTORIAL} measured ")
    unmeasured = only_result(cases[f"1024 MB · HTTP API · {TUTORIAL}: measured and trusted"])
    assert isinstance(unmeasured, junitparser.Skipped)
    tree = ET.parse(points_run["junit.xml"])
    properties = {p.get("name"): p.get("value") for p in tree.iter("property")}
    assert properties["recommended_mb"] == "128" and properties["recommended_api"] == "http"
    assert properties["recommended_architecture"] == "x86_64"
    assert properties["recommended_handler"] == HARDENED


def test_given_a_sweep_over_api_and_handler_then_summary_md_has_the_pick_effects_and_matrix(
    points_run: dict[str, Path],
) -> None:
    markdown = points_run["summary.md"].read_text()
    lines = markdown.splitlines()
    md_pick = PICK.replace("_", "\\_")
    assert lines[2].startswith(f"**Recommendation: {md_pick}.** Run {md_pick}: the cheapest")
    deploy = next(line for line in lines if line.startswith("Deploy: "))
    assert deploy == (
        "Deploy: memory **128 MB** · API type **HTTP API** · architecture x86\\_64 (not swept) · "
        f"handler **{HARDENED.replace('_', chr(92) + '_')}**"
    )
    assert any(
        line.startswith("What moves the bill: HTTP API instead of REST API saves \\$2.50 per 1M")
        for line in lines
    )
    # The matrix: memory sizes as rows, API type · handler as columns, the pick in bold.
    start = lines.index(
        "| memory | REST API · handler.lambda\\_handler | HTTP API · handler.lambda\\_handler "
        "| REST API · tutorial\\_handler.lambda\\_handler "
        "| HTTP API · tutorial\\_handler.lambda\\_handler |"
    )
    small, large = ([c.strip() for c in lines[start + i].strip("|").split("|")] for i in (2, 3))
    assert small[0] == "128 MB" and large[0] == "1024 MB"
    assert small[2].startswith("**p95 ") and small[2].endswith(" ▲ recommended**")
    assert small[3].endswith("⚠ no data") and small[4].endswith("❌")
    assert large[1].endswith("✅") and large[4] == "not measured"
    # A row per point, named by its label; thresholds a row per setting.
    assert f"| **{md_pick}** | 200 |" in markdown
    assert (
        f"| 1024 MB · HTTP API · {TUTORIAL.replace('_', chr(92) + '_')} | {NO_VALUE} |" in markdown
    )
    assert "| setting | p95 ≤ 60 ms |" in markdown
