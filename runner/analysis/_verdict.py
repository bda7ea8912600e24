"""What a run's numbers say: per-setting summaries, threshold verdicts, the recommendation,
and which differences are real.

Pure: `Results` in, dataclasses out. The report (runner/outputs/_report.py) renders them and
the command line (cli.py) takes its exit code from the same verdict, so the report and the exit
code cannot disagree.

Speed is the client-side p95 latency (what the API's callers feel, including API Gateway and
cold starts), cost is the cost per one million requests from _cost.py. Repeats of one memory
size are pooled: their histograms are merged and their invocations summed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from runner.analysis._cost import (
    CostPerMillion,
    cold_start_cost,
    cost_per_million,
    money,
)
from runner.analysis._decision import (
    PICK_SHARE_NEEDED,
    CostDifference,
    Pick,
    SpeedMargin,
    cost_difference,
    cost_se,
    decide,
    decision_rule,
    look_widening,
    meets_in_resamples,
    p95_difference,
    paired_ratio,
    pick_share,
)
from runner.analysis._setting import (
    FUNCTION_PREFIX,
    FunctionSide,
    Setting,
    Verdict,
    latency_limits,
    threshold_name,
)
from runner.analysis._stats import (
    BOOTSTRAP_RESAMPLES,
    Z_975,
    Batch,
    Difference,
    Estimate,
    bootstrap_many,
    compare_many,
    design_effect,
    latency,
    mean_interval,
    variance_ms2,
)
from runner.hdr import merge
from runner.lambda_facts import DEFAULT_API, DEFAULT_ARCHITECTURE, Architecture
from runner.results import (
    Confidence,
    CostInterval,
    CostPair,
    DegradedStep,
    RecommendedPoint,
    Results,
    RunVerdict,
    Step,
)
from runner.scenario import (
    AXES,
    ClosedLoad,
    Point,
    Scenario,
    Thresholds,
    max_rounds,
    point_label,
    value_name,
)

# AWS Lambda Power Tuning's "balanced" strategy: minimise
#   w · cost / max(cost) + (1 - w) · p95 / max(p95)
# over the candidates, with its default w = 0.5 (equal weight to money and speed).
BALANCED_COST_WEIGHT = 0.5
# Statistics the report gives 95 % intervals for, and those whose differences it tests
# (p99's interval is wide on short steps: shown, not used to rank).
ESTIMATED_STATISTICS = ("mean", "p50", "p95", "p99")
COMPARED_STATISTICS = ("p50", "p95", "mean")
# A pick is "sure" when it meets every latency threshold in this share of resamples and no
# cheaper size meets them in more than 1 - SURE of its own; "likely" down to LIKELY.
SURE = 0.95
LIKELY = 0.80
# Errors count by default, as drops do: a setting whose requests fail is not measured at the
# load asked for. A scenario may set thresholds.error_rate higher (or lower).
DEFAULT_ERROR_RATE = 0.01
# The least a window must hold for its p95 and intervals to mean anything: 20 requests put p95
# below the maximum; 2 s give the design effect two one-second batches (one second says nothing
# of its own noise; with two, Student's t at 1 degree of freedom widens the interval ~42-fold).
MIN_WINDOW_REQUESTS = 20
MIN_WINDOW_S = 2.0


@dataclass(frozen=True)
class Comparison:
    """b - a for one statistic between two settings (or one setting in two runs)."""

    a_label: str
    b_label: str
    difference: Difference

    @property
    def sentence(self) -> str:
        d = self.difference
        interval = f"95 % CI {d.low:+.1f} to {d.high:+.1f} ms"
        if not d.significant:
            return (
                f"{self.b_label} vs {self.a_label}: no significant difference in "
                f"{d.statistic} ({interval})"
            )
        direction = "lower" if d.value < 0 else "higher"
        return (
            f"{self.b_label} vs {self.a_label}: {d.statistic} {abs(d.value):.1f} ms "
            f"{direction} ({interval})"
        )


@dataclass(frozen=True)
class Recommendation:
    # The pick: the cheapest setting meeting every threshold, or, among those costing the same
    # as the cheapest, the clearly fastest, else the smallest (decision.decided_by says which).
    cheapest: Setting | None
    fastest: Setting | None  # lowest p95 among valid settings
    balanced: Setting | None
    thresholds_set: bool
    headline: str
    explanation: list[str]
    degraded: list[DegradedStep] = field(default_factory=list)
    decision: Pick | None = None
    short_of_data: list[Setting] = field(default_factory=list)  # the pick cannot rest on them
    too_close: bool = False  # the rule picked one setting in too few joint resamples
    balanced_formula: str = (
        f"balanced: minimise {BALANCED_COST_WEIGHT:g} · cost/max(cost) + "
        f"{1 - BALANCED_COST_WEIGHT:g} · p95/max(p95) over the settings meeting the thresholds "
        "(all valid settings when none do or none are set); AWS Lambda Power Tuning's formula "
        "and default weight"
    )

    @property
    def none_meet(self) -> bool:
        return (
            self.cheapest is None
            and self.fastest is not None
            and not self.degraded
            and not self.short_of_data
            and not self.too_close
        )


@dataclass
class Analysis:
    results: Results
    settings: list[Setting]  # by point_order: the other axes, then ascending memory
    recommendation: Recommendation
    comparisons: list[Comparison]  # adjacent settings, per statistic
    thresholds: Thresholds
    architecture: Architecture  # the target's (a point may name its own)
    warmup_s: float
    stage_ends_s: list[float]  # load stage boundaries, seconds since load start
    confidence: Confidence | None = None  # None when intervals were skipped
    effects: list[AxisEffect] = field(default_factory=list)  # what each swept axis moves

    @property
    def tolerance_pct(self) -> float:
        """The practical margin on cost (decision.cost_tolerance_pct)."""
        return self.results.scenario.decision.cost_tolerance_pct

    @property
    def rule(self) -> str:
        """How the pick is made, in plain words, with this run's margin."""
        return decision_rule(self.tolerance_pct, self.speed)

    @property
    def speed(self) -> SpeedMargin:
        """The practical margin on p95 (decision.latency_tolerance_pct and _ms)."""
        return speed_margin(self.results.scenario)

    @property
    def verdict_widening(self) -> float:
        return verdict_widening(self.results.scenario)


