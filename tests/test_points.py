"""The analysis across sweep points (memory and the axes beside it): settings per point, the
pairs it tests, what each axis moves, capacity per handler, the pick on every axis. In process,
synthetic steps."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from runner.analysis import PRICES_US_EAST_1, Analysis, analyse, run_verdict
from runner.analysis._axes import axis_effects, neighbours
from runner.results import Invocations, Results, Step
from tests.test_report import make_results, make_step

HANDLERS = ("handler.lambda_handler", "tutorial_handler.lambda_handler")


def point_step(index: int, memory: int, *, api: str, handler: str, median_ms: float) -> Step:
    step = make_step(
        index=index, memory=memory, median_ms=median_ms, billed_ms=median_ms - 2, requests=300
    )
    invocations = step.invocations
    if handler == HANDLERS[1]:  # the tutorial's original logs no capacity
        invocations = invocations.model_copy(
            update={"read_units": 0.0, "write_units": 0.0, "capacity_records": 0}
        )
    else:
        invocations = invocations.model_copy(update={"capacity_records": invocations.count})
    return step.model_copy(update={"api": api, "handler": handler, "invocations": invocations})


def whole_bill(thresholds: dict[str, Any] | None = None) -> Results:
    """2 sizes x 2 API types x 2 handlers: the tutorial's handler 3x slower (illustrative
    figures); the API types equally fast, so their cost differs by the price gap alone."""
    steps: list[Step] = []
    for handler in HANDLERS:
        for api in ("rest", "http"):
            for memory in (128, 1024):
                slow = 60.0 if memory == 128 else 12.0
                median = slow * (3 if handler == HANDLERS[1] else 1)
                steps.append(
                    point_step(len(steps) + 1, memory, api=api, handler=handler, median_ms=median)
                )
    results = make_results(steps, thresholds=thresholds or {"p95_ms": 400})
    sweep = results.scenario.sweep.model_copy(
        update={"api": ["rest", "http"], "handler": list(HANDLERS)}
    )
    results.scenario = results.scenario.model_copy(update={"sweep": sweep})
    return results


@functools.cache
def quick() -> Analysis:
    """The whole-bill run analysed without intervals, once per session (read-only)."""
    return analyse(whole_bill(), intervals=False)


def test_given_points_then_one_setting_each_in_the_scenarios_axis_order() -> None:
    analysis = quick()
    assert [s.label for s in analysis.settings] == [
        f"{memory} MB · {api} API · {handler}"
        for handler in HANDLERS
        for api in ("REST", "HTTP")
        for memory in (128, 1024)
    ]


def test_given_points_then_only_settings_that_differ_on_one_axis_are_compared() -> None:
    analysis = quick()
    pairs = neighbours(analysis.settings)
    assert len(pairs) == 4 + 4 + 4  # memory within each (api, handler); api and handler per rest
    for a, b in pairs:
        differing = [
            axis
            for axis in ("memory_mb", "api", "architecture", "handler")
            if getattr(a.point, axis) != getattr(b.point, axis)
        ]
        assert len(differing) == 1, (a.label, b.label)


def test_given_both_api_types_then_the_http_api_saves_the_price_gap_and_is_named_first() -> None:
    analysis = quick()
    effects = axis_effects(analysis.settings)
    gap = PRICES_US_EAST_1.api_gateway_rest_per_million - 1.00
    assert effects[0].axis == "api" and effects[0].cost_delta == pytest.approx(-gap)
    assert effects[0].cost_words() == "HTTP API instead of REST API saves $2.50 per 1M"
    memory = next(e for e in effects if e.axis == "memory_mb")
    assert memory.change == "128 MB → 1024 MB" and memory.pairs == 4
    assert memory.cost_words().startswith("128 MB → 1024 MB changes it by ")
    explanation = analysis.recommendation.explanation
    sentence = next(line for line in explanation if line.startswith("What moves the bill: "))
    assert sentence.startswith("What moves the bill: HTTP API instead of REST API saves $2.50")
    # measured on the local stack: the API types' latency is the emulator's, and it says so
    assert "the emulator's fronts, not API Gateway's" in explanation[-1]
    assert "What moves latency most: " in sentence and "128 MB → 1024 MB: p95 " in sentence


def test_given_a_handler_that_logs_no_capacity_then_it_is_priced_with_the_others_units() -> None:
    analysis = quick()
    by_label = {s.label: s for s in analysis.settings}
    hardened = by_label[f"128 MB · REST API · {HANDLERS[0]}"].cost
    tutorial = by_label[f"128 MB · REST API · {HANDLERS[1]}"].cost
    # Never $0 of DynamoDB (which would make the tutorial's handler look cheaper): the same
    # requests on the same table, marked as an estimate.
    assert tutorial.dynamodb == pytest.approx(hardened.dynamodb) and tutorial.dynamodb > 0
    assert tutorial.estimated and "from the other handler's logs" in tutorial.basis
    assert "other handler" not in hardened.basis


def test_given_a_pick_then_the_verdict_names_every_axis_beside_recommended_mb() -> None:
    analysis = analyse(whole_bill())
    verdict = run_verdict(analysis)
    assert verdict.recommended is not None
    assert verdict.recommended.model_dump() == {
        "memory_mb": verdict.recommended_mb,
        "api": "http",
        "architecture": "x86_64",
        "handler": analysis.recommendation.cheapest.point.handler,  # type: ignore[union-attr]
    }
    assert len(verdict.met) == 8 and all(" MB · " in key for key in verdict.met)
    assert verdict.headline.startswith(f"Run {verdict.recommended_mb} MB · HTTP API · ")


def test_given_a_memory_only_run_then_labels_and_met_keys_are_as_before() -> None:
    results = make_results(
        [
            make_step(index=1, memory=128, median_ms=60.0, billed_ms=55.0),
            make_step(index=2, memory=1024, median_ms=12.0, billed_ms=8.0),
        ],
        thresholds={"p95_ms": 400},
    )
    analysis = analyse(results, intervals=False)
    verdict = run_verdict(analysis)
    assert [s.label for s in analysis.settings] == ["128 MB", "1024 MB"]
    assert set(verdict.met) == {"128", "1024"} and analysis.effects[0].axis == "memory_mb"
    assert verdict.recommended is not None and verdict.recommended.api == "rest"
    assert verdict.headline.startswith("Run 128 MB: ")
    assert not any(line.startswith("What moves") for line in analysis.recommendation.explanation)


def test_given_a_schema_2_step_without_capacity_records_then_its_units_count_all_calls() -> None:
    step = make_step(index=1, memory=128, median_ms=60.0, billed_ms=55.0)
    assert step.invocations.capacity_records is None  # as a schema 2 file reads
    results = make_results([step])
    cost = analyse(results, intervals=False).settings[0].cost
    invocations: Invocations = step.invocations
    per_request = invocations.read_units / invocations.count
    assert cost.dynamodb == pytest.approx(per_request * PRICES_US_EAST_1.dynamodb_per_million_rru)
