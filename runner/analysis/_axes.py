"""The axes of a sweep: the order settings are shown in (`point_order`), which pairs differ
on one axis only (`neighbours`), and what moving each axis does to cost and p95
(`axis_effects`, `effects_sentence`)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runner.analysis._cost import money
from runner.analysis._setting import Setting
from runner.scenario import AXES, Point, Scenario, value_name


def point_order(point: Point, scenario: Scenario) -> tuple[int, int, int, int]:
    """Settings in this order: grouped by architecture, handler and API type in the order the
    scenario lists them (its first value is each axis's baseline), memory rising within a group
    (a memory-only sweep: memory rising)."""
    planned = scenario.sweep.planned_points()

    def rank(axis: str) -> int:
        listed = list(dict.fromkeys(getattr(p, axis) for p in planned))
        value = getattr(point, axis)
        return listed.index(value) if value in listed else len(listed)

    return (rank("architecture"), rank("handler"), rank("api"), point.memory_mb)


def _others(point: Point, axis: str) -> tuple[Any, ...]:
    """The point's values on every axis but `axis` (memory included)."""
    values = {"memory_mb": point.memory_mb, **{a: getattr(point, a) for a in AXES}}
    return tuple(value for name, value in values.items() if name != axis)


def neighbours(settings: Sequence[Setting]) -> list[tuple[Setting, Setting]]:
    """The pairs whose differences the report tests: settings that differ on one axis only,
    next to each other on it (128 vs 256 MB, not 128 vs 1024; REST vs HTTP at one size)."""
    pairs: list[tuple[Setting, Setting]] = []
    for axis in ("memory_mb", *AXES):
        groups: dict[tuple[Any, ...], list[Setting]] = {}
        for setting in settings:  # already in point_order: memory rising within a group
            if axis == "memory_mb" or getattr(setting.point, axis) is not None:
                groups.setdefault(_others(setting.point, axis), []).append(setting)
        for group in groups.values():
            pairs += itertools.pairwise(group)
    return pairs


@dataclass(frozen=True)
class AxisEffect:
    """What moving one axis does, everything else held: the mean over the matched pairs of
    valid settings (the same other values, memory included) of b minus a."""

    axis: str  # "memory_mb", "api", "architecture" or "handler"
    a: str  # from: "REST API", "128 MB"
    b: str  # to: "HTTP API", "1024 MB"
    cost_delta: float  # dollars per 1M requests (steady state)
    p95_delta_ms: float
    pairs: int  # matched pairs averaged

    @property
    def change(self) -> str:
        return f"{self.a} → {self.b}"

    def cost_words(self) -> str:
        if abs(self.cost_delta) < 0.0005:
            return f"{self.change} leaves the bill unchanged"
        if self.axis == "memory_mb":
            return f"{self.change} changes it by {_signed_money(self.cost_delta)}"
        verb = "saves" if self.cost_delta < 0 else "costs"
        extra = "" if self.cost_delta < 0 else " more"
        return f"{self.b} instead of {self.a} {verb} {money(abs(self.cost_delta))}{extra} per 1M"

    def latency_words(self) -> str:
        direction = "lower" if self.p95_delta_ms < 0 else "higher"
        return f"{self.change}: p95 {abs(self.p95_delta_ms):.1f} ms {direction}"


def _signed_money(dollars: float) -> str:
    return ("-" if dollars < 0 else "+") + money(abs(dollars))


def axis_effects(settings: Sequence[Setting]) -> list[AxisEffect]:
    """For each axis the sweep moved: from its first value (memory: the smallest) to each
    other (memory: the largest), the mean change in cost and p95 over matched pairs of valid
    settings; ordered by how much each moves the bill."""
    usable = [s for s in settings if s.trusted and s.latency.p95 is not None]
    effects: list[AxisEffect] = []
    for axis in ("memory_mb", *AXES):
        values = list(dict.fromkeys(getattr(s.point, axis) for s in settings))
        if None in values or len(values) < 2:
            continue
        if axis == "memory_mb":
            values = [min(values), max(values)]
        by_others: dict[tuple[Any, ...], dict[Any, Setting]] = {}
        for setting in usable:
            by_others.setdefault(_others(setting.point, axis), {})[getattr(setting.point, axis)] = (
                setting
            )
        base = values[0]
        for other in values[1:]:
            pairs = [(g[base], g[other]) for g in by_others.values() if base in g and other in g]
            if not pairs:
                continue
            effects.append(
                AxisEffect(
                    axis=axis,
                    a=value_name(axis, base),
                    b=value_name(axis, other),
                    cost_delta=sum(b.cost.total - a.cost.total for a, b in pairs) / len(pairs),
                    p95_delta_ms=sum(b.p95 - a.p95 for a, b in pairs) / len(pairs),
                    pairs=len(pairs),
                )
            )
    return sorted(effects, key=lambda e: -abs(e.cost_delta))


def effects_sentence(effects: Sequence[AxisEffect]) -> str:
    """ "What moves the bill: HTTP API instead of REST API saves $2.50 per 1M; 128 MB → 1024 MB
    changes it by +$0.07. What moves latency: ..." (largest first)."""
    by_latency = sorted(effects, key=lambda e: -abs(e.p95_delta_ms))
    return (
        "What moves the bill: "
        + "; ".join(e.cost_words() for e in effects)
        + ". What moves latency most: "
        + "; ".join(e.latency_words() for e in by_latency[:2])
        + " (steady-state cost per 1M requests; the mean over settings that differ on that "
        "axis only)."
    )
