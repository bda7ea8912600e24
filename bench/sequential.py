"""until: confident, measured: how long the confident verdict takes beside the fixed profile,
whether identical confident runs pick alike, and how often stopping early gets the answer
wrong on streams whose answer is known.

- confident-verdict-time: the README's main job (`python -m runner scenarios/memory_sweep.yaml`,
  confident) against the fixed profile of the same scenario (`--until fixed`), run one after
  the other: wall time from command to exit (goal ≤ 90 s) and the same pick. Quick mode runs
  the fixed profile at 30 s per step instead of 120 s; full mode also sweeps six sizes
  confidently (goal ≤ 4 min).
- stable-pick: K pairs of identical confident runs of a mix where compute is a sliver of the
  bill (reads and echoes at 128, 512 and 1769 MB: API Gateway's fixed price is most of it, so
  costs tie or nearly tie): the same answer in every pair.
- false-stops: in process, no servers. Seeded AR(1) latency streams whose answer is known go
  through the analysis round by round exactly as runner/sweep.py's `_rounds` does (analyse,
  still_open, stop a setting when settled or at max_s), then the final verdict: how often it
  picks wrong, or claims an order or a tie that is not there. And the analysis time per look.
"""

from __future__ import annotations

import math
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.common import Figure, StealMeter, machine_cpu_s
from bench.trust import false_call_bound
from runner.analysis import (
    PRICES_US_EAST_1,
    analyse,
    latency,
    look_widening,
    next_round,
    relation_of,
    run_verdict,
    still_open,
)
from runner.hdr import empty_histogram, encode
from runner.results import (
    BilledSecond,
    CostPair,
    HostRecord,
    Invocations,
    Results,
    RunVerdict,
    Second,
    Step,
    TargetInfo,
    read_results,
)
from runner.scenario import Scenario, max_rounds
from runner.stack import PROJECT_ROOT

RUN_TIMEOUT_S = 1200

# --- running the runner ------------------------------------------------------------------------

MAIN_JOB = PROJECT_ROOT / "scenarios" / "memory_sweep.yaml"
CONFIDENT_GOAL_S = 90.0  # the issue: the README's main job answers within 90 s
SIX_SIZES = "128,256,512,1024,1536,3008"  # AWS Lambda Power Tuning's default sizes
SIX_SIZES_GOAL_S = 240.0
# quick mode: the fixed profile scaled from 120 s to 15 s per step (CI time: 30 s per step took
# 71 s of the quick bench; the pick it checks is decided by cost at either length)
QUICK_FIXED_DURATION = "15s"


@dataclass
class Run:
    """One `python -m runner` run: what it answered, how long it took, what else ran."""

    label: str
    results: Results
    exit_code: int
    wall_s: float
    launched_at: float  # epoch seconds, when the command was started
    steal_share: float  # hypervisor steal, share of all CPU time during the run
    others_cores: float  # other processes' busy CPU / wall time (the machine minus our tree)

    @property
    def verdict(self) -> RunVerdict | None:
        return self.results.verdict

    @property
    def pick(self) -> int | None:
        return self.verdict.recommended_mb if self.verdict else None

    def measured_s(self) -> dict[str, float]:
        """Measured seconds per setting (window lengths summed), in sweep order."""
        out: dict[str, float] = {}
        for step in self.results.steps:
            out[step.label] = out.get(step.label, 0.0) + step.window_end - step.window_start
        return out

    def phases(self) -> str:
        """Where the wall time went: start-up (command → first load), load (warm-up included),
        between steps, after the last step (verdict, report, stopping the stack)."""
        steps = self.results.steps
        if not steps:
            return f"{self.wall_s:.0f} s, no step ran"
        load = sum(step.window_end - step.started_at for step in steps)
        between = sum(step.overhead_s or 0.0 for step in steps[1:])
        start = steps[0].started_at - self.launched_at
        after = self.launched_at + self.wall_s - steps[-1].window_end
        return (
            f"start-up {start:.0f} s, load {load:.0f} s over {len(steps)} step(s) (warm-up "
            f"included), between steps {between:.0f} s, after the last {after:.0f} s"
        )

    def statement(self) -> str:
        """The verdict's sentence on how sure the pick is."""
        if self.verdict is None:
            return f"no verdict ({self.results.status}, exit {self.exit_code})"
        return f"{self.verdict.headline} {self.verdict.confidence.statement}"

    def answer(self) -> str:
        """ "pick 128 MB (smallest among equals, sure, 100 %)" or why there is none."""
        verdict = self.verdict
        if verdict is None:
            return f"no verdict ({self.results.status}, exit {self.exit_code})"
        confidence = verdict.confidence
        share = f", {confidence.pick_share:.0%}" if confidence.pick_share is not None else ""
        if verdict.recommended_mb is None:
            return f"no pick: {verdict.headline} (exit {self.exit_code})"
        return (
            f"pick {verdict.recommended_mb} MB ({verdict.decided_by}, {confidence.level}{share}"
            f"{', runner-up ' + confidence.runner_up if confidence.runner_up else ''})"
        )

    def contention(self) -> str:
        delivered = [
            s.trust.cpu.delivered
            for s in self.results.steps
            if s.trust.cpu is not None and s.trust.cpu.delivered is not None
        ]
        text = (
            f"hypervisor steal {self.steal_share:.1%}, other processes kept "
            f"{self.others_cores:.2f} cores busy"
        )
        if delivered:
            text += f", sandboxes got ≥ {min(delivered):.2f} of the CPU they were ready to use"
        degraded = [s for s in self.results.steps if s.trust.degraded]
        if degraded:
            text += f"; {len(degraded)} step(s) degraded: {degraded[0].trust.causes}"
        return text

    def rounds(self) -> str:
        """What each look decided (until: confident), e.g. "r1: 128 MB stops (settled ...)"."""
        parts = []
        for record in self.results.rounds:
            said = [f"{label} stops ({why})" for label, why in record.stopped.items()]
            said += [f"{label} open ({why})" for label, why in record.still_open.items()]
            parts.append(f"r{record.round}: " + "; ".join(said))
        return " | ".join(parts)

    def beyond_first_round(self) -> str:
        """Each setting measured in more than one round: its rounds and why it stopped."""
        rounds = Counter(step.label for step in self.results.steps)
        stopped = {label: why for r in self.results.rounds for label, why in r.stopped.items()}
        longer = [
            f"{label} {count} rounds (stopped: {stopped.get(label, 'not stopped')})"
            for label, count in rounds.items()
            if count > 1
        ]
        if not longer:
            return ""
        extra = sum(count - 1 for count in rounds.values())
        return (
            f"{extra} of {len(self.results.steps)} steps came after the first round: "
            + "; ".join(longer)
        )

    def behind_stopped(self) -> str:
        """The steps measured for a comparison with a setting that had already stopped (never
        measured again, so that interval narrows from one side only), with the load they took;
        "" when none. Reads the reason each look stated (the first open one per setting)."""
        stopped: dict[str, int] = {}  # label -> the round after which it stopped
        load = {(s.label, s.repeat): s.window_end - s.started_at for s in self.results.steps}
        steps, seconds, said = 0, 0.0, []
        for record in self.results.rounds:
            for label, why in record.still_open.items():
                partners = [
                    other
                    for other in stopped
                    if re.search(rf"(?<![\d.]){re.escape(other)}", why) and other != label
                ]
                if not partners:
                    continue
                steps += 1
                seconds += load.get((label, record.round + 1), 0.0)
                said.append(
                    f"r{record.round + 1} {label} ({why}; "
                    + ", ".join(f"{p} stopped after r{stopped[p]}" for p in partners)
                    + ")"
                )
            stopped.update(dict.fromkeys(record.stopped, record.round))
        if not steps:
            return ""
        return (
            f"{steps} of {len(self.results.steps)} steps ({seconds:.0f} s of load, warm-up "
            "included) measured a setting whose stated reason was a comparison with a setting "
            "that had already stopped: a stopped setting is never measured again, so the "
            "interval of that difference narrows from one side only, its width floored by the "
            "stopped side's data: " + "; ".join(said[:3]) + ("; ..." if len(said) > 3 else "")
        )


