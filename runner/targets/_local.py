"""The local stack as a target: started as a child process, memory and handler set through its
control API, either API type's URL. The architecture is this host's: the other one is refused."""

from __future__ import annotations

import contextlib
import http.client
import platform
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

from runner.control_api import Delivery, StackReady, StackStatus, handler_problem
from runner.errors import BadInput, MemsweepError
from runner.invocations import Phases, attribute
from runner.lambda_facts import API_NAMES, API_TYPES, ARCHITECTURES, DEFAULT_API
from runner.results import Fidelity, Invocations, OutsideWindow, TargetInfo
from runner.scenario import LocalTarget
from runner.stack import PROJECT_ROOT, RateLimit
from runner.targets._base import Target
from runner.targets._local_client import LocalStackProcess, process_state

# The instruction set the sandboxes run on: this host's CPU, whatever serverless.yml says.
# A front that does not answer a GET (refused without invoking the function: 403 or 404) in
# this long, after the step's load has ended, has stopped answering.
FRONT_PROBE_S = 3.0
_MACHINES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}
HOST_ARCHITECTURE = _MACHINES.get(platform.machine().lower(), platform.machine().lower())


class LocalStackTarget(Target):
    kind = "local"

    def __init__(
        self,
        spec: LocalTarget,
        *,
        run_dir: str,
        params: Mapping[str, str] | None = None,
        memory_mb: int | None = None,
    ) -> None:
        self.spec = spec
        self.memory_mb = memory_mb  # the size to start at (default: serverless.yml's)
        # serverless.yml params for the stack (e.g. throttleRate), as `--param` gives them.
        self.params = dict(params or {})
        self.log_path = Path(run_dir) / "lambda.log"
        self.stack: LocalStackProcess | None = None
        self._status: StackStatus | None = None  # as the stack last answered it
        # Where each step's log starts (marked before its seeding), so a step reads only
        # its own part of a log that grows for the whole run. Which invocation belongs to
        # which phase is decided per request (runner/invocations.py), not by these offsets.
        self._marks: list[tuple[float, int]] = []
        self._api: str = DEFAULT_API  # which front's URL the load goes to (set_api)
        self._started_handler: str | None = None  # restore() puts it back

    def start(self) -> None:
        args = [
            "--log",
            str(self.log_path),
            "--concurrency",
            str(self.spec.concurrency),
            "--latency-ms",
            str(self.spec.latency_ms),
        ]
        if self.memory_mb is not None:
            args += ["--memory", str(self.memory_mb)]
        if self.spec.handler:
            args += ["--handler", self.spec.handler]
        if self.spec.code_dir:
            args += ["--code-dir", self.spec.code_dir]
        if self.spec.integration:
            args += ["--integration", self.spec.integration]
        if not self.spec.calibrate:
            args.append("--no-calibrate")
        for name, value in self.params.items():
            args += ["--param", f"{name}={value}"]
        self.stack = LocalStackProcess(args)
        self.stack.start()
        self._status = self.stack.ready
        self._started_handler = self.stack.ready["handler"]

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.stop()
            self.stack = None

    @property
    def url(self) -> str:
        """The URL of the API type set_api chose (the REST API until then)."""
        assert self.stack is not None
        return self.stack.urls["http" if self._api == "http" else "rest"]

    def headers(self) -> dict[str, str]:
        assert self.stack is not None
        return {"x-api-key": self.stack.api_key} if self.stack.api_key else {}

    def set_memory(self, memory_mb: int) -> None:
        assert self.stack is not None
        self._status = self.stack.set_memory(memory_mb)

    # --- the axes beside memory -------------------------------------------------------------

    judges_axes_unstarted = True

    def refuses(self, axis: str, value: str) -> str | None:
        """Both API types and any handler in the code directory; only this host's
        architecture, since speed is what a sweep measures."""
        if axis == "api":
            if value in API_TYPES:
                return None
            return f"api {value!r}: the local stack serves {' and '.join(API_TYPES)} APIs"
        if axis == "architecture":
            if value == HOST_ARCHITECTURE:
                return None
            if value in ARCHITECTURES:
                return (
                    f"architecture {value}: the local stack runs the function on this host's "
                    f"{HOST_ARCHITECTURE} CPU, so it cannot measure {value} speed; sweep the "
                    "architecture on AWS (target kind aws)"
                )
            return f"architecture {value!r} is not Lambda's: {' or '.join(ARCHITECTURES)}"
        if axis == "handler":
            return handler_problem(value, self._code_dir())
        return super().refuses(axis, value)

    def set_api(self, api: str) -> None:
        problem = self.refuses("api", api)
        if problem is not None:
            raise BadInput(problem)
        self._api = api

    def set_architecture(self, architecture: str) -> None:
        """Nothing to apply for this host's architecture; the other is refused."""
        problem = self.refuses("architecture", architecture)
        if problem is not None:
            raise BadInput(problem)

    def set_handler(self, handler: str) -> None:
        """Every sandbox is replaced; the next requests cold-start with `handler`."""
        assert self.stack is not None
        problem = self.refuses("handler", handler)
        if problem is not None:
            raise BadInput(problem)
        self._status = self.stack.set_handler(handler)

    def restore(self) -> None:
        """The REST API and the handler the stack started with; nothing to do once it stopped."""
        self._api = DEFAULT_API
        started = self._started_handler
        if self.stack is None or self._status is None or started is None:
            return
        if self._status["handler"] != started and self.alive() is None:
            # The stack may die meanwhile: then it runs nothing to put back.
            with contextlib.suppress(MemsweepError):
                self._status = self.stack.set_handler(started)

    def _code_dir(self) -> Path:
        """Where the stack looks up handler modules (as the child resolves --code-dir)."""
        ready = self._ready()
        if ready is not None:
            return Path(ready["code_dir"])
        return (PROJECT_ROOT / (self.spec.code_dir or ".")).resolve()

    # --- capabilities -----------------------------------------------------------------------

    def rate_limit(self) -> RateLimit | None:
        """The usage plan the stack enforces, as it resolved it from serverless.yml."""
        ready = self._ready()
        plan = ready["usage_plan"] if ready is not None else None
        if plan is None:
            return None
        return RateLimit(rate=plan["rate"], burst=plan["burst"])

    def clear_table(self) -> bool:
        """Drop and re-create the table in the stack's own dynalite; False when the stack
        uses another DynamoDB endpoint (then the table is emptied through the API)."""
        ready = self._ready()
        if self.stack is None or ready is None or not ready["dynalite_pid"]:
            return False
        self._status = self.stack.reset_table()
        return True

    def prepare(self, memory_sizes: list[int]) -> None:
        """Calibrate every size of the sweep before the first step, not between steps."""
        if self.stack is not None and self.spec.calibrate:
            self.stack.calibrate(sorted(set(memory_sizes)))

    def mark(self, at: float) -> None:
        size = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._marks.append((at, size))

    def invocations(self, phases: Phases) -> tuple[Invocations, OutsideWindow]:
        begin = max((offset for at, offset in self._marks if at <= phases.load_started), default=0)
        if not self.log_path.exists():
            return Invocations(source="local log (missing)"), OutsideWindow()
        with open(self.log_path, "rb") as handle:
            handle.seek(begin)
            chunk = handle.read()
        lines = chunk.decode(errors="replace").splitlines()
        return attribute(((None, line) for line in lines), phases, "local log")

    def delivery(self) -> Delivery | None:
        if self.stack is None:
            return None
        try:
            return self.stack.delivery()
        except MemsweepError:
            if self.alive() is None:
                raise  # it answered, but not a Delivery: a bug to show, never a missing figure
            # The stack died mid-step: alive() names that; a missing trust figure must not
            # mask it (the step has no CPU figure to judge, and says so).
            return None

    def fidelity(self) -> Fidelity:
        status = self._status
        if status is None:
            return Fidelity(mode="unknown", level="full")
        return Fidelity(
            mode=status["cgroup"],
            level="degraded" if status["fidelity"] == "degraded" else "full",
            cpu_share_nominal=status["cpu_share_nominal"],
            cpu_share_measured=status["cpu_share_measured"],
            cpu_quota_correction=status["cpu_quota_correction"],
            calibration_refused=status["calibration_refused"],
        )

    def info(self) -> TargetInfo:
        ready = self._ready()
        if ready is None:
            return TargetInfo(kind="local", url="", description="local stack (not started)")
        status = self._status or ready
        return TargetInfo(
            kind="local",
            url=self.url,
            function=ready["function"] or None,
            architecture=ready["architecture"] or None,
            description=f"local stack ({status['handler']}, {ready['cgroup']})",
        )

    def alive(self) -> str | None:
        """None while every part of the stack runs; else which part stopped: the stack's
        process, DynamoDB (dynalite, its own process: killed mid-step, 628 of 662 requests
        failed with HTTP 500 and the run called it a memory verdict, "no size met the
        thresholds"), or a front that no longer answers. The sandbox pool is watched in each
        step's CPU record (a sandbox the host could not start fails the step)."""
        if self.stack is None or self.stack.process is None:
            return "the local stack is not running"
        process = self.stack.process
        code = process.poll()
        if code is not None:
            return f"the local stack exited (code {code})"
        if process_state(process.pid) == "T":
            return f"the local stack (pid {process.pid}) is stopped (SIGSTOP)"
        ready = self._ready()
        pid = ready["dynalite_pid"] if ready is not None else None
        if pid is not None:
            state = process_state(pid)
            if state is None or state in "ZX":
                return f"DynamoDB (the local stack's dynalite, pid {pid}) exited"
            if state == "T":
                return f"DynamoDB (the local stack's dynalite, pid {pid}) is stopped (SIGSTOP)"
        urls = ready["urls"] if ready is not None else None
        fronts = {"rest": urls["rest"], "http": urls["http"]} if urls is not None else {}
        for api, url in fronts.items():
            silent = _front_silent(url)
            if silent is not None:
                return f"the local stack's {API_NAMES.get(api, api)} front ({url}) {silent}"
        return None

    def _ready(self) -> StackReady | None:
        """The stack's ready line; None before it started (or when it could not)."""
        return self.stack.ready if self.stack is not None and self.stack.started else None


def _front_silent(url: str) -> str | None:
    """None if the front at `url` answers a GET (any status: a front refuses it without
    invoking the function); else what happened instead."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port, timeout=FRONT_PROBE_S
    )
    try:
        connection.request("GET", parts.path or "/")
        connection.getresponse().read()
    except TimeoutError:
        return f"did not answer within {FRONT_PROBE_S:g} s"
    except OSError as exc:
        why = exc.strerror or repr(exc)
        return f"stopped answering ({why})"
    except http.client.HTTPException as exc:
        return f"stopped answering ({exc!r})"
    finally:
        connection.close()
    return None


__all__ = ["LocalStackTarget"]
