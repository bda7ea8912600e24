"""The layers hold at import time: measurement, analysis and the outputs load no Locust.

Importing Locust monkey-patches the interpreter with gevent (sockets, threads, time), so a
module that only reads step data or results must never pull it in; docs/ARCHITECTURE.md,
section 2.1 has the layers, and the lint step (lint-imports) checks their static edges.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from runner.stack import PROJECT_ROOT

PATCHERS = ("locust", "gevent")


def loaded_after(statement: str) -> list[str]:
    """Which of PATCHERS a fresh interpreter has loaded after running `statement`."""
    probe = "\n".join(
        (
            statement,
            "import json, sys",
            f"print(json.dumps(sorted({set(PATCHERS)!r} & set(sys.modules))))",
        )
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    loaded: list[str] = json.loads(done.stdout)
    return loaded


@pytest.mark.parametrize(
    "statement",
    [
        "import runner.analysis",
        "from runner.analysis import StepData, Tick, load_tick, measure_step",
        "import runner.results, runner.invocations, runner.hdr",
        "import runner.outputs",
        "import runner.targets",
        "import runner.load",  # the face: Locust loads when the swarm is first used
        "from runner.load import _rules",
    ],
)
def test_given_a_layer_below_the_swarm_then_importing_it_loads_no_locust(statement: str) -> None:
    assert loaded_after(statement) == []


def test_given_the_swarm_is_used_then_locust_loads() -> None:
    # The probe itself: the face's lazy names do load the swarm when asked for.
    assert loaded_after("from runner.load import Swarm") == ["gevent", "locust"]
