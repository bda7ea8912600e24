"""Shared pieces of the benchmarks: figures, clients, the results table.

Every figure is a ratio of two things measured side by side in the same run (these
machines are noisy); absolute numbers are printed beside it, never asserted.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BENCH_DIR = Path(__file__).resolve().parent
ECHO_LUA = BENCH_DIR / "echo.lua"
ECHO_BODY = b'{"operation":"echo","payload":{"k":"v"}}'


@dataclass
class Figure:
    """One line of the results table."""

    name: str
    goal: str
    value: float  # the ratio (or difference) measured side by side
    unit: str  # "x" for a ratio, "ms" for a difference
    passed: bool
    detail: str  # the absolute numbers behind it
    why_missed: str = ""  # the measured reason, printed when the goal is missed

    @property
    def shown(self) -> str:
        return f"{self.value:.2f}{'×' if self.unit == 'x' else ' ' + self.unit}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class KeepAliveClient:
    """A sequential HTTP/1.1 client on one connection; returns (status, body, seconds)."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        parts = urlsplit(url)
        self.path = parts.path
        self.connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=120)
        self.headers = {"Content-Type": "application/json", **(headers or {})}

    def post(self, body: bytes) -> tuple[int, bytes, float]:
        started = time.perf_counter()
        self.connection.request("POST", self.path, body=body, headers=self.headers)
        response = self.connection.getresponse()
        data = response.read()
        return response.status, data, time.perf_counter() - started

    def close(self) -> None:
        self.connection.close()


def sequential_latencies_ms(
    url: str,
    body: bytes,
    *,
    count: int,
    headers: dict[str, str] | None = None,
    gap_s: tuple[float, float] | None = None,
    rng: random.Random | None = None,
) -> list[float]:
    """`count` requests one after another; random gaps avoid phase-locking with CFS periods."""
    client = KeepAliveClient(url, headers)
    rng = rng or random.Random(7)
    latencies = []
    try:
        for _ in range(count):
            status, data, seconds = client.post(body)
            if status != 200:
                raise RuntimeError(f"{url} answered {status}: {data[:200]!r}")
            latencies.append(seconds * 1000)
            if gap_s:
                time.sleep(rng.uniform(*gap_s))
    finally:
        client.close()
    return latencies


def timed_calls_ms(call: Callable[[], Any], *, count: int) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1000)
    return out


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int


def _wrk_command(
    *, connections: int, threads: int, seconds: float, headers: dict[str, str] | None
) -> list[str]:
    """wrk with bench/echo.lua (the same client for every stack compared), minus the URL."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "-s",
        str(ECHO_LUA),
    ]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    return command


def wrk(
    url: str,
    *,
    connections: int,
    threads: int,
    seconds: float,
    headers: dict[str, str] | None = None,
) -> WrkResult:
    """Run wrk with bench/echo.lua (the same client for every stack compared)."""
    command = _wrk_command(
        connections=connections, threads=threads, seconds=seconds, headers=headers
    )
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]

    def latency(label: str) -> float:
        match = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)\b", output)
        return float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")

    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return WrkResult(
        rps=rps, p50_ms=latency("50"), p99_ms=latency("99"), non_2xx=int(bad.group(1)) if bad else 0
    )


def machine_description() -> str:
    cpus = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except StopIteration:
        model = platform.processor()
    return (
        f"{platform.node()}: {cpus} CPUs ({model}), Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {}
    for package in ("awslambdaric", "boto3", "httptools", "uvloop", "locust"):
        try:
            out[package] = version(package)
        except Exception:  # noqa: BLE001 - a missing package is reported as such
            out[package] = "not installed"
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    out["node"] = node or "not found"
    lock = BENCH_DIR.parent / "package-lock.json"
    if lock.exists():
        packages = json.loads(lock.read_text()).get("packages", {})
        for name in ("osls", "dynalite"):
            out[name] = packages.get(f"node_modules/{name}", {}).get("version", "?")
    return out


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


class StealMeter:
    """The share of CPU time the hypervisor gave other guests while a block ran (/proc/stat
    "steal"): the measured part of "this VM was noisy"."""

    def __init__(self) -> None:
        self.share = 0.0

    @staticmethod
    def _ticks() -> tuple[int, int]:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return fields[7] if len(fields) > 7 else 0, sum(fields)

    def __enter__(self) -> StealMeter:
        self._start = self._ticks()
        return self

    def __exit__(self, *exc: object) -> None:
        steal, total = self._ticks()
        elapsed = total - self._start[1]
        self.share = (steal - self._start[0]) / elapsed if elapsed else 0.0

    def __str__(self) -> str:
        return f"hypervisor steal {self.share:.1%} of CPU time during the run"


# --- CPU time per process, for "CPU per request" figures ----------------------------------

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuTime:
    """User and system CPU seconds."""

    user_s: float = 0.0
    system_s: float = 0.0

    @property
    def total_s(self) -> float:
        return self.user_s + self.system_s

    def __add__(self, other: CpuTime) -> CpuTime:
        return CpuTime(self.user_s + other.user_s, self.system_s + other.system_s)

    def __sub__(self, other: CpuTime) -> CpuTime:
        return CpuTime(self.user_s - other.user_s, self.system_s - other.system_s)


@dataclass(frozen=True)
class ProcCpu:
    """One process as /proc/PID/stat shows it (all its threads included)."""

    pid: int
    ppid: int
    name: str
    own: CpuTime  # utime, stime
    reaped: CpuTime  # cutime, cstime: children it has waited for, and theirs


def proc_snapshot() -> dict[int, ProcCpu]:
    """Every process on the machine now, by pid (Linux /proc)."""
    out: dict[int, ProcCpu] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:  # gone since the listing
            continue
        # Fields after "(comm)": state, ppid, ..., utime (12th), stime, cutime, cstime.
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        ticks = [int(value) / CLOCK_TICKS_PER_S for value in fields[11:15]]
        out[int(entry.name)] = ProcCpu(
            pid=int(entry.name),
            ppid=int(fields[1]),
            name=name,
            own=CpuTime(ticks[0], ticks[1]),
            reaped=CpuTime(ticks[2], ticks[3]),
        )
    return out


def descendants_in(snapshot: dict[int, ProcCpu], pid: int) -> set[int]:
    """The pids below `pid` (children, their children, ...) in a snapshot."""
    children: dict[int, list[int]] = {}
    for proc in snapshot.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def tree_cpu(snapshot: dict[int, ProcCpu], pids: set[int]) -> CpuTime:
    """CPU of these processes and of every child they reaped: a sum that a child's exit does
    not lower (its time moves from its own fields to its parent's reaped ones)."""
    total = CpuTime()
    for pid in pids:
        proc = snapshot.get(pid)
        if proc is not None:
            total = total + proc.own + proc.reaped
    return total


def machine_cpu_s() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine so far, all cores, from /proc/stat;
    busy excludes idle, iowait and steal."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    steal = fields[7] if len(fields) > 7 else 0
    busy = sum(fields[:8]) - fields[3] - fields[4] - steal
    return busy / CLOCK_TICKS_PER_S, steal / CLOCK_TICKS_PER_S


@dataclass
class WrkRun(WrkResult):
    """A wrk run with what it completed and what wrk itself cost."""

    requests: int = 0
    elapsed_s: float = 0.0
    cpu: CpuTime = field(default_factory=CpuTime)  # wrk's own user + system time


_WRK_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def wrk_run(
    url: str,
    *,
    connections: int,
    threads: int,
    seconds: float,
    headers: dict[str, str] | None = None,
) -> WrkRun:
    """wrk() plus the requests completed, the time wrk took for them and wrk's CPU time."""
    command = _wrk_command(
        connections=connections, threads=threads, seconds=seconds, headers=headers
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h),", output)
    if done is None:
        raise RuntimeError(f"no request count in wrk's output:\n{output}")

    def latency(label: str) -> float:
        match = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)\b", output)
        return float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")

    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return WrkRun(
        rps=rps,
        p50_ms=latency("50"),
        p99_ms=latency("99"),
        non_2xx=int(bad.group(1)) if bad else 0,
        requests=int(done.group(1)),
        elapsed_s=float(done.group(2)) * _WRK_DURATION_UNITS[done.group(3)],
        cpu=CpuTime(after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime),
    )


