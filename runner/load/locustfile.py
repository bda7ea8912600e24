"""The users memsweep's Locust workers run. Self-contained: stock `locust --worker -f -` works.

The master passes each step's configuration (`StepConfig`) as the custom argument
`--memsweep-step` (JSON), which Locust forwards inside every spawn message, so it reaches
workers atomically with the start of the step. Workers record every measured request into
full-resolution HDR histograms (Locust's own percentiles keep ~2 significant figures) keyed by
step id, and send the deltas with each report (`WorkerReport`), so a late report can never land
in the wrong step. Both ends import the types below; the master builds the config in one place
(runner/load/_swarm.py `build_step_config`) and the worker reads it as sent, with no defaults of its
own.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import random
import re
import socket
import sys
import time
import uuid
import weakref
from pathlib import Path
from typing import Any, Literal, TypedDict, cast

import gevent
import locust.runners
import zmq
from gevent.lock import Semaphore
from hdrh.histogram import HdrHistogram
from locust import FastHttpUser, constant, events, task
from locust.runners import WorkerRunner

# HDR range in microseconds: 1 µs to 1 hour, 3 significant figures.
HDR_LOWEST_US = 1
HDR_HIGHEST_US = 3_600_000_000
HDR_DIGITS = 3
# {{seq}} is unique across every worker process on every host.
_PROCESS_PREFIX = uuid.uuid4().hex[:10]
_SEQUENCE = itertools.count(1)
# The pattern and names runner/scenario/_models.py checks; this file cannot import it (a stock
# worker fetches only this file), so tests/test_one_truth.py holds them equal.
TEMPLATE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
PROTOCOL_VERSION = 3  # bumped when the step config or report format changes
# What the master and every worker must share: this file, byte for byte. A stock
# `locust --worker -f -` fetches it from the master; `python -m runner worker` runs its own
# installed copy, which the master's step config lets the worker check before it sends a byte.
LOCUSTFILE_SHA256 = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
# Set by `python -m runner worker` (stock Locust workers have no memsweep version).
WORKER_VERSION_ENV = "MEMSWEEP_WORKER_VERSION"
# A worker whose master has gone silent this long quits by itself (Locust's default is 60 s:
# too long to leave load generators running after a master host dies).
MASTER_SILENCE_S = 15
locust.runners.MASTER_HEARTBEAT_TIMEOUT = MASTER_SILENCE_S
# Verification aid: when set (a directory), each worker appends every request the target
# acknowledged (expected status) as one JSON line to <dir>/<host>-<pid>.jsonl, one write per
# line, so a killed worker's journal is complete up to its last acknowledged request.
ACK_JOURNAL_ENV = "MEMSWEEP_ACK_JOURNAL_DIR"


def _acyclic(histogram: HdrHistogram) -> HdrHistogram:
    """Break hdrh's histogram <-> encoder cycle so a dropped histogram is freed at once,
    not at the next cyclic collection (each report drops 184 KB ones; runner/hdr.py
    `acyclic` has the measured reason; this file cannot import it)."""
    histogram.encoder.histogram = weakref.proxy(histogram)
    return histogram


def new_histogram() -> HdrHistogram:
    return _acyclic(HdrHistogram(HDR_LOWEST_US, HDR_HIGHEST_US, HDR_DIGITS))


# Per-second histograms only feed the report's latency-over-time chart: 2 significant
# figures (1 %) keep each ~26 KB instead of ~184 KB, on the workers and on the master.
SECOND_DIGITS = 2


def new_second_histogram() -> HdrHistogram:
    return _acyclic(HdrHistogram(HDR_LOWEST_US, HDR_HIGHEST_US, SECOND_DIGITS))


# --- the master <-> worker protocol -------------------------------------------------------------
# Standard library types only: a stock worker runs this file as the master sends it.


class RequestConfig(TypedDict):
    """One request of the mix, as the scenario's RequestSpec dumps it to JSON."""

    name: str
    weight: float
    method: str
    path: str | None  # None: the target's URL
    body: Any  # JSON; strings may hold {{...}} templates
    headers: dict[str, str]
    expect_status: list[int]


