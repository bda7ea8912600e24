"""Facts stated once: Lambda's numbers, how money reads, which templates exist.

Each test checks that the places that use a fact agree with its one source (runner/
lambda_facts.py, runner/analysis/_cost.py `money`, runner/scenario/_models.py's template names,
runner/analysis/_decision.py's rule, which README.md repeats).
"""

from __future__ import annotations

import ast
import re
import typing
from pathlib import Path
from typing import Any

import pytest

from runner import hdr, lambda_facts
from runner.analysis import PRICES_US_EAST_1, analyse, money
from runner.analysis._cost import lambda_compute_cost
from runner.analysis._decision import decision_rule
from runner.emulator import check_memory, cpu_share
from runner.errors import BadInput
from runner.outputs._exports import summary_markdown, summary_rows
from runner.outputs._report import render
from runner.scenario import Decision, Point, json_schema, parse_scenario, value_name
from runner.scenario._models import TEMPLATE
from runner.stack import PROJECT_ROOT, default_rate_limit, usage_plan_limit
from tests.test_report import make_results, make_step
from tests.test_scenario_hostile import GOOD, body

LOCUSTFILE = Path(__file__).resolve().parent.parent / "runner" / "load" / "locustfile.py"


def test_given_a_run_then_the_headline_the_report_and_summary_md_show_the_same_money() -> None:
    # GIVEN a run whose pick (1024 MB) costs dollars per 1M and whose cold starts add cents
    # (2 cold starts in 200 requests, 308 ms each at 1 GB: $0.050 per 1M, once "$0.05")
    steps = [
        make_step(index=1, memory=128, median_ms=60.0, billed_ms=55.0, requests=200),
        make_step(index=2, memory=1024, median_ms=12.0, billed_ms=8.0, requests=200),
    ]
    analysis = analyse(make_results(steps, thresholds={"p95_ms": 50}), intervals=False)
    pick = analysis.recommendation.cheapest
    assert pick is not None and pick.memory_mb == 1024
    cost, cold = money(pick.cost.total), money(pick.cold.per_million)
    assert pick.cost.total >= 1 and cold == "$0.050"
    # WHEN the verdict's sentences, the HTML report and summary.md are written
    page = render([analysis])
    markdown = summary_markdown(analysis, summary_rows(analysis))
    # THEN every one of them shows each figure as the report's table does
    row = re.search(r'<tr data-memory="1024".*?</tr>', page, re.S)
    assert row is not None
    assert f'<td data-field="cost"><strong>{cost}</strong>' in row.group(0)
    assert f'<td data-field="cold_cost">{cold}' in row.group(0)
    assert f"at {cost} per 1M warm requests" in analysis.recommendation.headline
    assert f"Cold starts add {cold} per 1M requests at 1024 MB" in " ".join(
        analysis.recommendation.explanation
    )
    md_row = next(line for line in markdown.splitlines() if line.startswith("| **1024 MB**"))
    escaped = cost.replace("$", "\\$")  # a bare $ pair is maths to GitHub's Markdown
    assert f"| {escaped} |" in md_row and f"at {escaped} per 1M" in markdown


def test_given_the_decision_rule_then_readme_and_the_report_state_it_in_the_same_words() -> None:
    # GIVEN the rule as runner/analysis/_decision.py words it, with the default margin
    default = Decision().cost_tolerance_pct
    rule = decision_rule(default)
    assert f"within {default:g} % of the cheaper bill" in rule
    speed = Decision().latency_tolerance_pct, Decision().latency_tolerance_ms
    assert f"below {speed[0]:g} % of the lower p95 or {speed[1]:g} ms" in rule
    # WHEN README.md (wrapped at will) and a run's report state it
    readme = " ".join((PROJECT_ROOT / "README.md").read_text(encoding="utf-8").split())
    steps = [make_step(index=1, memory=128, median_ms=60.0, requests=200)]
    analysis = analyse(make_results(steps, thresholds={"p95_ms": 500}), intervals=False)
    page = render([analysis])
    # THEN both say it in those words
    assert f"The rule: {rule}" in readme
    banner = re.search(r'<p class="rule" data-role="rule">(.*?)</p>', page, re.S)
    assert banner is not None and f"The rule:</strong> {rule} " in banner.group(1)


