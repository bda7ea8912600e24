"""Latency statistics from HDR histograms (never raw samples): intervals and differences."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from hdrh.histogram import HdrHistogram

from runner.results import Latency


def latency(histogram: HdrHistogram) -> Latency:
    """Milliseconds; HDR values are microseconds with 3 significant figures."""
    count = histogram.get_total_count()
    if count == 0:
        return Latency(count=0)

    def at(percentile: float) -> float:
        return float(histogram.get_value_at_percentile(percentile)) / 1000

    return Latency(
        count=count,
        mean=_mean_us(histogram) / 1000,
        min=histogram.get_min_value() / 1000,
        p50=at(50),
        p90=at(90),
        p95=at(95),
        p99=at(99),
        p999=at(99.9),
        max=histogram.get_max_value() / 1000,
    )


def _mean_us(histogram: HdrHistogram) -> float:
    """hdrh's get_mean_value (each count at its bucket's median-equivalent value), over the
    non-empty buckets only: hdrh's own walks every sub-bucket in Python, ~0.15 s for a
    confident run's setting, most of a look's time (bench/sequential.py)."""
    counts = np.ctypeslib.as_array(histogram.counts)[: histogram.counts_len]
    index = np.flatnonzero(counts)
    total = 0
    for i in index:
        value = histogram.get_value_from_index(int(i))
        median = int(histogram.get_lowest_equivalent_value(value)) + (
            int(histogram._hdr_size_of_equiv_value_range(value)) >> 1
        )
        total += int(counts[i]) * median
    return total / int(histogram.get_total_count())


# --- uncertainty: bootstrap on histogram buckets ----------------------------------------------

# Resamples per confidence interval: 2,000 keeps the 2.5/97.5 % quantiles stable to ~1 % of
# their width, in milliseconds even for million-request steps (bucket counts are resampled,
# not requests).
BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A statistic with its bootstrap 95 % confidence interval (ms)."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Difference:
    """b - a for a statistic, its 95 % interval, and whether the interval excludes zero."""

    statistic: str
    value: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


def buckets(histogram: HdrHistogram) -> tuple[np.ndarray, np.ndarray]:
    """Values (ms) and counts of the non-empty buckets (what hdrh's recorded iterator yields,
    read from the counts array: the iterator costs ~50 µs per bucket in pure Python)."""
    counts = np.ctypeslib.as_array(histogram.counts)[: histogram.counts_len]
    index = np.flatnonzero(counts)
    values = [
        histogram.get_highest_equivalent_value(histogram.get_value_from_index(int(i)))
        for i in index
    ]
    return np.asarray(values, dtype=float) / 1000, counts[index].astype(np.int64)


def _statistic(values: np.ndarray, counts: np.ndarray, statistic: str) -> np.ndarray:
    """The statistic for each row of `counts` (rows are resampled histograms)."""
    counts = np.atleast_2d(counts)
    totals = counts.sum(axis=1)
    if statistic == "mean":
        means: np.ndarray = (counts @ values) / totals
        return means
    quantile = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}[statistic]
    cumulative = np.cumsum(counts, axis=1)
    # The first bucket whose cumulative count reaches round(q · total), at least 1: hdrh's
    # get_value_at_percentile, so an interval is centred on the figure the report shows.
    rank = np.floor(quantile * totals + 0.5).astype(np.int64)[:, None]
    index = (cumulative < np.maximum(rank, 1)).sum(axis=1)
    picked: np.ndarray = values[np.minimum(index, len(values) - 1)]
    return picked


def _resample(
    counts: np.ndarray, rng: np.random.Generator, resamples: int, deff: float = 1.0
) -> np.ndarray:
    """Resampled histograms of n / deff draws: the effective number of independent requests."""
    total = int(counts.sum())
    draws = max(1, round(total / max(1.0, deff)))
    return rng.multinomial(draws, counts / total, size=resamples)


# Batch means (the standard for serially correlated simulation output): the latency of
# requests close in time moves together (a busy second on the host, a GC, a cold start), so
# n requests carry less information than n independent draws. Batches of these lengths (s)
# are tried and the largest variance inflation kept: conservative against slow drifts.
BATCH_SECONDS = (1, 2, 5, 10)
# A batch length is judged from at least this many batches. A variance from k batches has
# k - 1 degrees of freedom, so each estimate is widened by (t[k-1] / z)^2: the interval a
# Student t gives, folded into the inflation the bootstrap takes. Before, lengths with fewer
# than 6 batches were skipped and a window too short for any (the quick bench's 4 s steps:
# 5 one-second batches) was taken as independent requests (inflation 1): identical runs then
# differed "significantly" in 3-4 of 6 comparisons (bench/RESULTS.md, "A/A").
MIN_BATCHES = 3
# Two-sided 97.5 % quantiles of Student's t for 1-30 degrees of freedom (any statistics table);
# beyond 30 the normal's 1.96 is within 4 %.
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
         2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
         2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip
Z_975 = 1.96


def t_975(df: int) -> float:
    """Student's t two-sided 97.5 % quantile for `df` degrees of freedom (1.96 beyond 30)."""
    if df < 1:
        raise ValueError("t needs at least one degree of freedom")
    return T_975[df - 1] if df <= len(T_975) else Z_975