def run_runner(label: str, scenario: Path, *args: str) -> Run:
    """`python -m runner SCENARIO --out <fresh dir> --quiet ARGS`, timed from command to exit,
    with the machine's steal and the other processes' CPU over the same span."""
    with tempfile.TemporaryDirectory(prefix="memsweep-seq-") as out:
        command = [sys.executable, "-m", "runner", str(scenario), "--out", out, "--quiet", *args]
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        busy_before, _ = machine_cpu_s()
        launched_at = time.time()
        started = time.monotonic()
        with StealMeter() as steal:
            done = subprocess.run(
                command, cwd=PROJECT_ROOT, capture_output=True, timeout=RUN_TIMEOUT_S, check=False
            )
        wall = time.monotonic() - started
        busy_after, _ = machine_cpu_s()
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        ours = (children_after.ru_utime - children_before.ru_utime) + (
            children_after.ru_stime - children_before.ru_stime
        )
        found = sorted(Path(out).glob("*/results.json"))
        if not found:
            raise RuntimeError(
                f"{label}: no results.json (exit {done.returncode}): "
                f"{done.stderr.decode(errors='replace')[-800:]}"
            )
        results = read_results(found[0])
    if results.status != "complete":
        raise RuntimeError(
            f"{label}: the run ended {results.status} (exit {done.returncode}): "
            + "; ".join(p.detail for p in results.problems)
            + f" {done.stderr.decode(errors='replace')[-500:]}"
        )
    return Run(
        label=label,
        results=results,
        exit_code=done.returncode,
        wall_s=wall,
        launched_at=launched_at,
        steal_share=steal.share,
        others_cores=max(0.0, busy_after - busy_before - ours) / wall if wall > 0 else 0.0,
    )


def _describe(run: Run) -> str:
    measured = ", ".join(f"{label} {s:.0f} s" for label, s in run.measured_s().items())
    return (
        f"{run.label}: {run.wall_s:.0f} s wall, {run.answer()}, exit {run.exit_code}; measured "
        f"{measured}; {run.phases()}; {run.contention()}"
    )


# --- 1. confident-verdict-time --------------------------------------------------------------


def confident_verdict_time(*, quick: bool) -> list[Figure]:
    """The README's main job, confident, against its fixed profile run just after it."""
    confident = run_runner("confident", MAIN_JOB)
    fixed_args = ["--until", "fixed"] + (["--duration", QUICK_FIXED_DURATION] if quick else [])
    fixed = run_runner(
        "fixed" + (f" ({QUICK_FIXED_DURATION} per step)" if quick else ""), MAIN_JOB, *fixed_args
    )
    figures = [_main_job_figure(confident, fixed, quick=quick)]
    if not quick:
        six = run_runner(f"six sizes ({SIX_SIZES} MB)", MAIN_JOB, "--memory", SIX_SIZES)
        figures.append(_six_sizes_figure(six, confident))
    return figures


