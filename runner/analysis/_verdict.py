"""What a run's numbers say: threshold verdicts, the recommendation and how sure it is, and
the verdict as data (`run_verdict`, `exit_code`).

Pure: settings in, dataclasses out. The report (runner/outputs/_report.py) renders them and
the command line (cli.py) takes its exit code from the same verdict, so the report and the exit
code cannot disagree. `analyse` (_analyse.py) builds the settings and calls this; the `Analysis`
it returns is declared here, beside the verdict that reads it, so the two modules import one
way only.

Speed is the client-side p95 latency (what the API's callers feel, including API Gateway and
cold starts), cost is the cost per one million requests from _cost.py.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from runner.analysis._axes import AxisEffect, _signed_money
from runner.analysis._cost import money
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
    Setting,
    Verdict,
    latency_limits,
    threshold_name,
)
from runner.analysis._stats import BOOTSTRAP_RESAMPLES, Z_975, Difference
from runner.lambda_facts import DEFAULT_API, DEFAULT_ARCHITECTURE, Architecture
from runner.results import (
    Confidence,
    CostInterval,
    CostPair,
    DegradedStep,
    RecommendedPoint,
    Results,
    RunVerdict,
)
from runner.scenario import Point, Scenario, Thresholds, max_rounds

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
