"""The runner's client of the local stack: a child process, driven through its control API.

The runner's Locust master runs under gevent; the local stack runs asyncio. Keeping the
stack in its own process keeps the two event loops apart and lets a crash of either be
seen by the other. The wire (paths, token header, documents) is runner/control_api.py's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from runner.children import detached_but_tied, first_line, stderr_tail
from runner.control_api import (
    CALIBRATE_PATH,
    DELIVERY_PATH,
    HANDLER_PATH,
    MEMORY_PATH,
    RESET_TABLE_PATH,
    STATUS_PATH,
    TOKEN_HEADER,
    ApiUrls,
    Delivery,
    StackReady,
    StackStatus,
    parse_delivery,
    parse_ready,
    parse_status,
)
from runner.errors import SetupError
from runner.stack import PROJECT_ROOT

READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0
# A memory change drains in-flight calls (up to the function timeout) and recalibrates.
CONTROL_TIMEOUT_S = 120.0
# A read (status, CPU counters) answers at once from a live stack: one that does not answer in
# this long has stopped (a SIGSTOPped stack held a step's window reads for the POST timeout).
READ_TIMEOUT_S = 10.0


class LocalStackProcess:
    """`python -m runner local --json …` in a child process; a context manager."""

    def __init__(self, args: Sequence[str] = (), *, env: dict[str, str] | None = None) -> None:
        self.args = list(args)
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self._ready: StackReady | None = None

    def __enter__(self) -> LocalStackProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "runner", "local", "--json", *self.args],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=detached_but_tied(signal.SIGTERM),
        )
        line = first_line(self.process, READY_TIMEOUT_S)
        if not line:
            why = stderr_tail(self.process)  # before stop(), which closes the pipes
            self.stop()
            raise SetupError(f"the local stack did not start: {why}")
        try:
            self._ready = _ready_line(line)
        except SetupError:
            self.stop()
            raise

    @property
    def started(self) -> bool:
        return self._ready is not None

    @property
    def ready(self) -> StackReady:
        """The stack's ready line, checked against StackReady when it arrived."""
        if self._ready is None:
            raise SetupError("the local stack has not started")
        return self._ready

    @property
    def url(self) -> str:
        """The REST API's URL."""
        return self.ready["url"]

    @property
    def urls(self) -> ApiUrls:
        """Each API type's URL: "rest" (payload format 1.0) and "http" (2.0)."""
        return self.ready["urls"]

    @property
    def api_key(self) -> str | None:
        return self.ready["api_key"]

    @property
    def log_path(self) -> str:
        return self.ready["log"]

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        return headers

    def _control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The control API's JSON answer; SetupError with the stack's message if it refuses."""
        if self.process is not None and process_state(self.process.pid) == "T":
            # A stopped stack (SIGSTOP, a debugger) has the kernel accept the connection and
            # never answers: the read timeout would be 10 s of nothing before anyone says so.
            raise SetupError(f"local stack unreachable ({path}): its process is stopped")
        request = urllib.request.Request(
            self.ready["control_url"] + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={TOKEN_HEADER: self.ready["control_token"]},
        )
        try:
            timeout = READ_TIMEOUT_S if method == "GET" else CONTROL_TIMEOUT_S
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            message = json.loads(exc.read() or b"{}").get("message", str(exc))
            raise SetupError(f"local stack refused {path}: {message}") from None
        except OSError as exc:
            raise SetupError(f"local stack unreachable ({path}): {exc}") from None

    def _status(self, method: str, path: str, body: dict[str, Any] | None = None) -> StackStatus:
        answer = self._control(method, path, body)
        return parse_status(answer, source=f"local stack {method} {path}")

    def status(self) -> StackStatus:
        return self._status("GET", STATUS_PATH)

    def delivery(self) -> Delivery:
        """Cumulative CPU delivery of the stack's sandboxes, parsed strictly."""
        answer = self._control("GET", DELIVERY_PATH)
        return parse_delivery(answer, source=f"local stack GET {DELIVERY_PATH}")

    def calibrate(self, memory_sizes: list[int]) -> StackStatus:
        """Measure the CPU share of these sizes up front (cached by the stack)."""
        return self._status("POST", CALIBRATE_PATH, {"memory_mb": memory_sizes})

    def set_memory(self, memory_mb: int) -> StackStatus:
        """Drain, replace every sandbox at the new size; returns the new status."""
        return self._status("POST", MEMORY_PATH, {"memory_mb": memory_mb})

    def set_handler(self, handler: str) -> StackStatus:
        """Drain, replace every sandbox running `handler` (module.function); the stack refuses
        an unknown one with one line and changes nothing."""
        return self._status("POST", HANDLER_PATH, {"handler": handler})

    def reset_table(self) -> StackStatus:
        """Drop and re-create the table in the stack's dynalite (no API request spent)."""
        return self._status("POST", RESET_TABLE_PATH, {})

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Stop the stack (SIGTERM: it stops its sandboxes and dynalite); its exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            os.kill(process.pid, sig)
            # A stopped stack handles its SIGTERM only once continued (systemd sends SIGCONT
            # after SIGTERM for the same reason): it then stops its sandboxes and dynalite
            # itself, instead of being killed after STOP_TIMEOUT_S.
            os.kill(process.pid, signal.SIGCONT)
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if process.poll() is None:
                process.kill()
        returncode = process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        return returncode


def process_state(pid: int) -> str | None:
    """The process's state letter from /proc (R, S, D, T, Z, ...); None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[0]  # after "(comm)", which may hold spaces


def _ready_line(line: bytes) -> StackReady:
    """The stack's first line, parsed once: SetupError naming what is wrong with it."""
    where = "the local stack's ready line"
    try:
        document = json.loads(line)
    except ValueError:
        raise SetupError(f"{where} is not JSON: {line[:80]!r}") from None
    return parse_ready(document, source=where)


__all__ = ["LocalStackProcess", "process_state"]
