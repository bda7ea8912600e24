"""The pick when settings tie on cost, cost with an interval, and no verdict without evidence.

In process, on results built as a run writes them (tests/test_report.py's make_step): API
Gateway's $3.50 per 1M is most of the bill, so sizes whose compute costs the same
(memory × billed duration held equal) must tie, and the faster one is then the pick.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.analysis import analyse, look_widening, next_round, run_verdict, still_open
from runner.analysis._decision import (
    SpeedMargin,
    clearly_faster,
    cost_difference,
    p95_difference,
    paired_ratio,
    paired_rounds,
    speed_relation,
)
from runner.analysis._stats import Batch, compare_many, mean_interval
from runner.analysis._verdict import DEFAULT_ERROR_RATE, exit_code
from runner.results import Results, read_results, write_results
from runner.scenario import Point
from runner.stack import PROJECT_ROOT
from tests.test_report import make_results, make_step


def tied_mix(*, seed: int = 0, fast: tuple[float, float, float] = (60.0, 20.0, 10.0)) -> Results:
    """128, 256 and 512 MB whose compute costs the same (memory × billed ms held equal), p95
    falling with memory: the read-and-echo case where more memory is free."""
    return make_results(
        [
            make_step(index=1, memory=128, median_ms=fast[0], billed_ms=20.0, seed=seed),
            make_step(index=2, memory=256, median_ms=fast[1], billed_ms=10.0, seed=seed),
            make_step(index=3, memory=512, median_ms=fast[2], billed_ms=5.0, seed=seed),
        ],
        thresholds={"p95_ms": 3000},
    )


def test_given_settings_that_cost_the_same_then_the_clearly_faster_is_the_pick() -> None:
    analysis = analyse(tied_mix())
    verdict = run_verdict(analysis)

    assert verdict.recommended_mb == 512
    assert verdict.decided_by == "latency among equal costs"
    assert verdict.equivalent == ["128", "256", "512"]
    assert {pair.relation for pair in verdict.cost_differences} == {"same"}
    headline = verdict.headline
    assert headline.startswith("Run 512 MB: 128–512 MB cost the same ($"), headline
    assert "512 MB has the lowest p95" in headline and "More memory is free here." in headline
    assert verdict.confidence.pick_share is not None and verdict.confidence.pick_share >= 0.9
    assert verdict.exit_code == 0


def test_given_equal_costs_and_no_clearly_faster_setting_then_the_smallest_is_the_pick() -> None:
    verdict = run_verdict(analyse(tied_mix(fast=(20.0, 20.0, 20.0))))

    assert verdict.decided_by == "smallest among equals"
    assert verdict.recommended_mb == 128
    assert "none is clearly faster" in verdict.headline
    assert verdict.exit_code == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_given_identical_runs_of_a_tied_mix_then_the_pick_is_the_same(seed: int) -> None:
    # GIVEN two runs of the same mix, measured apart (other random draws)
    a, b = (run_verdict(analyse(tied_mix(seed=s))) for s in (seed, seed + 10))
    # THEN a fraction of a cent no longer chooses the size
    assert (a.recommended_mb, a.decided_by) == (b.recommended_mb, b.decided_by)


def test_given_a_clear_cost_difference_then_cost_decides() -> None:
    # 1024 MB billing 40 ms costs $0.67 per 1M more than 128 MB billing 40 ms: 15 % of the bill
    results = make_results(
        [
            make_step(index=1, memory=128, median_ms=30.0, billed_ms=40.0),
            make_step(index=2, memory=1024, median_ms=10.0, billed_ms=40.0),
        ],
        thresholds={"p95_ms": 3000},
    )
    verdict = run_verdict(analyse(results))

    assert verdict.decided_by == "cost" and verdict.recommended_mb == 128
    assert verdict.equivalent == ["128"]
    (pair,) = verdict.cost_differences
    assert pair.relation == "different" and pair.low > pair.margin
    assert verdict.costs["128"].low is not None and verdict.costs["128"].high is not None
    assert verdict.costs["128"].low <= verdict.costs["128"].value <= verdict.costs["128"].high


def test_given_a_cost_difference_then_same_different_or_undetermined_by_its_interval() -> None:
    settings = analyse(tied_mix()).settings
    small, _, large = settings
    # The same within the practical margin, or when the interval holds zero
    assert cost_difference(small, large, 0.5).relation == "same"
    # A margin of 0 leaves only "holds zero": still the same (equal compute)
    assert cost_difference(small, large, 0.0).relation == "same"

    results = make_results(
        [
            make_step(index=1, memory=128, median_ms=30.0, billed_ms=40.0, billed_noise=0.4),
            make_step(index=2, memory=160, median_ms=30.0, billed_ms=40.0, billed_noise=0.4),
        ]
    )
    a, b = analyse(results).settings
    d = cost_difference(a, b, 0.15)
    # 160 MB costs 0.4 % more (a noisy estimate): above zero, straddling the 0.15 % margin
    assert d.low > 0 or d.relation == "same"
    if d.low > 0:
        assert d.relation in ("undetermined", "different")


def test_given_per_second_batches_then_the_mean_has_an_interval_that_widens_with_their_spread() -> (
    None
):
    steady = [[Batch(10, 20.0) for _ in range(12)]]
    noisy = [[Batch(10, 20.0 + (4.0 if t % 2 else -4.0)) for t in range(12)]]
    quiet, loud = mean_interval(steady), mean_interval(noisy)
    assert quiet is not None and loud is not None
    assert quiet.low == quiet.high == 20.0
    assert loud.low < 20.0 < loud.high
    assert mean_interval([[Batch(10, 20.0)]]) is None  # one second: no noise known


def test_given_a_window_of_a_few_requests_then_not_enough_data_and_exit_3() -> None:
    results = make_results(
        [
            make_step(index=1, memory=128, median_ms=30.0, requests=12),
            make_step(index=2, memory=1024, median_ms=10.0, requests=12),
        ],
        thresholds={"p95_ms": 3000},
    )
    analysis = analyse(results)
    verdict = run_verdict(analysis)

    assert verdict.recommended_mb is None and verdict.exit_code == 3 == exit_code(analysis)
    assert verdict.headline.startswith("No recommendation: 128 MB has not enough data: 12 ")
    assert verdict.confidence.level == "not enough data"
    assert any("Measure longer" in line for line in analysis.recommendation.explanation)


def test_given_errors_and_no_error_threshold_then_the_default_applies() -> None:
    results = make_results(
        [
            make_step(index=1, memory=128, median_ms=30.0, failures=200),
            make_step(index=2, memory=1024, median_ms=10.0),
        ],
        thresholds={"p95_ms": 3000},
    )
    analysis = analyse(results)
    small = analysis.settings[0]

    (errors,) = [v for v in small.verdicts if v.name.startswith("errors")]
    assert errors.name == f"errors ≤ {DEFAULT_ERROR_RATE:.2%} (default)" and not errors.passed
    assert run_verdict(analysis).recommended_mb == 1024


def test_given_a_schema_3_file_then_it_is_read_and_its_verdict_rederived(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_results(tied_mix(), path)
    data = json.loads(path.read_text())
    data["schema_version"] = 3
    for step in data["steps"]:
        del step["invocations"]["warm_billed_by_second"]
    path.write_text(json.dumps(data))

    analysis = analyse(read_results(path))

    assert all(s.cost_estimate is None for s in analysis.settings)  # no per-second billing
    assert run_verdict(analysis).decided_by == "latency among equal costs"  # by the margin


# --- until: confident: which settings stay open after a look -----------------------------------


def test_given_more_looks_then_each_look_judges_with_wider_intervals() -> None:
    assert look_widening(1) == pytest.approx(1.0, abs=1e-3)
    assert 1.0 < look_widening(6) < look_widening(12) < 1.7
    # README.md's figure for the main job's 12 looks is this one
    readme = " ".join((PROJECT_ROOT / "README.md").read_text(encoding="utf-8").split())
    assert f"×{look_widening(12):.2f} for 12" in readme


def test_given_clearly_separated_settings_then_nothing_is_left_open() -> None:
    results = make_results(
        [
            make_step(index=1, memory=128, median_ms=30.0, billed_ms=40.0),
            make_step(index=2, memory=1024, median_ms=10.0, billed_ms=40.0),
        ],
        thresholds={"p95_ms": 3000},
    )
    assert still_open(analyse(results), looks=6) == {}


def test_given_a_threshold_inside_the_interval_then_that_setting_stays_open_and_says_why() -> None:
    step = make_step(index=1, memory=512, median_ms=20, requests=300)
    assert step.latency.p95 is not None
    analysis = analyse(make_results([step], thresholds={"p95_ms": step.latency.p95}))
    (why,) = still_open(analysis, looks=6).values()
    assert why.startswith("p95 ≤ ") and why.endswith("its interval straddles the limit")


def test_given_two_settings_of_the_same_cost_and_close_speed_then_both_stay_open() -> None:
    # Equal compute (memory × billed held equal), p95 8 % apart: neither separated nor
    # within the 10 % margin at the look's level
    results = make_results(
        [
            make_step(index=1, memory=256, median_ms=21.0, billed_ms=10.0, requests=300),
            make_step(index=2, memory=512, median_ms=19.5, billed_ms=5.0, requests=300),
        ],
        thresholds={"p95_ms": 3000},
    )
    reasons = still_open(analyse(results), looks=6)
    assert set(reasons) == {s.point for s in analyse(results).settings}
    assert all("p95: not yet separated" in why for why in reasons.values())


def test_given_a_short_window_then_it_stays_open_for_data() -> None:
    results = make_results(
        [make_step(index=1, memory=128, median_ms=30.0, requests=12)],
        thresholds={"p95_ms": 3000},
    )
    assert list(still_open(analyse(results), looks=6).values()) == ["not enough data yet"]


def test_given_three_settings_then_every_pair_has_its_cost_difference_the_rules_first() -> None:
    verdict = run_verdict(analyse(tied_mix()))
    pairs = [(pair.a, pair.b) for pair in verdict.cost_differences]
    assert len(pairs) == 3 and len({frozenset(p) for p in pairs}) == 3
    cheapest = pairs[0][0]
    assert pairs[0][0] == pairs[1][0] == cheapest  # the rule's: the cheapest against each other


CONFIDENT = {"until": "confident", "round_s": 10, "min_s": 10, "max_s": 120}  # 12 looks


def test_given_a_confident_run_then_the_verdict_judges_cost_as_its_looks_did() -> None:
    # GIVEN 146 MB billing as long as 128 MB: 0.65 % dearer, measured with some noise. A plain
    # 95 % interval excludes zero and straddles the 0.5 % margin; widened for 12 looks it
    # holds zero
    steps = [
        make_step(index=1, memory=128, median_ms=30.0, billed_ms=40.0, billed_noise=0.1),
        make_step(index=2, memory=146, median_ms=30.0, billed_ms=40.0, billed_noise=0.1),
    ]
    fixed = run_verdict(analyse(make_results(steps, thresholds={"p95_ms": 3000})))
    confident_analysis = analyse(make_results(steps, thresholds={"p95_ms": 3000}, sweep=CONFIDENT))
    confident = run_verdict(confident_analysis)
    (plain,), (widened,) = fixed.cost_differences, confident.cost_differences

    # THEN the confident verdict's interval is the looks' (×look_widening(12)), and it says
    # what a look over the same data says: the same cost, nothing open about cost
    assert widened.high - widened.value == pytest.approx(
        look_widening(12) * (plain.high - plain.value)
    )
    assert (plain.relation, fixed.decided_by) == ("undetermined", "cost")
    assert (widened.relation, confident.decided_by) == ("same", "smallest among equals")
    assert not [why for why in still_open(confident_analysis, looks=12).values() if "cost" in why]


def test_given_a_look_then_next_round_measures_the_open_reopens_the_stopped_and_stops_at_max() -> (
    None
):
    a, b, c, d = (Point(memory_mb=m) for m in (128, 256, 512, 1024))
    plan = next_round(
        [a, b, c, d],
        [a, b, d],  # c stopped in an earlier round
        {a: 20.0, b: 20.0, c: 10.0, d: 40.0},
        {b: "256 MB vs 512 MB cost: not yet separated", c: "256 MB vs 512 MB cost: ...", d: "x"},
        min_s=30,
        round_s=10,
        max_s=40,
    )
    # a: nothing open but under min_s; b: open; c: open again, though it had stopped; d: open,
    # but another round would pass max_s
    assert plan.measured == [a, b, c]
    assert plan.reopened == [c]
    assert plan.still_open[a] == "under min_s (20 of 30 s measured)"
    assert plan.stopped == {d: "max_s reached (40 s); still open: x"}
    assert plan.open_at_max == {d: "x"} and plan.at_max
    settled = next_round([a], [a], {a: 30.0}, {}, min_s=30, round_s=10, max_s=40)
    assert (settled.measured, settled.stopped) == ([], {a: "settled after 30 s"})


def test_given_twins_with_noisy_costs_then_resamples_keep_them_tied_and_the_smallest_picked() -> (
    None
):
    # Identical compute, noisy billing: a resample's costs land apart by more than the 0.5 %
    # margin often (tying only within the margin, 128 MB was picked in 87 % of resamples: too
    # close to call between twins), but within what the run's own interval calls the same
    steps = [
        make_step(index=1, memory=128, median_ms=20.0, billed_ms=40.0, billed_noise=0.4),
        make_step(index=2, memory=256, median_ms=20.0, billed_ms=20.0, billed_noise=0.4),
    ]
    verdict = run_verdict(analyse(make_results(steps, thresholds={"p95_ms": 3000})))
    assert verdict.decided_by == "smallest among equals" and verdict.recommended_mb == 128
    assert verdict.confidence.pick_share is not None and verdict.confidence.pick_share >= 0.9


def test_given_two_sizes_tied_for_fastest_then_the_smaller_of_them_not_the_smallest_of_all() -> (
    None
):
    # 128 MB slow; 512 and 1024 MB as fast as each other, both clearly faster; equal compute
    results = make_results(
        [
            make_step(index=1, memory=128, median_ms=60.0, billed_ms=40.0),
            make_step(index=2, memory=512, median_ms=10.0, billed_ms=10.0, seed=1),
            make_step(index=3, memory=1024, median_ms=10.0, billed_ms=5.0, seed=2),
        ],
        thresholds={"p95_ms": 3000},
    )
    verdict = run_verdict(analyse(results))
    assert verdict.decided_by == "latency among equal costs"
    assert verdict.recommended_mb == 512, verdict.headline
    assert "512 MB and 1024 MB are the fastest, not clearly apart" in verdict.headline
    assert "512 MB is the smallest of them" in verdict.headline


def test_given_rounds_that_drift_together_then_p95s_are_compared_round_by_round() -> None:
    # GIVEN 256 MB 20 % faster than 128 MB in each of 4 rounds, while the host's drift moves
    # both by up to 3x from round to round
    steps = [
        make_step(index=i * 2 + j, memory=m, median_ms=level * ms, repeat=i + 1, seed=i * 2 + j)
        for i, level in enumerate((1.0, 3.0, 1.5, 2.5))
        for j, (m, ms) in enumerate(((128, 10.0), (256, 8.0)))
    ]
    slow, fast = analyse(make_results(steps, thresholds={"p95_ms": 3000})).settings
    # THEN the pooled histograms cannot tell them apart, the rounds can
    pooled = compare_many(
        slow.histogram, fast.histogram, ["p95"], deff_a=slow.deff, deff_b=fast.deff
    )
    assert not pooled["p95"].significant
    assert len(paired_rounds(slow, fast)) == 4
    difference = p95_difference(slow, fast)
    assert difference is not None and difference.high < 0
    assert clearly_faster(fast, [slow])


def test_given_sizes_as_fast_as_each_other_then_a_look_stops_them_when_separating_is_futile() -> (
    None
):
    # GIVEN 512 and 1024 MB of equal cost whose p95s trade places round by round (±15-20 %):
    # 4 rounds of 12 cannot tell them apart, nor show them within 10 % of each other
    medians = [(10.0, 12.0), (12.0, 10.0), (10.0, 11.5), (11.5, 10.0)]
    steps = [
        make_step(index=2 * r + i, memory=m, median_ms=ms, billed_ms=b, repeat=r + 1, seed=r)
        for r, pair in enumerate(medians)
        for i, (m, ms, b) in enumerate(zip((512, 1024), pair, (10.0, 5.0), strict=True))
    ]
    analysis = analyse(make_results(steps, thresholds={"p95_ms": 3000}, sweep=CONFIDENT))
    a, b = analysis.settings
    paired = paired_ratio(a, b)
    assert paired is not None and paired.rounds == 4
    difference = p95_difference(a, b, widening=look_widening(12))
    assert difference is not None and difference.low < -0.1 * a.p95 and difference.high > 0
    # THEN nothing is left open at 12 looks: at this spread, a mean this close to zero would
    # not clear the last look's half-width; with 4 looks left it would have been open
    assert still_open(analysis, looks=12) == {}
    last_look = set(still_open(analysis, looks=4).values())
    assert len(last_look) == 1 and last_look.pop().endswith(" p95: not yet separated")


def with_decision(results: Results, **decision: float) -> Results:
    """The same results under other decision margins (as if the scenario had set them)."""
    scenario = results.scenario
    changed = scenario.decision.model_copy(update=decision)
    return results.model_copy(
        update={"scenario": scenario.model_copy(update={"decision": changed})}
    )


def near_pair(*, rounds: int = 1, requests: int = 8000) -> Results:
    """256 and 512 MB of equal compute whose p95s are 5 % apart (512 MB the faster): the
    six-size sweep's case, 5.7 vs 5.4 ms, scaled."""
    steps = [
        make_step(
            index=2 * r + i,
            memory=m,
            median_ms=ms,
            billed_ms=b,
            repeat=r + 1,
            seed=r,
            requests=requests,
        )
        for r in range(rounds)
        for i, (m, ms, b) in enumerate(((256, 10.5, 10.0), (512, 10.0, 5.0)))
    ]
    return make_results(steps, thresholds={"p95_ms": 3000}, sweep=CONFIDENT if rounds > 1 else None)


