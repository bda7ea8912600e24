"""Files other tools read, written into each run directory beside results.json.

summary.csv (one row per sweep point: a memory size, and the API type, architecture and
handler when the sweep moves them), JUnit XML of the thresholds (for CI systems) and a
Markdown summary (CI job summaries, pull-request comments). Every figure comes from the same
`analysis.analyse()` the HTML report renders, so the files and the report cannot disagree.
How sure the pick is comes from the verdict results.json keeps (computed once, at the run's
end): the point figures need no bootstrap, and every run, test sweeps included, writes these.
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from runner.analysis import (
    Analysis,
    Setting,
    Verdict,
    analyse,
    effects_sentence,
    money,
    point_order,
    recommended_point,
)
from runner.errors import BadInput
from runner.outputs._tables import (
    NO_VALUE,
    Matrix,
    charge_rows,
    matrix,
    ms,
    swept_axes,
    write_atomically,
)
from runner.results import Confidence, Results, read_results
from runner.scenario import AXES, Point, PointRecord, value_name

SUMMARY_CSV = "summary.csv"
JUNIT_XML = "junit.xml"
SUMMARY_MD = "summary.md"

# summary.csv's columns, in order; README.md ("Files in a run directory") gives each one's
# meaning and unit.
SUMMARY_COLUMNS = (
    "memory_mb",
    "api",  # the axes beside memory: empty when the sweep does not move them
    "architecture",
    "handler",
    "repeats",
    "requests",
    "requests_per_s",
    "errors",
    "error_rate",
    "mean_ms",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "dropped_arrivals",
    "offered_arrivals",
    "cold_starts",
    "max_memory_used_mb",
    "cost_per_1m_requests_usd",
    "cost_is_estimate",
    "cold_start_cost_per_1m_requests_usd",
    "verdict",
    "verdict_detail",
    # Appended after the columns above (their order kept for existing readers): the 95 %
    # interval of cost_per_1m_requests_usd, empty when the run has none.
    "cost_per_1m_requests_usd_low",
    "cost_per_1m_requests_usd_high",
    # The function's own REPORT Duration percentiles and p95's 95 % interval, beside the
    # client's p50_ms..p99_ms (empty: no function durations, e.g. a url target).
    "function_p50_ms",
    "function_p95_ms",
    "function_p99_ms",
    "function_p95_ms_low",
    "function_p95_ms_high",
)
# The `verdict` column's values.
RECOMMENDED = "recommended"
MEETS = "meets thresholds"
FAILS = "fails thresholds"
NO_THRESHOLDS = "no thresholds set"
DEGRADED = "degraded"
NO_DATA = "no data"
NOT_MEASURED = "not measured"

# Characters XML 1.0 cannot hold at all (a scenario name may carry one through YAML's "\a").
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Control characters: no place in one line of Markdown.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Characters Markdown or the HTML inside it would read as markup.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]#|~$])")


@dataclass(frozen=True)
class Row(PointRecord):
    """One sweep point as the export files show it."""

    point: Point
    setting: Setting | None  # None: planned but never measured
    verdict: str
    detail: str


def write_exports(results_path: Path) -> list[Path]:
    """Write the run's export files beside results_path; returns their paths."""
    results_path = Path(results_path)
    analysis = analyse(read_results(results_path))
    rows = summary_rows(analysis)
    files = {
        SUMMARY_CSV: summary_csv(rows),
        JUNIT_XML: junit_xml(analysis, rows),
        SUMMARY_MD: summary_markdown(analysis, rows),
    }
    written = []
    for name, text in files.items():
        target = results_path.parent / name
        try:
            write_atomically(target, text)
        except OSError as exc:
            raise BadInput(f"{target}: cannot write it: {exc.strerror or exc}") from None
        written.append(target)
    return written


def summary_rows(analysis: Analysis) -> list[Row]:
    """Each measured point (the report's order), then each point the scenario planned that the
    run never reached."""
    pick = analysis.recommendation.cheapest
    rows = [_row(setting, pick=setting is pick, analysis=analysis) for setting in analysis.settings]
    measured = {setting.point for setting in analysis.settings}
    status = analysis.results.status
    noun = "setting" if swept_axes(analysis) else "size"
    for point in _planned(analysis):
        if point not in measured:
            detail = f"the run ended ({status}) before this {noun} was measured"
            rows.append(Row(point, None, NOT_MEASURED, detail))
    return rows


