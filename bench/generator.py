"""The load generator's own cost: memsweep's user vs a bare one, latency bias, 1 vs 2 workers.

memsweep's side is always its real master (runner.load.Swarm in bench/swarm_driver.py) and
`python -m runner worker` processes running runner/load/locustfile.py's MemsweepUser with its HDR
step recording, as in a sweep step. Requests/s are counted by the endpoint itself over the
same kind of window for both sides, and CPU time per process role is read from /proc.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bench.common import ECHO_BODY, Figure, median, percentile, sequential_latencies_ms
from bench.endpoints import Endpoint, Window, fast_endpoint, measure_window, tiny_server

PROJECT_ROOT = os.fspath(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER_CORE, LOCUST_CORE = 0, 1
# One FastHttpUser worker is CPU-bound at 50 users on this machine (docs/ARCHITECTURE.md, 4.4).
USERS = 50
WARM_S = 2.0  # users spawned, connections open, before the counted window
# (rounds, measured seconds per run). --quick is what CI affords: one pair, side by side;
# each run also costs ~7 s of process start, warm-up and tail.
QUICK_ROUNDS = (1, 4.0)
FULL_ROUNDS = (3, 5.0)
# The step runs past the counted window so stopping never falls inside it.
TAIL_S = 1.5
LINE_TIMEOUT_S = 90.0
BIAS_DELAY_MS = 50.0
BIAS_USERS = 10  # ~200 req/s: the generator is far from busy, so the bias is its own cost


@dataclass
class Run:
    window: Window
    step: dict[str, Any]  # what the master recorded (memsweep side only)


def _read_json_line(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], LINE_TIMEOUT_S)
    line = process.stdout.readline() if ready else ""
    if not line:
        raise RuntimeError(f"bench.swarm_driver said nothing within {LINE_TIMEOUT_S:.0f} s")
    data: dict[str, Any] = json.loads(line)
    return data


@contextmanager
def _child(command: list[str], *, env: dict[str, str] | None = None) -> Iterator[Any]:
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield process
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _pinned(core: int | None, command: list[str]) -> list[str]:
    return command if core is None else ["taskset", "-c", str(core), *command]


def memsweep_run(
    endpoint: Endpoint,
    *,
    workers: int,
    users: int,
    measure_s: float,
    core: int | None,
    think_s: float = 0.0,
) -> Run:
    """One step of memsweep's master + `workers` local workers, counted by the endpoint."""
    args = {
        "url": endpoint.url,
        "workers": workers,
        "users": users,
        "seconds": WARM_S + measure_s + TAIL_S,
        "warmup_s": WARM_S,
        "think_s": think_s,
    }
    command = _pinned(core, [sys.executable, "-m", "bench.swarm_driver", json.dumps(args)])
    with _child(command) as process:
        ready = _read_json_line(process)
        window = measure_window(
            endpoint,
            warm_s=WARM_S,
            measure_s=measure_s,
            processes=lambda: {"workers": ready["workers"], "master": [ready["master"]]},
        )
        step = _read_json_line(process)
    return Run(window, step)


def bare_run(
    endpoint: Endpoint,
    *,
    users: int,
    measure_s: float,
    core: int | None,
    latencies_out: str = "",
) -> Run:
    """Stock `locust --headless` with bench/bare_locustfile.py, counted the same way."""
    seconds = round(WARM_S + measure_s + TAIL_S + 1)
    command = _pinned(
        core,
        [sys.executable, "-m", "locust", "-f", "bench/bare_locustfile.py", "--headless",
         "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--only-summary",
         "--loglevel", "WARNING"],
    )  # fmt: skip
    env = {**os.environ, "BENCH_URL": endpoint.url, "BENCH_LATENCIES_OUT": latencies_out}
    with _child(command, env=env) as process:
        window = measure_window(
            endpoint,
            warm_s=WARM_S,
            measure_s=measure_s,
            processes=lambda: {"workers": [process.pid]},
        )
    return Run(window, {})


