"""Shared pieces of the benchmarks: figures, clients, the results table.

Every figure is a ratio of two things measured side by side in the same run (these
machines are noisy); absolute numbers are printed beside it, never asserted.
"""

from __future__ import annotations

import http.client
import json
import platform
import random
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
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


def wrk(
    url: str,
    *,
    connections: int,
    threads: int,
    seconds: float,
    headers: dict[str, str] | None = None,
) -> WrkResult:
    """Run wrk with bench/echo.lua (the same client for every stack compared)."""
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
