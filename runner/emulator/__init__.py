"""The local stack: API Gateway, Lambda (with memory-to-CPU fidelity) and DynamoDB on one host.

It stands apart from the runner: it imports only the leaves (control_api, lambda_facts,
lambda_logs, stack, errors, children), and the runner reaches it over the control API
(runner/targets/_local_client.py), never by import; `python -m runner local` runs it.

- `_server`: the stack as one process: dynalite, the Lambda pool, both API fronts, the control API
- `_front`: what both API Gateway fronts share (gates, invoke, deadline, reply);
  `_apigw` (REST, payload 1.0) and `_httpapi` (HTTP API, payload 2.0) supply their own rules
- `_http`: a small HTTP/1.1 server core for the fronts and the Runtime API
- `_lambda_pool`: sandboxes behind an emulated Runtime API, cold starts, REPORT lines
- `_sandbox`: one execution environment (a process running the handler under awslambdaric)
- `_cgroups`: memory → CPU (cgroup v1, v2, or CPU-time pacing) and calibration
- `_peer`: which process is at the other end of a Runtime API connection
- `_deadlines`: many timeouts of one duration on one event-loop timer
- `_dynamodb`: dynalite on loopback, and the table serverless.yml defines
"""

from runner.emulator._cgroups import CALIBRATION_S, cpu_share
from runner.emulator._server import LocalStackOptions, check_memory, run

__all__ = ["CALIBRATION_S", "LocalStackOptions", "check_memory", "cpu_share", "run"]
