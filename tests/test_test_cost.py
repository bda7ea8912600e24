"""The test's own AWS charges: estimated from a scenario's plan before the run (hand-worked
figures), printed by --dry-run, and measured from results as a run writes them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runner.analysis import charges_lines, estimate_test_cost, measured_test_cost
from runner.results import Invocations, OutsideWindow, Results, read_results, write_results
from runner.scenario import parse_scenario
from runner.stack import PROJECT_ROOT
from tests.test_report import make_results, make_step

# 2 sizes, one 120 s stage of 10 users thinking 0.1 s, 3 reads to 1 create, no seed.
SCENARIO = """\
name: own cost
target: {kind: aws, stack: memsweep, stage: dev, region: us-east-1}
sweep: {memory_mb: [128, 1024], warmup_s: 0}
load:
  stages: [{users: 10, duration_s: 120}]
  think_time: {min_s: 0.1, max_s: 0.1}
requests:
  - {name: read, weight: 3, body: {operation: read, payload: {Key: {id: item-1}}}}
  - {name: create, weight: 1, body: {operation: create, payload: {Item: {id: "{{uuid}}"}}}}
"""

# Hand-worked, at 60 ms billed per call and 60 ms of network and gateway:
# each user sends one request per 0.1 s think + 0.06 s billed + 0.06 s network = 0.22 s;
# per step 10 users × 120 s ÷ 0.22 s = 5,454.5 requests; 2 steps = 10,909.1 requests.
REQUESTS = 2 * 10 * 120 / 0.22
API_GATEWAY = REQUESTS / 1e6 * 3.50  # REST, $3.50 per 1M = $0.0382
LAMBDA_REQUESTS = REQUESTS / 1e6 * 0.20  # $0.20 per 1M = $0.00218
# 5,454.5 calls × 0.06 s × (128 + 1024) / 1024 GB = 368.2 GB-s
GB_SECONDS = REQUESTS / 2 * 0.06 * (128 + 1024) / 1024
LAMBDA_COMPUTE = GB_SECONDS * 0.0000166667  # x86_64 = $0.00614
READ_UNITS = REQUESTS * 0.75 * 0.5  # 3 in 4 are reads of 0.5 RRU = 4,090.9 RRU
WRITE_UNITS = REQUESTS * 0.25 * 1.0  # 1 in 4 a create of 1 WRU = 2,727.3 WRU
DYNAMODB = READ_UNITS / 1e6 * 0.125 + WRITE_UNITS / 1e6 * 0.625  # $0.00051 + $0.00170
# 649 B per invocation (START 71 + handler.py 282 + END 52 + REPORT 140 + 4 × 26)
LOG_GB = REQUESTS * 649 / 1024**3  # 7,080,000 B = 0.00659 GB
LOGS = LOG_GB * 0.50  # $0.50 per GB = $0.00330
TOTAL = API_GATEWAY + LAMBDA_REQUESTS + LAMBDA_COMPUTE + DYNAMODB + LOGS  # $0.0520


def by_service(charges: object) -> dict[str, tuple[float, float]]:
    return {line.service: (line.quantity, line.usd) for line in charges.lines}  # type: ignore[attr-defined]


def test_given_a_fixed_sweep_then_the_estimate_is_the_hand_worked_one() -> None:
    estimate = estimate_test_cost(parse_scenario(SCENARIO, path="own.yaml"))
    lines = by_service(estimate)
    assert lines["API Gateway REST"] == pytest.approx((REQUESTS, API_GATEWAY))
    assert lines["Lambda requests"] == pytest.approx((REQUESTS, LAMBDA_REQUESTS))
    assert lines["Lambda compute"] == pytest.approx((GB_SECONDS, LAMBDA_COMPUTE))
    assert lines["DynamoDB reads"] == pytest.approx((READ_UNITS, READ_UNITS / 1e6 * 0.125))
    assert lines["DynamoDB writes"] == pytest.approx((WRITE_UNITS, WRITE_UNITS / 1e6 * 0.625))
    assert lines["CloudWatch Logs"] == pytest.approx((LOG_GB, LOGS))
    assert estimate.total_usd == pytest.approx(TOTAL)
    assert estimate.estimated and all(line.estimated for line in estimate.lines)
    assert "60 ms billed per call" in estimate.basis
    assert "max_s" not in estimate.basis  # a fixed sweep has no worst case to state


def test_given_seeding_with_reset_then_its_creates_deletes_and_pages_are_counted() -> None:
    seeded = SCENARIO + "seed: {items: 50, reset: true}\n"
    plain = by_service(estimate_test_cost(parse_scenario(SCENARIO, path="own.yaml")))
    with_seed = by_service(estimate_test_cost(parse_scenario(seeded, path="own.yaml")))
    # Per step: 50 creates; the reset deletes the 50 seeded and the 1,363.6 the load created
    # (a quarter of 5,454.5), after ceil(1,413.6 / 100) + 1 = 16 list pages.
    per_step = 50 + (50 + REQUESTS / 2 / 4) + 16
    added = with_seed["API Gateway REST"][0] - plain["API Gateway REST"][0]
    assert added == pytest.approx(2 * per_step)
    pages_read = with_seed["DynamoDB reads"][0] - plain["DynamoDB reads"][0]
    assert pages_read == pytest.approx(2 * 16 * 0.5)


def test_given_a_confident_sweep_then_it_is_estimated_at_max_s_and_says_so() -> None:
    confident = SCENARIO.replace(
        "sweep: {memory_mb: [128, 1024], warmup_s: 0}",
        "sweep: {memory_mb: [128, 1024], warmup_s: 0, until: confident, round_s: 10, max_s: 120}",
    )
    estimate = estimate_test_cost(parse_scenario(confident, path="own.yaml"))
    # 12 rounds of 10 s per size at the peak's 10 users: the same 120 s per size as above
    assert by_service(estimate)["API Gateway REST"][0] == pytest.approx(REQUESTS)
    assert "a confident sweep at max_s" in estimate.basis


def test_given_an_earlier_run_then_its_billed_time_per_point_is_used_and_the_rest_defaulted(
    tmp_path: Path,
) -> None:
    # An earlier run measured only 128 MB: 2,000 calls billed 10 ms and two 300 ms inits
    previous = make_results([make_step(index=1, memory=128, median_ms=20.0, billed_ms=10.0)])
    billed_128 = (10 * 2000 + 600) / 2000  # 10.3 ms
    estimate = estimate_test_cost(
        parse_scenario(SCENARIO, path="own.yaml"), previous=previous, previous_name="a.json"
    )
    calls_128 = 10 * 120 / (0.1 + billed_128 / 1000 + 0.06)
    calls_1024 = REQUESTS / 2
    gb_seconds = calls_128 * billed_128 / 1000 * 0.125 + calls_1024 * 0.06 * 1.0
    assert by_service(estimate)["Lambda compute"][0] == pytest.approx(gb_seconds)
    assert "billed time per call from a.json, 60 ms for 1024 MB (not in it)" in estimate.basis


def test_given_a_run_s_results_then_what_it_did_cost_is_measured() -> None:
    # GIVEN a step of 2,000 requests at 128 MB: 2,000 invocations in the window billed
    # 10 ms each + 600 ms of two inits, 1,000 RRU; 100 in the warm-up (1,500 ms, 50 RRU), 20
    # seeding creates before the load (200 ms, 20 WRU), 3 in flight at the window's end
    step = make_step(index=1, memory=128, median_ms=20.0, billed_ms=10.0)
    step.outside = OutsideWindow(
        before=Invocations(count=20, billed_ms_total=200, write_units=20.0),
        warmup=Invocations(count=100, billed_ms_total=1500, read_units=50.0),
        after_window=3,
    )
    measured = measured_test_cost(make_results([step]))
    assert measured is not None
    lines = by_service(measured)
    calls = 2000 + 20 + 100 + 3  # 2,123
    # 20,600 + 200 + 1,500 ms, and the 3 uncounted at the window's mean 10.3 ms = 22,330.9 ms
    gb_seconds = (20_600 + 200 + 1_500 + 3 * 10.3) / 1000 * 128 / 1024  # 2.79 GB-s
    assert lines["API Gateway REST"] == pytest.approx((calls, calls / 1e6 * 3.50))
    assert lines["Lambda requests"] == pytest.approx((calls, calls / 1e6 * 0.20))
    assert lines["Lambda compute"] == pytest.approx((gb_seconds, gb_seconds * 0.0000166667))
    assert lines["DynamoDB reads"] == pytest.approx((1050, 1050 / 1e6 * 0.125))
    assert lines["DynamoDB writes"] == pytest.approx((20, 20 / 1e6 * 0.625))
    assert lines["CloudWatch Logs"][0] == pytest.approx(calls * 649 / 1024**3)
    # THEN only the log bytes rest on an assumption
    assert not measured.estimated
    assert [line.service for line in measured.lines if line.estimated] == ["CloudWatch Logs"]


def test_given_a_step_with_no_log_lines_then_its_calls_are_estimated_and_marked() -> None:
    step = make_step(index=1, memory=512, median_ms=20.0)
    step.invocations = Invocations(source="no log lines")
    measured = measured_test_cost(make_results([step]))
    assert measured is not None
    # 2,000 requests in a 20 s window after 2 s of warm-up: 2,200 calls at 60 ms
    assert by_service(measured)["Lambda requests"][0] == pytest.approx(2200)
    assert by_service(measured)["Lambda compute"][0] == pytest.approx(2200 * 0.06 * 0.5)
    assert all(line.estimated for line in measured.lines)
    assert "512 MB: no invocations in the function's log" in measured.basis


def test_given_an_older_results_file_then_it_reads_without_the_charges(tmp_path: Path) -> None:
    results = make_results([make_step(index=1, memory=128, median_ms=20.0)])
    path = tmp_path / "results.json"
    write_results(results, path)
    text = path.read_text()
    assert '"test_cost"' in text
    older = text.replace(',\n "test_cost_estimate": null', "").replace(',\n "test_cost": null', "")
    assert '"test_cost' not in older
    path.write_text(older)
    again = read_results(path)
    assert again.test_cost is None and again.test_cost_estimate is None


def test_charges_lines_name_the_total_each_service_and_the_assumption() -> None:
    estimate = estimate_test_cost(parse_scenario(SCENARIO, path="own.yaml"))
    head, why = charges_lines(estimate, before=True)
    assert head.startswith("AWS charges of this test: about $0.052 (API Gateway REST 10,909")
    assert "Lambda 10,909 requests and 368.2 GB-s $0.008" in head
    assert "CloudWatch Logs 6.8 MB $0.003" in head
    assert why.startswith("  assumes: 60 ms billed per call")


def dry_run(tmp_path: Path, text: str, *flags: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "own.yaml"
    path.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [sys.executable, "-m", "runner", "run", str(path), "--dry-run", *flags],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env=env,
        timeout=60,
        check=False,
    )


def test_given_an_aws_scenario_then_dry_run_prints_its_charges_with_no_aws_call(
    tmp_path: Path,
) -> None:
    # No credentials and no endpoint: the estimate needs no AWS call
    done = dry_run(tmp_path, SCENARIO)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("AWS charges of this test: about $0.052 (") for line in lines)
    assert any(line.startswith("  assumes: 60 ms billed per call") for line in lines)


def test_given_a_local_scenario_then_dry_run_says_it_costs_nothing_here(tmp_path: Path) -> None:
    done = dry_run(tmp_path, SCENARIO, "--target", "local")
    assert done.returncode == 0, done.stderr
    assert (
        "AWS charges of this test: none (the local stack runs on this machine); on the aws "
        "target about $0.052"
    ) in done.stdout


def test_given_a_bad_cost_from_file_then_one_line_naming_it_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "earlier.json"
    bad.write_text("{")
    done = dry_run(tmp_path, SCENARIO, "--cost-from", str(bad))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert done.stderr.startswith(f"memsweep: --cost-from {bad}: not valid JSON")


def test_given_cost_from_then_dry_run_uses_that_run(tmp_path: Path) -> None:
    earlier: Results = make_results([make_step(index=1, memory=128, median_ms=20.0)])
    path = tmp_path / "earlier.json"
    write_results(earlier, path)
    done = dry_run(tmp_path, SCENARIO, "--cost-from", str(path))
    assert done.returncode == 0, done.stderr
    assert f"billed time per call from {path}, 60 ms for 1024 MB (not in it)" in done.stdout


def with_both(tmp_path: Path) -> Path:
    """A run directory whose results.json holds an estimate and a measurement."""
    results = make_results([make_step(index=1, memory=128, median_ms=20.0)])
    results.test_cost_estimate = estimate_test_cost(parse_scenario(SCENARIO, path="own.yaml"))
    results.test_cost = measured_test_cost(results)
    path = tmp_path / "results.json"
    write_results(results, path)
    return path


def test_given_both_then_summary_md_shows_the_estimate_beside_the_measured(
    tmp_path: Path,
) -> None:
    from runner.outputs import write_exports

    path = with_both(tmp_path)
    write_exports(path)
    summary = (tmp_path / "summary.md").read_text()
    rest = "| API Gateway REST | 10,909 requests · \\$0.038 | 2,000 requests · \\$0.007 |"
    assert rest in summary
    assert "| CloudWatch Logs | 6.8 MB · \\$0.003 | estimate: 1.2 MB · \\$0.001 |" in summary
    assert "| Total | \\$0.052 | \\$0.008 |" in summary


def test_given_both_then_the_report_has_its_section_and_a_local_run_none(tmp_path: Path) -> None:
    from runner.outputs import write_report

    html = write_report([str(with_both(tmp_path))]).read_text()
    assert 'id="own-charges"' in html and "measured after it" in html
    assert "2,000 requests · $0.007" in html
    plain = make_results([make_step(index=1, memory=128, median_ms=20.0)])
    write_results(plain, tmp_path / "plain.json")
    assert 'id="own-charges"' not in write_report([str(tmp_path / "plain.json")]).read_text()
