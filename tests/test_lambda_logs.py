"""REPORT lines and handler.py's JSON line: one format, one parser for both targets."""

from __future__ import annotations

from runner.invocations import summarise_lines
from runner.lambda_logs import (
    HANDLER_LOG_TYPE,
    InvocationReport,
    billed_duration_ms,
    format_report,
    parse_handler_record,
    parse_report,
)

# As CloudWatch Logs shows them (tab-separated, trailing tab).
CLOUDWATCH_COLD = (
    "REPORT RequestId: 3604209a-e9a3-11e6-939a-754dd98c7be3\tDuration: 12.34 ms\t"
    "Billed Duration: 290 ms\tMemory Size: 128 MB\tMax Memory Used: 70 MB\t"
    "Init Duration: 277.02 ms\t"
)
CLOUDWATCH_WARM = (
    "REPORT RequestId: 8f5a4b2c-1111-2222-3333-444455556666\tDuration: 3.01 ms\t"
    "Billed Duration: 4 ms\tMemory Size: 1024 MB\tMax Memory Used: 81 MB\t"
)


def test_given_a_cold_cloudwatch_report_line_then_every_field_is_read() -> None:
    report = parse_report(CLOUDWATCH_COLD)
    assert report == InvocationReport(
        request_id="3604209a-e9a3-11e6-939a-754dd98c7be3",
        duration_ms=12.34,
        billed_duration_ms=290,
        memory_size_mb=128,
        max_memory_used_mb=70,
        init_duration_ms=277.02,
    )
    assert report.cold_start


def test_given_a_warm_report_line_then_no_init_duration() -> None:
    report = parse_report(CLOUDWATCH_WARM)
    assert report is not None and not report.cold_start and report.memory_size_mb == 1024


def test_given_other_lines_then_not_a_report() -> None:
    assert parse_report("START RequestId: x Version: $LATEST") is None
    assert parse_report("REPORT something else") is None


def test_given_a_report_then_format_and_parse_round_trip() -> None:
    report = InvocationReport("id-1", 1.5, 2, 512, 60, None)
    assert parse_report(format_report(report)) == report


def test_given_durations_then_billing_rounds_up_to_the_millisecond_and_includes_init() -> None:
    assert billed_duration_ms(0.2, None) == 1
    assert billed_duration_ms(12.01, None) == 13
    assert billed_duration_ms(12.34, 277.02) == 290


def test_given_the_handlers_json_line_then_capacity_is_read() -> None:
    line = (
        '{"type": "memsweep.invocation", "requestId": "r1", "operation": "create", '
        '"status": 200, "consumedCapacity": {"write": 1.0, "read": 0.0}, "durationMs": 3.2}'
    )
    record = parse_handler_record(line)
    assert record is not None
    assert (record.operation, record.status, record.write_units, record.read_units) == (
        "create",
        200,
        1.0,
        0.0,
    )
    assert parse_handler_record("[INFO] nothing here") is None
    assert parse_handler_record('{"type": "other"}') is None


def test_the_handler_and_the_parser_agree_on_the_marker() -> None:
    source = __import__("runner.stack", fromlist=["PROJECT_ROOT"]).PROJECT_ROOT / "handler.py"
    assert f'LOG_TYPE = "{HANDLER_LOG_TYPE}"' in source.read_text()


def test_given_cold_and_warm_lines_then_the_summary_splits_them_and_bills_init() -> None:
    handler_line = (
        f'{{"type": "{HANDLER_LOG_TYPE}", "requestId": "r", "operation": "read", "status": 200, '
        '"consumedCapacity": {"read": 0.5, "write": 0.0}, "durationMs": 2.0}'
    )
    lines = [CLOUDWATCH_COLD, CLOUDWATCH_WARM, CLOUDWATCH_WARM, handler_line, "START noise"]
    summary = summarise_lines(lines, "test")
    assert summary.count == 3 and summary.cold_starts == 1
    assert summary.init_ms_mean == 277.02
    assert summary.cold_duration_ms_mean == 12.34
    assert summary.warm_duration_ms_mean == 3.01
    assert summary.billed_ms_total == 290 + 4 + 4  # the cold one bills its init
    assert summary.read_units == 0.5 and summary.source == "test"


def _platform_report(**metrics: object) -> str:
    import json

    record = {"requestId": "r1", "metrics": metrics, "status": "success"}
    return json.dumps({"time": "2026-12-06T10:00:00Z", "type": "platform.report", "record": record})


def test_given_a_json_format_platform_report_then_it_reads_as_the_text_line_does() -> None:
    cold = _platform_report(
        durationMs=10.0,
        billedDurationMs=300,
        memorySizeMB=512,
        maxMemoryUsedMB=80,
        initDurationMs=289.5,
    )
    text = (
        "REPORT RequestId: r1\tDuration: 10.00 ms\tBilled Duration: 300 ms\tMemory Size: 512 MB\t"
        "Max Memory Used: 80 MB\tInit Duration: 289.50 ms\t"
    )
    assert parse_report(cold) == parse_report(text)
    restored = parse_report(
        _platform_report(
            durationMs=5.0,
            billedDurationMs=130,
            memorySizeMB=512,
            maxMemoryUsedMB=90,
            restoreDurationMs=120.25,
        )
    )
    assert restored is not None and restored.restore_duration_ms == 120.25
    assert restored.init_duration_ms is None


def test_given_a_platform_report_missing_or_mistyping_a_figure_then_not_a_report() -> None:
    # A billed duration of "300" (a string), NaN, or none at all never reads as zero
    for metrics in (
        {"durationMs": 1.0, "billedDurationMs": "300", "memorySizeMB": 512, "maxMemoryUsedMB": 80},
        {
            "durationMs": float("nan"),
            "billedDurationMs": 2,
            "memorySizeMB": 512,
            "maxMemoryUsedMB": 80,
        },
        {"durationMs": 1.0, "memorySizeMB": 512, "maxMemoryUsedMB": 80},
        {"durationMs": True, "billedDurationMs": 2, "memorySizeMB": 512, "maxMemoryUsedMB": 80},
    ):
        assert parse_report(_platform_report(**metrics)) is None
    assert parse_report('{"type": "platform.report", "record": []}') is None
    assert parse_report('{"type": "platform.start", "record": {"requestId": "r1"}}') is None


def test_given_a_text_report_with_a_snapstart_restore_then_it_is_read() -> None:
    line = (
        "REPORT RequestId: r2\tDuration: 5.00 ms\tBilled Duration: 130 ms\tMemory Size: 512 MB\t"
        "Max Memory Used: 90 MB\tRestore Duration: 120.25 ms\tBilled Restore Duration: 125 ms\t"
    )
    report = parse_report(line)
    assert report is not None and report.restore_duration_ms == 120.25
