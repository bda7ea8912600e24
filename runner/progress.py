"""A live progress line per step (rich), or plain lines in quiet mode and when not a terminal."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text


class Progress:
    def __init__(self, *, quiet: bool) -> None:
        self.console = Console(stderr=True)
        self.live_mode = not quiet and self.console.is_terminal
        self.quiet = quiet
        self.live: Live | None = None
        self._last_step = ""

    def __enter__(self) -> Progress:
        if self.live_mode:
            self.live = Live(Text(""), console=self.console, refresh_per_second=4, transient=True)
            self.live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.live is not None:
            self.live.__exit__(exc_type, exc, tb)

    def update(self, text: str) -> None:
        if self.live is not None:
            self.live.update(Text(text))
            return
        step = text.split(":", 1)[0]
        if self.quiet and step == self._last_step:
            return  # quiet: one line per step and per phase
        self._last_step = step
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)

    def done(self, sweep: Any, report: Path | None) -> None:
        """One summary line per step, and where the results are."""
        if self.live is not None:
            self.live.update(Text(""))
        for step in sweep.results.steps:
            causes = step.problems + step.trust.causes
            flag = "  [degraded: " + "; ".join(causes) + "]" if causes else ""
            p95 = f"{step.latency.p95:.1f}" if step.latency.p95 is not None else "-"
            print(
                f"step {step.index}: {step.memory_mb} MB r{step.repeat}: {step.requests} "
                f"requests, {step.rps:.1f} req/s, p95 {p95} ms, {step.failures} failed, "
                f"{step.invocations.cold_starts} cold starts"
                + (
                    f", dropped {step.dropped_arrivals} of {step.offered} offered"
                    if step.offered is not None
                    else ""
                )
                + flag,
                file=sys.stderr,
            )
        print(f"results: {sweep.results_path}", file=sys.stderr)
        if report is not None:
            print(f"report: {report}", file=sys.stderr)
        verdict = sweep.results.verdict
        if verdict is not None:  # the answer is the run's last line: the pick and how sure
            print(f"confidence: {verdict.confidence.statement}", file=sys.stderr)
            print(verdict.headline, file=sys.stderr)