def _planned(analysis: Analysis) -> list[Point]:
    scenario = analysis.results.scenario
    return sorted(
        set(scenario.sweep.planned_points()), key=lambda point: point_order(point, scenario)
    )


def _row(setting: Setting, *, pick: bool, analysis: Analysis) -> Row:
    point = setting.point
    if setting.degraded:
        causes = "; ".join(f"step {d.step}: {d.cause}" for d in setting.degraded)
        return Row(point, setting, DEGRADED, causes)
    if not setting.valid:
        return Row(point, setting, NO_DATA, "; ".join(setting.problems) or "no valid measurement")
    failed = [v for v in setting.verdicts if not v.passed]
    if failed:
        detail = "; ".join(f"{_ascii(v.name)} (measured {v.measured})" for v in failed)
        return Row(point, setting, FAILS, detail)
    if pick:
        return Row(point, setting, RECOMMENDED, "")
    if analysis.recommendation.thresholds_set:
        return Row(point, setting, MEETS, "")
    return Row(point, setting, NO_THRESHOLDS, "")


def _confidence(analysis: Analysis) -> Confidence | None:
    verdict = analysis.results.verdict
    return verdict.confidence if verdict is not None else analysis.confidence


def _ascii(name: str) -> str:
    """A threshold's name with ≤/≥ spelled <=/>= (CI tools and spreadsheets show them)."""
    return name.replace("≤", "<=").replace("≥", ">=")


def _number(value: float | None, digits: int) -> str:
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return ""
    return f"{round(value, digits):.{digits}f}".rstrip("0").rstrip(".") or "0"


# --- summary.csv ------------------------------------------------------------------------------


