"""Stop when the answer is known: which settings a confident run must keep measuring, and why.

After each round the run's results are analysed as they stand. A setting keeps being measured
while something the verdict needs about it is unsettled: too little data; a latency threshold
whose interval straddles its limit; a cost comparison with the cheapest that is neither the
same nor different; a p95 comparison with the pick among settings that cost the same that is
neither separated nor the same speed; a pick too close to call. A setting that cannot be the
pick and has settled its thresholds stops.

Looking again and again at growing data would stop too early too often if each look used the
final 95 % intervals. Each look judges with intervals widened to the Bonferroni level
1 - 0.05 / K, K the rounds the plan allows (a fixed look schedule with the error split evenly
over the looks): the chance that any look stops on a comparison its data cannot yet carry
stays under 5 %. The verdict itself, at the end, uses the pooled rounds' 95 % intervals, the
spread between rounds included. bench/sequential.py measures the false-stop rate.
"""

from __future__ import annotations

from statistics import NormalDist

from runner.analysis._decision import CostDifference
from runner.analysis._setting import Setting
from runner.analysis._stats import Z_975, compare_many
from runner.analysis._verdict import Analysis
from runner.scenario import Point

ALPHA = 0.05
# Two p95s are the same speed when their difference lies wholly within this share of the
# smaller: identical settings never separate, and a tie must end a round, not run to max_s.
SAME_SPEED_PCT = 10.0


def look_widening(looks: int) -> float:
    """How much wider than a 95 % interval each of `looks` looks must be:
    z(1 - ALPHA / 2K) / z(0.975)."""
    return NormalDist().inv_cdf(1 - ALPHA / (2 * max(1, looks))) / Z_975


def _widened(low: float, value: float, high: float, factor: float) -> tuple[float, float]:
    return value - factor * (value - low), value + factor * (high - value)


def still_open(analysis: Analysis, *, looks: int) -> dict[Point, str]:
    """Each setting that must keep being measured, with why; the others are settled."""
    factor = look_widening(looks)
    reasons: dict[Point, str] = {}

    def mark(setting: Setting, why: str) -> None:
        reasons.setdefault(setting.point, why)

    limits = {
        statistic: getattr(analysis.thresholds, f"{statistic}_ms")
        for statistic in ("p50", "p95", "p99")
        if getattr(analysis.thresholds, f"{statistic}_ms") is not None
    }
    for setting in analysis.settings:
        if not setting.valid or setting.degraded:
            continue  # more of the same will not mend it: the verdict says why
        if setting.short_of_data:
            mark(setting, "not enough data yet")
            continue
        for statistic, limit in limits.items():
            estimate = setting.estimates.get(statistic)
            if estimate is None:
                continue
            low, high = _widened(estimate.low, estimate.value, estimate.high, factor)
            if low <= limit < high:
                mark(setting, f"{statistic} ≤ {limit:g} ms: its interval straddles the limit")
    recommendation = analysis.recommendation
    decision = recommendation.decision
    if decision is None:
        return reasons
    for difference in decision.differences:
        if _cost_open(difference, factor):
            why = f"{difference.b.label} vs {difference.a.label} cost: not yet separated"
            mark(difference.a, why)
            mark(difference.b, why)
    pick = decision.setting
    if decision.decided_by != "cost":
        for other in decision.equivalent:
            if other is not pick and _p95_open(pick, other, factor):
                why = f"{other.label} vs {pick.label} p95: not yet separated"
                mark(pick, why)
                mark(other, why)
    confidence = analysis.confidence
    if recommendation.too_close and confidence is not None and confidence.too_close:
        mark(pick, confidence.too_close[0])
        for setting in analysis.settings:
            if setting.label == confidence.runner_up:
                mark(setting, confidence.too_close[0])
    return reasons


def _cost_open(difference: CostDifference, factor: float) -> bool:
    """Neither the same nor different at the look's level."""
    low, high = _widened(difference.low, difference.value, difference.high, factor)
    margin = difference.margin
    same = low <= 0 <= high or (-margin <= low and high <= margin)
    different = high < -margin or low > margin
    return not same and not different


def _p95_open(a: Setting, b: Setting, factor: float) -> bool:
    """Neither separated (the interval clear of zero) nor the same speed (wholly within
    SAME_SPEED_PCT of the smaller p95) at the look's level."""
    difference = compare_many(a.histogram, b.histogram, ["p95"], deff_a=a.deff, deff_b=b.deff).get(
        "p95"
    )
    if difference is None:
        return False
    low, high = _widened(difference.low, difference.value, difference.high, factor)
    if low > 0 or high < 0:
        return False
    margin = SAME_SPEED_PCT / 100 * min(a.p95, b.p95)
    return not (-margin <= low and high <= margin)
