"""The run's plan: which (memory, repeat) steps run, in what order.

Shared by the sweep (which runs it), `validate` and `--dry-run` (which print it) and the
live terminal (whose whole-run bar and ETA count its steps).
"""

from __future__ import annotations

from runner.scenario import Scenario


def plan_steps(scenario: Scenario) -> list[tuple[int, int]]:
    """(memory, repeat) in run order. as-listed: each size's repeats together; interleaved:
    the whole list once per repeat, so a drift in the host or the cloud hits every size."""
    sizes = scenario.sweep.memory_mb
    repeats = range(1, scenario.sweep.repeats + 1)
    if scenario.sweep.order == "interleaved":
        return [(memory, repeat) for repeat in repeats for memory in sizes]
    return [(memory, repeat) for memory in sizes for repeat in repeats]
