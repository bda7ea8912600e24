"""results.json → one self-contained HTML report (templates/comparison.html.j2).

The file needs no network to view: Chart.js and its annotation plugin are inlined from
node_modules (pinned in package-lock.json), and a Content-Security-Policy forbids any
fetch. Jinja autoescapes everything user-supplied; chart data reaches the scripts through
`|tojson`, which escapes `<`, `>` and `&`, so a `</script>` in a name stays text.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from runner import __version__
from runner.analysis import (
    MIN_DELIVERED,
    PRICES_US_EAST_1,
    Analysis,
    AxisEffect,
    RunComparison,
    RunDifference,
    Setting,
    analyse,
    compare_run_pair,
    effects_sentence,
    money,
    point_order,
    run_verdict,
)
from runner.errors import BadInput, SetupError
from runner.lambda_facts import MB_PER_VCPU
from runner.outputs._tables import (
    NO_VALUE,
    Matrix,
    axes_label,
    charge_rows,
    matrix,
    ms,
    swept_axes,
    without_memory,
    write_atomically,
)
from runner.results import Results, RunVerdict, read_results
from runner.scenario import AXES, Point, PointRecord, point_label, value_name
from runner.stack import PROJECT_ROOT

TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE = "comparison.html.j2"
# Charting library files, inlined in this order (the plugin registers itself with Chart).
CHART_SCRIPTS = (
    "node_modules/chart.js/dist/chart.umd.min.js",
    "node_modules/chartjs-plugin-annotation/dist/chartjs-plugin-annotation.min.js",
)
# Percentiles drawn in the percentile chart (0 and 100 are min and max).
CHART_PERCENTILES = (0, 25, 50, 75, 90, 95, 99, 99.9, 100)
# The cost chart draws the p95 threshold only within this factor of the slowest point.
LIMIT_LINE_SPAN = 1.5
# One colour per memory setting, in ascending memory order (Okabe-Ito, colour-blind safe).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000")


def percent(share: float) -> str:
    return f"{share:.2%}"


def when(epoch: float | None) -> str:
    if epoch is None:
        return NO_VALUE
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def clock(epoch: float | None) -> str:
    if epoch is None:
        return NO_VALUE
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S UTC")


def breakable(text: str) -> Markup:
    """Text that may wrap after a dot or an underscore (a handler's module.function in a narrow
    column), escaped."""
    return Markup(str(escape(text)).replace(".", ".<wbr>").replace("_", "_<wbr>"))


def signed_money(dollars: float) -> str:
    """ "+$0.039", or "$2.50" after a minus sign (U+2212): a difference in money."""
    return ("+" if dollars >= 0 else "\u2212") + money(abs(dollars))


def chart_library() -> Markup:
    parts = []
    for relative in CHART_SCRIPTS:
        path = PROJECT_ROOT / relative
        try:
            parts.append(path.read_text(encoding="utf-8"))
        except OSError:
            raise SetupError(
                f"{path} is missing: the report inlines its charting library from "
                "node_modules; run `npm ci` in the project directory"
            ) from None
    text = "\n".join(parts)
    if "</script" in text.lower():  # would end the inline <script> early
        raise SetupError(f"{CHART_SCRIPTS[0]}: cannot be inlined (contains </script>)")
    return Markup(text)  # the pinned library's own code, checked above


# The two runs of `report A B`: one colour and one marker each (Okabe-Ito blue and vermilion;
# the marker keeps them apart in greyscale print too).
RUN_LETTERS = ("A", "B")
RUN_COLOURS = ("#0072B2", "#D55E00")
RUN_MARKERS = ("circle", "triangle")
# A chart legend shows at most this much of a run id (the header gives it whole).
CHART_RUN_ID_CHARS = 24


@dataclass(frozen=True)
class Column:
    label: str
    help: str  # shown as the header's tooltip and in the legend under its table


# Every table column, explained once: the header's <abbr title> and the legend both read this.
COLUMNS: dict[str, Column] = {
    name: Column(label, help)
    for name, label, help in (
        ("memory", "memory", "The Lambda memory size (MB); CPU is given in proportion to it."),
        (
            "point",
            "setting",
            "The sweep point: its memory size, then the API type, architecture and handler the "
            "sweep moved (an axis it did not move is the target's own).",
        ),
        (
            "api",
            "API type",
            "The API Gateway type the requests went through: REST API ($3.50 per 1M calls) or "
            "HTTP API ($1.00 per 1M, metered per 512 KB).",
        ),
        (
            "architecture",
            "architecture",
            "The function's instruction set: x86_64 or arm64 (arm64's GB-second costs 20 % less).",
        ),
        (
            "handler",
            "handler",
            "The function's handler (module.function in the deployed package): the code variant.",
        ),
        (
            "axis",
            "axis",
            "What was moved, everything else held: memory, API type, architecture or handler.",
        ),
        (
            "change",
            "change",
            "From the axis's first value (memory: the smallest size) to another.",
        ),
        (
            "bill_delta",
            "Δ cost / 1M",
            "Mean change in the steady-state US$ per 1M requests over the pairs of settings "
            "that differ on this axis only.",
        ),
        ("p95_delta", "Δ p95 ms", "Mean change in p95 latency over those same pairs."),
        ("pairs", "pairs", "Pairs of valid settings that differ on this axis only, averaged."),
        (
            "run",
            "A, B",
            "The run: A is the first results file given, B the second (the tag in the first "
            "column).",
        ),
        ("requests", "requests", "Requests completed in the measured window (warm-up excluded)."),
        ("rps", "req/s", "Requests completed per second of the measured window."),
        ("errors", "errors", "Failed requests, with their share of all requests."),
        (
            "mean",
            "mean ms",
            "Mean client-side latency; under it, its bootstrap 95 % confidence interval "
            "(95 % CI): the range the true value lies in, 19 times in 20.",
        ),
        ("p50", "p50 ms", "Median latency: half the requests were faster; under it, its 95 % CI."),
        (
            "p95",
            "p95 ms",
            "95th percentile latency: 1 request in 20 was slower; under it, its 95 % CI. "
            "The speed the recommendation ranks on.",
        ),
        ("p99", "p99 ms", "99th percentile latency: 1 request in 100 was slower."),
        (
            "dropped",
            "dropped",
            "Open model only: arrivals the load generator could not send (max in flight "
            "reached), of those offered.",
        ),
        (
            "cold_starts",
            "cold starts",
            "Invocations in the window that started a new sandbox (with an Init Duration).",
        ),
        (
            "cost",
            "cost / 1M",
            "US$ per one million requests at steady state (warm invocations): Lambda compute "
            "and requests, API Gateway REST and DynamoDB, at the dated us-east-1 prices; under "
            "it, the half-width of its 95 % interval (from the spread of the warm invocations' "
            "billed duration from second to second).",
        ),
        (
            "candidate",
            "candidate",
            "A setting that meets every threshold: the cheapest first, then each other.",
        ),
        (
            "cost_delta",
            "Δ cost / 1M",
            "This candidate's cost per 1M requests minus the cheapest's (US$).",
        ),
        ("cost_delta_pct", "Δ %", "That difference as a percentage of the cheaper bill."),
        (
            "cost_delta_ci",
            "interval of Δ",
            "The interval of the difference: both settings' cost intervals combined. 95 % in a "
            "fixed run; in a confident run (sweep.until: confident) widened to hold across all "
            "of its looks, as the look that stopped a setting judged it.",
        ),
        (
            "cost_margin",
            "margin",
            "The practical margin: decision.cost_tolerance_pct of the cheaper bill. A "
            "difference wholly inside ±margin (or holding zero) is no difference.",
        ),
        (
            "cost_relation",
            "cost is",
            "What the rule made of the difference: the same (its interval holds zero or lies "
            "within the margin), different (wholly beyond it) or not yet known (it straddles "
            "the margin: measure longer).",
        ),
        (
            "p95_versus",
            "p95 vs the cheapest",
            "This candidate's p95 against the cheapest's: what the extra cost buys, or saves.",
        ),
        (
            "cold_cost",
            "cold starts add / 1M",
            "US$ that cold starts add per one million requests at the measured rate of cold "
            "starts; shown beside the cost, not ranked on.",
        ),
        (
            "thresholds",
            "thresholds",
            "Whether the size met every threshold of the scenario (degraded or not valid: no "
            "verdict).",
        ),
        ("invocations", "invocations", "Function invocations whose request arrived in the window."),
        (
            "init",
            "init ms (mean / max)",
            "Init Duration of the cold starts: sandbox start and import.",
        ),
        (
            "cold_invocation",
            "cold invocation ms",
            "Mean handler Duration of cold invocations, init excluded.",
        ),
        ("warm_duration", "warm duration ms (mean / p95)", "Handler Duration of warm invocations."),
        (
            "billed",
            "billed ms (mean)",
            "Billed Duration per invocation (1 ms granularity, init included on cold starts).",
        ),
        ("max_memory", "max memory used", "The highest Max Memory Used of any invocation."),
        (
            "warmup_invocations",
            "warm-up (cold)",
            "Invocations during the warm-up, outside the window (of them cold starts).",
        ),
        (
            "before_invocations",
            "before the load (cold)",
            "Invocations before the load began: seeding and the previous step's tail (of them "
            "cold starts).",
        ),
        ("lambda_compute", "Lambda compute", "Billed duration × memory (GB-seconds) × price."),
        ("lambda_requests", "Lambda requests", "Lambda's price per one million requests."),
        ("api_gateway", "API Gateway (REST)", "API Gateway REST's price per one million calls."),
        (
            "api_gateway_by_type",
            "API Gateway",
            "API Gateway's price per one million calls for the setting's API type: REST $3.50, "
            "HTTP API $1.00 (per 512 KB metered).",
        ),
        (
            "dynamodb",
            "DynamoDB",
            "Consumed read and write request units per request (pooled over the run) × price.",
        ),
        ("total", "total", "The sum: US$ per one million requests."),
        ("based_on", "based on", 'What the figures rest on; "estimate" when not measured.'),
        ("threshold", "threshold", "A limit from the scenario's thresholds."),
        ("size", "each memory size", "Pass or fail at this size, with the measured value."),
        ("step", "step", "The step number, in the order the sweep ran them."),
        ("repeat", "repeat", "Which repeat of this memory size the step was."),
        ("window", "measured window", "When the measured window opened (UTC) and its length."),
        ("failures", "failures", "Failed requests."),
        ("dropped_arrivals", "dropped arrivals", "Open model: arrivals not sent (max in flight)."),
        (
            "overhead",
            "overhead s",
            "Seconds from the previous step's load end to this step's load start (memory "
            "change, settle, seeding, workers rejoining): time the sweep spent not measuring.",
        ),
        ("problems", "problems", "Why a step is not valid (e.g. a lost worker)."),
        (
            "cw_minutes",
            "minutes read",
            "The whole minutes around the measured window that CloudWatch's GetMetricData read "
            "(Lambda and API Gateway publish one figure a minute), and how many reads it took "
            "until the last minute was published.",
        ),
        (
            "lambda_throttles",
            "Lambda throttles",
            "Lambda's Throttles of Throttles + Invocations: calls refused for concurrency.",
        ),
        (
            "peak_concurrency",
            "peak concurrency",
            "ConcurrentExecutions' maximum over the minutes / the function's concurrency limit "
            "(reserved, else the account's unreserved) when it could be read.",
        ),
        (
            "api_errors",
            "API 4xx / 5xx",
            "API Gateway's 4XXError / 5XXError (REST) or 4xx / 5xx (HTTP API) of its Count of "
            "requests, for the API type the step used.",
        ),
        (
            "dynamodb_throttles",
            "DynamoDB throttles",
            "The table's ReadThrottleEvents / WriteThrottleEvents.",
        ),
        (
            "metrics_source",
            "source",
            "CloudWatch GetMetricData, or why the step has no figures (its last minute not "
            "published in time, access denied): never zeros.",
        ),
        ("trust", "verdict", "ok, or degraded with its measured cause: nothing rests on it."),
        (
            "delivered",
            "CPU delivered",
            "CPU the sandboxes ran over what they were ready to use within their quota.",
        ),
        (
            "host_wait",
            "waiting on the host",
            "Share of runnable time the sandboxes waited for a CPU beyond their quota.",
        ),
        (
            "per_period",
            f"CPU per 20 ms period / memory/{MB_PER_VCPU}",
            "CPU per active 20 ms period (bounds), against the share the memory size buys.",
        ),
        ("throttled", "periods throttled", "Share of 20 ms periods in which the quota bound."),
        (
            "generator_cpu",
            "busiest Locust worker %",
            "Mean / max % of a core used by the busiest load worker (over 90 %: degraded).",
        ),
        ("steal", "steal", "CPU time the hypervisor took from this machine."),
        ("pressure", "CPU pressure", "Share of time some task waited for a CPU (PSI)."),
        ("fidelity_mode", "how memory was applied", "cgroup v1/v2 quota, CPU-time pacing, or aws."),
        (
            "share_nominal",
            "CPU share nominal",
            f"memory/{MB_PER_VCPU} of one CPU: what Lambda gives.",
        ),
        ("share_measured", "CPU share measured", "The share a calibration probe measured."),
        ("quota_correction", "quota correction", "Factor applied to the quota to hit nominal."),
        (
            "configured_memory",
            "memory reported",
            "Memory size the target reported after setting it.",
        ),
        ("request", "request", "A request of the scenario's mix, by name."),
        ("error", "error", "The kind of failure, as the load generator recorded it."),
        ("count", "count", "How many requests failed so."),
        ("worker", "worker", "A Locust worker process, by id."),
        ("state", "state", "ok, or lost (stopped reporting) with when it was noticed."),
        (
            "delta",
            "Δ B - A",
            "B minus A: the difference, its 95 % interval and whether it is a change (cost: "
            "judged against B's margin on cost, as the rule judges two settings).",
        ),
        (
            "function_delta",
            "Δ B - A function duration",
            "B minus A in the function's own REPORT Duration (in the p50 and p95 columns): its "
            "95 % interval and whether it is a change, judged as client latency is. It leaves "
            "out the network and API Gateway, which dominate client latency from far away.",
        ),
    )
}


def _client_and_function_columns() -> dict[str, Column]:
    """The client/function table's columns: each percentile's three, explained alike."""
    columns = {}
    for stat in ("p50", "p95", "p99"):
        columns[f"client_{stat}"] = Column(
            f"client {stat} ms",
            f"The {stat} the load generator measured: the network, API Gateway, Lambda's own "
            "overhead, init on cold starts and the function; under it, its 95 % CI.",
        )
        columns[f"function_{stat}"] = Column(
            f"function {stat} ms",
            f"The {stat} of the function's own REPORT Duration (every invocation in the "
            "window, cold ones without their Init Duration): immune to the network; under it, "
            "its 95 % CI by the same method.",
        )
        columns[f"outside_{stat}"] = Column(
            f"outside {stat} ms",
            f"Client {stat} minus function {stat}: the network, API Gateway, Lambda's "
            "overhead and init. When it dwarfs the differences between sizes, judge on the "
            "function's duration or run the load from the region.",
        )
    return columns


COLUMNS.update(_client_and_function_columns())


class Legends:
    """Each column explained in full under the first table that shows it; later tables name
    it (the template calls take() once per table, top to bottom)."""

    def __init__(self) -> None:
        self.explained: set[str] = set()

    def take(self, keys: Sequence[str]) -> tuple[list[Column], list[Column]]:
        new = [COLUMNS[key] for key in keys if key not in self.explained]
        again = [COLUMNS[key] for key in keys if key in self.explained]
        self.explained.update(keys)
        return new, again


@dataclass(frozen=True)
class CostRow:
    """One candidate in a run's cost differences: the cheapest meeting every threshold, then
    each other, against it (the rule's reading of the difference, and what it buys in p95)."""

    setting: Setting
    cheapest: bool
    picked: bool
    delta: float | None = None  # US$ per 1M, this minus the cheapest (None: the cheapest)
    pct: float | None = None  # of the cheaper bill
    low: float | None = None  # the 95 % interval of delta (None: a setting has no interval)
    high: float | None = None
    margin: float | None = None
    relation: str = "the cheapest"  # "the same", "different", "not yet known"
    p95_versus: str = ""  # "p95 4.9× lower (20.1 vs 98.3 ms)"


@dataclass(frozen=True)
class RunView:
    """One run as the template shows it: its letter, colour, analysis and verdict."""

    letter: str
    index: int
    analysis: Analysis
    verdict: RunVerdict

    @property
    def results(self) -> Results:
        return self.analysis.results

    @property
    def colour(self) -> str:
        return RUN_COLOURS[self.index % len(RUN_COLOURS)]

    @property
    def marker(self) -> str:
        return RUN_MARKERS[self.index % len(RUN_MARKERS)]

    @property
    def name(self) -> str:
        """The letter and run id, as chart legends show it (a long id cut short)."""
        run_id = self.results.run_id
        if len(run_id) > CHART_RUN_ID_CHARS:
            run_id = run_id[: CHART_RUN_ID_CHARS - 1] + "…"
        return f"{self.letter} ({run_id})"

    def setting(self, point: Point) -> Setting | None:
        return next((s for s in self.analysis.settings if s.point == point), None)

    @property
    def axes(self) -> list[str]:
        return swept_axes(self.analysis)

    @property
    def matrix(self) -> Matrix | None:
        return matrix(self.analysis)

    @property
    def effects(self) -> list[AxisEffect]:
        """What each axis moves, shown as its own block when the sweep moved more than memory."""
        return self.analysis.effects if self.axes else []

    @property
    def explanation(self) -> list[str]:
        """The recommendation's lines, less what the banner and the effects block already
        show (how sure, what moves the bill)."""
        shown = set()
        if self.analysis.confidence is not None:
            shown.add(self.analysis.confidence.statement)
        if self.effects:
            shown.add(effects_sentence(self.effects))
        return [line for line in self.analysis.recommendation.explanation if line not in shown]

    @property
    def picked(self) -> Point | None:
        pick = self.analysis.recommendation.cheapest
        return pick.point if pick is not None else None

    @property
    def decided_by(self) -> str | None:
        """Which part of the rule made the pick, in words (None: no pick)."""
        recommendation = self.analysis.recommendation
        decision = recommendation.decision
        if decision is None or recommendation.cheapest is None:
            return None
        return decision.decided_by_words

    @property
    def cost_rows(self) -> list[CostRow]:
        """The cheapest setting meeting every threshold, then each other candidate against it
        (empty: the rule decided nothing, e.g. a degraded step or none met the thresholds)."""
        recommendation = self.analysis.recommendation
        decision = recommendation.decision
        if decision is None:
            return []
        pick = recommendation.cheapest
        cheapest = decision.cheapest
        rows = [CostRow(cheapest, cheapest=True, picked=cheapest is pick)]
        for d in decision.differences:
            rows.append(
                CostRow(
                    d.b,
                    cheapest=False,
                    picked=d.b is pick,
                    delta=d.value,
                    pct=d.pct,
                    low=d.low if d.has_interval else None,
                    high=d.high if d.has_interval else None,
                    margin=d.margin,
                    relation=d.relation_words,
                    p95_versus=d.b.p95_against(cheapest, figures=False),
                )
            )
        return rows

    @property
    def pick(self) -> str:
        return pick_line(self.verdict, self.axes)

    @property
    def deploy(self) -> list[tuple[str, str, str]]:
        """The pick on every axis, as (column key, name, value): what to deploy. Empty for a
        memory-only sweep (its headline says it all)."""
        point = self.verdict.recommended
        if point is None or not self.axes:
            return []
        swept = set(self.axes)
        out = [("memory", "memory", f"{point.memory_mb} MB")]
        for axis in AXES:
            value = getattr(point, axis)
            shown = value_name(axis, value) if value is not None else "unknown"
            if axis not in swept:
                shown += " (not swept: the target's)"
            out.append((axis, COLUMNS[axis].label, shown))
        return out


def pick_line(verdict: RunVerdict, axes: Sequence[str] = ()) -> str:
    """The headline's first words: the verdict's pick on every swept axis (`axes`), or that it
    made none, in its words."""
    if verdict.recommended_mb is None:
        if verdict.headline.startswith("No recommendation"):
            return verdict.headline
        return "No recommendation"
    point = Point(memory_mb=verdict.recommended_mb)
    if verdict.recommended is not None:
        point = point.model_copy(update={axis: getattr(verdict.recommended, axis) for axis in axes})
    line = f"Recommendation: {point_label(point)}"
    if verdict.confidence.level == "too close to call":
        line += " (too close to call)"
    return line


def views(analyses: Sequence[Analysis]) -> list[RunView]:
    return [
        RunView(letter=RUN_LETTERS[i], index=i, analysis=a, verdict=run_verdict(a))
        for i, a in enumerate(analyses)
    ]


@dataclass(frozen=True)
class PointRow(PointRecord):
    """One sweep point across the runs: each run's setting (None: not measured there) and,
    for two runs, B - A per metric."""

    point: Point
    settings: list[Setting | None]
    differences: dict[str, RunDifference]


def point_rows(runs: Sequence[RunView], pair: RunComparison | None) -> list[PointRow]:
    """A row per point any run measured: the first run's in its order, then the second's new
    ones (a memory-only sweep: memory rising)."""
    points = list(dict.fromkeys(s.point for run in runs for s in run.analysis.settings))
    if runs:
        scenario = runs[0].results.scenario
        points.sort(key=lambda p: point_order(p, scenario))
    rows = []
    for point in points:
        differences = {d.metric: d for d in (pair.differences if pair else []) if d.point == point}
        rows.append(PointRow(point, [run.setting(point) for run in runs], differences))
    return rows


def chart_data(runs: Sequence[RunView]) -> dict[str, Any]:
    """Plain JSON for the template's scripts (passed with |tojson)."""
    points = list(
        dict.fromkeys(s.point for run in runs for s in run.analysis.settings if _charted(s))
    )
    colours = {point: PALETTE[i % len(PALETTE)] for i, point in enumerate(points)}
    two = len(runs) > 1
    noun = "setting" if any(run.axes for run in runs) else "memory size"
    return {
        "two": two,
        "memory": _memory_chart(runs),
        "cost": _cost_chart(runs),
        "percentiles": {
            "noun": noun,
            "labels": [_percentile_label(q) for q in CHART_PERCENTILES],
            "series": [
                {
                    "label": (f"{run.letter} " if two else "") + s.label,
                    "colour": colours.get(s.point, PALETTE[-1]),
                    "run": run.index,
                    "values": [
                        round(s.histogram.get_value_at_percentile(q) / 1000, 3)
                        if s.requests
                        else None
                        for q in CHART_PERCENTILES
                    ],
                }
                for run in runs
                for s in run.analysis.settings
            ],
        },
        "timeline": {**_timeline(runs, colours), "noun": noun},
    }


def _charted(setting: Setting) -> bool:
    return bool(setting.requests) and setting.latency.p95 is not None


def _degraded_points(run: RunView) -> set[Point]:
    """Points with a step measured on a starved host or invalid: they say so on the charts
    too, not only in the tables."""
    steps = run.analysis.results.steps
    return {step.point for step in steps if not step.valid or step.trust.degraded}


def _combos(runs: Sequence[RunView]) -> list[Point]:
    """The combinations of the other axes the runs measured (one per line of the memory
    chart), in the first run's order."""
    return list(
        dict.fromkeys(
            without_memory(s.point) for run in runs for s in run.analysis.settings if _charted(s)
        )
    )


def _memory_chart(runs: Sequence[RunView]) -> dict[str, Any]:
    """Power Tuning's view: memory on x, cost and p95 each on its own axis from zero; one pair
    of lines per run and combination of the other axes the sweep moved."""
    sizes = sorted({s.memory_mb for run in runs for s in run.analysis.settings if _charted(s)})
    combos = _combos(runs)
    several = len(combos) > 1 or any(axes_label(c) for c in combos)
    two = len(runs) > 1
    series: list[dict[str, Any]] = []
    for run in runs:
        degraded = _degraded_points(run)
        for index, combo in enumerate(combos):
            by_size = {
                s.memory_mb: s
                for s in run.analysis.settings
                if _charted(s) and without_memory(s.point) == combo
            }
            if not by_size:
                continue
            pick = run.picked
            label = (run.name if two else "") + (
                (" · " if two else "") + axes_label(combo) if several else ""
            )
            series.append(
                {
                    "run": run.index,
                    "letter": run.letter,
                    "label": label,
                    "combo": axes_label(combo),
                    "degraded": [m in by_size and by_size[m].point in degraded for m in sizes],
                    "colour": PALETTE[index % len(PALETTE)] if several else run.colour,
                    "marker": run.marker,
                    "cost": [
                        round(by_size[m].cost.total, 4) if m in by_size else None for m in sizes
                    ],
                    # The point labels, in the table's own words (analysis.money).
                    "cost_labels": [
                        money(by_size[m].cost.total) if m in by_size else None for m in sizes
                    ],
                    "p95": [round(by_size[m].p95, 3) if m in by_size else None for m in sizes],
                    "recommended": pick.memory_mb
                    if pick is not None
                    and without_memory(pick) == combo
                    and pick.memory_mb in by_size
                    else None,
                }
            )
    picks = []
    for run in runs:
        who = f"{run.letter}: " if two else ""
        pick = run.picked
        if pick is None:
            picks.append(who + "no recommendation")
        else:
            picks.append(who + ("recommends " if two else "recommended: ") + point_label(pick))
    return {
        "sizes": sizes,
        "labels": [f"{m} MB" for m in sizes],
        "series": series,
        "several": several,
        # More than one line pair: only the pick's points are labelled, or labels pile up.
        "crowded": len(combos) > 1,
        "degraded": any(any(s["degraded"]) for s in series),
        "combo_axes": " × ".join(
            COLUMNS[a].label for a in AXES if any(getattr(c, a) is not None for c in combos)
        ),
        "picks": picks,
        "p95_limit": _p95_limit(runs),
    }


def _cost_chart(runs: Sequence[RunView]) -> dict[str, Any]:
    combos = _combos(runs)
    several = len(combos) > 1 or any(axes_label(c) for c in combos)
    two = len(runs) > 1
    series = []
    for run in runs:
        degraded = _degraded_points(run)
        for index, combo in enumerate(combos):
            charted = [
                s for s in run.analysis.settings if _charted(s) and without_memory(s.point) == combo
            ]
            if not charted:
                continue
            if several:
                label = (f"{run.letter} · " if two else "") + axes_label(combo)
            else:
                label = run.name if two else "memory sizes"
            series.append(
                {
                    "run": run.index,
                    "label": label,
                    "colour": PALETTE[index % len(PALETTE)] if several else run.colour,
                    "marker": run.marker,
                    "points": [
                        {
                            "x": round(s.p95, 3),
                            "y": round(s.cost.total, 4),
                            "mb": s.memory_mb,
                            "point": s.label,
                            "recommended": s.point == run.picked,
                            "degraded": s.point in degraded,
                        }
                        for s in charted
                    ],
                }
            )
    axes = [COLUMNS[a].label for a in AXES if any(getattr(c, a) is not None for c in combos)]
    return {
        "series": series,
        "p95_limit": _p95_limit(runs),
        "legend": two or several,
        "title": "Cost against p95 latency (labelled by memory size"
        + (f"; colour: {' × '.join(axes)}" if several else "")
        + "; recommended: ◆)",
    }


def _timeline(runs: Sequence[RunView], colours: dict[Point, str]) -> dict[str, Any]:
    two = len(runs) > 1
    timeline = []
    stage_lines: list[float] = []
    for run in runs:
        analysis = run.analysis
        for setting in analysis.settings:
            repeats = len(setting.steps) > 1
            for step in setting.steps:
                label = (
                    (f"{run.letter} " if two else "")
                    + setting.label
                    + (f" #{step.repeat}" if repeats else "")
                )
                timeline.append(
                    {
                        "label": label,
                        "colour": colours.get(setting.point, PALETTE[-1]),
                        "run": run.index,
                        # Two runs: p95 only, or the chart would carry four lines per size.
                        "mean": []
                        if two
                        else [{"x": s.t, "y": round(s.mean_ms, 3)} for s in step.timeline],
                        "p95": [
                            {"x": s.t, "y": round(s.p95_ms, 3)}
                            for s in step.timeline
                            if s.p95_ms is not None
                        ],
                    }
                )
                if not stage_lines and step.timeline:
                    # Stage ends are relative to load start; the timeline to the window.
                    offset = step.window_start - step.started_at
                    last = step.timeline[-1].t
                    stage_lines = [
                        round(end - offset, 3)
                        for end in analysis.stage_ends_s[:-1]
                        if 0 < end - offset <= last
                    ]
    return {"series": timeline, "stages": stage_lines}


def _p95_limit(runs: Sequence[RunView]) -> float | None:
    """The p95 threshold (the last run's, B's, when two are shown), if drawing it would not
    squash the points into one corner."""
    limit = runs[-1].analysis.thresholds.p95_ms if runs else None
    p95s = [s.p95 for run in runs for s in run.analysis.settings if _charted(s)]
    if limit is None or not p95s:
        return None
    return limit if limit <= LIMIT_LINE_SPAN * max(p95s) else None


def _percentile_label(q: float) -> str:
    if q in (0, 100):
        return "min" if q == 0 else "max"
    return f"p{q:g}"


def client_function_note(analysis: Analysis) -> str:
    """What lies outside the function against how much the function itself moves, in figures
    from this run ("" when no setting has function durations)."""
    both = [
        (s, s.latency.p50, s.function_latency.p50)
        for s in analysis.settings
        if s.function_latency is not None
        and s.latency.p50 is not None
        and s.function_latency.p50 is not None
    ]
    if not both:
        return ""
    outside = sorted(((client - own, s.label) for s, client, own in both))
    own = sorted(((own, s.label) for s, _, own in both))
    text = f"Outside the function (client p50 minus function p50): {outside[0][0]:.1f} ms"
    text += f" ({outside[0][1]})"
    if len(both) > 1:
        text += f" to {outside[-1][0]:.1f} ms ({outside[-1][1]})"
        text += (
            f"; the function's own p50 moves {own[-1][0] - own[0][0]:.1f} ms across them "
            f"({own[0][0]:.1f} ms at {own[0][1]} to {own[-1][0]:.1f} ms at {own[-1][1]})"
        )
    return text + "."


@functools.cache  # compiling the template takes ~0.5 s; every report in a process reuses it
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"], default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.do"],
    )
    env.filters.update(
        ms=ms,
        money=money,
        signed_money=signed_money,
        percent=percent,
        when=when,
        clock=clock,
        breakable=breakable,
    )
    env.globals["client_function_note"] = client_function_note
    return env


