"""What a run shows while it runs: one live status area on a terminal, plain lines otherwise.

On a terminal (stderr is a TTY and not --quiet) one rich Live area updates in place: a
whole-run bar with an ETA, the current step and its phase, offered and achieved load, drops,
the p95 of the measured window (full-resolution histograms) and errors. Each finished step
leaves its one-line summary above the area. Piped or --quiet: stdout gets exactly one line per
finished step and the final lines; stderr only diagnostics (what is starting, when a step's
load starts, warnings, errors). Either way the run's last line is the recommendation.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.style import Style
from rich.table import Table
from rich.text import Text

from runner.analysis import Load
from runner.outputs._upload import Uploaded
from runner.results import Step
from runner.scenario import Plan

# A phase running past its estimate shows as this share of it done ("nearly"), never 100 %.
NEARLY_DONE = 0.95
# The live area redraws this often; the numbers in it change when workers report (every 3 s).
REFRESH_PER_S = 4
BAR_WIDTH = 30

StepPhase = Literal["seeding", "setting memory", "settling", "load"]


@dataclass(frozen=True, kw_only=True)
class Planned:
    """The run's plan, known before anything starts: the bar and the ETA count its steps."""

    plan: Plan  # its steps and how long each part should take (runner/scenario/_plan.py)
    offered_per_s: float | None  # open model: the arrival rate; closed model: None


@dataclass(frozen=True)
class Note:
    """A diagnostic: what is starting (the target, the workers), an interrupt."""

    text: str


@dataclass(frozen=True, kw_only=True)
class Phase:
    """A step enters a phase; "load" starts its clock (warm-up, measuring, winding down)."""

    index: int
    memory_mb: int
    repeat: int
    phase: StepPhase
    detail: str = ""
    label: str = ""  # the step's point ("512 MB · HTTP API"); "" is "<memory_mb> MB"


@dataclass(frozen=True)
class StepDone:
    step: Step


Event = Planned | Note | Phase | Load | StepDone


@dataclass
class _State:
    plan: Plan | None = None
    offered_per_s: float | None = None
    note: str = ""
    index: int = 0  # the running step (1-based); 0 before the first
    label: str = ""  # the running step's point
    repeat: int = 0
    phase: StepPhase | None = None
    detail: str = ""
    step_started: float = 0.0  # monotonic
    load_started: float | None = None  # monotonic
    load: Load | None = None
    finished_s: list[float] = field(default_factory=list)  # wall time of each finished step
    run_started: float = field(default_factory=time.monotonic)
    first_step: float | None = None  # monotonic: the end of the start-up
    last_step_done: float | None = None  # monotonic
    stopping: bool = False  # interrupted: no next step


def steps_shown(plan: Plan | None, fallback: int) -> str:
    """How many steps the run has: "24", or "≤24" for a confident sweep (it may stop early)."""
    if plan is None:
        return str(fallback)
    return f"≤{len(plan.steps)}" if plan.until == "confident" else str(len(plan.steps))


def step_line(step: Step, total: int | str) -> str:
    """A finished step in one line: what stays on screen, and what a pipe gets."""
    p95 = f"{step.latency.p95:.1f} ms" if step.latency.p95 is not None else "-"
    line = (
        f"step {step.index}/{total} {step.label} r{step.repeat}: {step.requests} "
        f"requests, {step.rps:.1f} req/s, p95 {p95}, {step.failures} errors, "
        f"{step.invocations.cold_starts} cold starts"
    )
    if step.offered is not None:
        line += f", dropped {step.dropped_arrivals} of {step.offered} offered"
    causes = [problem.detail for problem in step.problems] + step.trust.causes
    if causes:
        line += "  [degraded: " + "; ".join(causes) + "]"
    return line


