"""The master's rules about its workers (runner/load/_rules.py), called directly.

runner/load/_swarm.py applies them to Locust's client list while a step runs and after its stop.
"""

from __future__ import annotations

from runner.load._rules import (
    DISCONNECTED,
    NO_FINAL_REPORT,
    SILENT,
    STATE_MISSING,
    local_dial_host,
    newly_lost,
    owing_final_report,
)

WORKERS = ["a", "b"]
NOW = 100.0
# After the stop: the wait for final reports ends at DEADLINE (on the same clock as NOW).
DEADLINE = 108.0


# --- while the load runs ------------------------------------------------------------------------


def test_given_every_worker_connected_and_heartbeating_then_none_is_lost() -> None:
    states = {"a": "running", "b": "spawning"}
    lost = newly_lost(expected=WORKERS, states=states, final_from=set(), lost=set(), now=NOW)
    assert lost == {}


def test_given_a_worker_gone_from_the_client_list_during_the_load_then_it_is_disconnected() -> None:
    lost = newly_lost(
        expected=WORKERS, states={"a": "running"}, final_from=set(), lost=set(), now=NOW
    )
    assert lost == {"b": DISCONNECTED}


def test_given_a_worker_marked_missing_during_the_load_then_it_stopped_sending_heartbeats() -> None:
    states = {"a": "running", "b": STATE_MISSING}
    lost = newly_lost(expected=WORKERS, states=states, final_from=set(), lost=set(), now=NOW)
    assert lost == {"b": SILENT}


def test_given_a_worker_already_lost_then_it_is_not_reported_again() -> None:
    lost = newly_lost(expected=WORKERS, states={}, final_from=set(), lost={"a"}, now=NOW)
    assert lost == {"b": DISCONNECTED}


# --- after the stop, waiting for final reports --------------------------------------------------


def test_a_worker_that_left_after_its_final_report_is_not_lost() -> None:
    # After `stop`, a worker leaves runner.clients (client_stopped) and rejoins later.
    lost = newly_lost(
        expected=WORKERS,
        states={"a": "ready"},
        final_from={"a", "b"},
        lost=set(),
        now=NOW,
        final_deadline=DEADLINE,
    )
    assert lost == {}


def test_a_worker_that_left_without_its_final_report_is_lost() -> None:
    lost = newly_lost(
        expected=WORKERS,
        states={"a": "ready"},
        final_from={"a"},
        lost=set(),
        now=NOW,
        final_deadline=DEADLINE,
    )
    assert lost == {"b": DISCONNECTED}


def test_workers_that_stay_silent_are_not_lost_before_the_wait_ends() -> None:
    states = {"a": "ready", "b": "ready"}
    lost = newly_lost(
        expected=WORKERS,
        states=states,
        final_from=set(),
        lost=set(),
        now=NOW,
        final_deadline=DEADLINE,
    )
    assert lost == {}


def test_workers_that_stay_silent_are_lost_when_the_wait_ends() -> None:
    states = {"a": "ready", "b": "ready"}
    lost = newly_lost(
        expected=WORKERS,
        states=states,
        final_from=set(),
        lost=set(),
        now=DEADLINE,
        final_deadline=DEADLINE,
    )
    assert lost == {"a": NO_FINAL_REPORT, "b": NO_FINAL_REPORT}


def test_when_the_wait_ends_then_workers_already_lost_or_reported_keep_their_state() -> None:
    lost = newly_lost(
        expected=["a", "b", "c"],
        states={},
        final_from={"a"},
        lost={"b"},
        now=DEADLINE + 1,
        final_deadline=DEADLINE,
    )
    assert lost == {"c": NO_FINAL_REPORT}


def test_the_master_waits_only_for_workers_owing_a_final_report() -> None:
    owing = owing_final_report(expected=["c", "a", "b"], final_from={"a"}, lost={"b"})
    assert owing == ["c"]


# --- where local workers dial -------------------------------------------------------------------

DIAL_CASES = {
    "0.0.0.0": "127.0.0.1",
    "*": "127.0.0.1",
    "": "127.0.0.1",
    "::": "::1",
    "10.213.57.2": "10.213.57.2",  # a LAN address: the master is not on loopback at all
    "127.0.0.1": "127.0.0.1",
}


def test_given_a_bind_address_then_local_workers_dial_where_the_master_listens() -> None:
    assert {bind: local_dial_host(bind) for bind in DIAL_CASES} == DIAL_CASES
