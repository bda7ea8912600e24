"""Fuzzing the scenario loader: valid scenarios round-trip through YAML;
mutated ones load or fail with BadInput naming file and line, never with another exception."""

from __future__ import annotations

import re
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.errors import BadInput
from runner.scenario import Scenario, parse_scenario
from runner.scenario._errors import MAX_MESSAGE_CHARS
from runner.stack import PROJECT_ROOT
from tests.fuzzing import examples

# Bounded so the three fuzz tests together take well under a minute on a loaded CI runner;
# no example database: CI starts clean, and nothing is left in the working tree.
FUZZ = settings(
    max_examples=examples(100),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --- valid scenarios, from the models' own bounds ----------------------------------------------

TOKEN = string.ascii_letters + string.digits + "-_"
tokens = st.text(alphabet=TOKEN, min_size=1, max_size=12)
# Printable names: the models refuse C0 controls and DEL in names.
# NEL, LS and PS are line breaks in YAML 1.1: PyYAML's emitter writes them raw inside quoted
# scalars with allow_unicode, and any YAML reader folds them back as breaks. Not ours to fix;
# a file written by hand escapes them ("\x85") or holds them where the reader keeps them.
YAML_BREAKS = "\x85\u2028\u2029"
characters = st.characters(blacklist_categories=["Cs"], blacklist_characters=YAML_BREAKS)
names = st.text(
    alphabet=st.characters(blacklist_categories=["Cc", "Cs"], blacklist_characters=YAML_BREAKS),
    min_size=1,
    max_size=30,
)
plain_text = st.text(alphabet=characters, max_size=20).filter(
    lambda text: "{{" not in text and "}}" not in text
)
templates = st.sampled_from(["{{uuid}}", "{{seq}}", "{{int:1:9}}", "{{ int:-5:5 }}", "x-{{seq}}"])


def floats(low: float, high: float, *, above_low: bool = False) -> st.SearchStrategy[float]:
    return st.floats(low, high, exclude_min=above_low, allow_nan=False)


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    plain_text,
    templates,
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(plain_text, children, max_size=4)
    ),
    max_leaves=12,
)

targets = st.one_of(
    st.fixed_dictionaries(
        {"kind": st.just("local")},
        optional={
            "handler": tokens.map(lambda t: f"handler.{t}"),
            "integration": st.sampled_from(["lambda-proxy", "lambda"]),
            "latency_ms": floats(0, 10_000),
            "concurrency": st.integers(1, 1000),
            "calibrate": st.booleans(),
        },
    ),
    st.fixed_dictionaries(
        {"kind": st.just("aws")},
        optional={"stack": tokens, "stage": tokens, "region": tokens | st.none()},
    ),
    st.fixed_dictionaries(
        {"kind": st.just("url"), "url": tokens.map(lambda t: f"https://{t}.example/dev")},
        optional={"api_key_env": tokens},
    ),
)


@st.composite
def stages(draw: st.DrawFn) -> dict[str, Any]:
    duration = draw(floats(0, 86_400, above_low=True))
    return {
        "users": draw(st.integers(1, 100_000)),
        "duration_s": duration,
        "ramp_s": draw(floats(0, duration)),
    }


@st.composite
def loads(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        low, high = sorted([draw(floats(0, 3600)), draw(floats(0, 3600))])
        return {
            "model": "closed",
            "stages": draw(st.lists(stages(), min_size=1, max_size=3)),
            "think_time": {"min_s": low, "max_s": high},
        }
    return {
        "model": "open",
        "rate_per_s": draw(floats(0, 100_000, above_low=True)),
        "duration_s": draw(floats(0, 86_400, above_low=True)),
        "max_in_flight": draw(st.integers(1, 100_000)),
        "arrivals": draw(st.sampled_from(["poisson", "uniform"])),
    }


requests = st.fixed_dictionaries(
    {"name": names},
    optional={
        "weight": floats(0, 1_000_000, above_low=True),
        "method": st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]),
        "path": tokens.map(lambda t: f"/dev/{t}"),
        "body": json_values,
        "headers": st.dictionaries(tokens, st.text(alphabet=TOKEN + " /;=", max_size=20)),
        "expect_status": st.lists(st.integers(100, 599), min_size=1, max_size=3),
    },
)


