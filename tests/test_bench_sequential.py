"""bench/sequential.py's synthetic runs: the streams are read by the analysis as a run's, the
truths cost what the analysis says they cost, and a verdict is judged against its truth as
the bench states. Behaviour only: the bench itself measures rates and times."""

from __future__ import annotations

import pytest

from bench.sequential import (
    QUICK_SHAPE,
    Run,
    StreamBuilder,
    Synthetic,
    Trial,
    cost_per_million,
    empty_results,
    judge,
    run_trial,
    synthetic_scenario,
    truths,
)
from runner.analysis import analyse
from runner.results import Confidence, RoundRecord, RunVerdict


def test_given_a_built_step_when_analysed_then_its_cost_is_the_bench_pricing() -> None:
    setting = Synthetic(512, 20.0, 20.0)
    results = empty_results(synthetic_scenario([512], QUICK_SHAPE))
    step = StreamBuilder(seed=1).step(setting, seconds=QUICK_SHAPE.round_s, repeat=1)
    results.steps.append(step)

    analysed = analyse(results).settings[0]

    billed = step.invocations.warm_billed_ms_total / step.invocations.count
    assert analysed.cost.total == pytest.approx(cost_per_million(Synthetic(512, 20.0, billed)))
    assert analysed.cost_estimate is not None  # per-second billing gives the cost an interval
    assert len(step.timeline) == QUICK_SHAPE.round_s


def test_given_the_truths_then_a_b_and_d_cost_the_same_and_c_differs_by_3_percent() -> None:
    a, b, c, d = truths()

    for tie in (a, b, d):
        assert cost_per_million(tie.settings[0]) == pytest.approx(cost_per_million(tie.settings[1]))
    assert d.right_pick == d.settings[0].memory_mb  # inside the speed margin: the smaller
    dear, cheaper = (cost_per_million(s) for s in c.settings)
    assert dear / cheaper == pytest.approx(1.03)
    assert c.right_pick == c.settings[1].memory_mb  # the larger is the cheaper


def _trial(pick: int | None, rule: str | None, level: str = "sure") -> Trial:
    verdict = RunVerdict(
        recommended_mb=pick,
        met={"512": True, "1024": True},
        confidence=Confidence(level=level, statement=""),
        headline="",
        decided_by=rule if pick is not None else None,
    )
    return Trial(seed=0, verdict=verdict, rule=rule, measured_s={512: 10, 1024: 10}, at_max=False)


def test_given_a_tie_when_one_twin_is_called_clearly_faster_then_it_is_a_wrong_order() -> None:
    tie = truths()[1]

    judged = judge(tie, _trial(1024, "latency among equal costs"))

    assert judged.wrong_pick and judged.wrong_order


def test_given_a_tie_when_too_close_to_call_or_the_smallest_then_nothing_is_wrong() -> None:
    tie = truths()[1]

    for trial in (_trial(None, "smallest among equals", "too close to call"),
                  _trial(512, "smallest among equals")):  # fmt: skip
        judged = judge(tie, trial)
        assert not judged.wrong_pick and not judged.wrong_order


def test_given_a_cost_difference_when_called_a_tie_then_pick_and_order_are_wrong() -> None:
    cost = truths()[2]

    judged = judge(cost, _trial(512, "smallest among equals"))

    assert judged.wrong_pick and judged.wrong_order


def test_given_truth_c_when_run_in_rounds_then_cost_picks_the_cheaper() -> None:
    cost = truths()[2]

    trial = run_trial(cost, seed=3, shape=QUICK_SHAPE)

    assert (trial.pick, trial.rule) == (1024, "cost")
    assert all(seconds >= QUICK_SHAPE.min_s for seconds in trial.measured_s.values())
    assert 1 <= len(trial.look_s) <= QUICK_SHAPE.max_s // QUICK_SHAPE.round_s


def test_given_a_setting_kept_open_by_a_stopped_one_then_its_later_steps_are_counted() -> None:
    results = empty_results(synthetic_scenario([128, 512, 1024], QUICK_SHAPE))
    builder = StreamBuilder(seed=2)
    for memory, rounds in ((128, 4), (512, 2), (1024, 1)):
        for round_ in range(1, rounds + 1):
            step = builder.step(Synthetic(memory, 20.0, 10.0), seconds=10, repeat=round_)
            results.steps.append(step)
    with_512 = "512 MB vs 128 MB cost: not yet separated"
    with_1024 = "1024 MB vs 128 MB cost: not yet separated"
    results.rounds = [
        RoundRecord(
            round=1,
            measured=["128 MB", "512 MB", "1024 MB"],
            stopped={"1024 MB": "settled after 10 s"},
            still_open={"128 MB": with_512, "512 MB": with_512},  # both still measured
        ),
        RoundRecord(
            round=2,
            measured=["128 MB", "512 MB"],
            stopped={"512 MB": "settled after 20 s"},
            still_open={"128 MB": with_1024},  # 1024 MB stopped after round 1
        ),
        RoundRecord(round=3, measured=["128 MB"], still_open={"128 MB": with_512}),
        RoundRecord(round=4, measured=["128 MB"], stopped={"128 MB": "settled after 40 s"}),
    ]
    run = Run("r", results, 0, wall_s=60.0, launched_at=0.0, steal_share=0.0, others_cores=0.0)

    said = run.behind_stopped()

    assert said.startswith("2 of 7 steps (24 s of load")  # 128 MB's steps of rounds 3 and 4
    assert "r3 128 MB" in said and "1024 MB stopped after r1" in said
    assert "r4 128 MB" in said and "512 MB stopped after r2" in said
    assert run.beyond_first_round() == (
        "4 of 7 steps came after the first round: 128 MB 4 rounds (stopped: settled after 40 s); "
        "512 MB 2 rounds (stopped: settled after 20 s)"
    )
