"""Does the verdict survive a rerun, and is a starved host caught? Real runs, side by side.

- A/A false significance: consecutive identical runs compared with `report A B`'s analysis;
  the share of (size, latency metric) pairs called significant (goal ≤ 5 %).
- Repeatability: K identical runs of a short 3-size scenario recommend the same size K/K.
- Saturation detection: the same runs beside busy loops pinned to every core (bounded in
  time) must be flagged degraded, and the quiet ones must not: miss and false-alarm rates.

Idle and busy runs alternate so a drift of the host hits both.
"""

from __future__ import annotations

import itertools
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
    idle_runs = 2 if quick else 4
    busy_runs = 1 if quick else 2
    sizes = "[128, 1024]" if quick else "[128, 512, 1024]"
    idle: list[Results] = []
    busy: list[Results] = []
    with tempfile.TemporaryDirectory() as scratch:
        scenario = Path(scratch) / "trust.yaml"
        scenario.write_text(SCENARIO % {"sizes": sizes, "duration": 6 if quick else 10})
        order = ["idle"] * idle_runs
        for slot in range(busy_runs):  # alternate: idle, busy, idle, busy, idle, ...
            order.insert(2 * slot + 1, "busy")
        for index, kind in enumerate(order):
            if kind == "busy":
                with cpu_hogs():
                    busy.append(_run(scenario, Path(scratch), f"busy{index}"))
            else:
                idle.append(_run(scenario, Path(scratch), f"idle{index}"))
    return [_aa(idle), _repeatability(idle), *_saturation(idle, busy)]


def _aa(runs: list[Results]) -> Figure:
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
    )
    return Figure(
        name="A/A false significance (identical runs compared)",
        goal="≤ 5 %",
        value=rate * 100,
        unit="%",
        passed=total > 0 and rate <= 0.05,
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
