"""The scenario format: what a run is asked to do.

A YAML file is read once (with each key's line), checked against typed models, and turned
into a plan of steps. Everything else in memsweep reads the typed `Scenario`; only redaction
parses a scenario's text again, to blank its secrets in what a run keeps.

- `_models`: the pydantic models and their defaults (the only place a default lives)
- `_reading`: YAML with line numbers → `Scenario` (`parse_scenario`, `load_scenario`)
- `_overrides`: the command line's changes (`with_target`, `with_overrides`)
- `_errors`: what the models refuse, in plain words (file, line, field, value)
- `_plan`: the ordered steps, their length and request counts
- `_reference`, `_starter`: the generated key reference and the commented starter file
"""

from runner.scenario._models import (
    AXES,
    HANDLER_PATTERN,
    SCHEMA_PATH,
    TARGET_KINDS,
    AwsTarget,
    ClosedLoad,
    Decision,
    HandlerName,
    LocalTarget,
    OpenLoad,
    Point,
    PointRecord,
    RequestSpec,
    Scenario,
    Seed,
    Stage,
    ThinkTime,
    Thresholds,
    UrlTarget,
    json_schema,
    point_label,
    step_load,
    value_name,
    write_json_schema,
)
from runner.scenario._overrides import with_overrides, with_target
from runner.scenario._plan import (
    Plan,
    concurrency_check,
    describe_plan,
    max_rounds,
    peak_concurrency,
    plan_steps,
    user_seconds,
)
from runner.scenario._reading import load_scenario, parse_scenario, read_scenario_text
from runner.scenario._reference import REFERENCE_PATH, reference_markdown, write_reference
from runner.scenario._starter import write_starter

__all__ = [
    "AXES",
    "HANDLER_PATTERN",
    "REFERENCE_PATH",
    "SCHEMA_PATH",
    "TARGET_KINDS",
    "AwsTarget",
    "ClosedLoad",
    "Decision",
    "HandlerName",
    "LocalTarget",
    "OpenLoad",
    "Plan",
    "Point",
    "PointRecord",
    "RequestSpec",
    "Scenario",
    "Seed",
    "Stage",
    "ThinkTime",
    "Thresholds",
    "UrlTarget",
    "concurrency_check",
    "describe_plan",
    "json_schema",
    "load_scenario",
    "max_rounds",
    "parse_scenario",
    "peak_concurrency",
    "plan_steps",
    "point_label",
    "read_scenario_text",
    "reference_markdown",
    "step_load",
    "user_seconds",
    "value_name",
    "with_overrides",
    "with_target",
    "write_json_schema",
    "write_reference",
    "write_starter",
]