def _cpu_ms_per_request(runs: list[Run], role: str) -> float:
    return median([run.window.cpu_s.get(role, 0.0) * 1000 / run.window.requests for run in runs])


def generator_efficiency(*, quick: bool) -> Figure:
    """memsweep's user vs a bare FastHttpUser, same POST, same endpoint, alternating rounds."""
    rounds, measure_s = QUICK_ROUNDS if quick else FULL_ROUNDS
    memsweep: list[Run] = []
    bare: list[Run] = []
    with fast_endpoint(SERVER_CORE) as endpoint:
        for _ in range(rounds):
            memsweep.append(
                memsweep_run(
                    endpoint, workers=1, users=USERS, measure_s=measure_s, core=LOCUST_CORE
                )
            )
            bare.append(bare_run(endpoint, users=USERS, measure_s=measure_s, core=LOCUST_CORE))
    ours, theirs = median([r.window.rps for r in memsweep]), median([r.window.rps for r in bare])
    ratio = ours / theirs
    cpu_ours, cpu_bare = (
        _cpu_ms_per_request(memsweep, "workers"),
        _cpu_ms_per_request(bare, "workers"),
    )
    cpu_master = _cpu_ms_per_request(memsweep, "master")
    busy_ours, busy_bare = (
        median([r.window.cpu_s["workers"] / r.window.seconds for r in runs])
        for runs in (memsweep, bare)
    )
    return Figure(
        name="load generator efficiency: memsweep user / bare FastHttpUser (req/s, 1 worker)",
        goal="≥ 0.95×",
        value=ratio,
        unit="x",
        passed=ratio >= 0.95,
        detail=f"median {ours:.0f} vs {theirs:.0f} req/s ({rounds} alternating rounds of "
        f"{measure_s:.0f} s, {USERS} users, Locust on core {LOCUST_CORE}, {endpoint.kind} on core "
        f"{SERVER_CORE}; rounds {_rates(memsweep)} vs {_rates(bare)}); worker CPU per request "
        f"{cpu_ours:.3f} vs {cpu_bare:.3f} ms, memsweep master {cpu_master:.3f} ms; other "
        f"processes kept {_others(memsweep + bare):.2f} cores busy",
        # req/s = (share of its core the process got) / (CPU per request): say which moved.
        why_missed=f"the Locust process is CPU-bound in both; memsweep's worker got "
        f"{busy_ours:.0%} of its core vs {busy_bare:.0%} for the bare user "
        f"({busy_ours / busy_bare - 1:+.0%}: the rest went to steal and other processes) and "
        f"spent {cpu_ours:.3f} vs {cpu_bare:.3f} ms of CPU per request "
        f"({cpu_ours / cpu_bare - 1:+.0%}), measured in the same windows; bench/PROFILE.md "
        "has where memsweep's CPU goes",
    )


def _others(runs: list[Run]) -> float:
    """Cores kept busy by every other process on the machine during the windows (median)."""
    return median([run.window.others_s / run.window.seconds for run in runs])


def _rates(runs: list[Run]) -> str:
    return "/".join(f"{run.window.rps:.0f}" for run in runs)