class ClosedStepLoad(TypedDict):
    model: Literal["closed"]
    think_time: list[float]  # [min_s, max_s]: each user's wait between its requests


class OpenStepLoad(TypedDict):
    model: Literal["open"]
    rate_per_s: float  # for the whole swarm: each worker takes 1/workers of it
    max_in_flight: int  # for the whole swarm, likewise
    arrivals: Literal["poisson", "uniform"]


class StepConfig(TypedDict):
    """Everything a worker needs for one step; every field is always present."""

    # What a worker checks before it sends a byte (`mismatch`).
    protocol: int
    locustfile_sha256: str
    memsweep_version: str
    step: str  # the step id its reports are keyed by
    url: str  # the target's URL (scheme://host:port/path)
    headers: dict[str, str]  # the target's headers (the API key)
    requests: list[RequestConfig]
    seeded: list[str]  # ids {{seeded}} picks from
    load: ClosedStepLoad | OpenStepLoad
    warmup_s: float
    workers: int  # how many workers share the load
    window: list[float]  # [from, until): the measured window, epoch seconds, master's clock


class SecondRecord(TypedDict):
    """One second of one worker's measured requests (latencies in ms)."""

    n: int
    failures: int
    sum_ms: float
    histogram: str  # HDR-encoded, SECOND_DIGITS significant figures


class WorkerReport(TypedDict):
    """What a worker adds to each Locust report (`data["memsweep"]`): deltas since the last."""

    protocol: int
    step: str
    final: bool  # the worker's last report of the step (sent after `stop`)
    total: str | None  # HDR-encoded; None when nothing was measured
    by_name: dict[str, str]  # request name -> HDR-encoded
    counts: dict[str, list[int]]  # request name -> [requests, failures]
    errors: dict[str, int]  # "name\tkind" -> count
    seconds: dict[str, SecondRecord]  # epoch second (as text) -> its record
    dropped: int  # open model: arrivals over max_in_flight, in the measured window
    unmeasured: int  # requests that started outside the measured window


# Where a worker's report travels in Locust's own report message.
REPORT_KEY = "memsweep"


class _Second:
    """One second being counted on a worker (the per-request path: kept lean)."""

    __slots__ = ("failures", "histogram", "n", "sum_ms")

    def __init__(self) -> None:
        self.n = 0
        self.failures = 0
        self.sum_ms = 0.0
        self.histogram = new_second_histogram()

    def record(self) -> SecondRecord:
        return {
            "n": self.n,
            "failures": self.failures,
            "sum_ms": self.sum_ms,
            "histogram": self.histogram.encode().decode(),
        }


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--memsweep-step", type=str, default="", help="memsweep step configuration (JSON)"
    )