def small_sample_factor(batches: int) -> float:
    """(t / z)^2 for a variance estimated from `batches` batches (1 from 31 on)."""
    if batches < 2:
        raise ValueError("a variance needs at least two batches")
    return (t_975(batches - 1) / Z_975) ** 2


@dataclass(frozen=True)
class Batch:
    """A stretch of requests: how many, their mean latency (ms)."""

    requests: int
    mean_ms: float


def design_effect(seconds: Sequence[Sequence[Batch]], variance_ms2: float) -> float:
    """How many times the variance of a mean exceeds what independent requests would give.

    seconds: per step (repeat), its per-second batches in time order. Compares the spread of
    batch means (and of repeat means, when there are several repeats) with the spread
    expected from the per-request variance alone: Kish's design effect, at least 1, widened
    for the few batches it rests on. A window too short to judge by MIN_BATCHES batches of any
    length is judged by its seconds however few (two: t with 1 degree of freedom); a window of
    one second is one draw. Only steps with no timeline at all count as independent requests.
    """
    if variance_ms2 <= 0:
        return 1.0
    effects = [1.0]
    for length in BATCH_SECONDS:
        batches = _batches(seconds, length)
        if len(batches) >= MIN_BATCHES:
            effects.append(_inflation(batches, variance_ms2))
    if len(effects) == 1:  # too short to judge by MIN_BATCHES batches
        batches = _batches(seconds, 1)
        if len(batches) >= 2:
            effects.append(_inflation(batches, variance_ms2))
        elif batches:
            effects.append(float(batches[0].requests))  # one second: one draw
    repeats = [_pool(step) for step in seconds if step]
    if len(repeats) >= 2:
        effects.append(_inflation(repeats, variance_ms2, widen=False))
    return max(effects)


def _batches(seconds: Sequence[Sequence[Batch]], length: int) -> list[Batch]:
    pooled = [
        _pool(step[start : start + length])
        for step in seconds
        for start in range(0, len(step) - length + 1, length)
    ]
    return [b for b in pooled if b.requests]


def _pool(batches: Sequence[Batch]) -> Batch:
    n = sum(b.requests for b in batches)
    return Batch(n, sum(b.requests * b.mean_ms for b in batches) / n if n else 0.0)


def _inflation(batches: Sequence[Batch], variance_ms2: float, *, widen: bool = True) -> float:
    n = sum(b.requests for b in batches)
    grand = sum(b.requests * b.mean_ms for b in batches) / n
    # Under independence E[n_b (m_b - m)^2] = sigma^2 for every batch.
    spread = sum(b.requests * (b.mean_ms - grand) ** 2 for b in batches) / (len(batches) - 1)
    factor = small_sample_factor(len(batches)) if widen else 1.0
    return max(1.0, spread / variance_ms2 * factor)


