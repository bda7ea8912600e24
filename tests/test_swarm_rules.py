"""The master's rules about workers at the end of a step (runner/swarm.py `_await_final_reports`).

Locust monkey-patches the standard library on import, so the swarm is driven in a child
interpreter, against a stand-in for the Locust master holding only the client list the rules
read; each case prints what the master concluded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from runner.stack import PROJECT_ROOT

CASES = r"""
import json
from types import SimpleNamespace
from runner import swarm

swarm.FINAL_REPORT_TIMEOUT_S = 0.3
ready = SimpleNamespace(state="ready")
results = {}
for case, clients, final_from in [
    # After `stop`, a worker leaves runner.clients (client_stopped) and rejoins later.
    ("left after its final report", {"a": ready}, {"a", "b"}),
    ("left without its final report", {"a": ready}, {"a"}),
    ("present but silent", {"a": ready, "b": ready}, set()),
]:
    master = swarm.Swarm(local_workers=0)
    master.runner = SimpleNamespace(clients=clients)
    data = swarm.StepData(step="s")
    data.final_from = set(final_from)
    master._await_final_reports(data, ["a", "b"])
    results[case] = {"lost": data.lost_workers, "lost_at": sorted(data.lost_at)}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def concluded() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CASES], cwd=PROJECT_ROOT, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_a_worker_that_left_after_its_final_report_is_not_lost(concluded: dict[str, Any]) -> None:
    assert concluded["left after its final report"] == {"lost": {}, "lost_at": []}


def test_a_worker_that_left_without_its_final_report_is_lost(concluded: dict[str, Any]) -> None:
    assert concluded["left without its final report"] == {
        "lost": {"b": "disconnected from the master"},
        "lost_at": ["b"],
    }


def test_workers_that_stay_silent_are_lost_when_the_wait_ends(concluded: dict[str, Any]) -> None:
    assert concluded["present but silent"]["lost"] == {
        "a": "sent no final report after the step",
        "b": "sent no final report after the step",
    }


DIAL_CASES = {
    "0.0.0.0": "127.0.0.1",
    "*": "127.0.0.1",
    "": "127.0.0.1",
    "::": "::1",
    "10.213.57.2": "10.213.57.2",  # a LAN address: the master is not on loopback at all
    "127.0.0.1": "127.0.0.1",
}


def test_given_a_bind_address_then_local_workers_dial_where_the_master_listens() -> None:
    # A child interpreter, as above: importing runner.swarm imports Locust.
    code = (
        "import json, sys; from runner.swarm import local_dial_host; "
        "print(json.dumps({b: local_dial_host(b) for b in json.loads(sys.argv[1])}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(list(DIAL_CASES))],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(done.stdout) == DIAL_CASES
