"""Fuzzing the handler's event parsing: every generated event gets a 2xx or a 4xx JSON answer.

API Gateway proxy events with arbitrary bodies (JSON values, odd and huge number literals,
deep nesting, random text and bytes, base64 both ways, fields missing) and direct events,
run in-process against real dynalite; a smaller sample goes through the local stack's HTTP
front to show that no sandbox dies (a dead or crashed sandbox would answer 502).
"""

from __future__ import annotations

import base64
import json
from types import ModuleType
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.stack import TableDefinition
from runner.targets import LocalStackProcess
from tests.conftest import LambdaContext, load_event
from tests.fuzzing import examples
from tests.test_local_stack import post

OPERATIONS = ["create", "read", "update", "delete", "list", "echo", "ping"]
PARAMETERS = [
    "Item",
    "Key",
    "Limit",
    "ExclusiveStartKey",
    "ConditionExpression",
    "UpdateExpression",
    "ProjectionExpression",
    "FilterExpression",
    "ExpressionAttributeNames",
    "ExpressionAttributeValues",
    "AttributeUpdates",
    "ReturnValues",
    "ConsistentRead",
    "TableName",
    "Select",
]
# Number literals that have broken JSON decoders or DynamoDB clients, as text.
ODD_NUMBERS = [
    "1e999999999",
    "-1e999999999",
    "1e-999999999",
    "0E-99999",
    "-0",
    "1E+126",
    "9.9999999999999999999999999999999999999E+125",
    "1E-130",
    "1E-131",
    "1" * 39,
    "1" * 300,
    "1." + "0" * 60,
    "1" + "0" * 40,
    "1.234567890123456789012345678901234567E-130",
    "NaN",
    "Infinity",
    "-Infinity",
]


def one_in(draw: st.DrawFn, n: int) -> bool:
    """True about once in n draws (a bare `not draw(integers())` is far likelier: 0 is favoured)."""
    return draw(st.integers(1, n)) == n // 2 + 1


number_literals = st.one_of(
    st.sampled_from(ODD_NUMBERS),
    st.from_regex(r"-?(0|[1-9][0-9]{0,50})(\.[0-9]{1,50})?([eE][+-]?[0-9]{1,10})?", fullmatch=True),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**60), max_value=10**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=20,
)


@st.composite
def payloads(draw: st.DrawFn) -> Any:
    """Mostly DynamoDB-shaped payloads (so the deeper checks run), sometimes anything."""
    if one_in(draw, 5):
        return draw(json_values)
    keys = draw(st.lists(st.sampled_from(PARAMETERS), max_size=4, unique=True))
    payload: dict[str, Any] = {}
    for key in keys:
        if key in ("Item", "Key", "ExclusiveStartKey"):
            extra = draw(st.dictionaries(st.text(max_size=6), json_values, max_size=3))
            key_value = draw(st.one_of(st.text(max_size=12), json_values))
            payload[key] = {"id": key_value, **extra} if draw(st.booleans()) else extra
        elif key.endswith("Expression"):
            payload[key] = draw(
                st.one_of(
                    st.sampled_from(["SET #a = :v", "attribute_not_exists(id)", "a = :v", "id"]),
                    st.text(max_size=30),
                    json_values,
                )
            )
        else:
            payload[key] = draw(json_values)
    return payload


@st.composite
def request_bodies(draw: st.DrawFn) -> str:
    """A request document as JSON text, with odd number literals and deep nesting spliced in."""
    document: dict[str, Any] = {}
    if not one_in(draw, 10):
        document["operation"] = draw(
            st.sampled_from(OPERATIONS)
            if not one_in(draw, 6)
            else st.one_of(st.text(max_size=10), json_values)
        )
    if one_in(draw, 4):
        document["tableName"] = draw(st.sampled_from(["lambda-apigateway", "users", ""]))
    if draw(st.booleans()):
        document["payload"] = draw(payloads())
    elif document.get("operation") in ("create", "read", "update", "delete"):
        # A well-formed item or key with fuzzed attributes: reaches DynamoDB's own checks.
        attributes = draw(st.dictionaries(st.text(max_size=6), json_values, max_size=4))
        key = "Item" if document["operation"] == "create" else "Key"
        document["payload"] = {key: {**attributes, "id": draw(st.text(max_size=12))}}
        if document["operation"] == "update":
            document["payload"]["UpdateExpression"] = "SET #a = :v"
            document["payload"]["ExpressionAttributeNames"] = {"#a": draw(st.text(max_size=6))}
            document["payload"]["ExpressionAttributeValues"] = {":v": draw(json_values)}
    try:
        text = json.dumps(document)
    except ValueError:  # an integer too long for str(): send the document without it
        text = json.dumps({"operation": "echo"})
    splice = draw(st.integers(1, 4)) % 4
    if splice == 1:
        text = text.replace("null", draw(number_literals), 1)
    elif splice == 2:
        depth = draw(st.integers(1, 120))
        text = text.replace("null", "[" * depth + draw(number_literals) + "]" * depth, 1)
    return text