@pytest.mark.parametrize(
    ("memory_mb", "valid"),
    [
        (lambda_facts.MIN_MEMORY_MB - 1, False),
        (lambda_facts.MIN_MEMORY_MB, True),
        (lambda_facts.MAX_MEMORY_MB, True),
        (lambda_facts.MAX_MEMORY_MB + 1, False),
    ],
)
def test_given_a_size_at_the_edge_of_lambdas_range_then_scenario_and_local_stack_agree(
    memory_mb: int, valid: bool
) -> None:
    # GIVEN a memory size just inside or outside the range runner/lambda_facts.py states
    text = GOOD.replace("memory_mb: [128, 1024]", f"memory_mb: [{memory_mb}]")
    # WHEN the scenario format and the local stack each check it
    # THEN both accept it, or both refuse it with one clear error
    if valid:
        assert parse_scenario(text).sweep.memory_mb == [memory_mb]
        assert check_memory(memory_mb) == memory_mb
    else:
        with pytest.raises(BadInput, match="memory_mb"):
            parse_scenario(text)
        with pytest.raises(BadInput, match="outside Lambda's range"):
            check_memory(memory_mb)


def test_given_the_editors_schema_then_its_memory_bounds_are_lambdas() -> None:
    one, many = json_schema()["$defs"]["Sweep"]["properties"]["memory_mb"]["anyOf"]
    bounds = (lambda_facts.MIN_MEMORY_MB, lambda_facts.MAX_MEMORY_MB)
    assert (one["minimum"], one["maximum"]) == bounds
    assert (many["items"]["minimum"], many["items"]["maximum"]) == bounds


def test_given_mb_per_vcpu_then_the_local_stacks_cpu_share_is_one_cpu_there() -> None:
    assert cpu_share(lambda_facts.MB_PER_VCPU) == 1.0
    assert cpu_share(lambda_facts.MB_PER_VCPU // 2) == pytest.approx(0.5, abs=1e-3)


def _locustfile_templates() -> tuple[str, set[str], set[str]]:
    """The template pattern, names and name prefixes runner/load/locustfile.py renders.

    Read from its source: importing it imports Locust, which monkey-patches this process.
    """
    tree = ast.parse(LOCUSTFILE.read_text())
    pattern = next(
        str(node.value.args[0].value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "TEMPLATE" for t in node.targets)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.args[0], ast.Constant)
    )
    value = next(
        item
        for node in tree.body
        if isinstance(node, ast.ClassDef) and node.name == "Templates"
        for item in node.body
        if isinstance(item, ast.FunctionDef) and item.name == "value"
    )
    names: set[str] = set()
    prefixes: set[str] = set()
    for node in ast.walk(value):
        if isinstance(node, ast.Compare) and isinstance(node.comparators[0], ast.Constant):
            names.add(str(node.comparators[0].value))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "startswith"
            and isinstance(node.args[0], ast.Constant)
        ):
            prefixes.add(str(node.args[0].value))
    return pattern, names, prefixes


def _accepted(template: str) -> bool:
    try:
        text = body(f'{{operation: echo, payload: {{v: "{template}"}}}}')
        parse_scenario(text + "seed: {items: 1}\n")  # {{seeded}} needs seeded items
    except BadInput:
        return False
    return True


def test_given_the_template_names_then_the_scenario_accepts_exactly_what_workers_render() -> None:
    # GIVEN what runner/load/locustfile.py finds and renders (it cannot import the scenario
    # package: a stock `locust --worker -f -` fetches that one file)
    pattern, names, prefixes = _locustfile_templates()
    assert pattern == TEMPLATE.pattern
    assert names == {"uuid", "seq", "seeded"} and prefixes == {"int:"}
    # WHEN the scenario format checks each name, a bounded int, and near misses
    # THEN it accepts every name workers render and refuses the rest
    for name in names:
        assert _accepted(f"{{{{{name}}}}}"), name
    assert _accepted("{{int:-5:5}}")
    for near_miss in ("uuid4", "sequence", "int", "int:1", "random", "SEQ"):
        assert not _accepted(f"{{{{{near_miss}}}}}"), near_miss