def _main_job_figure(confident: Run, fixed: Run, *, quick: bool) -> Figure:
    same = confident.pick is not None and confident.pick == fixed.pick
    in_time = confident.wall_s <= CONFIDENT_GOAL_S
    profile = (
        f"the fixed profile scaled to {QUICK_FIXED_DURATION} per step (quick mode; the full "
        "bench runs the real 120 s)"
        if quick
        else "the fixed profile as written (120 s per step)"
    )
    detail = (
        f"confident {confident.wall_s:.0f} s vs fixed {fixed.wall_s:.0f} s wall "
        f"({confident.wall_s / fixed.wall_s:.2f}× the time), picks {confident.pick} vs "
        f"{fixed.pick} MB; fixed is {profile}. {_describe(confident)}; rounds: "
        f"{confident.rounds()}. {_describe(fixed)}"
    )
    why: list[str] = []
    if not in_time:
        why.append(
            f"the confident run took {confident.wall_s:.0f} s (goal {CONFIDENT_GOAL_S:.0f} s): "
            f"{confident.phases()}; "
            + "; ".join(
                p
                for p in (
                    confident.beyond_first_round(),
                    confident.behind_stopped(),
                    confident.contention(),
                )
                if p
            )
        )
    if not same:
        why.append(_pick_mismatch(confident, fixed))
    return Figure(
        name="confident verdict, the README's main job: wall time, command to exit",
        goal=f"≤ {CONFIDENT_GOAL_S:.0f} s, fixed's pick",
        value=confident.wall_s,
        unit="s",
        passed=in_time and same,
        detail=detail,
        why_missed="; ".join(why),
    )


def _pick_mismatch(a: Run, b: Run) -> str:
    return (
        f"picks differ ({a.pick} vs {b.pick} MB): {a.label}: {a.statement()} ({a.contention()}) "
        f"/ {b.label}: {b.statement()} ({b.contention()})"
    )


def _six_sizes_figure(six: Run, two: Run) -> Figure:
    """In time, with an answer: a degraded run stops measuring early and says nothing, so its
    time is not a confident sweep's."""
    degraded = any(step.trust.degraded for step in six.results.steps)
    passed = six.wall_s <= SIX_SIZES_GOAL_S and not degraded
    why = [
        f"{six.wall_s:.0f} s (goal {SIX_SIZES_GOAL_S:.0f} s): {six.phases()}"
        if six.wall_s > SIX_SIZES_GOAL_S
        else "",
        f"degraded, so no answer and its time is not a confident sweep's: {six.statement()}"
        if degraded
        else "",
        six.beyond_first_round(),
        six.behind_stopped(),
        six.contention(),
    ]
    return Figure(
        name=f"confident verdict, six sizes ({SIX_SIZES} MB): wall time, command to exit",
        goal=f"≤ {SIX_SIZES_GOAL_S / 60:.0f} min, an answer",
        value=six.wall_s,
        unit="s",
        passed=passed,
        detail=f"{six.wall_s / two.wall_s:.2f}× the two-size run's {two.wall_s:.0f} s. "
        f"{_describe(six)}; {six.statement()}; rounds: {six.rounds()}",
        why_missed="; ".join(part for part in why if part),
    )


# --- 2. stable-pick ---------------------------------------------------------------------------

# Reads of seeded items and echoes: a few ms of compute, so API Gateway's $3.50 per 1M is most
# of the bill and the sizes' costs tie or nearly tie (runner/analysis/_decision.py). ~25 req/s
# (4 users, 0.1-0.2 s think time): at ~90 req/s (20-50 ms) CI's clean clone saw the 128 MB
# sandboxes get 39-40 % of their CPU, both runs degraded (bench/RESULTS.md, 2026-12-06).
STABLE_SCENARIO = """\
name: stable pick (read and echo)
target: {kind: local%(calibrate)s}
sweep:
  memory_mb: [128, 512, 1769]
  until: confident
  round_s: 5
  min_s: 5
  max_s: %(max_s)d
  settle_s: 0
  warmup_s: 1
load:
  stages: [{users: 4, duration_s: 10}]
  think_time: {min_s: 0.1, max_s: 0.2}
requests:
  - name: read
    body: {operation: read, tableName: lambda-apigateway, payload: {Key: {id: "{{seeded}}"}}}
  - name: echo
    body: {operation: echo, payload: {k: v}}
seed: {items: 10, reset: true}
thresholds: {p95_ms: 1000}
workers: {local: 1}
"""


@dataclass(frozen=True)
class Answer:
    """What a run answered, as compared between identical runs: the pick and the rule that
    decided it, or the two settings it was too close to call between, or why no pick."""

    kind: str  # "pick", "too close", "no pick"
    pick: int | None
    decided_by: str | None
    between: frozenset[str] = frozenset()

    def __str__(self) -> str:
        if self.kind == "pick":
            return f"{self.pick} MB by {self.decided_by}"
        if self.kind == "too close":
            return "too close between " + " and ".join(sorted(self.between))
        return f"no pick ({self.decided_by})"


