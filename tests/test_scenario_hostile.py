"""Hostile and careless scenario files: each is refused before anything
starts, by `validate` and by a run alike, with exit 2 and one line naming file, line and field;
never exit 3, never a trace, never a run that fails later."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from runner.cli import main
from runner.errors import BadInput
from runner.scenario import load_scenario, parse_scenario
from runner.scenario._reading import MAX_DEPTH, MAX_EXPANDED_SIZE, MAX_SCENARIO_BYTES
from runner.stack import PROJECT_ROOT

GOOD = """\
name: ok
sweep:
  memory_mb: [128, 1024]
load:
  stages:
    - {users: 3, duration_s: 30}
requests:
  - name: list
    body: {operation: list, payload: {}}
"""
BODY_LINE = 9  # the line of `body:` in GOOD
REQUEST_LINE = 8  # the line of `- name: list`


def body(text: str) -> str:
    """GOOD with its request body replaced."""
    return GOOD.replace("{operation: list, payload: {}}", text)


def request(extra: str) -> str:
    """GOOD with keys added to its request."""
    return GOOD.replace("  - name: list\n", f"  - name: list\n    {extra}\n")


def think(text: str) -> str:
    return GOOD.replace("load:\n", f"load:\n  think_time: {text}\n")


def alias_bomb() -> str:
    """Billion laughs: nine levels of nine aliases, a few hundred bytes."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    anchors = "".join(f"  {line}\n" for line in lines)
    return body("*i").replace("name: ok\n", "name: ok\nx-anchors:\n" + anchors)


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    expected: str  # what follows "FILE:" in the one line


