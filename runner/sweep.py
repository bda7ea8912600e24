"""The step loop: set memory → wait until live → seed → load (warm-up excluded) → record → restore.

Every step's results are written to results.json as soon as the step ends, so an interrupted
or failed run leaves a valid partial file. Memory is restored in `finally`, whatever ends the
run (an exception, SIGINT, SIGTERM).
"""

from __future__ import annotations

import os
import platform
import re
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gevent

from runner import __version__
from runner.analysis import analyse, run_verdict
from runner.errors import MemsweepError
from runner.lambda_logs import Phases
from runner.plan import describe_plan, plan_steps
from runner.progress import Event, Load, Note, Phase, Planned, StepDone
from runner.results import (
    ErrorCount,
    Fidelity,
    Invocations,
    OutsideWindow,
    RequestStats,
    Results,
    Second,
    Step,
    Trust,
    WorkerSeen,
    write_results,
)
from runner.scenario import ClosedLoad, Scenario
from runner.seeding import seed_items
from runner.stats import encode, latency
from runner.swarm import StepData, Swarm
from runner.targets import Target, make_target
from runner.trust import HostSnapshot, cpu_delivery, host_snapshot, judge

# A step whose requests mostly failed to connect means the target is down, not slow.
TARGET_DOWN_SHARE = 0.5
# The live rate waits for this much of the window in the workers' reports (they come every
# 3 s): a shorter span would swing with each report.
MIN_RATE_SPAN_S = 0.5
_CONNECTION_ERRORS = re.compile(r"(Connection|Refused|Reset|Timeout|timed out|EOF|Broken)", re.I)


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
    quiet: bool = False
    progress: Callable[[Event], None] | None = None
    run_id: str = ""
    extra_problems: list[str] = field(default_factory=list)


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
        self.results = Results(
            run_id=self.run_id,
            status="running",
            created_at=time.time(),
            scenario_name=scenario.name,
            scenario=scenario.model_dump(mode="json"),
            scenario_text=scenario_text,
            scenario_path=scenario_path,
            versions=_versions(),
            host={
                "hostname": socket.gethostname(),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
            },
            target={"kind": scenario.target.kind, "url": ""},
        )

    def say(self, event: Event) -> None:
        if self.options.progress is not None:
            self.options.progress(event)

    def _on_signal(self, name: str) -> None:
        if not self.stop_requested:
            self.say(Note(f"{name}: stopping; this step's results are kept, memory restored"))
        self.stop_requested = name

    def run(self) -> int:
        """Run the sweep; returns the exit code. results.json is written whatever happens."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        handlers = [
            gevent.signal_handler(signal.SIGINT, self._on_signal, "SIGINT"),
            gevent.signal_handler(signal.SIGTERM, self._on_signal, "SIGTERM"),
        ]
        target: Target | None = None
        code = 3
        load = self.scenario.load
        self.say(
            Planned(
                plan=describe_plan(self.scenario),
                offered_per_s=None if isinstance(load, ClosedLoad) else load.rate_per_s,
            )
        )
        try:
            target = make_target(
                self.scenario.target,
                run_dir=str(self.run_dir),
                first_memory_mb=plan_steps(self.scenario)[0][0],
            )
            self.say(Note(f"starting the {self.scenario.target.kind} target"))
            target.start()
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
            self.say(Note(f"starting {local} local Locust worker(s), expecting {remote} remote"))
            with Swarm(
                local_workers=local,
                expect_remote=remote,
                wait_s=workers.wait_s,
                bind_host=self.options.master_bind_host,
                bind_port=self.options.master_port,
                csv_dir=self.run_dir / "locust",
            ) as swarm:
                self._steps(target, swarm)
            code = self._verdict()
            # A run whose every step was measured is complete, even when a step is degraded
            # (exit 3): the verdict says why there is no pick; "failed" is for runs that broke.
            measured = all(step.valid for step in self.results.steps)
            self.results.status = "complete" if code in (0, 1) or measured else "failed"
        except Interrupted as exc:
            self.results.status = "interrupted"
            self.results.problems.append(str(exc))
            code = 130
        except MemsweepError as exc:
            self.results.status = "failed"
            self.results.problems.append(str(exc))
            code = exc.exit_code
            raise
        except Exception as exc:
            self.results.status = "failed"
            self.results.problems.append(f"internal error: {exc!r}")
            raise
        finally:
            if target is not None:
                self._restore(target)
                target.stop()
            for handler in handlers:
                handler.cancel()
            self.results.exit_code = code
            self.results.finished_at = time.time()
            self._save()
        return code

    def _restore(self, target: Target) -> None:
        try:
            target.restore()
            if self.results.target.original_memory_mb is not None:
                self.results.target.restored = True
        except Exception as exc:  # noqa: BLE001 - reported, and the run still ends cleanly
            self.results.target.restored = False
            self.results.problems.append(f"could not restore the original memory: {exc}")

    def _steps(self, target: Target, swarm: Swarm) -> None:
        plan = plan_steps(self.scenario)
        for index, (memory, repeat) in enumerate(plan, start=1):
            self._check_stop()
            target.mark(time.time())  # this step's logs start here, its seeding included
            items = self.scenario.seed.items
            self.say(
                Phase(
                    index=index,
                    memory_mb=memory,
                    repeat=repeat,
                    phase="seeding",
                    detail=f"{items} items" if items else "",
                )
            )
            # Seed while the previous step's sandboxes are warm, then change memory: the
            # measured load meets fresh sandboxes, as after a real configuration change (the
            # tutorial's cold-start spike), and seeding adds no cold starts between steps.
            seeded = seed_items(
                self.scenario, target, should_stop=lambda: bool(self.stop_requested)
            )
            self._check_stop()  # an interrupt cuts seeding short: never measure a half seed
            self.say(
                Phase(
                    index=index,
                    memory_mb=memory,
                    repeat=repeat,
                    phase="setting memory",
                    detail=f"to {memory} MB",
                )
            )
            target.set_memory(memory)
            if self.scenario.sweep.settle_s > 0:
                self.say(Phase(index=index, memory_mb=memory, repeat=repeat, phase="settling"))
            self._sleep(self.scenario.sweep.settle_s)
            step = self._one_step(
                target,
                swarm,
                index=index,
                total=len(plan),
                memory=memory,
                repeat=repeat,
                seeded=seeded,
            )
            self.results.steps.append(step)
            self._save()
            self.say(StepDone(step))
            self._check_stop()  # an interrupt explains whatever else went wrong in the step
            why_down = target.alive()
            if why_down is not None:
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
            if step.problems and any("target" in problem for problem in step.problems):
                raise RunFailed(f"step {index}: {step.problems[0]}")
            self._check_stop()

    def _one_step(
        self,
        target: Target,
        swarm: Swarm,
        *,
        index: int,
        total: int,
        memory: int,
        repeat: int,
        seeded: list[str],
    ) -> Step:
        scenario = self.scenario
        load = scenario.load
        step_id = f"step{index:02d}-{memory}mb-r{repeat}"
        config: dict[str, Any] = {
            "url": target.url,
            "headers": target.headers(),
            "requests": [spec.model_dump(mode="json") for spec in scenario.requests],
            "seeded": seeded[:10_000],
            "model": load.model,
        }
        if isinstance(load, ClosedLoad):
            config["think_time"] = [load.think_time.min_s, load.think_time.max_s]
            duration = load.duration_s
        else:
            config.update(
                rate_per_s=load.rate_per_s, max_in_flight=load.max_in_flight, arrivals=load.arrivals
            )
            duration = load.duration_s
        warmup = min(scenario.sweep.warmup_s, duration)
        last_tick = [0.0]
        # Cumulative counters read as the window opens and as it closes: the step's trust
        # record covers exactly its measured window.
        opened: dict[str, Any] = {}

        def progress(state: dict[str, Any]) -> None:
            # Workers report every 3 s; once a second is enough (the p95 walks a histogram).
            if time.monotonic() - last_tick[0] < 1.0:
                return
            last_tick[0] = time.monotonic()
            self.say(load_tick(state))

        def window_opens() -> None:
            opened["delivery"] = target.delivery()
            opened["host"] = host_snapshot(time.time())

        def load_started(at: float) -> None:
            self.say(Phase(index=index, memory_mb=memory, repeat=repeat, phase="load"))
            if warmup > 0:
                gevent.spawn_later(warmup, window_opens)
            else:
                window_opens()

        data = swarm.run_step(
            step_id=step_id,
            config=config,
            load=load,
            warmup_s=warmup,
            progress=progress,
            should_stop=lambda: bool(self.stop_requested),
            on_load_start=load_started,
            memory_mb=memory,
        )
        started = data.load_started
        ended = data.load_ended or time.time()
        if data.measure_until:
            ended = min(ended, data.measure_until)  # workers count no request started later
        delivery_closed = target.delivery()
        host_closed = host_snapshot(ended)
        window_start = started + warmup
        delivery_opened = opened.get("delivery")
        cpu = (
            cpu_delivery(delivery_opened, delivery_closed)
            if delivery_opened is not None and delivery_closed is not None
            else None
        )
        host_opened: HostSnapshot | None = opened.get("host")
        trust = judge(
            memory_mb=memory,
            cpu=cpu,
            generator_cpu=data.worker_cpu,
            host_before=host_opened,
            host_after=host_closed,
        )
        fidelity = target.fidelity()
        if fidelity.calibration_refused:
            trust.causes.append(f"CPU calibration refused: {fidelity.calibration_refused}")
            trust.degraded = True
        invocations, outside = target.invocations(
            Phases(load_started=started, window_start=window_start, window_end=ended)
        )
        previous_end = self.results.steps[-1].window_end if self.results.steps else None
        step = build_step(
            data,
            index=index,
            memory=memory,
            repeat=repeat,
            started=started,
            overhead_s=started - previous_end if previous_end else None,
            window_start=window_start,
            window_end=ended,
            invocations=invocations,
            outside=outside,
            trust=trust,
            fidelity=fidelity,
            open_model=not isinstance(load, ClosedLoad),
            locust_files=swarm.step_files(step_id),
            interrupted=bool(self.stop_requested),
        )
        swarm.forget(step_id)  # in results.json now; the master keeps no step it is done with
        return step

    def _verdict(self) -> int:
        # The report's analysis decides, and results.json keeps its verdict, so the exit
        # code, the report and any script reading the file never disagree.
        verdict = run_verdict(analyse(self.results))
        self.results.verdict = verdict
        code = verdict.exit_code
        lost = sorted({w.id for step in self.results.steps for w in step.workers if w.lost})
        if code == 3 and lost:
            self.results.problems.append(f"worker(s) lost: {', '.join(lost)}")
        return code

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


def load_tick(state: dict[str, Any]) -> Load:
    """The running step's numbers from the master's merged, full-resolution data.

    Requests, errors and the p95 cover the measured window only (the workers count nothing
    else), so the live figures converge on the step's final ones; Locust's own p95 is rounded
    to two significant figures (12000 ms for 11 500) and includes the warm-up.
    """
    data: StepData = state["data"]
    requests = sum(counts[0] for counts in data.counts.values())
    failures = sum(counts[1] for counts in data.counts.values())
    # Each worker's count is complete up to its latest report (every 3 s, staggered): their
    # mean is when the merged count stands, as each worker carries an equal share.
    times = list(data.reported_at.values())
    reported = sum(times) / len(times) if times else 0.0
    span = min(reported, data.measure_until or reported) - data.measure_from
    count = data.total.get_total_count()
    return Load(
        elapsed_s=float(state["elapsed_s"]),
        users=int(state["users"]),
        requests=requests,
        failures=failures,
        dropped=data.dropped,
        achieved_rps=requests / span if span >= MIN_RATE_SPAN_S else None,
        p95_ms=data.total.get_value_at_percentile(95) / 1000 if count else None,
        locust_rps=float(state["stats"]["rps"]),
    )


def build_step(
    data: StepData,
    *,
    index: int,
    memory: int,
    repeat: int,
    started: float,
    overhead_s: float | None,
    window_start: float,
    window_end: float,
    invocations: Invocations,
    outside: OutsideWindow,
    trust: Trust,
    fidelity: Fidelity | None,
    open_model: bool,
    locust_files: list[str],
    interrupted: bool,
) -> Step:
    requests = sum(counts[0] for counts in data.counts.values())
    failures = sum(counts[1] for counts in data.counts.values())
    measured = max(1e-9, window_end - window_start)
    errors = []
    connection_failures = 0
    for key, count in sorted(data.errors.items(), key=lambda item: -item[1]):
        name, _, kind = key.partition("\t")
        errors.append(ErrorCount(request=name, kind=kind, count=count))
        if _CONNECTION_ERRORS.search(kind):
            connection_failures += count
    timeline = []
    for second in sorted(data.seconds):
        n, fails, total_ms, p95 = data.seconds[second]
        timeline.append(
            Second(
                t=int(second - window_start),
                requests=n,
                failures=fails,
                mean_ms=total_ms / n,
                p95_ms=p95 if isinstance(p95, float) else p95.get_value_at_percentile(95) / 1000,
                users=data.users_at.get(second),
            )
        )
    workers = [
        WorkerSeen(
            id=worker,
            requests=sent,
            lost=worker in data.lost_workers,
            lost_at=data.lost_at.get(worker),
            detail=data.lost_workers.get(worker, ""),
        )
        for worker, sent in sorted(data.per_worker.items())
    ]
    for worker, why in data.lost_workers.items():
        if worker not in data.per_worker:
            workers.append(
                WorkerSeen(id=worker, lost=True, lost_at=data.lost_at.get(worker), detail=why)
            )
    problems = [f"worker {w.id} lost: {w.detail}" for w in workers if w.lost]
    if requests and connection_failures / requests >= TARGET_DOWN_SHARE:
        problems.append(
            f"the target stopped answering: {connection_failures} of {requests} requests "
            "failed to connect"
        )
    elif requests and failures == requests:
        problems.append(f"the target failed every request ({errors[0].kind})")
    elif not requests and not interrupted:
        # Nothing to measure is not a measurement: never let an empty step pass as valid.
        problems.append("no request completed in the measured window")
    if interrupted:
        problems.append("step cut short by an interrupt")
    return Step(
        index=index,
        memory_mb=memory,
        repeat=repeat,
        started_at=started,
        overhead_s=overhead_s,
        window_start=window_start,
        window_end=window_end,
        requests=requests,
        failures=failures,
        rps=requests / measured,
        dropped_arrivals=data.dropped,
        offered=requests + data.dropped if open_model else None,
        latency=latency(data.total),
        histogram=encode(data.total),
        per_request=[
            RequestStats(
                name=name,
                requests=data.counts.get(name, [0, 0])[0],
                failures=data.counts.get(name, [0, 0])[1],
                latency=latency(hist),
                histogram=encode(hist),
            )
            for name, hist in sorted(data.by_name.items())
        ],
        errors=errors,
        timeline=timeline,
        invocations=invocations,
        outside=outside,
        trust=trust,
        workers=workers,
        fidelity=fidelity,
        valid=not problems,
        problems=problems,
        locust_files=locust_files,
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