def _locustfile_constants(*names: str) -> dict[str, object]:
    """Module-level constants of runner/load/locustfile.py, read from its source."""
    found: dict[str, object] = {}
    for node in ast.parse(LOCUSTFILE.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in names:
                    found[target.id] = node.value.value
    return found


def test_given_the_workers_histograms_then_their_range_is_the_one_hdr_reads() -> None:
    # GIVEN the locustfile's copy of the HDR range (it imports nothing from memsweep: a stock
    # `locust --worker -f -` fetches that one file)
    names = ("HDR_LOWEST_US", "HDR_HIGHEST_US", "HDR_DIGITS")
    copy = _locustfile_constants(*names)
    # THEN it is runner/hdr.py's, which results.json's reader and the statistics check against
    assert copy == {name: getattr(hdr, name) for name in names}


def test_given_api_types_and_architectures_then_one_list_serves_format_labels_and_prices() -> None:
    api = typing.get_args(Point.model_fields["api"].annotation)
    architecture = typing.get_args(Point.model_fields["architecture"].annotation)
    # The scenario format accepts exactly Lambda's facts (plus "not swept")...
    assert set(typing.get_args(api[0])) == set(lambda_facts.API_TYPES)
    assert set(typing.get_args(architecture[0])) == set(lambda_facts.ARCHITECTURES)
    # ... every one has a label and a price
    assert set(lambda_facts.API_NAMES) == set(lambda_facts.API_TYPES)
    for name in lambda_facts.API_TYPES:
        assert PRICES_US_EAST_1.api_gateway_per_million(name) > 0
        assert value_name("api", name) == lambda_facts.API_NAMES[name]
    for arch in lambda_facts.ARCHITECTURES:
        assert lambda_compute_cost(1000, 1024, architecture=arch) > 0
    assert lambda_facts.DEFAULT_API in lambda_facts.API_TYPES
    assert lambda_facts.DEFAULT_ARCHITECTURE in lambda_facts.ARCHITECTURES


@pytest.mark.node
def test_given_serverless_yml_then_seeding_and_the_local_stack_read_one_usage_plan(
    stack_config: dict[str, Any],
) -> None:
    # GIVEN the usage plan as seeding reads it without a stack (serverless.yml's default
    # params) and as the local stack throttles to it (the framework's resolved config)
    # THEN they are the same plan
    assert default_rate_limit() == usage_plan_limit(stack_config)


def test_given_the_logs_insights_limit_then_the_readme_states_the_same_number() -> None:
    from runner.targets._insights import INSIGHTS_ABOVE_INVOCATIONS

    readme = " ".join((PROJECT_ROOT / "README.md").read_text().split())
    stated = f"A step of more than {INSIGHTS_ABOVE_INVOCATIONS:,} invocations is not read line"
    assert stated in readme


def test_given_the_throttled_share_then_it_is_the_default_error_rate() -> None:
    from runner.analysis._measure import THROTTLED_SHARE
    from runner.analysis._verdict import DEFAULT_ERROR_RATE

    assert THROTTLED_SHARE == DEFAULT_ERROR_RATE


def test_given_the_metrics_wait_then_the_readme_states_the_same_figures() -> None:
    from runner.targets._cloudwatch import MAX_WAIT_S, METRICS_POLL_S, METRICS_WAIT_S

    readme = " ".join((PROJECT_ROOT / "README.md").read_text(encoding="utf-8").split())
    stated = (
        f"repeated every {METRICS_POLL_S:g} s until the window's last minute is in CloudWatch, "
        f"for at most {METRICS_WAIT_S:g} s after that minute, once per run (set "
        f"`MEMSWEEP_METRICS_WAIT_S`, 0 to {MAX_WAIT_S:g} seconds"
    )
    assert stated in readme
