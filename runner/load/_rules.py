"""The swarm's rules as pure functions: which workers are lost, which address a worker dials.

Apart from _swarm.py because importing Locust monkey-patches the interpreter with gevent:
these take values and return values, so tests call them directly.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

# Locust's name for a worker whose heartbeats stopped (locust.runners.STATE_MISSING; _swarm.py
# checks that the two agree when it is imported).
STATE_MISSING = "missing"

DISCONNECTED = "disconnected from the master"
SILENT = "stopped sending heartbeats (missing)"
NO_FINAL_REPORT = "sent no final report after the step"


def owing_final_report(
    *, expected: Iterable[str], final_from: Collection[str], lost: Collection[str]
) -> list[str]:
    """The workers the master still waits for after a stop: not reported final, not lost."""
    return sorted(set(expected) - set(final_from) - set(lost))


def newly_lost(
    *,
    expected: Iterable[str],
    states: Mapping[str, str],
    final_from: Collection[str],
    lost: Collection[str],
    now: float,
    final_deadline: float | None = None,
) -> dict[str, str]:
    """The expected workers lost as of `now`, and why; those already in `lost` are left out.

    `states` is the master's client list (worker id -> Locust state); `final_deadline` is None
    while the load runs, else when the wait for final reports ends (on the clock of `now`).
    While the load runs, every expected worker must stay connected and heartbeating. After the
    stop, only workers still owing their final report are checked: a worker leaves the client
    list once it has sent it (client_stopped) and rejoins (client_ready), which is no loss;
    checking every worker flagged such a one as disconnected (4 of ~25 runs of
    bench/master_scale.py). At the deadline every worker still owing one is lost.
    """
    if final_deadline is None:
        watched = sorted(set(expected) - set(lost))
    else:
        watched = owing_final_report(expected=expected, final_from=final_from, lost=lost)
        if now >= final_deadline:
            return dict.fromkeys(watched, NO_FINAL_REPORT)
    found: dict[str, str] = {}
    for worker in watched:
        state = states.get(worker)
        if state is None:
            found[worker] = DISCONNECTED
        elif state == STATE_MISSING:
            found[worker] = SILENT
    return found


# Addresses that mean "every interface": a local worker cannot dial them, it dials loopback.
ANY_ADDRESS = {"*": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def local_dial_host(bind_host: str) -> str:
    """The address a worker on this machine dials to reach a master bound to `bind_host`."""
    return ANY_ADDRESS.get(bind_host, bind_host)


__all__ = ["local_dial_host", "newly_lost", "owing_final_report"]