class StepRecorder:
    """This worker's measurements for the current step, sent as deltas with each report."""

    def __init__(self) -> None:
        self.config: StepConfig | None = None  # None until a step this worker may run
        self.refused = ""
        self.step = ""
        self.measure_from = 0.0
        self.measure_until = float("inf")
        self.reset()

    def reset(self) -> None:
        self.total = new_histogram()
        self.by_name: dict[str, HdrHistogram] = {}
        self.counts: dict[str, list[int]] = {}  # name -> [requests, failures]
        self.errors: dict[str, int] = {}  # "name\tkind" -> count
        self.seconds: dict[int, _Second] = {}  # epoch second -> its counts
        self.dropped = 0
        self.unmeasured = 0

    def configure(self, sent: dict[str, Any]) -> None:
        """Take the master's step config; one this worker may not run leaves it idle."""
        self.refused = mismatch(sent)
        self.step = str(sent.get("step", ""))  # a refused step is still reported, empty
        if self.refused:
            self.config = None
            self.measure_from, self.measure_until = float("inf"), float("inf")
        else:
            # Same protocol and locustfile as the master's: it is a StepConfig, field for field.
            self.config = cast(StepConfig, sent)
            self.measure_from, self.measure_until = measured_window(self.config)
        self.reset()

    def record(self, name: str, response_ms: float, error: Any) -> None:
        now = time.time()
        started = now - response_ms / 1000
        if not self.step or not self.measure_from <= started < self.measure_until:
            self.unmeasured += 1
            return
        value = max(HDR_LOWEST_US, min(HDR_HIGHEST_US, round(response_ms * 1000)))
        self.total.record_value(value)
        histogram = self.by_name.get(name)
        if histogram is None:
            histogram = self.by_name[name] = new_histogram()
        histogram.record_value(value)
        counts = self.counts.setdefault(name, [0, 0])
        counts[0] += 1
        second = self.seconds.get(int(now))
        if second is None:
            second = self.seconds[int(now)] = _Second()
        second.n += 1
        second.sum_ms += response_ms
        second.histogram.record_value(value)
        if error is not None:
            counts[1] += 1
            second.failures += 1
            key = f"{name}\t{describe_error(error)}"
            self.errors[key] = self.errors.get(key, 0) + 1

    def report(self, *, final: bool) -> WorkerReport:
        data: WorkerReport = {
            "protocol": PROTOCOL_VERSION,
            "step": self.step,
            "final": final,
            "total": self.total.encode().decode() if self.total.get_total_count() else None,
            "by_name": {name: hist.encode().decode() for name, hist in self.by_name.items()},
            "counts": self.counts,
            "errors": self.errors,
            "seconds": {str(sec): second.record() for sec, second in self.seconds.items()},
            "dropped": self.dropped,
            "unmeasured": self.unmeasured,
        }
        step = self.step
        self.reset()
        self.step = step
        return data


# A worker whose clock is further than this from the master's counts its own window: the
# master's would cut a skewed worker's window short or shift it.
CLOCK_AGREEMENT_S = 1.0


def measured_window(config: StepConfig) -> tuple[float, float]:
    """[from, until) in epoch seconds: the master's window when this clock agrees with its."""
    local_from = time.time() + config["warmup_s"]
    start, end = config["window"]
    if abs(start - local_from) <= CLOCK_AGREEMENT_S:
        return start, end
    return local_from, local_from + (end - start)


def mismatch(config: dict[str, Any]) -> str:
    """Why this worker must not run a step the master configured, or "" if it may.

    The config comes from a master of any version, so this alone reads it defensively.
    """
    if config.get("protocol") != PROTOCOL_VERSION:
        return (
            f"step protocol {config.get('protocol')!r} from the master, this worker speaks "
            f"{PROTOCOL_VERSION}"
        )
    expected = config.get("locustfile_sha256")
    if expected and expected != LOCUSTFILE_SHA256:
        return (
            f"its locustfile differs from the master's (sha256 {LOCUSTFILE_SHA256[:12]} vs "
            f"{str(expected)[:12]})"
        )
    mine = os.environ.get(WORKER_VERSION_ENV)
    theirs = config.get("memsweep_version")
    if mine and theirs and mine != theirs:
        return f"memsweep {mine} on this worker, {theirs} on the master"
    return ""


