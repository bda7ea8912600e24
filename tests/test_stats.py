"""Statistics on synthetic histograms with known answers."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest

from runner.analysis import latency
from runner.analysis._stats import (
    Batch,
    bootstrap,
    compare,
    compare_many,
    design_effect,
    small_sample_factor,
    variance_ms2,
)
from runner.hdr import empty_histogram


def histogram_of(samples_ms: list[float]) -> Any:
    histogram = empty_histogram()
    for value in samples_ms:
        histogram.record_value(max(1, round(value * 1000)))
    return histogram


def normal(mean: float, sd: float, n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [max(0.01, rng.gauss(mean, sd)) for _ in range(n)]


def test_given_known_samples_then_percentiles_match_to_three_significant_figures() -> None:
    summary = latency(histogram_of([float(v) for v in range(1, 101)]))
    assert summary.count == 100
    assert summary.p50 == pytest.approx(50, rel=1e-3)
    assert summary.p99 == pytest.approx(99, rel=1e-3)
    assert summary.mean == pytest.approx(50.5, rel=1e-3)


@pytest.mark.parametrize("statistic", ["p50", "p95", "mean"])
def test_given_a_sample_then_its_interval_holds_the_true_value(statistic: str) -> None:
    # 5,000 draws from N(100, 10): true p50 = mean = 100, p95 = 100 + 1.645 * 10.
    truth = {"p50": 100.0, "mean": 100.0, "p95": 116.45}[statistic]
    estimate = bootstrap(histogram_of(normal(100, 10, 5000, seed=1)), statistic)
    assert estimate is not None
    assert estimate.low <= truth <= estimate.high
    assert estimate.low <= estimate.value <= estimate.high
    assert estimate.high - estimate.low < 3  # narrow: n is large


@pytest.mark.parametrize("statistic", ["p50", "p95", "mean"])
def test_given_identical_distributions_then_no_significant_difference(statistic: str) -> None:
    a = histogram_of(normal(100, 10, 3000, seed=2))
    b = histogram_of(normal(100, 10, 3000, seed=3))
    difference = compare(a, b, statistic)
    assert difference is not None and not difference.significant
    assert difference.low <= 0 <= difference.high


@pytest.mark.parametrize("statistic", ["p50", "p95", "mean"])
def test_given_a_shift_of_three_ms_then_it_is_detected_with_its_size(statistic: str) -> None:
    a = histogram_of(normal(100, 10, 3000, seed=4))
    b = histogram_of(normal(103, 10, 3000, seed=5))
    difference = compare(a, b, statistic)
    assert difference is not None and difference.significant
    assert difference.low <= 3 <= difference.high + 0.5


def test_given_an_empty_histogram_then_no_estimate() -> None:
    assert bootstrap(empty_histogram(), "p50") is None
    assert compare(empty_histogram(), histogram_of([1.0]), "mean") is None


def test_given_a_histogram_then_the_bootstrap_point_estimate_is_hdrs_own_percentile() -> None:
    rng = np.random.default_rng(3)
    histogram = empty_histogram()
    for value in rng.lognormal(4.0, 0.6, size=754):  # the tutorial's step size: sparse tail
        histogram.record_value(int(value * 1000))
    for statistic, percentile in (("p50", 50), ("p95", 95), ("p99", 99)):
        estimate = bootstrap(histogram, statistic)
        assert estimate is not None
        assert estimate.value == histogram.get_value_at_percentile(percentile) / 1000


def test_a_dropped_histogram_is_freed_without_the_cyclic_collector() -> None:
    # hdrh's histogram and encoder refer to each other; the master decodes several 184 KB
    # histograms per worker report and must not wait for gc to free them (bench/PROFILE.md).
    import gc
    import weakref

    from runner.hdr import decode, encode

    source = histogram_of([float(v) for v in range(1, 101)])
    encoded = encode(source)
    assert encoded is not None
    gc.disable()
    try:
        decoded = decode(encoded)
        merged = empty_histogram()
        merged.add(decoded)
        gone = weakref.ref(decoded)
        del decoded
        assert gone() is None
        assert encode(merged) == encoded  # still encodes: the encoder's link is only weak
    finally:
        gc.enable()


# --- calibration on serially correlated latency ------------------------------------------------

CALIBRATION_TRIALS = 100


def wandering_run(
    rng: np.random.Generator, *, seconds: int, per_second: int = 60
) -> tuple[Any, list[Batch]]:
    """One step of `seconds` (partial first and last seconds, as a real window has): lognormal
    latency around 8 ms whose level wanders from second to second (AR(1), rho 0.5, 5 % a second:
    a host's busy seconds), as histogram and per-second batches."""
    histogram = empty_histogram()
    batches = []
    level = rng.normal(0, 0.05 / np.sqrt(1 - 0.5**2))  # the stationary start
    for second in range(seconds):
        if second:
            level = 0.5 * level + rng.normal(0, 0.05)
        edge = second in (0, seconds - 1)
        n = int(rng.integers(1, per_second)) if edge else per_second
        values = 8.0 * np.exp(level + rng.normal(0, 0.3, n))
        micros, counts = np.unique(np.round(values * 100).astype(int) * 10, return_counts=True)
        for value, count in zip(micros, counts, strict=True):
            histogram.record_value(int(value), int(count))
        batches.append(Batch(n, float(values.mean())))
    return histogram, batches


def false_calls(*, seconds: int, independent: bool) -> float:
    """Share of (pair, statistic) comparisons of identical runs called significant."""
    rng = np.random.default_rng(11)
    called = []
    for trial in range(CALIBRATION_TRIALS):
        (a, seconds_a), (b, seconds_b) = (wandering_run(rng, seconds=seconds) for _ in "ab")
        deff_a = 1.0 if independent else design_effect([seconds_a], variance_ms2(a))
        deff_b = 1.0 if independent else design_effect([seconds_b], variance_ms2(b))
        differences = compare_many(
            a, b, ["p50", "p95", "mean"], resamples=300, seed=trial, deff_a=deff_a, deff_b=deff_b
        )
        called += [d.significant for d in differences.values()]
    return sum(called) / len(called)


def test_given_identical_runs_whose_latency_wanders_then_few_differences_are_called() -> None:
    # GIVEN pairs of identical 9-second steps (the full bench's windows) whose per-second level
    # is correlated from one second to the next
    # WHEN each pair is compared as if requests were independent, then with the design effect
    naive = false_calls(seconds=9, independent=True)
    corrected = false_calls(seconds=9, independent=False)
    # THEN independence calls a change far more often than the 5 % a 95 % interval allows;
    # the design effect (batch means, t-widened) keeps it within it
    assert naive > 0.10, naive
    assert corrected <= 0.05, corrected


def test_given_a_window_too_short_for_six_batches_then_requests_are_not_taken_as_independent() -> (
    None
):
    # GIVEN identical 5-second steps (4 s windows: the quick bench's and the trust tests')
    # THEN the design effect is measured from their seconds (before: 1.0, independence, which
    # called a change in a third of comparisons here), and it cuts false calls by more than half
    rng = np.random.default_rng(5)
    histogram, seconds = wandering_run(rng, seconds=5)
    assert design_effect([seconds], variance_ms2(histogram)) > 1.0
    assert false_calls(seconds=5, independent=False) < false_calls(seconds=5, independent=True) / 2


def test_given_one_or_two_seconds_then_the_design_effect_says_how_little_they_show() -> None:
    seconds = [Batch(50, 10.0), Batch(50, 12.0)]
    # Two batches: t with 1 degree of freedom; one second: one draw; no timeline: independent.
    assert design_effect([seconds], variance_ms2=4.0) == pytest.approx(
        50 * 2 * 1.0 / 4.0 * small_sample_factor(2)
    )
    assert design_effect([seconds[:1]], variance_ms2=4.0) == 50
    assert design_effect([[]], variance_ms2=4.0) == 1.0


def test_given_any_histogram_then_latency_mean_is_hdrhs_own_mean() -> None:
    # The mean is summed over the non-empty buckets only (hdrh's walks every sub-bucket in
    # Python); it must be hdrh's figure to the last digit
    rng = np.random.default_rng(7)
    for scale in (0.3, 5.0, 400.0):
        histogram = empty_histogram()
        for value_ms in rng.lognormal(math.log(scale), 1.0, 3000):
            histogram.record_value(max(1, int(value_ms * 1000)))
        assert latency(histogram).mean == histogram.get_mean_value() / 1000
