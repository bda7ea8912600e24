"""The run's plan: which (point, repeat) steps run, in what order, how long, how many requests.

Shared by the sweep (which runs it), `validate` and `--dry-run` (which print it) and the
live terminal (whose whole-run bar and ETA count its steps and their estimated length).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from itertools import pairwise

from runner.lambda_facts import MB_PER_VCPU
from runner.scenario._models import ClosedLoad, Point, Scenario, point_label, step_load

# Per-step time outside the load, measured on local sweeps here (5 s and 30 s steps): the
# local stack swaps every sandbox for the new size and Locust stops its users in 1-3 s. On
# AWS a memory update waits for LastUpdateStatus (seconds) and the REPORT lines are read
# from CloudWatch Logs, which polls up to 6 x 5 s (runner/targets/_aws.py LOG_SETTLE_*):
# ~15 s is typical. A url target changes nothing.
STEP_OVERHEAD_S = {"local": 3.0, "aws": 15.0, "url": 1.0}
# Once per run: starting the target and the Locust workers (local: dynalite, the stack and
# its CPU calibration, 10 s with one worker on an idle host and 23 s with two on a busy one,
# measured here; aws: reading the stack's outputs) and, at the end, restoring memory and
# writing the report (~4 s measured).
START_S = {"local": 15.0, "aws": 5.0, "url": 2.0}
END_S = 4.0
# Seeding paces itself to 80 % of the usage plan's rate (runner/load/_seeding.py SAFE_FRACTION)
# and serverless.yml's plan allows 100 requests/s: 80 items/s, unless a 429 halves it.
SEED_ITEMS_PER_S = 80.0


def plan_steps(scenario: Scenario) -> list[tuple[Point, int]]:
    """(point, repeat) in run order. as-listed: each point's repeats together; interleaved:
    the whole list once per repeat, so a drift in the host or the cloud hits every point.
    until: confident: every round that could run (a point stops early once it is settled),
    interleaved: the repeat is the round."""
    points = scenario.sweep.planned_points()
    repeats = range(1, scenario.sweep.repeats + 1)
    if scenario.sweep.until == "confident":
        return [
            (point, round_) for round_ in range(1, max_rounds(scenario) + 1) for point in points
        ]
    if scenario.sweep.order == "interleaved":
        return [(point, repeat) for repeat in repeats for point in points]
    return [(point, repeat) for point in points for repeat in repeats]


# An open model's concurrency is its rate times how long a call takes, unknown before the run:
# an API Gateway -> Lambda -> DynamoDB call of a few ms to a cold start of a few hundred.
ASSUMED_CALL_S = 0.25
# A plan this close to the concurrency limit is warned about: cold starts overlap the calls
# they delay, and bursts of an open model's arrivals pass the mean.
CONCURRENCY_WARN_SHARE = 0.8


def peak_concurrency(scenario: Scenario) -> tuple[int, str]:
    """The most calls the plan can have in flight at once, and how that was reached: a closed
    model's peak users (each waits for its answer), an open model's rate × an assumed call
    time, capped by its max_in_flight."""
    load = scenario.load
    if isinstance(load, ClosedLoad):
        return load.peak_users, f"{load.peak_users} users at the peak"
    peak = min(load.max_in_flight, math.ceil(load.rate_per_s * ASSUMED_CALL_S))
    return peak, (
        f"{load.rate_per_s:g} arrivals/s × an assumed {ASSUMED_CALL_S * 1000:g} ms per call "
        f"(max_in_flight {load.max_in_flight})"
    )


def concurrency_check(scenario: Scenario, limit: int, where: str) -> tuple[bool, str | None]:
    """(refused, line) for a plan against a concurrency limit: refused when its peak exceeds
    the limit (the load would be throttled by the account, not measured), a warning within
    CONCURRENCY_WARN_SHARE of it, (False, None) otherwise."""
    peak, how = peak_concurrency(scenario)
    if peak > limit:
        return True, (
            f"the plan's peak concurrency is {peak} ({how}), above {where} of {limit}: the "
            "load would be throttled by the account, not measured. Ask for a higher "
            "'Concurrent executions' quota (Service Quotas, AWS Lambda), or lower the load"
        )
    if peak > CONCURRENCY_WARN_SHARE * limit:
        return False, (
            f"warning: the plan's peak concurrency is {peak} ({how}), within "
            f"{CONCURRENCY_WARN_SHARE:.0%} of {where} of {limit}: cold starts and bursts may be "
            "throttled (the report names a step whose errors are 429s)"
        )
    return False, None


def max_rounds(scenario: Scenario) -> int:
    """until: confident: the rounds that measure a setting for max_s (the last may be short
    of a full round_s only in the plan's count: it runs whole)."""
    sweep = scenario.sweep
    return max(1, math.ceil(sweep.max_s / sweep.round_s - 1e-9))


# What a run directory holds, measured here (a six-size confident sweep: 45 steps, 3,494
# invocations): lambda.log 663 B per invocation (START, END, REPORT and the handler's lines),
# results.json ~7.5 KB and Locust's CSVs ~20 KB per step, report.html 0.3-0.4 MB.
DISK_PER_REQUEST = 700
DISK_PER_STEP = 30_000
DISK_BASE = 600_000


@dataclass(frozen=True)
class Plan:
    """What a run will do, estimated before it starts."""

    steps: list[tuple[Point, int]]  # (point, repeat), in run order
    repeats: int  # until: confident: the most rounds
    until: str
    target: str
    load_s: float  # each step's load, warm-up included
    warmup_s: float
    measured_s: float
    settle_s: float
    seed_s: float  # each step's seeding, estimated from the pace
    overhead_s: float  # each step's memory change and log reading (STEP_OVERHEAD_S)
    start_s: float
    end_s: float
    model: str  # "closed" or "open"
    cpus: int  # this machine's (what the local stack's sandboxes share)
    largest_mb: int
    load_text: str  # the load in words: "3 → 10 users, think time 1.2-1.8 s"
    # Requests measured per step: the expected count (open model) or an upper bound from the
    # users and their mean think time (closed model); None when nothing bounds it.
    requests_per_step: float | None

    @property
    def step_s(self) -> float:
        return self.settle_s + self.seed_s + self.overhead_s + self.load_s

    @property
    def total_s(self) -> float:
        return self.start_s + len(self.steps) * self.step_s + self.end_s

    @property
    def requests_total(self) -> float | None:
        per_step = self.requests_per_step
        return None if per_step is None else per_step * len(self.steps)

    def lines(self) -> list[str]:
        """The plan as `validate` and `--dry-run` print it."""
        count = len(self.steps)
        if self.until == "confident":
            out = [
                f"plan: up to {count} steps on the {self.target} target: rounds of every setting, "
                "each stopping once nothing the verdict needs about it is unsettled"
            ]
        else:
            out = [f"plan: {count} step{'s' if count != 1 else ''} on the {self.target} target"]
        width = len(str(count))
        if self.until == "confident":
            first = [point for point, round_ in self.steps if round_ == 1]
            for index, point in enumerate(first, start=1):
                out.append(f"  {index:>{width}}. {point_label(point)}")
            out.append(
                f"  then the same order again, round after round, for each setting still open: "
                f"up to {self.repeats} rounds"
            )
        for index, (point, repeat) in enumerate(
            [] if self.until == "confident" else self.steps, start=1
        ):
            word = "round" if self.until == "confident" else "repeat"
            again = f", {word} {repeat}/{self.repeats}" if self.repeats > 1 else ""
            out.append(f"  {index:>{width}}. {point_label(point)}{again}")
        out.append(f"load: {self.model} model, {self.load_text}")
        if self.target == "local":
            out.append(self._cores_line())
        if self.target == "aws" and self.until == "confident":
            out.append(
                "each round changes memory on AWS: a new set of sandboxes (their cold starts "
                f"fall in the warm-up, and are billed) and ~{_duration(self.overhead_s)} to "
                "update the function and read its logs; until: fixed measures one block per "
                "setting instead"
            )
        window = f"{_duration(self.load_s)} of load"
        if self.warmup_s:
            window += (
                f" (first {_duration(self.warmup_s)} warm-up, {_duration(self.measured_s)} "
                "measured)"
            )
        out.append(f"each step: {window}")
        out.append(self._requests_line())
        out.append(self._disk_line())
        if self.until == "confident":
            out.append(f"estimated duration: at most {_duration(self.total_s)}")
        else:
            out.append(f"estimated duration: {_duration(self.total_s)}")
        out.append(f"  = {_duration(self.start_s)} to start the target and the Locust workers")
        parts = [f"{_duration(self.load_s)} load"]
        if self.settle_s:
            parts.append(f"{_duration(self.settle_s)} settle")
        if self.seed_s >= 0.5:
            parts.append(f"~{_duration(self.seed_s)} seeding at {SEED_ITEMS_PER_S:g} items/s")
        parts.append(f"~{_duration(self.overhead_s)} to change memory and read its logs")
        out.append(
            f"  + {count} step{'s' if count != 1 else ''} × {_duration(self.step_s)} "
            f"({', '.join(parts)})"
        )
        out.append(f"  + {_duration(self.end_s)} to restore memory and write the report")
        out.append(
            "  not included: seeding slowed by the API's throttle (429), waiting for remote workers"
        )
        return out

    @property
    def disk_bytes(self) -> float | None:
        """What the run directory will hold at most (None: the request count has no bound)."""
        if self.requests_total is None:
            return None
        invocations = self.requests_total * self.load_s / max(self.measured_s, 1e-9)
        return DISK_BASE + DISK_PER_STEP * len(self.steps) + DISK_PER_REQUEST * invocations

    def _disk_line(self) -> str:
        """The space --out needs: a full disk mid-run ends it (exit 3, the file named)."""
        parts = (
            f"the Lambda log ~{DISK_PER_REQUEST / 1000:.1f} KB per request, "
            f"~{DISK_PER_STEP / 1000:.0f} KB per step of results and Locust CSVs, "
            f"~{DISK_BASE / 1e6:.1f} MB of report and exports"
        )
        size = self.disk_bytes
        if size is None:
            return f"disk under --out: {parts}"
        bound = "at most " if self.model == "closed" or self.until == "confident" else ""
        return f"disk under --out: {bound}about {size / 1e6:,.1f} MB ({parts})"

    def _cores_line(self) -> str:
        """What this machine can serve: a sandbox gets memory/1769 of a CPU, and its cores are
        shared with the load generator and the stack itself."""
        whole = self.cpus * MB_PER_VCPU
        line = (
            f"this machine: {self.cpus} core(s), so the local stack serves sizes up to "
            f"{whole:,} MB at their full CPU share while nothing else runs"
        )
        if self.largest_mb > whole:
            line += (
                f"; {self.largest_mb:,} MB asks for more than the machine has: its steps will "
                "be degraded (measure it on AWS)"
            )
        return line

    def _requests_line(self) -> str:
        per_step, total = self.requests_per_step, self.requests_total
        if self.model == "open":
            assert per_step is not None and total is not None
            return (
                f"expected requests: {per_step:,.0f} per step (rate × {_duration(self.measured_s)} "
                f"measured), {total:,.0f} in total"
            )
        if per_step is None:
            return (
                "expected requests: no bound (think time 0: each user sends again as soon as "
                "its answer arrives, so the count depends on the target's latency)"
            )
        assert total is not None
        return (
            f"expected requests: at most {per_step:,.0f} per step, {total:,.0f} in total (an "
            "upper bound: users ÷ mean think time over the measured window, as if answers "
            "took no time)"
        )


def describe_plan(scenario: Scenario) -> Plan:
    """The plan of a run of `scenario`: its steps, their length and the requests expected."""
    load = step_load(scenario)
    sweep = scenario.sweep
    kind = scenario.target.kind
    warmup = min(sweep.warmup_s, load.duration_s)
    measured = load.duration_s - warmup
    if isinstance(load, ClosedLoad):
        think = load.think_time
        mean_think = (think.min_s + think.max_s) / 2
        users = [stage.users for stage in load.stages]
        levels = " → ".join(str(level) for level in _changes(users))
        load_text = f"{levels} user{'s' if users[-1] != 1 else ''}"
        if len(load.stages) > 1:
            load_text += f" over {len(load.stages)} stages"
        load_text += (
            f", think time {think.min_s:g}-{think.max_s:g} s"
            if think.max_s > think.min_s
            else f", think time {think.min_s:g} s"
        )
        per_step = user_seconds(load, start=warmup) / mean_think if mean_think > 0 else None
    else:
        load_text = (
            f"{load.rate_per_s:g} req/s ({load.arrivals} arrivals), at most "
            f"{load.max_in_flight} in flight"
        )
        per_step = load.rate_per_s * measured
    return Plan(
        steps=plan_steps(scenario),
        repeats=max_rounds(scenario) if sweep.until == "confident" else sweep.repeats,
        until=sweep.until,
        target=kind,
        load_s=load.duration_s,
        warmup_s=warmup,
        measured_s=measured,
        settle_s=sweep.settle_s,
        seed_s=scenario.seed.items / SEED_ITEMS_PER_S,
        overhead_s=STEP_OVERHEAD_S[kind],
        start_s=START_S[kind],
        end_s=END_S,
        model=load.model,
        cpus=os.cpu_count() or 1,
        largest_mb=max(point.memory_mb for point, _ in plan_steps(scenario)),
        load_text=load_text,
        requests_per_step=per_step,
    )


def user_seconds(load: ClosedLoad, *, start: float = 0.0) -> float:
    """The area under the users-over-time profile from `start` to the load's end: each stage
    moves linearly from the previous level over its ramp (from 0 for the first), then holds."""
    points: list[tuple[float, float]] = [(0.0, 0.0)]
    clock = 0.0
    for stage in load.stages:
        if stage.ramp_s > 0:
            points.append((clock + stage.ramp_s, float(stage.users)))
        else:
            points.append((clock, float(stage.users)))  # a step, at once
        clock += stage.duration_s
        points.append((clock, float(stage.users)))
    area = 0.0
    for (t0, u0), (t1, u1) in pairwise(points):
        low, high = max(t0, start), t1
        if high <= low or t1 <= t0:
            continue
        slope = (u1 - u0) / (t1 - t0)
        a, b = u0 + slope * (low - t0), u0 + slope * (high - t0)
        area += (a + b) / 2 * (high - low)
    return area


def _changes(values: list[int]) -> list[int]:
    """The levels a profile passes through, repeats dropped: [3, 10, 10] -> [3, 10]."""
    out: list[int] = []
    for value in values:
        if not out or out[-1] != value:
            out.append(value)
    return out


def _duration(seconds: float) -> str:
    """12 s, 4 min 10 s, 1 h 2 min."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"