def describe_error(error: Any) -> str:
    """A short kind for grouping: "HTTP 502", "ConnectionRefusedError: ..." and so on."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = re.sub(r"^CatchResponseError: ", "", text)
    if type(error).__name__ == "CatchResponseError":
        return text[:200]
    return f"{type(error).__name__}: {text}"[:200]


RECORDER = StepRecorder()


@events.test_start.add_listener
def _on_test_start(environment: Any, **_: Any) -> None:
    options = environment.parsed_options
    raw = getattr(options, "memsweep_step", "") if options else ""
    if not raw:
        return
    RECORDER.configure(json.loads(raw))
    config = RECORDER.config
    if config is None:
        if isinstance(environment.runner, WorkerRunner):
            # Tell the master at once; this worker's users stay idle (see MemsweepUser).
            environment.runner.send_message("memsweep_refused", {"reason": RECORDER.refused})
        return
    load = config["load"]
    low, high = load["think_time"] if load["model"] == "closed" else (0.0, 0.0)
    MemsweepUser.wait_time = constant(low) if low == high else _between(low, high)
    host = config["url"]
    MemsweepUser.host = host
    OpenModelUser.host = host
    if isinstance(environment.runner, WorkerRunner) and RECORDER.measure_from > time.time():
        # Locust's own statistics (its per-step CSVs) start with the measured window too: the
        # master resets its copy as the warm-up ends; this drops what the worker counted in
        # the warm-up and has not reported yet (up to 3 s of it).
        gevent.spawn_later(RECORDER.measure_from - time.time(), environment.runner.stats.reset_all)


def _between(low: float, high: float) -> Any:
    return lambda _user: random.uniform(low, high)


@events.request.add_listener
def _on_request(
    request_type: str, name: str, response_time: float, exception: Any = None, **_: Any
) -> None:
    RECORDER.record(name, response_time, exception)


@events.report_to_master.add_listener
def _on_report(client_id: str, data: dict[str, Any]) -> None:
    runner = getattr(_on_report, "runner", None)
    # After `stop` the worker sends one last report: that one closes the step for it.
    final = runner is not None and runner.state == "stopped"
    data[REPORT_KEY] = RECORDER.report(final=final)


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        _on_report.runner = environment.runner


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_: Any) -> None:
    # A worker reports every 3 s, and not at `stop`: without this the master waits up to
    # 3 s for each step's last numbers. The users are stopped by now (state "stopped"), so
    # send them here, before Locust sends `client_stopped` and the worker leaves the
    # master's client list: in that order the master never sees a worker gone that still
    # owes its final report (sent from a spawned greenlet, it came after, and the master
    # could count a healthy worker as lost).
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner._send_stats()


# --- joining the master -------------------------------------------------------------------------

# How long `python -m runner worker` keeps trying to join a master that is not there yet, in
# seconds (its --master-wait; pods on a cluster start in any order). Locust's own join loop stays
# the engine: it sends its hello and waits CONNECT_TIMEOUT (5 s) for the master's ack, up to
# CONNECT_RETRY_COUNT (60) times, then logs "Failed to connect to the Locust master: " with no
# reason and exits 255 (docs/ARCHITECTURE.md, section 4.4). Sized here to the wait, it ends in
# one line naming host:port instead, and exit code 3.
MASTER_WAIT_ENV = "MEMSWEEP_MASTER_WAIT_S"
# libzmq re-dials an absent master every 0.1 s and resolves its name each time (on Kubernetes
# that is ~10 DNS lookups a second per waiting worker, each tried under every search domain);
# doubling up to 1 s keeps it to one a second and a worker still joins within about a second
# of the master appearing (bench/worker_join.py).
REDIAL_MAX_MS = 1000
# A worker that never reached its master ran nothing: a run that could not be measured (the
# exit code runner/cli.py gives such runs).
UNREACHED_EXIT = 3
# The probe that says why at the end: refused, silent or something else listening.
PROBE_TIMEOUT_S = 1.0


def bound_the_join(wait_s: float) -> None:
    """Size Locust's join loop to `wait_s`, dialling with backoff, and end it in one line."""
    hellos = max(1, math.ceil(wait_s / locust.runners.CONNECT_TIMEOUT))
    # Locust's constant is an int; its wait takes a float as well.
    locust.runners.CONNECT_TIMEOUT = wait_s / hellos  # type: ignore[assignment]
    locust.runners.CONNECT_RETRY_COUNT = hellos - 1  # it gives up once a retry exceeds this
    locust_join = WorkerRunner.connect_to_master

    def connect_to_master(self: WorkerRunner) -> None:
        if self.retry:  # Locust's loop calls itself for each retry: only the first call wraps it
            locust_join(self)
            return
        _redial_with_backoff(self)
        started = time.monotonic()
        try:
            locust_join(self)
        except ConnectionError:
            waited = time.monotonic() - started
            line = unreached(self.master_host, self.master_port, waited)
            print(f"memsweep: {line}", file=sys.stderr, flush=True)
            raise SystemExit(UNREACHED_EXIT) from None

    WorkerRunner.connect_to_master = connect_to_master  # type: ignore[method-assign]