def speed_margin(scenario: Scenario) -> SpeedMargin:
    """When one p95 is clearly higher than another, by the scenario's decision."""
    decision = scenario.decision
    return SpeedMargin(decision.latency_tolerance_pct, decision.latency_tolerance_ms)


def verdict_widening(scenario: Scenario) -> float:
    """How much wider than 95 % the intervals of the rule's comparisons (cost, and p95 among
    equal costs) are: 1 for a fixed run; for a confident one, wide enough to hold at whichever
    of its looks it stopped (look_widening), so its verdict classifies a difference as the look
    that stopped it did."""
    if scenario.sweep.until != "confident":
        return 1.0
    return look_widening(max_rounds(scenario))


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


def open_at_max(results: Results) -> str:
    """What a confident run left open when settings reached max_s, in one sentence ("" if
    nothing): the verdict must say it, not only the terminal. A short max_s stopped 128 and
    512 MB with their p95s not yet separated, and the verdict said "none is clearly faster;
    the smallest is the pick ... in 100 % of resamples" while its twin run picked 512 MB."""
    left: dict[str, str] = {}
    for record in results.rounds:
        for label, why in record.open_at_max.items():
            left.setdefault(label, why)
    if not left:
        return ""
    listed = "; ".join(f"{label}: {why}" for label, why in left.items())
    return (
        f"Stopped at max_s ({results.scenario.sweep.max_s:g} s per setting) with this still "
        f"open: {listed}. A longer sweep.max_s would settle it."
    )


def point_order(point: Point, scenario: Scenario) -> tuple[int, int, int, int]:
    """Settings in this order: grouped by architecture, handler and API type in the order the
    scenario lists them (its first value is each axis's baseline), memory rising within a group
    (a memory-only sweep: memory rising)."""
    planned = scenario.sweep.planned_points()

    def rank(axis: str) -> int:
        listed = list(dict.fromkeys(getattr(p, axis) for p in planned))
        value = getattr(point, axis)
        return listed.index(value) if value in listed else len(listed)

    return (rank("architecture"), rank("handler"), rank("api"), point.memory_mb)


def _others(point: Point, axis: str) -> tuple[Any, ...]:
    """The point's values on every axis but `axis` (memory included)."""
    values = {"memory_mb": point.memory_mb, **{a: getattr(point, a) for a in AXES}}
    return tuple(value for name, value in values.items() if name != axis)


def neighbours(settings: Sequence[Setting]) -> list[tuple[Setting, Setting]]:
    """The pairs whose differences the report tests: settings that differ on one axis only,
    next to each other on it (128 vs 256 MB, not 128 vs 1024; REST vs HTTP at one size)."""
    pairs: list[tuple[Setting, Setting]] = []
    for axis in ("memory_mb", *AXES):
        groups: dict[tuple[Any, ...], list[Setting]] = {}
        for setting in settings:  # already in point_order: memory rising within a group
            if axis == "memory_mb" or getattr(setting.point, axis) is not None:
                groups.setdefault(_others(setting.point, axis), []).append(setting)
        for group in groups.values():
            pairs += itertools.pairwise(group)
    return pairs


@dataclass(frozen=True)
class AxisEffect:
    """What moving one axis does, everything else held: the mean over the matched pairs of
    valid settings (the same other values, memory included) of b minus a."""

    axis: str  # "memory_mb", "api", "architecture" or "handler"
    a: str  # from: "REST API", "128 MB"
    b: str  # to: "HTTP API", "1024 MB"
    cost_delta: float  # dollars per 1M requests (steady state)
    p95_delta_ms: float
    pairs: int  # matched pairs averaged

    @property
    def change(self) -> str:
        return f"{self.a} → {self.b}"

    def cost_words(self) -> str:
        if abs(self.cost_delta) < 0.0005:
            return f"{self.change} leaves the bill unchanged"
        if self.axis == "memory_mb":
            return f"{self.change} changes it by {_signed_money(self.cost_delta)}"
        verb = "saves" if self.cost_delta < 0 else "costs"
        extra = "" if self.cost_delta < 0 else " more"
        return f"{self.b} instead of {self.a} {verb} {money(abs(self.cost_delta))}{extra} per 1M"

    def latency_words(self) -> str:
        direction = "lower" if self.p95_delta_ms < 0 else "higher"
        return f"{self.change}: p95 {abs(self.p95_delta_ms):.1f} ms {direction}"


def _signed_money(dollars: float) -> str:
    return ("-" if dollars < 0 else "+") + money(abs(dollars))


