"""Measurement and analysis: what a step measured, whether it may be believed, and what the
numbers say. Pure: values in, values out; nothing here touches a target, a process or Locust.

- `_step_data`: a step's traffic as the master merged it from the workers' reports
- `_measure`: a step's figures from the workers' step data and what the sweep read
- `_trust`: whether a step may be believed (CPU delivered vs modelled, generator CPU, host)
- `_stats`: intervals and differences on HDR histograms, respecting serial correlation
- `_cost`: the dated price table and cost per 1M requests
- `_test_cost`: what a run on the aws target costs by itself, estimated before, measured after
- `_decision`: cost intervals, ties on cost and the rule among them, how often the pick holds
- `_sequential`: which settings a confident run must keep measuring, and why
- `_analyse`: a run's results into its analysis: settings pooled from steps, comparisons
- `_axes`: the order of settings, pairs that differ on one axis, what each axis moves
- `_verdict`: threshold verdicts, the recommendation and how sure it is, the verdict as data
- `_run_pair`: two runs compared setting by setting (`report A B`)
"""

from runner.analysis._analyse import analyse
from runner.analysis._axes import AxisEffect, effects_sentence, point_order
from runner.analysis._cost import PRICES_US_EAST_1, money
from runner.analysis._decision import look_widening, relation_of
from runner.analysis._measure import (
    STOPS_THE_SWEEP,
    Load,
    Measured,
    Readings,
    load_tick,
    measure_step,
    step_window,
    with_late_metrics,
)
from runner.analysis._run_pair import (
    RUN_TO_RUN_MARGIN,
    RunComparison,
    RunDifference,
    compare_run_pair,
)
from runner.analysis._sequential import NextRound, next_round, still_open
from runner.analysis._setting import Setting, Verdict
from runner.analysis._stats import latency
from runner.analysis._step_data import SecondStats, StepData, Tick
from runner.analysis._test_cost import (
    charges_lines,
    estimate_test_cost,
    measured_test_cost,
    quantity_text,
)
from runner.analysis._trust import MIN_DELIVERED, host_snapshot
from runner.analysis._verdict import Analysis, recommended_point, run_verdict

__all__ = [
    "MIN_DELIVERED",
    "PRICES_US_EAST_1",
    "RUN_TO_RUN_MARGIN",
    "STOPS_THE_SWEEP",
    "Analysis",
    "AxisEffect",
    "Load",
    "Measured",
    "NextRound",
    "Readings",
    "RunComparison",
    "RunDifference",
    "SecondStats",
    "Setting",
    "StepData",
    "Tick",
    "Verdict",
    "analyse",
    "charges_lines",
    "compare_run_pair",
    "effects_sentence",
    "estimate_test_cost",
    "host_snapshot",
    "latency",
    "load_tick",
    "look_widening",
    "measure_step",
    "measured_test_cost",
    "money",
    "next_round",
    "point_order",
    "quantity_text",
    "recommended_point",
    "relation_of",
    "run_verdict",
    "step_window",
    "still_open",
    "with_late_metrics",
]