@st.composite
def scenario_dicts(draw: st.DrawFn) -> dict[str, Any]:
    load = draw(loads())
    duration = (
        sum(stage["duration_s"] for stage in load["stages"])
        if load["model"] == "closed"
        else load["duration_s"]
    )
    return {
        "name": draw(names),
        "description": draw(st.text(alphabet=characters, max_size=40)),
        "target": draw(targets),
        "sweep": {
            "memory_mb": draw(
                st.lists(st.integers(128, 10_240), min_size=1, max_size=5, unique=True)
            ),
            "repeats": draw(st.integers(1, 100)),
            "order": draw(st.sampled_from(["as-listed", "interleaved"])),
            "settle_s": draw(floats(0, 3600)),
            "warmup_s": draw(st.floats(0, min(3600, duration), exclude_max=True)),
        },
        "load": load,
        "requests": draw(
            st.lists(requests, min_size=1, max_size=3, unique_by=lambda spec: spec["name"])
        ),
        "seed": draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "items": st.integers(0, 100_000),
                    "reset": st.booleans(),
                    "item": st.dictionaries(plain_text, json_values, max_size=4),
                },
            )
        ),
        "thresholds": draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "p95_ms": floats(0, 1e6, above_low=True),
                    "error_rate": floats(0, 1),
                    "min_rps": floats(0, 1e6, above_low=True),
                    "max_drop_rate": floats(0, 1),
                },
            )
        ),
        "workers": draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "local": st.integers(0, 256) | st.none(),
                    "expect_remote": st.integers(0, 1000),
                    "wait_s": floats(0, 3600, above_low=True),
                },
            )
        ),
    }


scenarios = scenario_dicts().map(Scenario.model_validate)


@FUZZ
@given(scenarios)
def test_given_a_valid_scenario_then_it_round_trips_through_yaml(scenario: Scenario) -> None:
    text = yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    assert parse_scenario(text, path="x.yaml") == scenario


# --- mutated scenarios: a Scenario or BadInput naming the line, nothing else ------------------

LINE = re.compile(r"^x\.yaml:\d+: \S")


def loads_or_names_the_line(text: str) -> Scenario | None:
    try:
        return parse_scenario(text, path="x.yaml")
    except BadInput as exc:
        message = str(exc)
        for line in message.splitlines():
            assert LINE.match(line), message
            assert len(line) <= MAX_MESSAGE_CHARS + len("x.yaml:"), message
        return None


FIELD_NAMES = ["name", "kind", "memory_mb", "stages", "body", "weight", "think_time", "<<", ""]
hashables = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8), st.dates()
)
anything = st.recursive(
    st.one_of(
        hashables,
        st.integers(-(10**200), 10**200),
        st.sampled_from([10**4000, -(10**120), float("inf"), float("nan")]),
        st.binary(max_size=8),
        st.datetimes(),
        st.sampled_from(
            ["{{int:10:1}}", "{{nope}}", "{{ seeded }}", "{{int:1:" + "9" * 50 + "}}", "on", "1:20"]
        ),
        # Python-only values (the full Dumper tags them !!python/...), now and then: each
        # refuses the whole file, which hides whatever else the example holds.
        st.sampled_from([(1, "a"), 1j, frozenset({1})]),
    ),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(hashables | st.sampled_from(FIELD_NAMES), children, max_size=3)
    ),
    max_leaves=8,
)


