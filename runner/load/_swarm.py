"""The Locust swarm: one programmatic master, local worker processes, remote workers; per step.

Built around what was measured about one master driving the same workers through many steps
(docs/ARCHITECTURE.md, section 4.4): the master gets `parsed_locustfiles` (else `-f -` workers
break it silently); stages are driven here, not by a headless LoadTestShape (which quits the
workers); after a stop the master waits until every worker is ready again before the next start
(a start in that window is dropped); per-step data is keyed by step id, so late reports can't
leak; and lost workers are polled for (no event fires, and Locust itself would exit 0).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import gevent
import locust
from locust.argument_parser import get_parser
from locust.env import Environment
from locust.exception import RPCError
from locust.runners import STATE_MISSING, MasterRunner

from runner import __version__
from runner.analysis import SecondStats, StepData, Tick
from runner.children import detached_but_tied
from runner.errors import BadInput, MemsweepError
from runner.hdr import decode, empty_histogram
from runner.load import _rules as swarm_rules
from runner.load import locustfile
from runner.load._rules import ANY_ADDRESS, local_dial_host, newly_lost, owing_final_report
from runner.load.locustfile import (
    REPORT_KEY,
    ClosedStepLoad,
    OpenStepLoad,
    RequestConfig,
    SecondRecord,
    StepConfig,
    WorkerReport,
)
from runner.scenario import ClosedLoad, OpenLoad, RequestSpec

if swarm_rules.STATE_MISSING != STATE_MISSING:  # the pure rules spell Locust's state themselves
    raise ImportError(f"Locust's missing-worker state is now {STATE_MISSING!r}: update swarm_rules")

LOCUSTFILE = Path(locustfile.__file__).resolve()
# Locust marks a silent worker missing after ~3 heartbeats (measured 3.4-4.4 s).
POLL_S = 0.25
# After stop(), each worker sends one last report; wait at most this long for them.
FINAL_REPORT_TIMEOUT_S = 8.0
READY_TIMEOUT_S = 15.0
# A per-second histogram is reduced to its p95 this long after its second (reports come
# every 3 s; docs/ARCHITECTURE.md, section 4.4).
SEAL_AFTER_S = 10
# {{seeded}} picks from at most this many ids: they travel in every spawn message.
SEEDED_SENT_MAX = 10_000


class SwarmError(MemsweepError):
    exit_code = 3


@dataclass(frozen=True)
class StepTraffic:
    """What the users send in a step: the target's URL and headers, the scenario's mix."""

    url: str
    headers: Mapping[str, str]
    requests: Sequence[RequestSpec]
    seeded: Sequence[str] = ()  # ids written before the step, for {{seeded}}


def build_step_config(
    *,
    step_id: str,
    traffic: StepTraffic,
    load: ClosedLoad | OpenLoad,
    warmup_s: float,
    workers: int,
    window: tuple[float, float],
) -> StepConfig:
    """The one place a step's config for the workers is made (locustfile.py reads it)."""
    step_load: ClosedStepLoad | OpenStepLoad
    if isinstance(load, OpenLoad):
        step_load = {
            "model": "open",
            "rate_per_s": load.rate_per_s,
            "max_in_flight": load.max_in_flight,
            "arrivals": load.arrivals,
        }
    else:
        step_load = {
            "model": "closed",
            "think_time": [load.think_time.min_s, load.think_time.max_s],
        }
    return {
        # What a worker checks before it sends a byte (locustfile.mismatch).
        "protocol": locustfile.PROTOCOL_VERSION,
        "locustfile_sha256": locustfile.LOCUSTFILE_SHA256,
        "memsweep_version": __version__,
        "step": step_id,
        "url": traffic.url,
        "headers": dict(traffic.headers),
        "requests": [_request_config(spec) for spec in traffic.requests],
        "seeded": list(traffic.seeded[:SEEDED_SENT_MAX]),
        "load": step_load,
        "warmup_s": warmup_s,
        "workers": workers,
        "window": [window[0], window[1]],
    }