def test_given_equal_costs_and_p95s_inside_the_speed_margin_then_the_smallest_is_picked() -> None:
    # GIVEN 512 MB's p95 measurably (its interval clear of zero) but only 5 % below 256 MB's
    results = near_pair()
    analysis = analyse(results)
    slow, fast = analysis.settings
    difference = p95_difference(fast, slow)
    assert difference is not None and difference.low > 0 and difference.high < 0.1 * fast.p95
    # THEN within the default 10 % margin they are as fast: the smaller is the pick
    verdict = run_verdict(analysis)
    assert (verdict.recommended_mb, verdict.decided_by) == (256, "smallest among equals")
    assert "none is clearly faster" in verdict.headline
    # AND with no margin the faster is clearly faster, and the pick
    strict = run_verdict(
        analyse(with_decision(results, latency_tolerance_pct=0.0, latency_tolerance_ms=0.0))
    )
    assert (strict.recommended_mb, strict.decided_by) == (512, "latency among equal costs")
    # AND the floor in ms alone also makes them as fast (a 0.8 ms gap under a 2 ms floor)
    floor = run_verdict(
        analyse(with_decision(results, latency_tolerance_pct=0.0, latency_tolerance_ms=2.0))
    )
    assert floor.recommended_mb == 256


def test_given_p95s_inside_the_speed_margin_then_a_look_stops_them_once_it_is_out_of_reach() -> (
    None
):
    # GIVEN 4 rounds of 1000 requests each: 512 MB about 5 % faster, round after round, not
    # yet separated from zero at the look's level
    results = near_pair(rounds=4, requests=1000)
    # THEN the margin cannot be cleared by max_s at this spread: nothing is open
    assert still_open(analyse(results), looks=12) == {}
    # AND with no margin, separating the two from zero is still within reach: both open
    strict = with_decision(results, latency_tolerance_pct=0.0, latency_tolerance_ms=0.0)
    reasons = still_open(analyse(strict), looks=12)
    assert len(reasons) == 2 and all(" p95: not yet separated" in why for why in reasons.values())


