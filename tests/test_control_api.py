"""The control API's documents, parsed as the runner's client parses them: strictly, once.

The end-to-end tests (test_local_stack.py, test_delivery.py, …) check that the stack's real
answers parse; these check what a wrong answer becomes: one line naming the key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from runner.analysis._trust import cpu_delivery
from runner.control_api import (
    DELIVERY_PATH,
    STATUS_PATH,
    handler_problem,
    parse_delivery,
    parse_ready,
    parse_status,
)
from runner.errors import SetupError

SOURCE = f"local stack GET {STATUS_PATH}"


def good_status() -> dict[str, Any]:
    """A status as the stack sends it (JSON through and through)."""
    document: dict[str, Any] = json.loads(
        json.dumps(
            {
                "memory_mb": 1024,
                "handler": "handler.lambda_handler",
                "cgroup": "cgroup-v1",
                "fidelity": "full",
                "calibration_refused": "",
                "cpu_share_nominal": 1024 / 1769,
                "cpu_share_measured": None,
                "cpu_quota_correction": 1,  # a whole number arrives as a JSON integer
                "sandboxes": 2,
                "idle_sandboxes": 1,
                "sandbox_pids": [101, 102],
                "cold_starts": 2,
                "invocations": 7,
            }
        )
    )
    return document


def good_ready() -> dict[str, Any]:
    return {
        **good_status(),
        "event": "ready",
        "url": "http://127.0.0.1:1/dev/DynamoDBManager",
        "urls": {
            "rest": "http://127.0.0.1:1/dev/DynamoDBManager",
            "http": "http://127.0.0.1:4/DynamoDBManager",
        },
        "api_key": None,
        "control_url": "http://127.0.0.1:2",
        "control_token": "t",
        "log": "reports/x/lambda.log",
        "function": "f",
        "code_dir": "/srv/code",
        "architecture": "x86_64",
        "integration": "lambda-proxy",
        "table": "lambda-apigateway",
        "dynamodb_endpoint": "http://127.0.0.1:3",
        "pid": 1,
        "dynalite_pid": None,
        "usage_plan": {"rate": 10, "burst": 5.0},
    }


def test_given_a_good_status_then_typed_numbers_as_declared_and_nothing_else() -> None:
    document = {**good_status(), "unknown_extra": 1}

    status = parse_status(document, source=SOURCE)

    assert status == {**good_status(), "cpu_quota_correction": 1.0}
    assert isinstance(status["cpu_quota_correction"], float)
    assert "unknown_extra" not in status


def test_given_a_status_without_a_key_then_one_line_naming_it() -> None:
    document = good_status()
    del document["cpu_share_nominal"]

    with pytest.raises(SetupError) as raised:
        parse_status(document, source=SOURCE)

    assert str(raised.value) == "local stack GET /status: cpu_share_nominal is missing"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("cpu_share_nominal", "0.5", 'cpu_share_nominal is "0.5" (a string), expected a number'),
        ("memory_mb", 1024.5, "memory_mb is 1024.5 (a number), expected an integer"),
        ("sandboxes", True, "sandboxes is true (a boolean), expected an integer"),
        ("cpu_share_measured", [], "cpu_share_measured is [] (a list), expected a number or null"),
        (
            "sandbox_pids",
            [1, "2"],
            'sandbox_pids is [1, "2"] (a list), expected a list of integers',
        ),
        ("fidelity", None, "fidelity is null, expected a string"),
    ],
)
def test_given_a_status_with_a_mistyped_key_then_one_line_naming_key_value_and_type(
    key: str, value: object, message: str
) -> None:
    document = {**good_status(), key: value}

    with pytest.raises(SetupError) as raised:
        parse_status(document, source=SOURCE)

    assert str(raised.value).startswith(f"local stack GET /status: {message}")
    assert "\n" not in str(raised.value)


def test_given_a_status_that_is_no_object_then_one_line_saying_what_came() -> None:
    with pytest.raises(SetupError, match=r"^local stack GET /status: expected a JSON object, got"):
        parse_status(["memory_mb", 1024], source=SOURCE)


def good_delivery(**counters: int) -> dict[str, Any]:
    """A /delivery answer as the stack sends it (JSON: a whole share arrives as an integer)."""
    document: dict[str, Any] = json.loads(
        json.dumps(
            {
                "at": 1_700_000_000.5,
                "memory_mb": 1769,
                "nominal_share": 1,
                "quota_share": 1,
                "mode": "cgroup-v1",
                "cpu_ns": 0,
                "run_delay_ns": 0,
                "throttled_ns": 0,
                "nr_periods": 0,
                "nr_throttled": 0,
                "sandboxes_counted": 1,
                "samples_lost": 0,
                "sandboxes_started": 1,
                "start_failures": 0,
                "last_start_failure": "",
                **counters,
            }
        )
    )
    return document


def test_given_two_deliveries_then_the_window_is_their_difference_with_shares_as_floats() -> None:
    source = f"local stack GET {DELIVERY_PATH}"
    before = parse_delivery(good_delivery(), source=source)
    after = parse_delivery(good_delivery(cpu_ns=2_000_000_000, nr_periods=100), source=source)

    cpu = cpu_delivery(before, after)

    assert isinstance(after["quota_share"], float)
    assert cpu.cpu_s == 2.0 and cpu.nominal_share == 1.0
    assert cpu.per_period_share == pytest.approx(1.0)  # 2 s over 100 periods of 20 ms


@pytest.mark.parametrize("renamed", ["cpu_ns", "nr_periods", "quota_share", "sandboxes_counted"])
def test_given_a_delivery_with_a_renamed_counter_then_one_line_naming_it_never_zero_cpu(
    renamed: str,
) -> None:
    # GIVEN a stack of another version that calls a counter something else
    document = good_delivery(cpu_ns=5_000_000_000, nr_periods=250)
    document[renamed + "_total"] = document.pop(renamed)

    # THEN the answer is refused where it arrives, naming the key: it would otherwise read as
    # zero CPU (or zero periods), the figure that decides whether a step is degraded
    with pytest.raises(SetupError) as raised:
        parse_delivery(document, source=f"local stack GET {DELIVERY_PATH}")
    assert str(raised.value) == f"local stack GET /delivery: {renamed} is missing"


def test_given_a_delivery_with_a_counter_as_text_then_one_line_naming_key_and_type() -> None:
    document = good_delivery()
    document["cpu_ns"] = "12"
    with pytest.raises(SetupError, match=r"cpu_ns is \"12\" \(a string\), expected an integer"):
        parse_delivery(document, source=f"local stack GET {DELIVERY_PATH}")


def test_given_a_ready_line_then_its_status_and_nested_usage_plan_are_checked() -> None:
    ready = parse_ready(good_ready(), source="ready line")
    assert ready["usage_plan"] == {"rate": 10.0, "burst": 5.0}
    assert ready["memory_mb"] == 1024  # a ready line is a status too

    without_burst = {**good_ready(), "usage_plan": {"rate": 10}}
    with pytest.raises(SetupError, match=r"^ready line: usage_plan: burst is missing$"):
        parse_ready(without_burst, source="ready line")


def test_given_a_ready_line_without_the_http_apis_url_then_one_line_naming_it() -> None:
    ready = parse_ready(good_ready(), source="ready line")
    assert ready["urls"]["http"] == "http://127.0.0.1:4/DynamoDBManager"

    without_http = {**good_ready(), "urls": {"rest": good_ready()["url"]}}
    with pytest.raises(SetupError, match=r"^ready line: urls: http is missing$"):
        parse_ready(without_http, source="ready line")


# --- which handler POST /handler (and the local target's refuses) accepts --------------------


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    (tmp_path / "handler.py").write_text(
        "import boto3\nfrom json import dumps as render\nTABLE = 1\n"
        "def lambda_handler(event, context):\n    return 1\n"
        "async def later(event, context):\n    return 2\n"
    )
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "sub" / "mod.py").write_text("def run(event, context):\n    pass\n")
    (tmp_path / "pkg" / "__init__.py").write_text("handler = print\n")
    (tmp_path / "broken.py").write_text("def lambda_handler(:\n")
    (tmp_path / "fallback.py").write_text(
        "try:\n    from fast import handle\nexcept ImportError:\n"
        "    def handle(event, context):\n        return 0\n"
    )
    return tmp_path


@pytest.mark.parametrize(
    "handler",
    [
        "handler.lambda_handler",
        "handler.later",
        "handler.render",  # bound by an import: awslambdaric finds it too
        "pkg.sub.mod.run",
        "pkg/sub/mod.run",  # awslambdaric reads "/" in the module part as a package level
        "pkg.handler",  # a package's __init__.py
        "fallback.handle",  # bound inside a top-level try
    ],
)
def test_given_a_function_the_code_dir_defines_then_no_problem(
    code_dir: Path, handler: str
) -> None:
    assert handler_problem(handler, code_dir) is None


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        ("lambda_handler", "handler 'lambda_handler' is not module.function"),
        ("handler.", "handler 'handler.' is not module.function"),
        ("../etc.passwd", "handler '../etc.passwd' is not module.function"),
        ("missing.lambda_handler", "handler missing.lambda_handler: no module missing in "),
        ("handler.nothing", "handler.py defines no nothing at module level"),
        ("broken.lambda_handler", "broken.py does not parse"),
    ],
)
def test_given_an_unknown_or_malformed_handler_then_one_line_saying_why(
    code_dir: Path, handler: str, message: str
) -> None:
    problem = handler_problem(handler, code_dir)

    assert problem is not None and message in problem
    assert "\n" not in problem
