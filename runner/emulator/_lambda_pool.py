"""Lambda for the local stack: a pool of sandboxes behind an emulated Runtime API.

Like Lambda: one in-flight invocation per sandbox; an idle sandbox is reused (most recently
used first, so warm ones stay warm); with none idle a new sandbox is started (a cold start,
its Init Duration measured from process start to its first `GET /next`) up to the
concurrency limit, beyond which the invocation is throttled. A sandbox that crashes, runs
out of memory or times out is killed and its invocation fails. Changing memory or the
handler drains the in-flight calls and replaces every sandbox.

Each sandbox gets its own Runtime API listener, so a request's socket says which sandbox
sent it, and a listener serves only its sandbox's own process (_peer.py says how and why):
in Lambda nothing outside the execution environment can reach its Runtime API. Every
invocation ends with CloudWatch-format START/END/REPORT lines in the log.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

from runner.control_api import CFS_PERIOD_US, Delivery
from runner.emulator._cgroups import Limiter, cpu_quota_us, cpu_share
from runner.emulator._deadlines import Deadlines
from runner.emulator._http import Connection, Request, bound_port, serve
from runner.emulator._peer import PeerCheck
from runner.emulator._sandbox import CpuUsage, FunctionConfig, Sandbox
from runner.lambda_logs import (
    InvocationReport,
    billed_duration_ms,
    format_arrival,
    format_report,
)

_RUNTIME_PREFIX = b"/2018-06-01/runtime/"
# Every sandbox's Runtime API listens on loopback only (_peer.py looks up TCP peers there).
_RUNTIME_HOST = "127.0.0.1"
_NOT_YOURS = (
    b'{"errorMessage":"Forbidden: this Runtime API serves only its own sandbox\'s process"}'
)
# Refused connections logged one line each, then only counted: a flood must not fill the disk.
MAX_REFUSALS_LOGGED = 20
# Runtime API bodies are events and results: Lambda caps synchronous payloads at 6 MB.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
# Lambda's default account concurrency is 1,000; one host runs far fewer python processes.
DEFAULT_CONCURRENCY = 100
# Sent with every event, as Lambda does (awslambdaric exports it as _X_AMZN_TRACE_ID).
_TRACE_HEADER = (b"Lambda-Runtime-Trace-Id", b"Root=1-00000000-000000000000000000000000")


class Outcome(Enum):
    OK = "ok"
    FUNCTION_ERROR = "function_error"  # the handler raised (Lambda: X-Amz-Function-Error)
    CRASH = "crash"  # the sandbox died (Runtime.ExitError), e.g. out of memory
    TIMEOUT = "timeout"  # ran past the function timeout; the sandbox was killed
    THROTTLED = "throttled"  # concurrency limit reached (Lambda: 429 TooManyRequests)


@dataclass(frozen=True)
class InvokeResult:
    outcome: Outcome
    payload: bytes
    request_id: str
    report: InvocationReport | None = None


OnDone = Callable[[InvokeResult], None]


# Does run_delay (schedstat field 2) include time throttled by the CFS quota? Yes, on this
# host's cgroup v1 (kernel 6.18): a spinning child watched for 2 s in a group with a 20 ms
# period ran 144 ms, waited 1,856 ms by schedstat, its group throttled 1,815 ms by cpu.stat
# (quota 1,447 us: 128 MB); at quota 10,000 us it ran 1,001 ms, waited 984, throttled 971;
# unthrottled it ran 1,980 ms and waited 3. With one busy process per core the same probes
# waited 1,848 / 1,009 ms against 1,707 / 392 ms throttled. So run_delay minus throttled is
# the wait for a busy host, and run_delay alone cannot tell starvation from the quota.


class Invocation:
    __slots__ = (
        "arrived_at",
        "cpu_at_delivery",
        "delivered_at",
        "event",
        "finished",
        "init_duration_ms",
        "on_done",
        "request_id",
        "slot",
    )

    def __init__(self, event: bytes, on_done: OnDone) -> None:
        self.request_id = new_request_id()
        # When the front handed it over (epoch s): attributes the invocation to the phase of
        # the step its request arrived in (runner/invocations.py), whatever the handler logs.
        self.arrived_at = time.time()
        self.event = event
        self.on_done = on_done
        self.finished = False
        self.delivered_at = 0.0
        self.cpu_at_delivery = 0
        self.init_duration_ms: float | None = None
        self.slot: _Slot | None = None


class _Slot:
    """Pool-side state of one sandbox."""

    __slots__ = (
        "connection",
        "counted",
        "invocation",
        "last_usage",
        "local",
        "ready",
        "refused",
        "retiring",
        "sandbox",
        "server",
        "trusted",
    )

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.server: asyncio.Server | None = None
        self.local = (_RUNTIME_HOST, 0)  # the Runtime API's listening address
        # The connection shown to come from the sandbox's own process, and the last one
        # refused (its pipelined requests are dropped while it closes).
        self.trusted: Connection | None = None
        self.refused: Connection | None = None
        self.connection: Connection | None = None  # a parked GET /next
        self.invocation: Invocation | None = None
        self.ready = False
        self.retiring = False
        self.counted = False  # its final CPU delivery is in the pool's totals
        self.last_usage: CpuUsage | None = None  # as the last delivery snapshot read it


class LambdaPool:
    def __init__(
        self,
        function: FunctionConfig,
        *,
        limiter: Limiter,
        log_path: os.PathLike[str] | str,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self.function = function
        self.limiter = limiter
        self.concurrency = concurrency
        self.log_path = os.fspath(log_path)
        # O_NOFOLLOW: a link swapped in after the server checked the path is not followed.
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
        self._log_fd = os.open(self.log_path, flags, 0o644)
        self._slots: set[_Slot] = set()
        self._idle: list[_Slot] = []
        self._names = itertools.count(1)
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.cold_starts = 0
        self.invocations = 0
        # Sandboxes the host refused to start (the pool watched on its own: a step whose
        # sandboxes could not start is the stack failing, not the function).
        self.start_failures = 0
        self.start_failure = ""
        # Quota multiplier from calibration (_cgroups.calibrate), for the current memory size.
        self.cpu_correction = 1.0
        self.on_report: Callable[[InvocationReport], None] | None = None
        # The function timeout is fixed for the pool's life (set_memory changes only memory).
        self._deadlines: Deadlines[Invocation] = Deadlines(function.timeout_s, self._timed_out)
        self._arn_header = (b"Lambda-Runtime-Invoked-Function-Arn", function.arn.encode())
        # CPU delivery of retired sandboxes, read just before each was killed.
        self._retired_usage = CpuUsage()
        self._retired_counted = 0
        self._samples_lost = 0
        self._peers = PeerCheck()
        # Connections to a Runtime API from a process other than its sandbox, refused.
        self.runtime_api_refused = 0

    # -- invoking ----------------------------------------------------------------------------

    @property
    def memory_mb(self) -> int:
        return self.function.memory_mb

    def invoke(self, event: bytes, on_done: OnDone) -> None:
        """Start one invocation; `on_done(result)` is called once, maybe before this returns.

        A direct callback, not a future: a future's done-callback costs another trip through
        the event loop on every request (bench/PROFILE.md).
        """
        invocation = Invocation(event, on_done)
        self.invocations += 1
        if self._closed:
            self._finish(None, invocation, Outcome.CRASH, _error("Runtime.Closed", "stopping"))
            return
        if self._idle:
            self._assign(self._idle.pop(), invocation)
        elif len(self._slots) < self.concurrency:
            slot = self._new_slot()
            slot.invocation = invocation
            task = asyncio.get_running_loop().create_task(self._start(slot))
            self._tasks.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self._tasks.discard)
        else:
            self._finish(
                None,
                invocation,
                Outcome.THROTTLED,
                _error("TooManyRequestsException", "Rate Exceeded."),
            )

    def _assign(self, slot: _Slot, invocation: Invocation) -> None:
        slot.invocation = invocation
        if slot.connection is not None:
            connection, slot.connection = slot.connection, None
            self._deliver(slot, connection, invocation)

    def _deliver(self, slot: _Slot, connection: Connection, invocation: Invocation) -> None:
        deadline_ms = int((time.time() + self.function.timeout_s) * 1000)
        connection.respond(
            200,
            invocation.event,
            headers=[
                (b"Lambda-Runtime-Aws-Request-Id", invocation.request_id.encode()),
                (b"Lambda-Runtime-Deadline-Ms", b"%d" % deadline_ms),
                self._arn_header,
                _TRACE_HEADER,
            ],
        )
        invocation.delivered_at = time.perf_counter()
        invocation.slot = slot
        if self.limiter.fidelity == "degraded":
            invocation.cpu_at_delivery = slot.sandbox.cpu_time_ns()
        self._deadlines.add(invocation)
        os.write(
            self._log_fd, b"START RequestId: %s Version: $LATEST\n" % invocation.request_id.encode()
        )

    def _timed_out(self, invocation: Invocation) -> None:
        slot = invocation.slot
        if invocation.finished or slot is None:
            return
        message = f"Task timed out after {self.function.timeout_s:.2f} seconds"
        os.write(self._log_fd, f"{_timestamp()} {invocation.request_id} {message}\n".encode())
        self._finish(slot, invocation, Outcome.TIMEOUT, _error("Sandbox.Timedout", message))
        self._retire(slot)

    # -- sandbox lifecycle -------------------------------------------------------------------

    def _new_slot(self) -> _Slot:
        name = f"{os.getpid()}-{next(self._names)}"
        group = self.limiter.create(name, memory_mb=self.function.memory_mb)
        sandbox = Sandbox(
            sandbox_id=name,
            function=self.function,
            group=group,
            runtime_api="",
            log_fd=self._log_fd,
        )
        slot = _Slot(sandbox)
        self._slots.add(slot)
        return slot

    async def _start(self, slot: _Slot) -> None:
        try:
            # The Runtime API must listen before the sandbox starts: a refused first
            # connection crashes awslambdaric at once (docs/ARCHITECTURE.md, section 4.3, trap 1).
            slot.server = await serve(
                lambda request, connection: self._runtime_api(slot, request, connection),
                host=_RUNTIME_HOST,
                port=0,
                max_body=MAX_PAYLOAD_BYTES,
            )
            slot.local = (_RUNTIME_HOST, bound_port(slot.server))
            slot.sandbox.runtime_api = f"{_RUNTIME_HOST}:{slot.local[1]}"
            self.cold_starts += 1
            await slot.sandbox.start()
            returncode = await slot.sandbox.wait()
        except OSError as exc:
            returncode = -1
            self.start_failures += 1
            self.start_failure = f"sandbox {slot.sandbox.id} failed to start: {exc}"
            os.write(self._log_fd, f"{self.start_failure}\n".encode())
        self._sandbox_exited(slot, returncode)

    def _sandbox_exited(self, slot: _Slot, returncode: int) -> None:
        # Reaped: its /proc entry is gone (or already another process's).
        self._count_final(slot, readable=False)
        self._slots.discard(slot)
        if slot in self._idle:
            self._idle.remove(slot)
        invocation = slot.invocation
        if invocation is not None and not invocation.finished:
            reason = f"signal: {-returncode}" if returncode < 0 else f"exit status {returncode}"
            detail = "signal: killed" if returncode == -9 else reason
            os.write(
                self._log_fd,
                f"{_timestamp()} {invocation.request_id} Error: Runtime exited with error: "
                f"{detail}\nRuntime.ExitError\n".encode(),
            )
            self._finish(
                slot,
                invocation,
                Outcome.CRASH,
                _error("Runtime.ExitError", f"Runtime exited with error: {detail}"),
            )
        if slot.server is not None:
            slot.server.close()
        slot.sandbox.cleanup()

    def _retire(self, slot: _Slot) -> None:
        slot.retiring = True
        if slot in self._idle:
            self._idle.remove(slot)
        self._kill(slot)

    def _release(self, slot: _Slot) -> None:
        slot.invocation = None
        if slot.retiring or self._closed:
            self._kill(slot)
        else:
            self._idle.append(slot)

    def _kill(self, slot: _Slot) -> None:
        self._count_final(slot, readable=True)
        slot.sandbox.kill()

    def _count_final(self, slot: _Slot, *, readable: bool) -> None:
        """Add a sandbox's CPU delivery to the totals, once, before its process goes away."""
        if slot.counted or not slot.sandbox.counting:
            return
        slot.counted = True
        usage = slot.sandbox.usage() if readable else None
        if usage is not None:
            self._retired_usage += usage
            self._retired_counted += 1
            return
        self._samples_lost += 1
        if slot.last_usage is not None:  # keep the totals from going backwards
            self._retired_usage += slot.last_usage

    # -- the Runtime API ---------------------------------------------------------------------

    def _runtime_api(self, slot: _Slot, request: Request, connection: Connection) -> None:
        if connection is not slot.trusted and not self._admit(slot, request, connection):
            return
        path = request.path
        if not path.startswith(_RUNTIME_PREFIX):
            connection.respond(404, b'{"errorMessage":"unknown path"}')
            return
        route = path[len(_RUNTIME_PREFIX) :]
        if route == b"invocation/next":
            self._next(slot, connection)
        elif route.endswith(b"/response") or route.endswith(b"/error"):
            self._result(slot, route, request, connection)
        elif route == b"init/error":
            # awslambdaric requires exactly 202 here; the sandbox then exits with 1.
            connection.respond(202, b'{"status":"OK"}')
            self._init_failed(slot, request.body)
        else:
            connection.respond(404, b'{"errorMessage":"unknown path"}')

    def _admit(self, slot: _Slot, request: Request, connection: Connection) -> bool:
        """Serve a connection only if its client socket is held by the sandbox's process.

        Checked on a connection's first request, once: awslambdaric keeps one connection.
        """
        if connection is slot.refused:
            return False  # pipelined behind a refused request: the connection is closing
        pid = slot.sandbox.pid
        peer = request.peer
        # The pid is known before any request: the process is set a loop turn after its
        # spawn, and its first request needs an accept and a read after that.
        if peer is not None and pid is not None and self._peers.owned_by(peer, slot.local, pid):
            slot.trusted = connection
            return True
        slot.refused = connection
        self.runtime_api_refused += 1
        if self.runtime_api_refused <= MAX_REFUSALS_LOGGED:
            source = f"{peer[0]}:{peer[1]}" if peer else "an unknown address"
            more = (
                f" (after {MAX_REFUSALS_LOGGED}, refusals are counted, not logged)"
                if self.runtime_api_refused == MAX_REFUSALS_LOGGED
                else ""
            )
            os.write(
                self._log_fd,
                f"{_timestamp()} Runtime API of sandbox {slot.sandbox.id}: refused "
                f"{request.method.decode(errors='replace')} from {source}, a process other "
                f"than the sandbox's own{more}\n".encode(),
            )
        connection.respond(403, _NOT_YOURS, keep_alive=False)
        return False

    def _next(self, slot: _Slot, connection: Connection) -> None:
        if not slot.ready:
            slot.ready = True
            init_ms = slot.sandbox.mark_ready(self.cpu_correction)
            if slot.invocation is not None:
                slot.invocation.init_duration_ms = init_ms
        invocation = slot.invocation
        if invocation is not None and invocation.delivered_at == 0.0:
            self._deliver(slot, connection, invocation)
            return
        slot.connection = connection
        connection.on_lost = lambda: _forget_connection(slot, connection)

    def _result(self, slot: _Slot, route: bytes, request: Request, connection: Connection) -> None:
        connection.respond(202, b'{"status":"OK"}')
        invocation = slot.invocation
        request_id = route.split(b"/")[1].decode(errors="replace")
        if invocation is None or invocation.request_id != request_id:
            return  # a late answer to an invocation that already timed out
        outcome = Outcome.OK if route.endswith(b"/response") else Outcome.FUNCTION_ERROR
        if outcome is Outcome.FUNCTION_ERROR:
            os.write(self._log_fd, _error_log_line(request_id, request.body))
        pace_s = self._pacing_delay(slot, invocation)
        if pace_s > 0:
            asyncio.get_running_loop().call_later(
                pace_s, self._complete, slot, invocation, outcome, request.body
            )
        else:
            self._complete(slot, invocation, outcome, request.body)

    def _complete(
        self, slot: _Slot, invocation: Invocation, outcome: Outcome, payload: bytes
    ) -> None:
        if invocation.finished:
            return
        # Idle again before the caller hears of it: its next call may reuse this sandbox.
        self._release(slot)
        self._finish(slot, invocation, outcome, payload)

    def _pacing_delay(self, slot: _Slot, invocation: Invocation) -> float:
        """Without cgroups: stretch the call as a CPU share of memory/1769 would have."""
        if self.limiter.fidelity != "degraded":
            return 0.0
        share = cpu_share(slot.sandbox.memory_mb)
        if share >= 1.0:
            return 0.0
        used_s = (slot.sandbox.cpu_time_ns() - invocation.cpu_at_delivery) / 1e9
        return used_s * (1.0 / share - 1.0)

    def _init_failed(self, slot: _Slot, body: bytes) -> None:
        invocation = slot.invocation
        os.write(self._log_fd, _error_log_line("INIT", body))
        if invocation is not None and not invocation.finished:
            self._finish(slot, invocation, Outcome.FUNCTION_ERROR, body)
        self._retire(slot)

    # -- results and reports -----------------------------------------------------------------

    def _finish(
        self, slot: _Slot | None, invocation: Invocation, outcome: Outcome, payload: bytes
    ) -> None:
        invocation.finished = True
        report = None
        if slot is not None:
            duration_ms = (
                (time.perf_counter() - invocation.delivered_at) * 1000
                if invocation.delivered_at
                else 0.0
            )
            init_ms = invocation.init_duration_ms
            report = InvocationReport(
                request_id=invocation.request_id,
                duration_ms=duration_ms,
                billed_duration_ms=billed_duration_ms(duration_ms, init_ms),
                memory_size_mb=slot.sandbox.memory_mb,
                max_memory_used_mb=slot.sandbox.sample_max_memory(),
                init_duration_ms=init_ms,
            )
            os.write(
                self._log_fd,
                f"{format_arrival(invocation.request_id, invocation.arrived_at)}\n"
                f"END RequestId: {invocation.request_id}\n{format_report(report)}\n".encode(),
            )
            if self.on_report is not None:
                self.on_report(report)
        invocation.on_done(
            InvokeResult(
                outcome=outcome, payload=payload, request_id=invocation.request_id, report=report
            )
        )

    # -- configuration -----------------------------------------------------------------------

    async def set_memory(self, memory_mb: int, *, drain_timeout_s: float | None = None) -> None:
        """Replace every sandbox: in-flight calls finish first, new calls get new sandboxes."""
        self.function = replace(self.function, memory_mb=memory_mb)
        self.cpu_correction = 1.0
        await self._replace_sandboxes(drain_timeout_s)

    async def set_handler(self, handler: str, *, drain_timeout_s: float | None = None) -> None:
        """Run `handler` from now on: like a deploy, every sandbox is replaced (in-flight calls
        finish on the old code) and the next calls cold-start with the new one."""
        self.function = replace(self.function, handler=handler)
        await self._replace_sandboxes(drain_timeout_s)

    async def _replace_sandboxes(self, drain_timeout_s: float | None) -> None:
        old = list(self._slots)
        for slot in old:
            slot.retiring = True
            if slot.invocation is None:
                self._retire(slot)
        await self._wait_gone(old, drain_timeout_s or self.function.timeout_s + 5)

    async def _wait_gone(self, slots: list[_Slot], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while any(slot in self._slots for slot in slots):
            if time.monotonic() > deadline:
                for slot in slots:
                    self._kill(slot)
                deadline = time.monotonic() + 5
            await asyncio.sleep(0.01)

    @property
    def sandboxes(self) -> int:
        return len(self._slots)

    @property
    def idle_sandboxes(self) -> int:
        return len(self._idle)

    def delivery(self) -> Delivery:
        """Cumulative CPU delivery of every sandbox so far; live ones are read now."""
        total, counted = self._retired_usage, self._retired_counted
        for slot in self._slots:
            if slot.counted or not slot.sandbox.counting:
                continue
            usage = slot.sandbox.usage()
            if usage is not None:
                slot.last_usage = usage
                counted += 1
            if slot.last_usage is not None:
                total += slot.last_usage
        memory_mb = self.function.memory_mb
        return Delivery(
            at=time.time(),
            memory_mb=memory_mb,
            nominal_share=min(1.0, cpu_share(memory_mb)),
            quota_share=min(1.0, cpu_quota_us(memory_mb, self.cpu_correction) / CFS_PERIOD_US),
            mode=self.limiter.mode,
            cpu_ns=total.cpu_ns,
            run_delay_ns=total.run_delay_ns,
            throttled_ns=total.throttled_ns,
            nr_periods=total.nr_periods,
            nr_throttled=total.nr_throttled,
            sandboxes_counted=counted,
            samples_lost=self._samples_lost,
            sandboxes_started=self.cold_starts,
            start_failures=self.start_failures,
            last_start_failure=self.start_failure,
        )

    def sandbox_pids(self) -> list[int]:
        return [pid for slot in self._slots if (pid := slot.sandbox.pid) is not None]

    async def close(self) -> None:
        """Kill every sandbox, wait for them and remove their limits."""
        self._closed = True
        old = list(self._slots)
        for slot in old:
            self._retire(slot)
        await self._wait_gone(old, 5.0)
        self._peers.close()
        os.close(self._log_fd)


def new_request_id() -> str:
    """A random version-4 UUID string; uuid.uuid4() costs several times more per request."""
    value = random.getrandbits(128)
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-4{text[13:16]}-{'89ab'[value & 3]}{text[17:20]}-{text[20:]}"


def _forget_connection(slot: _Slot, connection: Connection) -> None:
    if slot.connection is connection:
        slot.connection = None


def _error(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def _error_log_line(request_id: str, body: bytes) -> bytes:
    try:
        error = json.loads(body)
        text = f"[ERROR] {error.get('errorType', 'Error')}: {error.get('errorMessage', '')}"
    except (ValueError, AttributeError):
        text = "[ERROR] unreadable error document"
    return f"{_timestamp()} {request_id} {text}\n".encode()


def _timestamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"
