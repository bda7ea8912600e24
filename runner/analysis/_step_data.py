"""A step's traffic as the master merged it from every worker's reports: what measure reads.

Plain data with HDR histograms; the swarm (runner/load) fills it from the workers' wire format,
so reading it needs neither Locust nor gevent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runner.hdr import empty_histogram


@dataclass(slots=True)
class SecondStats:
    """One second of a step, merged on the master from every worker's SecondRecord.

    Its histogram is replaced by its p95 once sealed (SEAL_AFTER_S): the master's memory then
    grows with seconds of load, not requests. Counts keep adding up after the seal.
    """

    n: int
    failures: int
    sum_ms: float
    histogram: Any | None  # HdrHistogram until sealed
    p95_ms: float | None = None  # set when sealed

    def seal(self) -> None:
        if self.histogram is not None:
            self.p95_ms = self.histogram.get_value_at_percentile(95) / 1000
            self.histogram = None

    @property
    def mean_ms(self) -> float:
        return self.sum_ms / self.n

    def current_p95_ms(self) -> float:
        """Its p95 in ms: the sealed figure, or its histogram's as of now."""
        if self.histogram is None:
            assert self.p95_ms is not None  # sealed
            return self.p95_ms
        return float(self.histogram.get_value_at_percentile(95) / 1000)


@dataclass
class StepData:
    """Everything the workers reported for one step, merged on the master."""

    step: str
    total: Any = field(default_factory=empty_histogram)
    by_name: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, list[int]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: dict[int, SecondStats] = field(default_factory=dict)  # by epoch second
    dropped: int = 0
    per_worker: dict[str, int] = field(default_factory=dict)
    final_from: set[str] = field(default_factory=set)
    lost_workers: dict[str, str] = field(default_factory=dict)
    lost_at: dict[str, float] = field(default_factory=dict)  # epoch seconds of detection
    users_at: dict[int, int] = field(default_factory=dict)
    load_started: float = 0.0  # when the master told the workers to start
    load_ended: float = 0.0  # when the master told the workers to stop (the window's end)
    # Each worker's own CPU % (Locust's heartbeat, once a second) during the measured window:
    # a generator near a full core delays its own timers and inflates the latency it records.
    worker_cpu: dict[str, list[float]] = field(default_factory=dict)
    measure_from: float = 0.0  # epoch seconds: the end of the warm-up
    measure_until: float = 0.0  # epoch seconds: the end of the configured load
    # worker -> when its latest report arrived (epoch seconds): what it counted is complete
    # up to then, for a live rate over the measured window.
    reported_at: dict[str, float] = field(default_factory=dict)

    def seal(self, before: int) -> None:
        """Reduce the seconds before `before` to their p95.

        Workers report every 3 s, so a second is complete long before SEAL_AFTER_S; keeping
        only a number for it bounds the master's memory by seconds of load, not requests.
        """
        for second, stats in self.seconds.items():
            if second < before:
                stats.seal()


@dataclass(frozen=True)
class Tick:
    """The running step as the master sees it at one poll (four a second): what the live line
    is made of."""

    elapsed_s: float  # since the load started
    users: int  # Locust's current user count
    locust_rps: float  # Locust's own current rate (warm-up included)
    data: StepData  # the step's merged full-resolution histograms so far