def answer_of(run: Run) -> Answer:
    verdict = run.verdict
    if verdict is None:
        return Answer("no pick", None, run.results.status)
    if verdict.recommended_mb is not None:
        return Answer("pick", verdict.recommended_mb, verdict.decided_by)
    confidence = verdict.confidence
    if confidence.level == "too close to call":
        # The rule's own choice is kept by the analysis, not by the verdict: read it there.
        decision = analyse(run.results).recommendation.decision
        between = {confidence.runner_up or "nothing meets the thresholds"}
        if decision is not None:
            between.add(decision.setting.label)
        return Answer("too close", None, None, frozenset(between))
    return Answer("no pick", None, confidence.level)


def _costs(run: Run) -> str:
    verdict = run.verdict
    if verdict is None:
        return ""
    return ", ".join(
        f"{d.b} vs {d.a} {d.value / verdict.costs[d.a].value:+.2%} ({d.relation})"
        for d in verdict.cost_differences
        if d.a in verdict.costs and verdict.costs[d.a].value
    )


def stable_pick(*, quick: bool) -> Figure:
    """K pairs of identical confident runs of the read-and-echo mix: the same answer in each."""
    pairs = 1 if quick else 3
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="memsweep-stable-") as scratch:
        path = Path(scratch) / "stable.yaml"
        # Quick mode skips the CPU calibration (a start-up check, ~4 s a run), as verdict-trust.
        # quick (CI): at most 3 rounds, which only shows the bench runs; the full K=3 judges it
        path.write_text(
            STABLE_SCENARIO
            % {"calibrate": ", calibrate: false" if quick else "", "max_s": 15 if quick else 30}
        )
        for index in range(2 * pairs):
            runs.append(run_runner(f"run {index + 1}", path))
    answers = [answer_of(run) for run in runs]
    # A run with no answer (degraded, not enough data) says nothing about the rule: its pair
    # is not alike, even when both runs said nothing.
    answered = [answer.kind != "no pick" for answer in answers]
    same = [
        answered[2 * i] and answered[2 * i + 1] and answers[2 * i] == answers[2 * i + 1]
        for i in range(pairs)
    ]
    per_run = "; ".join(
        f"{run.label}: {answer} (pick share "
        f"{_share(run)}, runner-up {run.verdict.confidence.runner_up if run.verdict else None}; "
        f"costs {_costs(run)}; measured "
        + ", ".join(f"{label} {s:.0f} s" for label, s in run.measured_s().items())
        + f"; {run.wall_s:.0f} s wall; {run.contention()})"
        for run, answer in zip(runs, answers, strict=True)
    )
    differing = [
        f"pair {i + 1}: {answers[2 * i]} vs {answers[2 * i + 1]}"
        + (
            ""
            if answered[2 * i] and answered[2 * i + 1]
            else " (a run without an answer says nothing about the rule)"
        )
        + f": {runs[2 * i].statement()} ({runs[2 * i].contention()}) / "
        f"{runs[2 * i + 1].statement()} ({runs[2 * i + 1].contention()}); rounds "
        f"{runs[2 * i].rounds()} / {runs[2 * i + 1].rounds()}"
        for i in range(pairs)
        if not same[i]
    ]
    return Figure(
        name=f"stable pick: same answer in K={pairs} pair(s) of identical confident runs "
        "(read + echo, 128/512/1769 MB)",
        goal="K/K pairs",
        value=sum(same) / pairs * 100,
        unit="%",
        passed=all(same),
        detail=f"{sum(same)} of {pairs} pair(s) alike (compared: the pick and the rule that "
        "decided it; a too-close call by the two settings it names; a run with no answer, "
        "e.g. degraded, makes its pair unlike). " + per_run,
        why_missed="; ".join(differing),
    )


def _share(run: Run) -> str:
    share = run.verdict.confidence.pick_share if run.verdict else None
    return f"{share:.0%}" if share is not None else "none"


# --- 3. false-stops: synthetic streams of known truth ----------------------------------------

# The per-second level of latency (and billed duration) wanders as an AR(1): a busy second on
# the host makes the next one busy too (bench/RESULTS.md's A/A notes measured rho ~0.5 here).
AR_PHI = 0.6
AR_SD = 0.10  # the level's stationary spread: 10 % of the mean, second to second
REQUEST_SIGMA = 0.3  # lognormal spread of one request's latency around its second's level
BILLED_SIGMA = 0.2  # and of one invocation's billed duration
# Requests per second per setting (Poisson): enough that truth (a)'s p95 gap is found within
# max_s, so a miss there is the rule's, not a want of data.
RATE_PER_S = 20.0
WARMUP_S = 2
QUICK_SEEDS = 8
FULL_SEEDS = 40
ERROR_GOAL = 0.05


@dataclass(frozen=True)
class Shape:
    """A confident run's rounds: measured seconds per round, at least, at most."""

    round_s: int
    min_s: int
    max_s: int

    def __str__(self) -> str:
        return f"rounds of {self.round_s} s, min {self.min_s} s, max {self.max_s} s"


# Full mode: the main job's shape (scenarios/memory_sweep.yaml: 12 looks). Quick mode halves
# max_s (6 looks): a look's analysis grows with the data (~0.2 s at one round to ~0.9 s at
# twelve, measured here), and identical settings run until separating them is futile (~4
# rounds) or to max_s.
FULL_SHAPE = Shape(round_s=10, min_s=10, max_s=120)
QUICK_SHAPE = Shape(round_s=10, min_s=10, max_s=60)