# Text cases: the file holds these bytes. The named hostile cases first, then their neighbours.
TEXT_CASES = [
    Case(
        "alias-bomb",
        alias_bomb(),
        "9: x-anchors.g: its aliases expand to more than 4,000,000 characters",
    ),
    Case(
        "nested-5000-deep-flow",
        body("[" * 5000 + "]" * 5000),
        f"{BODY_LINE}: requests[0].body[0][0]",
    ),
    Case(
        # Block style indents every level: 1,000 levels is already half a megabyte.
        "nested-1000-deep-block",
        body("\n" + "".join("      " + " " * i + "a:\n" for i in range(1000)) + "      x"),
        "more than 64 levels deep",
    ),
    Case(
        "integer-5000-digits",
        body("9" * 5000),
        f"{BODY_LINE}: requests[0].body: a number of 5000 characters (at most 100)",
    ),
    Case(
        "complex-key",
        body("{? {a: 1} : 2}"),
        f"{BODY_LINE}: requests[0].body: a key must be a plain string, not a list or a mapping",
    ),
    Case(
        "binary-tag",
        body("!!binary aGVsbG8="),
        f"{BODY_LINE}: requests[0].body: the YAML tag !!binary is not allowed",
    ),
    Case(
        "python-tag",
        body("!!python/object/apply:os.system [echo hi]"),
        f"{BODY_LINE}: requests[0].body: the YAML tag !!python/object/apply:os.system is not",
    ),
    Case("set-tag", body("!!set {a, b}"), "requests[0].body: the YAML tag !!set is not allowed"),
    Case(
        "timestamp-tag",
        body("!!timestamp 2024-01-01"),
        "requests[0].body: the YAML tag !!timestamp is not allowed",
    ),
    Case(
        "weight-inf",
        request("weight: .inf"),
        f"{REQUEST_LINE + 1}: requests[0].weight: must be a finite number, got .inf",
    ),
    Case(
        "weight-inf-string",
        request("weight: 'inf'"),
        "requests[0].weight: must be a finite number",
    ),
    Case("weight-nan", request("weight: .nan"), "requests[0].weight: must be a finite number"),
    Case(
        "weight-huge",
        request("weight: 1.0e300"),
        "requests[0].weight: must be at most 1000000",
    ),
    Case(
        "think-time-inf",
        think("{min_s: 0, max_s: .inf}"),
        "5: load.think_time.max_s: must be a finite number, got .inf",
    ),
    Case(
        "think-time-nan",
        think("{min_s: .nan, max_s: 1}"),
        "load.think_time.min_s: must be a finite number, got .nan",
    ),
    Case(
        "think-time-negative",
        think("{min_s: -1, max_s: 1}"),
        "5: load.think_time.min_s: must be at least 0 s, got -1",
    ),
    Case(
        "think-time-a-day",
        think("{min_s: 0, max_s: 86400}"),
        "load.think_time.max_s: must be at most 3600 s, got 86400",
    ),
    Case(
        "int-template-min-above-max",
        body("{n: '{{int:10:1}}'}"),
        f"{BODY_LINE}: requests[0].body: template '{{{{int:10:1}}}}' in body: its lower bound "
        "is above its upper",
    ),
    Case(
        "int-template-5000-digits",
        body("{n: '{{int:1:" + "9" * 5000 + "}}'}"),
        "requests[0].body: unknown template",
    ),
    Case(
        "unknown-template-in-header",
        request("headers: {X-Trace: '{{random}}'}"),
        f"{REQUEST_LINE + 1}: requests[0].headers: header X-Trace: '{{{{random}}}}': templates "
        "are rendered only in body and seed.item",
    ),
    Case(
        "unknown-template-in-path",
        request("path: /items/{{random}}"),
        f"{REQUEST_LINE + 1}: requests[0].path: '{{{{random}}}}': templates are rendered only",
    ),
    Case(
        "known-template-in-path-is-never-rendered",
        request("path: /items/{{uuid}}"),
        "requests[0].path: '{{uuid}}': templates are rendered only in body and seed.item; the "
        "path is sent as written",
    ),
    Case(
        "unknown-template-in-seed-item",
        GOOD + "seed: {items: 3, item: {id: '{{nope}}'}}\n",
        "10: seed.item: unknown template '{{nope}}' in item",
    ),
    Case(
        "expect-status-999",
        request("expect_status: [999]"),
        f"{REQUEST_LINE + 1}: requests[0].expect_status[0]: must be at most 599, got 999",
    ),
    Case(
        "expect-status-99",
        request("expect_status: [200, 99]"),
        "requests[0].expect_status[1]: must be at least 100, got 99",
    ),
    Case(
        "header-crlf-injection",
        request('headers: {X-A: "1\\r\\nSet-Cookie: a=b"}'),
        "requests[0].headers: header X-A: holds the control character '\\r'",
    ),
    Case(
        "header-name-not-a-token",
        request("headers: {'X A': '1'}"),
        "requests[0].headers: header name 'X A' is not an HTTP token",
    ),
    Case(
        "path-without-slash",
        request("path: items"),
        "requests[0].path: must start with / (a path on the target's host) or http(s)://",
    ),
    Case(
        "name-with-terminal-escape",
        GOOD.replace("name: ok", 'name: "ok\\e[2J"'),
        "1: name: holds the control character '\\x1b'",
    ),
    Case(
        "key-read-as-boolean",
        body("{on: 1}"),
        f"{BODY_LINE}: requests[0].body: the key 'on' is read as a boolean: quote it",
    ),
    Case(
        "alias-inside-its-anchor",
        body("&loop [*loop]"),
        f"{BODY_LINE}: requests[0].body: alias *loop is inside its own anchor",
    ),
    Case(
        "nul-character",
        GOOD + "# \0\n",
        f"{BODY_LINE + 1}: not valid YAML: the character '\\x00' is not allowed",
    ),
    Case(
        "duplicate-key-inside-body",
        body("{a: 1, a: 2}"),
        f"{BODY_LINE}: requests[0].body.a: appears twice",
    ),
    Case(
        "key-with-a-newline",
        body('{"a\\nb": "{{nope}}"}'),
        "requests[0].body: unknown template",
    ),
]


def _write_bytes(data: bytes) -> Callable[[Path], Path]:
    def make(directory: Path) -> Path:
        path = directory / "scenario.yaml"
        path.write_bytes(data)
        return path

    return make


def _fifo(directory: Path) -> Path:
    path = directory / "scenario.yaml"
    os.mkfifo(path)  # nobody ever writes: opening it to read would wait for ever
    return path


def _directory(directory: Path) -> Path:
    path = directory / "scenario.yaml"
    path.mkdir()
    return path


FIFTY_MB = 50 * 1024 * 1024


