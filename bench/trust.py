"""Does the verdict survive a rerun, and is a starved host caught? Real runs, side by side.

- A/A false significance: consecutive identical runs compared with `report A B`'s analysis;
  the share of (size, latency metric) pairs called significant (goal ≤ 5 %).
- Repeatability: K identical runs of a short 3-size scenario recommend the same size K/K.
- Saturation detection: the same runs beside busy loops pinned to every core (bounded in
  time) must be flagged degraded, and the quiet ones must not: miss and false-alarm rates.

Idle and busy runs alternate so a drift of the host hits both.

--quick (CI) makes no runs of its own when tests/test_trust_e2e.py has just made the same
ones (two quiet runs and one beside CPU hogs, 4 users, 6 s steps, 2 s warm-up, one worker):
.ci/run names a folder in $MEMSWEEP_TRUST_RUNS, the tests leave their results.json there, and
the figures are worked out from them (110 s of CI saved). Without them it runs its own.
"""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import Figure, cpu_hogs
from runner.analysis import RUN_TO_RUN_MARGIN, analyse, compare_run_pair
from runner.results import Results, Step, read_results
from runner.stack import PROJECT_ROOT

SCENARIO = """\
name: trust bench
target: {kind: local}
sweep: {memory_mb: %(sizes)s, settle_s: 0, warmup_s: 2}
load:
  stages: [{users: 4, duration_s: %(duration)s}]
  think_time: {min_s: 0.02, max_s: 0.05}
requests:
  - name: list
    body: {operation: list, payload: {}}
seed: {items: 5, reset: true}
thresholds: {p95_ms: 50}
workers: {local: 1}
"""
RUN_TIMEOUT_S = 600
LATENCY_METRICS = ("p50_ms", "p95_ms", "mean_ms")
# Where tests/test_trust_e2e.py leaves its runs for the quick bench (idle-*.json, busy-*.json).
TRUST_RUNS_ENV = "MEMSWEEP_TRUST_RUNS"
AA_GOAL = 0.05  # share of identical-run comparisons called a change


def _run(scenario: Path, out: Path, run_id: str) -> Results:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "runner",
            str(scenario),
            "--out",
            str(out),
            "--run-id",
            run_id,
            "--quiet",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        timeout=RUN_TIMEOUT_S,
        check=False,  # exit 3 is what a busy run should give
    )
    return read_results(out / run_id / "results.json")


def verdict_trust(*, quick: bool) -> list[Figure]:
    if quick:
        given = _runs_from_tests()
        if given is not None:
            source = f"runs of tests/test_trust_e2e.py (${TRUST_RUNS_ENV})"
            return [
                _aa(given[0], quick=True, source=source),
                _repeatability(given[0]),
                *_saturation(*given),
            ]
    idle_runs = 2 if quick else 4
    busy_runs = 1 if quick else 2
    sizes = "[128, 1024]" if quick else "[128, 512, 1024]"
    idle: list[Results] = []
    busy: list[Results] = []
    with tempfile.TemporaryDirectory() as scratch:
        scenario = Path(scratch) / "trust.yaml"
        text = SCENARIO % {"sizes": sizes, "duration": 6 if quick else 10}
        if quick:  # calibration is a start-up check, not what this bench measures (~4 s a run)
            text = text.replace("{kind: local}", "{kind: local, calibrate: false}")
        scenario.write_text(text)
        order = ["idle"] * idle_runs
        for slot in range(busy_runs):  # alternate: idle, busy, idle, busy, idle, ...
            order.insert(2 * slot + 1, "busy")
        for index, kind in enumerate(order):
            if kind == "busy":
                with cpu_hogs():
                    busy.append(_run(scenario, Path(scratch), f"busy{index}"))
            else:
                idle.append(_run(scenario, Path(scratch), f"idle{index}"))
    return [_aa(idle, quick=quick), _repeatability(idle), *_saturation(idle, busy)]


def _runs_from_tests() -> tuple[list[Results], list[Results]] | None:
    """The quiet and the busy runs tests/test_trust_e2e.py left in $MEMSWEEP_TRUST_RUNS."""
    folder = os.environ.get(TRUST_RUNS_ENV)
    if not folder:
        return None
    idle = [read_results(path) for path in sorted(Path(folder).glob("idle-*.json"))]
    busy = [read_results(path) for path in sorted(Path(folder).glob("busy-*.json"))]
    return (idle, busy) if len(idle) >= 2 and busy else None


def false_call_bound(comparisons: int, rate: float = AA_GOAL) -> int:
    """Fewest calls among `comparisons` that a true `rate` gives at most 5 % of the time.

    With few comparisons a rate of 5 % cannot be told from 0 % or 20 %: one call in 6 happens
    26 % of the time at exactly 5 %. A quick run can only rule out rates well above it.
    """
    for calls in range(comparisons + 1):
        tail = sum(
            math.comb(comparisons, k) * rate**k * (1 - rate) ** (comparisons - k)
            for k in range(calls, comparisons + 1)
        )
        if tail <= 0.05:
            return calls
    return comparisons + 1