def _redial_with_backoff(runner: WorkerRunner) -> None:
    """Dial the master again with libzmq's reconnect backoff on (Locust's socket has none;
    libzmq reads it when it dials), before the first hello.

    Under a new identity: the first dial may already have reached a listening master, whose
    socket then holds the old identity until it sees that connection close, and ignores a
    second connection under the same one (measured: 5 of 8 workers never joined).
    """
    sock = runner.client.socket
    endpoint = f"tcp://{runner.master_host}:{runner.master_port}"  # as locust.rpc dials it
    try:
        sock.disconnect(endpoint)
    except zmq.ZMQError:  # not dialled as expected: keep Locust's own dial
        return
    runner.client_id = f"{socket.gethostname()}_{uuid.uuid4().hex}"  # as Locust names one
    sock.setsockopt(zmq.IDENTITY, runner.client_id.encode())
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, REDIAL_MAX_MS)
    sock.connect(endpoint)


def unreached(host: str, port: int, waited_s: float) -> str:
    """Why a worker gave up on its master, in one line."""
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        why = f"{host} does not resolve ({exc.strerror})"
    else:
        try:
            with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
                why = "something listens there, but no Locust master answered"
        except ConnectionRefusedError:
            why = "nothing listens on that port"
        except OSError as exc:
            why = f"no answer ({exc.strerror or 'timed out'}: a firewall or network policy?)"
    return (
        f"could not reach the Locust master at {host}:{port} after {waited_s:.0f} s: {why}; "
        "start the run with a --master-bind-host this worker can reach, or wait longer "
        "with --master-wait"
    )


if os.environ.get(MASTER_WAIT_ENV):
    bound_the_join(float(os.environ[MASTER_WAIT_ENV]))


# --- what users send ----------------------------------------------------------------------------


class Templates:
    """Renders {{uuid}}, {{seq}}, {{seeded}} and {{int:A:B}} inside JSON bodies."""

    def __init__(self, seeded: list[str]) -> None:
        self.seeded = seeded

    def value(self, name: str) -> Any:
        if name == "uuid":
            return str(uuid.uuid4())
        if name == "seq":
            return f"{_PROCESS_PREFIX}-{next(_SEQUENCE)}"
        if name == "seeded":
            return random.choice(self.seeded) if self.seeded else ""
        if name.startswith("int:"):
            _, low, high = name.split(":")
            return random.randint(int(low), int(high))
        raise ValueError(f"unknown template {name}")

    def render(self, value: Any) -> Any:
        if isinstance(value, str):
            whole = TEMPLATE.fullmatch(value)
            if whole:  # "{{int:1:9}}" alone becomes a number, not a string
                return self.value(whole.group(1))
            return TEMPLATE.sub(lambda m: str(self.value(m.group(1))), value)
        if isinstance(value, dict):
            return {k: self.render(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v) for v in value]
        return value


class Prepared:
    """One request of the mix with everything that does not change per request worked out
    once (the generator's own CPU per request is a benchmark figure: bench/PROFILE.md)."""

    def __init__(self, spec: RequestConfig, config: StepConfig) -> None:
        self.name = spec["name"]
        self.method = spec["method"]
        base = config["url"]
        url = spec["path"] or base
        if not url.startswith(("http://", "https://")):
            url = "/".join(base.split("/", 3)[:3]) + url  # scheme://host:port + path
        self.url = url  # absolute: the target's URL carries a path (/dev/DynamoDBManager)
        self.headers = {
            "Content-Type": "application/json",
            **config["headers"],
            **spec["headers"],
        }
        self.expected = frozenset(spec["expect_status"])
        self.body = spec["body"]
        text = None if self.body is None else json.dumps(self.body)
        # A body without templates is the same bytes every time: serialise it once.
        self.fixed = None if text is None or TEMPLATE.search(text) else text

    def data(self, templates: Templates) -> str | None:
        if self.body is None or self.fixed is not None:
            return self.fixed
        return json.dumps(templates.render(self.body))