def mean_interval(seconds: Sequence[Sequence[Batch]]) -> Estimate | None:
    """The mean of every item in the batches and its 95 % interval, from batch means alone
    (no per-item variance needed: billed durations arrive as per-second sums).

    The spread of batch means estimates the variance one item carries once serial correlation
    is counted in; the widest over BATCH_SECONDS (and, with repeats, their spread) is kept,
    each widened by Student's t for the batches it rests on. None when no two batches exist:
    one second says nothing about its own noise.
    """
    pooled = _pool([b for step in seconds for b in step])
    if not pooled.requests:
        return None
    variances = [
        _spread(batches) * small_sample_factor(len(batches))
        for length in BATCH_SECONDS
        if len(batches := _batches(seconds, length)) >= MIN_BATCHES
    ]
    if not variances and len(ones := _batches(seconds, 1)) >= 2:
        variances.append(_spread(ones) * small_sample_factor(len(ones)))
    repeats = [_pool(step) for step in seconds if any(b.requests for b in step)]
    if len(repeats) >= 2:
        variances.append(_spread(repeats))
    if not variances:
        return None
    half = Z_975 * math.sqrt(max(variances) / pooled.requests)
    return Estimate(pooled.mean_ms, pooled.mean_ms - half, pooled.mean_ms + half)


def _spread(batches: Sequence[Batch]) -> float:
    """Σ n_b (m_b - m)² / (k - 1): under independence, each item's variance."""
    grand = _pool(batches).mean_ms
    return sum(b.requests * (b.mean_ms - grand) ** 2 for b in batches) / (len(batches) - 1)


def variance_ms2(histogram: HdrHistogram) -> float:
    values, counts = buckets(histogram)
    total = int(counts.sum())
    if total < 2:
        return 0.0
    mean = float(counts @ values) / total
    return float(counts @ (values - mean) ** 2) / (total - 1)


def resampled(
    histogram: HdrHistogram,
    statistics: Sequence[str],
    *,
    deff: float = 1.0,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Each statistic over `resamples` resampled histograms (for shares: "meets in 97 %")."""
    values, counts = buckets(histogram)
    if counts.sum() == 0:
        return {}
    draws = _resample(counts, np.random.default_rng(seed), resamples, deff)
    return {statistic: _statistic(values, draws, statistic) for statistic in statistics}


def _interval(samples: np.ndarray) -> tuple[float, float]:
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_many(
    histogram: HdrHistogram,
    statistics: Sequence[str],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    deff: float = 1.0,
) -> dict[str, Estimate]:
    """Percentile bootstrap of statistics (p50, p90, p95, p99, mean) of one histogram.

    The histogram's buckets are resampled multinomially with n / deff draws: requests are
    independent draws when deff is 1; `design_effect` measures how far they are not.
    One set of resamples serves every statistic: resampling is the expensive part.
    """
    values, counts = buckets(histogram)
    if counts.sum() == 0:
        return {}
    draws = _resample(counts, np.random.default_rng(seed), resamples, deff)
    estimates = {}
    for statistic in statistics:
        low, high = _interval(_statistic(values, draws, statistic))
        estimates[statistic] = Estimate(float(_statistic(values, counts, statistic)[0]), low, high)
    return estimates


def bootstrap(
    histogram: HdrHistogram,
    statistic: str,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> Estimate | None:
    return bootstrap_many(histogram, [statistic], resamples=resamples, seed=seed).get(statistic)


def compare_many(
    a: HdrHistogram,
    b: HdrHistogram,
    statistics: Sequence[str],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    deff_a: float = 1.0,
    deff_b: float = 1.0,
) -> dict[str, Difference]:
    """Bootstrap intervals of b - a; each significant when it excludes 0 (two-sided, 95 %)."""
    values_a, counts_a = buckets(a)
    values_b, counts_b = buckets(b)
    if counts_a.sum() == 0 or counts_b.sum() == 0:
        return {}
    rng = np.random.default_rng(seed)
    resampled_b = _resample(counts_b, rng, resamples, deff_b)
    resampled_a = _resample(counts_a, rng, resamples, deff_a)
    differences = {}
    for statistic in statistics:
        low, high = _interval(
            _statistic(values_b, resampled_b, statistic)
            - _statistic(values_a, resampled_a, statistic)
        )
        value = (
            _statistic(values_b, counts_b, statistic)[0]
            - _statistic(values_a, counts_a, statistic)[0]
        )
        differences[statistic] = Difference(statistic, float(value), low, high)
    return differences


def compare(
    a: HdrHistogram,
    b: HdrHistogram,
    statistic: str,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> Difference | None:
    return compare_many(a, b, [statistic], resamples=resamples, seed=seed).get(statistic)