def summary_csv(rows: list[Row]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(_csv_fields(row))
    return out.getvalue()


def _csv_fields(row: Row) -> dict[str, str | int]:
    fields: dict[str, str | int] = dict.fromkeys(SUMMARY_COLUMNS, "")
    fields.update(
        memory_mb=row.memory_mb,
        api=row.point.api or "",
        architecture=row.point.architecture or "",
        handler=row.point.handler or "",
        verdict=row.verdict,
        verdict_detail=row.detail,
    )
    s = row.setting
    if s is None:
        fields["repeats"] = 0
        return fields
    measured = bool(s.requests)
    fields.update(
        repeats=len(s.steps),
        requests=s.requests,
        requests_per_s=_number(s.rps, 3),
        errors=s.failures,
        error_rate=_number(s.error_rate if measured else None, 6),
        mean_ms=_number(s.latency.mean, 3),
        p50_ms=_number(s.latency.p50, 3),
        p95_ms=_number(s.latency.p95, 3),
        p99_ms=_number(s.latency.p99, 3),
        cost_per_1m_requests_usd=_number(s.cost.total, 6),
        cost_is_estimate="true" if s.cost.estimated else "false",
        cold_start_cost_per_1m_requests_usd=_number(s.cold.per_million, 6),
    )
    if s.cost_estimate is not None:
        fields.update(
            cost_per_1m_requests_usd_low=_number(s.cost_estimate.low, 6),
            cost_per_1m_requests_usd_high=_number(s.cost_estimate.high, 6),
        )
    if s.function_latency is not None:
        fields.update(
            function_p50_ms=_number(s.function_latency.p50, 3),
            function_p95_ms=_number(s.function_latency.p95, 3),
            function_p99_ms=_number(s.function_latency.p99, 3),
        )
    if (function_p95 := s.function_estimates.get("p95")) is not None:
        fields.update(
            function_p95_ms_low=_number(function_p95.low, 3),
            function_p95_ms_high=_number(function_p95.high, 3),
        )
    if s.offered is not None:
        fields.update(dropped_arrivals=s.dropped_arrivals, offered_arrivals=s.offered)
    if s.function.invocations:
        fields["cold_starts"] = s.function.cold_starts
    if s.function.max_memory_used_mb is not None:
        fields["max_memory_used_mb"] = s.function.max_memory_used_mb
    return fields


# --- JUnit XML --------------------------------------------------------------------------------


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("\ufffd", text)


def junit_xml(analysis: Analysis, rows: list[Row]) -> str:
    """One testsuite for the run: per size, a case for whether its measurement may be judged
    (an error when degraded or without data), and a case per threshold (a failure when
    missed, skipped with the reason when the size could not be judged)."""
    results = analysis.results
    suite = ET.Element("testsuite")
    cases: list[ET.Element] = []
    for row in rows:
        cases.append(_trust_case(row))
        if row.setting is None:
            continue
        judged = row.verdict not in (DEGRADED, NO_DATA)
        for verdict in row.setting.verdicts:
            cases.append(_threshold_case(row, verdict, judged=judged))
    counts = {
        kind: sum(1 for case in cases if case.find(kind) is not None)
        for kind in ("failure", "error", "skipped")
    }
    elapsed = max(0.0, (results.finished_at or results.created_at) - results.created_at)
    started = datetime.fromtimestamp(results.created_at, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    suite.attrib.update(
        name=_xml_text(f"memsweep: {results.scenario_name} ({results.run_id})"),
        tests=str(len(cases)),
        failures=str(counts["failure"]),
        errors=str(counts["error"]),
        skipped=str(counts["skipped"]),
        time=f"{elapsed:.3f}",
        timestamp=started,
        hostname=_xml_text(results.host.hostname or "unknown"),
    )
    properties = ET.SubElement(suite, "properties")
    recommendation = analysis.recommendation
    confidence = _confidence(analysis)
    pick = recommendation.cheapest
    recommended = recommended_point(pick.point, results) if pick else None
    for name, value in (
        ("run_id", results.run_id),
        ("status", results.status),
        ("target", results.target.kind),
        ("recommended_mb", str(pick.memory_mb) if pick else ""),
        # The pick on every axis (what the sweep did not move: the target's).
        ("recommended_api", recommended.api if recommended else ""),
        ("recommended_architecture", recommended.architecture if recommended else ""),
        ("recommended_handler", (recommended.handler or "") if recommended else ""),
        ("confidence", confidence.level if confidence else "not computed"),
        ("headline", recommendation.headline),
    ):
        ET.SubElement(properties, "property", name=name, value=_xml_text(value))
    suite.extend(cases)
    ET.SubElement(suite, "system-out").text = _xml_text(
        "\n".join([recommendation.headline, *recommendation.explanation])
    )
    # Jenkins' junit-10.xsd gives <testsuites> no `skipped` (its suites carry it).
    root = ET.Element("testsuites")
    root.attrib.update(
        name="memsweep",
        tests=suite.attrib["tests"],
        failures=suite.attrib["failures"],
        errors=suite.attrib["errors"],
        time=suite.attrib["time"],
    )
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _trust_case(row: Row) -> ET.Element:
    setting = row.setting
    case = ET.Element(
        "testcase",
        classname="memsweep.measurement",
        name=_xml_text(f"{row.label}: measured and trusted"),
        time=f"{setting.measured_s:.3f}" if setting is not None else "0",
    )
    if row.verdict == NOT_MEASURED:
        ET.SubElement(case, "skipped", message=_xml_text(row.detail))
    elif row.verdict in (DEGRADED, NO_DATA):
        why = "degraded" if row.verdict == DEGRADED else "no valid measurement"
        message = f"{row.label} could not be judged ({why}): {row.detail}"
        error = ET.SubElement(case, "error", message=_xml_text(message), type=row.verdict)
        error.text = _xml_text(message)
    return case


def _threshold_case(row: Row, verdict: Verdict, *, judged: bool) -> ET.Element:
    name = _ascii(verdict.name)
    case = ET.Element(
        "testcase",
        classname="memsweep.thresholds",
        name=_xml_text(f"{row.label}: {name}"),
        time="0",
    )
    if not judged:
        ET.SubElement(
            case, "skipped", message=_xml_text(f"not judged: {row.verdict}: {row.detail}")
        )
    elif not verdict.passed:
        message = f"{row.label} measured {verdict.measured}, limit {name}"
        failure = ET.SubElement(case, "failure", message=_xml_text(message), type="threshold")
        failure.text = _xml_text(message)
    return case


# --- Markdown ---------------------------------------------------------------------------------


def _md(text: str) -> str:
    """User-supplied text as Markdown text: no markup, no HTML, one line."""
    flat = _CONTROL.sub("", " ".join(text.split()))
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN.sub(r"\\\1", flat)


def summary_markdown(analysis: Analysis, rows: list[Row]) -> str:
    results = analysis.results
    recommendation = analysis.recommendation
    confidence = _confidence(analysis)
    pick = recommendation.cheapest
    swept = swept_axes(analysis)
    run_with = f", run with {_md(results.run_with)}" if results.run_with else ""
    lines = [
        f"### memsweep: {_md(results.scenario_name)}{run_with} (run {_md(results.run_id)})",
        "",
    ]
    if pick is not None:
        lines.append(f"**Recommendation: {_md(pick.label)}.** {_md(recommendation.headline)}")
        if swept:
            lines += ["", _deploy_line(analysis, pick, swept)]
        if recommendation.decision is not None:
            lines += ["", _decided_line(analysis)]
    else:  # the headline says why there is none
        lines.append(f"**{_md(recommendation.headline)}**")
    if confidence is not None:
        lines += ["", f"How sure: **{_md(confidence.level)}**. {_md(confidence.statement)}"]
    if swept and analysis.effects:
        lines += ["", _md(effects_sentence(analysis.effects))]
    warnings = _warnings(analysis, rows)
    if warnings:
        lines += ["", "> **Warning**"]
        lines += [f"> - {_md(warning)}" for warning in warnings]
    grid = matrix(analysis)
    if grid is not None:
        lines += ["", *_markdown_matrix(grid)]
    lines += [
        "",
        f"| {'setting' if swept else 'memory'} | requests | req/s | p50 ms | p95 ms | p99 ms "
        "| errors | dropped | cold starts | USD / 1M warm requests | verdict |",
        f"|{':---' if swept else '---:'}|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|",
    ]
    for row in rows:
        lines.append(_markdown_row(row))
    judged = [row for row in rows if row.setting is not None and row.setting.verdicts]
    if judged:
        lines += ["", *_threshold_table(judged, by_row=bool(swept))]
    lines += _charges_table(results)
    lines += [
        "",
        f"Figures cover each step's measured window (warm-up excluded). Files: "
        f"`report.html`, `results.json`, `{SUMMARY_CSV}`, `{JUNIT_XML}`.",
    ]
    return "\n".join(lines) + "\n"


def _charges_table(results: Results) -> list[str]:
    """The test's own AWS charges, estimated before and measured after ([] on other targets)."""
    rows = charge_rows(results)
    if not rows:
        return []
    lines = [
        "",
        "What this test costs on AWS:",
        "",
        "| service | estimated | measured |",
        "|:---|---:|---:|",
    ]
    for row in rows:
        measured = f"estimate: {row.measured}" if row.measured_is_estimate else row.measured
        lines.append(f"| {_md(row.service)} | {_md(row.estimate)} | {_md(measured)} |")
    charges = results.test_cost or results.test_cost_estimate
    assert charges is not None
    lines += ["", _md(f"{charges.basis} ({charges.prices_as_of})")]
    return lines


def _decided_line(analysis: Analysis) -> str:
    """Which part of the rule made the pick, and which settings cost the same as the cheapest
    (within the margin) or are not yet known to."""
    decision = analysis.recommendation.decision
    assert decision is not None
    margin = f"{analysis.tolerance_pct:g} %"
    line = f"Decided by **{_md(decision.decided_by)}**: {_md(decision.reason)}"
    if len(decision.equivalent) > 1:
        same = ", ".join(_md(s.label) for s in decision.equivalent)
        line += f". Cost the same (within {margin} of the cheaper bill): {same}."
    else:
        line += f" (margin {margin} of the cheaper bill)."
    if decision.undetermined:
        unknown = ", ".join(_md(s.label) for s in decision.undetermined)
        line += f" Not yet known to cost the same or not: {unknown} (measure longer to tell)."
    return line


def _deploy_line(analysis: Analysis, pick: Setting, swept: list[str]) -> str:
    """The pick on every axis: what to deploy (an axis the sweep did not move: the target's)."""
    point = recommended_point(pick.point, analysis.results)
    parts = [f"memory **{point.memory_mb} MB**"]
    names = {"api": "API type", "architecture": "architecture", "handler": "handler"}
    for axis in AXES:
        value = getattr(point, axis)
        shown = _md(value_name(axis, value)) if value is not None else "unknown"
        parts.append(
            f"{names[axis]} **{shown}**" if axis in swept else f"{names[axis]} {shown} (not swept)"
        )
    return "Deploy: " + " · ".join(parts)


# A matrix cell's mark, by what the cell holds.
_MATRIX_MARKS = {
    "degraded": "⚠ degraded",
    "not valid": "⚠ no data",
    "missed": "❌",
    "met": "✅",
    "measured": "",
    "not measured": "not measured",
}


def _markdown_matrix(grid: Matrix) -> list[str]:
    """Memory sizes as rows, the other axes' combinations as columns: p95 and cost per cell,
    the pick in bold."""
    header = " | ".join(_md(column) for column in grid.columns)
    lines = [f"| memory | {header} |", "|---:|" + ":---:|" * len(grid.columns)]
    for memory, cells in grid.rows:
        shown = []
        for cell in cells:
            if cell is None:
                shown.append(NO_VALUE)
                continue
            s = cell.setting
            figures = ""
            if s is not None and s.requests:
                figures = f"p95 {ms(s.latency.p95)} ms · {_md(money(s.cost.total))}"
            if cell.picked:
                shown.append(f"**{figures} ▲ recommended**")
            else:
                shown.append(" ".join(t for t in (figures, _MATRIX_MARKS[cell.state]) if t))
        lines.append(f"| {memory} MB | " + " | ".join(shown) + " |")
    return lines


def _threshold_table(judged: list[Row], *, by_row: bool) -> list[str]:
    """Pass or fail per threshold and point: a column per size (memory-only), or a row per
    setting when the sweep moves more (their labels are too long for columns)."""
    assert judged[0].setting is not None
    names = [verdict.name for verdict in judged[0].setting.verdicts]

    def cell(row: Row, name: str) -> str:
        assert row.setting is not None
        return _threshold_cell(row, next((v for v in row.setting.verdicts if v.name == name), None))

    if by_row:
        lines = [
            "| setting | " + " | ".join(_md(name) for name in names) + " |",
            "|:---|" + "---:|" * len(names),
        ]
        lines += [
            f"| {_md(row.label)} | " + " | ".join(cell(row, name) for name in names) + " |"
            for row in judged
        ]
        return lines
    header = " | ".join(f"{row.memory_mb} MB" for row in judged)
    lines = [f"| threshold | {header} |", "|:---|" + "---:|" * len(judged)]
    for name in names:
        lines.append(f"| {_md(name)} | " + " | ".join(cell(row, name) for row in judged) + " |")
    return lines


def _markdown_row(row: Row) -> str:
    label = _md(row.label)
    memory = f"**{label}**" if row.verdict == RECOMMENDED else label
    # The table stays one line a point: why a point was not judged is in the warnings above.
    verdict = _md(row.verdict)
    if row.verdict == FAILS and row.setting is not None:
        verdict += ": " + ", ".join(_md(v.name) for v in row.setting.verdicts if not v.passed)
    s = row.setting
    if s is None:
        return f"| {memory} |" + f" {NO_VALUE} |" * 9 + f" {verdict} |"
    dropped = f"{s.dropped_arrivals} of {s.offered}" if s.offered is not None else NO_VALUE
    cold = str(s.function.cold_starts) if s.function.invocations else NO_VALUE
    cost = _md(money(s.cost.total)) + (" (estimate)" if s.cost.estimated else "")
    errors = f"{s.failures} ({s.error_rate:.2%})" if s.requests else str(s.failures)
    return (
        f"| {memory} | {s.requests:,} | {s.rps:,.2f} | {ms(s.latency.p50)} "
        f"| {ms(s.latency.p95)} | {ms(s.latency.p99)} | {errors} | {dropped} | {cold} "
        f"| {cost} | {verdict} |"
    )


def _threshold_cell(row: Row, verdict: Verdict | None) -> str:
    if verdict is None:
        return NO_VALUE
    if row.verdict in (DEGRADED, NO_DATA):
        return f"not judged ({row.verdict})"
    mark = "✅ pass" if verdict.passed else "❌ fail"
    noise = "" if verdict.confident else " (within noise: the 95 % interval straddles the limit)"
    return f"{mark} {_md(verdict.measured)}{noise}"


def _warnings(analysis: Analysis, rows: list[Row]) -> list[str]:
    results = analysis.results
    out = []
    if results.status != "complete":
        out.append(f"The run is {results.status}: the figures cover only the steps measured.")
    out += [problem.detail for problem in results.problems]
    for degraded in analysis.recommendation.degraded:
        out.append(f"Step {degraded.step} ({degraded.shown}) is degraded: {degraded.cause}")
    for row in rows:
        if row.verdict == NO_DATA:
            out.append(f"{row.label} has no valid measurement: {row.detail}")
        elif row.verdict == NOT_MEASURED:
            out.append(f"{row.label} was not measured: {row.detail}")
    confidence = _confidence(analysis)
    if confidence is not None and confidence.level in ("too close to call", "likely"):
        out.append(f"The pick is {confidence.level}: {confidence.statement}")
    return out
