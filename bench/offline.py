"""The repo's handler.py under serverless-offline 13.10.1, the baseline for the local stack.

serverless-offline is the local tool users would otherwise pick. `serverless_offline()`
starts it (CLI: osls 4.3.1, the MIT fork of Serverless v3) on free loopback ports from
bench/serverless_offline/, waits until the function answers a ping, yields the URL of
`POST /DynamoDBManager` and stops the whole process group on exit:

    from bench.offline import ensure_installed, serverless_offline

    ensure_installed()  # npm ci in bench/serverless_offline if node_modules is missing
    with serverless_offline() as url:
        ...  # POST {"operation": "echo", "payload": {...}} to url

    with running_serverless_offline() as server:  # the same, with the server's process
        ...  # server.url; server.pid is node's, the parent of every Lambda instance

How it runs Python (serverless-offline's PythonRunner): each Lambda instance is one
persistent `sh -c "python3 -u invoke.py handler lambda_handler"` process fed one JSON event
per line on stdin; the executable is the runtime name up to its first dot (`python3` for
python3.12), looked up on PATH, with $VIRTUAL_ENV/bin put first when that is set. To run the
handler on the interpreter running this module (which has boto3), the server gets a PATH
whose first entry holds a `python3` wrapper that execs `sys.executable`, and no VIRTUAL_ENV.
A second instance (a second process, with its own cold start) is spawned only when a request
arrives while every instance is busy; idle instances are stopped after 60 s.

The function needs no DynamoDB for echo/ping: handler.py builds its boto3 resource at import
without a network call, so dummy credentials and a region are enough.
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

SERVICE_DIR = Path(__file__).resolve().parent / "serverless_offline"
SERVERLESS_BIN = SERVICE_DIR / "node_modules" / ".bin" / "serverless"
ROUTE = "/DynamoDBManager"
HOST = "127.0.0.1"
PING_BODY = b'{"operation":"ping"}'

# Variables that would send the handler's boto3 somewhere other than a dummy account, or make
# serverless-offline prepend another interpreter to PATH.
_DROPPED_ENV = ("VIRTUAL_ENV", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN")
_DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "x",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


class OfflineStartError(RuntimeError):
    """serverless-offline exited or did not answer a ping in time."""


def ensure_installed(*, quiet: bool = True) -> None:
    """Run `npm ci` in bench/serverless_offline when its node_modules is missing.

    The tree comes from the committed package-lock.json (and .npmrc, which keeps npm from
    auto-installing serverless-offline's `serverless` v3 peer next to osls).
    """
    if SERVERLESS_BIN.exists():
        return
    output = subprocess.DEVNULL if quiet else None
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"],
        cwd=SERVICE_DIR,
        env={**os.environ, "SLS_TELEMETRY_DISABLED": "1"},
        stdout=output,
        check=True,
    )
    if not SERVERLESS_BIN.exists():
        raise OfflineStartError(f"npm ci ran but {SERVERLESS_BIN} is still missing")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _check_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As node binds: TIME_WAIT leftovers don't count, a live listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            raise OfflineStartError(f"port {port} on {HOST} is not free: {exc}") from None


def _python_shim(directory: Path, python: str) -> None:
    """Write `python3` (the name serverless-offline spawns for python3.x) exec'ing `python`."""
    shim = directory / "python3"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(python)} "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _server_env(shim_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _DROPPED_ENV}
    env.update(_DUMMY_AWS_ENV)
    env["SLS_TELEMETRY_DISABLED"] = "1"
    env["PATH"] = os.pathsep.join([str(shim_dir), env.get("PATH", os.defpath)])
    return env


def _tail(stream: IO[bytes], limit: int = 4000) -> str:
    stream.flush()
    stream.seek(0, os.SEEK_END)
    size = stream.tell()
    stream.seek(max(0, size - limit))
    return stream.read().decode("utf-8", "replace")


