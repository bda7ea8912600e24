"""The baseline for memsweep's user: a bare FastHttpUser sending the same POST, nothing else."""

from __future__ import annotations

import json
import os

from locust import FastHttpUser, constant, task

BODY = json.dumps({"operation": "echo", "payload": {"k": "v"}})
HEADERS = {"Content-Type": "application/json", "x-api-key": "bench"}
URL = os.environ.get("BENCH_URL", "http://127.0.0.1/")


class BareUser(FastHttpUser):
    host = URL
    wait_time = constant(0)
    concurrency = 1

    @task
    def post(self) -> None:
        self.client.post(URL, data=BODY, headers=HEADERS)


# For the latency-bias figure only: full-resolution response times (Locust's own percentiles
# are rounded to whole milliseconds), written at exit. Off in the throughput runs.
if os.environ.get("BENCH_LATENCIES_OUT"):
    from locust import events

    _latencies: list[float] = []

    def _record(response_time: float, **_: object) -> None:
        _latencies.append(response_time)

    def _write(**_: object) -> None:
        with open(os.environ["BENCH_LATENCIES_OUT"], "w") as handle:
            json.dump(_latencies, handle)

    events.request.add_listener(_record)  # type: ignore[no-untyped-call]  # Locust: untyped
    events.quitting.add_listener(_write)  # type: ignore[no-untyped-call]