def test_given_a_confident_run_that_hit_max_s_with_a_question_open_then_the_verdict_says_so() -> (
    None
):
    from runner.results import RoundRecord

    # GIVEN a confident run whose last round stopped both settings at max_s, p95 still open
    results = near_pair(rounds=3, requests=300)
    why = "max_s reached (30 s); still open: 512 MB vs 256 MB p95: not yet separated"
    still = "512 MB vs 256 MB p95: not yet separated"
    results.rounds = [
        RoundRecord(
            round=3,
            measured=["256 MB", "512 MB"],
            stopped={"256 MB": why, "512 MB": why},
            open_at_max={"256 MB": still, "512 MB": still},
        )
    ]
    # THEN the confidence line (the terminal, summary.md, the report) names what was left open
    verdict = run_verdict(analyse(results))
    statement = verdict.confidence.statement
    assert (
        "Stopped at max_s (120 s per setting) with this still open: 256 MB: 512 MB vs 256 MB "
        in (statement)
    )
    assert statement.endswith("A longer sweep.max_s would settle it.")
    # AND a run that settled everything says nothing of it
    results.rounds = [
        RoundRecord(round=3, measured=["256 MB"], stopped={"256 MB": "settled after 30 s"})
    ]
    assert "max_s" not in run_verdict(analyse(results)).confidence.statement


