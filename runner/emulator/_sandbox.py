"""One Lambda execution environment: a process running the handler under awslambdaric.

The process talks to the pool's emulated Runtime API over HTTP, exactly as in Lambda (the
runtime interface client is the one AWS ships in its container images). It is moved into
its cgroup before exec, so the handler's import already runs under the sandbox's limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from runner.emulator._cgroups import CpuStat, SandboxGroup

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1
# awslambdaric turns on per-call thread polling (about 2x the sandbox's CPU) when
# AWS_EXECUTION_ENV names python3.12 or later; name the interpreter actually running.
EXECUTION_ENV = f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}"
ACCOUNT_ID = "000000000000"
# How stale a REPORT line's Max Memory Used may be (s).
MEMORY_SAMPLE_INTERVAL_S = 0.25


@dataclass(frozen=True)
class FunctionConfig:
    """What a sandbox needs to know about the function it runs."""

    name: str
    handler: str  # module.function, as in serverless.yml
    code_dir: Path
    memory_mb: int
    timeout_s: float
    environment: dict[str, str] = field(default_factory=dict)
    region: str = "us-east-1"

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{self.name}"


def sandbox_environment(
    function: FunctionConfig, *, runtime_api: str, sandbox_id: str
) -> dict[str, str]:
    """The variables Lambda sets for a Python runtime, plus the function's own."""
    stream = time.strftime("%Y/%m/%d/[$LATEST]", time.gmtime()) + sandbox_id
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(function.code_dir),
        "_HANDLER": function.handler,
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": stream,
        "AWS_EXECUTION_ENV": EXECUTION_ENV,
        "AWS_REGION": function.region,
        "AWS_DEFAULT_REGION": function.region,
        # Lambda's Python runtime writes each log line as it is printed.
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("PYTHONPATH", "VIRTUAL_ENV", "HOME"):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(function.environment)
    return env


@dataclass(frozen=True)
class CpuUsage:
    """What a sandbox got from the CPU while throttled (ns and counts, since mark_ready)."""

    cpu_ns: int = 0  # running, summed over its threads
    run_delay_ns: int = 0  # runnable but waiting, summed over its threads (throttling included)
    throttled_ns: int = 0  # its group's run queues throttled by the quota
    nr_periods: int = 0
    nr_throttled: int = 0

    def __add__(self, other: CpuUsage) -> CpuUsage:
        return CpuUsage(
            self.cpu_ns + other.cpu_ns,
            self.run_delay_ns + other.run_delay_ns,
            self.throttled_ns + other.throttled_ns,
            self.nr_periods + other.nr_periods,
            self.nr_throttled + other.nr_throttled,
        )