def _ping(port: int, timeout: float) -> int:
    """Status of one POST ping; raises OSError while the server is not up."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("POST", ROUTE, body=PING_BODY, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read()
    finally:
        conn.close()
    if response.status == 200:
        try:
            pong = json.loads(body) == "pong"
        except ValueError:
            pong = False
        if not pong:
            raise OfflineStartError(f'ping answered 200 with {body[:200]!r}, expected "pong"')
    return response.status


def _group_members(pgid: int) -> dict[int, int]:
    """{pid: parent pid} of the processes in group pgid (zombies included), from /proc."""
    members: dict[int, int] = {}
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():  # not Linux: the killpg calls in _stop still do the job
        return members
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_line = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after "(comm)": state, ppid, pgrp, ...; comm itself may hold spaces.
        fields = stat_line[stat_line.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            members[int(entry.name)] = int(fields[1])
    return members


def _wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Stop the server's process group (node, each `sh -c`, each python3), leaving nothing.

    Grandchildren first: node kills only the `sh -c` around each Python process, and a
    process whose parent exits first is handed to PID 1 and lingers as a zombie until PID 1
    reaps it. Stopping the Python processes while node and sh still run lets sh reap Python,
    exit, and be reaped by node. Then node gets SIGTERM (its own shutdown), and SIGKILL
    sweeps the group if anything stays.
    """
    pgid = proc.pid
    for pid, parent in _group_members(pgid).items():
        if pid != pgid and parent != pgid:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    _wait_until(lambda: set(_group_members(pgid)) <= {pgid}, timeout=2.0)
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    proc.wait()
    # Anything left was orphaned mid-shutdown: bounded wait for PID 1 to reap it.
    _wait_until(lambda: not _group_members(pgid), timeout=5.0)


@dataclass(frozen=True)
class OfflineServer:
    """A running serverless-offline: its function's URL and its main (node) process."""

    url: str  # POST /DynamoDBManager
    pid: int  # node, the process group's leader; each Lambda instance is a descendant


@contextmanager
def serverless_offline(
    port: int | None = None,
    *,
    startup_timeout: float = 60.0,
    python: str | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[str]:
    """running_serverless_offline(), yielding only the URL of POST /DynamoDBManager."""
    with running_serverless_offline(
        port, startup_timeout=startup_timeout, python=python, extra_args=extra_args
    ) as server:
        yield server.url


@contextmanager
def running_serverless_offline(
    port: int | None = None,
    *,
    startup_timeout: float = 60.0,
    python: str | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[OfflineServer]:
    """Run serverless-offline on 127.0.0.1 and yield its URL of POST /DynamoDBManager and pid.

    port: the HTTP (API Gateway) port, a free one when None. The Lambda invoke API gets
    another free port. startup_timeout bounds the wait for the first 200 "pong", which also
    warms one Lambda instance (its Python process and the import of handler.py). python: the
    interpreter that runs the handler, sys.executable when None. extra_args go to `serverless
    offline start` as they are, e.g. "--noTimeout" ("--reloadHandler" makes every request a
    new Python process and cold start). The server's stdout and stderr go to a temporary file
    whose tail is in the error when it fails to start. Nothing is installed here: call
    ensure_installed() first. On exit the whole process group is stopped, with no orphan or
    zombie left behind.
    """
    if not SERVERLESS_BIN.exists():
        raise OfflineStartError(f"{SERVERLESS_BIN} is missing: call ensure_installed() first")
    if port is not None:
        _check_free(port)
    http_port = free_port() if port is None else port
    lambda_port = free_port()
    while lambda_port == http_port:
        lambda_port = free_port()
    command = [
        str(SERVERLESS_BIN),
        "offline",
        "start",
        "--host",
        HOST,
        "--httpPort",
        str(http_port),
        "--lambdaPort",
        str(lambda_port),
        "--noPrependStageInUrl",
        "--noSponsor",
        *extra_args,
    ]
    with (
        tempfile.TemporaryDirectory(prefix="memsweep-offline-") as tmp,
        tempfile.TemporaryFile() as log,
    ):
        shim_dir = Path(tmp)
        _python_shim(shim_dir, python or sys.executable)
        # Output goes to a file, never a pipe: serverless-offline logs every request, and an
        # undrained pipe would stall it under load.
        proc = subprocess.Popen(
            command,
            cwd=SERVICE_DIR,
            env=_server_env(shim_dir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + startup_timeout
            status: int | None = None
            while True:
                if proc.poll() is not None:
                    raise OfflineStartError(
                        f"serverless-offline exited with {proc.returncode} before answering;"
                        f" output tail:\n{_tail(log)}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise OfflineStartError(
                        f"serverless-offline did not answer POST {ROUTE} ping with 200 within"
                        f" {startup_timeout:g} s (last status {status});"
                        f" output tail:\n{_tail(log)}"
                    )
                try:
                    status = _ping(http_port, timeout=max(0.1, min(remaining, 10.0)))
                except (OSError, http.client.HTTPException):
                    status = None
                if status == 200:
                    break
                time.sleep(0.1)
            yield OfflineServer(url=f"http://{HOST}:{http_port}{ROUTE}", pid=proc.pid)
        finally:
            _stop(proc)
