"""Statistics on synthetic histograms with known answers."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from runner.stats import bootstrap, compare, empty_histogram, latency


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

    from runner.stats import decode, encode

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
