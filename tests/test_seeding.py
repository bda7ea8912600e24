"""Seeding and reset under the usage plan: paced to the plan, retried
with bounded backoff, one clear line when it cannot finish, and the local stack's reset done
in its own dynalite. Real parts: the local stack, a scripted HTTP server, `python -m runner`."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from runner.emulator import _dynamodb as dynamodb
from runner.load._seeding import RetryPolicy, Seeder, SeedingFailed, seed_table
from runner.scenario import LocalTarget, Seed
from runner.stack import PROJECT_ROOT, RateLimit
from runner.targets._local import LocalStackTarget

# A usage plan low enough that an unpaced seeding pass of a few hundred requests overruns it.
PLAN_RATE = 40
PLAN_BURST = 10
# Quick retries for in-process tests of the retry rules (the defaults are for real targets).
QUICK = RetryPolicy(retries=3, window_s=10.0, base_s=0.05, cap_s=0.2)


# --- the local stack with a low usage plan ---------------------------------------------------


def stack_with_plan(run_dir: Path, *, rate: int, burst: int) -> LocalStackTarget:
    target = LocalStackTarget(
        LocalTarget(calibrate=False),
        run_dir=str(run_dir),
        params={"throttleRate": str(rate), "throttleBurst": str(burst), "memory": "1024"},
    )
    target.start()
    return target


@pytest.fixture(scope="module")
def low_plan_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackTarget]:
    target = stack_with_plan(tmp_path_factory.mktemp("seeding"), rate=PLAN_RATE, burst=PLAN_BURST)
    yield target
    target.stop()


def table_client(target: LocalStackTarget) -> Any:
    assert target.stack is not None
    return dynamodb.local_client(target.stack.ready["dynamodb_endpoint"])


def table_name(target: LocalStackTarget) -> str:
    assert target.stack is not None
    return str(target.stack.ready["table"])


def put_directly(target: LocalStackTarget, ids: list[str]) -> None:
    """Write items straight into dynalite: no API request, no usage-plan token."""
    client = table_client(target)
    for start in range(0, len(ids), 25):  # BatchWriteItem takes at most 25 requests
        batch = ids[start : start + 25]
        client.batch_write_item(
            RequestItems={
                table_name(target): [{"PutRequest": {"Item": {"id": {"S": i}}}} for i in batch]
            }
        )


def ids_in_table(target: LocalStackTarget) -> set[str]:
    client = table_client(target)
    ids: set[str] = set()
    kwargs: dict[str, Any] = {"TableName": table_name(target)}
    for _ in range(1000):
        page = client.scan(**kwargs)
        ids.update(item["id"]["S"] for item in page["Items"])
        if "LastEvaluatedKey" not in page:
            return ids
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    raise AssertionError("scan did not end")


def invocations(target: LocalStackTarget) -> int:
    assert target.stack is not None
    return int(target.stack.status()["invocations"])


def test_given_the_stacks_usage_plan_then_the_target_reports_it(
    low_plan_stack: LocalStackTarget,
) -> None:
    assert low_plan_stack.rate_limit() == RateLimit(rate=PLAN_RATE, burst=PLAN_BURST)


def test_given_a_low_usage_plan_when_resetting_through_the_api_and_seeding_200_requests_then_no_429(
    low_plan_stack: LocalStackTarget,
) -> None:
    # GIVEN 100 items in the table and a plan of 40 req/s (burst 10: unpaced, the 8 senders
    # would spend it in their first round)
    old = [f"old-{n}" for n in range(100)]
    put_directly(low_plan_stack, old)
    before = invocations(low_plan_stack)
    new = [{"id": f"new-{n}", "n": n} for n in range(100)]
    # WHEN the API-side reset (list + a delete per item) and 100 creates run, paced to the plan
    with Seeder(
        url=low_plan_stack.url,
        headers=low_plan_stack.headers(),
        limit=low_plan_stack.rate_limit(),
    ) as seeder:
        seeder.clear_through_api()
        seeder.create(new)
    # THEN the stack answered no 429, every request reached the function, and the table
    # holds exactly the new items
    assert seeder.stats.throttled == 0, seeder.stats
    assert seeder.stats.retries == 0, seeder.stats
    assert seeder.stats.requests >= 200
    assert invocations(low_plan_stack) - before == seeder.stats.requests
    assert ids_in_table(low_plan_stack) == {item["id"] for item in new}


def test_given_a_plan_lower_than_believed_when_seeding_then_429s_slow_it_down_and_it_succeeds(
    tmp_path: Path,
) -> None:
    # GIVEN a stack whose plan allows 5 req/s (burst 2), any busy host serves faster than that,
    # and a seeder told the plan is 400 req/s
    target = stack_with_plan(tmp_path, rate=5, burst=2)
    try:
        # (12 items: the burst of 2 is spent by the third; at the plan's 5 req/s ~2 s of writes)
        items = [{"id": f"fast-{n}"} for n in range(12)]
        # WHEN it seeds 12 items
        with Seeder(
            url=target.url, headers=target.headers(), limit=RateLimit(rate=400, burst=800)
        ) as seeder:
            seeder.create(items)
        # THEN it met 429s, slowed down, and every item was written
        assert seeder.stats.throttled > 0, seeder.stats
        assert seeder.pacer.rate is not None and seeder.pacer.rate < 400 * 0.8
        assert ids_in_table(target) == {item["id"] for item in items}
    finally:
        target.stop()


def test_given_the_local_stack_when_a_step_resets_then_the_table_is_emptied_without_api_requests(
    low_plan_stack: LocalStackTarget,
) -> None:
    # GIVEN 300 items in the table
    put_directly(low_plan_stack, [f"stale-{n}" for n in range(300)])
    before = invocations(low_plan_stack)
    # WHEN a step's seeding resets the table and writes nothing
    result = seed_table(Seed(reset=True, items=0), low_plan_stack)
    # THEN the table is empty, cleared in dynalite, and the API served no request
    assert result.stats.cleared_directly
    assert result.stats.requests == 0
    assert ids_in_table(low_plan_stack) == set()
    assert invocations(low_plan_stack) == before


def test_given_reset_and_items_on_the_local_stack_then_only_the_creates_go_through_the_api(
    low_plan_stack: LocalStackTarget,
) -> None:
    put_directly(low_plan_stack, [f"stale-{n}" for n in range(50)])
    before = invocations(low_plan_stack)
    numbers = iter(range(1000))
    result = seed_table(
        Seed(reset=True, items=20, item={"id": "seed"}),
        low_plan_stack,
        # Locust's renderer would monkey-patch this test process; a numbering one will do
        render=lambda item: {**item, "id": f"{item['id']}-{next(numbers)}"},
    )
    assert result.stats.cleared_directly
    assert result.stats.requests == 20 and result.stats.throttled == 0
    assert ids_in_table(low_plan_stack) == set(result.ids)
    assert len(result.ids) == 20
    assert invocations(low_plan_stack) - before == 20


# --- a scripted target: 429 and 500 for a while, dropped connections, or never well --------


class Script:
    """What the scripted server answers, request by request (then `after`)."""

    def __init__(self, answers: list[int | str], after: int | str = 200) -> None:
        self.answers = list(answers)
        self.after = after
        self.seen: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def next(self, body: dict[str, Any]) -> int | str:
        with self.lock:
            self.seen.append(body)
            return self.answers.pop(0) if self.answers else self.after


@pytest.fixture
def scripted() -> Iterator[tuple[str, Script]]:
    script = Script([])

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            answer = script.next(body)
            if answer == "drop":  # the connection closes with no answer
                self.close_connection = True
                self.connection.close()
                return
            status = 200 if answer == "html" else int(answer)
            payload = json.dumps({"message": f"{status}"}).encode()
            if status == 200:
                payload = b"<html>a proxy page</html>" if answer == "html" else b"{}"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/dev/DynamoDBManager", script
    finally:
        server.shutdown()
        server.server_close()


def test_given_a_target_that_answers_429_then_500_then_recovers_then_seeding_succeeds(
    scripted: tuple[str, Script],
) -> None:
    url, script = scripted
    script.answers = [429] * 4 + [500, 502, 503, 504] + ["drop"] * 2
    items = [{"id": f"i{n}"} for n in range(20)]
    with Seeder(url=url, headers={}, limit=RateLimit(rate=200, burst=400)) as seeder:
        seeder.create(items)
    assert seeder.stats.throttled == 4
    assert seeder.stats.server_errors == 4
    assert seeder.stats.connection_errors == 2
    assert seeder.stats.retries == 10
    created = {body["payload"]["Item"]["id"] for body in script.seen}
    assert created == {item["id"] for item in items}


def test_given_a_target_that_never_recovers_then_seeding_failed_after_n_retries(
    scripted: tuple[str, Script],
) -> None:
    url, script = scripted
    script.after = 429
    seeder = Seeder(url=url, headers={}, limit=None, retry=QUICK)
    with seeder, pytest.raises(SeedingFailed) as failure:
        seeder.create([{"id": f"i{n}"} for n in range(20)])
    message = str(failure.value)
    assert message.startswith("seeding failed: create answered 429: ")
    assert " after 3 retries over " in message
    # the other greenlets stopped: no request kept retrying after the first gave up
    assert len(script.seen) <= 8 * (QUICK.retries + 1)


def test_given_a_refused_request_then_seeding_fails_at_once_naming_the_status(
    scripted: tuple[str, Script],
) -> None:
    url, script = scripted
    script.after = 403
    seeder = Seeder(url=url, headers={}, limit=None, retry=QUICK)
    with seeder, pytest.raises(SeedingFailed, match=r"^seeding failed: create answered 403: "):
        seeder.create([{"id": "one"}])
    assert len(script.seen) == 1


def test_given_a_200_that_is_not_json_then_seeding_fails_naming_it(
    scripted: tuple[str, Script],
) -> None:
    url, script = scripted
    script.answers = ["html"]
    seeder = Seeder(url=url, headers={}, limit=None, retry=QUICK)
    with seeder, pytest.raises(SeedingFailed, match=r"list answered 200 with a body that is not"):
        seeder.clear_through_api()


def test_given_a_closed_port_then_seeding_fails_after_its_retries(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    seeder = Seeder(url=f"http://127.0.0.1:{port}/x", headers={}, limit=None, retry=QUICK)
    with seeder, pytest.raises(SeedingFailed, match=r"^seeding failed: create: .* after 3 retries"):
        seeder.create([{"id": "one"}])


SWEEP = """\
name: seeding never recovers
target: {{kind: url, url: "{url}"}}
sweep: {{memory_mb: [128], settle_s: 0, warmup_s: 0}}
load:
  stages: [{{users: 1, duration_s: 2}}]
requests:
  - name: ping
    body: {{operation: ping}}
seed: {{items: 3, reset: true}}
workers: {{local: 1, wait_s: 30}}
"""


def test_given_a_sweep_whose_target_always_answers_429_then_one_line_and_exit_3(
    scripted: tuple[str, Script], tmp_path: Path
) -> None:
    # GIVEN a target that answers every request with 429
    url, script = scripted
    script.after = 429
    path = tmp_path / "scenario.yaml"
    path.write_text(SWEEP.format(url=url))
    # WHEN the sweep runs (in its own process, as a user runs it)
    done = subprocess.run(
        [sys.executable, "-m", "runner", str(path), "--out", str(tmp_path), "--quiet"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    # THEN it exits 3 with one line saying why, and no trace of any greenlet
    stderr = done.stderr
    assert done.returncode == 3, stderr
    lines = [line for line in stderr.splitlines() if "seeding failed" in line]
    assert len(lines) == 1, stderr
    assert "list answered 429" in lines[0] and " retries over " in lines[0], lines[0]
    assert "Traceback" not in stderr and "greenlet" not in stderr.lower(), stderr