class _Mix:
    def __init__(self, config: StepConfig | None) -> None:
        """The step's request mix; empty for a step this worker refused."""
        self.requests: list[Prepared] = []
        self.cumulative: list[float] = []
        self.templates = Templates([])
        if config is not None:
            self.requests = [Prepared(spec, config) for spec in config["requests"]]
            self.cumulative = list(itertools.accumulate(r["weight"] for r in config["requests"]))
            self.templates = Templates(config["seeded"])

    def pick(self) -> Prepared:
        if len(self.requests) == 1:
            return self.requests[0]
        return random.choices(self.requests, cum_weights=self.cumulative)[0]


class AckJournal:
    """Acknowledged requests, one JSON line each, for checking that nothing was lost."""

    def __init__(self) -> None:
        self.directory = os.environ.get(ACK_JOURNAL_ENV)  # read once: this is per request
        self.fd: int | None = None

    def record(self, name: str, status: int, data: str | None) -> None:
        if not self.directory:
            return
        if self.fd is None:
            path = Path(self.directory) / f"{socket.gethostname()}-{os.getpid()}.jsonl"
            self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        line = json.dumps({"name": name, "status": status, "body": data}) + "\n"
        os.write(self.fd, line.encode())


ACK_JOURNAL = AckJournal()


def send(user: FastHttpUser, mix: _Mix, request: Prepared) -> None:
    data = request.data(mix.templates)
    with user.client.request(
        request.method,
        request.url,
        data=data,
        headers=request.headers,
        name=request.name,
        catch_response=True,
    ) as response:
        if response.status_code == 0:  # no HTTP answer at all: say what happened
            error = response.error
            response.failure(f"{type(error).__name__}: {error}" if error else "no response")
        elif response.status_code not in request.expected:
            response.failure(f"HTTP {response.status_code}")
        else:
            ACK_JOURNAL.record(request.name, response.status_code, data)


class MemsweepUser(FastHttpUser):
    """Closed model: send one request of the mix, think, repeat."""

    host = "http://127.0.0.1"
    wait_time = constant(0)
    # geventhttpclient's connection pool per user; one in flight at a time here.
    concurrency = 1

    def on_start(self) -> None:
        self.mix = _Mix(RECORDER.config)

    @task
    def request(self) -> None:
        if self.mix.requests and not RECORDER.refused:
            send(self, self.mix, self.mix.pick())
        else:
            gevent.sleep(1)


def _open_load(config: StepConfig | None) -> OpenStepLoad | None:
    if config is None:
        return None
    load = config["load"]
    return load if load["model"] == "open" else None


class OpenModelUser(FastHttpUser):
    """Open model: one per worker; starts requests at the arrival rate whatever the target does."""

    host = "http://127.0.0.1"
    wait_time = constant(0)
    concurrency = 1000

    def on_start(self) -> None:
        config = RECORDER.config
        self.mix = _Mix(config)
        self.open = _open_load(config)
        if config is None or self.open is None:  # a refused step: this user stays idle
            return
        workers = max(1, config["workers"])
        self.rate = self.open["rate_per_s"] / workers
        self.cap = max(1, self.open["max_in_flight"] // workers)
        self.poisson = self.open["arrivals"] == "poisson"
        self.in_flight = Semaphore(self.cap)

    @task
    def arrivals(self) -> None:
        if RECORDER.refused or self.open is None:
            gevent.sleep(1)
            return
        next_at = time.monotonic()
        while True:
            gap = random.expovariate(self.rate) if self.poisson else 1.0 / self.rate
            next_at += gap
            delay = next_at - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
            if self.in_flight.locked():
                # Counted in the measured window only, like requests: a drop in the warm-up
                # must not be charged against the size (nor one in the window forgiven).
                if RECORDER.measure_from <= time.time() < RECORDER.measure_until:
                    RECORDER.dropped += 1
                continue
            self.in_flight.acquire()
            gevent.spawn(self._one, self.mix.pick())

    def _one(self, request: Prepared) -> None:
        try:
            send(self, self.mix, request)
        finally:
            self.in_flight.release()


__all__ = ["MemsweepUser", "OpenModelUser"]