def axis_effects(settings: Sequence[Setting]) -> list[AxisEffect]:
    """For each axis the sweep moved: from its first value (memory: the smallest) to each
    other (memory: the largest), the mean change in cost and p95 over matched pairs of valid
    settings; ordered by how much each moves the bill."""
    usable = [s for s in settings if s.trusted and s.latency.p95 is not None]
    effects: list[AxisEffect] = []
    for axis in ("memory_mb", *AXES):
        values = list(dict.fromkeys(getattr(s.point, axis) for s in settings))
        if None in values or len(values) < 2:
            continue
        if axis == "memory_mb":
            values = [min(values), max(values)]
        by_others: dict[tuple[Any, ...], dict[Any, Setting]] = {}
        for setting in usable:
            by_others.setdefault(_others(setting.point, axis), {})[getattr(setting.point, axis)] = (
                setting
            )
        base = values[0]
        for other in values[1:]:
            pairs = [(g[base], g[other]) for g in by_others.values() if base in g and other in g]
            if not pairs:
                continue
            effects.append(
                AxisEffect(
                    axis=axis,
                    a=value_name(axis, base),
                    b=value_name(axis, other),
                    cost_delta=sum(b.cost.total - a.cost.total for a, b in pairs) / len(pairs),
                    p95_delta_ms=sum(b.p95 - a.p95 for a, b in pairs) / len(pairs),
                    pairs=len(pairs),
                )
            )
    return sorted(effects, key=lambda e: -abs(e.cost_delta))


