"""Workers join fast and fail clearly: real master and worker processes on loopback.

A worker waits for its master a bounded time (`runner worker --master-wait`), joins it when it
appears within that time (pods on a cluster start in any order), and otherwise exits 3 with one
line; a master waits for its workers a bounded time (`--worker-wait`) and fails naming how many
joined. Every process ends by itself.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from runner.results import read_results
from runner.stack import PROJECT_ROOT
from tests.test_local_stack import wait_until

# Short bounds, so each test takes seconds; process start on a busy 2-core machine is the rest.
MASTER_WAIT_S = 3
WORKER_WAIT_S = 5
START_ALLOWANCE_S = 12

SCENARIO = """\
name: join
target: {{kind: url, url: "{url}"}}
sweep: {{memory_mb: [128], settle_s: 0, warmup_s: 0.5}}
load:
  stages: [{{users: 4, duration_s: 3.5}}]
  think_time: {{min_s: 0.01, max_s: 0.03}}
requests:
  - name: echo
    body: {{operation: echo, payload: {{k: v}}}}
workers: {{local: 0}}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(command: list[str], log: Path) -> subprocess.Popen[str]:
    """A command in its own session (a pod's process), stderr to `log`."""
    return subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        text=True,
        start_new_session=True,
    )


def runner(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "runner", *arguments]


def worker(
    port: int, log: Path, *, host: str = "127.0.0.1", wait: float, hosts: Path | None = None
) -> subprocess.Popen[str]:
    """`runner worker`; with `hosts`, that file is its /etc/hosts (its own mount namespace)."""
    command = runner(
        *("worker", "--master-host", host, "--master-port", str(port), "--master-wait", f"{wait}")
    )
    if hosts is not None:
        bind = 'mount --bind "$0" /etc/hosts && exec "$@"'
        command = ["unshare", "--mount", "sh", "-c", bind, str(hosts), *command]
    return start(command, log)


def memsweep_lines(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.startswith("memsweep:")]


def session_gone(process: subprocess.Popen[str]) -> bool:
    """Nothing is left of the process or anything it started (its session's group)."""
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return True
    return False


def stop(*processes: subprocess.Popen[str]) -> None:
    """After a failed assertion: leave nothing behind."""
    for process in processes:
        if not session_gone(process):
            os.killpg(process.pid, 9)
        process.wait(timeout=10)


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Without it a keep-alive client meets delayed ACKs (docs/ARCHITECTURE.md, 4.4).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/DynamoDBManager"
    server.shutdown()
    server.server_close()


def master(
    tmp_path: Path, url: str, port: int, *, expect: int, wait: float
) -> subprocess.Popen[str]:
    scenario = tmp_path / "join.yaml"
    scenario.write_text(SCENARIO.format(url=url))
    return start(
        runner(
            *("run", str(scenario), "--out", str(tmp_path / "reports"), "--run-id", "test"),
            *("--quiet", "--master-port", str(port), "--expect-workers", str(expect)),
            *("--worker-wait", f"{wait}"),
        ),
        tmp_path / "master.log",
    )


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("127.0.0.1", "nothing listens on that port"),
        # RFC 2606: .invalid never resolves (a Service name before its pod runs looks the same).
        ("memsweep-master.invalid", "memsweep-master.invalid does not resolve"),
    ],
)
def test_given_no_master_then_a_worker_exits_3_within_its_bound_in_one_line(
    tmp_path: Path, host: str, why: str
) -> None:
    port = free_port()
    log = tmp_path / "worker.log"
    started = time.monotonic()
    process = worker(port, log, host=host, wait=MASTER_WAIT_S)
    try:
        code = process.wait(timeout=MASTER_WAIT_S + START_ALLOWANCE_S)
    finally:
        stop(process)
    elapsed = time.monotonic() - started
    assert code == 3, log.read_text()
    assert MASTER_WAIT_S <= elapsed < MASTER_WAIT_S + START_ALLOWANCE_S
    (line,) = memsweep_lines(log)
    assert line.startswith(
        f"memsweep: could not reach the Locust master at {host}:{port} after {MASTER_WAIT_S} s: "
    ), line
    assert why in line and "--master-wait" in line
    # Locust's own ending (5 minutes, exit 255, no reason) is not reached.
    assert "Failed to connect to the Locust master" not in log.read_text()
    assert "Traceback" not in log.read_text()
    assert session_gone(process)