@dataclass(frozen=True)
class Synthetic:
    """One setting of a synthetic run: its memory size, the median latency of a request at
    the mean level, and its mean billed duration per warm invocation."""

    memory_mb: int
    latency_ms: float
    billed_ms: float


_GB_SECOND = PRICES_US_EAST_1.lambda_gb_second["x86_64"]
# Everything but compute, per 1M requests: the REST API and Lambda's requests (echo: no table).
FIXED_PER_MILLION = (
    PRICES_US_EAST_1.api_gateway_rest_per_million + PRICES_US_EAST_1.lambda_per_million_requests
)


def cost_per_million(setting: Synthetic) -> float:
    """Dollars per 1M requests at the setting's mean billed duration, as the analysis prices
    it (x86_64, REST API, billed ms × GB)."""
    return FIXED_PER_MILLION + setting.billed_ms * setting.memory_mb / 1024 * _GB_SECOND * 1000


def billed_for(memory_mb: int, total: float) -> float:
    """The mean billed duration (ms) that makes a setting's cost per 1M `total` dollars."""
    return (total - FIXED_PER_MILLION) / (memory_mb / 1024 * _GB_SECOND * 1000)


@dataclass(frozen=True)
class Truth:
    """Two settings whose right answer is known."""

    key: str
    name: str
    settings: tuple[Synthetic, Synthetic]
    right_pick: int | None  # the pick the truth demands (None: a tie, see judge())
    right_rule: str  # decided_by when the truth is found


def truths() -> list[Truth]:
    # (a) 512 MB bills 20 ms, 1024 MB 10 ms: the same GB-seconds, so the same cost; 1024 MB's
    # p95 is 35 % lower (~33 vs ~51 ms). "Clearly": its interval must clear the 10 % speed
    # margin, not zero, and the quick shape's 60 s do (24 of 24 seeds here); a 26 % gap (16
    # beyond the margin) left 3 of 16 short at 60 s and none at 120 s, a false tie for want
    # of data.
    equal_cost = (Synthetic(512, 31.0, 20.0), Synthetic(1024, 20.0, 10.0))
    # (b) the same cost and the same latency.
    identical = (Synthetic(512, 20.0, 20.0), Synthetic(1024, 20.0, 10.0))
    # (d) the same cost; 1024 MB's p95 5 % lower: inside the speed margin (10 % of the lower
    # p95), so as fast, and the smaller is the pick (the six-size sweep's 256 vs 512 MB).
    near = (Synthetic(512, 21.0, 20.0), Synthetic(1024, 20.0, 10.0))
    # (c) equal latency; 1024 MB 3 % cheaper than 512 MB billing 40 ms. The larger is the
    # cheaper, so a false tie ("smallest among equals") also picks wrong.
    dear = Synthetic(512, 20.0, 40.0)
    cheaper = Synthetic(1024, 20.0, billed_for(1024, cost_per_million(dear) / 1.03))
    return [
        Truth(
            "a",
            "equal cost, 1024 MB's p95 35 % lower",
            equal_cost,
            1024,
            "latency among equal costs",
        ),
        Truth("b", "identical settings", identical, None, "smallest among equals"),
        Truth("c", "1024 MB 3 % cheaper, equal latency", (dear, cheaper), 1024, "cost"),
        Truth(
            "d",
            "equal cost, 1024 MB's p95 5 % lower (inside the speed margin)",
            near,
            512,
            "smallest among equals",
        ),
    ]


def synthetic_scenario(sizes: list[int], shape: Shape) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "false stops (synthetic)",
            "target": {"kind": "local"},
            "sweep": {
                "memory_mb": sizes,
                "until": "confident",
                "round_s": shape.round_s,
                "min_s": shape.min_s,
                "max_s": shape.max_s,
                "warmup_s": WARMUP_S,
            },
            "load": {"model": "closed", "stages": [{"users": 10, "duration_s": shape.max_s}]},
            "requests": [{"name": "echo", "body": {"operation": "echo"}}],
            "thresholds": {"p95_ms": 1000},
        }
    )


