"""Loopback endpoints for the load-generator figures, and what the benchmarks read about processes.

The fast endpoint is nginx (one worker, `return 200`, stub_status counting requests) when it is
installed, else bench/tiny_server.py on uvloop + httptools. Either is pinned to one core, and
counts the requests it answered, so both sides of a comparison are counted by the same party.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.common import BENCH_DIR

NGINX_CONF = """\
worker_processes 1;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %(dir)s/body;
    proxy_temp_path %(dir)s/proxy;
    fastcgi_temp_path %(dir)s/fastcgi;
    uwsgi_temp_path %(dir)s/uwsgi;
    scgi_temp_path %(dir)s/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    tcp_nodelay on;
    server {
        listen 127.0.0.1:%(port)d;
        location = /nginx_status { stub_status; }
        location / { default_type application/json; return 200 '{"ok":true}'; }
    }
}
"""
START_TIMEOUT_S = 10.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Endpoint:
    kind: str  # "nginx" or "tiny_server"
    url: str  # where the load goes
    count: Callable[[], int]  # requests answered so far
    pid: int  # the server's (master) process

    def cpu_s(self) -> float:
        return sum(cpu_seconds(pid) for pid in [self.pid, *descendants(self.pid)])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the endpoint exited with code {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the endpoint did not listen on 127.0.0.1:{port}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
        return body


@contextmanager
def nginx(core: int) -> Iterator[Endpoint]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as scratch:
        conf = Path(scratch) / "nginx.conf"
        conf.write_text(NGINX_CONF % {"dir": scratch, "port": port})
        process = subprocess.Popen(
            [
                "taskset",
                "-c",
                str(core),
                "nginx",
                "-p",
                scratch,
                "-c",
                str(conf),
                "-g",
                "daemon off;",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for_port(port, process)
            status = f"http://127.0.0.1:{port}/nginx_status"

            def count() -> int:
                # "server accepts handled requests\n A H R": R includes these status reads.
                return int(_get(status).split(b"\n")[2].split()[2])

            yield Endpoint("nginx", f"http://127.0.0.1:{port}/dev/echo", count, process.pid)
        finally:
            _stop(process)


@contextmanager
def tiny_server(core: int, *, delay_ms: float) -> Iterator[Endpoint]:
    port = free_port()
    process = subprocess.Popen(
        [
            "taskset",
            "-c",
            str(core),
            sys.executable,
            "-m",
            "bench.tiny_server",
            str(port),
            str(delay_ms),
        ],
        cwd=BENCH_DIR.parent,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process)
        yield Endpoint(
            "tiny_server",
            f"http://127.0.0.1:{port}/dev/echo",
            lambda: int(_get(f"http://127.0.0.1:{port}/count")),
            process.pid,
        )
    finally:
        _stop(process)


@contextmanager
def fast_endpoint(core: int) -> Iterator[Endpoint]:
    """nginx if installed (apt-get install -y nginx), else the uvloop + httptools server."""
    if shutil.which("nginx"):
        with nginx(core) as endpoint:
            yield endpoint
    else:
        with tiny_server(core, delay_ms=0) as endpoint:
            yield endpoint


# --- processes -----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores, steal included), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


@dataclass
class Window:
    rps: float
    requests: int
    seconds: float
    cpu_s: dict[str, float]  # CPU seconds spent in the window, by process role
    others_s: float  # CPU seconds of every other process on the machine in the window


def measure_window(
    endpoint: Endpoint,
    *,
    warm_s: float,
    measure_s: float,
    processes: Callable[[], dict[str, list[int]]],
    timeout_s: float = 60.0,
) -> Window:
    """Wait for the load to reach the endpoint, let it warm up, then count for `measure_s`."""
    first = endpoint.count()
    deadline = time.monotonic() + timeout_s
    while endpoint.count() < first + 10:  # +2 per loop are this loop's own status reads
        if time.monotonic() > deadline:
            raise RuntimeError(f"no load reached {endpoint.url} within {timeout_s:.0f} s")
        time.sleep(0.05)
    time.sleep(warm_s)
    roles = {"server": [endpoint.pid, *descendants(endpoint.pid)], **processes()}

    def cpu() -> dict[str, float]:
        return {role: sum(cpu_seconds(pid) for pid in pids) for role, pids in roles.items()}

    busy_before, cpu_before = machine_busy_s(), cpu()
    count_before, started = endpoint.count(), time.monotonic()
    time.sleep(measure_s)
    count_after, ended = endpoint.count(), time.monotonic()
    busy_after, cpu_after = machine_busy_s(), cpu()
    requests = count_after - count_before
    spent = {role: cpu_after[role] - cpu_before[role] for role in roles}
    return Window(
        rps=requests / (ended - started),
        requests=requests,
        seconds=ended - started,
        cpu_s=spent,
        others_s=max(0.0, busy_after - busy_before - sum(spent.values())),
    )
