"""A run's `Results` into its `Analysis`: the settings pooled from the steps, their
comparisons, the recommendation and how sure it is (runner/analysis/_verdict.py), what each
swept axis moves (_axes.py).

Repeats of one point are pooled: their histograms are merged and their invocations summed.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from runner.analysis._axes import axis_effects, effects_sentence, neighbours, point_order
from runner.analysis._cost import CostPerMillion, cold_start_cost, cost_per_million
from runner.analysis._setting import FunctionSide, Setting
from runner.analysis._stats import (
    Batch,
    Estimate,
    bootstrap_many,
    compare_many,
    design_effect,
    latency,
    mean_interval,
    variance_ms2,
)
from runner.analysis._verdict import (
    COMPARED_STATISTICS,
    ESTIMATED_STATISTICS,
    MIN_WINDOW_REQUESTS,
    MIN_WINDOW_S,
    Analysis,
    Comparison,
    how_sure,
    open_at_max,
    recommend,
    speed_margin,
    verdict_widening,
    verdicts,
)
from runner.hdr import merge
from runner.lambda_facts import DEFAULT_API, Architecture
from runner.results import DegradedStep, Results, Step
from runner.scenario import ClosedLoad, Point, Scenario, Thresholds, point_label


def analyse(results: Results, *, intervals: bool = True) -> Analysis:
    """intervals=False skips the bootstrap (intervals, significance): the exit code needs
    only the point figures, and the report computes the rest once."""
    scenario = results.scenario
    thresholds = scenario.thresholds
    architecture: Architecture = "arm64" if results.target.architecture == "arm64" else "x86_64"
    by_point: dict[Point, list[Step]] = {}
    for step in results.steps:
        by_point.setdefault(step.point, []).append(step)
    units = _units_by_handler(results.steps)
    settings = [
        _setting(
            point,
            steps,
            thresholds=thresholds,
            architecture=architecture,
            units=units[point.handler],
            intervals=intervals,
        )
        for point, steps in sorted(
            by_point.items(), key=lambda item: point_order(item[0], scenario)
        )
    ]
    comparisons = [
        Comparison(a.label, b.label, difference)
        for a, b in (neighbours(settings) if intervals else [])
        for difference in compare_many(
            a.histogram, b.histogram, COMPARED_STATISTICS, deff_a=a.deff, deff_b=b.deff
        ).values()
    ]
    # An open model always has a threshold: the drop rate (scenario.Thresholds).
    thresholds_set = _any_threshold(thresholds) or any(s.offered is not None for s in settings)
    tolerance_pct = scenario.decision.cost_tolerance_pct
    widening = verdict_widening(scenario)
    speed = speed_margin(scenario)
    recommendation = recommend(
        settings,
        thresholds_set=thresholds_set,
        tolerance_pct=tolerance_pct,
        speed=speed,
        widening=widening,
    )
    effects = axis_effects(settings)
    if len(effects) > 1:  # which axis matters is the news when more than memory moved
        recommendation.explanation.append(effects_sentence(effects))
    if results.target.kind == "local" and any(e.axis == "api" for e in effects):
        recommendation.explanation.append(
            "On the local stack the two API types' latency is the emulator's fronts, not API "
            "Gateway's (their prices are AWS's): measure on AWS before choosing on latency."
        )
    confidence = (
        how_sure(
            settings,
            recommendation,
            thresholds,
            tolerance_pct=tolerance_pct,
            speed=speed,
            widening=widening,
        )
        if intervals
        else None
    )
    left_open = open_at_max(results)
    if confidence is not None and left_open:
        confidence = confidence.model_copy(
            update={"statement": f"{confidence.statement} {left_open}"}
        )
    if confidence is not None and confidence.level == "too close to call":
        # No pick rests on a coin toss: the rule's choice is kept as the explanation's subject.
        recommendation = replace(
            recommendation,
            cheapest=None,
            too_close=True,
            headline=f"No recommendation: {confidence.too_close[0]}.",
            explanation=[
                f"The rule would run {recommendation.headline.removeprefix('Run ')}",
                confidence.statement,
                *recommendation.explanation,
            ],
        )
    return Analysis(
        results=results,
        settings=settings,
        recommendation=recommendation,
        comparisons=comparisons,
        thresholds=thresholds,
        architecture=architecture,
        warmup_s=scenario.sweep.warmup_s,
        stage_ends_s=_stage_ends(scenario),
        confidence=confidence,
        effects=effects,
    )


def _any_threshold(thresholds: Thresholds) -> bool:
    # max_drop_rate always has a value: it guards every open-model run, set or not.
    return bool(thresholds.model_dump(exclude_none=True, exclude={"max_drop_rate"}))


def _stage_ends(scenario: Scenario) -> list[float]:
    """Where the closed model's stages end, in seconds from the load's start (none for an open
    model: one rate throughout)."""
    if not isinstance(scenario.load, ClosedLoad):
        return []
    return list(itertools.accumulate(stage.duration_s for stage in scenario.load.stages))


Units = tuple[float, float]  # DynamoDB read and write units per request


def _units_per_request(steps: Sequence[Step]) -> Units | None:
    """DynamoDB read and write units per invocation, pooled over these steps' invocations
    that logged them.

    Memory size cannot change the capacity a request consumes; per-setting figures differ
    only by which requests the random mix happened to draw, and that noise must not move
    the cost ranking. (A handler can change it: the caller pools per handler.)
    """
    logged = [
        (inv, inv.capacity_records if inv.capacity_records is not None else inv.count)
        for inv in (step.invocations for step in steps)
    ]
    count = sum(n for _, n in logged)
    if not count:
        return None
    reads = sum(inv.read_units for inv, n in logged if n)
    writes = sum(inv.write_units for inv, n in logged if n)
    return reads / count, writes / count


def _units_by_handler(steps: Sequence[Step]) -> dict[str | None, tuple[Units | None, bool]]:
    """Each handler's units per request, and whether they are borrowed: a handler that logs
    no capacity (the tutorial's original) is priced with the others' (the same requests on
    the same table), marked as an estimate, never as $0, which would make it look cheaper."""
    handlers = list(dict.fromkeys(step.handler for step in steps))
    pooled = _units_per_request(steps)
    out: dict[str | None, tuple[Units | None, bool]] = {}
    for handler in handlers:
        own = _units_per_request([step for step in steps if step.handler == handler])
        out[handler] = (own, False) if own is not None else (pooled, pooled is not None)
    return out


def _setting(
    point: Point,
    steps: list[Step],
    *,
    thresholds: Thresholds,
    architecture: Architecture,
    units: tuple[Units | None, bool],
    intervals: bool,
) -> Setting:
    histogram = merge(step.histogram for step in steps)
    requests = sum(step.requests for step in steps)
    deff = (
        design_effect(
            [[Batch(s.requests, s.mean_ms) for s in step.timeline] for step in steps],
            variance_ms2(histogram),
        )
        if intervals
        else 1.0
    )
    estimates = bootstrap_many(histogram, ESTIMATED_STATISTICS, deff=deff) if intervals else {}
    function = _function_side(steps)
    durations = _function_durations(steps, intervals=intervals)
    summary = latency(histogram)
    invocations = [step.invocations for step in steps]
    warm_count = sum(inv.count - inv.cold_starts for inv in invocations)
    warm_billed = (
        sum(inv.warm_billed_ms_total for inv in invocations) / warm_count
        if warm_count > 0
        else None
    )
    offered = [step.offered for step in steps if step.offered is not None]
    memory = point.memory_mb
    architecture = point.architecture or architecture
    per_request, borrowed = units

    def cost_at(billed_ms_mean: float | None) -> CostPerMillion:
        return cost_per_million(
            memory_mb=memory,
            billed_ms_mean=billed_ms_mean,
            read_units_per_request=per_request[0] if per_request else None,
            write_units_per_request=per_request[1] if per_request else None,
            duration_ms_fallback=summary.mean,
            architecture=architecture,
            api=point.api or DEFAULT_API,
        )

    cost = cost_at(warm_billed if warm_billed is not None else function.billed_ms_mean)
    billed = mean_interval(
        [
            [Batch(s.count, s.billed_ms / s.count) for s in inv.warm_billed_by_second if s.count]
            for inv in invocations
        ]
    )
    # Cost is linear in the mean billed duration: its interval maps straight onto the bill.
    cost_estimate = (
        Estimate(cost.total, cost_at(max(0.0, billed.low)).total, cost_at(billed.high).total)
        if billed is not None and warm_billed is not None
        else None
    )
    if borrowed:
        cost = replace(
            cost,
            estimated=True,
            basis=cost.basis + "; DynamoDB units from the other handler's logs (this one logs "
            "none)",
        )
    setting = Setting(
        point=point,
        steps=steps,
        requests=requests,
        failures=sum(step.failures for step in steps),
        measured_s=sum(max(0.0, step.window_end - step.window_start) for step in steps),
        dropped_arrivals=sum(step.dropped_arrivals for step in steps),
        offered=sum(offered) if offered else None,
        latency=summary,
        histogram=histogram,
        estimates=estimates,
        function=function,
        deff=deff,
        **durations,
        # Steady state: what the size costs once warm. A cold start or two more or less in
        # a short window must not decide the ranking; they are priced apart, below.
        cost=cost,
        cost_estimate=cost_estimate,
        cold=cold_start_cost(
            memory_mb=memory,
            cold_starts=function.cold_starts,
            requests=requests,
            cold_billed_ms_total=sum(inv.cold_billed_ms_total for inv in invocations),
            warm_billed_ms_mean=warm_billed,
            architecture=architecture,
        ),
        problems=[problem.detail for step in steps for problem in step.problems],
        degraded=[
            DegradedStep(
                step=step.index,
                memory_mb=memory,
                label=point_label(point),
                cause="; ".join(step.trust.causes),
            )
            for step in steps
            if step.trust.degraded
        ],
    )
    if not requests:
        setting.problems.append("no requests were measured")
    elif requests < MIN_WINDOW_REQUESTS or setting.measured_s < MIN_WINDOW_S:
        setting.short_of_data = (
            f"{requests} request(s) over {setting.measured_s:.1f} s measured; its p95 and "
            f"intervals need at least {MIN_WINDOW_REQUESTS} requests over {MIN_WINDOW_S:g} s"
        )
    setting.verdicts = verdicts(setting, thresholds)
    return setting


def _function_side(steps: Sequence[Step]) -> FunctionSide:
    seen = [step.invocations for step in steps if step.invocations.count]
    count = sum(inv.count for inv in seen)
    cold = sum(inv.cold_starts for inv in seen)

    def weighted(values: list[tuple[float | None, int]]) -> float | None:
        pairs = [(value, weight) for value, weight in values if value is not None and weight]
        total = sum(weight for _, weight in pairs)
        return sum(value * weight for value, weight in pairs) / total if total else None

    memory_used = [inv.max_memory_used_mb for inv in seen if inv.max_memory_used_mb is not None]
    inits = [inv.init_ms_max for inv in seen if inv.init_ms_max is not None]
    warm_p95 = [inv.warm_duration_ms_p95 for inv in seen if inv.warm_duration_ms_p95 is not None]
    sources = sorted({step.invocations.source for step in steps if step.invocations.source})
    return FunctionSide(
        invocations=count,
        cold_starts=cold,
        init_ms_mean=weighted([(inv.init_ms_mean, inv.cold_starts) for inv in seen]),
        init_ms_max=max(inits) if inits else None,
        duration_ms_mean=weighted([(inv.duration_ms_mean, inv.count) for inv in seen]),
        warm_duration_ms_mean=weighted(
            [(inv.warm_duration_ms_mean, inv.count - inv.cold_starts) for inv in seen]
        ),
        warm_duration_ms_p95=max(warm_p95) if warm_p95 else None,
        cold_duration_ms_mean=weighted(
            [(inv.cold_duration_ms_mean, inv.cold_starts) for inv in seen]
        ),
        billed_ms_mean=sum(inv.billed_ms_total for inv in seen) / count if count else None,
        max_memory_used_mb=max(memory_used) if memory_used else None,
        source="; ".join(sources) or "no function logs",
    )


def _function_durations(steps: Sequence[Step], *, intervals: bool) -> dict[str, Any]:
    """The Setting fields of the function's own Duration: its steps' window histograms merged,
    their percentiles, and intervals by the client latency's method (bootstrap with n / deff
    draws, deff from the per-second batches). Only when every step with invocations kept its
    durations: a histogram of some repeats only would judge the setting on part of its data."""
    seen = [step for step in steps if step.invocations.count]
    kept = [step for step in seen if step.invocations.duration_histogram]
    if not seen or len(kept) < len(seen):
        why = (
            "no function logs in the window"
            if not seen
            else f"step {next(s for s in seen if s not in kept).index} holds none: its "
            "results.json is from a memsweep that did not keep them; re-run to judge them"
        )
        return {"function_missing": why}
    histogram = merge(step.invocations.duration_histogram for step in kept)
    deff = (
        design_effect(
            [
                [Batch(s.count, s.mean_ms) for s in step.invocations.duration_by_second]
                for step in kept
            ],
            variance_ms2(histogram),
        )
        if intervals
        else 1.0
    )
    return {
        "function_histogram": histogram,
        "function_latency": latency(histogram),
        "function_estimates": (
            bootstrap_many(histogram, ESTIMATED_STATISTICS, deff=deff) if intervals else {}
        ),
        "function_deff": deff,
    }