class StreamBuilder:
    """Steps of a synthetic run, each a measured window whose per-second level follows an
    AR(1) (latency and billed duration move together), written with the real schema (HDR
    histogram, per-second timeline, per-second billing) so that analyse() reads it as a run's."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.index = 0
        self.clock = 1_790_000_000.0

    def step(self, setting: Synthetic, *, seconds: int, repeat: int) -> Step:
        rng = self.rng
        innovation = AR_SD * math.sqrt(1 - AR_PHI**2)
        level = rng.normal(0.0, AR_SD)  # each window starts from the stationary spread
        histogram = empty_histogram()
        timeline: list[Second] = []
        billed: list[BilledSecond] = []
        for t in range(seconds):
            if t:
                level = AR_PHI * level + rng.normal(0.0, innovation)
            count = int(rng.poisson(RATE_PER_S))
            factor = math.exp(level)
            latencies = setting.latency_ms * factor * rng.lognormal(0.0, REQUEST_SIGMA, count)
            for value in latencies:
                histogram.record_value(max(1, int(value * 1000)))
            # Billed: the same level, noise of mean 1 around the setting's mean.
            durations = (
                setting.billed_ms
                * factor
                * rng.lognormal(-(BILLED_SIGMA**2) / 2, BILLED_SIGMA, count)
            )
            mean = float(latencies.mean()) if count else 0.0
            timeline.append(Second(t=t, requests=count, failures=0, mean_ms=mean))
            billed.append(BilledSecond(t=t, count=count, billed_ms=round(float(durations.sum()))))
        requests = sum(second.requests for second in timeline)
        total_billed = sum(b.billed_ms for b in billed)
        self.index += 1
        started = self.clock
        self.clock += WARMUP_S + seconds + 2.0
        return Step(
            index=self.index,
            memory_mb=setting.memory_mb,
            repeat=repeat,
            started_at=started,
            overhead_s=2.0,
            window_start=started + WARMUP_S,
            window_end=started + WARMUP_S + seconds,
            requests=requests,
            failures=0,
            rps=requests / seconds,
            latency=latency(histogram),
            histogram=encode(histogram),
            timeline=timeline,
            invocations=Invocations(
                count=requests,
                billed_ms_total=total_billed,
                warm_billed_ms_total=total_billed,
                billed_ms_mean=total_billed / requests if requests else None,
                capacity_records=requests,
                source="synthetic",
                warm_billed_by_second=billed,
            ),
        )


def empty_results(scenario: Scenario) -> Results:
    return Results(
        run_id="synthetic",
        status="running",
        created_at=1_790_000_000.0,
        scenario_name=scenario.name,
        scenario=scenario,
        scenario_text=f"name: {scenario.name}\n",
        scenario_path="bench/sequential.py",
        versions={},
        host=HostRecord(hostname="synthetic"),
        target=TargetInfo(kind="local", url="http://127.0.0.1:1/dev/synthetic"),
    )


@dataclass
class Trial:
    """One synthetic run: its verdict, the rule the analysis applied (kept also when the pick
    was too close to call), how long each setting was measured and why it stopped, and how
    long each look's analysis took."""

    seed: int
    verdict: RunVerdict
    rule: str | None
    measured_s: dict[int, float]
    at_max: bool  # a setting stopped at max_s, still open
    # The cost difference (the cheapest vs the other) as the verdict's 95 % interval and the
    # last look's widened one classify it, e.g. ("undetermined", "same"); None: no pick rule.
    cost_call: tuple[str, str] | None = None
    look_s: list[float] = field(default_factory=list)
    verdict_s: float = 0.0

    @property
    def pick(self) -> int | None:
        return self.verdict.recommended_mb

    @property
    def too_close(self) -> bool:
        return self.verdict.confidence.level == "too close to call"


def run_trial(truth: Truth, seed: int, shape: Shape) -> Trial:
    """The truth's two settings measured round by round as runner/sweep.py's _rounds does:
    every open setting once per round, a look (analyse, still_open at the plan's K looks)
    after each, and the same next_round decides which settings the next round measures; then
    the verdict, as cli.py makes it."""
    by_memory = {s.memory_mb: s for s in truth.settings}
    scenario = synthetic_scenario(sorted(by_memory), shape)
    sweep = scenario.sweep
    results = empty_results(scenario)
    builder = StreamBuilder(seed)
    looks = max_rounds(scenario)
    active = sweep.planned_points()
    measured = dict.fromkeys(by_memory, 0.0)
    at_max = False
    look_s: list[float] = []
    for round_ in range(1, looks + 1):
        for point in active:
            step = builder.step(by_memory[point.memory_mb], seconds=shape.round_s, repeat=round_)
            results.steps.append(step)
            measured[point.memory_mb] += step.window_end - step.window_start
        began = time.perf_counter()
        open_ = still_open(analyse(results), looks=looks)
        look_s.append(time.perf_counter() - began)
        plan = next_round(
            sweep.planned_points(),
            active,
            {point: measured[point.memory_mb] for point in sweep.planned_points()},
            open_,
            min_s=sweep.min_s,
            round_s=sweep.round_s,
            max_s=sweep.max_s,
        )
        at_max = at_max or plan.at_max
        following = plan.measured
        active = following
        if not active:
            break
    began = time.perf_counter()
    analysis = analyse(results)
    verdict = run_verdict(analysis)
    verdict_s = time.perf_counter() - began
    decision = analysis.recommendation.decision
    return Trial(
        seed=seed,
        verdict=verdict,
        rule=decision.decided_by if decision is not None else None,
        measured_s=measured,
        at_max=at_max,
        cost_call=cost_call(verdict, looks),
        look_s=look_s,
        verdict_s=verdict_s,
    )


def cost_call(verdict: RunVerdict, looks: int) -> tuple[str, str] | None:
    """The cost difference between the two settings as the verdict classified it (its interval
    widened for `looks` looks, as every look of the run did) and as a plain 95 % interval over
    the same data would have (what the verdict said before the two were made one)."""
    if not verdict.cost_differences:
        return None
    d = verdict.cost_differences[0]
    low, high = plain_interval(d, looks)
    return d.relation, relation_of(low, high, d.margin)


def plain_interval(d: CostPair, looks: int) -> tuple[float, float]:
    """The verdict's widened interval of a cost difference narrowed back to plain 95 %."""
    factor = look_widening(looks)
    return d.value - (d.value - d.low) / factor, d.value + (d.high - d.value) / factor


@dataclass(frozen=True)
class Judged:
    wrong_pick: bool
    wrong_order: bool
    said: str  # what the trial answered, for why_missed