def open_pair(ratios: tuple[float, ...]) -> Results:
    """128 and 512 MB of equal compute, 512 MB's p95 the given share of 128 MB's round by round
    (300 requests a round): a short confident run's case, stopped at max_s."""
    steps = [
        make_step(
            index=2 * r + i, memory=m, median_ms=ms, billed_ms=b, repeat=r + 1, seed=r, requests=300
        )
        for r, ratio in enumerate(ratios)
        for i, (m, ms, b) in enumerate(((128, 20.0, 20.0), (512, 20.0 * ratio, 5.0)))
    ]
    sweep = {"until": "confident", "round_s": 10, "min_s": 10, "max_s": 30}  # 3 looks
    return make_results(steps, thresholds={"p95_ms": 3000}, sweep=sweep)


def test_given_a_p95_comparison_left_open_at_max_s_then_the_pick_is_not_sure() -> None:
    # GIVEN 3 rounds in which 512 MB was 30-60 % faster than 128 MB at the same cost: too few,
    # and too spread, to show it clearly faster at the looks' level
    results = open_pair((0.4, 0.7, 0.5))
    slow, fast = analyse(results).settings
    assert speed_relation(fast, slow, SpeedMargin(), look_widening(3)) == "open"
    # THEN the rule alone would take the smallest, but a twin run separates them often enough
    # that it is too close to call, with what would settle it, computed from this run
    verdict = run_verdict(analyse(results))
    confidence = verdict.confidence
    assert verdict.recommended_mb is None
    assert confidence.level == "too close to call" and confidence.runner_up == "512 MB"
    assert confidence.pick_share is not None and confidence.pick_share < 0.9
    assert confidence.seconds_needed is not None and confidence.seconds_needed > 60
    assert "too close to call between 128 MB and 512 MB: at this noise, about" in (
        confidence.statement
    )
    # AND the same gap held steady over the rounds is settled: 512 MB, sure
    steady = run_verdict(analyse(open_pair((0.5, 0.6, 0.55))))
    assert (steady.recommended_mb, steady.confidence.level) == (512, "sure")


def test_given_a_comparison_given_up_as_futile_then_the_pick_stays_sure() -> None:
    # GIVEN 512 and 1024 MB trading places round by round: futility stopped them (the futile
    # test above), the interval of the difference open but centred on zero
    medians = [(10.0, 12.0), (12.0, 10.0), (10.0, 11.5), (11.5, 10.0)]
    steps = [
        make_step(index=2 * r + i, memory=m, median_ms=ms, billed_ms=b, repeat=r + 1, seed=r)
        for r, pair in enumerate(medians)
        for i, (m, ms, b) in enumerate(zip((512, 1024), pair, (10.0, 5.0), strict=True))
    ]
    # THEN a twin run would seldom show either clearly faster: the smaller is the pick, sure
    verdict = run_verdict(
        analyse(make_results(steps, thresholds={"p95_ms": 3000}, sweep=CONFIDENT))
    )
    assert (verdict.recommended_mb, verdict.confidence.level) == (512, "sure")