class Sandbox:
    """A sandbox process and its limits; the pool drives its lifecycle."""

    def __init__(
        self,
        *,
        sandbox_id: str,
        function: FunctionConfig,
        group: SandboxGroup,
        runtime_api: str,
        log_fd: int,
    ) -> None:
        self.id = sandbox_id
        self.function = function
        self.memory_mb = function.memory_mb
        self.group = group
        self.runtime_api = runtime_api
        self.log_fd = log_fd
        self.process: asyncio.subprocess.Process | None = None
        self.started_at = 0.0
        self.init_duration_ms: float | None = None
        self.max_memory_mb = 0
        self._memory_sampled_at = 0.0
        # Per-thread (cpu, run_delay) and the group's counters when the quota applied.
        self._thread_baseline: dict[int, tuple[int, int]] | None = None
        self._stat_baseline = CpuStat()

    async def start(self) -> None:
        env = sandbox_environment(self.function, runtime_api=self.runtime_api, sandbox_id=self.id)
        group = self.group

        def in_child() -> None:
            # Before exec: the interpreter and the handler's import run inside the limits,
            # and the sandbox dies with the runner even if the runner is SIGKILLed.
            group.attach_self()
            _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            # The emulator may run at a higher priority (_server.py); functions don't inherit it.
            os.setpriority(os.PRIO_PROCESS, 0, 0)

        self.started_at = time.perf_counter()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "awslambdaric",
            self.function.handler,
            cwd=self.function.code_dir,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self.log_fd,
            stderr=self.log_fd,
            preexec_fn=in_child,
        )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def mark_ready(self, cpu_correction: float = 1.0) -> float:
        """First `GET /next`: init is over; apply the steady-state CPU share."""
        self.init_duration_ms = (time.perf_counter() - self.started_at) * 1000
        self.group.throttle(self.memory_mb, cpu_correction)
        # Init ran unthrottled: CPU delivery is counted from here on.
        self._stat_baseline = self.group.cpu_stat()
        self._thread_baseline = self._thread_schedstats() or {}
        return self.init_duration_ms

    @property
    def counting(self) -> bool:
        """Throttled, with a baseline to count CPU delivery from."""
        return self._thread_baseline is not None

    def usage(self) -> CpuUsage | None:
        """CPU delivery since the quota applied (None: not throttled yet, or already gone).

        Summed over the threads alive now: a thread that ended since the baseline takes its
        share with it (awslambdaric here runs the handler on its one and only thread).
        """
        baseline = self._thread_baseline
        if baseline is None or self.process is None or self.process.returncode is not None:
            return None
        threads = self._thread_schedstats()
        if not threads:
            return None
        cpu_ns = run_delay_ns = 0
        for tid, (cpu, delay) in threads.items():
            cpu0, delay0 = baseline.get(tid, (0, 0))
            cpu_ns += cpu - cpu0
            run_delay_ns += delay - delay0
        stat = self.group.cpu_stat() - self._stat_baseline
        return CpuUsage(cpu_ns, run_delay_ns, stat.throttled_ns, stat.nr_periods, stat.nr_throttled)

    def _thread_schedstats(self) -> dict[int, tuple[int, int]] | None:
        """(CPU time, run-queue wait) in ns of each thread, from /proc/PID/task/*/schedstat."""
        if self.pid is None:
            return None
        task_dir = f"/proc/{self.pid}/task"
        try:
            tids = os.listdir(task_dir)
        except OSError:
            return None
        threads = {}
        for tid in tids:
            try:
                with open(f"{task_dir}/{tid}/schedstat", "rb") as handle:
                    fields = handle.read().split()
                threads[int(tid)] = (int(fields[0]), int(fields[1]))
            except (OSError, ValueError, IndexError):
                continue  # the thread ended between the listing and the read
        return threads

    def cpu_time_ns(self) -> int:
        """CPU time the sandbox has used so far (ns, from the scheduler's accounting)."""
        if self.pid is None:
            return 0
        try:
            with open(f"/proc/{self.pid}/schedstat", "rb") as handle:
                return int(handle.read().split()[0])
        except (OSError, ValueError, IndexError):
            return 0

    def sample_max_memory(self) -> int:
        """Peak resident memory in MB, which Lambda reports as Max Memory Used.

        VmHWM is the kernel's high-water mark, so reading it now and then loses no peak;
        reading /proc on every invocation cost ~15 % of the local stack's CPU per request.
        """
        now = time.monotonic()
        if now - self._memory_sampled_at < MEMORY_SAMPLE_INTERVAL_S and self.max_memory_mb:
            return self.max_memory_mb
        self._memory_sampled_at = now
        if self.pid is not None:
            try:
                with open(f"/proc/{self.pid}/status", "rb") as handle:
                    for line in handle:
                        if line.startswith(b"VmHWM:"):
                            self.max_memory_mb = max(
                                self.max_memory_mb, -(-int(line.split()[1]) // 1024)
                            )
                            break
            except (OSError, ValueError):
                pass
        return self.max_memory_mb

    def kill(self) -> None:
        # SIGINT does not stop a sandbox blocked in awslambdaric's native next() call
        # (docs/ARCHITECTURE.md, section 4.3, trap 3): only SIGKILL is immediate.
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    def cleanup(self) -> None:
        # A group that stays busy is removed as stale by the next start.
        with contextlib.suppress(OSError):
            self.group.remove()