def render(analyses: list[Analysis], *, pair: RunComparison | None = None) -> str:
    """The HTML for one run, or two runs overlaid (one set of charts and tables)."""
    runs = views(analyses)
    settings = [s for run in runs for s in run.analysis.settings]
    first = analyses[0].results
    title = (
        f"{first.scenario_name}, run with {first.run_with}"
        if first.run_with
        else first.scenario_name
    )
    if len(analyses) > 1:
        title = " vs ".join(a.results.run_id for a in analyses)
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            title=title,
            runs=runs,
            two=len(runs) > 1,
            # The rule is stated once: in the banner, or under both when the runs share it.
            shared_rule=len({run.analysis.rule for run in runs}) == 1 and len(runs) > 1,
            rows=point_rows(runs, pair),
            swept=any(run.axes for run in runs),
            first_key="point" if any(run.axes for run in runs) else "memory",
            api_by_type=any(s.point.api is not None for s in settings),
            axis_names={axis: COLUMNS[axis].label for axis in AXES},
            charts=chart_data(runs),
            columns=COLUMNS,
            legends=Legends(),
            open_model=any(s.offered is not None for s in settings),
            bases=sorted({s.cost.basis for s in settings}),
            estimated_cost=any(s.cost.estimated for s in settings),
            # The test's own AWS charges, per run: [(run, rows, estimate, measured)]
            own_charges=[
                (run, rows, run.analysis.results.test_cost_estimate, run.analysis.results.test_cost)
                for run in runs
                if (rows := charge_rows(run.analysis.results))
            ],
            pair=pair,
            function_deltas=pair is not None and any(d.of_function for d in pair.differences),
            min_delivered=MIN_DELIVERED,
            chart_library=chart_library(),
            prices=PRICES_US_EAST_1,
            generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            generator=f"memsweep {__version__}, Python {platform.python_version()}",
        )
    )