# Busy loops per core that starve the local stack measurably: with two, its sandboxes got
# 42-56 % of the CPU they were ready to use (0.70-0.79 on the quiet host; the figure moves
# with the machine), p95 doubled.
HOGS_PER_CORE = 2


@contextmanager
def cpu_hogs(*, per_core: int = HOGS_PER_CORE, limit_s: float = 600) -> Iterator[None]:
    """Busy loops pinned to every core, killed on exit, and ending by themselves at limit_s."""
    loop = f"import time\nend = time.monotonic() + {limit_s}\nwhile time.monotonic() < end: pass\n"
    hogs = [
        subprocess.Popen(
            ["taskset", "-c", str(core), sys.executable, "-c", loop], stdout=subprocess.DEVNULL
        )
        for core in range(os.cpu_count() or 1)
        for _ in range(per_core)
    ]
    try:
        time.sleep(0.5)  # let the scheduler spread them before the measurement starts
        yield
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait(timeout=10)


class KernelSetting:
    """A system-wide kernel setting (/proc/sys/...) that a benchmark changes, always put back.

    The original value is written back when the block ends, however it ends: in `finally`,
    and at once on SIGINT or SIGTERM (`timeout` sends SIGTERM), which then raise
    KeyboardInterrupt so the benchmark's own clean-up runs as well.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.original = ""
        self.changed = False
        self._handlers: dict[int, Any] = {}

    @property
    def name(self) -> str:
        """The sysctl name, e.g. kernel.sched_cfs_bandwidth_slice_us."""
        parts = self.path.parts
        return ".".join(parts[3:]) if parts[:3] == ("/", "proc", "sys") else str(self.path)

    def unchangeable(self) -> str:
        """Why this process cannot change the setting ("" when it can)."""
        if not self.path.exists():
            return f"{self.path} does not exist on this kernel"
        if not os.access(self.path, os.W_OK):
            return f"{self.path} is not writable by this user"
        return ""

    def read(self) -> str:
        return self.path.read_text().strip()

    def __enter__(self) -> KernelSetting:
        self.original = self.read() if self.path.exists() else ""
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._handlers[signum] = signal.signal(signum, self._on_signal)
        return self

    def set(self, value: str) -> None:
        self.changed = True  # first: a write cut short is put back as well
        self.path.write_text(value)

    def restore(self) -> None:
        if self.changed:
            self.path.write_text(self.original)
            self.changed = False

    def _on_signal(self, signum: int, frame: object) -> None:
        self.restore()
        raise KeyboardInterrupt(f"signal {signum}: {self.name} put back to {self.original}")

    def __exit__(self, *exc: object) -> None:
        try:
            self.restore()
        finally:
            for signum, handler in self._handlers.items():
                signal.signal(signum, handler)
            self._handlers.clear()