def effects_sentence(effects: Sequence[AxisEffect]) -> str:
    """ "What moves the bill: HTTP API instead of REST API saves $2.50 per 1M; 128 MB → 1024 MB
    changes it by +$0.07. What moves latency: ..." (largest first)."""
    by_latency = sorted(effects, key=lambda e: -abs(e.p95_delta_ms))
    return (
        "What moves the bill: "
        + "; ".join(e.cost_words() for e in effects)
        + ". What moves latency most: "
        + "; ".join(e.latency_words() for e in by_latency[:2])
        + " (steady-state cost per 1M requests; the mean over settings that differ on that "
        "axis only)."
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


def _latency_verdict(setting: Setting, statistic: str, limit: float) -> Verdict:
    """A latency threshold (the client's or the function's): met, missed, or within noise
    when its 95 % interval straddles the limit."""
    function = statistic.startswith(FUNCTION_PREFIX)
    name = threshold_name(statistic, limit)
    figures = setting.function_latency if function else setting.latency
    if figures is None:  # no durations to judge: said, never passed
        return Verdict(name=name, measured=f"not judged: {setting.function_missing}", passed=False)
    value = getattr(figures, statistic.removeprefix(FUNCTION_PREFIX))
    passed = value is not None and value <= limit
    estimate = setting.estimate(statistic)
    confident = estimate is None or (estimate.high <= limit if passed else estimate.low > limit)
    measured = "no data" if value is None else f"{value:.1f} ms"
    if function and value is not None and estimate is not None:
        measured += f" (95 % interval {estimate.low:.1f} to {estimate.high:.1f})"
    return Verdict(
        name=name, measured=measured, passed=passed, confident=confident, statistic=statistic
    )


def verdicts(setting: Setting, thresholds: Thresholds) -> list[Verdict]:
    """Each configured threshold against the setting's pooled measurements."""
    checks = [
        _latency_verdict(setting, statistic, limit)
        for statistic, limit in latency_limits(thresholds).items()
    ]
    error_limit = thresholds.error_rate
    default = error_limit is None
    error_limit = DEFAULT_ERROR_RATE if error_limit is None else error_limit
    checks.append(
        Verdict(
            name=f"errors ≤ {error_limit:.2%}" + (" (default)" if default else ""),
            measured=f"{setting.error_rate:.2%}",
            passed=setting.requests > 0 and setting.error_rate <= error_limit,
        )
    )
    if setting.offered is not None:
        rate = setting.drop_rate or 0.0
        checks.append(
            Verdict(
                name=f"dropped ≤ {thresholds.max_drop_rate:.0%} of offered",
                measured=f"{rate:.1%} ({setting.dropped_arrivals} of {setting.offered})",
                passed=rate <= thresholds.max_drop_rate,
            )
        )
    if thresholds.min_rps is not None:
        checks.append(
            Verdict(
                name=f"throughput ≥ {thresholds.min_rps:g} req/s",
                measured=f"{setting.rps:.1f} req/s",
                passed=setting.rps >= thresholds.min_rps,
            )
        )
    return checks


def _fastest(settings: Sequence[Setting]) -> Setting | None:
    return min(settings, key=lambda s: (s.p95, s.cost.total), default=None)


def _balanced(settings: Sequence[Setting]) -> Setting | None:
    if not settings:
        return None
    max_cost = max(s.cost.total for s in settings) or 1.0
    max_p95 = max(s.p95 for s in settings) or 1.0

    def score(s: Setting) -> float:
        return (
            BALANCED_COST_WEIGHT * s.cost.total / max_cost
            + (1 - BALANCED_COST_WEIGHT) * s.p95 / max_p95
        )

    return min(settings, key=lambda s: (score(s), s.cost.total))


def recommend(
    settings: Sequence[Setting],
    *,
    thresholds_set: bool,
    tolerance_pct: float,
    speed: SpeedMargin | None = None,
    widening: float = 1.0,
) -> Recommendation:
    degraded = [step for s in settings for step in s.degraded]
    if degraded:
        # Nothing rests on a step the machine lied about: not the pick, and not the pick
        # among the others either (the degraded size might have been the one to pick).
        first = degraded[0]
        return Recommendation(
            cheapest=None,
            fastest=None,
            balanced=None,
            thresholds_set=thresholds_set,
            headline=(
                f"No recommendation: step {first.step} ({first.shown}) is degraded: {first.cause}."
            ),
            explanation=[
                f"{len(degraded)} degraded step(s), each with its measured cause above. Re-run "
                "on a quieter machine, with fewer local Locust workers, or with more remote "
                "ones; see README, 'When to believe the answer'."
            ],
            degraded=degraded,
        )
    short = [s for s in settings if s.valid and s.short_of_data]
    if short:
        # A window too thin to estimate what the verdict uses cannot be ranked, and the pick
        # among the others might have been it: no pick, and what to change.
        thin = short[0]
        return Recommendation(
            cheapest=None,
            fastest=None,
            balanced=None,
            thresholds_set=thresholds_set,
            headline=f"No recommendation: {thin.label} has not enough data: {thin.short_of_data}.",
            explanation=[f"{s.label}: {s.short_of_data}" for s in short]
            + [
                f"Measure longer (at least {MIN_WINDOW_S:g} s and {MIN_WINDOW_REQUESTS} requests "
                "per setting after the warm-up: --duration, or more users)."
            ],
            short_of_data=short,
        )
    valid = [s for s in settings if s.valid and s.latency.p95 is not None]
    meeting = [s for s in valid if s.meets]
    fastest = _fastest(valid)
    explanation: list[str] = []
    invalid = [s for s in settings if not s.valid]
    for s in invalid:
        explanation.append(
            f"{s.label} is left out: {'; '.join(s.problems) or 'no valid measurement'}"
        )
    if not valid:
        return Recommendation(
            cheapest=None,
            fastest=None,
            balanced=None,
            thresholds_set=thresholds_set,
            headline=f"No recommendation: no {_noun(settings)} has a valid measurement.",
            explanation=explanation,
        )
    if not meeting:
        for s in valid:
            failed = [f"{v.name} (measured {v.measured})" for v in s.verdicts if not v.passed]
            explanation.append(f"{s.label} failed " + ", ".join(failed))
        balanced = _balanced(valid)
        return Recommendation(
            cheapest=None,
            fastest=fastest,
            balanced=balanced,
            thresholds_set=True,
            headline=f"No {_noun(settings)} met the thresholds."
            + (f" The fastest was {fastest.label}." if fastest else ""),
            explanation=explanation,
        )
    decision = decide(meeting, tolerance_pct, speed=speed, widening=widening)
    assert decision is not None  # meeting is not empty here
    cheapest = decision.setting
    balanced = _balanced(meeting)
    assert balanced is not None
    headline = _headline(decision)
    if not thresholds_set and decision.decided_by == "cost":
        headline = (
            f"No thresholds were set (errors count by default). Cheapest: {cheapest.label} at "
            f"{money(cheapest.cost.total)} per 1M requests; balanced: {balanced.label}."
        )
    explanation += _tie_sentences(decision)
    if fastest is not None and fastest is not cheapest:
        explanation.append(_trade_sentence(decision, fastest, tolerance_pct))
    explanation.append(_cold_sentence(cheapest))
    if cheapest.cost.estimated:
        explanation.append(f"Cost is an estimate: {cheapest.cost.basis}.")
    return Recommendation(
        cheapest=cheapest,
        fastest=fastest,
        balanced=balanced,
        thresholds_set=thresholds_set,
        headline=headline,
        explanation=explanation,
        decision=decision,
    )


def _cost_shown(setting: Setting) -> str:
    """ "$3.76 per 1M ± 0.31 %": the cost and its interval's half-width (when it has one)."""
    text = f"{money(setting.cost.total)} per 1M"
    if setting.cost_spread is not None:
        text += f" {setting.cost_spread}"
    return text


def _span(settings: Sequence[Setting]) -> str:
    """ "128–1769 MB" for memory sizes alone, else the labels listed."""
    if all(s.label == f"{s.memory_mb} MB" for s in settings):
        sizes = sorted(s.memory_mb for s in settings)
        return (
            f"{sizes[0]}–{sizes[-1]} MB"
            if len(sizes) > 2
            else " and ".join(f"{m} MB" for m in sizes)
        )
    return ", ".join(s.label for s in settings)


def _headline(decision: Pick) -> str:
    """The pick and the rule that decided it, in one sentence."""
    pick = decision.setting
    if decision.decided_by == "cost":
        return (
            f"Run {pick.label}: the cheapest setting that meets every threshold, at "
            f"{money(pick.cost.total)} per 1M warm requests (p95 {pick.p95:.1f} ms)."
        )
    same = f"{_span(decision.equivalent)} cost the same ({_cost_shown(decision.cheapest)})"
    if decision.decided_by == "latency among equal costs":
        slowest = max(decision.equivalent, key=lambda s: s.p95)
        free = " More memory is free here." if pick.memory_mb > decision.cheapest.memory_mb else ""
        if len(decision.fastest) > 1:  # several as fast as each other: the smallest of them
            fastest = _span(decision.fastest)
            return (
                f"Run {pick.label}: {same}; {fastest} are the fastest, not clearly apart (p95 "
                f"{pick.p95:.1f} ms at {pick.label} vs {slowest.p95:.1f} ms at {slowest.label}), "
                f"and {pick.label} is the smallest of them.{free}"
            )
        return (
            f"Run {pick.label}: {same}; {pick.label} has the lowest p95 ({pick.p95:.1f} ms vs "
            f"{slowest.p95:.1f} ms at {slowest.label}).{free}"
        )
    return (
        f"Run {pick.label}: {same} and none is clearly faster (p95 {pick.p95:.1f} ms); the "
        "smallest is the pick."
    )


def _tie_sentences(decision: Pick) -> list[str]:
    """What the cost comparison with the cheapest said about each other candidate."""
    out = []
    for d in decision.differences:
        shown = f"{d.b.label} vs {d.a.label}: {_signed_money(d.value)} per 1M ({d.pct:+.2f} %"
        interval = f", {d.interval_name} {_signed_money(d.low)} to {_signed_money(d.high)})"
        if d.relation == "undetermined":
            out.append(
                f"{shown}{interval}: cost not yet known to be the same or different at the "
                f"{d.margin / min(d.a.cost.total, d.b.cost.total):.1%} margin; measure longer "
                "to tell."
            )
        elif d.relation == "same" and d.b in decision.equivalent and d.b is not d.a:
            out.append(f"{shown}{interval}: the same cost.")
    return out


def _trade_sentence(decision: Pick, fastest: Setting, tolerance_pct: float) -> str:
    """What the fastest setting would buy over the pick, and why the rule did not take it: the
    trade stated whichever side of the margin its cost falls."""
    pick, cheapest = decision.setting, decision.cheapest
    extra = fastest.cost.total - pick.cost.total
    pct = 100 * extra / pick.cost.total if pick.cost.total else 0.0
    text = (
        f"The fastest, {fastest.label}, has a {fastest.p95_against(pick)} for "
        f"{money(abs(extra))} {'more' if extra >= 0 else 'less'} per 1M requests ({pct:+.1f} %)"
    )
    if not fastest.meets:
        return text + ", but it misses a threshold, so the rule leaves it out."
    margin = f"the {tolerance_pct:g} % margin of the cheapest's cost ({cheapest.label})"
    passed_over = "the rule passes it over"
    if pick is cheapest:
        passed_over = f"the rule keeps the cheaper {pick.label}"
    difference = decision.difference_to(fastest)
    if difference is None or difference.relation == "same":
        return text + (
            f": it costs the same within {margin}, but is not clearly faster than each setting "
            "that does, so the smallest memory is the pick."
        )
    if difference.relation == "undetermined":
        return text + (
            f": whether its cost is within {margin} is not yet known, so {passed_over}; measure "
            "longer to tell."
        )
    tie = difference.tolerance_to_tie()
    hint = (
        f"; with decision: {{cost_tolerance_pct: {tie:g}}} it would count as costing the same "
        f"as {cheapest.label}"
        if tie <= 100
        else ""
    )
    return text + f": beyond {margin}, a different cost, so {passed_over}{hint}."


def _cold_sentence(setting: Setting) -> str:
    cold = setting.cold
    if not cold.cold_starts:
        return f"{setting.label} had no cold start in its measured window."
    rate = f"{cold.per_million_requests_count:,.0f} cold starts per 1M requests at this load"
    text = (
        f"Cold starts add {money(cold.per_million)} per 1M requests at {setting.label} "
        f"({rate}, {money(cold.per_cold_start or 0.0)} each); ranked on steady state."
    )
    if not cold.comparable:
        text += f" Only {cold.cold_starts} cold start(s) were measured: too few to compare sizes."
    return text


def how_sure(
    settings: Sequence[Setting],
    recommendation: Recommendation,
    thresholds: Thresholds,
    *,
    tolerance_pct: float,
    speed: SpeedMargin | None = None,
    widening: float = 1.0,
) -> Confidence:
    """How sure the pick is, as the pick: how often the rule, applied to every setting's
    figures resampled together, picks it; under PICK_SHARE_NEEDED it is too close to call
    between it and what is picked instead, with how much more measuring would separate them."""
    pick = recommendation.cheapest
    decision = recommendation.decision
    if recommendation.degraded:
        return Confidence(level="none", statement="No pick: a step is degraded.")
    if recommendation.short_of_data:
        return Confidence(
            level="not enough data",
            statement=f"No pick: {recommendation.short_of_data[0].label} has not enough data.",
        )
    if pick is None or decision is None:
        return Confidence(level="none", statement="No pick: no size met the thresholds.")
    limits = latency_limits(thresholds)
    # Counts (errors, drops, throughput) are not resampled: a setting failing one is out.
    candidates = [
        s
        for s in settings
        if s.trusted and all(v.passed for v in s.verdicts if v.statistic is None)
    ]
    share, runner_up = pick_share(
        candidates, decision, limits, tolerance_pct, speed=speed, widening=widening
    )
    statement = f"{pick.label} is the pick in {share:.0%} of resamples"
    if limits:
        rule = " and ".join(threshold_name(name, limit) for name, limit in limits.items())
        statement += f"; it meets {rule} in {_meets_share(pick, limits):.0%}"
    too_close: list[str] = []
    seconds_needed = None
    if share < PICK_SHARE_NEEDED:
        if runner_up is not None:
            seconds_needed = _seconds_to_separate(
                pick, runner_up, decision.decided_by, limits, speed or SpeedMargin(), widening
            )
            call = f"too close to call between {pick.label} and {runner_up.label}"
        else:  # in the other resamples nothing met the thresholds
            factor = _threshold_factor(pick, limits)
            seconds_needed = factor * pick.measured_s if factor > 1 else None
            call = f"too close to call whether {pick.label} meets its thresholds"
        too_close.append(call)
        statement += f"; {call}"
        if seconds_needed is not None:
            statement += (
                f": at this noise, about {seconds_needed:,.0f} s measured per setting would "
                f"settle it (this run had {pick.measured_s:,.0f} s)"
            )
    level: Literal["sure", "likely", "too close to call"]
    if share >= SURE:
        level = "sure"
    elif share >= PICK_SHARE_NEEDED:
        level = "likely"
    else:
        level = "too close to call"
    return Confidence(
        level=level,
        statement=statement + ".",
        meets_share=_meets_share(pick, limits) if limits else None,
        pick_share=share,
        runner_up=runner_up.label if runner_up is not None and share < 1 else None,
        too_close=too_close,
        seconds_needed=seconds_needed,
    )


def _seconds_to_separate(
    pick: Setting,
    other: Setting,
    decided_by: str,
    limits: dict[str, float],
    speed: SpeedMargin,
    widening: float,
) -> float | None:
    """Measured seconds per setting at which what makes the call close would be settled: a
    95 % interval narrows with the square root of the data, so (half-width / gap)² times what
    was measured. The gaps: each one's latency thresholds (interval against limit) and the
    comparison that decided the pick (p95 against the speed margin when latency or "none
    clearly faster" did, else cost)."""
    factors = [_threshold_factor(s, limits) for s in (pick, other)]
    if decided_by != "cost":
        # Settled once the interval of the faster one's advantage lies wholly beyond the speed
        # margin or wholly within it: (half-width / distance to the margin)².
        faster, slower = sorted((pick, other), key=lambda s: s.p95)
        factors.append(_speed_factor(faster, slower, speed, widening))
    else:
        se_a, se_b = cost_se(pick), cost_se(other)
        gap = abs(other.cost.total - pick.cost.total)
        if se_a is not None and se_b is not None and gap > 0:
            factors.append((Z_975 * math.hypot(se_a, se_b) / gap) ** 2)
    worst = max(factors, default=1.0)
    if worst <= 1.0:
        return None
    return min(100.0, worst) * max(pick.measured_s, other.measured_s)


def _speed_factor(faster: Setting, slower: Setting, speed: SpeedMargin, widening: float) -> float:
    """How many times what was measured would settle the faster one's p95 advantage against
    the speed margin (its interval wholly beyond it, or wholly within). Compared round by
    round: the rounds at which the t interval of the mean log ratio, at this spread, would
    clear the margin's log ratio (Student's t narrows with the rounds as well as the root);
    else (half-width / distance to the margin)²."""
    margin = speed.of(faster, slower)
    paired = paired_ratio(faster, slower)
    if paired is not None:
        distance = abs(paired.mean - math.log1p(margin / faster.p95))
        rounds = paired.rounds
        while (
            rounds < 100 * paired.rounds
            and paired.half_width(widening=widening, rounds=rounds) > distance
        ):
            rounds += 1
        return rounds / paired.rounds
    difference = p95_difference(faster, slower, widening=widening)
    if difference is None or difference.value == margin:
        return 1.0 if difference is None else 100.0
    return ((difference.high - difference.low) / 2 / abs(difference.value - margin)) ** 2


def _threshold_factor(setting: Setting, limits: dict[str, float]) -> float:
    """(half-width / distance to the limit)² of its closest latency threshold."""
    worst = 1.0
    for statistic, limit in limits.items():
        estimate = setting.estimate(statistic)
        if estimate is None:
            continue
        margin = abs(estimate.value - limit)
        half = (estimate.high - estimate.low) / 2
        worst = max(worst, (half / margin) ** 2 if margin > 0 else 100.0)
    return worst


def _versus(a: Setting, b: Setting) -> str:
    """ "256 vs 512 MB" (memory-only, as people say it), else both labels in full."""
    if a.point.model_copy(update={"memory_mb": b.memory_mb}) == b.point and a.label.endswith(" MB"):
        return f"{a.memory_mb} vs {b.label}"
    return f"{a.label} vs {b.label}"


def _noun(settings: Sequence[Setting]) -> str:
    """What the run compared, in the verdict's words."""
    moved = any(s.point != Point(memory_mb=s.memory_mb) for s in settings)
    return "setting" if moved else "memory size"


def _meets_share(setting: Setting, limits: dict[str, float]) -> float:
    return float(meets_in_resamples(setting, limits, BOOTSTRAP_RESAMPLES).mean())


def run_verdict(analysis: Analysis) -> RunVerdict:
    """The verdict as data: what results.json stores for CI and scripts."""
    recommendation = analysis.recommendation
    confidence = analysis.confidence or Confidence(
        level="none", statement="intervals were not computed"
    )
    pick = recommendation.cheapest
    decision = recommendation.decision
    moved = _noun(analysis.settings) == "setting"

    def key(setting: Setting) -> str:
        return setting.label if moved else str(setting.memory_mb)

    return RunVerdict(
        recommended=None if pick is None else recommended_point(pick.point, analysis.results),
        recommended_mb=pick.memory_mb if pick else None,
        met={key(s): s.meets for s in analysis.settings},
        degraded_steps=recommendation.degraded,
        confidence=confidence,
        headline=recommendation.headline,
        fastest_mb=recommendation.fastest.memory_mb if recommendation.fastest else None,
        balanced_mb=recommendation.balanced.memory_mb if recommendation.balanced else None,
        exit_code=exit_code(analysis),
        decided_by=decision.decided_by if decision is not None and pick is not None else None,
        equivalent=[key(s) for s in decision.equivalent] if decision is not None else [],
        cost_tolerance_pct=analysis.results.scenario.decision.cost_tolerance_pct,
        costs={
            key(s): CostInterval(
                value=s.cost.total,
                low=s.cost_estimate.low if s.cost_estimate else None,
                high=s.cost_estimate.high if s.cost_estimate else None,
            )
            for s in analysis.settings
        },
        cost_differences=[
            CostPair(
                a=key(d.a),
                b=key(d.b),
                value=d.value,
                low=d.low,
                high=d.high,
                margin=d.margin,
                relation=d.relation,
            )
            for d in _every_pair(analysis)
        ],
    )


def _every_pair(analysis: Analysis) -> list[CostDifference]:
    """The cost difference of every pair of trusted settings: the rule's (the cheapest against
    each candidate) first, then the others, each cheaper one as `a`."""
    decision = analysis.recommendation.decision
    tolerance = analysis.results.scenario.decision.cost_tolerance_pct
    pairs = list(decision.differences) if decision is not None else []
    seen = {(d.a.point, d.b.point) for d in pairs} | {(d.b.point, d.a.point) for d in pairs}
    trusted = sorted(
        (s for s in analysis.settings if s.trusted), key=lambda s: (s.cost.total, s.memory_mb)
    )
    for a, b in itertools.combinations(trusted, 2):
        if (a.point, b.point) not in seen:
            pairs.append(cost_difference(a, b, tolerance, widening=analysis.verdict_widening))
    return pairs


def recommended_point(point: Point, results: Results) -> RecommendedPoint:
    """A point with every axis filled in: what the sweep did not move is the target's."""
    target = results.target
    architecture = point.architecture or target.architecture or DEFAULT_ARCHITECTURE
    return RecommendedPoint(
        memory_mb=point.memory_mb,
        api=point.api or DEFAULT_API,
        architecture="arm64" if architecture == "arm64" else "x86_64",
        handler=point.handler or target.handler,
    )


def exit_code(analysis: Analysis) -> int:
    """The run's verdict: 3 if a step is invalid or degraded, a setting has too little data to
    rank or the pick is too close to call (the answer is not known: measure longer), 1 if no
    setting met the thresholds, else 0."""
    if any(not step.valid or step.trust.degraded for step in analysis.results.steps):
        return 3
    recommendation = analysis.recommendation
    if recommendation.short_of_data or recommendation.too_close:
        return 3
    return 1 if recommendation.none_meet else 0


# Metrics `report A B` compares per size: latency with bootstrap intervals of the difference;
# cost per 1M with the interval of the difference from each run's cost interval, judged
# against B's decision.cost_tolerance_pct as the pick judges two settings; throughput as a
# plain delta.
RUN_METRICS_WITH_INTERVALS = COMPARED_STATISTICS
RUN_METRICS_PLAIN = ("rps",)


@dataclass(frozen=True)
class RunDifference:
    point: Point
    metric: str
    a: float | None
    b: float | None
    delta: float | None
    low: float | None
    high: float | None
    significant: bool | None  # None: no interval for this metric
    margin: float | None = None  # smallest |delta| called a change between these runs
    # cost_per_1m only: what the decision rule makes of the difference ("same", "different",
    # "undetermined"; None: a run without a cost interval, or another metric)
    relation: str | None = None

    @property
    def memory_mb(self) -> int:
        return self.point.memory_mb

    @property
    def delta_pct(self) -> float | None:
        if self.delta is None or not self.a:
            return None
        return self.delta / self.a * 100


@dataclass(frozen=True)
class RunComparison:
    """Run b against run a: did the answer change, may they be compared, what moved."""

    a_run: str
    b_run: str
    recommendation_a: Point | None
    recommendation_b: Point | None
    warnings: list[str]
    differences: list[RunDifference]

    @property
    def changed(self) -> bool:
        return self.recommendation_a != self.recommendation_b

    @property
    def headline(self) -> str:
        def name(point: Point | None) -> str:
            return point_label(point) if point is not None else "no recommendation"

        if self.changed:
            return (
                f"The recommendation changed: {name(self.recommendation_a)} in {self.a_run}, "
                f"{name(self.recommendation_b)} in {self.b_run}."
            )
        return f"Same recommendation in both runs: {name(self.recommendation_b)}."

    def as_json(self) -> dict[str, Any]:
        return {
            "a": self.a_run,
            "b": self.b_run,
            "recommendation": {  # memory sizes, as schema 2's readers expect
                "a": self.recommendation_a.memory_mb if self.recommendation_a else None,
                "b": self.recommendation_b.memory_mb if self.recommendation_b else None,
            },
            "recommended": {  # the picks on every axis the runs swept
                "a": point_label(self.recommendation_a) if self.recommendation_a else None,
                "b": point_label(self.recommendation_b) if self.recommendation_b else None,
            },
            "changed": self.changed,
            "warnings": self.warnings,
            "differences": [
                {
                    "memory_mb": d.memory_mb,
                    "point": point_label(d.point),
                    "metric": d.metric,
                    "a": d.a,
                    "b": d.b,
                    "delta": d.delta,
                    "delta_pct": d.delta_pct,
                    "low": d.low,
                    "high": d.high,
                    "significant": d.significant,
                    "margin": d.margin,
                    "relation": d.relation,
                }
                for d in self.differences
            ],
        }


# Between two runs with one repeat per size, a latency difference smaller than this share of
# the first run's value is not called a change, whatever its interval: bench verdict-trust
# compared identical runs minutes apart on a shared 2-core host and saw p50 and mean shift
# 5-22 % at 128 MB and 7-13 % at 512/1024 MB with intervals excluding zero. With repeats
# (interleaved), the spread between them enters the intervals instead.
RUN_TO_RUN_MARGIN = 0.15
# Two runs whose sandboxes got CPU shares further apart than this at one size were not
# measuring the same modelled machine there: say so beside the latency differences.
DELIVERY_SHIFT = 0.05


def _delivered_share(setting: Setting) -> float | None:
    """Mean CPU per active 20 ms period over the size's steps where the quota bound."""
    shares = [
        step.trust.cpu.per_period_share
        for step in setting.steps
        if step.trust.cpu is not None
        and step.trust.cpu.per_period_share is not None
        and (step.trust.cpu.throttled_periods or 0.0) >= 0.5
    ]
    return sum(shares) / len(shares) if shares else None


def _delivery_warnings(a: Analysis, b: Analysis) -> list[str]:
    out = []
    before = {s.point: _delivered_share(s) for s in a.settings}
    for setting in b.settings:
        old, new = before.get(setting.point), _delivered_share(setting)
        if old and new and abs(new / old - 1) > DELIVERY_SHIFT:
            out.append(
                f"{setting.label}: the sandboxes got {old:.3f} of a CPU per period in "
                f"{a.results.run_id} and {new:.3f} in {b.results.run_id}: latency differences "
                "at this size may come from the host, not the code"
            )
    return out


def _cost_change(old: Setting, new: Setting, tolerance_pct: float) -> RunDifference:
    """B - A in cost per 1M at one point: the interval from both runs' cost intervals (their
    standard errors combined, as between two settings of one run), a change when it lies wholly
    beyond the margin, the same when it holds zero or lies within it."""
    difference = cost_difference(old, new, tolerance_pct)
    known = difference.has_interval
    return RunDifference(
        point=new.point,
        metric="cost_per_1m",
        a=old.cost.total,
        b=new.cost.total,
        delta=difference.value,
        low=difference.low if known else None,
        high=difference.high if known else None,
        significant=difference.relation == "different" if known else None,
        margin=difference.margin,
        relation=difference.relation if known else None,
    )


def compare_run_pair(a: Analysis, b: Analysis) -> RunComparison:
    ra, rb = a.results, b.results
    warnings = []
    if ra.scenario != rb.scenario:
        warnings.append("the scenarios differ: differences may come from the scenario")
    if ra.versions != rb.versions:
        changed = sorted(
            k
            for k in set(ra.versions) | set(rb.versions)
            if ra.versions.get(k) != rb.versions.get(k)
        )
        warnings.append(f"versions differ ({', '.join(changed)})")
    if (ra.target.kind, ra.target.url.split("/")[2:3]) != (
        rb.target.kind,
        rb.target.url.split("/")[2:3],
    ):
        warnings.append(f"targets differ ({ra.target.kind} vs {rb.target.kind})")
    if ra.host.hostname != rb.host.hostname:
        warnings.append("different hosts: only figures measured side by side are comparable")
    for analysis in (a, b):
        for step in analysis.recommendation.degraded:
            warnings.append(
                f"{analysis.results.run_id}: step {step.step} ({step.shown}) is degraded"
            )
    warnings += _delivery_warnings(a, b)
    differences: list[RunDifference] = []
    before = {s.point: s for s in a.settings if s.requests}  # the same point in both runs
    for setting in b.settings:
        old = before.get(setting.point)
        if old is None or not setting.requests:
            continue
        tested = compare_many(
            old.histogram,
            setting.histogram,
            RUN_METRICS_WITH_INTERVALS,
            deff_a=old.deff,
            deff_b=setting.deff,
        )
        # Runs minutes apart on one host shift more than either run's own noise shows: with a
        # single repeat on either side, a change must also exceed the run-to-run margin.
        single = min(len(old.steps), len(setting.steps)) < 2
        for metric in RUN_METRICS_WITH_INTERVALS:
            d = tested.get(metric)
            va, vb = getattr(old.latency, metric), getattr(setting.latency, metric)
            margin = RUN_TO_RUN_MARGIN * abs(va) if single and va is not None else 0.0
            differences.append(
                RunDifference(
                    point=setting.point,
                    metric=f"{metric}_ms",
                    a=va,
                    b=vb,
                    delta=(vb - va) if va is not None and vb is not None else None,
                    low=d.low if d else None,
                    high=d.high if d else None,
                    significant=(
                        d.significant and abs(d.value) >= margin if d is not None else None
                    ),
                    margin=margin,
                )
            )
        differences.append(
            RunDifference(
                setting.point, "rps", old.rps, setting.rps, setting.rps - old.rps, None, None, None
            )
        )
        differences.append(_cost_change(old, setting, rb.scenario.decision.cost_tolerance_pct))
    return RunComparison(
        a_run=ra.run_id,
        b_run=rb.run_id,
        recommendation_a=a.recommendation.cheapest.point if a.recommendation.cheapest else None,
        recommendation_b=b.recommendation.cheapest.point if b.recommendation.cheapest else None,
        warnings=warnings,
        differences=differences,
    )
