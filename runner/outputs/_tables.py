"""What the HTML report and the exports both show: figures as text, a run's memory × axes
matrix, and the atomic write both use for the files they leave in a run directory."""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from runner.analysis import Analysis, Setting, money, point_order, quantity_text
from runner.results import AwsCharges, ChargeLine, Results
from runner.scenario import AXES, Point, point_label, value_name

NO_VALUE = "\u2013"  # en dash, for a figure that was not measured


def ms(value: float | None) -> str:
    return NO_VALUE if value is None or math.isinf(value) else f"{value:,.1f}"


# The axes beside memory in the order a matrix nests its columns: the outermost first, as
# analysis.point_order groups settings (the costliest change least often).
MATRIX_AXES = ("architecture", "handler", "api")


def swept_axes(analysis: Analysis) -> list[str]:
    """The axes beside memory the run moved: those its scenario sweeps, and any a step names."""
    planned = set(analysis.results.scenario.sweep.swept_axes)
    named = {a for s in analysis.results.steps for a in AXES if getattr(s, a) is not None}
    return [axis for axis in AXES if axis in planned | named]


def axes_label(point: Point) -> str:
    """A point's label without its memory size: "HTTP API · tutorial_handler.lambda_handler"
    ("" for a memory-only point)."""
    return point_label(point).partition(" · ")[2]


def without_memory(point: Point) -> Point:
    """The point with memory set aside (one line of the memory chart, one matrix column)."""
    return point.model_copy(update={"memory_mb": 128})


@dataclass(frozen=True)
class MatrixCell:
    point: Point
    setting: Setting | None  # None: planned, but the run never measured it
    picked: bool

    @property
    def label(self) -> str:
        return point_label(self.point)

    @property
    def state(self) -> str:
        """What the cell's mark says: its verdict, or why it has none."""
        s = self.setting
        if s is None:
            return "not measured"
        if s.degraded:
            return "degraded"
        if not s.valid:
            return "not valid"
        if not s.verdicts:
            return "measured"
        return "met" if s.meets else "missed"


@dataclass(frozen=True)
class MatrixHeader:
    """One header row of the matrix: an axis and its values, each spanning its columns."""

    axis: str
    values: list[tuple[str, int]]  # (value as written, columns spanned)


@dataclass(frozen=True)
class Matrix:
    """Every point of a run at a glance: memory sizes as rows, the other axes' combinations as
    columns (nested: the outermost axis in the first header row)."""

    axes: list[str]
    headers: list[MatrixHeader]
    columns: list[str]  # each column's axes, as labels write them
    rows: list[tuple[int, list[MatrixCell | None]]]  # memory size, a cell per column


def matrix(analysis: Analysis) -> Matrix | None:
    """The run's matrix, or None when the sweep moved memory only. Points the plan had but the
    run never reached are cells too ("not measured")."""
    axes = swept_axes(analysis)
    if not axes:
        return None
    scenario = analysis.results.scenario
    settings = {s.point: s for s in analysis.settings}
    points = list(settings) + [p for p in scenario.sweep.planned_points() if p not in settings]
    pick = analysis.recommendation.cheapest
    combos = sorted({without_memory(p) for p in points}, key=lambda c: point_order(c, scenario))
    nested = [axis for axis in MATRIX_AXES if axis in axes]
    headers = []
    for depth, axis in enumerate(nested):
        values: list[tuple[str, int]] = []
        previous: tuple[object, ...] | None = None
        for combo in combos:
            key = tuple(getattr(combo, a) for a in nested[: depth + 1])
            if key == previous:
                values[-1] = (values[-1][0], values[-1][1] + 1)
            else:
                values.append((value_name(axis, getattr(combo, axis)), 1))
            previous = key
        headers.append(MatrixHeader(axis, values))
    by_point = set(points)
    rows = []
    for memory in sorted({p.memory_mb for p in points}):
        cells: list[MatrixCell | None] = []
        for combo in combos:
            point = combo.model_copy(update={"memory_mb": memory})
            if point not in by_point:
                cells.append(None)  # neither planned nor measured (an explicit point list)
                continue
            setting = settings.get(point)
            cells.append(
                MatrixCell(point, setting, picked=pick is not None and pick.point == point)
            )
        rows.append((memory, cells))
    return Matrix(
        axes=nested,
        headers=headers,
        columns=[axes_label(combo) for combo in combos],
        rows=rows,
    )


# A report is for sharing: readable by all, like a file written with the default umask.
REPORT_MODE = 0o644


def write_atomically(target: Path, text: str) -> None:
    """Through a temporary file of our own (created exclusively, with a name nobody can
    guess), then renamed over the target: a link planted beside the report is never
    followed, and a reader never sees half a report."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            os.fchmod(out.fileno(), REPORT_MODE)
            out.write(text)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class ChargeRow:
    """One service's line of the test's own AWS charges: estimated before, measured after."""

    service: str
    estimate: str  # "10,909 requests · $0.038", or NO_VALUE
    measured: str
    measured_is_estimate: bool  # the measured figure rests on an assumption (log bytes)


def charge_rows(results: Results) -> list[ChargeRow]:
    """The test's own charges side by side, the total last; [] when the run kept neither."""
    before, after = results.test_cost_estimate, results.test_cost
    if before is None and after is None:
        return []
    services = [line.service for line in (before or after).lines]  # type: ignore[union-attr]
    services += [
        line.service for line in (after.lines if after else []) if line.service not in services
    ]
    rows = [
        ChargeRow(
            service=service,
            estimate=_charge_text(_line(before, service)),
            measured=_charge_text(_line(after, service)),
            measured_is_estimate=bool((found := _line(after, service)) and found.estimated),
        )
        for service in services
    ]
    rows.append(
        ChargeRow(
            service="Total",
            estimate=money(before.total_usd) if before else NO_VALUE,
            measured=money(after.total_usd) if after else NO_VALUE,
            measured_is_estimate=False,
        )
    )
    return rows


def _line(charges: AwsCharges | None, service: str) -> ChargeLine | None:
    if charges is None:
        return None
    return next((line for line in charges.lines if line.service == service), None)


def _charge_text(line: ChargeLine | None) -> str:
    if line is None:
        return NO_VALUE
    return f"{quantity_text(line.quantity, line.unit)} · {money(line.usd)}"