def _slots(value: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in a document, the document's top included."""
    found: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append((value, key))
            found.extend(_slots(item))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.append((value, index))
            found.extend(_slots(item))
    return found


@st.composite
def mutated_texts(draw: st.DrawFn) -> str:
    document = draw(scenarios).model_dump(mode="json")
    if draw(st.booleans()):  # bodies take any JSON: the likeliest place for a stray type
        document["requests"][0]["body"] = draw(anything)
    for _ in range(draw(st.integers(0, 4))):
        container, key = draw(st.sampled_from(_slots(document)))
        action = draw(st.sampled_from(["delete", "insert", "replace"]))
        if action == "delete":
            del container[key]
        elif action == "insert" and isinstance(container, dict):
            container[draw(st.sampled_from(FIELD_NAMES) | hashables)] = draw(anything)
        elif action == "insert":
            container.insert(key, draw(anything))
        else:
            container[key] = draw(anything)
    # The full Dumper writes any Python value, with the tags a careless or hostile file has.
    return yaml.dump(document, Dumper=yaml.Dumper, sort_keys=False)


@FUZZ
@given(mutated_texts())
def test_given_a_mutated_scenario_then_it_loads_or_fails_naming_the_line(text: str) -> None:
    loads_or_names_the_line(text)


SHIPPED = [path.read_text() for path in sorted((PROJECT_ROOT / "scenarios").glob("*.yaml"))]
# Text a corruption may insert: YAML's syntax, tags and aliases, and bytes it refuses.
SNIPPETS = st.sampled_from(
    [
        "&a ",
        "*a",
        "*b ",
        "!!binary ",
        "!!python/object:os.system ",
        "!!set ",
        "? ",
        "<<: ",
        "- ",
        ": ",
        "\t",
        "\x00",
        "\ufeff",
        "{",
        "}",
        "[",
        "]",
        "'",
        '"',
        "|\n",
        "%YAML 1.1\n",
        "---\n",
        "...\n",
        ".inf",
        ".nan",
        "9" * 200,
        "{{int:10:1}}",
        "  ",
        "\n",
        "#",
    ]
)


@st.composite
def corrupted_texts(draw: st.DrawFn) -> str:
    text = draw(
        st.sampled_from(SHIPPED)
        | scenarios.map(lambda s: yaml.safe_dump(s.model_dump(mode="json"), sort_keys=False))
    )
    for _ in range(draw(st.integers(1, 5))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 20)))
        action = draw(st.sampled_from(["delete", "insert", "replace", "duplicate"]))
        insert = draw(SNIPPETS | st.text(max_size=6))
        if action == "delete":
            text = text[:start] + text[end:]
        elif action == "insert":
            text = text[:start] + insert + text[start:]
        elif action == "replace":
            text = text[:start] + insert + text[end:]
        else:
            text = text[:end] + text[start:end] + text[end:]
    return text


@FUZZ
@given(corrupted_texts())
def test_given_corrupted_yaml_text_then_it_loads_or_fails_naming_the_line(text: str) -> None:
    loads_or_names_the_line(text)


# --- the command line, for a few fixed examples ------------------------------------------------

VALID = yaml.safe_dump(
    Scenario.model_validate(
        {
            "name": "fuzz",
            "sweep": {"memory_mb": [128]},
            "load": {"stages": [{"users": 1, "duration_s": 5}]},
            "requests": [{"name": "list", "body": {"operation": "list", "payload": {}}}],
        }
    ).model_dump(mode="json"),
    sort_keys=False,
)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (VALID, 0),
        (VALID.replace("users: 1", "users: !!python/tuple [1, 2]"), 2),
        (VALID.replace("memory_mb:", "memory_mb: &m [*m]\n  x:"), 2),
        (VALID[: len(VALID) // 2] + "{[\x00" + VALID[len(VALID) // 2 :], 2),
    ],
    ids=["valid", "python-tag", "alias-in-anchor", "corrupted"],
)
def test_given_fuzzed_files_then_validate_exits_0_or_2_never_3(
    tmp_path: Path, text: str, code: int
) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "runner", "validate", str(path)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
    )
    assert done.returncode == code, done.stderr
    if code == 2:
        assert re.match(rf"^memsweep: {re.escape(str(path))}:\d+: \S", done.stderr), done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1