# A name that resolves only once the master is up, as a Kubernetes Service's does.
LATE_NAME = "memsweep-master-late"
PRIVATE_HOSTS = (
    ""
    if os.geteuid() == 0 and shutil.which("unshare")
    else "a private /etc/hosts needs root and unshare"
)


@pytest.mark.parametrize(
    "late_name",
    [
        pytest.param(False, id="address"),
        pytest.param(
            True,
            id="name-resolving-late",
            marks=pytest.mark.skipif(bool(PRIVATE_HOSTS), reason=PRIVATE_HOSTS),
        ),
    ],
)
def test_given_a_worker_started_before_its_master_then_it_joins_when_the_master_appears(
    tmp_path: Path, endpoint: str, late_name: bool
) -> None:
    port = free_port()
    hosts = tmp_path / "hosts"
    hosts.write_text(Path("/etc/hosts").read_text())
    early = worker(
        port,
        tmp_path / "worker.log",
        host=LATE_NAME if late_name else "127.0.0.1",
        wait=60,
        hosts=hosts if late_name else None,
    )
    time.sleep(3)  # started, dialling a port nobody listens on (or a name that does not resolve)
    assert early.poll() is None, (tmp_path / "worker.log").read_text()
    with hosts.open("a") as appended:  # the same file: the worker's bind mount sees it
        appended.write(f"\n127.0.0.1 {LATE_NAME}\n")
    run = master(tmp_path, endpoint, port, expect=1, wait=WORKER_WAIT_S)
    try:
        code = run.wait(timeout=90)
        worker_code = early.wait(timeout=20)  # the master tells it to quit at the end
    finally:
        stop(run, early)
    assert code == 0, (tmp_path / "master.log").read_text()
    (step,) = read_results(tmp_path / "reports" / "test" / "results.json").steps
    assert len(step.workers) == 1 and step.workers[0].requests > 0
    assert worker_code == 0, (tmp_path / "worker.log").read_text()
    assert not memsweep_lines(tmp_path / "worker.log")
    assert session_gone(run) and session_gone(early)


def test_given_three_workers_expected_and_one_arriving_then_the_master_fails_naming_1_of_3(
    tmp_path: Path,
) -> None:
    port = free_port()
    # The target is never sent a request: the run fails before its first step.
    started = time.monotonic()
    run = master(tmp_path, "http://127.0.0.1:9/", port, expect=3, wait=WORKER_WAIT_S)
    one = worker(port, tmp_path / "worker.log", wait=30)
    try:
        code = run.wait(timeout=WORKER_WAIT_S + START_ALLOWANCE_S)
        elapsed = time.monotonic() - started
        worker_code = one.wait(timeout=20)  # told to quit by the failing master
    finally:
        stop(run, one)
    log = (tmp_path / "master.log").read_text()
    assert code == 3, log
    assert WORKER_WAIT_S <= elapsed < WORKER_WAIT_S + START_ALLOWANCE_S
    (line,) = memsweep_lines(tmp_path / "master.log")
    assert f"expected 3 Locust workers (0 local, 3 remote) on 127.0.0.1:{port}" in line, line
    assert f"1 arrived within {WORKER_WAIT_S} s (--worker-wait waits longer)" in line, line
    assert "Traceback" not in log
    assert worker_code == 0
    assert wait_until(lambda: session_gone(run) and session_gone(one), 10)
    assert read_results(tmp_path / "reports" / "test" / "results.json").status == "failed"
