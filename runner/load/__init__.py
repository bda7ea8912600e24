"""Load generation: the Locust swarm (a master, local and remote workers), what the workers run,
and seeding the table through the API before each step.

- `_swarm`: the master, local worker processes, remote workers, per-step data, lost workers
- `_rules`: the swarm's rules as pure functions (which workers are lost, which address to dial)
- `locustfile`: what workers run; self-contained (a stock `locust --worker -f -` fetches this
  one file from the master), so it imports nothing from memsweep
- `_seeding`: resets and seeds the table before a step, within the API's usage plan

Importing Locust (and seeding's gevent client) monkey-patches the interpreter with gevent, so
this face loads them only when one of their names is first used: the pure rules, and anything
that imports this package for a type, stay free of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runner.lazy import lazy_names

if TYPE_CHECKING:
    from runner.load._seeding import seed_items
    from runner.load._swarm import StepTraffic, Swarm, check_master_address, exec_worker

_WHERE = {
    "StepTraffic": "runner.load._swarm",
    "Swarm": "runner.load._swarm",
    "check_master_address": "runner.load._swarm",
    "exec_worker": "runner.load._swarm",
    "seed_items": "runner.load._seeding",
}

__getattr__ = lazy_names(__name__, _WHERE)


__all__ = ["StepTraffic", "Swarm", "check_master_address", "exec_worker", "seed_items"]
