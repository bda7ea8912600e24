"""What a run's numbers say: per-setting summaries, threshold verdicts, the recommendation,
and which differences are real.

Pure: `Results` in, dataclasses out. report.py renders them and sweep.py takes its exit code
from the same verdicts, so the report and the exit code cannot disagree.

Speed is the client-side p95 latency (what the API's callers feel, including API Gateway and
cold starts), cost is the cost per one million requests from cost.py. Repeats of one memory
size are pooled: their histograms are merged and their invocations summed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram
from pydantic import ValidationError

from runner.cost import (
    Architecture,
    ColdStartCost,
    CostPerMillion,
    cold_start_cost,
    cost_per_million,
    money,
)
from runner.errors import BadInput
from runner.results import (
    Confidence,
    DegradedStep,
    Latency,
    Results,
    RunVerdict,
    Step,
)
from runner.scenario import Thresholds
from runner.stats import (
    Batch,
    Difference,
    Estimate,
    bootstrap_many,
    compare_many,
    design_effect,
    latency,
    merge,
    resampled,
    variance_ms2,
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
# Latency thresholds a resample can check (error rate, throughput and drops are counts,
# not resampled).
LATENCY_THRESHOLDS = ("p50", "p95", "p99")


@dataclass(frozen=True)
class Verdict:
    """One threshold checked against one memory setting."""

    name: str  # "p95 ≤ 200 ms"
    measured: str  # "183.2 ms"
    passed: bool
    # False when the 95 % interval straddles the limit: the verdict could flip on a re-run.
    confident: bool = True


@dataclass(frozen=True)
class FunctionSide:
    """What the function's REPORT lines say about a setting (all repeats pooled)."""

    invocations: int
    cold_starts: int
    init_ms_mean: float | None
    init_ms_max: float | None
    duration_ms_mean: float | None
    warm_duration_ms_mean: float | None
    warm_duration_ms_p95: float | None  # the worst repeat's: percentiles don't pool
    cold_duration_ms_mean: float | None  # handler time of cold invocations, init excluded
    billed_ms_mean: float | None
    max_memory_used_mb: int | None
    source: str