def final_lines(
    sweep: Any, report: Path | None, uploaded: Uploaded | None = None
) -> list[tuple[str, str | None]]:
    """The run's last lines as (text, the URI in it to link): results, report, where it was
    uploaded (--upload), confidence, and the recommendation last."""
    lines: list[tuple[str, str | None]] = [(f"results: {Path(sweep.results_path).resolve()}", None)]
    if report is not None:
        uri = Path(report).resolve().as_uri()
        lines.append((f"report: {uri}", uri))
    if uploaded is not None:
        lines.append((uploaded.line(), None))
    verdict = sweep.results.verdict
    if verdict is not None:  # the answer is the run's last line: the pick and how sure
        lines.append((f"confidence: {verdict.confidence.statement}", None))
        if verdict.recommended_mb is not None:
            lines.append((f"Recommendation: {verdict.headline}", None))
        else:  # "No recommendation: ..." / "No memory size met the thresholds. ..."
            lines.append((verdict.headline, None))
    elif sweep.results.status == "interrupted" and sweep.results.problems:
        lines.append((f"No recommendation: {sweep.results.problems[-1].detail}.", None))
    return lines


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """The terminal's side of a run; a context manager. `update` takes the sweep's events."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.out: TextIO = sys.stdout
        self.err: TextIO = sys.stderr
        self.live_mode = (
            not quiet and _isatty(self.err) and os.environ.get("TERM", "") not in ("dumb",)
        )
        self.stdout_is_tty = _isatty(self.out)
        self.console = Console(file=self.err, force_terminal=self.live_mode or None)
        self.live: Live | None = None
        self.state = _State()

    def __enter__(self) -> Progress:
        if self.live_mode:
            self.live = Live(
                console=self.console,
                get_renderable=self._render,
                refresh_per_second=REFRESH_PER_S,
                transient=True,
                # A pipe on stdout keeps its lines; only a terminal's go above the live area.
                redirect_stdout=self.stdout_is_tty,
            )
            self.live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop_live()

    def _stop_live(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    # -- events ----------------------------------------------------------------------------

    def update(self, event: Event) -> None:
        state = self.state
        now = time.monotonic()
        if isinstance(event, Planned):
            state.plan, state.offered_per_s = event.plan, event.offered_per_s
        elif isinstance(event, Note):
            state.note = event.text
            if self.live is None:
                self._diagnostic(event.text)
            elif state.index:  # once steps run, a note is news (an interrupt): it stays
                state.stopping = True
                self.live.console.print(Text(event.text), soft_wrap=True)
        elif isinstance(event, Phase):
            if event.index != state.index:
                state.index, state.step_started = event.index, now
                if state.first_step is None:
                    state.first_step = now
                state.load_started, state.load = None, None
            state.label = event.label or f"{event.memory_mb} MB"
            state.repeat = event.repeat
            state.phase, state.detail = event.phase, event.detail
            if event.phase == "load":
                state.load_started = now
                if self.live is None:
                    self._diagnostic(f"{self._step_name()}: load running{self._load_plan()}")
        elif isinstance(event, Load):
            state.load = event
            state.load_started = now - event.elapsed_s  # the swarm's clock, not the event's
        else:
            if state.index:
                state.finished_s.append(now - state.step_started)
            state.last_step_done = now
            state.phase, state.load_started, state.load = None, None, None
            self._step_summary(step_line(event.step, steps_shown(state.plan, event.step.index)))

    def done(self, sweep: Any, report: Path | None, uploaded: Uploaded | None = None) -> None:
        """The run's final lines, after every step's own: the recommendation is the last."""
        was_live = self.live is not None
        self._stop_live()
        lines = final_lines(sweep, report, uploaded)
        if self.stdout_is_tty and not self.quiet:
            self._print_linked(Console(file=self.out), lines)
            return
        if was_live:  # stdout is a file or a pipe: the terminal gets the answer too
            self._print_linked(self.console, lines)
        for text, _ in lines:
            print(text, file=self.out, flush=True)

    @staticmethod
    def _print_linked(console: Console, lines: list[tuple[str, str | None]]) -> None:
        """The plain text, the report's file:// URI also a terminal link (OSC 8)."""
        for text, link in lines:
            line = Text(text)
            if link:
                start = text.index(link)
                line.stylize(Style(link=link), start, start + len(link))
            console.print(line, soft_wrap=True)

    # -- output ----------------------------------------------------------------------------

    def _diagnostic(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", file=self.err, flush=True)

    def _step_summary(self, line: str) -> None:
        if self.live is not None:
            self.live.console.print(Text(line), soft_wrap=True)
            if self.stdout_is_tty:
                return
        print(line, file=self.out, flush=True)

    def _step_name(self) -> str:
        state = self.state
        total = steps_shown(state.plan, 0) if state.plan else "?"
        return f"step {state.index}/{total} {state.label} r{state.repeat}"

    def _load_plan(self) -> str:
        plan = self.state.plan
        if plan is None:
            return ""
        warmup = f", {plan.warmup_s:g} s warm-up" if plan.warmup_s else ""
        return f" for {plan.load_s:g} s{warmup}"

    # -- the live area ---------------------------------------------------------------------

    def _eta(self, now: float) -> tuple[float, float, float]:
        """(done, total, remaining) seconds of the run: the plan's estimates (start-up, each
        step, the end), each step's replaced by the mean of the steps timed so far."""
        state, plan = self.state, self.state.plan
        if plan is None:
            return 0.0, 1.0, 0.0
        if state.first_step is not None:
            start_total = start_done = state.first_step - state.run_started
        else:
            start_total = plan.start_s
            start_done = min(now - state.run_started, NEARLY_DONE * plan.start_s)
        finished = len(state.finished_s)
        per_step = sum(state.finished_s) / finished if finished else plan.step_s
        running = min(now - state.step_started, NEARLY_DONE * per_step) if state.phase else 0.0
        end_done = 0.0
        if finished >= len(plan.steps) and state.last_step_done is not None:
            end_done = min(now - state.last_step_done, NEARLY_DONE * plan.end_s)
        total = start_total + len(plan.steps) * per_step + plan.end_s
        done = start_done + finished * per_step + running + end_done
        return done, total, max(0.0, total - done)

    def _phase_text(self, now: float) -> str:
        state, plan = self.state, self.state.plan
        if state.phase is None:
            last = plan is not None and len(state.finished_s) >= len(plan.steps)
            if state.finished_s and (last or state.stopping):
                return "restoring the target, writing results and the report"
            if state.finished_s:
                return "next step"
            return state.note or "starting"
        if state.phase == "load" and state.load_started is not None and plan is not None:
            elapsed = now - state.load_started
            if elapsed < plan.warmup_s:
                return f"warm-up {int(elapsed)}/{plan.warmup_s:g} s (not measured)"
            if elapsed < plan.load_s:
                window = plan.load_s - plan.warmup_s
                return f"measuring {int(elapsed - plan.warmup_s)}/{window:g} s"
            return "winding down"
        if state.phase == "load":
            return "load starting"
        return f"{state.phase} {state.detail}".strip()

    def _load_text(self, now: float) -> str:
        state, plan, load = self.state, self.state.plan, self.state.load
        if load is None or plan is None:
            return ""
        parts = []
        if state.offered_per_s is not None:
            parts.append(f"offered {state.offered_per_s:g}/s")
        else:
            parts.append(f"users {load.users}")
        in_warmup = state.load_started is not None and now - state.load_started < plan.warmup_s
        # Until the window has a second of reports: Locust's recent rate, marked "~" (it lags
        # 2 s and counts the warm-up), or nothing while even that is still 0.
        if load.achieved_rps is not None:
            parts.append(f"achieved {load.achieved_rps:.1f} req/s")
        elif load.locust_rps <= 0:
            parts.append("achieved - req/s")
        elif in_warmup:
            parts.append(f"~{load.locust_rps:.1f} req/s in warm-up")
        else:
            parts.append(f"achieved ~{load.locust_rps:.1f} req/s")
        if state.offered_per_s is not None:
            parts.append(f"dropped {load.dropped}")
        parts.append(f"p95 {load.p95_ms:.1f} ms" if load.p95_ms is not None else "p95 -")
        parts.append(f"errors {load.failures}")
        return " · ".join(parts)

    def status(self, now: float) -> tuple[float, list[str]]:
        """The live area at monotonic time `now`: the bar's fraction and its lines of text."""
        state, plan = self.state, self.state.plan
        done, total, remaining = self._eta(now)
        steps = steps_shown(plan, 0)
        # A confident sweep's plan counts every setting up to max_s: its ETA is a bound.
        at_most = "≤ " if plan and plan.until == "confident" else ""
        eta = f"{at_most}{_clock(remaining)}" if plan else "-"
        lines = [
            f"{100 * done / total:3.0f}%  {len(state.finished_s)}/{steps} steps done  "
            f"elapsed {_clock(now - state.run_started)}  ETA {eta}"
        ]
        if state.phase is None:
            lines.append(self._phase_text(now))
        else:
            repeats = f"/{plan.repeats}" if plan else ""
            word = "round" if plan and plan.until == "confident" else "repeat"
            lines.append(
                f"step {state.index}/{steps} · {state.label} · {word} "
                f"{state.repeat}{repeats} · {self._phase_text(now)}"
            )
        load = self._load_text(now) if state.phase == "load" else ""
        if load:
            lines.append(load)
        return done / total, lines

    def _render(self) -> RenderableType:
        fraction, lines = self.status(time.monotonic())
        head = Table.grid(padding=(0, 1))
        head.add_column(width=BAR_WIDTH)
        head.add_column(no_wrap=True)
        head.add_row(
            ProgressBar(total=1.0, completed=fraction, width=BAR_WIDTH),
            Text(lines[0], no_wrap=True, overflow="ellipsis"),
        )
        rest = [Text(line, no_wrap=True, overflow="ellipsis") for line in lines[1:]]
        return Group(head, *rest)
