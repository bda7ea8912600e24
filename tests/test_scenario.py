"""Scenario files: the shipped ones validate; bad ones fail naming file, line, field, value."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runner.errors import BadInput
from runner.scenario import (
    SCHEMA_PATH,
    AwsTarget,
    describe_plan,
    json_schema,
    load_scenario,
    parse_scenario,
    plan_steps,
    point_label,
    with_target,
)
from runner.stack import PROJECT_ROOT

SCENARIOS = sorted((PROJECT_ROOT / "scenarios").glob("*.yaml"))

GOOD = """\
name: ok
sweep:
  memory_mb: [128, 1024]
load:
  stages:
    - {users: 3, duration_s: 30}
    - {users: 10, duration_s: 30, ramp_s: 30}
requests:
  - name: list
    body: {operation: list, payload: {}}
"""


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_given_a_shipped_scenario_then_it_validates(path: Path) -> None:
    assert load_scenario(path).sweep.memory_mb


def test_given_the_tutorial_scenario_then_it_has_the_postman_profile() -> None:
    scenario = load_scenario(PROJECT_ROOT / "scenarios" / "memory_sweep.yaml")
    assert scenario.sweep.memory_mb == [128, 1024]
    stages = [(s.users, s.duration_s, s.ramp_s) for s in scenario.load.stages]  # type: ignore[union-attr]
    assert stages == [(3, 30, 0), (10, 30, 30), (10, 60, 0)]
    assert scenario.requests[0].body == {
        "operation": "list",
        "tableName": "lambda-apigateway",
        "payload": {},
    }


def test_given_a_minimal_scenario_then_defaults_are_local_closed_and_one_repeat() -> None:
    scenario = parse_scenario(GOOD)
    assert scenario.target.kind == "local"
    assert scenario.load.model == "closed"
    assert scenario.sweep.repeats == 1 and scenario.sweep.order == "as-listed"


def replace(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


BAD = [
    (
        "negative-users",
        replace(
            "{users: 10, duration_s: 30, ramp_s: 30}", "{users: -3, duration_s: 30, ramp_s: 30}"
        ),
        "x.yaml:7: load.stages[1].users: must be at least 1, got -3",
    ),
    (
        "warmup-as-long-as-the-load",
        replace("memory_mb: [128, 1024]", "memory_mb: [128, 1024]\n  warmup_s: 60"),
        "x.yaml:4: sweep.warmup_s: 60 s leaves nothing to measure: it must be shorter than the "
        "load's duration (60 s)",
    ),
    (
        "memory-too-small",
        replace("[128, 1024]", "[64, 1024]"),
        "x.yaml:3: sweep.memory_mb[0]: must be at least 128 MB, got 64",
    ),
    (
        "memory-too-large",
        replace("[128, 1024]", "[128, 20000]"),
        "sweep.memory_mb[1]: must be at most 10240 MB, got 20000",
    ),
    (
        "memory-duplicate",
        replace("[128, 1024]", "[128, 128]"),
        "x.yaml:3: sweep.memory_mb: lists 128 more than once (use repeats)",
    ),
    ("memory-empty", replace("[128, 1024]", "[]"), "sweep.memory_mb: must hold at least 1 item"),
    (
        "memory-string",
        replace("[128, 1024]", "[128, lots]"),
        'sweep.memory_mb[1]: expected a whole number of MB, got "lots"',
    ),
    ("unknown-top-key", GOOD + "colour: blue\n", "x.yaml:11: colour: unknown key"),
    (
        "unknown-nested-key",
        replace("memory_mb: [128, 1024]", "memory_mb: [128, 1024]\n  speed: 3"),
        "x.yaml:4: sweep.speed: unknown key",
    ),
    ("missing-name", GOOD.replace("name: ok\n", ""), "name: is required"),
    (
        "missing-sweep",
        GOOD.split("sweep:")[0] + "load:" + GOOD.split("load:", 1)[1],
        "sweep: is required",
    ),
    ("missing-requests", GOOD.split("requests:")[0], "requests: is required"),
    (
        "empty-requests",
        GOOD.split("requests:")[0] + "requests: []\n",
        "requests: must hold at least 1 item",
    ),
    (
        "ramp-longer-than-stage",
        replace("ramp_s: 30}", "ramp_s: 40}"),
        "x.yaml:7: load.stages[1]: ramp_s (40 s) is longer than duration_s (30 s)",
    ),
    (
        "zero-duration",
        replace("{users: 3, duration_s: 30}", "{users: 3, duration_s: 0}"),
        "load.stages[0].duration_s: must be more than 0 s, got 0",
    ),
    (
        "unknown-load-model",
        replace("load:\n", "load:\n  model: bursty\n"),
        'x.yaml:5: load.model: must be `closed` or `open`, got "bursty"',
    ),
    (
        "unknown-target-kind",
        GOOD + "target: {kind: azure}\n",
        'x.yaml:11: target.kind: must be `local`, `aws` or `url`, got "azure"',
    ),
    ("url-target-without-url", GOOD + "target: {kind: url}\n", "target.url: is required"),
    (
        "url-target-bad-url",
        GOOD + "target: {kind: url, url: ftp://x}\n",
        'target.url: must be an http:// or https:// URL without spaces, got "ftp://x"',
    ),
    (
        "unknown-template",
        replace("payload: {}", "payload: {Key: {id: '{{random}}'}}"),
        "unknown template '{{random}}' in body",
    ),
    (
        "seeded-without-seed",
        replace("payload: {}", "payload: {Key: {id: '{{seeded}}'}}"),
        "x.yaml:1: seed.items: is 0 but requests use {{seeded}}",
    ),
    (
        "duplicate-request-names",
        GOOD + "  - name: list\n    body: {operation: ping}\n",
        "request name 'list' is used more than once",
    ),
    (
        "bad-method",
        replace("  - name: list\n", "  - name: list\n    method: FETCH\n"),
        'requests[0].method: must be `GET`, `POST`, `PUT`, `PATCH` or `DELETE`, got "FETCH"',
    ),
    (
        "negative-weight",
        replace("  - name: list\n", "  - name: list\n    weight: -1\n"),
        "requests[0].weight: must be more than 0, got -1",
    ),
    (
        "error-rate-over-one",
        GOOD + "thresholds: {error_rate: 5}\n",
        "thresholds.error_rate: must be at most 1, got 5",
    ),
    (
        "drop-rate-negative",
        GOOD + "thresholds: {max_drop_rate: -0.1}\n",
        "thresholds.max_drop_rate: must be at least 0, got -0.1",
    ),
    (
        "think-time-inverted",
        replace("load:\n", "load:\n  think_time: {min_s: 2, max_s: 1}\n"),
        "load.think_time: max_s (1 s) is below min_s (2 s)",
    ),
    (
        "open-model-missing-rate",
        replace(
            "load:\n  stages:\n    - {users: 3, duration_s: 30}\n"
            "    - {users: 10, duration_s: 30, ramp_s: 30}\n",
            "load:\n  model: open\n  duration_s: 10\n",
        ),
        "load.rate_per_s: is required",
    ),
    (
        "open-model-with-stages",
        replace("load:\n", "load:\n  model: open\n  rate_per_s: 5\n  duration_s: 3\n"),
        "load.stages: unknown key",
    ),
    ("duplicate-key", GOOD + "name: again\n", "x.yaml:11: name: appears twice"),
    ("not-yaml", "name: [unclosed\n", "x.yaml:2: not valid YAML"),
    ("not-a-mapping", "- just\n- a list\n", "x.yaml:1: a scenario is a mapping of keys"),
    (
        "repeats-zero",
        replace("memory_mb: [128, 1024]", "memory_mb: [128, 1024]\n  repeats: 0"),
        "x.yaml:4: sweep.repeats: must be at least 1, got 0",
    ),
    (
        "bad-order",
        replace("memory_mb: [128, 1024]", "memory_mb: [128, 1024]\n  order: random"),
        'sweep.order: must be `as-listed` or `interleaved`, got "random"',
    ),
    (
        "api-typo",
        replace("memory_mb: [128, 1024]", "memory_mb: [128, 1024]\n  api: [rest, htp]"),
        'x.yaml:4: sweep.api[1]: must be `rest` or `http` (did you mean http?), got "htp"',
    ),
    (
        "handler-without-function",
        replace("memory_mb: [128, 1024]", "memory_mb: [128, 1024]\n  handler: handler"),
        "sweep.handler[0]: must be module.function, as Lambda's Handler setting names it",
    ),
    (
        "architecture-twice",
        replace("memory_mb: [128, 1024]", "memory_mb: [128, 1024]\n  architecture: [arm64, arm64]"),
        "sweep.architecture: lists arm64 more than once",
    ),
    (
        "points-and-lists",
        replace("memory_mb: [128, 1024]", "points: [{memory_mb: 128, api: http}]\n  api: rest"),
        "sweep: give either points or the api list, not both",
    ),
    (
        "points-and-other-sizes",
        replace("memory_mb: [128, 1024]", "memory_mb: 512\n  points: [{memory_mb: 128}]"),
        "sweep: give either points or memory_mb, not both",
    ),
    (
        "point-twice",
        replace(
            "memory_mb: [128, 1024]",
            "points: [{memory_mb: 128, api: http}, {memory_mb: 128, api: http}]",
        ),
        "sweep.points: lists point 2 twice (128 MB · HTTP API)",
    ),
]


def test_given_axes_beside_memory_then_the_plan_is_their_product_costliest_changes_least() -> None:
    scenario = parse_scenario(
        replace(
            "memory_mb: [128, 1024]",
            "memory_mb: [128, 1024]\n  api: [rest, http]\n  handler: [a.f, b.f]\n  repeats: 2",
        )
    )
    steps = plan_steps(scenario)
    assert len(steps) == 2 * 2 * 2 * 2
    labels = [f"{point_label(point)} r{repeat}" for point, repeat in steps]
    assert labels[:3] == [
        "128 MB · REST API · a.f r1",
        "128 MB · REST API · a.f r2",
        "1024 MB · REST API · a.f r1",
    ]
    # The handler (a code update on AWS) changes once, half way; memory changes every point.
    assert [point.handler for point, _ in steps] == ["a.f"] * 8 + ["b.f"] * 8
    assert scenario.sweep.swept_axes == ["api", "handler"]
    assert describe_plan(scenario).lines()[1].strip() == "1. 128 MB · REST API · a.f, repeat 1/2"


def test_given_explicit_points_then_they_run_as_listed_and_memory_is_theirs() -> None:
    scenario = parse_scenario(
        replace(
            "memory_mb: [128, 1024]",
            "points:\n    - {memory_mb: 1024, api: http}\n    - {memory_mb: 128}\n"
            "    - {memory_mb: 1024, architecture: arm64}",
        )
    )
    assert scenario.sweep.memory_mb == [1024, 128]
    assert [point_label(p) for p, _ in plan_steps(scenario)] == [
        "1024 MB · HTTP API",
        "128 MB",
        "1024 MB · arm64",
    ]
    assert scenario.sweep.swept_axes == ["api", "architecture"]
    # results.json stores the scenario as it ran and reads it back the same
    again = type(scenario).model_validate(scenario.model_dump(mode="json"))
    assert again == scenario


def test_given_a_memory_only_scenario_then_points_name_memory_alone() -> None:
    scenario = parse_scenario(GOOD)
    assert [point_label(p) for p, _ in plan_steps(scenario)] == ["128 MB", "1024 MB"]
    assert scenario.sweep.swept_axes == []


def test_there_are_at_least_twenty_bad_scenarios() -> None:
    assert len({case[0] for case in BAD}) == len(BAD) >= 20


@pytest.mark.parametrize(("case", "text", "expected"), BAD, ids=[case[0] for case in BAD])
def test_given_a_bad_scenario_then_the_error_names_file_line_field_and_value(
    case: str, text: str, expected: str
) -> None:
    with pytest.raises(BadInput) as raised:
        parse_scenario(text, path="x.yaml")
    assert expected in str(raised.value), str(raised.value)


def test_given_validate_on_a_bad_file_then_exit_2_and_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD[0][1])
    done = subprocess.run(
        [sys.executable, "-m", "runner", "validate", str(bad)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"memsweep: {bad}:7: load.stages[1].users: must be at least 1, got -3"
    )


def test_given_a_missing_file_then_exit_2_naming_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runner", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
    )
    assert done.returncode == 2
    assert "nope.yaml: no such scenario file" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_committed_json_schema_is_current() -> None:
    assert json.loads(SCHEMA_PATH.read_text()) == json_schema(), (
        "run `python -m runner schema` to regenerate scenarios/scenario.schema.json"
    )


def test_given_target_flags_then_the_same_scenario_runs_against_aws() -> None:
    scenario = with_target(parse_scenario(GOOD), kind="aws", stage="prod", region="eu-west-1")
    assert scenario.target == AwsTarget(kind="aws", stage="prod", region="eu-west-1")
    assert scenario.sweep == parse_scenario(GOOD).sweep  # nothing else changes


def test_given_only_a_stage_flag_then_the_files_aws_target_keeps_its_other_fields() -> None:
    text = GOOD.replace("name: ok\n", "name: ok\ntarget: {kind: aws, region: us-west-2}\n")
    scenario = with_target(parse_scenario(text), stage="staging")
    assert scenario.target == AwsTarget(kind="aws", stage="staging", region="us-west-2")


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"stage": "prod"}, "--stage does not apply to a local target (it takes no flags)"),
        ({"kind": "url"}, "--target url: --url: is required"),
        ({"kind": "url", "url": "ftp://x"}, "--target url: --url: must be an http:// or https://"),
        ({"kind": "url", "url": "http://x", "stage": "a"}, "--stage does not apply to a url"),
    ],
)
def test_given_target_flags_that_make_no_sense_then_bad_input_naming_the_flag(
    flags: dict[str, str], expected: str
) -> None:
    with pytest.raises(BadInput) as raised:
        with_target(parse_scenario(GOOD), **flags)
    assert expected in str(raised.value)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ("until: confident, repeats: 2", "sweep.repeats: until: confident measures in rounds"),
        ("until: confident, min_s: 90, max_s: 30", "sweep.min_s: 90 s is more than max_s (30 s)"),
        ("until: sometimes", "until"),
    ],
)
def test_given_a_confident_sweep_with_bad_bounds_then_one_line_naming_the_key(
    keys: str, expected: str
) -> None:
    text = GOOD.replace(
        "  memory_mb: [128, 1024]\n",
        f"  memory_mb: [128, 1024]\n  {keys.replace(', ', chr(10) + '  ')}\n",
    )
    with pytest.raises(BadInput) as raised:
        parse_scenario(text, path="x.yaml")
    message = str(raised.value)
    assert message.startswith("x.yaml:") and expected in message and "\n" not in message, message
    assert "sweep: sweep." not in message  # the blamed key once, at its own line
