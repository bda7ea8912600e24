"""The interface every target implements."""

from __future__ import annotations

from typing import Protocol

from runner.results import Fidelity, Invocations, TargetInfo


class Target(Protocol):
    kind: str

    def start(self) -> None:
        """Bring the target up (or find it) and remember its original configuration."""

    def stop(self) -> None:
        """Release what start() acquired; never raises."""

    @property
    def url(self) -> str: ...

    def headers(self) -> dict[str, str]:
        """Headers every request needs (the API key)."""

    def set_memory(self, memory_mb: int) -> None:
        """Apply a memory size and return once it is live (no load before that)."""

    def current_memory(self) -> int | None: ...

    def restore(self) -> None:
        """Put the original memory size back; safe to call twice."""

    def prepare(self, memory_sizes: list[int]) -> None:
        """Work that would otherwise fall between steps (e.g. measuring CPU shares)."""

    def mark(self, at: float) -> None:
        """Note a measured window's edge (targets whose logs carry no timestamps need it)."""

    def invocations(self, start: float, end: float) -> Invocations:
        """REPORT-line statistics for invocations in [start, end] (epoch seconds)."""

    def fidelity(self) -> Fidelity: ...

    def info(self) -> TargetInfo: ...

    def alive(self) -> str | None:
        """None if the target still serves, else why not."""
