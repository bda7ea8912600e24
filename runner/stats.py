"""Latency statistics from HDR histograms (never raw samples): decode, merge, summarise."""

from __future__ import annotations

from collections.abc import Iterable

from hdrh.histogram import HdrHistogram

from runner.results import Latency

# The workers' histogram range (runner/locustfile.py holds the same numbers: it must stay
# importable without this package, for stock `locust --worker -f -`): 1 µs to 1 hour, 3
# significant figures.
HDR_LOWEST_US = 1
HDR_HIGHEST_US = 3_600_000_000
HDR_DIGITS = 3


def empty_histogram() -> HdrHistogram:
    return HdrHistogram(HDR_LOWEST_US, HDR_HIGHEST_US, HDR_DIGITS)


def decode(encoded: str) -> HdrHistogram:
    return HdrHistogram.decode(encoded.encode())


def merge(encodings: Iterable[str | None]) -> HdrHistogram:
    total = empty_histogram()
    for encoded in encodings:
        if encoded:
            total.add(decode(encoded))
    return total


def encode(histogram: HdrHistogram) -> str | None:
    return histogram.encode().decode() if histogram.get_total_count() else None


def latency(histogram: HdrHistogram) -> Latency:
    """Milliseconds; HDR values are microseconds with 3 significant figures."""
    count = histogram.get_total_count()
    if count == 0:
        return Latency(count=0)

    def at(percentile: float) -> float:
        return float(histogram.get_value_at_percentile(percentile)) / 1000

    return Latency(
        count=count,
        mean=histogram.get_mean_value() / 1000,
        min=histogram.get_min_value() / 1000,
        p50=at(50),
        p90=at(90),
        p95=at(95),
        p99=at(99),
        p999=at(99.9),
        max=histogram.get_max_value() / 1000,
    )


def percentile_ms(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of a small list (e.g. per-invocation durations of one step)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]
