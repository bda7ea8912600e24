"""The local stack as a child process, driven through its control API.

The runner's Locust master runs under gevent; the local stack runs asyncio. Keeping the
stack in its own process keeps the two event loops apart and lets a crash of either be
seen by the other.
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
from types import TracebackType
from typing import Any

from runner.children import detached_but_tied, first_line, stderr_tail
from runner.errors import SetupError
from runner.stack import PROJECT_ROOT

READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0
# A memory change drains in-flight calls (up to the function timeout) and recalibrates.
CONTROL_TIMEOUT_S = 120.0


class LocalStackProcess:
    """`python -m runner local --json …` in a child process; a context manager."""

    def __init__(self, args: Sequence[str] = (), *, env: dict[str, str] | None = None) -> None:
        self.args = list(args)
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}

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
        self.ready = json.loads(line)

    @property
    def url(self) -> str:
        return str(self.ready["url"])

    @property
    def api_key(self) -> str | None:
        return self.ready.get("api_key")

    @property
    def log_path(self) -> str:
        return str(self.ready["log"])

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
        request = urllib.request.Request(
            self.ready["control_url"] + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"x-memsweep-control": self.ready["control_token"]},
        )
        try:
            with urllib.request.urlopen(request, timeout=CONTROL_TIMEOUT_S) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            message = json.loads(exc.read() or b"{}").get("message", str(exc))
            raise SetupError(f"local stack refused {path}: {message}") from None
        except OSError as exc:
            raise SetupError(f"local stack unreachable ({path}): {exc}") from None

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self._control("GET", "/status")
        return status

    def delivery(self) -> dict[str, Any]:
        """Cumulative CPU delivery of the stack's sandboxes (lambda_pool.Delivery's fields)."""
        delivery: dict[str, Any] = self._control("GET", "/delivery")
        return delivery

    def calibrate(self, memory_sizes: list[int]) -> dict[str, Any]:
        """Measure the CPU share of these sizes up front (cached by the stack)."""
        status: dict[str, Any] = self._control("POST", "/calibrate", {"memory_mb": memory_sizes})
        return status

    def set_memory(self, memory_mb: int) -> dict[str, Any]:
        """Drain, replace every sandbox at the new size; returns the new status."""
        status: dict[str, Any] = self._control("POST", "/memory", {"memory_mb": memory_mb})
        return status

    def reset_table(self) -> dict[str, Any]:
        """Drop and re-create the table in the stack's dynalite (no API request spent)."""
        status: dict[str, Any] = self._control("POST", "/reset-table", {})
        return status

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Stop the stack (SIGTERM: it stops its sandboxes and dynalite); its exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            os.kill(process.pid, sig)
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
