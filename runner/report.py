"""results.json → one self-contained HTML report (templates/comparison.html.j2).

The file needs no network to view: Chart.js and its annotation plugin are inlined from
node_modules (pinned in package-lock.json), and a Content-Security-Policy forbids any
fetch. Jinja autoescapes everything user-supplied; chart data reaches the scripts through
`|tojson`, which escapes `<`, `>` and `&`, so a `</script>` in a name stays text.
"""

from __future__ import annotations

import math
import os
import platform
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from runner import __version__
from runner.analysis import (
    Analysis,
    Comparison,
    RunComparison,
    analyse,
    compare_run_pair,
    compare_runs,
    run_verdict,
)
from runner.cost import PRICES_US_EAST_1
from runner.errors import BadInput, SetupError
from runner.results import read_results
from runner.stack import PROJECT_ROOT
from runner.trust import MIN_DELIVERED

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


NO_VALUE = "\u2013"  # en dash, for a figure that was not measured


def ms(value: float | None) -> str:
    return NO_VALUE if value is None or math.isinf(value) else f"{value:,.1f}"


def money(dollars: float) -> str:
    return f"${dollars:,.2f}" if dollars >= 1 else f"${dollars:.3f}"


def percent(share: float) -> str:
    return f"{share:.2%}"


def when(epoch: float | None) -> str:
    if epoch is None:
        return NO_VALUE
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


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


def chart_data(analysis: Analysis) -> dict[str, Any]:
    """Plain JSON for the template's scripts (passed with |tojson)."""
    colours = {s.memory_mb: PALETTE[i % len(PALETTE)] for i, s in enumerate(analysis.settings)}
    timeline = []
    stage_lines: list[float] = []
    for setting in analysis.settings:
        repeats = len(setting.steps) > 1
        for step in setting.steps:
            label = f"{setting.memory_mb} MB" + (f" #{step.repeat}" if repeats else "")
            timeline.append(
                {
                    "label": label,
                    "colour": colours[setting.memory_mb],
                    "mean": [{"x": s.t, "y": round(s.mean_ms, 3)} for s in step.timeline],
                    "p95": [
                        {"x": s.t, "y": round(s.p95_ms, 3)}
                        for s in step.timeline
                        if s.p95_ms is not None
                    ],
                }
            )
            if not stage_lines and step.timeline:
                # Stage ends are relative to load start; the timeline to the measured window.
                offset = step.window_start - step.started_at
                last = step.timeline[-1].t
                stage_lines = [
                    round(end - offset, 3)
                    for end in analysis.stage_ends_s[:-1]
                    if 0 < end - offset <= last
                ]
    percentiles = [
        {
            "label": f"{s.memory_mb} MB",
            "colour": colours[s.memory_mb],
            "values": [
                round(s.histogram.get_value_at_percentile(q) / 1000, 3) if s.requests else None
                for q in CHART_PERCENTILES
            ],
        }
        for s in analysis.settings
    ]
    picks = analysis.recommendation
    chosen = picks.cheapest or picks.balanced
    cost_points = [
        {
            "label": f"{s.memory_mb} MB",
            "colour": colours[s.memory_mb],
            "x": round(s.p95, 3),
            "y": round(s.cost.total, 4),
            "recommended": s is chosen,
            "meets": s.meets,
        }
        for s in analysis.settings
        if s.requests and s.latency.p95 is not None
    ]
    return {
        "timeline": {"series": timeline, "stages": stage_lines},
        "percentiles": {
            "labels": [_percentile_label(q) for q in CHART_PERCENTILES],
            "series": percentiles,
        },
        "cost": {"points": cost_points, "p95_limit": _limit_line(analysis, cost_points)},
    }


def _limit_line(analysis: Analysis, points: list[dict[str, Any]]) -> float | None:
    """The p95 threshold, if drawing it would not squash the points into one corner."""
    limit = analysis.thresholds.p95_ms
    if limit is None or not points:
        return None
    return limit if limit <= LIMIT_LINE_SPAN * max(point["x"] for point in points) else None


def _percentile_label(q: float) -> str:
    if q in (0, 100):
        return "min" if q == 0 else "max"
    return f"p{q:g}"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"], default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.do"],
    )
    env.filters.update(ms=ms, money=money, percent=percent, when=when)
    return env


def render(
    analyses: list[Analysis],
    *,
    cross_run: list[Comparison] | None = None,
    pair: RunComparison | None = None,
) -> str:
    """The HTML for one run, or two runs side by side with their differences."""
    runs = [
        {"analysis": a, "charts": chart_data(a), "id": f"run{i}"} for i, a in enumerate(analyses)
    ]
    title = analyses[0].results.scenario_name
    if len(analyses) > 1:
        title = " vs ".join(a.results.run_id for a in analyses)
    return (
        _environment()
        .get_template(TEMPLATE)
        .render(
            title=title,
            runs=runs,
            cross_run=cross_run or [],
            pair=pair,
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
    cross_run = compare_runs(analyses[0], analyses[1]) if len(analyses) == 2 else None
    pair = compare_run_pair(analyses[0], analyses[1]) if len(analyses) == 2 else None
    html = render(analyses, cross_run=cross_run, pair=pair)
    target = output or default_output(paths)
    try:
        _write_atomically(target, html)
    except OSError as exc:
        raise BadInput(f"{target}: cannot write the report: {exc.strerror or exc}") from None
    return target


# A report is for sharing: readable by all, like a file written with the default umask.
REPORT_MODE = 0o644


def _write_atomically(target: Path, text: str) -> None:
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
