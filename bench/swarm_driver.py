"""python -m bench.swarm_driver JSON: memsweep's own master (runner.load.Swarm) running steps.

A subprocess, because importing Locust monkey-patches this interpreter with gevent. Prints one
JSON line when the workers are up ({"event": "ready", pids}) and one per step, with what the
master merged from the workers' HDR histograms, as the sweep would record it.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from runner.analysis import latency
from runner.load import StepTraffic, Swarm
from runner.scenario import ClosedLoad, RequestSpec, Stage, ThinkTime

# The same POST as bench/bare_locustfile.py (an echo request for the handler).
ECHO = {"operation": "echo", "payload": {"k": "v"}}


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def main() -> None:
    args = json.loads(sys.argv[1])
    load = ClosedLoad(
        stages=[Stage(users=args["users"], duration_s=args["seconds"])],
        think_time=ThinkTime(min_s=args.get("think_s", 0.0), max_s=args.get("think_s", 0.0)),
    )
    # What runner/sweep.py gives the swarm for a step (build_step_config builds the rest).
    traffic = StepTraffic(
        url=args["url"],
        headers={"x-api-key": "bench"},
        requests=[RequestSpec(name="echo", body=ECHO)],
    )
    with Swarm(local_workers=args["workers"]) as swarm:
        say(event="ready", master=os.getpid(), workers=[p.pid for p in swarm.processes])
        for index in range(args.get("steps", 1)):
            data = swarm.run_step(
                step_id=f"bench{index}",
                traffic=traffic,
                load=load,
                warmup_s=args.get("warmup_s", 0),
            )
            summary = latency(data.total)
            say(
                event="step",
                requests=summary.count,
                failures=sum(failures for _, failures in data.counts.values()),
                errors=data.errors,
                p50_ms=summary.p50,
                mean_ms=summary.mean,
                p99_ms=summary.p99,
                per_worker=data.per_worker,
                lost=data.lost_workers,
            )


if __name__ == "__main__":
    main()