def _fifty_megabytes(directory: Path) -> Path:
    """A valid scenario padded with comments to 50 MiB."""
    path = directory / "scenario.yaml"
    line = "# " + "x" * 1021 + "\n"
    with path.open("w") as file:
        file.write(GOOD)
        for _ in range((FIFTY_MB - len(GOOD)) // len(line)):
            file.write(line)
        file.write("#" * ((FIFTY_MB - len(GOOD)) % len(line)))
    assert path.stat().st_size == FIFTY_MB
    return path


# File cases: what the path is, not what it holds. No line: the whole file is the problem.
FILE_CASES: list[tuple[str, Callable[[Path], Path], str]] = [
    (
        "fifty-megabytes",
        _fifty_megabytes,
        f"is {FIFTY_MB:,} bytes; a scenario is at most 1,000,000 bytes",
    ),
    ("dev-zero", lambda _: Path("/dev/zero"), "is a character device, not a scenario file"),
    ("fifo", _fifo, "is a FIFO, not a scenario file"),
    ("directory", _directory, "is a directory, not a scenario file"),
    ("not-utf8", _write_bytes(GOOD.encode() + b"# \xff\xfe\n"), ":10: not UTF-8 text (byte 0xff)"),
]


# The named hostile cases: each also goes through a real process below.
ISSUE_CASES = {
    "alias-bomb",
    "fifty-megabytes",
    "nested-5000-deep-flow",
    "integer-5000-digits",
    "complex-key",
    "binary-tag",
    "python-tag",
    "dev-zero",
    "fifo",
    "directory",
    "weight-inf",
    "think-time-inf",
    "int-template-min-above-max",
    "unknown-template-in-header",
    "unknown-template-in-path",
    "expect-status-999",
}


def test_there_is_a_case_for_each_of_the_issues_hostile_inputs() -> None:
    ids = {case.id for case in TEXT_CASES} | {case[0] for case in FILE_CASES}
    assert ids >= ISSUE_CASES
    assert len(ids) == len(TEXT_CASES) + len(FILE_CASES)


@pytest.mark.parametrize("case", TEXT_CASES, ids=[case.id for case in TEXT_CASES])
def test_given_hostile_text_then_the_loader_raises_bad_input_naming_line_and_field(
    case: Case,
) -> None:
    with pytest.raises(BadInput) as raised:
        parse_scenario(case.text, path="x.yaml")
    message = str(raised.value)
    assert "\n" not in message
    # An expectation starting with a digit starts with the line: it must follow the file name.
    expected = f"x.yaml:{case.expected}" if case.expected[0].isdigit() else case.expected
    assert expected in message, message
    assert message.startswith("x.yaml:") and message.split(":")[1].isdigit(), message


# --- the command line: validate and run, all cases at once ----------------------------------


@dataclass(frozen=True)
class Outcome:
    path: Path
    command: str
    returncode: int
    stderr: str
    out_dir: Path


def _cli(path: Path, command: str, out_dir: Path) -> Outcome:
    argv = ["validate", str(path)] if command == "validate" else [str(path), "--out", str(out_dir)]
    done = subprocess.run(
        [sys.executable, "-m", "runner", *argv],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,  # the alias bomb ran for minutes before; this bounds a regression
        env={**os.environ, "MEMSWEEP_DEBUG": ""},
    )
    return Outcome(path, command, done.returncode, done.stderr, out_dir)


EXPECTED = {case.id: case.expected for case in TEXT_CASES} | {
    case[0]: case[2] for case in FILE_CASES
}
# Through a real `python -m runner`: the named cases with `validate`, and with a run the ones
# that could make a run start or hang (each process is ~0.5 s of CPU; the rest go through the
# same main() in this process below).
PROCESS_RUNS = [(case_id, "validate") for case_id in sorted(ISSUE_CASES)] + [
    (case_id, "run") for case_id in ("alias-bomb", "fifty-megabytes", "dev-zero", "fifo")
]


def _make(case_id: str, directory: Path) -> Path:
    for case in TEXT_CASES:
        if case.id == case_id:
            path = directory / "scenario.yaml"
            path.write_text(case.text)
            return path
    return next(make for file_case, make, _ in FILE_CASES if file_case == case_id)(directory)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, str], Outcome]]:
    """Every PROCESS_RUNS command, a few processes at a time."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {}
        for case_id, command in PROCESS_RUNS:
            directory = tmp_path_factory.mktemp(case_id)
            path = _make(case_id, directory)
            futures[(case_id, command)] = pool.submit(_cli, path, command, directory / "reports")
        yield {key: future.result() for key, future in futures.items()}


def _one_clear_line(outcome: Outcome, case_id: str) -> None:
    assert outcome.returncode == 2, outcome.stderr
    lines = outcome.stderr.splitlines()
    assert len(lines) == 1, outcome.stderr
    assert lines[0].startswith(f"memsweep: {outcome.path}"), lines[0]
    assert EXPECTED[case_id] in lines[0], lines[0]
    assert "internal error" not in lines[0] and "Traceback" not in outcome.stderr
    assert not outcome.out_dir.exists(), "a run started: it wrote its output directory"


@pytest.mark.parametrize(
    ("case_id", "command"), PROCESS_RUNS, ids=[f"{c}-{m}" for c, m in PROCESS_RUNS]
)
def test_given_a_hostile_file_then_python_m_runner_exits_2_with_one_line_before_anything_starts(
    outcomes: dict[tuple[str, str], Outcome], case_id: str, command: str
) -> None:
    _one_clear_line(outcomes[(case_id, command)], case_id)


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("case_id", sorted(EXPECTED))
def test_given_a_hostile_file_then_main_exits_2_with_one_line_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case_id: str, command: str
) -> None:
    path = _make(case_id, tmp_path)
    out_dir = tmp_path / "reports"
    argv = ["validate", str(path)] if command == "validate" else [str(path), "--out", str(out_dir)]
    code = main(argv)
    _one_clear_line(Outcome(path, command, code, capsys.readouterr().err, out_dir), case_id)


# --- limits: just under is fine, just over is refused ---------------------------------------


def test_given_a_file_of_exactly_the_size_limit_then_it_loads(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    padding = MAX_SCENARIO_BYTES - len(GOOD) - 1
    path.write_text(GOOD + "#" + "x" * (padding - 1) + "\n")
    assert path.stat().st_size == MAX_SCENARIO_BYTES
    assert load_scenario(path).name == "ok"


def test_given_a_file_one_byte_over_the_size_limit_then_it_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(GOOD + "#" + "x" * (MAX_SCENARIO_BYTES - len(GOOD) - 1) + "\n")
    with pytest.raises(BadInput, match="is 1,000,001 bytes; a scenario is at most 1,000,000"):
        load_scenario(path)


def nested_body(levels: int) -> str:
    """A body whose innermost value is `levels` below the document's top (requests, [0], body
    are the first three)."""
    return body("[" * (levels - 3) + "1" + "]" * (levels - 3))


def test_given_nesting_at_the_depth_limit_then_it_loads() -> None:
    assert parse_scenario(nested_body(MAX_DEPTH)).requests[0].body is not None


def test_given_nesting_one_past_the_depth_limit_then_it_is_refused() -> None:
    with pytest.raises(BadInput, match=f"nested more than {MAX_DEPTH} levels deep"):
        parse_scenario(nested_body(MAX_DEPTH + 1))


def test_given_a_dynamodb_item_nested_32_levels_in_a_body_then_it_loads() -> None:
    item = "{id: deep, v: " + "{m: " * 31 + "1" + "}" * 31 + "}"
    text = body("{operation: create, payload: {Item: " + item + "}}")
    assert parse_scenario(text).requests[0].body["payload"]["Item"]["id"] == "deep"


def test_given_aliases_used_as_meant_then_the_scenario_loads_with_them_expanded() -> None:
    text = GOOD.replace("  - name: list\n", "  - name: list\n    headers: &common {X-Team: perf}\n")
    text += "  - name: get\n    headers: *common\n    body: {operation: read, payload: {}}\n"
    scenario = parse_scenario(text)
    assert [spec.headers for spec in scenario.requests] == [{"X-Team": "perf"}] * 2


def test_given_aliases_expanding_to_just_under_the_limit_then_it_loads() -> None:
    # One string of 9,999 characters (10,000 with its node), used 398 times in a list.
    uses = MAX_EXPANDED_SIZE // 10_000 - 2
    text = body("{payload: &s " + "x" * 9_999 + ", copies: [" + ", ".join(["*s"] * uses) + "]}")
    assert len(parse_scenario(text).requests[0].body["copies"]) == uses


def test_given_aliases_expanding_just_over_the_limit_then_it_is_refused() -> None:
    uses = MAX_EXPANDED_SIZE // 10_000
    text = body("{payload: &s " + "x" * 9_999 + ", copies: [" + ", ".join(["*s"] * uses) + "]}")
    with pytest.raises(BadInput, match=r"requests\[0\]\.body\.copies: its aliases expand to more"):
        parse_scenario(text)


def test_given_a_date_then_it_stays_the_text_written() -> None:
    scenario = parse_scenario(body("{operation: list, payload: {since: 2024-01-01}}"))
    assert scenario.requests[0].body["payload"]["since"] == "2024-01-01"


def test_given_int_template_bounds_in_order_then_the_scenario_loads() -> None:
    scenario = parse_scenario(body("{n: '{{int:-5:5}}', m: '{{int:7:7}}'}"))
    assert scenario.requests[0].body == {"n": "{{int:-5:5}}", "m": "{{int:7:7}}"}


def test_given_seeded_with_spaces_and_no_seed_then_it_is_refused() -> None:
    with pytest.raises(BadInput, match=r"seed\.items: is 0 but requests use"):
        parse_scenario(body("{id: '{{ seeded }}'}"))