def _request_config(spec: RequestSpec) -> RequestConfig:
    dumped = spec.model_dump(mode="json")  # the body as JSON text would hold it
    return {
        "name": spec.name,
        "weight": spec.weight,
        "method": spec.method,
        "path": spec.path,
        "body": dumped["body"],
        "headers": dict(spec.headers),
        "expect_status": list(dumped["expect_status"]),
    }


def add_report(data: StepData, worker: str, report: WorkerReport) -> None:
    """Merge one worker report into its step (reports are keyed by step id: a late one cannot
    land in the wrong step)."""
    if report["total"]:
        data.total.add(decode(report["total"]))
    for name, encoded in report["by_name"].items():
        data.by_name.setdefault(name, empty_histogram()).add(decode(encoded))
    sent = 0
    for name, (requests, failures) in report["counts"].items():
        counts = data.counts.setdefault(name, [0, 0])
        counts[0] += requests
        counts[1] += failures
        sent += requests
    for key, count in report["errors"].items():
        data.errors[key] = data.errors.get(key, 0) + count
    for second, record in report["seconds"].items():
        stats = data.seconds.get(int(second))
        if stats is None:
            data.seconds[int(second)] = _first_second(record)
        else:
            _add_second(stats, record)
    data.dropped += report["dropped"]
    data.per_worker[worker] = data.per_worker.get(worker, 0) + sent
    data.reported_at[worker] = time.time()
    if report["final"]:
        data.final_from.add(worker)


def _first_second(record: SecondRecord) -> SecondStats:
    return SecondStats(
        n=record["n"],
        failures=record["failures"],
        sum_ms=float(record["sum_ms"]),
        histogram=decode(record["histogram"]),
    )


def _add_second(stats: SecondStats, record: SecondRecord) -> None:
    if stats.histogram is not None:
        stats.histogram.add(decode(record["histogram"]))
    stats.n += record["n"]
    stats.failures += record["failures"]
    stats.sum_ms += record["sum_ms"]


# Called with the running step at every poll (the sweep turns it into the live line).
OnTick = Callable[[Tick], None]


