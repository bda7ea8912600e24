"""Any HTTP endpoint: no memory control, memory sizes are labels only."""

from __future__ import annotations

import os
from typing import Any

from runner.errors import BadInput
from runner.lambda_logs import Phases
from runner.results import Fidelity, Invocations, OutsideWindow, TargetInfo
from runner.scenario import UrlTarget


class UrlOnlyTarget:
    kind = "url"

    def __init__(self, spec: UrlTarget) -> None:
        self.spec = spec
        self._memory: int | None = None
        self._api_key = spec.api_key
        if spec.api_key_env is not None:
            self._api_key = os.environ.get(spec.api_key_env)
            if not self._api_key:
                raise BadInput(f"target.api_key_env: ${spec.api_key_env} is not set or empty")

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    @property
    def url(self) -> str:
        return self.spec.url

    def headers(self) -> dict[str, str]:
        return {"x-api-key": self._api_key} if self._api_key else {}

    def set_memory(self, memory_mb: int) -> None:
        self._memory = memory_mb  # a label: nothing to change

    def current_memory(self) -> int | None:
        return self._memory

    def restore(self) -> None:
        return None

    def prepare(self, memory_sizes: list[int]) -> None:
        return None

    def mark(self, at: float) -> None:
        return None

    def invocations(self, phases: Phases) -> tuple[Invocations, OutsideWindow]:
        source = "none: a url target has no access to the function's logs"
        return Invocations(source=source), OutsideWindow()

    def delivery(self) -> dict[str, Any] | None:
        return None

    def fidelity(self) -> Fidelity:
        return Fidelity(mode="none", level="none")

    def info(self) -> TargetInfo:
        return TargetInfo(
            kind="url", url=self.url, description="memory sizes are labels only (no control)"
        )

    def alive(self) -> str | None:
        return None
