"""The local stack's HTTP API front (payload format 2.0) and the axes beside memory, as a user
meets them: one real stack (processes, sockets, cgroups, dynalite) for the whole module.

The event and the response rules are checked against AWS's documented examples
(tests/events/httpapi-v2-event.json, httpapi-v2-responses.json).
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from runner.errors import BadInput, SetupError
from runner.lambda_logs import parse_report
from runner.scenario import LocalTarget
from runner.stack import PROJECT_ROOT
from runner.targets import LocalStackProcess
from runner.targets._local import HOST_ARCHITECTURE, LocalStackTarget
from tests.conftest import HANDLERS_DIR, StartStack, load_event, stack_args
from tests.test_local_stack import Reply, log_lines

HANDLER = "httpapi_behaviours.lambda_handler"
# Short enough for a test to pass it, long enough for a cold start on a busy CI host.
INTEGRATION_TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def stack(start_module_stack: StartStack) -> LocalStackProcess:
    return start_module_stack(
        *stack_args(memory_mb=1769, handler=HANDLER, timeout_s=4),
        *("--integration-timeout", str(INTEGRATION_TIMEOUT_S)),
    )


def send(
    url: str,
    body: bytes = b"",
    *,
    headers: list[tuple[str, str]] = (),  # type: ignore[assignment]
    method: str = "POST",
) -> Reply:
    """One request with headers as given, repeats included (a dict can't repeat a name)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        reply = Reply(response.status, dict(response.getheaders()), response.read())
        reply.all_headers = response.getheaders()  # type: ignore[attr-defined]
        return reply
    finally:
        connection.close()


def call(stack: LocalStackProcess, request: Any) -> Reply:
    """A JSON request to the HTTP API with the key."""
    key = [("x-api-key", stack.api_key or "")]
    return send(stack.urls["http"], json.dumps(request).encode(), headers=key)


def paths(document: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of a JSON document by its dotted path (objects only; lists are leaves)."""
    if not isinstance(document, dict):
        return {prefix: document}
    found: dict[str, Any] = {}
    for key, value in document.items():
        found |= paths(value, f"{prefix}.{key}" if prefix else key)
    return found


# What AWS's example has that this route cannot: it is a route without path parameters, on a
# stage without stage variables, reached without mutual TLS, behind no JWT authorizer.
NOT_HERE = (
    "pathParameters",
    "stageVariables",
    "requestContext.authentication",
    "requestContext.authorizer",
)
# Values that differ from request to request or from API to API.
VARYING = {
    "requestContext.accountId",
    "requestContext.apiId",
    "requestContext.domainName",
    "requestContext.domainPrefix",
    "requestContext.http.sourceIp",
    "requestContext.requestId",
    "requestContext.time",
    "requestContext.timeEpoch",
}
# The example is the $default route at /my/path; this stack's route is POST /DynamoDBManager.
ROUTE = {"routeKey", "rawPath", "requestContext.routeKey", "requestContext.http.path"}


# --- the event ----------------------------------------------------------------------------------


def test_given_the_documented_request_then_the_event_matches_awss_example_field_by_field(
    stack: LocalStackProcess,
) -> None:
    documented = load_event("httpapi-v2-event.json")
    del documented["_source"]
    query = documented["rawQueryString"]
    before = time.time()

    reply = send(
        f"{stack.urls['http']}?{query}",
        documented["body"].encode(),
        headers=[
            ("x-api-key", stack.api_key or ""),
            ("Header1", "value1"),
            ("Header2", "value1"),
            ("Header2", "value2"),
            ("Cookie", "cookie1; cookie2"),
            ("User-Agent", "agent"),
        ],
    )

    assert reply.status == 200
    event = reply.json()
    expected = {
        path: value for path, value in paths(documented).items() if not path.startswith(NOT_HERE)
    }
    got = paths(event)
    # Same fields (the request's own headers aside), each of the documented JSON type.
    assert {p for p in got if not p.startswith("headers.")} == {
        p for p in expected if not p.startswith("headers.")
    }
    for path, value in expected.items():
        assert type(got[path]) is type(value), path
        if path not in VARYING | ROUTE:
            assert got[path] == value, path
    assert event["routeKey"] == event["requestContext"]["routeKey"] == "POST /DynamoDBManager"
    assert event["rawPath"] == event["requestContext"]["http"]["path"] == "/DynamoDBManager"
    context = event["requestContext"]
    assert context["requestId"] == reply.headers["apigw-requestid"]
    assert re.fullmatch(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000", context["time"])
    assert before * 1000 - 1000 <= context["timeEpoch"] <= time.time() * 1000
    assert "cookie" not in event["headers"]  # the cookies went to their own field


def test_given_a_binary_body_and_no_query_then_base64_and_no_query_parameters(
    stack: LocalStackProcess,
) -> None:
    reply = send(stack.urls["http"], b"\xff\x00\xfe", headers=[("x-api-key", stack.api_key or "")])

    event = reply.json()
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\x00\xfe"
    assert event["rawQueryString"] == ""
    assert "queryStringParameters" not in event and "cookies" not in event


# --- the response rules ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", load_event("httpapi-v2-responses.json")["inferred"])
def test_given_a_documented_output_without_status_code_then_200_with_the_output_as_json(
    stack: LocalStackProcess, case: dict[str, Any]
) -> None:
    reply = call(stack, {"action": "return", "value": case["output"]})

    interpretation = case["interpretation"]
    assert reply.status == interpretation["statusCode"]
    assert reply.headers["Content-Type"] == interpretation["headers"]["content-type"]
    assert json.loads(reply.body) == json.loads(interpretation["body"]) == case["output"]


@pytest.mark.parametrize("output", [42, 2.5, [1, "a", None], True, None, {"statusCodes": 1}])
def test_given_any_other_json_without_status_code_then_200_with_it_as_the_body(
    stack: LocalStackProcess, output: Any
) -> None:
    reply = call(stack, {"action": "return", "value": output})

    assert (reply.status, reply.headers["Content-Type"]) == (200, "application/json")
    assert json.loads(reply.body) == output


def test_given_the_documented_formatted_response_then_its_status_headers_and_one_set_cookie_each(
    stack: LocalStackProcess,
) -> None:
    case = load_event("httpapi-v2-responses.json")["formatted"]

    reply = call(stack, {"action": "return", "value": case["output"]})

    expected = case["interpretation"]
    assert reply.status == expected["statusCode"]
    assert reply.body.decode() == expected["body"]
    headers: list[tuple[str, str]] = reply.all_headers  # type: ignore[attr-defined]
    lowered = [(name.lower(), value) for name, value in headers]
    assert [v for n, v in lowered if n == "set-cookie"] == expected["headers"]["set-cookie"]
    assert ("headername", "headerValue") in lowered
    assert ("content-type", "text/plain") in lowered


@pytest.mark.parametrize(
    "request_body",
    [
        {"action": "raise"},
        {"action": "return", "value": {"statusCode": "200", "body": "status is a string"}},
        {"action": "return", "value": {"statusCode": 200, "body": {"not": "a string"}}},
    ],
    ids=["function error", "status code not a number", "body not a string"],
)
def test_given_a_function_error_or_a_malformed_response_then_500_and_the_next_call_works(
    stack: LocalStackProcess, request_body: dict[str, Any]
) -> None:
    reply = call(stack, request_body)

    assert (reply.status, reply.json()) == (500, {"message": "Internal Server Error"})
    assert call(stack, {}).json() == "httpapi_behaviours"


def test_given_an_integration_slower_than_the_api_timeout_then_503_service_unavailable(
    stack: LocalStackProcess,
) -> None:
    started = time.monotonic()
    reply = call(stack, {"action": "sleep", "seconds": INTEGRATION_TIMEOUT_S + 0.3})

    assert (reply.status, reply.json()) == (503, {"message": "Service Unavailable"})
    assert time.monotonic() - started < INTEGRATION_TIMEOUT_S + 0.3


# --- what the front refuses before the function ---------------------------------------------------


def test_given_no_key_then_401_a_wrong_key_403_an_unknown_route_404_and_no_invocation(
    stack: LocalStackProcess,
) -> None:
    url = stack.urls["http"]
    invocations = stack.status()["invocations"]

    missing = send(url, b"{}")
    wrong = send(url, b"{}", headers=[("x-api-key", "nope")])
    twice = send(url, b"{}", headers=[("x-api-key", stack.api_key or ""), ("x-api-key", "x")])
    elsewhere = send(url + "x", b"{}", headers=[("x-api-key", stack.api_key or "")])
    get = send(url, method="GET", headers=[("x-api-key", stack.api_key or "")])

    assert (missing.status, missing.json()) == (401, {"message": "Unauthorized"})
    assert (wrong.status, wrong.json()) == (403, {"message": "Forbidden"})
    assert twice.status == 403
    assert (elsewhere.status, elsewhere.json()) == (404, {"message": "Not Found"})
    assert get.status == 404
    assert stack.status()["invocations"] == invocations


def test_given_a_body_over_10_mb_then_413_and_the_next_call_works(stack: LocalStackProcess) -> None:
    key = [("x-api-key", stack.api_key or "")]

    reply = send(stack.urls["http"], b"x" * (10 * 1024 * 1024 + 1), headers=key)

    assert (reply.status, reply.json()) == (413, {"message": "Request Entity Too Large"})
    assert call(stack, {}).status == 200


# --- the handler axis through the control API -----------------------------------------------------


def test_given_a_handler_switch_then_the_next_request_cold_starts_the_other_handler(
    stack: LocalStackProcess,
) -> None:
    assert call(stack, {}).json() == "httpapi_behaviours"  # a warm sandbox of the first handler
    cold_starts = stack.status()["cold_starts"]

    status = stack.set_handler("behaviours.lambda_handler")
    try:
        assert (status["handler"], status["sandboxes"]) == ("behaviours.lambda_handler", 0)
        answer = call(stack, {"action": "ping"}).json()  # behaviours.py answers {"pid": …}
        assert set(answer) == {"pid"}
        assert stack.status()["cold_starts"] == cold_starts + 1
        last = parse_report(log_lines(stack)[-1])
        assert last is not None and last.cold_start
    finally:
        stack.set_handler(HANDLER)
    assert call(stack, {}).json() == "httpapi_behaviours"


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        ("nothere.lambda_handler", "handler nothere.lambda_handler: no module nothere in "),
        ("behaviours.missing", "behaviours.py defines no missing at module level"),
        ("lambda_handler", "handler 'lambda_handler' is not module.function"),
    ],
)
def test_given_an_unknown_handler_then_one_line_and_nothing_retired(
    stack: LocalStackProcess, handler: str, message: str
) -> None:
    call(stack, {})
    before = stack.status()

    with pytest.raises(SetupError) as raised:
        stack.set_handler(handler)

    assert message in str(raised.value) and "\n" not in str(raised.value)
    after = stack.status()
    assert after["handler"] == HANDLER
    assert after["sandbox_pids"] == before["sandbox_pids"]  # still warm


# --- the local target's axes ----------------------------------------------------------------------


@pytest.fixture
def target(stack: LocalStackProcess, tmp_path: Path) -> Iterator[LocalStackTarget]:
    """A LocalStackTarget driving the module's stack (as start() would have left it)."""
    target = LocalStackTarget(
        LocalTarget(handler=HANDLER, code_dir=str(HANDLERS_DIR), calibrate=False),
        run_dir=str(tmp_path),
    )
    target.stack, target._status = stack, stack.ready
    target._started_handler = stack.ready["handler"]
    yield target
    target.restore()
    target.stack = None  # the module fixture stops the stack


def test_given_the_local_target_then_it_refuses_arm64_with_one_line_saying_why() -> None:
    target = LocalStackTarget(LocalTarget(), run_dir="unused")

    assert HOST_ARCHITECTURE == "x86_64"  # this project's CI host
    assert target.refuses("architecture", "x86_64") is None
    assert target.refuses("architecture", "arm64") == (
        "architecture arm64: the local stack runs the function on this host's x86_64 CPU, so "
        "it cannot measure arm64 speed; sweep the architecture on AWS (target kind aws)"
    )
    assert target.refuses("architecture", "sparc") is not None
    target.set_architecture("x86_64")  # nothing to do
    with pytest.raises(BadInput, match="cannot measure arm64 speed"):
        target.set_architecture("arm64")


def test_given_the_local_target_then_both_apis_and_handlers_in_its_code_dir_are_accepted() -> None:
    default = LocalStackTarget(LocalTarget(), run_dir="unused")
    assert default.refuses("api", "rest") is None and default.refuses("api", "http") is None
    assert "serves rest and http APIs" in (default.refuses("api", "websocket") or "")
    # The project's code directory: the hardened handler and the tutorial's original.
    assert (PROJECT_ROOT / "tutorial_handler.py").is_file()
    assert default.refuses("handler", "handler.lambda_handler") is None
    assert default.refuses("handler", "tutorial_handler.lambda_handler") is None
    assert "defines no nope" in (default.refuses("handler", "handler.nope") or "")
    assert default.refuses("memory", "1") is not None  # not an axis of this interface


def test_given_set_api_and_set_handler_then_url_and_handler_follow_and_restore_puts_them_back(
    target: LocalStackTarget, stack: LocalStackProcess
) -> None:
    assert target.url == stack.urls["rest"]

    target.set_api("http")
    target.set_handler("behaviours.lambda_handler")

    assert target.url == stack.urls["http"]
    reply = send(target.url, b"{}", headers=list(target.headers().items()))
    assert set(reply.json()) == {"pid"}
    assert "behaviours.lambda_handler" in target.info().description
    with pytest.raises(BadInput, match="no module nope"):
        target.set_handler("nope.lambda_handler")
    target.restore()
    assert target.url == stack.urls["rest"]
    assert stack.status()["handler"] == HANDLER
