"""Stop when the answer is known: which settings a confident run must keep measuring, and why.

After each round the run's results are analysed as they stand. A setting keeps being measured
while something the verdict needs about it is unsettled: too little data; a latency threshold
(the client's or the function's Duration) whose interval straddles its limit; a cost
comparison with the cheapest that is neither the same nor different; a p95 comparison among
settings that cost the same that is neither clearly apart (beyond the speed margin) nor within
it, and could still get clearly apart by max_s; a pick too close to call. A setting that
cannot be the pick and has settled its thresholds stops.

Looking again and again at growing data would stop too early too often if each look used the
final 95 % intervals. Each look judges with intervals widened to the Bonferroni level
1 - 0.05 / K, K the rounds the plan allows (a fixed look schedule with the error split evenly
over the looks): the chance that any look stops on a comparison its data cannot yet carry
stays under 5 %. Cost comparisons are widened where they are made (the analysis of a
confident run, analysis._decision.look_widening), so a look and the verdict classify a cost
difference alike: a verdict that re-judged it with the narrower 95 % interval undid a look's
"the same" in 8 of 120 equal-cost runs; p95 comparisons among equal costs likewise (the
verdict's fastest_group). Latency thresholds are widened here; the verdict judges them with
the pooled rounds' 95 % intervals, the spread between rounds included. bench/sequential.py
measures the false-stop rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from runner.analysis._decision import (
    SpeedMargin,
    look_widening,
    p95_difference,
    paired_ratio,
    relation_of,
    widen,
)
from runner.analysis._setting import Setting, latency_limits, threshold_name
from runner.analysis._verdict import Analysis, speed_margin
from runner.scenario import Point

Z_95 = 1.6449  # the normal's 95 % quantile
# A spread from 3 rounds is too rough to give up on: one seed of a 26 % gap stopped at round 3
# as "futile" on a round-to-round spread 20 % above what later rounds showed.
FUTILITY_ROUNDS = 4


def still_open(analysis: Analysis, *, looks: int) -> dict[Point, str]:
    """Each setting that must keep being measured, with why; the others are settled."""
    factor = look_widening(looks)
    speed = speed_margin(analysis.results.scenario)
    reasons: dict[Point, str] = {}

    def mark(setting: Setting, why: str) -> None:
        reasons.setdefault(setting.point, why)

    limits = latency_limits(analysis.thresholds)  # the client's and the function's
    for setting in analysis.settings:
        if not setting.valid or setting.degraded:
            continue  # more of the same will not mend it: the verdict says why
        if setting.short_of_data:
            mark(setting, "not enough data yet")
            continue
        for statistic, limit in limits.items():
            estimate = setting.estimate(statistic)
            if estimate is None:
                continue
            low, high = widen(estimate, factor)
            if low <= limit < high:
                name = threshold_name(statistic, limit)
                mark(setting, f"{name}: its interval straddles the limit")
    recommendation = analysis.recommendation
    decision = recommendation.decision
    if decision is None:
        return reasons
    for difference in decision.differences:
        if difference.relation == "undetermined":  # the analysis widened it for the looks
            why = f"{difference.b.label} vs {difference.a.label} cost: not yet separated"
            mark(difference.a, why)
            mark(difference.b, why)
    pick = decision.setting
    if decision.decided_by != "cost":
        # The pick is the smallest of the fastest: who belongs with the fastest decides it.
        fastest = min(decision.equivalent, key=lambda s: s.p95)
        for other in decision.equivalent:
            if other is not fastest and _p95_open(fastest, other, factor, looks, speed):
                why = f"{other.label} vs {fastest.label} p95: not yet separated"
                mark(fastest, why)
                mark(other, why)
    confidence = analysis.confidence
    if recommendation.too_close and confidence is not None and confidence.too_close:
        mark(pick, confidence.too_close[0])
        for setting in analysis.settings:
            if setting.label == confidence.runner_up:
                mark(setting, confidence.too_close[0])
    return reasons


@dataclass
class NextRound:
    """What a look decided for the next round: the settings it measures, in plan order, and
    why each setting keeps measuring, stops, or starts again."""

    measured: list[Point] = field(default_factory=list)
    still_open: dict[Point, str] = field(default_factory=dict)  # measured again: why
    stopped: dict[Point, str] = field(default_factory=dict)  # stopped after this round: why
    reopened: list[Point] = field(default_factory=list)  # stopped before, measured again
    # Stopped at max_s with something still open: what (the verdict says it, results.json
    # keeps it per round as RoundRecord.open_at_max)
    open_at_max: dict[Point, str] = field(default_factory=dict)

    @property
    def at_max(self) -> bool:
        """A setting stopped at max_s with something still open."""
        return bool(self.open_at_max)


def next_round(
    points: Sequence[Point],
    active: Sequence[Point],
    measured_s: Mapping[Point, float],
    open_: Mapping[Point, str],
    *,
    min_s: float,
    round_s: float,
    max_s: float,
) -> NextRound:
    """Which settings the next round measures, after a look found `open_` (still_open).

    A setting measured this round (`active`) goes on while something about it is open or it
    is under min_s, until another round would pass max_s. A setting stopped earlier starts
    again when a comparison names it as open (the cheapest changed, and a setting that had
    settled against the old one is now compared with it): a comparison with a setting that
    no longer measures can only narrow from one side, and ran a six-size sweep's 128 MB alone
    for eight rounds against a stopped 512 MB (bench/RESULTS.md).
    """
    plan = NextRound()
    for point in points:
        done = measured_s.get(point, 0.0)
        why = open_.get(point)
        if why is None and point in active and done < min_s:
            why = f"under min_s ({done:.0f} of {min_s:g} s measured)"
        if why is None:
            if point in active:
                plan.stopped[point] = f"settled after {done:.0f} s"
            continue
        if done + round_s > max_s + 1e-9:
            if point in active:
                plan.open_at_max[point] = why
                plan.stopped[point] = f"max_s reached ({done:.0f} s); still open: {why}"
            continue
        if point not in active:
            plan.reopened.append(point)
        plan.still_open[point] = why
        plan.measured.append(point)
    return plan


def _p95_open(a: Setting, b: Setting, factor: float, looks: int, speed: SpeedMargin) -> bool:
    """Whether b's p95 against a's (a the fastest) could still change the pick: it is neither
    clearly different (the interval wholly beyond the speed margin: relation_of, as the
    verdict's fastest_group judges) nor wholly within the margin at the look's level, and
    "clearly different" is still within reach. Compared round by round, the difference so far
    is so far inside the margin plus the half-width the interval would still have after every
    round max_s allows that, were it the truth, the last look would clear them less than 5 %
    of the time. Anything short of "different" keeps both in the fastest group, so a pair that
    cannot get there is settled (two sizes 4-7 % apart at p95s of ~5.5 ms kept a six-size sweep
    measuring them for all 12 rounds)."""
    difference = p95_difference(a, b, widening=factor)
    if difference is None:
        return False
    low, high = difference.low, difference.high
    margin = speed.of(a, b)
    if relation_of(low, high, margin) == "different":
        return False
    if -margin <= low and high <= margin:
        return False
    paired = paired_ratio(a, b)
    if paired is not None and FUTILITY_ROUNDS <= paired.rounds < looks:
        # Conditional power under the current trend: were the difference what it is now, the
        # last look's interval would lie beyond the margin less than 5 % of the time.
        beyond = math.log1p(margin / a.p95) + paired.half_width(widening=factor, rounds=looks)
        if abs(paired.mean) < beyond - Z_95 * paired.sd / math.sqrt(looks):
            return False
    return True
