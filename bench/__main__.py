"""python -m bench [--quick] [--only NAME ...]: print the figures, write bench/RESULTS.md."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from bench import (
    fidelity,
    generator,
    local_stack,
    master_scale,
    sequential,
    sweep_overhead,
    trust,
    worker_join,
)
from bench.common import BENCH_DIR, Figure, machine_description, versions

# RESULTS.md below this line is written by hand (what changed and why) and kept by every run.
NOTES_MARKER = "<!-- notes below are kept across runs -->"

BENCHMARKS: dict[str, Callable[..., Figure | list[Figure]]] = {
    "front-overhead": local_stack.front_overhead,
    "vs-serverless-offline": local_stack.versus_serverless_offline,
    "cpu-scaling": fidelity.cpu_scaling,
    "tutorial-shape": fidelity.tutorial_shape,
    "sweep-overhead": sweep_overhead.per_step_overhead,
    "generator-efficiency": generator.generator_efficiency,
    "latency-bias": generator.latency_bias,
    "worker-scaling": generator.worker_scaling,
    "master-memory": master_scale.master_memory,
    "worker-join": worker_join.worker_join,
    "verdict-trust": trust.verdict_trust,
    "confident-verdict-time": sequential.confident_verdict_time,
    "stable-pick": sequential.stable_pick,
    "false-stops": sequential.false_stops,
}


def render(figures: list[Figure], *, quick: bool, seconds: float) -> str:
    lines = [
        "# memsweep benchmark results",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}"
        f"{' (quick mode)' if quick else ''}, {seconds:.0f} s",
        f"- machine: {machine_description()}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()),
        "",
        "Each figure is measured side by side in this one run; absolute numbers are context.",
        "",
        "| figure | goal | measured | met | detail |",
        "|---|---|---|---|---|",
    ]
    for figure in figures:
        met = "yes" if figure.passed else "**no**"
        lines.append(
            f"| {figure.name} | {figure.goal} | {figure.shown} | {met} | {figure.detail} |"
        )
    misses = [figure for figure in figures if not figure.passed]
    if misses:
        lines += ["", "## Goals missed in this run, and why (measured)", ""]
        lines += [
            f"- **{figure.name}**: {figure.why_missed or 'no explanation recorded'}"
            for figure in misses
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples (for CI)")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--no-write", action="store_true", help="don't write bench/RESULTS.md")
    args = parser.parse_args(argv)
    started = time.monotonic()
    figures: list[Figure] = []
    for name in args.only or list(BENCHMARKS):
        print(f"== {name}", flush=True)
        began = time.monotonic()
        result = BENCHMARKS[name](quick=args.quick)
        print(f"   ({time.monotonic() - began:.0f} s)", flush=True)
        for figure in result if isinstance(result, list) else [result]:
            figures.append(figure)
            print(
                f"   {figure.shown:>10}  goal {figure.goal:<16} "
                f"{'ok  ' if figure.passed else 'MISS'}  {figure.name}\n"
                f"{'':>14}{figure.detail}",
                flush=True,
            )
    text = render(figures, quick=args.quick, seconds=time.monotonic() - started)
    if not args.no_write:
        path = BENCH_DIR / "RESULTS.md"
        old = path.read_text() if path.exists() else ""
        notes = old[old.index(NOTES_MARKER) :] if NOTES_MARKER in old else ""
        path.write_text(text + ("\n" + notes if notes else ""))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