bodies = st.one_of(
    # Mostly well-formed requests, so that the checks past parsing (and DynamoDB) are reached.
    request_bodies(),
    request_bodies(),
    request_bodies(),
    request_bodies(),
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda raw: raw.decode("latin-1")),
    st.integers(1, 20_000).map(lambda depth: '{"operation":"echo","payload":' + "[" * depth),
    st.integers(1, 20_000).map(
        lambda depth: '{"operation":"echo","payload":' + "[" * depth + "]" * depth + "}"
    ),
    number_literals.map(lambda literal: '{"operation":"echo","payload":' + literal + "}"),
)


@st.composite
def proxy_events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = load_event("apigw-proxy-create.json")
    body = draw(bodies)
    encoded = draw(st.sampled_from([True, False, False, None, "yes", 0]))
    if encoded in (True, "yes") and not one_in(draw, 5):
        raw = body.encode("utf-8", "surrogatepass")
        if one_in(draw, 4):
            raw = draw(st.binary(min_size=1))
        body = base64.b64encode(raw).decode()
    event["body"] = (
        draw(st.one_of(st.just(body), st.none(), json_values)) if one_in(draw, 6) else body
    )
    if encoded is None:
        del event["isBase64Encoded"]
    else:
        event["isBase64Encoded"] = encoded
    if one_in(draw, 6):
        event.pop(draw(st.sampled_from(["body", "headers", "requestContext", "httpMethod"])))
    return event


def assert_answered(response: Any) -> None:
    """A 2xx or a 4xx with a JSON body; a 4xx names the problem in 'message'."""
    assert isinstance(response, dict), response
    status = response["statusCode"]
    assert isinstance(status, int) and (200 <= status < 300 or 400 <= status < 500), response
    assert response["headers"]["Content-Type"] == "application/json"
    body = json.loads(response["body"])
    if status >= 400:
        assert isinstance(body, dict) and isinstance(body["message"], str), body
        assert "Traceback" not in body["message"]


FUZZ = settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(event=proxy_events())
def test_given_any_proxy_event_then_2xx_or_4xx_json_never_500(
    handler_module: ModuleType, table: TableDefinition, context: LambdaContext, event: Any
) -> None:
    assert_answered(handler_module.lambda_handler(event, context))


@FUZZ
@given(
    event=st.one_of(
        st.fixed_dictionaries(
            {"operation": st.one_of(st.sampled_from(OPERATIONS), json_values)},
            optional={"tableName": json_values, "payload": payloads()},
        ),
        json_values,
    )
)
def test_given_any_direct_event_then_2xx_or_4xx_json_never_500(
    handler_module: ModuleType, table: TableDefinition, context: LambdaContext, event: Any
) -> None:
    assert_answered(handler_module.lambda_handler(event, context))


# --- a sample through the local stack: the sandboxes survive ---------------------------------


@settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=st.one_of(bodies.map(lambda text: text.encode("utf-8", "surrogatepass")), st.binary()))
def test_given_fuzzed_bodies_through_the_local_stack_then_every_sandbox_answers(
    small_stack: LocalStackProcess, body: bytes
) -> None:
    reply = post(small_stack.url, body, headers=small_stack.headers(), timeout=30)
    assert 200 <= reply.status < 300 or 400 <= reply.status < 500, (reply.status, reply.body)
    assert isinstance(json.loads(reply.body), (dict, list, str, int, float, type(None)))
    ping = post(small_stack.url, b'{"operation":"ping"}', headers=small_stack.headers(), timeout=30)
    assert (ping.status, ping.body) == (200, b'"pong"')
