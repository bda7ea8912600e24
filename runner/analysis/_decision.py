"""How the pick is decided: cost with an interval, when two costs are the same, the rule among
settings that tie on cost, and how often a resampled run picks the same setting.

API Gateway's fixed price per request is most of the bill when the function is quick, so two
memory sizes often differ by a fraction of a cent per 1M requests: a rounding accident must
not choose the size. Two settings cost the same when their difference cannot be told from
zero at the run's noise (its interval holds zero) or lies wholly inside a practical margin
(`decision.cost_tolerance_pct` of the cheaper bill). Among the settings that meet every
threshold and cost the same as the cheapest, the fastest are the one with the lowest p95 and
those not clearly slower than it; the pick is the smallest memory among them. One clearly
fastest setting is the pick; with none clearly apart, the smallest memory. Two sizes tied for
fastest no longer hand the pick to the smallest of all (a 1536 and a 3008 MB as fast as each
other, both clearly faster than 128 MB, chose 128 MB).

"Clearly slower" has a practical margin too (`SpeedMargin`: decision.latency_tolerance_pct of
the lower p95, at least decision.latency_tolerance_ms): the interval of the difference must lie
wholly above it. A 0.3 ms p95 gap between 256 and 512 MB (5.7 vs 5.4 ms on the local stack)
does not make 512 MB the faster choice, and proving that it did not matter cost a six-size
sweep all twelve of its rounds (bench/RESULTS.md). Cost and latency are judged by one rule,
relation_of.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Literal

import numpy as np

from runner.analysis._setting import CLIENT_STATISTICS, FUNCTION_PREFIX, Setting
from runner.analysis._stats import (
    Z_975,
    Difference,
    Estimate,
    compare_many,
    resampled,
    t_975,
)

Relation = Literal["same", "different", "undetermined"]
DecidedBy = Literal["cost", "latency among equal costs", "smallest among equals"]
# The pick stands when the rule picks it in at least this share of joint resamples.
PICK_SHARE_NEEDED = 0.90
PICK_RESAMPLES = 2000

# The rule in plain words, stated once: the report's recommendation banner shows it with the
# run's margin, and README.md ("The report") with the default one (tests/test_one_truth.py
# reads README and holds its copy equal).
RULE = (
    "Among the settings that meet every threshold, the cheapest per 1M requests is the pick. "
    "Two costs count as the same when the 95 % interval of their difference holds zero or lies "
    "wholly within {tolerance} of the cheaper bill; when others cost the same as the cheapest, "
    "the fastest of them are the one with the lowest p95 and those whose p95 is not clearly "
    "higher (the 95 % interval of the difference reaches below {speed}), and the pick is the "
    "smallest memory among the fastest."
)
# Which part of the rule decided a pick (`Pick.decided_by`, results.json's verdict.decided_by),
# in the words the report and summary.md use.
DECIDED_BY_WORDS: dict[str, str] = {
    "cost": "the cheapest setting that meets every threshold; no other is known to cost the same",
    "latency among equal costs": "of the settings that cost the same as the cheapest, the "
    "smallest of the fastest (the lowest p95 and any not clearly above it, beyond the latency "
    "margin)",
    "smallest among equals": "settings cost the same as the cheapest and none is clearly "
    "faster, so the smallest memory",
}
# What the rule made of a cost difference, in words (`CostDifference.relation`).
RELATION_WORDS: dict[str, str] = {
    "same": "the same",
    "different": "different",
    "undetermined": "not yet known",
}


ALPHA = 0.05


def look_widening(looks: int) -> float:
    """How much wider than a 95 % interval an interval must be to hold at whichever of `looks`
    looks a run stops: z(1 - ALPHA / 2K) / z(0.975) (Bonferroni over a fixed look schedule).

    A confident run looks after every round and stops a setting once its comparisons settle;
    judged with plain 95 % intervals, some look would settle by chance far more often than 5 %
    of the time. Its looks and its verdict both classify cost with this widening, so the
    verdict says what the look that stopped the setting saw (bench/sequential.py measured a
    verdict whose narrower interval undid the look's "the same": 8 of 120 false ties)."""
    return NormalDist().inv_cdf(1 - ALPHA / (2 * max(1, looks))) / Z_975


@dataclass(frozen=True)
class SpeedMargin:
    """When one p95 is clearly higher than another: the interval of the difference lies wholly
    above `pct` of the lower p95, and above `floor_ms` (decision.latency_tolerance_pct and
    latency_tolerance_ms). Within it, two settings are as fast as each other."""

    pct: float = 10.0
    floor_ms: float = 1.0

    def of(self, a: Setting, b: Setting) -> float:
        """The margin in ms for these two settings' p95s."""
        return max(self.pct / 100 * min(a.p95, b.p95), self.floor_ms)

    def __str__(self) -> str:
        """ "10 % of the lower p95 or 1 ms, whichever is larger" """
        return f"{self.pct:g} % of the lower p95 or {self.floor_ms:g} ms, whichever is larger"


def decision_rule(tolerance_pct: float, speed: SpeedMargin | None = None) -> str:
    """The rule with these margins ("... within 0.5 % of the cheaper bill ...")."""
    return RULE.format(tolerance=f"{tolerance_pct:g} %", speed=speed or SpeedMargin())


@dataclass(frozen=True)
class CostDifference:
    """b - a in US dollars per 1M requests, its 95 % interval, and what it says."""

    a: Setting
    b: Setting
    value: float
    low: float
    high: float
    margin: float  # the practical margin in dollars: tolerance × the cheaper bill
    relation: Relation
    widening: float = 1.0  # > 1: widened to hold across a confident run's looks

    @property
    def interval_name(self) -> str:
        """ "95 % CI", or what a confident run's widened interval is."""
        return "95 % CI" if self.widening == 1.0 else "interval held across the run's looks"

    @property
    def pct(self) -> float:
        """The difference as a percentage of the cheaper bill."""
        cheaper = min(self.a.cost.total, self.b.cost.total)
        return 100 * self.value / cheaper if cheaper else 0.0

    @property
    def has_interval(self) -> bool:
        """Both settings have a cost interval (else only the margin decided)."""
        return self.a.cost_estimate is not None and self.b.cost_estimate is not None

    @property
    def relation_words(self) -> str:
        return RELATION_WORDS[self.relation]

    def tolerance_to_tie(self) -> float:
        """The smallest decision.cost_tolerance_pct (to 0.1) at which the two would count as
        the same: the interval wholly within the margin."""
        cheaper = min(self.a.cost.total, self.b.cost.total)
        if not cheaper:
            return 0.0
        widest = max(abs(self.low), abs(self.high)) / cheaper * 100
        return math.ceil(round(widest * 10, 6)) / 10


def cost_se(setting: Setting) -> float | None:
    """The standard error of the setting's cost per 1M, from its interval (None: none)."""
    estimate = setting.cost_estimate
    if estimate is None:
        return None
    return (estimate.high - estimate.low) / (2 * Z_975)


def relation_of(low: float, high: float, margin: float) -> Relation:
    """What an interval of a cost difference says: the same (it holds zero, or lies wholly
    within ±margin), different (wholly outside the margin), or undetermined (it straddles the
    margin: more data would tell)."""
    if low <= 0 <= high or (-margin <= low and high <= margin):
        return "same"
    if high < -margin or low > margin:
        return "different"
    return "undetermined"


def _half_width(a: Setting, b: Setting, widening: float) -> float:
    """Half the interval of b - a: the two settings' errors combined. Without an interval on
    one side (no per-second billing records), 0: only the margin decides."""
    se_a, se_b = cost_se(a), cost_se(b)
    if se_a is None or se_b is None:
        return 0.0
    return widening * Z_975 * math.hypot(se_a, se_b)


def cost_difference(
    a: Setting, b: Setting, tolerance_pct: float, *, widening: float = 1.0
) -> CostDifference:
    """b - a with its 95 % interval (widened by `widening` for a confident run's looks: see
    look_widening), classified by relation_of."""
    value = b.cost.total - a.cost.total
    margin = tolerance_pct / 100 * min(a.cost.total, b.cost.total)
    half = _half_width(a, b, widening)
    low, high = value - half, value + half
    relation = relation_of(low, high, margin)
    return CostDifference(a, b, value, low, high, margin, relation, widening)


# Settings measured in the same rounds are compared round by round once they share this many
# rounds with enough requests each: the ratio of their p95s per round, its mean on a log scale
# and Student's t over the rounds. A round's drift (a busy minute on the host) hits both
# settings of that round, and the ratio cancels it; pooled histograms count it twice, as noise
# in each (a six-size sweep's 128 vs 256 MB: 256 MB faster in 11 of 12 rounds, yet "not yet
# separated" after 120 s, each setting's design effect 9-22 from the spread between rounds).
MIN_PAIRED_ROUNDS = 3
MIN_ROUND_REQUESTS = 20


@dataclass(frozen=True)
class PairedRatio:
    """log(b's p95 / a's) over the rounds both measured: its mean, its spread from round to
    round, and how many rounds."""

    mean: float
    sd: float
    rounds: int

    def half_width(self, *, widening: float = 1.0, rounds: int | None = None) -> float:
        """The 95 % half-width (Student's t) of the mean, widened; over `rounds` rounds at
        this spread (default: the rounds measured)."""
        n = rounds or self.rounds
        return widening * t_975(n - 1) * self.sd / math.sqrt(n)


def p95_difference(a: Setting, b: Setting, *, widening: float = 1.0) -> Difference | None:
    """b's p95 - a's (ms), with its 95 % interval widened by `widening`: from the rounds both
    measured (paired_ratio) when there are enough, else from the pooled histograms'
    bootstrap (n / deff draws each). None: a side has no requests."""
    paired = paired_ratio(a, b)
    if paired is not None:
        half = paired.half_width(widening=widening)
        low, high = math.expm1(paired.mean - half), math.expm1(paired.mean + half)
        return Difference("p95", b.p95 - a.p95, a.p95 * low, a.p95 * high)
    difference = compare_many(a.histogram, b.histogram, ["p95"], deff_a=a.deff, deff_b=b.deff).get(
        "p95"
    )
    if difference is None or widening == 1.0:
        return difference
    return Difference("p95", difference.value, *widen(difference, widening))


def widen(interval: Difference | Estimate, factor: float) -> tuple[float, float]:
    """(low, high) of `interval` with each side's distance from its value times `factor`."""
    value = interval.value
    return value - factor * (value - interval.low), value + factor * (interval.high - value)


def paired_rounds(a: Setting, b: Setting) -> list[tuple[float, float]]:
    """(a's p95, b's p95) of every round (repeat) both measured with enough requests."""

    def by_round(setting: Setting) -> dict[int, float]:
        return {
            step.repeat: step.latency.p95
            for step in setting.steps
            if step.requests >= MIN_ROUND_REQUESTS and step.latency.p95
        }

    rounds_a, rounds_b = by_round(a), by_round(b)
    return [(rounds_a[r], rounds_b[r]) for r in sorted(rounds_a.keys() & rounds_b.keys())]


def paired_ratio(a: Setting, b: Setting) -> PairedRatio | None:
    """log(b's p95 / a's) over the shared rounds (None: fewer than MIN_PAIRED_ROUNDS)."""
    pairs = paired_rounds(a, b)
    if len(pairs) < MIN_PAIRED_ROUNDS:
        return None
    logs = np.log([pb / pa for pa, pb in pairs])
    return PairedRatio(float(np.mean(logs)), float(np.std(logs, ddof=1)), len(logs))


def _faster(a: Setting, b: Setting, speed: SpeedMargin, widening: float = 1.0) -> bool:
    """a's p95 is clearly lower than b's: the 95 % interval of the difference (widened by
    `widening` for a confident run's looks) lies wholly above the speed margin."""
    return speed_relation(a, b, speed, widening) == "faster"


SpeedRelation = Literal["faster", "not faster", "open"]


def speed_relation(
    a: Setting, b: Setting, speed: SpeedMargin, widening: float = 1.0
) -> SpeedRelation:
    """What the run showed of a's p95 advantage over b's (b's p95 - a's, its interval widened
    by `widening`): "faster" when it lies wholly above the speed margin, "not faster" when it
    lies wholly at or below it, "open" when it straddles the margin (more data would tell)."""
    difference = p95_difference(a, b, widening=widening)
    if difference is None:
        return "not faster"
    margin = speed.of(a, b)
    if difference.low > margin:
        return "faster"
    if difference.high <= margin:
        return "not faster"
    return "open"


def faster_in_resamples(
    a: Setting,
    b: Setting,
    speed: SpeedMargin,
    rng: np.random.Generator,
    resamples: int,
    *,
    widening: float = 1.0,
) -> np.ndarray | None:
    """Whether a twin run would show a clearly faster than b, per resample: the twin's
    interval of the difference (b's p95 - a's) lies wholly above the speed margin. The twin's
    rounds are drawn at the run's mean and spread of the log ratio: its mean normal around the
    run's, its spread from the chi-square of its rounds (with three rounds a twin's spread is
    often a fraction of this run's, and its interval with it). A gap near the edge of
    "clearly" is a coin toss between twins; one that futility gave up on almost never crosses.

    None without paired rounds (fewer than MIN_PAIRED_ROUNDS shared): a pooled interval's
    width moves with its draws (a cold start inside the p95 of a few dozen requests makes it
    [-7, +412] ms), so no twin can be drawn around a shifted estimate at a fixed width."""
    paired = paired_ratio(a, b)
    if paired is None:
        return None
    n = paired.rounds
    means = rng.normal(paired.mean, paired.sd / math.sqrt(n), resamples)
    spreads = paired.sd * np.sqrt(rng.chisquare(n - 1, resamples) / (n - 1))
    halves = widening * t_975(n - 1) * spreads / math.sqrt(n)
    faster: np.ndarray = a.p95 * np.expm1(means - halves) > speed.of(a, b)
    return faster


def clearly_faster(
    setting: Setting,
    others: Sequence[Setting],
    speed: SpeedMargin | None = None,
    *,
    widening: float = 1.0,
) -> bool:
    """Its p95 is clearly lower than each other's (beyond the speed margin)."""
    margin = speed or SpeedMargin()
    return all(_faster(setting, other, margin, widening) for other in others)


@dataclass(frozen=True)
class Pick:
    """The rule's answer among the settings that meet every threshold."""

    setting: Setting
    cheapest: Setting  # the lowest cost per 1M as measured
    equivalent: list[Setting]  # the same cost as the cheapest (the cheapest and pick included)
    undetermined: list[Setting]  # neither the same nor different from the cheapest yet
    decided_by: DecidedBy
    differences: list[CostDifference]  # the cheapest against each other candidate
    # Among the equivalent: the lowest p95 and those not clearly slower (the pick the smallest)
    fastest: list[Setting] = field(default_factory=list)

    @property
    def reason(self) -> str:
        """Why decided_by decided, in words: "the cheapest setting that meets ..." """
        return DECIDED_BY_WORDS[self.decided_by]

    @property
    def decided_by_words(self) -> str:
        """ "cost: the cheapest setting that meets every threshold; ..." """
        return f"{self.decided_by}: {self.reason}"

    def difference_to(self, setting: Setting) -> CostDifference | None:
        """The cheapest against `setting` (None: it is the cheapest, or no candidate)."""
        return next((d for d in self.differences if d.b is setting), None)


def decide(
    pool: Sequence[Setting],
    tolerance_pct: float,
    *,
    speed: SpeedMargin | None = None,
    widening: float = 1.0,
) -> Pick | None:
    """The pick among `pool` (settings meeting every threshold): the cheapest, unless others
    cost the same; then the clearly fastest of those, else the smallest memory."""
    if not pool:
        return None
    cheapest = min(pool, key=lambda s: (s.cost.total, s.memory_mb))
    differences = [
        cost_difference(cheapest, s, tolerance_pct, widening=widening)
        for s in pool
        if s is not cheapest
    ]
    equivalent = [cheapest] + [d.b for d in differences if d.relation == "same"]
    undetermined = [d.b for d in differences if d.relation == "undetermined"]
    if len(equivalent) == 1:
        return Pick(cheapest, cheapest, equivalent, undetermined, "cost", differences, equivalent)
    equivalent.sort(key=lambda s: (s.memory_mb, s.cost.total))
    group = fastest_group(equivalent, speed, widening=widening)
    decided_by: DecidedBy = (
        "smallest among equals" if len(group) == len(equivalent) else "latency among equal costs"
    )
    return Pick(group[0], cheapest, equivalent, undetermined, decided_by, differences, group)


def fastest_group(
    settings: Sequence[Setting], speed: SpeedMargin | None = None, *, widening: float = 1.0
) -> list[Setting]:
    """The setting with the lowest p95 and those not clearly slower than it, by memory."""
    margin = speed or SpeedMargin()
    fastest = min(settings, key=lambda s: s.p95)
    group = [s for s in settings if s is fastest or not _faster(fastest, s, margin, widening)]
    return sorted(group, key=lambda s: (s.memory_mb, s.cost.total))


def _cost_draws(setting: Setting, rng: np.random.Generator, resamples: int) -> np.ndarray:
    se = cost_se(setting) or 0.0
    draws: np.ndarray = rng.normal(setting.cost.total, se, resamples)
    return draws


# The function side's resamples draw from a stream of their own, never another setting's
# client stream (pick_share seeds setting i's client draws with seed + i).
FUNCTION_SEED_OFFSET = 1_000_003


def meets_in_resamples(
    setting: Setting, limits: Mapping[str, float], resamples: int, seed: int = 0
) -> np.ndarray:
    """Whether the setting meets every latency limit in each of `resamples` resamples: the
    client's percentiles from its latency histogram, the function's (duration_p95, ...) from
    its Duration histogram, each with its own n / deff draws (drawn apart: the two move
    together in a real run, so a joint share is if anything a little low). A side with no
    histogram meets nothing: a limit without data is never met by chance."""
    ok = np.ones(resamples, dtype=bool)
    sides = (
        (setting.histogram, setting.deff, CLIENT_STATISTICS, ""),
        (setting.function_histogram, setting.function_deff, CLIENT_STATISTICS, FUNCTION_PREFIX),
    )
    for side, (histogram, deff, statistics, prefix) in enumerate(sides):
        own = {s: limits[prefix + s] for s in statistics if prefix + s in limits}
        if not own:
            continue
        draws = (
            resampled(
                histogram,
                list(own),
                deff=deff,
                resamples=resamples,
                seed=seed + side * FUNCTION_SEED_OFFSET,
            )
            if histogram is not None
            else {}
        )
        if not draws:
            return np.zeros(resamples, dtype=bool)
        for statistic, limit in own.items():
            ok &= draws[statistic] <= limit
    return ok


def pick_share(
    candidates: Sequence[Setting],
    pick: Pick,
    limits: Mapping[str, float],
    tolerance_pct: float,
    *,
    speed: SpeedMargin | None = None,
    widening: float = 1.0,
    resamples: int = PICK_RESAMPLES,
    seed: int = 0,
) -> tuple[float, Setting | None]:
    """How often the rule, applied to jointly resampled figures, picks the same setting, and
    the setting it picks most often instead (None: never another).

    candidates: the settings that met the non-latency thresholds (errors, drops, throughput:
    counts, not resampled). In each resample every setting's p50/p95/p99 come from its own
    histogram (n / deff draws), the function's Duration percentiles from its Duration
    histogram (meets_in_resamples), and its cost from its interval; a setting meets the latency
    thresholds in the resample or not; among those that do, the ones that cost the same as the
    cheapest by the run's own test (the difference within the run's interval half-width, i.e.
    its interval would hold zero, or the interval wholly within the margin) tie, and the rule
    decides among them as it did for the run: the smallest memory among the resample's fastest
    and those not clearly slower than it (the cheapest alone when nothing ties). "Clearly
    slower" is the run's answer where the run settled it, and a resampled run's where it left
    it open (speed_relation, faster_in_resamples). A rule that tied
    only within the margin would call identical settings different in every resample whose
    draws landed apart, and flip the pick between twins.
    """
    rng = np.random.default_rng(seed)
    meets = np.zeros((len(candidates), resamples), dtype=bool)
    p95 = np.full((len(candidates), resamples), np.inf)
    cost = np.zeros((len(candidates), resamples))
    for i, setting in enumerate(candidates):
        # The same seed as meets_in_resamples' client draws: one resampled run per setting.
        draws = resampled(
            setting.histogram, ["p95"], deff=setting.deff, resamples=resamples, seed=seed + i
        )
        if not draws:
            continue
        ok = meets_in_resamples(setting, limits, resamples, seed=seed + i)
        meets[i], p95[i], cost[i] = ok, draws["p95"], _cost_draws(setting, rng, resamples)
    memory = np.array([s.memory_mb for s in candidates], dtype=float)
    # Each setting's cost error (None: no interval; only the margin can tie it).
    errors = [cost_se(s) for s in candidates]
    se = np.array([e if e is not None else np.nan for e in errors])
    speed_margin = speed or SpeedMargin()
    # (i, j): i clearly faster than j in each resample. Where the run settled it, as the run
    # did (a confident run stops a pair the moment its interval clears the margin, with the
    # looks' widening paying for that); where it left it open (stopped at max_s with the p95s
    # not yet separated, compared round by round), as a twin run's interval might fall
    # (faster_in_resamples; without paired rounds, as the run left it): holding it fixed
    # made the smallest the pick in 100 % of resamples, "sure" on a question the run had not
    # answered, while its twin separated the two and picked the other.
    faster: dict[tuple[int, int], np.ndarray] = {}

    def clearly(i: int, j: int, r: int) -> bool:
        if (i, j) not in faster:
            a, b = candidates[i], candidates[j]
            relation = speed_relation(a, b, speed_margin, widening)
            twins = None
            if relation == "open":
                twins = faster_in_resamples(a, b, speed_margin, rng, resamples, widening=widening)
            faster[i, j] = twins if twins is not None else np.full(resamples, relation == "faster")
        return bool(faster[i, j][r])

    picks: Counter[int] = Counter()
    for r in range(resamples):
        eligible = np.flatnonzero(meets[:, r])
        if eligible.size == 0:
            picks[-1] += 1
            continue
        c = int(eligible[np.argmin(cost[eligible, r])])
        above = cost[eligible, r] - cost[c, r]
        half = np.nan_to_num(widening * Z_975 * np.hypot(se[c], se[eligible]), nan=0.0)
        margin = tolerance_pct / 100 * cost[c, r]
        same = (above <= half) | (above + half <= margin)
        tied = [int(i) for i in eligible[same]]
        fastest = min(tied, key=lambda i: p95[i, r])
        group = [j for j in tied if j == fastest or not clearly(fastest, j, r)]
        picks[min(group, key=lambda i: (memory[i], cost[i, r]))] += 1
    index = next(i for i, s in enumerate(candidates) if s is pick.setting)
    share = picks[index] / resamples
    others = [(count, i) for i, count in picks.items() if i not in (index, -1)]
    runner_up = candidates[max(others)[1]] if others else None
    return share, runner_up
