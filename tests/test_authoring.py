"""Writing a scenario without reading the code: the generated key reference, `init`, errors
in memsweep's words with "did you mean", shorthands, the plan that `validate` prints, and quick
tries from the command line (`run --memory ... --dry-run`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import BaseModel

from runner.cli import main
from runner.errors import BadInput
from runner.scenario import (
    REFERENCE_PATH,
    AwsTarget,
    ClosedLoad,
    LocalTarget,
    OpenLoad,
    Point,
    Scenario,
    UrlTarget,
    describe_plan,
    json_schema,
    load_scenario,
    parse_scenario,
    reference_markdown,
    with_overrides,
)
from runner.scenario._errors import models_in
from runner.scenario._overrides import parse_duration
from runner.scenario._plan import END_S, START_S, STEP_OVERHEAD_S, user_seconds
from runner.scenario._reference import BEGIN, END, with_reference
from runner.stack import PROJECT_ROOT
from tests.test_scenario_hostile import GOOD  # a minimal valid scenario

SCENARIOS = PROJECT_ROOT / "scenarios"


def errors(text: str) -> list[str]:
    with pytest.raises(BadInput) as raised:
        parse_scenario(text, path="x.yaml")
    return str(raised.value).splitlines()


# --- the key reference -----------------------------------------------------------------------


def test_the_committed_key_reference_is_the_generated_one() -> None:
    committed = REFERENCE_PATH.read_text()
    assert BEGIN in committed and END in committed
    assert with_reference(committed) == committed, (
        "run `python -m runner schema --markdown` to regenerate scenarios/README.md"
    )


def test_the_reference_has_a_row_for_every_key_of_every_section() -> None:
    text = reference_markdown()
    seen: set[type] = set()

    def walk(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            assert field.description and field.examples, f"{model.__name__}.{name}"
            assert f"| `{name}` |" in text and f"`{name}: " in text, name
            for member in models_in(field.annotation):
                walk(member)

    walk(Scenario)
    assert len(seen) >= 12  # Scenario, 3 targets, sweep, 2 loads, stage, think time, ...
    assert "| `memory_mb` | list of whole numbers (one value or a list) | **required** | MB |" in (
        text
    )
    assert "`as-listed`, `interleaved`" in text and "≥ 128, ≤ 10 240" in text


def test_given_schema_markdown_to_stdout_then_it_prints_the_generated_section(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["schema", "--markdown", "-o", "-"]) == 0
    assert capsys.readouterr().out == reference_markdown()
    assert main(["schema", "-o", "-"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schema()


def test_given_a_file_with_hand_written_text_then_schema_markdown_keeps_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Mine\n\nintro\n\n{BEGIN}\nstale\n{END}\n\nfooter\n")
    assert main(["schema", "--markdown", "-o", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# Mine\n\nintro\n\n") and text.endswith(f"{END}\n\nfooter\n")
    assert "stale" not in text and "| `warmup_s` |" in text
    assert capsys.readouterr().out.strip() == str(readme)


def test_the_scenario_section_of_the_readme_links_the_reference() -> None:
    assert "scenarios/README.md" in (PROJECT_ROOT / "README.md").read_text()


# --- init ------------------------------------------------------------------------------------


def test_given_init_then_a_commented_starter_that_validates_and_targets_the_local_stack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mine.yaml"
    assert main(["init", str(path)]) == 0
    assert f"wrote {path}" in capsys.readouterr().out
    text = path.read_text()
    assert text.count("\n#") + text.count("  #") >= 15  # it explains itself
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f'{path}: ok: "my first sweep"\nplan: up to 36 steps on the local target')
    scenario = load_scenario(path)
    assert scenario.target == LocalTarget()
    assert scenario.load.duration_s <= 60  # a first run takes minutes, not an hour


def test_given_init_without_a_name_then_it_writes_scenario_yaml_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    assert load_scenario(tmp_path / "scenario.yaml").name == "my first sweep"
    capsys.readouterr()


def test_given_init_on_an_existing_file_then_exit_2_in_one_line_and_the_file_is_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text("mine\n")
    assert main(["init", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"memsweep: {path}: already exists; give another file name (init FILE) or remove it"
    ]
    assert path.read_text() == "mine\n"


# --- errors in memsweep's words --------------------------------------------------------------

DID_YOU_MEAN = [
    (
        "top",
        GOOD.replace("name: ok", "nmae: ok"),
        "x.yaml:1: nmae: unknown key (did you mean name?)",
    ),
    (
        "sweep",
        GOOD.replace("memory_mb:", "memroy_mb:"),
        "x.yaml:3: sweep.memroy_mb: unknown key (did you mean memory_mb?)",
    ),
    (
        "stage",
        GOOD.replace("duration_s: 30}", "duration_s: 30, rmap_s: 5}"),
        "x.yaml:6: load.stages[0].rmap_s: unknown key (did you mean ramp_s?)",
    ),
    (
        "request",
        GOOD + "    exepct_status: [201]\n",
        "x.yaml:10: requests[0].exepct_status: unknown key (did you mean expect_status?)",
    ),
    (
        "aws-target",
        GOOD + "target: {kind: aws, stgae: prod}\n",
        "x.yaml:10: target.stgae: unknown key (did you mean stage?)",
    ),
    (
        "another-tools-word",
        GOOD.replace("body:", "json:"),
        "x.yaml:9: requests[0].json: unknown key (did you mean body?)",
    ),
    (
        "key-in-another-section",
        GOOD.replace("load:\n", "load:\n  warmup_s: 5\n"),
        "x.yaml:5: load.warmup_s: unknown key here (warmup_s belongs in sweep)",
    ),
    (
        "duration-threshold-misspelt",
        GOOD + "thresholds: {duration_p95: 50}\n",
        "x.yaml:10: thresholds.duration_p95: unknown key (did you mean duration_p95_ms?)",
    ),
    (
        "close-to-a-key-elsewhere",
        GOOD.replace("name: ok", "name: ok\nmemory: [128]"),
        "x.yaml:2: memory: unknown key (did you mean memory_mb, in sweep?)",
    ),
]


@pytest.mark.parametrize(
    ("case", "text", "expected"), DID_YOU_MEAN, ids=[c[0] for c in DID_YOU_MEAN]
)
def test_given_an_unknown_key_at_any_level_then_did_you_mean_with_file_and_line(
    case: str, text: str, expected: str
) -> None:
    assert expected in errors(text)


def test_given_a_misspelt_required_key_then_one_line_not_also_a_missing_key() -> None:
    assert errors(GOOD.replace("memory_mb:", "memroy_mb:")) == [
        "x.yaml:3: sweep.memroy_mb: unknown key (did you mean memory_mb?)"
    ]


def test_given_a_mistyped_command_then_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["valdate", "x.yaml"])
    assert raised.value.code == 2
    assert "(did you mean validate?)" in capsys.readouterr().err


PLAIN = [
    (
        "missing",
        GOOD.replace("name: ok\n", ""),
        "x.yaml:1: name: is required (e.g. name: crud mix)",
    ),
    (
        "target-wrong-type",
        GOOD + "target: 3\n",
        "x.yaml:10: target: expected `local`, `aws`, `url`, an http(s):// URL or a mapping with "
        "kind: and that kind's keys (e.g. {kind: aws, stage: prod}), got 3",
    ),
    (
        "target-unknown-kind",
        GOOD + "target: locl\n",
        'x.yaml:10: target.kind: must be `local`, `aws` or `url` (did you mean local?), got "locl"',
    ),
    (
        "mapping-wrong-type",
        GOOD.replace("load:\n", "load:\n  think_time: 3\n"),
        "x.yaml:5: load.think_time: expected a mapping with keys min_s, max_s, got 3",
    ),
    (
        "list-wrong-type",
        GOOD.replace("[128, 1024]", "lots"),
        'x.yaml:3: sweep.memory_mb[0]: expected a whole number of MB, got "lots"',
    ),
    ("list-of-mappings", GOOD + "seed: {item: [1]}\n", "x.yaml:10: seed.item: expected a mapping"),
    (
        "whole-number",
        GOOD.replace("memory_mb: [128, 1024]", "memory_mb: [128, 1024]\n  repeats: 1.5"),
        "x.yaml:4: sweep.repeats: expected a whole number, got 1.5",
    ),
    (
        "number",
        GOOD.replace("memory_mb: [128, 1024]", "memory_mb: [128, 1024]\n  settle_s: soon"),
        'x.yaml:4: sweep.settle_s: expected a number of seconds, got "soon"',
    ),
    ("text", GOOD.replace("name: ok", "name: [ok]"), 'x.yaml:1: name: expected text, got ["ok"]'),
    (
        "bool",
        GOOD + "seed: {reset: maybe}\n",
        'x.yaml:10: seed.reset: expected true or false, got "maybe"',
    ),
    (
        "literal",
        GOOD.replace("  - name: list\n", "  - name: list\n    method: get\n"),
        "x.yaml:9: requests[0].method: must be `GET`, `POST`, `PUT`, `PATCH` or `DELETE` (did "
        'you mean GET?), got "get"',
    ),
    (
        "greater-than",
        GOOD + "thresholds: {p95_ms: 0}\n",
        "x.yaml:10: thresholds.p95_ms: must be more than 0 ms, got 0",
    ),
    (
        "duration-threshold-not-positive",
        GOOD + "thresholds: {duration_p95_ms: -5}\n",
        "x.yaml:10: thresholds.duration_p95_ms: must be more than 0 ms, got -5",
    ),
    (
        "duration-threshold-not-a-number",
        GOOD + "thresholds: {duration_p99_ms: fast}\n",
        'x.yaml:10: thresholds.duration_p99_ms: expected a number of milliseconds, got "fast"',
    ),
    (
        "at-least",
        GOOD.replace("[128, 1024]", "[100]"),
        "x.yaml:3: sweep.memory_mb[0]: must be at least 128 MB, got 100",
    ),
    (
        "at-most",
        GOOD.replace("[128, 1024]", "[128, 20000]"),
        "x.yaml:3: sweep.memory_mb[1]: must be at most 10240 MB, got 20000",
    ),
    (
        "empty-list",
        GOOD.replace("[128, 1024]", "[]"),
        "x.yaml:3: sweep.memory_mb: must hold at least 1 item, got []",
    ),
    (
        "empty-text",
        GOOD.replace("name: ok", "name: ''"),
        'x.yaml:1: name: must not be empty, got ""',
    ),
    (
        "pattern",
        GOOD + "target: {kind: url, url: ftp://x}\n",
        'x.yaml:10: target.url: must be an http:// or https:// URL without spaces, got "ftp://x"',
    ),
]


@pytest.mark.parametrize(("case", "text", "expected"), PLAIN, ids=[c[0] for c in PLAIN])
def test_given_each_kind_of_mistake_then_plain_words_with_field_and_line(
    case: str, text: str, expected: str
) -> None:
    lines = errors(text)
    assert any(line.startswith(expected) for line in lines), lines
    assert not any("Input should" in line or "instance of" in line for line in lines), lines


# --- shorthands --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("target: local", LocalTarget()),
        ("target: aws", AwsTarget(kind="aws")),
        ("target: https://example.com/api", UrlTarget(kind="url", url="https://example.com/api")),
    ],
)
def test_given_a_target_kind_or_url_alone_then_that_target_with_its_defaults(
    text: str, target: object
) -> None:
    assert parse_scenario(GOOD + text + "\n").target == target


def test_given_single_values_where_lists_are_meant_then_one_item_lists() -> None:
    text = (
        "name: ok\nsweep: {memory_mb: 512}\nload: {stages: {users: 2, duration_s: 10}}\n"
        "requests: {name: list, expect_status: 200}\n"
    )
    scenario = parse_scenario(text)
    assert scenario.sweep.memory_mb == [512]
    assert isinstance(scenario.load, ClosedLoad) and scenario.load.stages[0].users == 2
    assert scenario.requests[0].expect_status == [200]


# --- the plan ----------------------------------------------------------------------------------


def test_given_interleaved_repeats_then_validate_prints_the_steps_in_run_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(GOOD.replace("[128, 1024]", "[128, 1024]\n  repeats: 2\n  order: interleaved"))
    assert main(["validate", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    steps = [line.strip() for line in lines if line.startswith("  ") and ". " in line[:7]]
    assert steps == [
        "1. 128 MB, repeat 1/2",
        "2. 1024 MB, repeat 1/2",
        "3. 128 MB, repeat 2/2",
        "4. 1024 MB, repeat 2/2",
    ]


def test_given_an_open_load_then_expected_requests_are_rate_times_the_measured_window() -> None:
    scenario = load_scenario(SCENARIOS / "open_model.yaml")  # 50/s, 45 s, 5 s warm-up, 3 sizes
    plan = describe_plan(scenario)
    assert plan.requests_per_step == 50 * 40 and plan.requests_total == 50 * 40 * 3
    assert "expected requests: 2,000 per step (rate × 40 s measured), 6,000 in total" in (
        plan.lines()
    )


def test_given_a_closed_profile_then_the_bound_is_user_seconds_over_mean_think_time() -> None:
    # 3 for 30 s, ramp to 10, hold 60: the profile as written (until: fixed)
    scenario, _ = with_overrides(load_scenario(SCENARIOS / "memory_sweep.yaml"), until="fixed")
    assert isinstance(scenario.load, ClosedLoad)
    area = 3 * 30 + (3 + 10) / 2 * 30 + 10 * 60
    assert user_seconds(scenario.load) == pytest.approx(area)
    assert user_seconds(scenario.load, start=45) == pytest.approx((6.5 + 10) / 2 * 15 + 600)
    plan = describe_plan(scenario)
    # think time 1.2-1.8 s; the first 2 s (3 users) are the warm-up
    assert plan.requests_per_step == pytest.approx((area - 3 * 2) / 1.5)
    assert any(line.startswith("expected requests: at most 586 per step") for line in plan.lines())
    # and the space its directory needs: 2 steps, 586 measured requests each (+ the warm-up)
    assert plan.requests_per_step is not None and plan.disk_bytes is not None
    invocations = plan.requests_per_step * 2 * plan.load_s / plan.measured_s
    assert plan.disk_bytes == pytest.approx(600_000 + 2 * 30_000 + 700 * invocations)
    disk = next(line for line in plan.lines() if line.startswith("disk under --out: "))
    assert disk.startswith(f"disk under --out: at most about {plan.disk_bytes / 1e6:,.1f} MB (")


def test_given_no_think_time_then_the_plan_says_nothing_bounds_the_requests() -> None:
    plan = describe_plan(parse_scenario(GOOD))
    assert plan.requests_per_step is None
    assert any("no bound (think time 0" in line for line in plan.lines())


def test_the_estimated_duration_adds_the_stated_parts() -> None:
    scenario = load_scenario(SCENARIOS / "crud_mix.yaml")  # 4 sizes, 60 s, settle 2, 500 items
    plan = describe_plan(scenario)
    step = 60 + 2 + 500 / 80 + STEP_OVERHEAD_S["local"]
    assert plan.total_s == pytest.approx(START_S["local"] + 4 * step + END_S)
    text = "\n".join(plan.lines())
    assert "+ 4 steps × 1 min 11 s (1 min load, 2 s settle, ~6 s seeding" in text
    assert "not included:" in text


# --- quick tries -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("20", 20), ("20s", 20), ("2m", 120), ("1.5h", 5400)]
)
def test_given_a_duration_then_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_given_overrides_and_dry_run_then_the_plan_with_them_and_nothing_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reports"
    argv = [str(SCENARIOS / "crud_mix.yaml"), "--memory", "256, 512", "--duration", "20s"]
    assert main([*argv, "--repeats", "2", "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "plan: 4 steps on the local target" in text
    # crud_mix.yaml interleaves: the whole list once per repeat
    assert "  1. 256 MB, repeat 1/2\n  2. 512 MB, repeat 1/2\n  3. 256 MB, repeat 2/2" in text
    assert "each step: 20 s of load (first 10 s warm-up, 10 s measured)" in text
    assert not out.exists()


def test_given_the_other_load_model_then_a_note_says_what_replaced_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([str(SCENARIOS / "open_model.yaml"), "--users", "4", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "note: --users 4 replaces the scenario's open load (50 req/s) with a closed load" in text
    assert "load: closed model, 4 users, think time 0 s" in text
    tutorial = [str(SCENARIOS / "memory_sweep.yaml"), "--until", "fixed"]
    assert main([*tutorial, "--rate", "20", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "note: --rate 20 replaces the scenario's closed load (up to 10 users)" in text
    assert "expected requests: 2,360 per step" in text  # 20/s × (120 s - 2 s warm-up)
    # With --duration too, the note names the length the run will have (it said 120 s).
    assert main([*tutorial, "--rate", "20", "--duration", "20s", "--dry-run"]) == 0
    assert "with an open load: 20 req/s for 20 s," in capsys.readouterr().out


def test_given_a_duration_on_a_staged_profile_then_its_stages_scale() -> None:
    tutorial = load_scenario(SCENARIOS / "memory_sweep.yaml")
    scenario, notes = with_overrides(tutorial, until="fixed", duration="1m")
    assert isinstance(scenario.load, ClosedLoad) and not notes
    assert [(s.duration_s, s.ramp_s) for s in scenario.load.stages] == [(15, 0), (15, 15), (30, 0)]


def test_given_a_duration_on_a_confident_sweep_then_it_bounds_each_setting() -> None:
    scenario, notes = with_overrides(load_scenario(SCENARIOS / "memory_sweep.yaml"), duration="40s")
    assert scenario.sweep.until == "confident" and scenario.sweep.max_s == 40
    assert notes == ["--duration 40s: until confident, each setting is measured 40 s at most"]


def test_given_memory_on_a_points_scenario_then_it_keeps_the_points_at_those_sizes() -> None:
    text = (
        "name: ok\nsweep: {points: [{memory_mb: 128, api: http}, {memory_mb: 1024}, "
        "{memory_mb: 128}]}\nload: {stages: {users: 2, duration_s: 10}}\nrequests: {name: list}\n"
    )
    scenario, _ = with_overrides(parse_scenario(text), memory="128")
    assert scenario.sweep.points == [Point(memory_mb=128, api="http"), Point(memory_mb=128)]
    assert scenario.sweep.memory_mb == [128]
    with pytest.raises(BadInput, match=r"--memory 512: no point of sweep\.points has that size"):
        with_overrides(parse_scenario(text), memory="512")


def test_given_memory_on_a_product_of_axes_then_the_other_axes_stay() -> None:
    scenario, _ = with_overrides(load_scenario(SCENARIOS / "whole_bill.yaml"), memory="256")
    assert [point.memory_mb for point in scenario.sweep.planned_points()] == [256] * 4
    assert scenario.sweep.swept_axes == ["api", "handler"]


def test_given_a_rate_on_an_open_load_then_only_the_rate_changes() -> None:
    scenario, notes = with_overrides(load_scenario(SCENARIOS / "open_model.yaml"), rate=7.5)
    assert isinstance(scenario.load, OpenLoad) and not notes
    assert (scenario.load.rate_per_s, scenario.load.max_in_flight) == (7.5, 50)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--memory", "100"], "memsweep: --memory 100: must be at least 128 MB, got 100"),
        (["--memory", "256,x"], "memsweep: --memory 256,x: `x` is not a whole number of MB"),
        (["--memory", "256,256"], "memsweep: --memory 256,256: lists 256 more than once"),
        (["--duration", "2x"], "memsweep: --duration 2x: expected seconds (20 or 20s), minutes"),
        (
            ["--duration", "5s"],
            "memsweep: --duration 5s: sweep.warmup_s: 10 s leaves nothing to measure",
        ),
        (["--users", "0"], "memsweep: --users 0: must be at least 1, got 0"),
        (["--repeats", "0"], "memsweep: --repeats 0: must be at least 1, got 0"),
        (["--rate", "-1"], "memsweep: --rate -1: must be more than 0 per second"),
    ],
)
def test_given_a_bad_override_then_exit_2_naming_the_option(
    capsys: pytest.CaptureFixture[str], options: list[str], expected: str
) -> None:
    assert main([str(SCENARIOS / "crud_mix.yaml"), *options, "--dry-run"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), lines


def test_given_users_and_rate_then_exit_2_saying_they_exclude_each_other(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as raised:
        main([str(SCENARIOS / "crud_mix.yaml"), "--users", "3", "--rate", "5", "--dry-run"])
    assert raised.value.code == 2
    assert "argument --rate: not allowed with argument --users" in capsys.readouterr().err


def test_the_installed_command_names_itself_memsweep_in_usage() -> None:
    command = shutil.which("memsweep")
    assert command is not None, "pip install -e . installs the memsweep command"
    done = subprocess.run([command, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.startswith("usage: memsweep ")