def latency_bias(*, quick: bool) -> Figure:
    """memsweep's p50 against a server answering in 50 ms, and a plain client's beside it."""
    measure_s = 4.0 if quick else 8.0
    control_count = 40 if quick else 100
    control: list[float] = []
    with (
        tiny_server(SERVER_CORE, delay_ms=BIAS_DELAY_MS) as endpoint,
        tempfile.TemporaryDirectory() as scratch,
    ):
        # A plain sequential client during the same window: the server's and loopback's share.
        def plain_client() -> None:
            control.extend(sequential_latencies_ms(endpoint.url, ECHO_BODY, count=control_count))

        thread = threading.Thread(target=plain_client, daemon=True)
        thread.start()
        run = memsweep_run(
            endpoint, workers=1, users=BIAS_USERS, measure_s=measure_s, core=LOCUST_CORE
        )
        thread.join(timeout=LINE_TIMEOUT_S)
        out = os.path.join(scratch, "bare.json")
        bare_run(
            endpoint, users=BIAS_USERS, measure_s=measure_s, core=LOCUST_CORE, latencies_out=out
        )
        with open(out) as handle:
            bare_ms = percentile(json.load(handle), 50)
    step = run.step
    bias = step["p50_ms"] - BIAS_DELAY_MS
    plain = percentile(control, 50) - BIAS_DELAY_MS
    return Figure(
        name="client-side latency bias: memsweep p50 minus the 50 ms server delay",
        goal="≤ 2 ms",
        value=bias,
        unit="ms",
        passed=bias <= 2.0,
        detail=f"memsweep HDR p50 {step['p50_ms']:.3f} ms, mean {step['mean_ms']:.3f}, p99 "
        f"{step['p99_ms']:.3f} (n={step['requests']}, {BIAS_USERS} users, "
        f"{run.window.rps:.0f} req/s); a plain http.client beside it: p50 {plain + 50:.3f} ms "
        f"(+{plain:.3f}, n={len(control)}): wake-up and loopback; a bare FastHttpUser after it: "
        f"p50 {bare_ms:.3f} ms (+{bare_ms - BIAS_DELAY_MS:.3f})",
        why_missed=f"on the same server a plain client measured +{plain:.3f} ms (a process "
        f"woken after 50 ms idle, loopback) and a bare FastHttpUser +{bare_ms - 50:.3f} ms "
        f"(Locust and gevent's own share); memsweep adds {step['p50_ms'] - bare_ms:+.3f} ms "
        "to the bare user",
    )


def worker_scaling(*, quick: bool) -> Figure:
    """Requests/s of 2 local workers vs 1 against the fast endpoint, same users, alternating."""
    rounds, measure_s = QUICK_ROUNDS if quick else FULL_ROUNDS
    users = 2 * USERS
    runs: dict[int, list[Run]] = {1: [], 2: []}
    with fast_endpoint(SERVER_CORE) as endpoint:
        for _ in range(rounds):
            for workers in (1, 2):
                runs[workers].append(
                    memsweep_run(
                        endpoint, workers=workers, users=users, measure_s=measure_s, core=None
                    )
                )
    one, two = median([r.window.rps for r in runs[1]]), median([r.window.rps for r in runs[2]])
    ratio = two / one

    def per_request(workers: int) -> str:
        return ", ".join(
            f"{role} {_cpu_ms_per_request(runs[workers], role):.3f}"
            for role in ("workers", "server", "master")
        )

    cpu_two = sum(_cpu_ms_per_request(runs[2], role) for role in ("workers", "server", "master"))
    used = median([sum(r.window.cpu_s.values()) / r.window.seconds for r in runs[2]])
    others = _others(runs[2])
    cores = os.cpu_count() or 2
    ceiling = (cores - others) * 1000 / cpu_two
    return Figure(
        name="local workers: req/s with 2 / with 1 (fast endpoint, same machine)",
        goal="≥ 1.7×",
        value=ratio,
        unit="x",
        passed=ratio >= 1.7,
        detail=f"median {two:.0f} vs {one:.0f} req/s ({rounds} alternating rounds of "
        f"{measure_s:.0f} s, {users} users; rounds {_rates(runs[2])} vs {_rates(runs[1])}); "
        f"CPU ms per request, 2 workers: {per_request(2)}; 1 worker: {per_request(1)}; other "
        f"processes kept {_others(runs[1] + runs[2]):.2f} cores busy",
        why_missed=f"the workers, {endpoint.kind} and the master share {cores} cores with other "
        f"processes, which kept {others:.2f} cores busy during the 2-worker windows; ours kept "
        f"{used:.2f} busy at {cpu_two:.3f} ms of CPU per request together ({per_request(2)}), "
        f"so what was left tops out near {ceiling:.0f} req/s however many workers; 1.7× of "
        f"1 worker's {one:.0f} req/s would need {1.7 * one:.0f} req/s, i.e. "
        f"{1.7 * one * cpu_two / 1000:.2f} free cores",
    )
