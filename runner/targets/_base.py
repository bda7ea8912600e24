"""The interface every target implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from runner.control_api import Delivery
from runner.invocations import Phases
from runner.lambda_facts import DEFAULT_API
from runner.results import Fidelity, Invocations, OutsideWindow, TargetInfo, WindowMetrics
from runner.stack import RateLimit


class Target(ABC):
    """Where the load goes and how memory is changed; a context manager.

    `with target:` starts it and stops it whatever happens (also when start() fails half way):
    whatever starts a process owns stopping it. The defaults suit a target with nothing to do
    at that point (no process, no memory to restore, no CPU accounting).
    """

    kind: str

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Bring the target up (or find it) and remember its original configuration."""
        return None

    def stop(self) -> None:
        """Release what start() acquired; never raises."""
        return None

    @property
    @abstractmethod
    def url(self) -> str: ...

    def headers(self) -> dict[str, str]:
        """Headers every request needs (the API key)."""
        return {}

    @abstractmethod
    def set_memory(self, memory_mb: int) -> None:
        """Apply a memory size and return once it is live (no load before that)."""

    def restore(self) -> None:
        """Put the original configuration back (memory, architecture, handler); safe to call
        twice."""
        return None

    # --- the axes beside memory ------------------------------------------------------------
    # A sweep point is (memory, api, architecture, handler). Before the first step the sweep
    # asks `refuses` about every value the plan needs, so a run that cannot be done stops
    # (exit 2) before any load; then for each step it calls set_api, set_architecture,
    # set_handler (only for the axes the scenario sweeps) and set_memory, in that order.

    # True when `refuses` needs nothing the target learns by starting (the local stack: its
    # axes are facts of this host and the code directory); the sweep then asks before start.
    judges_axes_unstarted = False

    def refuses(self, axis: str, value: str) -> str | None:
        """None if this target can run `value` on `axis` ("api", "architecture" or
        "handler"), else one line saying why not (e.g. arm64 on the local stack)."""
        if axis == "api" and value == DEFAULT_API:
            return None
        return f"the {self.kind} target cannot change {axis} (asked for {value})"

    def set_api(self, api: str) -> None:
        """Send the following load to this API type's URL (`url` follows)."""
        if api != DEFAULT_API:
            raise ValueError(f"the {self.kind} target has no {api} API")

    def set_architecture(self, architecture: str) -> None:
        """Apply an instruction set architecture and return once it is live."""
        raise ValueError(f"the {self.kind} target cannot change its architecture")

    def set_handler(self, handler: str) -> None:
        """Run this `module.function` from now on and return once it is live (new sandboxes:
        the next requests cold-start, as after a deploy)."""
        raise ValueError(f"the {self.kind} target cannot change its handler")

    def concurrency_limit(self) -> tuple[int | None, str]:
        """The most calls the function can run at once, and whose limit that is; (None, why)
        when it could not be read, (None, "") when the target has no such limit to read."""
        return None, ""

    def prepare(self, memory_sizes: list[int]) -> None:
        """Work that would otherwise fall between steps (e.g. measuring CPU shares)."""
        return None

    def mark(self, at: float) -> None:
        """Note where a step's logs begin (before its seeding): the target reads from there."""
        return None

    @abstractmethod
    def invocations(self, phases: Phases) -> tuple[Invocations, OutsideWindow]:
        """The step's invocations whose requests arrived in its measured window, and the
        others counted by phase (runner/invocations.py `attribute`)."""

    def window_metrics(
        self, phases: Phases, *, api: str | None = None, wait: bool = False
    ) -> WindowMetrics | None:
        """The service's own metrics for the step's window (CloudWatch on AWS: which layer
        throttled), else None: the local stack and a bare URL have none to read. api: the
        step's API type (None: the one in use); wait: wait for the window's last minute to be
        published (bounded), else read once."""
        return None

    def delivery(self) -> Delivery | None:
        """Cumulative CPU accounting of the function's sandboxes (local stack), else None."""
        return None

    @abstractmethod
    def fidelity(self) -> Fidelity: ...

    @abstractmethod
    def info(self) -> TargetInfo: ...

    def alive(self) -> str | None:
        """None if the target still serves, else why not."""
        return None


@runtime_checkable
class KnowsRateLimit(Protocol):
    """A target that can say what rate its API accepts (seeding paces itself to it)."""

    def rate_limit(self) -> RateLimit | None:
        """The usage plan's throttle, or None when the API has none."""


@runtime_checkable
class ClearsTable(Protocol):
    """A target that can empty its table without going through the API."""

    def clear_table(self) -> bool:
        """Empty the table directly (no API request spent); False when it cannot here."""