def results_path(given: str | Path) -> Path:
    """A results.json, or a run directory holding one."""
    path = Path(given)
    return path / "results.json" if path.is_dir() else path


def default_output(paths: list[Path]) -> Path:
    if len(paths) == 1:
        return paths[0].parent / "report.html"
    return paths[-1].parent / f"compare-{paths[0].parent.name or 'a'}.html"


def report_json(inputs: list[str | Path]) -> dict[str, Any]:
    """One run: its verdict (as results.json keeps it). Two: the comparison of b with a."""
    if not 1 <= len(inputs) <= 2:
        raise BadInput(f"report takes one results.json, or two to compare; got {len(inputs)}")
    analyses = [analyse(read_results(results_path(item))) for item in inputs]
    if len(analyses) == 1:
        return run_verdict(analyses[0]).model_dump(mode="json")
    return compare_run_pair(analyses[0], analyses[1]).as_json()


def write_report(inputs: list[str | Path], output: Path | None = None) -> Path:
    """Render results.json file(s) to HTML; returns the path written."""
    if not 1 <= len(inputs) <= 2:
        raise BadInput(f"report takes one results.json, or two to compare; got {len(inputs)}")
    paths = [results_path(item) for item in inputs]
    analyses = [analyse(read_results(path)) for path in paths]
    pair = compare_run_pair(analyses[0], analyses[1]) if len(analyses) == 2 else None
    html = render(analyses, pair=pair)
    target = output or default_output(paths)
    try:
        write_atomically(target, html)
    except OSError as exc:
        raise BadInput(f"{target}: cannot write the report: {exc.strerror or exc}") from None
    return target