def judge(truth: Truth, trial: Trial) -> Judged:
    """A trial's verdict against its truth.

    Wrong pick: a pick the truth rules out (too close to call picks nothing: not a wrong
    pick). Wrong order or false tie: the rule the analysis applied is not the truth's. For a
    tie (b): one setting called clearly faster than its twin ("latency among equal costs") or
    the costs called different ("cost"); too close to call is a right answer. Where the truth
    is not a tie (a, c, d): a tie where there is none (cost or latency), or no pick at all (too
    close to call: the answer was there to find within max_s).
    """
    pick, rule = trial.pick, trial.rule
    if truth.right_pick is None:
        smaller = min(s.memory_mb for s in truth.settings)
        wrong_pick = pick is not None and pick != smaller
        wrong_order = rule in ("latency among equal costs", "cost")
    else:
        wrong_pick = pick is not None and pick != truth.right_pick
        wrong_order = rule != truth.right_rule or pick is None
    confidence = trial.verdict.confidence
    said = (
        f"seed {trial.seed}: pick {pick}, rule {rule}, {confidence.level} "
        f"({confidence.pick_share or 0:.0%}), measured "
        + "/".join(f"{trial.measured_s[m]:.0f}" for m in sorted(trial.measured_s))
        + " s"
        + (", at max_s" if trial.at_max else "")
        + (
            f"; cost difference {trial.cost_call[0]} by the verdict, {trial.cost_call[1]} by "
            "the last look"
            if trial.cost_call
            else ""
        )
    )
    return Judged(wrong_pick, wrong_order, said)


def false_stops(*, quick: bool) -> list[Figure]:
    """Seeded synthetic streams of four known truths through the confident run's looks."""
    seeds = QUICK_SEEDS if quick else FULL_SEEDS
    shape = QUICK_SHAPE if quick else FULL_SHAPE
    cases = truths()
    trials: dict[str, list[Trial]] = {}
    started = time.monotonic()
    with StealMeter() as steal:
        for index, truth in enumerate(cases):
            trials[truth.key] = [
                run_trial(truth, 1000 * index + seed, shape) for seed in range(seeds)
            ]
    elapsed = time.monotonic() - started
    judged = {t.key: [judge(t, trial) for trial in trials[t.key]] for t in cases}
    looks = max_rounds(synthetic_scenario([512, 1024], shape))
    setup = (
        f"{seeds} seeds per truth ({seeds * len(cases)} runs in {elapsed:.0f} s); AR(1) phi "
        f"{AR_PHI} on the per-second level (stationary spread {AR_SD:.0%}), lognormal spread "
        f"{REQUEST_SIGMA} per request, {RATE_PER_S:g} req/s per setting; {shape} ({looks} looks"
        + (
            "; quick mode: the main job's max_s is 120 s, 12 looks)"
            if quick
            else ", the main job's)"
        )
    )
    breakdown = "; ".join(_truth_line(t, trials[t.key], judged[t.key]) for t in cases)
    pairs = [
        (trial, j) for t in cases for trial, j in zip(trials[t.key], judged[t.key], strict=True)
    ]
    equal = [  # the truths whose two costs are the same by construction: (a), (b) and (d)
        trial
        for t in cases
        if math.isclose(*(cost_per_million(s) for s in t.settings))
        for trial in trials[t.key]
    ]
    return [
        _error_figure(
            "wrong pick",
            {t.key: [j.wrong_pick for j in judged[t.key]] for t in cases},
            cases,
            quick=quick,
            detail=f"{setup}. {breakdown}",
            said={t.key: [j.said for j in judged[t.key] if j.wrong_pick] for t in cases},
            mechanism=_mechanism(
                [trial for trial, j in pairs if j.wrong_pick], looks, equal, shape.round_s
            ),
        ),
        _error_figure(
            "wrong order or false tie",
            {t.key: [j.wrong_order for j in judged[t.key]] for t in cases},
            cases,
            quick=quick,
            detail=setup,
            said={t.key: [j.said for j in judged[t.key] if j.wrong_order] for t in cases},
            mechanism=_mechanism(
                [trial for trial, j in pairs if j.wrong_order], looks, equal, shape.round_s
            ),
        ),
        _look_time_figure([trial for t in cases for trial in trials[t.key]], shape, str(steal)),
    ]


def _mechanism(errors: list[Trial], looks: int, equal_costs: list[Trial], round_s: int) -> str:
    """What the erring trials had in common, counted: the rule applied and how the verdict and
    the last look (the same data) classified the cost difference; and how often the verdict's
    95 % cost interval missed an equal-cost truth, after one round and after more."""
    if not errors:
        return ""
    patterns = Counter(
        f"rule {t.rule}"
        + (
            f", cost {t.cost_call[0]} by the verdict / {t.cost_call[1]} by a plain 95 % interval"
            if t.cost_call
            else ""
        )
        for t in errors
    )
    text = "counted: " + ", ".join(f"{p} ×{n}" for p, n in patterns.most_common())
    apart = sum(1 for t in errors if t.rule == "cost" and t.cost_call and t.cost_call[0] != "same")
    if apart:
        text += (
            f". In {apart} of {len(errors)} the verdict's interval of the cost difference, widened "
            f"×{look_widening(looks):.2f} for {looks} looks as the looks' were, did not hold "
            f"zero nor lie within the ±{errors[0].verdict.cost_tolerance_pct or 0:g} % margin, so "
            "the one measured cheaper won on cost"
        )
    if equal_costs:
        one = [t for t in equal_costs if max(t.measured_s.values()) <= round_s]
        more = [t for t in equal_costs if max(t.measured_s.values()) > round_s]
        text += (
            f". Of the {len(equal_costs)} runs whose two costs are equal by construction, the "
            f"plain 95 % interval of their difference excluded zero in "
            f"{_missed_zero(equal_costs, looks)} (5 % expected): "
            f"{_missed_zero(one, looks)} of {len(one)} that "
            f"ended after one {round_s} s round (its interval rests on {round_s} one-second and "
            f"{round_s // 2} two-second batches, against a level that persists from second to "
            f"second, AR(1) phi {AR_PHI}), {_missed_zero(more, looks)} of {len(more)} that ran "
            "longer "
            "(the spread between rounds counted)"
        )
    return text


