"""The local stack's own cost: front overhead, and throughput/latency vs serverless-offline."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import (
    ECHO_BODY,
    Figure,
    StealMeter,
    percentile,
    sequential_latencies_ms,
    timed_calls_ms,
    wrk,
)
from runner.emulator.process import LocalStackProcess
from runner.lambda_logs import reports_in
from runner.stack import PROJECT_ROOT

FULL_CPU_MB = 1769
# Measured with /proc CPU times of each process during 8-connection wrk runs (bench/PROFILE.md).
THROUGHPUT_MISS = (
    "CPU-bound on 2 shared cores. Per request at 8 connections the emulator (front + Runtime "
    "API) spends ~0.33 ms of CPU (0.41 ms before the profile-driven changes, same runs), the "
    "8 sandboxes together ~0.5 ms (awslambdaric's two HTTP exchanges with the Runtime API; "
    "the handler's own Python is <0.1 ms of it), wrk ~0.03 ms. serverless-offline spends "
    "~0.95 ms (node 0.67, its python 0.28: the event goes over a stdin pipe). 1.5x would need "
    "<= ~0.64 ms per request here: the sandboxes alone take ~0.5 ms, leaving the emulator "
    "~0.14 ms, less than the send/recv/epoll syscalls of two HTTP exchanges per invocation "
    "cost it. Out of reach on 2 cores while the sandbox runs the real runtime client."
)


@contextmanager
def local_stack(*args: str, calibrate: bool = False) -> Iterator[LocalStackProcess]:
    """The local stack without usage-plan limits; calibration as users get it when asked."""
    flags = ["--no-usage-plan-throttle"] + ([] if calibrate else ["--no-calibrate"])
    with LocalStackProcess([*flags, *args]) as stack:
        yield stack


def _in_process_handler() -> Any:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "x")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "x")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    sys.path.insert(0, str(PROJECT_ROOT))
    return importlib.import_module("handler")


def front_overhead(*, quick: bool) -> Figure:
    """Echo p50 through the local stack minus calling lambda_handler in this process."""
    count = 500 if quick else 3000
    handler = _in_process_handler()
    event = json.loads((PROJECT_ROOT / "tests" / "events" / "apigw-proxy-create.json").read_text())
    event["body"] = ECHO_BODY.decode()

    class Context:
        aws_request_id = "bench"

    with contextlib.redirect_stdout(io.StringIO()):
        in_process = timed_calls_ms(lambda: handler.lambda_handler(event, Context()), count=count)
    with local_stack("--memory", str(FULL_CPU_MB)) as stack, StealMeter() as steal:
        sequential_latencies_ms(stack.url, ECHO_BODY, count=50, headers=stack.headers())
        through = sequential_latencies_ms(
            stack.url, ECHO_BODY, count=count, headers=stack.headers()
        )
        log = Path(stack.log_path).read_text().splitlines()
    # The sandbox's own view of the same calls: what the handler took inside the runtime.
    durations = [report.duration_ms for report in reports_in(log)][-count:]
    added = percentile(through, 50) - percentile(in_process, 50)
    inside = percentile(durations, 50)
    return Figure(
        name="local stack front overhead (echo, p50 added at 1769 MB)",
        goal="≤ 1 ms",
        value=added,
        unit="ms",
        passed=added <= 1.0,
        detail=f"through stack p50 {percentile(through, 50):.3f} ms, in-process "
        f"{percentile(in_process, 50):.3f} ms (n={count}, python http.client keep-alive); "
        f"the sandbox's REPORT Duration p50 {inside:.3f} ms; {steal}",
        why_missed=f"of the {added:.2f} ms added, the handler inside the sandbox took "
        f"{inside:.3f} ms (REPORT Duration p50; {percentile(in_process, 50):.3f} ms in this "
        f"process) and the rest, {percentile(through, 50) - inside:.2f} ms, is the client, the "
        f"front and the Runtime API round trips; {steal}",
    )


def versus_serverless_offline(*, quick: bool) -> list[Figure]:
    """Same handler, same machine, same client (wrk + bench/echo.lua), alternating runs."""
    from bench.offline import ensure_installed, serverless_offline

    ensure_installed()
    seconds = 3.0 if quick else 8.0
    rounds = 1 if quick else 2
    runs: dict[tuple[str, int], list[Any]] = {}
    with local_stack("--memory", str(FULL_CPU_MB)) as stack, serverless_offline() as offline_url:
        targets = {"local": (stack.url, stack.headers()), "offline": (offline_url, {})}
        # Warm up: both start one process per concurrent request, each with a cold start.
        for url, headers in targets.values():
            wrk(url, connections=8, threads=2, seconds=4, headers=headers)
        for _ in range(rounds):
            for connections, threads in ((1, 1), (8, 2)):
                for name, (url, headers) in targets.items():
                    result = wrk(
                        url,
                        connections=connections,
                        threads=threads,
                        seconds=seconds,
                        headers=headers,
                    )
                    runs.setdefault((name, connections), []).append(result)

    def best(name: str, connections: int) -> Any:
        return max(runs[(name, connections)], key=lambda result: result.rps)

    figures = []
    for connections in (1, 8):
        local, offline = best("local", connections), best("offline", connections)
        ratio = local.rps / offline.rps
        figures.append(
            Figure(
                name=f"echo throughput vs serverless-offline 13.10.1, {connections} connection(s)",
                goal="≥ 1.5×" if connections == 8 else "(reported)",
                value=ratio,
                unit="x",
                passed=ratio >= 1.5 if connections == 8 else True,
                why_missed=THROUGHPUT_MISS,
                detail=f"local {local.rps:.0f} rps vs offline {offline.rps:.0f} rps; p50 "
                f"{local.p50_ms:.3f} vs {offline.p50_ms:.3f} ms; p99 {local.p99_ms:.2f} vs "
                f"{offline.p99_ms:.2f} ms; non-2xx {local.non_2xx}/{offline.non_2xx}",
            )
        )
    local, offline = best("local", 1), best("offline", 1)
    figures.append(
        Figure(
            name="echo p50 vs serverless-offline, sequential (lower is better)",
            goal="< 1.0×",
            value=local.p50_ms / offline.p50_ms,
            unit="x",
            passed=local.p50_ms < offline.p50_ms,
            detail=f"local {local.p50_ms:.3f} ms vs offline {offline.p50_ms:.3f} ms (wrk -c1)",
        )
    )
    return figures
