"""The local stack as a user meets it: real processes, sockets, cgroups and dynalite."""

from __future__ import annotations

import http.client
import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from runner.errors import SetupError
from runner.lambda_logs import parse_report, reports_in
from runner.targets import LocalStackProcess
from tests.conftest import (
    BEHAVIOURS_HANDLER,
    HANDLERS_DIR,
    StartStack,
    load_event,
    stack_args,
    start_stack,
)

CGROUP_ROOT = Path("/sys/fs/cgroup")


class Reply:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


def post(
    url: str,
    body: Any,
    *,
    headers: dict[str, str] | None = None,
    timeout: float = 60,
    method: str = "POST",
) -> Reply:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    try:
        connection.request(
            method,
            parts.path + (f"?{parts.query}" if parts.query else ""),
            body=data,
            headers=headers or {},
        )
        response = connection.getresponse()
        return Reply(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


def call(stack: LocalStackProcess, body: Any, **kwargs: Any) -> Reply:
    return post(stack.url, body, headers=stack.headers(), **kwargs)


def log_lines(stack: LocalStackProcess) -> list[str]:
    return Path(stack.log_path).read_text().splitlines()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def wait_until(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def cgroups_of(pid: int) -> list[Path]:
    found: list[Path] = []
    for controller in ("cpu", "memory"):
        parent = CGROUP_ROOT / controller / "memsweep"
        if parent.is_dir():
            found += [path for path in parent.iterdir() if path.name.startswith(f"{pid}-")]
    return found


@pytest.fixture(scope="module")
def real_stack(start_module_stack: StartStack) -> LocalStackProcess:
    """handler.py as serverless.yml deploys it, at 1024 MB (fast; memory is tested apart)."""
    return start_module_stack(*stack_args(memory_mb=1024))


@pytest.fixture(scope="module")
def behaviour_stack(start_module_stack: StartStack) -> LocalStackProcess:
    """The behaviours handler at 1769 MB (one full vCPU) with a 3 s function timeout."""
    return start_module_stack(*stack_args(memory_mb=1769, handler=BEHAVIOURS_HANDLER, timeout_s=3))


# --- the tutorial's requests through the front ----------------------------------------------


def test_given_the_tutorial_curl_requests_then_each_operation_works_through_the_front(
    real_stack: LocalStackProcess,
) -> None:
    for name in ("tutorial-create.json", "tutorial-read.json", "tutorial-update.json"):
        assert call(real_stack, load_event(name)).status == 200
    read = call(real_stack, load_event("tutorial-read.json")).json()
    assert read["Item"] == {"id": "1234ABCD", "number": 10}
    listed = call(real_stack, load_event("tutorial-list.json")).json()
    assert {"id": "1234ABCD", "number": 10} in listed["Items"]
    assert call(real_stack, load_event("tutorial-echo.json")).json() == {
        "somekey1": "somevalue1",
        "somekey2": "somevalue2",
    }
    assert call(real_stack, load_event("tutorial-ping.json")).json() == "pong"
    assert call(real_stack, load_event("tutorial-delete.json")).status == 200
    assert "Item" not in call(real_stack, load_event("tutorial-read.json")).json()


def test_given_no_api_key_then_403_forbidden(real_stack: LocalStackProcess) -> None:
    reply = post(real_stack.url, load_event("tutorial-ping.json"))
    assert (reply.status, reply.json()) == (403, {"message": "Forbidden"})
    wrong = post(real_stack.url, load_event("tutorial-ping.json"), headers={"x-api-key": "nope"})
    assert wrong.status == 403


def test_given_an_unknown_path_or_method_then_403_missing_authentication_token(
    real_stack: LocalStackProcess,
) -> None:
    base = real_stack.url.rsplit("/", 1)[0]
    for url, method in ((base + "/Other", "POST"), (real_stack.url, "GET")):
        reply = post(url, b"", headers=real_stack.headers(), method=method)
        assert (reply.status, reply.json()) == (403, {"message": "Missing Authentication Token"})


def test_given_a_body_over_10_mb_then_413(real_stack: LocalStackProcess) -> None:
    reply = call(real_stack, b"x" * (10 * 1024 * 1024 + 1))
    assert reply.status == 413
    assert call(real_stack, load_event("tutorial-ping.json")).status == 200


def test_given_a_bad_request_then_the_handlers_400_passes_through(
    real_stack: LocalStackProcess,
) -> None:
    reply = call(real_stack, {"operation": "drop_table"})
    assert reply.status == 400
    assert "unknown operation" in reply.json()["message"]


def test_given_200_concurrent_creates_then_every_acknowledged_write_is_readable(
    real_stack: LocalStackProcess,
) -> None:
    ids = [f"concurrent-{index:03d}" for index in range(200)]

    def create(item_id: str) -> tuple[str, int]:
        body = {"operation": "create", "payload": {"Item": {"id": item_id, "n": 1}}}
        return item_id, call(real_stack, body).status

    with ThreadPoolExecutor(max_workers=16) as pool:
        acknowledged = [item_id for item_id, status in pool.map(create, ids) if status == 200]

    def read(item_id: str) -> dict[str, Any]:
        body = {"operation": "read", "payload": {"Key": {"id": item_id}, "ConsistentRead": True}}
        result: dict[str, Any] = call(real_stack, body).json()
        return result

    with ThreadPoolExecutor(max_workers=16) as pool:
        items = list(pool.map(read, acknowledged))
    assert len(acknowledged) == 200
    assert [item.get("Item", {}).get("id") for item in items] == acknowledged


# --- the proxy event and the function's failures ---------------------------------------------


def test_given_a_request_then_the_handler_gets_a_rest_proxy_v1_event(
    behaviour_stack: LocalStackProcess,
) -> None:
    reply = post(
        behaviour_stack.url + "?a=1&a=2&b=x",
        {"action": "event"},
        headers={**behaviour_stack.headers(), "X-Custom": "yes"},
    )
    assert reply.status == 200
    body = reply.json()
    event = body["event"]
    assert event["httpMethod"] == "POST"
    assert event["path"] == event["resource"] == "/DynamoDBManager"
    assert event["headers"]["X-Custom"] == "yes"
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": ["x"]}
    assert event["queryStringParameters"] == {"a": "2", "b": "x"}
    assert json.loads(event["body"]) == {"action": "event"}
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["requestId"] == reply.headers["x-amzn-RequestId"]
    assert context["stage"] == "dev" and context["path"] == "/dev/DynamoDBManager"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert body["memory"] == "1769"
    assert 0 < body["remaining_ms"] <= 3000


def test_given_a_handler_that_raises_then_502_and_the_next_call_still_works(
    behaviour_stack: LocalStackProcess,
) -> None:
    reply = call(behaviour_stack, {"action": "raise"})
    assert (reply.status, reply.json()) == (502, {"message": "Internal server error"})
    assert call(behaviour_stack, {"action": "ping"}).status == 200
    assert any("RuntimeError: boom from the handler" in line for line in log_lines(behaviour_stack))


def test_given_a_malformed_proxy_response_then_502(behaviour_stack: LocalStackProcess) -> None:
    assert call(behaviour_stack, {"action": "malformed"}).status == 502


def test_given_a_base64_proxy_response_then_the_decoded_bytes_and_content_type(
    behaviour_stack: LocalStackProcess,
) -> None:
    reply = call(behaviour_stack, {"action": "binary"})
    assert reply.body == b"\x00\x01\x02"
    assert reply.headers["Content-Type"] == "application/octet-stream"


def test_given_a_handler_past_the_function_timeout_then_502_and_a_new_sandbox_serves_next(
    behaviour_stack: LocalStackProcess,
) -> None:
    before = call(behaviour_stack, {"action": "ping"}).json()["pid"]
    reply = call(behaviour_stack, {"action": "sleep", "seconds": 10})
    assert reply.status == 502
    assert any("Task timed out after 3.00 seconds" in line for line in log_lines(behaviour_stack))
    assert wait_until(lambda: not alive(before))
    assert call(behaviour_stack, {"action": "ping"}).status == 200


def test_given_a_sandbox_killed_mid_call_then_502_and_a_new_sandbox_serves_the_next_call(
    behaviour_stack: LocalStackProcess,
) -> None:
    # A warm sandbox first: with none idle (an earlier test retired it), the call below
    # starts one, and "fewer idle than sandboxes" held while its process did not exist yet:
    # every pid listed was killed, then the new sandbox served the call, 200 (issue 27: this
    # test failed 2 of 3 times in a -k selection, passed in the file's order).
    warm = call(behaviour_stack, {"action": "ping"}).json()["pid"]

    def running() -> bool:
        status = behaviour_stack.status()
        started = len(status["sandbox_pids"]) == status["sandboxes"]
        return started and status["idle_sandboxes"] < status["sandboxes"]

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(call, behaviour_stack, {"action": "sleep", "seconds": 2})
        assert wait_until(running)
        busy = set(behaviour_stack.status()["sandbox_pids"])
        assert warm in busy
        for pid in busy:
            os.kill(pid, signal.SIGKILL)
        assert pending.result().status == 502
    after = call(behaviour_stack, {"action": "ping"})
    assert after.status == 200
    assert after.json()["pid"] not in busy


def test_given_a_sandbox_that_crashes_itself_then_502_and_recovery(
    behaviour_stack: LocalStackProcess,
) -> None:
    assert call(behaviour_stack, {"action": "crash"}).status == 502
    assert call(behaviour_stack, {"action": "ping"}).status == 200
    assert any(
        "Runtime exited with error: signal: killed" in line for line in log_lines(behaviour_stack)
    )


def test_given_a_function_over_its_memory_size_then_it_is_killed_and_the_call_fails(
    behaviour_stack: LocalStackProcess,
) -> None:
    if behaviour_stack.status()["fidelity"] != "full":
        pytest.skip("no writable memory cgroup on this host: memory limits are not enforced")
    behaviour_stack.set_memory(128)
    try:
        assert call(behaviour_stack, {"action": "allocate", "mb": 16}).status == 200
        assert call(behaviour_stack, {"action": "allocate", "mb": 300}).status == 502
        assert call(behaviour_stack, {"action": "ping"}).status == 200
    finally:
        behaviour_stack.set_memory(1769)


def test_given_more_concurrent_calls_than_the_limit_then_the_extra_one_gets_500(
    config_json: Path,
    tmp_path: Path,
) -> None:
    stack = start_stack(
        config_json,
        tmp_path,
        "--handler",
        "behaviours.lambda_handler",
        "--code-dir",
        str(HANDLERS_DIR),
        "--concurrency",
        "2",
        "--no-usage-plan-throttle",
        "--memory",
        "1769",
    )
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            replies = list(
                pool.map(lambda _: call(stack, {"action": "sleep", "seconds": 1.5}), range(3))
            )
        statuses = sorted(reply.status for reply in replies)
        assert statuses == [200, 200, 500]
    finally:
        stack.stop()


def test_given_an_integration_slower_than_the_api_timeout_then_504(
    config_json: Path,
    tmp_path: Path,
) -> None:
    stack = start_stack(
        config_json,
        tmp_path,
        "--handler",
        "behaviours.lambda_handler",
        "--code-dir",
        str(HANDLERS_DIR),
        "--integration-timeout",
        "1",
        "--timeout",
        "10",
        "--memory",
        "1769",
    )
    try:
        reply = call(stack, {"action": "sleep", "seconds": 2})
        assert (reply.status, reply.json()) == (504, {"message": "Endpoint request timed out"})
        assert call(stack, {"action": "ping"}).status == 200
    finally:
        stack.stop()


def test_given_the_usage_plan_limits_then_bursts_beyond_them_get_429(
    tmp_path: Path,
) -> None:
    stack = LocalStackProcess(
        [
            "--param",
            "throttleRate=1",
            "--param",
            "throttleBurst=2",
            "--no-calibrate",
            "--log",
            str(tmp_path / "l.log"),
            "--handler",
            "behaviours.lambda_handler",
            "--code-dir",
            str(HANDLERS_DIR),
            "--memory",
            "1769",
        ]
    )
    with stack:
        statuses = [call(stack, {"action": "ping"}).status for _ in range(4)]
    assert statuses[:2] == [200, 200]
    assert 429 in statuses[2:]


# --- memory fidelity and cold starts ---------------------------------------------------------


def test_given_cpu_bound_work_then_128_mb_takes_far_longer_than_1769_mb(
    behaviour_stack: LocalStackProcess,
) -> None:
    def median_ms(memory: int) -> float:
        assert behaviour_stack.set_memory(memory)["memory_mb"] == memory
        event = call(behaviour_stack, {"action": "event"}).json()  # cold start outside the sample
        assert event["memory"] == str(memory)
        # ~25 ms of work at full speed: well past the few ms of unused per-CPU runtime the
        # kernel lets a throttled group carry over (Linux >= 5.4), which short calls escape.
        times = sorted(
            float(call(behaviour_stack, {"action": "spin", "units": 30}).json()["ms"])
            for _ in range(5)
        )
        return times[2]

    fast = median_ms(1769)
    slow = median_ms(128)
    behaviour_stack.set_memory(1769)
    # Nominal ratio 13.8; loose bound for a noisy 2-core host (bench/ measures it exactly).
    assert slow > 4 * fast, (slow, fast)


def test_given_new_sandboxes_then_exactly_one_init_duration_per_sandbox(
    config_json: Path,
    tmp_path: Path,
) -> None:
    stack = start_stack(
        config_json,
        tmp_path,
        "--handler",
        "behaviours.lambda_handler",
        "--code-dir",
        str(HANDLERS_DIR),
        "--memory",
        "1769",
        "--no-usage-plan-throttle",
    )
    try:
        for _ in range(3):
            call(stack, {"action": "ping"})  # one sandbox, reused
        with ThreadPoolExecutor(max_workers=3) as pool:  # three at once: two more sandboxes
            list(pool.map(lambda _: call(stack, {"action": "sleep", "seconds": 0.5}), range(3)))
        reports = list(reports_in(log_lines(stack)))
        status = stack.status()
    finally:
        stack.stop()
    assert len(reports) == 6
    assert reports[0].cold_start and not any(r.cold_start for r in reports[1:3])
    cold = [report for report in reports if report.cold_start]
    assert len(cold) == status["cold_starts"] == 3
    assert all(report.init_duration_ms and report.init_duration_ms > 0 for report in cold)
    for report in reports:
        assert report.memory_size_mb == 1769
        assert report.billed_duration_ms >= report.duration_ms
        assert report.max_memory_used_mb > 0


def test_given_a_memory_change_then_every_sandbox_is_replaced_and_reports_the_new_size(
    behaviour_stack: LocalStackProcess,
) -> None:
    old_pid = call(behaviour_stack, {"action": "ping"}).json()["pid"]
    status = behaviour_stack.set_memory(512)
    try:
        assert status["memory_mb"] == 512 and status["sandboxes"] == 0
        reply = call(behaviour_stack, {"action": "event"}).json()
        assert reply["memory"] == "512" and reply["pid"] != old_pid
        last = parse_report(log_lines(behaviour_stack)[-1])
        assert last is not None and last.memory_size_mb == 512 and last.cold_start
    finally:
        behaviour_stack.set_memory(1769)


def test_given_no_writable_cgroup_then_fidelity_is_degraded_and_memory_still_paces_cpu(
    config_json: Path,
    tmp_path: Path,
) -> None:
    stack = start_stack(
        config_json,
        tmp_path,
        "--handler",
        "behaviours.lambda_handler",
        "--code-dir",
        str(HANDLERS_DIR),
        "--cgroup",
        "none",
        "--memory",
        "512",
    )
    try:
        status = stack.status()
        call(stack, {"action": "ping"})
        started = time.perf_counter()
        inner = call(stack, {"action": "spin", "units": 3}).json()["ms"]
        outer = (time.perf_counter() - started) * 1000
    finally:
        stack.stop()
    assert (status["cgroup"], status["fidelity"]) == ("cpu-time-pacing", "degraded")
    # Unthrottled work, then held back as a 29 % CPU share would have: ~3.5x longer.
    assert outer > 2 * inner, (outer, inner)


def test_given_the_tutorials_original_handler_then_the_non_proxy_integration_serves_it(
    config_json: Path,
    tmp_path: Path,
) -> None:
    stack = start_stack(
        config_json,
        tmp_path,
        "--handler",
        "tutorial_handler.lambda_handler",  # in the project's root, the default code dir
        "--integration",
        "lambda",
        "--memory",
        "1024",
    )
    try:
        assert call(stack, load_event("tutorial-create.json")).status == 200
        listed = call(stack, load_event("tutorial-list.json"))
        echo = call(stack, load_event("tutorial-echo.json"))
    finally:
        stack.stop()
    assert listed.status == 200
    assert listed.json()["Items"] == [{"id": "1234ABCD", "number": 5}]
    assert echo.json() == {"somekey1": "somevalue1", "somekey2": "somevalue2"}


# --- stopping leaves nothing behind -----------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_given_a_signal_to_the_stack_then_no_orphan_process_and_no_leftover_cgroup(
    config_json: Path,
    tmp_path: Path,
    sig: int,
) -> None:
    stack = start_stack(
        config_json,
        tmp_path,
        "--handler",
        "behaviours.lambda_handler",
        "--code-dir",
        str(HANDLERS_DIR),
        "--memory",
        "1769",
    )
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda _: call(stack, {"action": "sleep", "seconds": 0.3}), range(2)))
    status = stack.status()
    dynalite = stack.ready["dynalite_pid"]
    assert dynalite is not None  # the stack's own dynalite (null only with another endpoint)
    children = [*status["sandbox_pids"], dynalite]
    assert len(status["sandbox_pids"]) == 2 and all(alive(pid) for pid in children)

    returncode = stack.stop(sig)

    assert returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 0)
    assert wait_until(lambda: not any(alive(pid) for pid in children)), children
    if sig == signal.SIGKILL:
        # A killed stack can't clean up; the next start removes its groups.
        start_stack(config_json, tmp_path, "--memory", "1769").stop()
    assert cgroups_of(stack.pid) == []