@dataclass(eq=False)
class Setting:
    """One memory size: its steps (repeats) pooled."""

    memory_mb: int
    steps: list[Step]
    requests: int
    failures: int
    measured_s: float
    dropped_arrivals: int
    offered: int | None  # open model: arrivals in the windows, sent or dropped
    latency: Latency
    histogram: HdrHistogram
    estimates: dict[str, Estimate]
    function: FunctionSide
    cost: CostPerMillion  # steady state: warm invocations (what a size costs when warm)
    cold: ColdStartCost  # what cold starts add at this load, shown beside, not ranked on
    deff: float = 1.0  # variance inflation of the latency figures (stats.design_effect)
    verdicts: list[Verdict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    degraded: list[DegradedStep] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.measured_s if self.measured_s > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 1.0

    @property
    def drop_rate(self) -> float | None:
        return self.dropped_arrivals / self.offered if self.offered else None

    @property
    def valid(self) -> bool:
        return not self.problems and self.requests > 0

    @property
    def trusted(self) -> bool:
        return self.valid and not self.degraded

    @property
    def meets(self) -> bool:
        return self.trusted and all(verdict.passed for verdict in self.verdicts)

    @property
    def p95(self) -> float:
        return self.latency.p95 if self.latency.p95 is not None else float("inf")


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
    cheapest: Setting | None  # cheapest meeting the thresholds (all valid ones if none set)
    fastest: Setting | None  # lowest p95 among valid settings
    balanced: Setting | None
    thresholds_set: bool
    headline: str
    explanation: list[str]
    degraded: list[DegradedStep] = field(default_factory=list)
    balanced_formula: str = (
        f"balanced: minimise {BALANCED_COST_WEIGHT:g} · cost/max(cost) + "
        f"{1 - BALANCED_COST_WEIGHT:g} · p95/max(p95) over the settings meeting the thresholds "
        "(all valid settings when none do or none are set); AWS Lambda Power Tuning's formula "
        "and default weight"
    )

    @property
    def none_meet(self) -> bool:
        return self.thresholds_set and self.cheapest is None and not self.degraded


@dataclass
class Analysis:
    results: Results
    settings: list[Setting]  # ascending memory
    recommendation: Recommendation
    comparisons: list[Comparison]  # adjacent settings, per statistic
    thresholds: Thresholds
    architecture: Architecture
    warmup_s: float
    stage_ends_s: list[float]  # load stage boundaries, seconds since load start
    confidence: Confidence | None = None  # None when intervals were skipped


def analyse(results: Results, *, intervals: bool = True) -> Analysis:
    """intervals=False skips the bootstrap (intervals, significance): the exit code needs
    only the point figures, and the report computes the rest once."""
    scenario = results.scenario
    thresholds = _thresholds(results)
    architecture: Architecture = "arm64" if results.target.architecture == "arm64" else "x86_64"
    by_memory: dict[int, list[Step]] = {}
    for step in results.steps:
        by_memory.setdefault(step.memory_mb, []).append(step)
    units = _units_per_request(results.steps)
    settings = [
        _setting(
            memory,
            steps,
            thresholds=thresholds,
            architecture=architecture,
            units=units,
            intervals=intervals,
        )
        for memory, steps in sorted(by_memory.items())
    ]
    comparisons = [
        Comparison(f"{a.memory_mb} MB", f"{b.memory_mb} MB", difference)
        for a, b in itertools.pairwise(settings if intervals else [])
        for difference in compare_many(
            a.histogram, b.histogram, COMPARED_STATISTICS, deff_a=a.deff, deff_b=b.deff
        ).values()
    ]
    sweep = scenario.get("sweep") or {}
    # An open model always has a threshold: the drop rate (scenario.Thresholds).
    thresholds_set = _any_threshold(thresholds) or any(s.offered is not None for s in settings)
    recommendation = recommend(settings, thresholds_set=thresholds_set)
    return Analysis(
        results=results,
        settings=settings,
        recommendation=recommendation,
        comparisons=comparisons,
        thresholds=thresholds,
        architecture=architecture,
        warmup_s=float(sweep.get("warmup_s") or 0.0),
        stage_ends_s=_stage_ends(scenario),
        confidence=(
            how_sure(settings, recommendation, thresholds, repeats=_repeats(results))
            if intervals
            else None
        ),
    )


def _repeats(results: Results) -> int:
    sweep = results.scenario.get("sweep") or {}
    value = sweep.get("repeats")
    return int(value) if isinstance(value, int) and value > 0 else 1


def _thresholds(results: Results) -> Thresholds:
    try:
        return Thresholds.model_validate(results.scenario.get("thresholds") or {})
    except ValidationError as exc:
        raise BadInput(
            f"results {results.run_id}: scenario.thresholds is not readable: "
            f"{exc.errors()[0]['msg']}"
        ) from None


def _any_threshold(thresholds: Thresholds) -> bool:
    # max_drop_rate always has a value: it guards every open-model run, set or not.
    return bool(thresholds.model_dump(exclude_none=True, exclude={"max_drop_rate"}))


def _stage_ends(scenario: dict[str, Any]) -> list[float]:
    load = scenario.get("load") or {}
    ends, elapsed = [], 0.0
    for stage in load.get("stages") or []:
        elapsed += float(stage.get("duration_s") or 0)
        ends.append(elapsed)
    return ends


def _units_per_request(steps: Sequence[Step]) -> tuple[float, float] | None:
    """DynamoDB read and write units per invocation, pooled over the whole run.

    Memory size cannot change the capacity a request consumes; per-setting figures differ
    only by which requests the random mix happened to draw, and that noise must not move
    the cost ranking.
    """
    counted = [step.invocations for step in steps if step.invocations.count]
    count = sum(inv.count for inv in counted)
    if not count:
        return None
    reads = sum(inv.read_units for inv in counted)
    writes = sum(inv.write_units for inv in counted)
    return reads / count, writes / count


def _setting(
    memory: int,
    steps: list[Step],
    *,
    thresholds: Thresholds,
    architecture: Architecture,
    units: tuple[float, float] | None,
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
    summary = latency(histogram)
    invocations = [step.invocations for step in steps]
    warm_count = sum(inv.count - inv.cold_starts for inv in invocations)
    warm_billed = (
        sum(inv.warm_billed_ms_total for inv in invocations) / warm_count if warm_count else None
    )
    offered = [step.offered for step in steps if step.offered is not None]
    setting = Setting(
        memory_mb=memory,
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
        # Steady state: what the size costs once warm. A cold start or two more or less in
        # a short window must not decide the ranking; they are priced apart, below.
        cost=cost_per_million(
            memory_mb=memory,
            billed_ms_mean=warm_billed if warm_billed is not None else function.billed_ms_mean,
            read_units_per_request=units[0] if units else None,
            write_units_per_request=units[1] if units else None,
            duration_ms_fallback=summary.mean,
            architecture=architecture,
        ),
        cold=cold_start_cost(
            memory_mb=memory,
            cold_starts=function.cold_starts,
            requests=requests,
            cold_billed_ms_total=sum(inv.cold_billed_ms_total for inv in invocations),
            warm_billed_ms_mean=warm_billed,
            architecture=architecture,
        ),
        problems=[problem for step in steps for problem in step.problems],
        degraded=[
            DegradedStep(step=step.index, memory_mb=memory, cause="; ".join(step.trust.causes))
            for step in steps
            if step.trust.degraded
        ],
    )
    if not requests:
        setting.problems.append("no requests were measured")
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


def verdicts(setting: Setting, thresholds: Thresholds) -> list[Verdict]:
    """Each configured threshold against the setting's pooled measurements."""
    checks: list[Verdict] = []
    for statistic in ("p50", "p95", "p99"):
        limit = getattr(thresholds, f"{statistic}_ms")
        if limit is None:
            continue
        value = getattr(setting.latency, statistic)
        passed = value is not None and value <= limit
        estimate = setting.estimates.get(statistic)
        confident = estimate is None or (estimate.high <= limit if passed else estimate.low > limit)
        checks.append(
            Verdict(
                name=f"{statistic} ≤ {limit:g} ms",
                measured="no data" if value is None else f"{value:.1f} ms",
                passed=passed,
                confident=confident,
            )
        )
    if thresholds.error_rate is not None:
        checks.append(
            Verdict(
                name=f"errors ≤ {thresholds.error_rate:.2%}",
                measured=f"{setting.error_rate:.2%}",
                passed=setting.requests > 0 and setting.error_rate <= thresholds.error_rate,
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


def _cheapest(settings: Sequence[Setting]) -> Setting | None:
    # Ties on cost go to the faster setting, as in Power Tuning.
    return min(settings, key=lambda s: (s.cost.total, s.p95), default=None)


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


def recommend(settings: Sequence[Setting], *, thresholds_set: bool) -> Recommendation:
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
                f"No recommendation: step {first.step} ({first.memory_mb} MB) is degraded: "
                f"{first.cause}."
            ),
            explanation=[
                f"{len(degraded)} degraded step(s), each with its measured cause above. Re-run "
                "on a quieter machine, with fewer local Locust workers, or with more remote "
                "ones; see README, 'When to believe the answer'."
            ],
            degraded=degraded,
        )
    valid = [s for s in settings if s.valid and s.latency.p95 is not None]
    meeting = [s for s in valid if s.meets]
    fastest = _fastest(valid)
    explanation: list[str] = []
    invalid = [s for s in settings if not s.valid]
    for s in invalid:
        explanation.append(
            f"{s.memory_mb} MB is left out: {'; '.join(s.problems) or 'no valid measurement'}"
        )
    if not valid:
        return Recommendation(
            cheapest=None,
            fastest=None,
            balanced=None,
            thresholds_set=thresholds_set,
            headline="No recommendation: no memory size has a valid measurement.",
            explanation=explanation,
        )
    if thresholds_set and not meeting:
        for s in valid:
            failed = [f"{v.name} (measured {v.measured})" for v in s.verdicts if not v.passed]
            explanation.append(f"{s.memory_mb} MB failed " + ", ".join(failed))
        balanced = _balanced(valid)
        return Recommendation(
            cheapest=None,
            fastest=fastest,
            balanced=balanced,
            thresholds_set=True,
            headline="No memory size met the thresholds."
            + (f" The fastest was {fastest.memory_mb} MB." if fastest else ""),
            explanation=explanation,
        )
    pool = meeting if thresholds_set else valid
    cheapest = _cheapest(pool)
    balanced = _balanced(pool)
    assert cheapest is not None and balanced is not None  # pool is not empty here
    if thresholds_set:
        headline = (
            f"Run {cheapest.memory_mb} MB: the cheapest setting that meets every threshold, "
            f"at {money(cheapest.cost.total)} per 1M warm requests (p95 {cheapest.p95:.1f} ms)."
        )
    else:
        headline = (
            f"No thresholds were set. Cheapest: {cheapest.memory_mb} MB at "
            f"{money(cheapest.cost.total)} per 1M requests; balanced: {balanced.memory_mb} MB."
        )
    if fastest is not None and fastest is not cheapest:
        extra = fastest.cost.total - cheapest.cost.total
        gained = cheapest.p95 - fastest.p95
        explanation.append(
            f"The fastest, {fastest.memory_mb} MB, cuts p95 by {gained:.1f} ms for "
            f"{money(extra)} more per 1M requests."
        )
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
    )


def _cold_sentence(setting: Setting) -> str:
    cold = setting.cold
    if not cold.cold_starts:
        return f"{setting.memory_mb} MB had no cold start in its measured window."
    rate = f"{cold.per_million_requests_count:,.0f} cold starts per 1M requests at this load"
    text = (
        f"Cold starts add {money(cold.per_million)} per 1M requests at {setting.memory_mb} MB "
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
    repeats: int,
) -> Confidence:
    """How sure the pick is: its share of resamples meeting every latency threshold, and any
    cheaper size that is too close to call (it meets them in enough resamples of its own)."""
    pick = recommendation.cheapest
    if recommendation.degraded:
        return Confidence(level="none", statement="No pick: a step is degraded.")
    if pick is None:
        return Confidence(level="none", statement="No pick: no size met the thresholds.")
    limits = {
        statistic: getattr(thresholds, f"{statistic}_ms")
        for statistic in LATENCY_THRESHOLDS
        if getattr(thresholds, f"{statistic}_ms") is not None
    }
    if not limits:
        return Confidence(
            level="by cost only",
            statement=(
                f"{pick.memory_mb} MB is the cheapest at steady state; no latency threshold "
                "was set, so no resampling decides it."
            ),
        )
    rule = " and ".join(f"{name} ≤ {limit:g} ms" for name, limit in limits.items())
    pick_share = _meets_share(pick, limits)
    too_close: list[str] = []
    needed: list[int] = []
    candidates = [
        s for s in settings if s.trusted and s is not pick and s.cost.total < pick.cost.total
    ]
    for other in candidates:
        share = _meets_share(other, limits)
        if share > 1 - SURE:
            too_close.append(
                f"{other.memory_mb} vs {pick.memory_mb} MB: too close to call: "
                f"{other.memory_mb} MB meets {rule} in {share:.0%} of resamples"
            )
            needed.append(_repeats_to_separate(other, limits, repeats))
    if pick_share < SURE:
        needed.append(_repeats_to_separate(pick, limits, repeats))
    statement = f"{pick.memory_mb} MB meets {rule} in {pick_share:.0%} of resamples"
    if too_close:
        level = "too close to call"
        statement += "; " + "; ".join(too_close)
    elif pick_share >= SURE:
        level = "sure"
    elif pick_share >= LIKELY:
        level = "likely"
    else:
        level = "too close to call"
    repeats_needed = max(needed) if needed else None
    if repeats_needed is not None and repeats_needed > repeats:
        statement += (
            f". At this noise, about {repeats_needed} repeats per size would separate them "
            f"(this run had {repeats})"
        )
    return Confidence(
        level=level,
        statement=statement + ".",
        meets_share=pick_share,
        too_close=too_close,
        repeats_needed=repeats_needed if repeats_needed and repeats_needed > repeats else None,
    )


def _meets_share(setting: Setting, limits: dict[str, float]) -> float:
    draws = resampled(setting.histogram, list(limits), deff=setting.deff)
    if not draws:
        return 0.0
    meets = None
    for statistic, limit in limits.items():
        ok = draws[statistic] <= limit
        meets = ok if meets is None else meets & ok
    assert meets is not None
    return float(meets.mean())


def _repeats_to_separate(setting: Setting, limits: dict[str, float], repeats: int) -> int:
    """Repeats at which the closest threshold's 95 % interval would clear its limit: the
    interval narrows with the square root of the data, so (half-width / margin)² times."""
    worst = 1.0
    for statistic, limit in limits.items():
        estimate = setting.estimates.get(statistic)
        if estimate is None:
            continue
        margin = abs(estimate.value - limit)
        half = (estimate.high - estimate.low) / 2
        if margin <= 0:
            return 1000
        worst = max(worst, (half / margin) ** 2)
    return min(1000, math.ceil(repeats * worst))


def run_verdict(analysis: Analysis) -> RunVerdict:
    """The verdict as data: what results.json stores for CI and scripts."""
    recommendation = analysis.recommendation
    confidence = analysis.confidence or Confidence(
        level="none", statement="intervals were not computed"
    )
    return RunVerdict(
        recommended_mb=recommendation.cheapest.memory_mb if recommendation.cheapest else None,
        met={str(s.memory_mb): s.meets for s in analysis.settings},
        degraded_steps=recommendation.degraded,
        confidence=confidence,
        headline=recommendation.headline,
        fastest_mb=recommendation.fastest.memory_mb if recommendation.fastest else None,
        balanced_mb=recommendation.balanced.memory_mb if recommendation.balanced else None,
        exit_code=exit_code(analysis),
    )


def exit_code(analysis: Analysis) -> int:
    """The run's verdict: 3 if a step is invalid or degraded, 1 if no setting met the
    thresholds, else 0."""
    if any(not step.valid or step.trust.degraded for step in analysis.results.steps):
        return 3
    return 1 if analysis.recommendation.none_meet else 0


# Metrics `report A B` compares per size: latency with bootstrap intervals of the difference,
# the rest as plain deltas (counts and prices have no resampling here).
RUN_METRICS_WITH_INTERVALS = COMPARED_STATISTICS
RUN_METRICS_PLAIN = ("rps", "cost_per_1m")


@dataclass(frozen=True)
class RunDifference:
    memory_mb: int
    metric: str
    a: float | None
    b: float | None
    delta: float | None
    low: float | None
    high: float | None
    significant: bool | None  # None: no interval for this metric
    margin: float | None = None  # smallest |delta| called a change between these runs

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
    recommendation_a: int | None
    recommendation_b: int | None
    warnings: list[str]
    differences: list[RunDifference]

    @property
    def changed(self) -> bool:
        return self.recommendation_a != self.recommendation_b

    @property
    def headline(self) -> str:
        def name(memory: int | None) -> str:
            return f"{memory} MB" if memory is not None else "no recommendation"

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
            "recommendation": {"a": self.recommendation_a, "b": self.recommendation_b},
            "changed": self.changed,
            "warnings": self.warnings,
            "differences": [
                {
                    "memory_mb": d.memory_mb,
                    "metric": d.metric,
                    "a": d.a,
                    "b": d.b,
                    "delta": d.delta,
                    "delta_pct": d.delta_pct,
                    "low": d.low,
                    "high": d.high,
                    "significant": d.significant,
                    "margin": d.margin,
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
    before = {s.memory_mb: _delivered_share(s) for s in a.settings}
    for setting in b.settings:
        old, new = before.get(setting.memory_mb), _delivered_share(setting)
        if old and new and abs(new / old - 1) > DELIVERY_SHIFT:
            out.append(
                f"{setting.memory_mb} MB: the sandboxes got {old:.3f} of a CPU per period in "
                f"{a.results.run_id} and {new:.3f} in {b.results.run_id}: latency differences "
                "at this size may come from the host, not the code"
            )
    return out


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
    if ra.host.get("hostname") != rb.host.get("hostname"):
        warnings.append("different hosts: only figures measured side by side are comparable")
    for analysis in (a, b):
        for step in analysis.recommendation.degraded:
            warnings.append(
                f"{analysis.results.run_id}: step {step.step} ({step.memory_mb} MB) is degraded"
            )
    warnings += _delivery_warnings(a, b)
    differences: list[RunDifference] = []
    before = {s.memory_mb: s for s in a.settings if s.requests}
    for setting in b.settings:
        old = before.get(setting.memory_mb)
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
                    memory_mb=setting.memory_mb,
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
        for metric, va, vb in (
            ("rps", old.rps, setting.rps),
            ("cost_per_1m", old.cost.total, setting.cost.total),
        ):
            differences.append(
                RunDifference(setting.memory_mb, metric, va, vb, vb - va, None, None, None)
            )
    return RunComparison(
        a_run=ra.run_id,
        b_run=rb.run_id,
        recommendation_a=a.recommendation.cheapest.memory_mb if a.recommendation.cheapest else None,
        recommendation_b=b.recommendation.cheapest.memory_mb if b.recommendation.cheapest else None,
        warnings=warnings,
        differences=differences,
    )