def _missed_zero(trials: list[Trial], looks: int) -> int:
    """How many trials' plain 95 % interval of the cost difference excluded zero."""
    missed = 0
    for t in trials:
        if t.verdict.cost_differences:
            low, high = plain_interval(t.verdict.cost_differences[0], looks)
            missed += low > 0 or high < 0
    return missed


def _truth_line(truth: Truth, trials: list[Trial], judged: list[Judged]) -> str:
    rules = Counter(str(t.rule) + (" (too close)" if t.too_close else "") for t in trials)
    picks = Counter(str(t.pick) for t in trials)
    mean_s = statistics.mean(statistics.mean(t.measured_s.values()) for t in trials)
    return (
        f"({truth.key}) {truth.name}: wrong pick {sum(j.wrong_pick for j in judged)}/"
        f"{len(judged)}, wrong order or false tie {sum(j.wrong_order for j in judged)}/"
        f"{len(judged)}; picks "
        + ", ".join(f"{p} ×{n}" for p, n in picks.most_common())
        + "; rules "
        + ", ".join(f"{r} ×{n}" for r, n in rules.most_common())
        + f"; {mean_s:.0f} s measured per setting on average, "
        f"{sum(t.at_max for t in trials)} stopped at max_s still open"
    )


def _error_figure(
    kind: str,
    flags: dict[str, list[bool]],
    cases: list[Truth],
    *,
    quick: bool,
    detail: str,
    said: dict[str, list[str]],
    mechanism: str,
) -> Figure:
    counts = {key: sum(values) for key, values in flags.items()}
    sizes = {key: len(values) for key, values in flags.items()}
    total, wrong = sum(sizes.values()), sum(counts.values())
    rate = wrong / total if total else float("nan")
    per = ", ".join(f"({key}) {counts[key]}/{sizes[key]}" for key in flags)
    if quick:
        # A few seeds cannot show ≤ 5 %, only refuse rates well above it (bench/trust.py).
        bound = false_call_bound(total, ERROR_GOAL)
        bounds = {key: false_call_bound(size, ERROR_GOAL) for key, size in sizes.items()}
        goal = f"< {bound} of {total}"
        passed = wrong < bound and all(counts[key] < bounds[key] for key in flags)
        judged = (
            f"quick: {total} runs can only rule out a rate above 5 % (at exactly 5 %, {bound} "
            f"or more errors of {total}, or {max(bounds.values())} of {max(sizes.values())} "
            "for one truth, happen ≤ 5 % of the time; the full bench judges ≤ 5 %)"
        )
    else:
        goal = "≤ 5 %"
        passed = rate <= ERROR_GOAL and all(counts[k] / sizes[k] <= ERROR_GOAL for k in flags)
        judged = "goal: each truth and all together ≤ 5 %"
    why = "; ".join(
        f"({truth.key}) {truth.name}: {counts[truth.key]} of {sizes[truth.key]}: "
        + "; ".join(said[truth.key][:5])
        for truth in cases
        if counts[truth.key]
    )
    return Figure(
        name=f"false stops: {kind}, synthetic streams of known truth (confident looks)",
        goal=goal,
        value=rate * 100,
        unit="%",
        passed=passed,
        detail=f"{wrong} of {total} ({per}); {judged}; {detail}",
        why_missed=(why + (f". {mechanism}" if mechanism else "")) or "no errors",
    )


def _look_time_figure(trials: list[Trial], shape: Shape, steal: str) -> Figure:
    """The analysis a confident run does between rounds, per look, by how many rounds in."""
    everything = [s for trial in trials for s in trial.look_s]
    by_look: dict[int, list[float]] = {}
    for trial in trials:
        for number, seconds in enumerate(trial.look_s, start=1):
            by_look.setdefault(number, []).append(seconds)
    growth = ", ".join(
        f"{number}: {statistics.median(values) * 1000:.0f}"
        for number, values in sorted(by_look.items())
    )
    worst = max(everything)
    verdicts = [trial.verdict_s for trial in trials]
    return Figure(
        name="confident run: analysis time per look (analyse + still_open, 2 settings)",
        goal="(reported)",
        value=statistics.median(everything) * 1000,
        unit="ms",
        passed=True,
        detail=f"median {statistics.median(everything) * 1000:.0f} ms, max {worst * 1000:.0f} "
        f"ms over {len(everything)} looks; median by look number (ms) {growth}; the worst is "
        f"{worst / shape.round_s:.1%} of a {shape.round_s} s round; {RATE_PER_S * shape.round_s:g} "
        f"requests per setting per round; the final verdict (analyse + run_verdict) median "
        f"{statistics.median(verdicts) * 1000:.0f} ms; {steal}",
    )