def test_given_bad_control_requests_then_403_or_400_naming_the_problem(
    real_stack: LocalStackProcess,
) -> None:
    from runner.errors import SetupError

    control = real_stack.ready["control_url"]
    assert post(control + "/memory", {"memory_mb": 512}).status == 403  # no token
    for body, message in (
        ({"memory_mb": "big"}, "memory_mb must be an integer, got 'big'"),
        ({"memory_mb": 64}, "memory 64 MB is outside Lambda's range 128-10240 MB"),
        ({"size": 512}, "bad request: 'memory_mb'"),
    ):
        with pytest.raises(SetupError) as raised:
            real_stack._control("POST", "/memory", body)
        assert message in str(raised.value)
    with pytest.raises(SetupError, match="must be a list of integers"):
        real_stack.calibrate(512)  # type: ignore[arg-type]
    assert real_stack.status()["memory_mb"] == 1024  # unchanged by any of it


def test_given_a_stack_that_cannot_start_then_setup_error_says_why() -> None:
    with pytest.raises(SetupError) as raised:
        LocalStackProcess(["--cgroup", "bogus"]).start()
    assert "the local stack did not start" in str(raised.value)
    assert "invalid choice: 'bogus'" in str(raised.value)


def test_given_a_handler_the_code_dir_lacks_then_the_stack_refuses_to_start_naming_it(
    config_json: Path,
    tmp_path: Path,
) -> None:
    with pytest.raises(SetupError) as raised:
        start_stack(config_json, tmp_path, "--handler", "handler.lambda_handlr")
    assert "the local stack did not start" in str(raised.value)
    assert "handler handler.lambda_handlr:" in str(raised.value)
    assert "defines no lambda_handlr at module level" in str(raised.value)
