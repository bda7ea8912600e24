"""The starter scenario `init` writes: short, commented, runs on the local stack as it is."""

from __future__ import annotations

from pathlib import Path
from string import Template

from runner.errors import BadInput

DEFAULT_NAME = "scenario.yaml"

STARTER = Template(
    """\
# A memsweep scenario: which Lambda memory size gives the best latency for the money?
#   $prog validate $file   check it and print the plan (steps, duration, requests)
#   $prog $file            run it; the answer is reports/<run-id>/report.html
#   $prog $file --memory 256,512 --duration 20s --dry-run   try changes without editing
# Every key, with its default, unit and range: scenarios/README.md in memsweep's repository;
# scenarios/scenario.schema.json gives an editor completion and checks.
name: my first sweep

# Where the load goes. local: the stack in serverless.yml, on this machine (no AWS account).
# aws: the deployed stack ({kind: aws, stage: dev}); url: any endpoint ({kind: url, url: ...}).
target: local

sweep:
  # The sizes to compare, 128-10240 MB: AWS Lambda Power Tuning's suggestion. The local stack
  # gives a size memory/1769 of a CPU: `validate` says which sizes this machine can serve.
  memory_mb: [128, 256, 512, 1024, 1536, 3008]
  # confident: measure the sizes in interleaved rounds (drift hits every size alike), each
  # size only until its part of the answer is known; fixed: run the load below once per size.
  until: confident
  round_s: 10                  # measured seconds per size per round
  min_s: 10                    # at least this much per size
  max_s: 60                    # at most this much per size
  warmup_s: 3                  # the first seconds of each round's load are not measured
  # settle_s: 2                # wait after each memory change

load:
  # Closed model: users who send, wait for the answer, think, and send again. A confident
  # sweep runs each round at the profile's peak users.
  stages:
    - {users: 5, duration_s: 30}
    # - {users: 20, duration_s: 60, ramp_s: 30}  # then ramp to 20 users over 30 s, hold
  think_time: {min_s: 0.5, max_s: 1.0}
  # Open model instead: requests arrive at a rate whatever the function does (replace the
  # three keys above with these):
  # model: open
  # rate_per_s: 20
  # duration_s: 30

requests:                      # the mix: each user picks the next request by weight
  - name: list
    weight: 3
    body: {operation: list, tableName: lambda-apigateway, payload: {}}
  - name: read
    weight: 1
    body: {operation: read, tableName: lambda-apigateway, payload: {Key: {id: "{{seeded}}"}}}
    # expect_status: 200       # statuses that count as success (one or a list)

seed:
  items: 20                    # written before each step; {{seeded}} picks one of them
  reset: true                  # empty the table before seeding

thresholds:                    # what a size must meet to be recommended
  p95_ms: 500
  error_rate: 0.01
"""
)


def starter_text(*, prog: str, file: str) -> str:
    return STARTER.substitute(prog=prog, file=file)


def write_starter(path: Path, *, prog: str) -> Path:
    """Write the starter to `path`, never over an existing file."""
    text = starter_text(prog=prog, file=str(path))
    try:
        # O_EXCL: a file that appears between a check and the write is not overwritten either.
        with path.open("x", encoding="utf-8") as file:
            file.write(text)
    except FileExistsError:
        raise BadInput(
            f"{path}: already exists; give another file name (init FILE) or remove it"
        ) from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot write it: {exc.strerror or exc}") from None
    return path