class Swarm:
    """A Locust master in this process and its workers; a context manager."""

    def __init__(
        self,
        *,
        local_workers: int,
        expect_remote: int = 0,
        wait_s: float = 120.0,  # the scenario's default (workers.wait_s)
        bind_host: str = "127.0.0.1",
        bind_port: int = 0,
        csv_dir: Path | None = None,
    ) -> None:
        self.local_workers = local_workers
        self.expect_remote = expect_remote
        self.wait_s = wait_s
        self.bind_host = bind_host
        self.bind_port = bind_port or _free_port(bind_host)
        self.csv_dir = csv_dir
        self.processes: list[subprocess.Popen[bytes]] = []
        self.steps: dict[str, StepData] = {}
        self.environment: Environment | None = None
        self.runner: MasterRunner | None = None
        self._stopping: Any = None  # the previous step's runner.stop(), still finishing
        self.refusals: dict[str, str] = {}  # worker id -> why it refused to run a step

    @property
    def expected_workers(self) -> int:
        return self.local_workers + self.expect_remote

    def __enter__(self) -> Swarm:
        try:
            self.start()
        except BaseException:
            self.stop()  # workers that did join are told to quit; local ones are stopped
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        # No config files: a stray locust.conf must not change a sweep's load.
        parser = get_parser(default_config_files=[])
        options = parser.parse_args(["-f", str(LOCUSTFILE), "--headless", "--memsweep-step", "{}"])
        # Not headless on the master: a headless master quits its workers at the end of a
        # shape (docs/ARCHITECTURE.md, section 4.4, trap 4); stages are driven here instead.
        options.headless = False
        self.environment = Environment(
            user_classes=[locustfile.MemsweepUser, locustfile.OpenModelUser],
            events=locust.events,
            parsed_options=options,
            parsed_locustfiles=[str(LOCUSTFILE)],
            host="http://127.0.0.1",
        )
        try:
            self.runner = self.environment.create_master_runner(self.bind_host, self.bind_port)
        except (SystemExit, RPCError) as exc:
            # Locust logs a busy port and calls sys.exit(1): that would be exit code 1 ("no
            # size met the thresholds") with no line saying why.
            why = exc if isinstance(exc, RPCError) else "address in use"
            raise SwarmError(
                f"the Locust master cannot listen on {self.bind_host}:{self.bind_port} "
                f"({why}): choose another --master-port"
            ) from None
        locust.events.worker_report.add_listener(self._on_worker_report)
        self.runner.register_message("memsweep_refused", self._on_refused)
        # Local workers dial the address the master listens on: with --master-bind-host set to
        # a LAN address the master is not on loopback at all.
        dial = local_dial_host(self.bind_host)
        for _ in range(self.local_workers):
            self.processes.append(start_local_worker(dial, self.bind_port))
        self._wait_for_workers()

    def _wait_for_workers(self) -> None:
        assert self.runner is not None
        deadline = time.monotonic() + self.wait_s
        while self.runner.worker_count < self.expected_workers:
            if time.monotonic() > deadline:
                how = (
                    " Start remote ones with: python -m runner worker --master-host <this host> "
                    f"--master-port {self.bind_port}"
                    if self.expect_remote
                    else ""
                )
                raise SwarmError(
                    f"expected {self.expected_workers} Locust workers ({self.local_workers} "
                    f"local, {self.expect_remote} remote) on {self.bind_host}:{self.bind_port}; "
                    f"{self.runner.worker_count} arrived within {self.wait_s:g} s "
                    f"(--worker-wait waits longer).{how}"
                )
            for process in self.processes:
                if process.poll() is not None:
                    raise SwarmError(f"a local Locust worker exited with code {process.returncode}")
            gevent.sleep(0.1)

    def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.join(timeout=70)
            self._stopping = None
        if self.runner is not None:
            with contextlib.suppress(Exception):  # best effort while tearing down
                self.runner.quit()
            locust.events.worker_report.remove_listener(self._on_worker_report)
            self.runner = None
        deadline = time.monotonic() + 10
        for process in self.processes:
            while process.poll() is None and time.monotonic() < deadline:
                gevent.sleep(0.05)
            if process.poll() is None:
                process.kill()
                process.wait()
        self.processes = []

    # -- reports -------------------------------------------------------------------------------

    def _on_refused(self, environment: Any, msg: Any, **_: Any) -> None:
        self.refusals[str(msg.node_id)] = str((msg.data or {}).get("reason", "no reason given"))

    def _on_worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        report = data.get(REPORT_KEY)
        if not report or report.get("protocol") != locustfile.PROTOCOL_VERSION:
            return  # not a memsweep worker, or one of another version (it refuses the step)
        step = self.steps.get(report.get("step", ""))
        if step is not None:
            add_report(step, client_id, cast(WorkerReport, report))

    # -- one step ------------------------------------------------------------------------------

    def run_step(
        self,
        *,
        step_id: str,
        traffic: StepTraffic,
        load: ClosedLoad | OpenLoad,
        warmup_s: float,
        on_tick: OnTick | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        on_load_start: Callable[[float], None] | None = None,
        memory_mb: int | None = None,
    ) -> StepData:
        """Run the load of one step (`traffic`: what the users send); returns what the
        workers measured."""
        runner, environment = self.runner, self.environment
        assert runner is not None and environment is not None and environment.parsed_options
        self._ready_for_start()
        data = self.steps[step_id] = StepData(step=step_id)
        workers = sorted(runner.clients.keys())
        started = time.monotonic()
        data.load_started = time.time()
        data.measure_from = data.load_started + warmup_s
        data.measure_until = data.load_started + load.duration_s
        environment.parsed_options.memsweep_step = json.dumps(
            build_step_config(
                step_id=step_id,
                traffic=traffic,
                load=load,
                warmup_s=warmup_s,
                workers=len(workers),
                # The window on the master's clock: workers on this host (or with a synced
                # clock) count exactly the requests that start in it, so the function's
                # invocations, attributed on the same clock, match them to the requests in
                # flight at its edges.
                window=(data.measure_from, data.measure_until),
            )
        )
        locust_files = self._start_locust_files(
            step_id, memory_mb=memory_mb, window_opens=data.measure_from, warmup_s=warmup_s
        )
        if on_load_start is not None:
            on_load_start(data.load_started)
        try:
            if isinstance(load, OpenLoad):
                runner.start(
                    len(workers),
                    spawn_rate=max(1, len(workers)),
                    user_classes=[locustfile.OpenModelUser],
                )
                self._hold(data, workers, load.duration_s, started, on_tick, should_stop)
            else:
                current = 0
                spawning: gevent.Greenlet | None = None
                for stage in load.stages:
                    if stage.ramp_s > 0 and stage.users != current:
                        rate = max(0.1, abs(stage.users - current) / stage.ramp_s)
                    else:
                        rate = float(max(1, min(100, stage.users)))  # at once (Locust warns > 100)
                    # The master's start() blocks until the ramp is dispatched: run it beside
                    # the stage's clock, so a ramp takes the first ramp_s of the stage (as the
                    # scenario says) instead of being added before it. Called inline, the
                    # tutorial's 120 s profile ran 150 s.
                    if spawning is not None:
                        spawning.kill()
                    spawning = gevent.spawn(
                        runner.start,
                        stage.users,
                        spawn_rate=rate,
                        user_classes=[locustfile.MemsweepUser],
                    )
                    current = stage.users
                    if not self._hold(
                        data, workers, stage.duration_s, started, on_tick, should_stop
                    ):
                        break
                if spawning is not None:
                    spawning.kill()
        finally:
            data.load_ended = time.time()
            # Locust's stop() polls in 1 s sleeps; the workers stop at its first message.
            # Let it finish while the next step changes memory and seeds, instead of waiting.
            self._stopping = gevent.spawn(runner.stop)
            try:
                self._await_final_reports(data, workers)
            finally:  # also when a worker refused: its history greenlet ends here
                self._write_locust_files(locust_files)
        return data

    def _hold(
        self,
        data: StepData,
        workers: list[str],
        seconds: float,
        started: float,
        on_tick: OnTick | None,
        should_stop: Callable[[], bool],
    ) -> bool:
        """Keep the load running for `seconds`; watch for lost workers. False: stop early.

        Stated rule: a lost worker ends the step at once (its load is no longer the one
        configured); the step is kept, marked degraded, and the sweep stops after it.
        """
        runner = self.runner
        assert runner is not None
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if should_stop():
                return False
            self._check_workers(data, workers)
            if data.lost_workers:
                return False
            data.seal(int(time.time()) - SEAL_AFTER_S)
            if time.time() >= data.measure_from:
                for worker in workers:
                    node = runner.clients.get(worker)
                    if node is not None:
                        data.worker_cpu.setdefault(worker, []).append(float(node.cpu_usage))
            data.users_at[int(time.time())] = runner.user_count
            if on_tick is not None:
                on_tick(
                    Tick(
                        elapsed_s=time.monotonic() - started,
                        users=runner.user_count,
                        locust_rps=float(runner.stats.total.current_rps),
                        data=data,
                    )
                )
            gevent.sleep(min(POLL_S, max(0.0, end - time.monotonic())))
        return True

    def _check_workers(
        self, data: StepData, workers: list[str], *, final_deadline: float | None = None
    ) -> None:
        """Stop on a refusal; mark the workers lost by _rules.newly_lost."""
        if self.refusals:
            refused = "; ".join(f"{worker}: {why}" for worker, why in self.refusals.items())
            raise SwarmError(
                f"Locust worker(s) refused the step ({refused}); run the same memsweep "
                f"version ({__version__}) on the master and every worker"
            )
        self._mark_lost(data, workers, final_deadline=final_deadline)

    def _mark_lost(
        self, data: StepData, workers: list[str], *, final_deadline: float | None
    ) -> None:
        runner = self.runner
        assert runner is not None
        lost = newly_lost(
            expected=workers,
            states={worker: node.state for worker, node in runner.clients.items()},
            final_from=data.final_from,
            lost=data.lost_workers.keys(),
            now=time.monotonic(),
            final_deadline=final_deadline,
        )
        for worker, why in lost.items():
            data.lost_workers[worker] = why
            data.lost_at[worker] = time.time()

    def _await_final_reports(self, data: StepData, workers: list[str]) -> None:
        deadline = time.monotonic() + FINAL_REPORT_TIMEOUT_S
        while time.monotonic() < deadline:
            owing = owing_final_report(
                expected=workers, final_from=data.final_from, lost=data.lost_workers.keys()
            )
            if not owing:
                return
            self._check_workers(data, workers, final_deadline=deadline)
            gevent.sleep(0.05)
        self._mark_lost(data, workers, final_deadline=deadline)

    def _ready_for_start(self) -> None:
        """After a stop, workers leave and rejoin; a start before they are back is dropped."""
        runner = self.runner
        assert runner is not None
        if self._stopping is not None:
            self._stopping.join()
            self._stopping = None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            missing = [node.id for node in runner.clients.values() if node.state == STATE_MISSING]
            if missing:
                raise SwarmError(f"Locust worker(s) lost before the step: {', '.join(missing)}")
            states = [node.state for node in runner.clients.values()]
            workers_ready = states and all(state in ("ready", "stopped") for state in states)
            if workers_ready and runner.state in ("ready", "stopped", "init"):
                return
            gevent.sleep(0.05)
        if not runner.clients:
            raise SwarmError("no Locust workers left: every worker was lost")
        raise SwarmError(
            f"Locust workers not ready {READY_TIMEOUT_S:.0f} s after the last step: "
            + ", ".join(f"{node.id} ({node.state})" for node in runner.clients.values())
        )

    def _start_locust_files(
        self, step_id: str, *, memory_mb: int | None, window_opens: float, warmup_s: float
    ) -> LocustFiles | None:
        """Locust's own files for this step, counting from the end of its warm-up."""
        if self.csv_dir is None or self.environment is None:
            return None
        if memory_mb is None:  # sweep.py names each step step<i>-<memory>mb-r<repeat>
            named = STEP_MEMORY.search(step_id)
            memory_mb = int(named.group(1)) if named else None
        files = LocustFiles(self.environment, base=self.csv_dir / step_id, memory_mb=memory_mb)
        files.open_at(window_opens, reset=warmup_s > 0)
        return files

    def _write_locust_files(self, files: LocustFiles | None) -> None:
        """Locust's own per-step CSV and JSON, as `locust --csv/--json` would write them."""
        if files is not None:
            files.write()

    def forget(self, step_id: str) -> None:
        """Drop a step's merged data once it is in results.json (late reports are ignored)."""
        self.steps.pop(step_id, None)

    def step_files(self, step_id: str) -> list[str]:
        if self.csv_dir is None:
            return []
        return sorted(str(p) for p in self.csv_dir.glob(f"{step_id}_*"))


