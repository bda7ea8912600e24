"""Files other tools read, written into each run directory beside results.json.

summary.csv (one row per memory size), JUnit XML of the thresholds (for CI systems) and a
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

from runner.analysis import Analysis, Setting, Verdict, analyse
from runner.cost import money
from runner.errors import BadInput
from runner.report import NO_VALUE, ms, write_atomically
from runner.results import Confidence, read_results

SUMMARY_CSV = "summary.csv"
JUNIT_XML = "junit.xml"
SUMMARY_MD = "summary.md"

# summary.csv's columns, in order; README.md ("Output files") gives each one's meaning and unit.
SUMMARY_COLUMNS = (
    "memory_mb",
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
class Row:
    """One memory size as the export files show it."""

    memory_mb: int
    setting: Setting | None  # None: planned but never measured
    verdict: str
    detail: str


def write_exports(results_path: Path) -> list[Path]:
    """Write the run's export files beside results_path; returns their paths."""
    results_path = Path(results_path)
    analysis = analyse(read_results(results_path), intervals=False)
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
    """Each measured size, then each size the scenario planned that the run never reached."""
    pick = analysis.recommendation.cheapest
    rows = [_row(setting, pick=setting is pick, analysis=analysis) for setting in analysis.settings]
    measured = {setting.memory_mb for setting in analysis.settings}
    status = analysis.results.status
    for memory in _planned(analysis):
        if memory not in measured:
            detail = f"the run ended ({status}) before this size was measured"
            rows.append(Row(memory, None, NOT_MEASURED, detail))
    return rows


def _planned(analysis: Analysis) -> list[int]:
    return sorted(set(analysis.results.scenario.sweep.memory_mb))


def _row(setting: Setting, *, pick: bool, analysis: Analysis) -> Row:
    memory = setting.memory_mb
    if setting.degraded:
        causes = "; ".join(f"step {d.step}: {d.cause}" for d in setting.degraded)
        return Row(memory, setting, DEGRADED, causes)
    if not setting.valid:
        return Row(memory, setting, NO_DATA, "; ".join(setting.problems) or "no valid measurement")
    failed = [v for v in setting.verdicts if not v.passed]
    if failed:
        detail = "; ".join(f"{_ascii(v.name)} (measured {v.measured})" for v in failed)
        return Row(memory, setting, FAILS, detail)
    if pick:
        return Row(memory, setting, RECOMMENDED, "")
    if analysis.recommendation.thresholds_set:
        return Row(memory, setting, MEETS, "")
    return Row(memory, setting, NO_THRESHOLDS, "")


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
    fields.update(memory_mb=row.memory_mb, verdict=row.verdict, verdict_detail=row.detail)
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
    for name, value in (
        ("run_id", results.run_id),
        ("status", results.status),
        ("target", results.target.kind),
        ("recommended_mb", str(pick.memory_mb) if pick else ""),
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
        name=f"{row.memory_mb} MB: measured and trusted",
        time=f"{setting.measured_s:.3f}" if setting is not None else "0",
    )
    if row.verdict == NOT_MEASURED:
        ET.SubElement(case, "skipped", message=_xml_text(row.detail))
    elif row.verdict in (DEGRADED, NO_DATA):
        why = "degraded" if row.verdict == DEGRADED else "no valid measurement"
        message = f"{row.memory_mb} MB could not be judged ({why}): {row.detail}"
        error = ET.SubElement(case, "error", message=_xml_text(message), type=row.verdict)
        error.text = _xml_text(message)
    return case


def _threshold_case(row: Row, verdict: Verdict, *, judged: bool) -> ET.Element:
    name = _ascii(verdict.name)
    case = ET.Element(
        "testcase", classname="memsweep.thresholds", name=f"{row.memory_mb} MB: {name}", time="0"
    )
    if not judged:
        ET.SubElement(
            case, "skipped", message=_xml_text(f"not judged: {row.verdict}: {row.detail}")
        )
    elif not verdict.passed:
        message = f"{row.memory_mb} MB measured {verdict.measured}, limit {name}"
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
    lines = [f"### memsweep: {_md(results.scenario_name)} (run {_md(results.run_id)})", ""]
    if pick is not None:
        lines.append(f"**Recommendation: {pick.memory_mb} MB.** {_md(recommendation.headline)}")
    else:  # the headline says why there is none
        lines.append(f"**{_md(recommendation.headline)}**")
    if confidence is not None:
        lines += ["", f"How sure: **{_md(confidence.level)}**. {_md(confidence.statement)}"]
    warnings = _warnings(analysis, rows)
    if warnings:
        lines += ["", "> **Warning**"]
        lines += [f"> - {_md(warning)}" for warning in warnings]
    lines += [
        "",
        "| memory | requests | req/s | p50 ms | p95 ms | p99 ms | errors | dropped "
        "| cold starts | USD / 1M warm requests | verdict |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---|",
    ]
    for row in rows:
        lines.append(_markdown_row(row))
    judged = [row for row in rows if row.setting is not None and row.setting.verdicts]
    if judged:
        header = " | ".join(f"{row.memory_mb} MB" for row in judged)
        lines += ["", f"| threshold | {header} |", "|:---|" + "---:|" * len(judged)]
        assert judged[0].setting is not None
        names = [verdict.name for verdict in judged[0].setting.verdicts]
        for name in names:
            cells = []
            for row in judged:
                assert row.setting is not None
                verdict = next((v for v in row.setting.verdicts if v.name == name), None)
                cells.append(_threshold_cell(row, verdict))
            lines.append(f"| {_md(name)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Figures cover each step's measured window (warm-up excluded). Files: "
        f"`report.html`, `results.json`, `{SUMMARY_CSV}`, `{JUNIT_XML}`.",
    ]
    return "\n".join(lines) + "\n"


def _markdown_row(row: Row) -> str:
    memory = f"**{row.memory_mb} MB**" if row.verdict == RECOMMENDED else f"{row.memory_mb} MB"
    # The table stays one line a size: why a size was not judged is in the warnings above.
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
    return f"{mark} {_md(verdict.measured)}"


def _warnings(analysis: Analysis, rows: list[Row]) -> list[str]:
    results = analysis.results
    out = []
    if results.status != "complete":
        out.append(f"The run is {results.status}: the figures cover only the steps measured.")
    out += [problem.detail for problem in results.problems]
    for degraded in analysis.recommendation.degraded:
        out.append(f"Step {degraded.step} ({degraded.memory_mb} MB) is degraded: {degraded.cause}")
    for row in rows:
        if row.verdict == NO_DATA:
            out.append(f"{row.memory_mb} MB has no valid measurement: {row.detail}")
        elif row.verdict == NOT_MEASURED:
            out.append(f"{row.memory_mb} MB was not measured: {row.detail}")
    confidence = _confidence(analysis)
    if confidence is not None and confidence.level in ("too close to call", "likely"):
        out.append(f"The pick is {confidence.level}: {confidence.statement}")
    return out