def _aa(runs: list[Results], *, quick: bool, source: str = "") -> Figure:
    analyses = [analyse(run) for run in runs]
    called = by_interval = total = 0
    significant: list[str] = []
    for a, b in itertools.pairwise(analyses):
        for row in compare_run_pair(a, b).differences:
            if row.metric not in LATENCY_METRICS or row.significant is None:
                continue
            total += 1
            assert row.low is not None and row.high is not None and row.delta is not None
            by_interval += row.low > 0 or row.high < 0
            if row.significant:
                called += 1
                significant.append(f"{row.memory_mb} MB {row.metric} {row.delta:+.1f} ms")
    rate = called / total if total else float("nan")
    deffs = [f"{s.memory_mb} MB {s.deff:.1f}" for a in analyses for s in a.settings]
    detail = (
        f"{called} of {total} (size, metric) pairs over {len(runs) - 1} pair(s) of identical "
        f"runs called a change ({by_interval} by the interval alone, before the run-to-run "
        f"margin of {RUN_TO_RUN_MARGIN:.0%}); design effects {', '.join(deffs)}"
        + (f"; {source}" if source else "")
    )
    if quick:
        # A handful of comparisons cannot show ≤ 5 %: it can only refuse rates well above it.
        bound = false_call_bound(total)
        goal = f"< {bound} of {total} (rate ≤ 5 % not ruled out)"
        passed = total > 0 and called < bound
        detail += (
            f"; quick: {total} comparisons can only rule out a rate above 5 %: at exactly 5 % "
            f"{bound} or more calls happen ≤ 5 % of the time (the full bench's 27 judge ≤ 5 %)"
        )
    else:
        goal, passed = "≤ 5 %", total > 0 and rate <= AA_GOAL
    return Figure(
        name="A/A false significance (identical runs compared)",
        goal=goal,
        value=rate * 100,
        unit="%",
        passed=passed,
        detail=detail,
        why_missed=(
            f"called a change: {'; '.join(significant)}: shifts between runs minutes apart on "
            f"this host beyond both the intervals and the {RUN_TO_RUN_MARGIN:.0%} margin"
            if significant
            else "no comparable pairs"
        ),
    )


def _repeatability(runs: list[Results]) -> Figure:
    picks = [run.verdict.recommended_mb if run.verdict else None for run in runs]
    most = max(set(picks), key=picks.count)
    same = picks.count(most)
    levels = [run.verdict.confidence.level if run.verdict else "none" for run in runs]
    return Figure(
        name=f"repeatability: same recommendation in K={len(runs)} identical runs",
        goal="K/K",
        value=same / len(runs) * 100,
        unit="%",
        passed=same == len(runs) and most is not None,
        detail=f"picks {picks}; confidence {levels}",
        why_missed=f"picks {picks} (confidence {levels}); "
        + "; ".join(
            f"{run.run_id}: {run.verdict.confidence.statement if run.verdict else 'no verdict'}"
            for run in runs
        ),
    )


def _saturation(idle: list[Results], busy: list[Results]) -> list[Figure]:
    idle_steps = [step for run in idle for step in run.steps]
    busy_steps = [step for run in busy for step in run.steps]
    false_alarms = [step for step in idle_steps if step.trust.degraded]
    missed = [step for step in busy_steps if not step.trust.degraded]

    def delivered(steps: list[Step]) -> str:
        return ", ".join(
            f"{s.memory_mb} MB {s.trust.cpu.delivered:.2f}"
            for s in steps
            if s.trust.cpu is not None and s.trust.cpu.delivered is not None
        )

    return [
        Figure(
            name="saturation detection: steps beside CPU hogs not flagged (miss rate)",
            goal="0 %",
            value=len(missed) / len(busy_steps) * 100 if busy_steps else float("nan"),
            unit="%",
            passed=bool(busy_steps) and not missed,
            detail=f"{len(busy_steps) - len(missed)} of {len(busy_steps)} flagged; CPU delivered "
            f"{delivered(busy_steps)}",
            why_missed="not flagged: "
            + "; ".join(f"step {s.index} {s.memory_mb} MB {s.trust.checked}" for s in missed),
        ),
        Figure(
            name="saturation detection: quiet steps flagged (false-alarm rate)",
            goal="0 %",
            value=len(false_alarms) / len(idle_steps) * 100 if idle_steps else float("nan"),
            unit="%",
            passed=bool(idle_steps) and not false_alarms,
            detail=f"{len(false_alarms)} of {len(idle_steps)} flagged; CPU delivered "
            f"{delivered(idle_steps)}",
            why_missed="flagged: "
            + "; ".join(f"step {s.index} {s.memory_mb} MB: {s.trust.causes}" for s in false_alarms),
        ),
    ]
