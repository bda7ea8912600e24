"""The step loop: seed → apply the point (live before it returns) → load (warm-up excluded) →
record → restore.

Every step's results are written to results.json as soon as the step ends, so an interrupted
or failed run leaves a valid partial file. Memory is restored in `finally`, whatever ends the
run (an exception, SIGINT, SIGTERM). A step's figures come from runner.analysis, given what
was read from the target; the verdict, and with it the exit code, is the caller's (cli.py),
from the analysis, kept here by record_verdict.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent

from runner import __version__
from runner.analysis import (
    STOPS_THE_SWEEP,
    Measured,
    Readings,
    Tick,
    analyse,
    charges_lines,
    estimate_test_cost,
    host_snapshot,
    load_tick,
    measure_step,
    measured_test_cost,
    next_round,
    step_window,
    still_open,
    with_late_metrics,
)
from runner.errors import BadInput, MemsweepError
from runner.invocations import Phases
from runner.load import StepTraffic, Swarm, seed_items
from runner.outputs import Event, Note, Phase, Planned, StepDone
from runner.results import (
    HostRecord,
    Problem,
    ProblemKind,
    Results,
    RoundRecord,
    RunVerdict,
    claim_run_directory,
    write_results,
)
from runner.scenario import (
    AXES,
    ClosedLoad,
    Point,
    Scenario,
    concurrency_check,
    describe_plan,
    max_rounds,
    plan_steps,
    point_label,
    step_load,
)
from runner.targets import Target, make_target


class RunFailed(MemsweepError):
    exit_code = 3


class Interrupted(MemsweepError):
    exit_code = 130


@dataclass
class RunOptions:
    out_dir: Path
    local_workers: int | None = None
    expect_remote: int | None = None
    master_bind_host: str = "127.0.0.1"
    master_port: int = 0
    worker_wait_s: float | None = None  # the scenario's workers.wait_s when None
    quiet: bool = False
    progress: Callable[[Event], None] | None = None
    run_id: str = ""
    # --cost-from: an earlier run whose billed time per point the test's cost estimate uses
    cost_from: Results | None = None
    cost_from_name: str = ""
    run_with: str = ""  # the command line's changes to the scenario file, as typed


def new_run_id(scenario: Scenario) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", scenario.name.lower()).strip("-")[:40] or "run"
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{slug}"


class Sweep:
    def __init__(
        self, scenario: Scenario, *, scenario_path: str, scenario_text: str, options: RunOptions
    ) -> None:
        self.scenario = scenario
        self.options = options
        self.run_id = options.run_id or new_run_id(scenario)
        self.run_dir = options.out_dir / self.run_id
        self.results_path = self.run_dir / "results.json"
        self.stop_requested: str | None = None
        self.claimed = False  # claim(): results.json created by this run
        self.results = Results(
            run_id=self.run_id,
            status="running",
            created_at=time.time(),
            scenario_name=scenario.name,
            scenario=scenario,
            scenario_text=scenario_text,
            scenario_path=scenario_path,
            run_with=options.run_with,
            versions=_versions(),
            host=HostRecord(
                hostname=socket.gethostname(),
                platform=platform.platform(),
                python=platform.python_version(),
                cpus=os.cpu_count(),
            ),
            target={"kind": scenario.target.kind, "url": ""},
        )

    def claim(self) -> None:
        """The run directory made this run's alone before anything starts (results.claim_run_
        directory): a second run with the same --out and --run-id is refused."""
        self.run_id = claim_run_directory(
            self.options.out_dir, self.run_id, named=bool(self.options.run_id)
        )
        self.results.run_id = self.run_id
        self.run_dir = self.options.out_dir / self.run_id
        self.results_path = self.run_dir / "results.json"
        self.claimed = True
        self._save()

    def say(self, event: Event) -> None:
        if self.options.progress is not None:
            self.options.progress(event)

    def _on_signal(self, name: str) -> None:
        if not self.stop_requested:
            self.say(Note(f"{name}: stopping; this step's results are kept, settings restored"))
        self.stop_requested = name

    def run(self) -> None:
        """Run every step, then record_verdict() takes the caller's verdict.

        results.json is written whatever happens. A run that does not reach its end records
        why, then raises (Interrupted: exit 130, the partial results kept).
        """
        if not self.claimed:
            self.claim()
        handlers = [
            gevent.signal_handler(signal.SIGINT, self._on_signal, "SIGINT"),
            gevent.signal_handler(signal.SIGTERM, self._on_signal, "SIGTERM"),
        ]
        code: int | None = 3  # kept when an exception of no known kind (a bug) ends the run
        unrestored: str | None = None
        load = self.scenario.load
        self.say(
            Planned(
                plan=describe_plan(self.scenario),
                offered_per_s=None if isinstance(load, ClosedLoad) else load.rate_per_s,
            )
        )
        self._estimate_charges()
        try:
            target = make_target(
                self.scenario.target,
                run_dir=str(self.run_dir),
                first_memory_mb=plan_steps(self.scenario)[0][0].memory_mb,
            )
            if target.judges_axes_unstarted:
                # A value it cannot run is refused before it starts (the local stack's start-up
                # took seconds, then refused arm64 for the host's CPU).
                _check_axes(target, plan_steps(self.scenario))
            self.say(Note(f"starting the {self.scenario.target.kind} target"))
            with target:
                try:
                    self._run_on(target)
                finally:
                    unrestored = self._restore(target)
                # After the restore: the wait costs the function nothing at a test's size.
                self._late_metrics(target)
            code = None  # every step ran: the verdict decides
            # A run whose every step was measured is complete, even when a step is degraded
            # (exit 3): the verdict says why there is no pick; "failed" is for runs that broke.
            measured = all(step.valid for step in self.results.steps)
            self.results.status = "complete" if measured else "failed"
        except MemsweepError as exc:
            self.results.status = "interrupted" if isinstance(exc, Interrupted) else "failed"
            kind: ProblemKind = "interrupted" if isinstance(exc, Interrupted) else "stopped"
            self.results.problems.append(Problem(kind=kind, detail=str(exc)))
            code = exc.exit_code
            raise
        except Exception as exc:
            self.results.status = "failed"
            self.results.problems.append(
                Problem(kind="internal error", detail=f"internal error: {exc!r}")
            )
            raise
        finally:
            if unrestored is not None:  # after the line saying why the run ended
                self.results.problems.append(Problem(kind="not restored", detail=unrestored))
            for handler in handlers:
                handler.cancel()
            self.results.exit_code = code
            self.results.finished_at = time.time()
            self._measure_charges()
            self._save()

    def _late_metrics(self, target: Target) -> None:
        """Steps whose CloudWatch minutes were not yet published when they ended (each step
        reads them once: a confident sweep's 24 steps would otherwise each wait a minute or
        more, on a run meant to answer in one) are read again now, the last step's first and
        waiting for its last minute: one wait per run. A step whose throttles then explain its
        failures is marked as measure_step would have marked it."""
        steps = self.results.steps
        late = [i for i, step in enumerate(steps) if step.metrics and step.metrics.pending]
        if not late:
            return
        self.say(Note(f"reading CloudWatch metrics for {len(late)} step(s) once published"))
        for order, i in enumerate(reversed(late)):
            step = steps[i]
            phases = Phases(step.started_at, step.window_start, step.window_end)
            metrics = target.window_metrics(phases, api=step.api, wait=order == 0)
            if metrics is not None:
                steps[i] = with_late_metrics(step, metrics)
        self._save()

    def _estimate_charges(self) -> None:
        """On the aws target, what the run will cost by itself, said before it starts and kept
        in results.json beside what it did cost."""
        if self.scenario.target.kind != "aws":
            return
        estimate = estimate_test_cost(
            self.scenario,
            previous=self.options.cost_from,
            previous_name=self.options.cost_from_name,
        )
        self.results.test_cost_estimate = estimate
        for line in charges_lines(estimate, before=True):
            self.say(Note(line.strip()))

    def _measure_charges(self) -> None:
        """On the aws target, what the run did cost, from the steps it measured."""
        if self.scenario.target.kind != "aws":
            return
        self.results.test_cost = measured_test_cost(self.results)
        if self.results.test_cost is not None:
            for line in charges_lines(self.results.test_cost, before=False):
                self.say(Note(line.strip()))

    def record_verdict(self, verdict: RunVerdict) -> None:
        """Keep the verdict in results.json, so the exit code, the report and any script
        reading the file never disagree."""
        self.results.verdict = verdict
        lost = sorted({w.id for step in self.results.steps for w in step.workers if w.lost})
        if verdict.exit_code == 3 and lost:
            detail = f"worker(s) lost: {', '.join(lost)}"
            self.results.problems.append(Problem(kind="workers lost", detail=detail))
        self.results.exit_code = verdict.exit_code
        self._save()

    def record_failure(self, problem: str) -> None:
        """A run that broke after its last step (exit 3), kept in results.json."""
        self.results.status = "failed"
        self.results.problems.append(Problem(kind="after the run", detail=problem))
        self.results.exit_code = 3
        self._save()

    def _run_on(self, target: Target) -> None:
        """Everything between starting the target and restoring it: the workers and the steps."""
        _check_axes(target, plan_steps(self.scenario))
        self._check_concurrency(target)
        target.prepare(self.scenario.sweep.memory_mb)
        self.results.target = target.info()
        self._save()
        workers = self.scenario.workers
        local = self.options.local_workers
        if local is None:
            local = workers.local if workers.local is not None else (os.cpu_count() or 1)
        remote = self.options.expect_remote
        if remote is None:
            remote = workers.expect_remote
        wait_s = self.options.worker_wait_s or workers.wait_s
        self.say(
            Note(
                f"starting {local} local Locust worker(s), expecting {remote} remote "
                f"(waiting up to {wait_s:g} s for them)"
            )
        )
        with Swarm(
            local_workers=local,
            expect_remote=remote,
            wait_s=wait_s,
            bind_host=self.options.master_bind_host,
            bind_port=self.options.master_port,
            csv_dir=self.run_dir / "locust",
        ) as swarm:
            self._steps(target, swarm)

    def _check_concurrency(self, target: Target) -> None:
        """A load the account would throttle is refused before it starts (exit 2), one close
        to the limit is warned about; a limit that could not be read is said."""
        limit, where = target.concurrency_limit()
        if limit is None:
            if where:
                self.say(Note(where))
            return
        refused, line = concurrency_check(self.scenario, limit, where)
        if refused and line:
            raise BadInput(line)
        if line:
            self.say(Note(line))

    def _restore(self, target: Target) -> str | None:
        """Put the original configuration back (memory, and every axis the sweep moved); the
        problem to record if that failed."""
        try:
            target.restore()
            if self.results.target.original_memory_mb is not None:
                self.results.target.restored = True
        except Exception as exc:  # noqa: BLE001 - reported, and the run still ends cleanly
            self.results.target.restored = False
            return f"could not restore the original configuration: {exc}"
        return None

    def _steps(self, target: Target, swarm: Swarm) -> None:
        if self.scenario.sweep.until == "confident":
            self._rounds(target, swarm)
            return
        for index, (point, repeat) in enumerate(plan_steps(self.scenario), start=1):
            self._step(target, swarm, index=index, point=point, repeat=repeat)

    def _rounds(self, target: Target, swarm: Swarm) -> None:
        """until: confident: every open setting once per round, interleaved, so host drift hits
        all alike; after each round a look decides which settings are still open (why, in the
        terminal and results.json) and the others stop. max_s bounds each setting."""
        sweep = self.scenario.sweep
        looks = max_rounds(self.scenario)
        active = sweep.planned_points()
        index = 0
        for round_ in range(1, looks + 1):
            for point in active:
                index += 1
                self._step(target, swarm, index=index, point=point, repeat=round_)
            open_ = still_open(analyse(self.results), looks=looks)
            measured_s: dict[Point, float] = {}
            for step in self.results.steps:
                measured_s[step.point] = (
                    measured_s.get(step.point, 0.0) + step.window_end - step.window_start
                )
            plan = next_round(
                sweep.planned_points(),
                active,
                measured_s,
                open_,
                min_s=sweep.min_s,
                round_s=sweep.round_s,
                max_s=sweep.max_s,
            )
            record = RoundRecord(
                round=round_,
                measured=[point_label(p) for p in active],
                still_open={point_label(p): why for p, why in plan.still_open.items()},
                stopped={point_label(p): why for p, why in plan.stopped.items()},
                open_at_max={point_label(p): why for p, why in plan.open_at_max.items()},
            )
            following = plan.measured
            verbs = {point: "stops" for point in plan.stopped}
            verbs |= {point: "keeps measuring" for point in plan.still_open}
            verbs |= {point: "measures again" for point in plan.reopened}
            for point, verb in verbs.items():
                why = plan.stopped.get(point) or plan.still_open[point]
                self.say(Note(f"round {round_}: {point_label(point)} {verb}: {why}"))
            self.results.rounds.append(record)
            self._save()
            active = following
            if not active:
                return

    def _step(self, target: Target, swarm: Swarm, *, index: int, point: Point, repeat: int) -> None:
        """One step: seed, apply the point, load, record; stop the sweep on a broken step."""
        self._check_stop()
        target.mark(time.time())  # this step's logs start here, its seeding included
        label = point_label(point)
        phase = functools.partial(
            Phase, index=index, memory_mb=point.memory_mb, repeat=repeat, label=label
        )
        items = self.scenario.seed.items
        self.say(phase(phase="seeding", detail=f"{items} items" if items else ""))
        # Seed while the previous step's sandboxes are warm, then change memory: the
        # measured load meets fresh sandboxes, as after a real configuration change (the
        # tutorial's cold-start spike), and seeding adds no cold starts between steps.
        seeded = seed_items(self.scenario, target, should_stop=lambda: bool(self.stop_requested))
        self._check_stop()  # an interrupt cuts seeding short: never measure a half seed
        self.say(phase(phase="setting memory", detail=f"to {label}"))
        _apply(target, point)
        if self.scenario.sweep.settle_s > 0:
            self.say(phase(phase="settling"))
        self._sleep(self.scenario.sweep.settle_s)
        step, problems = self._one_step(
            target, swarm, index=index, point=point, repeat=repeat, seeded=seeded
        )
        self.results.steps.append(step)
        self._save()
        self.say(StepDone(step))
        self._check_stop()  # an interrupt explains whatever else went wrong in the step
        why_down = target.alive()
        if why_down is not None:
            # The step is kept, marked with the part that failed under it: however many of its
            # requests succeeded first, it measured a broken stack, not a memory size.
            step.problems.insert(0, Problem(kind="target failed", detail=why_down))
            step.valid = False
            self._save()
            raise RunFailed(f"step {index}: {why_down}")
        # Stated rule: a step that lost a worker or its target is kept (marked degraded,
        # the lost worker named) and the sweep stops there: later steps would compare
        # settings under a different load.
        lost = [worker.id for worker in step.workers if worker.lost]
        if lost:
            raise RunFailed(
                f"step {index}: Locust worker(s) lost: {', '.join(lost)} "
                f"({step.workers[[w.id for w in step.workers].index(lost[0])].detail})"
            )
        broken = [problem for problem in problems if problem.kind in STOPS_THE_SWEEP]
        if broken:
            raise RunFailed(f"step {index}: {broken[0].detail}")
        self._check_stop()

    def _one_step(
        self,
        target: Target,
        swarm: Swarm,
        *,
        index: int,
        point: Point,
        repeat: int,
        seeded: list[str],
    ) -> Measured:
        scenario = self.scenario
        load = step_load(scenario)
        memory = point.memory_mb
        step_id = f"step{index:02d}-{memory}mb-r{repeat}"
        traffic = StepTraffic(
            url=target.url,
            headers=target.headers(),
            requests=scenario.requests,
            seeded=seeded,  # the swarm's build_step_config caps what it sends
        )
        duration = load.duration_s
        warmup = min(scenario.sweep.warmup_s, duration)
        last_tick = [0.0]
        # Cumulative counters read as the window opens and as it closes: the step's trust
        # record covers exactly its measured window.
        opened: dict[str, Any] = {}

        def on_tick(tick: Tick) -> None:
            # Workers report every 3 s; once a second is enough (the p95 walks a histogram).
            if time.monotonic() - last_tick[0] < 1.0:
                return
            last_tick[0] = time.monotonic()
            self.say(load_tick(tick))

        def window_opens() -> None:
            try:
                opened["delivery"] = target.delivery()
            except MemsweepError as exc:  # in a greenlet: kept for after the load, not lost
                opened["failed"] = str(exc)
            opened["host"] = host_snapshot(time.time())

        def load_started(at: float) -> None:
            self.say(
                Phase(
                    index=index,
                    memory_mb=memory,
                    repeat=repeat,
                    phase="load",
                    label=point_label(point),
                )
            )
            if warmup > 0:
                gevent.spawn_later(warmup, window_opens)
            else:
                window_opens()

        data = swarm.run_step(
            step_id=step_id,
            traffic=traffic,
            load=load,
            warmup_s=warmup,
            on_tick=on_tick,
            should_stop=lambda: bool(self.stop_requested),
            on_load_start=load_started,
            memory_mb=memory,
        )
        phases = step_window(data, warmup_s=warmup, now=time.time())
        try:
            if "failed" in opened:
                raise RunFailed(opened["failed"])
            readings = _read_window(target, phases, opened=opened)
        except MemsweepError as exc:
            # The stack's control API failing mid-step: which part stopped says more than
            # "unreachable" (a SIGSTOPped stack, a dead front), when the watch can tell.
            raise RunFailed(f"step {index}: {target.alive() or exc}") from None
        previous_end = self.results.steps[-1].window_end if self.results.steps else None
        started = phases.load_started
        measured = measure_step(
            data,
            readings,
            index=index,
            point=point,
            repeat=repeat,
            phases=phases,
            overhead_s=started - previous_end if previous_end else None,
            open_model=not isinstance(load, ClosedLoad),
            locust_files=swarm.step_files(step_id),
            interrupted=bool(self.stop_requested),
            users_asked=load.peak_users if isinstance(load, ClosedLoad) else None,
        )
        swarm.forget(step_id)  # in results.json now; the master keeps no step it is done with
        return measured

    def _check_stop(self) -> None:
        if self.stop_requested:
            raise Interrupted(f"interrupted by {self.stop_requested}; partial results kept")

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._check_stop()
            gevent.sleep(min(0.2, end - time.monotonic()))

    def _save(self) -> None:
        write_results(self.results, self.results_path)


def _check_axes(target: Target, plan: list[tuple[Point, int]]) -> None:
    """Refuse, before any load, a value of an axis beside memory that this target cannot run
    (arm64 on the local stack, the HTTP API of a stack deployed without one)."""
    for axis in AXES:
        values = dict.fromkeys(getattr(point, axis) for point, _ in plan)
        for value in values:
            why = None if value is None else target.refuses(axis, value)
            if why is not None:
                raise BadInput(f"sweep.{axis}: {value}: {why}")


def _apply(target: Target, point: Point) -> None:
    """Configure the target for a point, each swept axis in turn, memory last; each call
    returns once its change is live."""
    if point.api is not None:
        target.set_api(point.api)
    if point.architecture is not None:
        target.set_architecture(point.architecture)
    if point.handler is not None:
        target.set_handler(point.handler)
    target.set_memory(point.memory_mb)


def _read_window(target: Target, phases: Phases, *, opened: dict[str, Any]) -> Readings:
    """What measure_step takes from the target and the host, read as the window closes (the
    CPU accounting first); on AWS, invocations() polls CloudWatch Logs for the window and
    window_metrics() CloudWatch's metrics once (Sweep._late_metrics reads the unpublished again
    after the last step)."""
    delivery_closed = target.delivery()
    host_closed = host_snapshot(phases.window_end)
    fidelity = target.fidelity()
    invocations, outside = target.invocations(phases)
    metrics = target.window_metrics(phases)  # after the logs: its minutes publish later
    return Readings(
        delivery_opened=opened.get("delivery"),
        delivery_closed=delivery_closed,
        host_opened=opened.get("host"),
        host_closed=host_closed,
        fidelity=fidelity,
        invocations=invocations,
        outside=outside,
        metrics=metrics,
    )


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"memsweep": __version__}
    for package in ("locust", "boto3", "awslambdaric", "gevent", "hdrhistogram"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out