# Locust's own per-step files: the percentiles `locust --csv` writes by default.
LOCUST_PERCENTILES = [0.5, 0.95, 0.99]
# `locust --csv` adds a stats-history row this often (locust.stats.CSV_STATS_INTERVAL_SEC).
HISTORY_INTERVAL_S = 1.0
# The column memsweep puts before Locust's own in every one of its CSV files.
MEMORY_COLUMN = "memory_mb"
STEP_MEMORY = re.compile(r"-(\d+)mb-")


class _Prefixed:
    """A csv writer that puts memory_mb before Locust's columns (header first, then rows)."""

    def __init__(self, out: Any, memory_mb: int | None) -> None:
        self.out = out
        self.memory_mb = "" if memory_mb is None else memory_mb
        self.header = True

    def writerow(self, columns: Any) -> None:
        self.out.writerow([MEMORY_COLUMN if self.header else self.memory_mb, *columns])
        self.header = False


class LocustFiles:
    """Locust's own files for one step, as `locust --csv/--json` writes them, covering the
    step's measured window: <step>_stats.csv, _stats_history.csv, _failures.csv,
    _exceptions.csv (each with its header, also when it has no rows) and _stats.json.

    Locust clears the master's stats when a step starts; they are reset again when the warm-up
    ends, so its percentiles are not the warm-up's cold starts. Locust counts a request when it
    completes and its workers report every 3 s, so these files can hold up to one report of
    requests that completed just before the window opened; results.json counts the requests
    that started in it. A step that ends before its warm-up does leaves header-only files.
    """

    def __init__(self, environment: Environment, *, base: Path, memory_mb: int | None) -> None:
        from locust.stats import StatsCSV, get_readable_percentiles

        self.environment = environment
        self.base = base
        self.memory_mb = memory_mb
        self.csv = StatsCSV(environment, LOCUST_PERCENTILES)
        # StatsCSVFileWriter's columns; its constructor opens (and empties) all four files.
        self.history_columns = [
            "Timestamp",
            "User Count",
            "Type",
            "Name",
            "Requests/s",
            "Failures/s",
            *get_readable_percentiles(LOCUST_PERCENTILES),
            "Total Request Count",
            "Total Failure Count",
            "Total Median Response Time",
            "Total Average Response Time",
            "Total Min Response Time",
            "Total Max Response Time",
            "Total Average Content Size",
        ]
        self.history: list[list[Any]] = []
        self.opened = False
        self._greenlet: gevent.Greenlet | None = None

    def open_at(self, when: float, *, reset: bool) -> None:
        """Start counting at epoch `when` (the warm-up's end), one history row a second."""
        self._greenlet = gevent.spawn_later(max(0.0, when - time.time()), self._window, reset=reset)

    def _window(self, *, reset: bool) -> None:
        if reset:
            self._reset()
        self.opened = True
        while True:
            self._history_row()
            gevent.sleep(HISTORY_INTERVAL_S)

    def _reset(self) -> None:
        self.environment.stats.reset_all()
        if self.environment.runner is not None:
            self.environment.runner.exceptions = {}

    def _history_row(self) -> None:
        """The aggregated row `locust --csv` writes each second (without --csv-full-history)."""
        total = self.environment.stats.total
        runner = self.environment.runner
        self.history.append(
            [
                int(time.time()),
                runner.user_count if runner is not None else 0,
                total.method or "",
                total.name,
                f"{total.current_rps:2f}",
                f"{total.current_fail_per_sec:2f}",
                *(
                    [int(total.get_response_time_percentile(q) or 0) for q in LOCUST_PERCENTILES]
                    if total.num_requests
                    else ["N/A"] * len(LOCUST_PERCENTILES)
                ),
                total.num_requests,
                total.num_failures,
                total.median_response_time,
                total.avg_response_time,
                total.min_response_time or 0,
                total.max_response_time,
                total.avg_content_length,
            ]
        )

    def write(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()
        if not self.opened:  # the step ended in its warm-up: its window is empty
            self._reset()
        else:
            self._history_row()  # the window's totals, as in _stats.csv's Aggregated row
        self.base.parent.mkdir(parents=True, exist_ok=True)
        self._csv("_stats.csv", self.csv.requests_csv)
        self._csv("_failures.csv", self.csv.failures_csv)
        self._csv("_exceptions.csv", self.csv.exceptions_csv)

        def history(out: Any) -> None:
            out.writerow(self.history_columns)
            for row in self.history:
                out.writerow(row)

        self._csv("_stats_history.csv", history)
        # Last: serialize_stats() empties the entries it reports (Locust's worker protocol).
        entries = [
            {MEMORY_COLUMN: self.memory_mb, **entry}
            for entry in self.environment.stats.serialize_stats()
        ]
        Path(f"{self.base}_stats.json").write_text(json.dumps(entries, indent=1))

    def _csv(self, suffix: str, write: Callable[[Any], None]) -> None:
        import csv

        with open(f"{self.base}{suffix}", "w", newline="") as handle:
            write(_Prefixed(csv.writer(handle), self.memory_mb))


def start_local_worker(master_host: str, master_port: int) -> subprocess.Popen[bytes]:
    """`python -m runner worker` against the master, as a child that dies with us."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runner",
            "worker",
            "--master-host",
            master_host,
            "--master-port",
            str(master_port),
            "--quiet",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=detached_but_tied(signal.SIGTERM),
    )


def worker_command(master_host: str, master_port: int, *, quiet: bool = False) -> list[str]:
    """The stock Locust worker command for this locustfile (what `runner worker` execs)."""
    command = [
        sys.executable,
        "-m",
        "locust",
        "--worker",
        "-f",
        str(LOCUSTFILE),
        "--master-host",
        master_host,
        "--master-port",
        str(master_port),
    ]
    if quiet:
        command += ["--loglevel", "WARNING"]
    return command


def exec_worker(
    master_host: str, master_port: int, *, quiet: bool = False, master_wait_s: float
) -> None:
    """Replace this process with a Locust worker (so signals reach Locust directly) that tries
    to join its master for `master_wait_s`, then exits 3 with one line saying why not.

    A name that does not resolve yet is waited for too: on Kubernetes the master's Service
    name resolves only once the master's pod runs, and pods start in any order.
    """
    if master_host in ("*", "") or not _host_syntax(master_host):  # nothing to dial
        raise BadInput(f"--master-host {master_host!r}: not an IP address or host name")
    command = worker_command(master_host, master_port, quiet=quiet)
    # The worker checks it against the master's before running a step.
    os.environ[locustfile.WORKER_VERSION_ENV] = __version__
    os.environ[locustfile.MASTER_WAIT_ENV] = f"{master_wait_s:g}"
    os.execv(command[0], command)


# RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens.
HOST_NAME = re.compile(
    r"(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)


def _host_syntax(host: str) -> bool:
    """An IP address, "*" or a well-formed host name: anything else is refused unresolved.

    Resolving junk asks a DNS server, and a name Python cannot even encode ("a..b") raised
    inside gevent's resolver thread, which printed a traceback.
    """
    import ipaddress

    if host in ANY_ADDRESS:
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(HOST_NAME.fullmatch(host))


def _listen_probe(host: str, port: int) -> int:
    """Bind a TCP socket to host:port as the master will; returns the port bound."""
    import socket

    host = "0.0.0.0" if host in ("*", "") else host
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as sock:
        # As ZeroMQ's listener does: a port whose last connections are in TIME_WAIT (a master
        # that just ended) is free to listen on; one with a live listener is still refused.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        bound: int = sock.getsockname()[1]
        return bound


def check_master_address(host: str, port: int) -> None:
    """Refuse a bind address or port the master could not listen on, before the run starts.

    Raises BadInput naming the flag: an address of another machine, a name that does not
    resolve, a port out of range or in use.
    """
    import socket

    if not 0 <= port <= 65535:
        raise BadInput(f"--master-port must be 0-65535, got {port}")
    if not _host_syntax(host):
        raise BadInput(f"--master-bind-host {host!r}: not an IP address or host name")
    try:
        _listen_probe(host, port)
    except socket.gaierror as exc:
        raise BadInput(
            f"--master-bind-host {host}: no such address or host name ({exc.strerror})"
        ) from None
    except OSError as exc:
        import errno

        if exc.errno == errno.EADDRINUSE:
            raise BadInput(
                f"--master-port {port}: already in use on {host}; choose another port "
                "(or 0 for any free one)"
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise BadInput(
                f"--master-bind-host {host}: not an address of this machine; use one of its "
                "own addresses (ip addr), or 0.0.0.0 for all"
            ) from None
        raise BadInput(f"--master-bind-host {host} --master-port {port}: {exc.strerror}") from None


def _free_port(host: str) -> int:
    return _listen_probe(host, 0)


__all__ = [
    "StepTraffic",
    "Swarm",
    "SwarmError",
    "build_step_config",
    "local_dial_host",
]
