"""A setting as the analysis sees it: one sweep point, its steps (repeats) pooled, its figures,
its cost and its threshold verdicts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from runner.analysis._cost import ColdStartCost, CostPerMillion
from runner.analysis._stats import Estimate
from runner.results import DegradedStep, Latency, Step
from runner.scenario import Point, PointRecord, Thresholds

# Latency thresholds a resample can check: the client's percentiles (p50, p95, p99) and the
# function's own REPORT Duration's (duration_p50, ...), each a key of Thresholds with "_ms".
CLIENT_STATISTICS = ("p50", "p95", "p99")
FUNCTION_PREFIX = "duration_"
LATENCY_THRESHOLDS = (*CLIENT_STATISTICS, *(FUNCTION_PREFIX + s for s in CLIENT_STATISTICS))


def latency_limits(thresholds: Thresholds) -> dict[str, float]:
    """The latency thresholds set: statistic ("p95", "duration_p95") -> limit in ms."""
    return {
        statistic: limit
        for statistic in LATENCY_THRESHOLDS
        if (limit := getattr(thresholds, f"{statistic}_ms")) is not None
    }


def threshold_name(statistic: str, limit: float) -> str:
    """ "p95 ≤ 200 ms" (the client's) or "function duration p95 ≤ 50 ms"."""
    if statistic.startswith(FUNCTION_PREFIX):
        return f"function duration {statistic.removeprefix(FUNCTION_PREFIX)} ≤ {limit:g} ms"
    return f"{statistic} ≤ {limit:g} ms"


@dataclass(frozen=True)
class Verdict:
    """One threshold checked against one memory setting."""

    name: str  # "p95 ≤ 200 ms"
    measured: str  # "183.2 ms"
    passed: bool
    # False when the 95 % interval straddles the limit: the verdict could flip on a re-run.
    confident: bool = True
    # p50, p95, p99 (client) or duration_p50, ... (function) for a latency threshold with data
    # to resample; None for counts, and for a duration threshold with no durations to judge
    statistic: str | None = None


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
class Setting(PointRecord):
    """One sweep point (a memory size, and the other axes' values a sweep moves): its steps
    (repeats) pooled."""

    point: Point
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
    # cost.total's 95 % interval, from the warm invocations' billed durations batched per
    # second of the window (None: no per-second billing records, e.g. a schema 3 file)
    cost_estimate: Estimate | None = None
    deff: float = 1.0  # variance inflation of the latency figures (_stats.design_effect)
    # The function's own REPORT Duration in the windows (warm and cold, init excluded): its
    # histogram, percentiles, intervals and design effect, as the client's above. None with
    # the reason in function_missing when the steps hold no durations (no function logs, or
    # a results.json written before they were kept).
    function_histogram: HdrHistogram | None = None
    function_latency: Latency | None = None
    function_estimates: dict[str, Estimate] = field(default_factory=dict)
    function_deff: float = 1.0
    function_missing: str = ""
    verdicts: list[Verdict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # Why its window is too thin to rank ("" when it is not): no pick rests on it.
    short_of_data: str = ""
    degraded: list[DegradedStep] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.measured_s if self.measured_s > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 1.0

    @property
    def drop_rate(self) -> float | None:
        if self.offered is None:
            return None  # closed model: nothing is offered, nothing dropped
        # An open-model window with no arrivals dropped none of them.
        return self.dropped_arrivals / self.offered if self.offered else 0.0

    @property
    def valid(self) -> bool:
        return not self.problems and self.requests > 0

    @property
    def trusted(self) -> bool:
        return self.valid and not self.degraded

    @property
    def meets(self) -> bool:
        return self.trusted and all(verdict.passed for verdict in self.verdicts)

    def estimate(self, statistic: str) -> Estimate | None:
        """The 95 % interval of a latency threshold's statistic ("p95", "duration_p95")."""
        if statistic.startswith(FUNCTION_PREFIX):
            return self.function_estimates.get(statistic.removeprefix(FUNCTION_PREFIX))
        return self.estimates.get(statistic)

    @property
    def p95(self) -> float:
        return self.latency.p95 if self.latency.p95 is not None else float("inf")

    @property
    def cost_spread(self) -> str | None:
        """ "± 0.12 %": the half-width of the cost's 95 % interval against the cost (None: no
        interval). The verdict's sentences and the report both write it so."""
        estimate = self.cost_estimate
        if estimate is None or self.cost.total <= 0:
            return None
        return f"± {50 * (estimate.high - estimate.low) / self.cost.total:.2f} %"

    def p95_against(self, other: Setting, *, figures: bool = True) -> str:
        """ "p95 4.9× lower (20.1 vs 98.3 ms)": this p95 against the other's, as a ratio from
        1.5 up, else as the difference in ms (figures=False: without the two values)."""
        mine, theirs = self.p95, other.p95
        both = f" ({mine:.1f} vs {theirs:.1f} ms)" if figures else ""
        if mine == theirs or math.isinf(mine) or math.isinf(theirs):
            return ("the same p95" if mine == theirs else "p95") + both
        direction = "lower" if mine < theirs else "higher"
        low, high = sorted((mine, theirs))
        if low > 0 and high / low >= 1.5:
            return f"p95 {high / low:.1f}× {direction}{both}"
        return f"p95 {high - low:.1f} ms {direction}{both}"
