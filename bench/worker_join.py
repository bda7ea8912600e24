"""Workers joining a master: how long N `python -m runner worker` processes take to join
memsweep's master (runner.load.Swarm) on loopback, N = 1, 4 and 8, side by side in one run.

Two orders, as pods on a cluster start in either:
- workers after the master: the time from starting N worker processes to the last one joined
  (what a run's local workers cost, and a late pod once its container starts);
- workers before the master: N workers started first and left until they idle, dialling a port
  nobody listens on; the time from the master starting to listen to the last one joined (the
  join itself, without process start: libzmq's redial backoff, capped at
  runner/load/locustfile.py REDIAL_MAX_MS, bounds it).

The master runs in a subprocess (`python -m bench.worker_join DRIVE`), because importing Locust
monkey-patches the interpreter with gevent; it prints one JSON line per case.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import CLOCK_TICKS_PER_S, Figure, median

PROJECT_ROOT = Path(__file__).resolve().parent.parent
COUNTS = (1, 4, 8)
# Repeats of each case: quick is what CI affords (~25 s on 2 cores).
QUICK_REPEATS = 1
FULL_REPEATS = 3
# The goal: workers join in seconds, not minutes (Locust's own bound is 5 minutes).
# After the master: 8 processes of two interpreter starts each on the machine's cores; before
# it: the 1 s redial cap plus one hello and its ack.
AFTER_GOAL_S = 15.0
BEFORE_GOAL_S = 2.0
# A started worker is idle (imported, dialling) once it uses less CPU than this per interval.
IDLE_CPU_S = 0.02
IDLE_INTERVAL_S = 0.5
IDLE_TIMEOUT_S = 60.0
# Workers started before the master wait this long for it; the case ends long before.
WORKER_WAIT_S = 120
DRIVER_TIMEOUT_S = 600


def worker_join(*, quick: bool) -> list[Figure]:
    repeats = QUICK_REPEATS if quick else FULL_REPEATS
    cases = _drive(repeats)
    after = {n: [c for c in cases if c["order"] == "after" and c["workers"] == n] for n in COUNTS}
    before = {n: [c for c in cases if c["order"] == "before" and c["workers"] == n] for n in COUNTS}
    after_s = {n: median([c["last_s"] for c in after[n]]) for n in COUNTS}
    first_s = {n: median([c["first_s"] for c in after[n]]) for n in COUNTS}
    before_s = {n: median([c["last_s"] for c in before[n]]) for n in COUNTS}
    idle_s = {n: median([c["idle_s"] for c in before[n]]) for n in COUNTS}
    cores = os.cpu_count() or 1
    most = COUNTS[-1]
    runs = f"median of {repeats}" if repeats > 1 else "one run each"
    slowest_before = max(before_s.values())
    return [
        Figure(
            name=f"{most} workers join a master on loopback, started after it "
            f"(`python -m runner worker`, N = {' / '.join(map(str, COUNTS))})",
            goal=f"≤ {AFTER_GOAL_S:.0f} s",
            value=after_s[most],
            unit="s",
            passed=after_s[most] <= AFTER_GOAL_S,
            detail="last joined after "
            + ", ".join(f"{after_s[n]:.2f} s for {n}" for n in COUNTS)
            + " (first after "
            + ", ".join(f"{first_s[n]:.2f}" for n in COUNTS)
            + f" s); {after_s[most] / after_s[1]:.1f}× one worker's time for {most} on "
            f"{cores} cores: each start is two interpreters (runner, then Locust) importing "
            f"Locust; {runs}",
            why_missed=f"process start dominates: {most} workers took "
            f"{after_s[most] / after_s[1]:.1f}× one's, on {cores} cores shared with other load",
        ),
        Figure(
            name="workers started before the master join once it listens "
            f"(N = {' / '.join(map(str, COUNTS))})",
            goal=f"≤ {BEFORE_GOAL_S:.0f} s",
            value=slowest_before,
            unit="s",
            passed=slowest_before <= BEFORE_GOAL_S,
            detail="last joined "
            + ", ".join(f"{before_s[n]:.2f} s for {n}" for n in COUNTS)
            + " after the master started listening; they had started "
            + ", ".join(f"{idle_s[n]:.1f}" for n in COUNTS)
            + f" s earlier and were dialling with backoff (capped at 1 s); {runs}",
            why_missed="the redial backoff is capped at 1 s: more means the master or the "
            "workers were starved of CPU when it started listening",
        ),
    ]


def _drive(repeats: int) -> list[dict[str, Any]]:
    """Run the driver subprocess; its JSON lines."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.worker_join", "DRIVE", json.dumps({"repeats": repeats})],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=DRIVER_TIMEOUT_S,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.worker_join's driver failed: {done.stderr.strip()[-2000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


# --- the driver (a subprocess: it imports Locust) ----------------------------------------


def _say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S


def _wait_idle(processes: list[subprocess.Popen[bytes]]) -> None:
    """Until every worker has started and idles, dialling (or the timeout)."""
    deadline = time.monotonic() + IDLE_TIMEOUT_S
    last = {p.pid: _cpu_s(p.pid) for p in processes}
    while time.monotonic() < deadline:
        time.sleep(IDLE_INTERVAL_S)
        now = {p.pid: _cpu_s(p.pid) for p in processes}
        if all(now[pid] - last[pid] < IDLE_CPU_S for pid in now):
            return
        last = now
    raise RuntimeError(f"workers still busy {IDLE_TIMEOUT_S:.0f} s after they started")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _end(processes: list[subprocess.Popen[bytes]]) -> None:
    """The master told them to quit; make sure they are gone."""
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _main(args: dict[str, Any]) -> None:
    import locust

    from runner.children import detached_but_tied
    from runner.load import Swarm

    joined: dict[str, float] = {}

    def on_connect(client_id: str, **_: Any) -> None:
        joined.setdefault(client_id, time.monotonic())  # a hello may arrive twice

    locust.events.worker_connect.add_listener(on_connect)  # type: ignore[no-untyped-call]
    for _ in range(args["repeats"]):
        for count in COUNTS:
            joined.clear()
            started = time.monotonic()
            with Swarm(local_workers=count) as swarm:
                last = time.monotonic() - started
                workers = list(swarm.processes)
            _end(workers)
            _say(
                order="after",
                workers=count,
                first_s=min(joined.values()) - started,
                last_s=last,
            )

            joined.clear()
            port = _free_port()  # nothing listens on it yet
            command = [sys.executable, "-m", "runner", "worker", "--master-host", "127.0.0.1"]
            command += ["--master-port", str(port), "--master-wait", str(WORKER_WAIT_S)]
            spawned = time.monotonic()
            workers = [
                subprocess.Popen(
                    [*command, "--quiet"],
                    cwd=PROJECT_ROOT,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    preexec_fn=detached_but_tied(signal.SIGTERM),
                )
                for _ in range(count)
            ]
            try:
                _wait_idle(workers)
                started = time.monotonic()
                with Swarm(local_workers=0, expect_remote=count, bind_port=port, wait_s=30):
                    last = time.monotonic() - started
            finally:
                _end(workers)
            _say(order="before", workers=count, last_s=last, idle_s=started - spawned)


if __name__ == "__main__":
    if sys.argv[1:2] == ["DRIVE"]:
        _main(json.loads(sys.argv[2]))
    else:
        for figure in worker_join(quick="--quick" in sys.argv):
            print(
                f"{figure.shown:>8}  goal {figure.goal}  {figure.name}\n          {figure.detail}"
            )
