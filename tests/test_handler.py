"""handler.py against real dynalite: every operation over the wire, and bad input refused."""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import ClientError

from runner.emulator._dynamodb import Dynalite, environment_for
from runner.stack import PROJECT_ROOT, TableDefinition
from tests.conftest import LambdaContext, load_event

TUTORIAL_EVENTS = [
    "tutorial-create.json",
    "tutorial-read.json",
    "tutorial-update.json",
    "tutorial-delete.json",
    "tutorial-list.json",
    "tutorial-echo.json",
    "tutorial-ping.json",
]


def proxy_event(body: Any, *, base64_encoded: bool = False) -> dict[str, Any]:
    """An API Gateway REST proxy event carrying `body` (a string, or JSON-encoded here)."""
    event: dict[str, Any] = load_event("apigw-proxy-create.json")
    text = body if isinstance(body, str) or body is None else json.dumps(body)
    if base64_encoded and text is not None:
        text = base64.b64encode(text.encode()).decode()
    event["body"] = text
    event["isBase64Encoded"] = base64_encoded
    return event


def call(handler: ModuleType, event: Any, context: LambdaContext) -> tuple[int, Any]:
    response = handler.lambda_handler(event, context)
    assert isinstance(response["statusCode"], int)
    assert response["headers"]["Content-Type"] == "application/json"
    assert isinstance(response["body"], str)
    return response["statusCode"], json.loads(response["body"])


def scan_all(dynalite: Dynalite, table: TableDefinition) -> list[dict[str, Any]]:
    items = dynalite.client().scan(TableName=table.name, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))


@pytest.fixture
def dynamodb_calls(handler_module: ModuleType) -> Iterator[list[str]]:
    """Names of the DynamoDB API calls handler.py's own client makes during a test."""
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        calls.append(model.name)

    events = handler_module.TABLE.meta.client.meta.events
    events.register("before-call.dynamodb", record)
    yield calls
    events.unregister("before-call.dynamodb", record)


# --- the tutorial's events, unchanged -------------------------------------------------------


@pytest.mark.parametrize("name", TUTORIAL_EVENTS)
def test_given_tutorial_event_when_invoked_directly_or_through_the_proxy_then_200(
    handler_module: ModuleType, table: TableDefinition, context: LambdaContext, name: str
) -> None:
    event = load_event(name)
    status, _ = call(handler_module, event, context)
    assert status == 200
    status, _ = call(handler_module, proxy_event(event), context)
    assert status == 200


def test_given_tutorial_events_in_order_then_each_operation_round_trips_through_dynamodb(
    handler_module: ModuleType, table: TableDefinition, context: LambdaContext
) -> None:
    status, created = call(handler_module, load_event("tutorial-create.json"), context)
    assert status == 200
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 200

    _, read = call(handler_module, load_event("tutorial-read.json"), context)
    assert read["Item"] == {"id": "1234ABCD", "number": 5}

    _, _ = call(handler_module, load_event("tutorial-update.json"), context)
    _, read = call(handler_module, load_event("tutorial-read.json"), context)
    assert read["Item"]["number"] == 10

    _, updated = call(handler_module, load_event("update-expression.json"), context)
    assert updated["Attributes"] == {"id": "1234ABCD", "number": 11, "price": 19.99}

    _, listed = call(handler_module, load_event("tutorial-list.json"), context)
    assert listed["Count"] == 1 and listed["ScannedCount"] == 1
    assert listed["Items"] == [{"id": "1234ABCD", "number": 11, "price": 19.99}]

    _, _ = call(handler_module, load_event("tutorial-delete.json"), context)
    _, read = call(handler_module, load_event("tutorial-read.json"), context)
    assert "Item" not in read


def test_given_echo_and_ping_then_payload_and_pong_without_touching_dynamodb(
    handler_module: ModuleType, context: LambdaContext, dynamodb_calls: list[str]
) -> None:
    _, echoed = call(handler_module, load_event("tutorial-echo.json"), context)
    _, pong = call(handler_module, load_event("tutorial-ping.json"), context)
    assert echoed == {"somekey1": "somevalue1", "somekey2": "somevalue2"}
    assert pong == "pong"
    assert dynamodb_calls == []


def test_given_proxy_events_from_fixtures_then_create_and_base64_list_work(
    handler_module: ModuleType, table: TableDefinition, context: LambdaContext
) -> None:
    status, _ = call(handler_module, load_event("apigw-proxy-create.json"), context)
    assert status == 200
    status, listed = call(handler_module, load_event("apigw-proxy-list-base64.json"), context)
    assert status == 200
    assert listed["Items"] == [{"id": "1", "name": "Bob"}]


def test_given_an_http_api_v2_event_then_its_body_is_the_request_and_its_time_is_logged(
    handler_module: ModuleType,
    table: TableDefinition,
    context: LambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Payload format 2.0 (AWS's documented example) has no httpMethod: the body is still the
    request, and requestContext.timeEpoch is the arrival time the runner windows by."""
    event = load_event("httpapi-v2-event.json")
    event["body"] = json.dumps({"operation": "echo", "payload": {"k": "v"}})
    capsys.readouterr()
    status, echoed = call(handler_module, event, context)
    assert (status, echoed) == (200, {"k": "v"})
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["requestTimeEpoch"] == event["requestContext"]["timeEpoch"]
    assert line["apiRequestId"] == event["requestContext"]["requestId"]


def test_given_fractional_numbers_in_a_direct_event_then_stored_exactly_and_returned_as_numbers(
    handler_module: ModuleType, table: TableDefinition, context: LambdaContext
) -> None:
    item = {"id": "n", "price": 0.1, "big": 12345678901234567890, "neg": -2.5}
    create = {"operation": "create", "tableName": table.name, "payload": {"Item": item}}
    assert call(handler_module, create, context)[0] == 200
    read = {"operation": "read", "tableName": table.name, "payload": {"Key": {"id": "n"}}}
    _, body = call(handler_module, read, context)
    assert body["Item"] == item


def test_given_sets_and_binary_written_by_another_client_then_list_returns_json(
    handler_module: ModuleType, dynalite: Dynalite, table: TableDefinition, context: LambdaContext
) -> None:
    dynalite.client().put_item(
        TableName=table.name,
        Item={
            "id": {"S": "b"},
            "raw": {"B": b"\x00\x01"},
            "tags": {"SS": ["y", "x"]},
            "nums": {"NS": ["2", "1.5"]},
        },
    )
    _, body = call(handler_module, load_event("tutorial-list.json"), context)
    assert body["Items"] == [{"id": "b", "raw": "AAE=", "tags": ["x", "y"], "nums": [1.5, 2]}]


def test_given_no_table_name_then_the_configured_table_is_used(
    handler_module: ModuleType, table: TableDefinition, context: LambdaContext
) -> None:
    status, _ = call(
        handler_module, {"operation": "create", "payload": {"Item": {"id": "x"}}}, context
    )
    assert status == 200


# --- list: capped, with a cursor ------------------------------------------------------------


def test_given_more_items_than_the_cap_then_list_pages_with_a_cursor_and_loses_none(
    handler_module: ModuleType, dynalite: Dynalite, table: TableDefinition, context: LambdaContext
) -> None:
    client = dynalite.client()
    total = handler_module.LIST_LIMIT_MAX * 2 + 17
    for index in range(total):
        client.put_item(TableName=table.name, Item={"id": {"S": f"item-{index:04d}"}})

    seen: list[str] = []
    payload: dict[str, Any] = {"Limit": 10_000}  # asks for more than the cap
    for _ in range(10):
        _, page = call(handler_module, {"operation": "list", "payload": payload}, context)
        assert page["Count"] <= handler_module.LIST_LIMIT_MAX
        seen += [item["id"] for item in page["Items"]]
        if "LastEvaluatedKey" not in page:
            break
        payload = {"Limit": 10_000, "ExclusiveStartKey": page["LastEvaluatedKey"]}
    assert sorted(seen) == [f"item-{index:04d}" for index in range(total)]


# --- one log line per invocation ------------------------------------------------------------


def test_given_invocations_then_one_structured_log_line_each_with_operation_and_capacity(
    handler_module: ModuleType,
    table: TableDefinition,
    context: LambdaContext,
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    call(handler_module, load_event("tutorial-create.json"), context)
    call(handler_module, load_event("tutorial-list.json"), context)
    call(handler_module, {"operation": "nope"}, context)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["type"] for line in lines] == [handler_module.LOG_TYPE] * 3
    assert [line["operation"] for line in lines] == ["create", "list", None]
    assert [line["status"] for line in lines] == [200, 200, 400]
    assert lines[0]["consumedCapacity"]["write"] >= 1 and lines[0]["consumedCapacity"]["read"] == 0
    assert lines[1]["consumedCapacity"]["read"] > 0 and lines[1]["consumedCapacity"]["write"] == 0
    assert all(line["requestId"] == context.aws_request_id for line in lines)


def test_given_a_create_then_consumed_capacity_is_logged_not_returned(
    handler_module: ModuleType, table: TableDefinition, context: LambdaContext
) -> None:
    _, body = call(handler_module, load_event("tutorial-create.json"), context)
    assert "ConsumedCapacity" not in body


# --- bad input: 4xx, a message naming the problem, no write, no trace -----------------------


@dataclass
class BadCase:
    id: str
    event: Any
    status: int
    message: str
    # False: refused before any DynamoDB call. True: DynamoDB itself refuses (no write).
    reaches_dynamodb: bool = False
    seed: list[dict[str, Any]] = field(default_factory=list)


def op(operation: Any, payload: Any = None, **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"operation": operation, "tableName": "lambda-apigateway", **extra}
    if payload is not None:
        event["payload"] = payload
    return event


SEED = [{"id": "1234ABCD", "number": 5}]
HUGE = "x" * (401 * 1024)

BAD_CASES = [
    # The request body and its encoding
    BadCase("body-not-json", proxy_event("operation=create"), 400, "not valid JSON"),
    BadCase("body-truncated-json", proxy_event('{"operation":'), 400, "not valid JSON"),
    BadCase("body-empty", proxy_event(""), 400, "request body is empty"),
    BadCase("body-missing", proxy_event(None), 400, "request body is empty"),
    BadCase("body-json-array", proxy_event("[1, 2]"), 400, "got array"),
    BadCase("body-json-string", proxy_event('"create"'), 400, "got string"),
    BadCase("body-json-number", proxy_event("42"), 400, "got number"),
    BadCase("body-json-null", proxy_event("null"), 400, "got null"),
    BadCase("body-nan", proxy_event('{"operation":"echo","payload":NaN}'), 400, "NaN"),
    BadCase(
        "body-infinity", proxy_event('{"operation":"echo","payload":Infinity}'), 400, "Infinity"
    ),
    BadCase(
        "body-bad-base64",
        {**proxy_event("x"), "body": "!!not base64!!", "isBase64Encoded": True},
        400,
        "not valid base64",
    ),
    BadCase(
        "body-base64-not-utf8",
        {
            **proxy_event("x"),
            "body": base64.b64encode(b"\xff\xfe\x00").decode(),
            "isBase64Encoded": True,
        },
        400,
        "not valid JSON",
    ),
    BadCase("direct-event-string", "create", 400, "got string"),
    BadCase("direct-event-array", [op("ping")], 400, "got array"),
    BadCase("direct-event-nan", op("echo", {"n": float("nan")}), 400, "not a valid number"),
    # The operation
    BadCase(
        "operation-missing", {"tableName": "lambda-apigateway"}, 400, "'operation' is required"
    ),
    BadCase("operation-null", op(None), 400, "must be a string, got null"),
    BadCase("operation-number", op(5), 400, "must be a string, got number"),
    BadCase("operation-array", op(["create"]), 400, "must be a string, got array"),
    BadCase("operation-unknown", op("drop_table", {}), 400, "unknown operation 'drop_table'"),
    BadCase("operation-wrong-case", op("CREATE", {"Item": {"id": "z"}}), 400, "unknown operation"),
    BadCase("operation-empty", op("", {}), 400, "unknown operation"),
    # The table
    BadCase(
        "table-other",
        op("read", {"Key": {"id": "1"}}, tableName="users"),
        400,
        "'users' is not served",
    ),
    BadCase("table-null", op("list", {}, tableName=None), 400, "'tableName' must be a string"),
    BadCase(
        "table-other-create",
        op("create", {"Item": {"id": "evil"}}, tableName="lambda-apigateway-prod"),
        400,
        "is not served here",
    ),
    # The payload's shape
    BadCase(
        "payload-string", op("create", "Item"), 400, "payload for create must be a JSON object"
    ),
    BadCase("payload-array", op("list", []), 400, "got array"),
    BadCase("payload-null", {**op("read"), "payload": None}, 400, "got null"),
    BadCase("create-item-missing", op("create", {}), 400, "payload.Item is required"),
    BadCase("create-item-string", op("create", {"Item": "1"}), 400, "Item must be a non-empty"),
    BadCase("create-item-empty", op("create", {"Item": {}}), 400, "Item must be a non-empty"),
    BadCase("read-key-missing", op("read", {}), 400, "payload.Key is required"),
    BadCase("read-key-array", op("read", {"Key": ["1"]}), 400, "Key must be a non-empty"),
    BadCase(
        "delete-key-missing", op("delete", {"ReturnValues": "ALL_OLD"}), 400, "Key is required"
    ),
    BadCase("update-no-expression", op("update", {"Key": {"id": "1"}}), 400, "UpdateExpression"),
    # Parameters outside the per-operation allow-list
    BadCase(
        "create-table-name-override",
        op("create", {"TableName": "users", "Item": {"id": "1"}}),
        400,
        "may not contain TableName",
    ),
    BadCase("list-select-count", op("list", {"Select": "COUNT"}), 400, "may not contain Select"),
    BadCase(
        "list-parallel-scan",
        op("list", {"Segment": 0, "TotalSegments": 4}),
        400,
        "may not contain Segment, TotalSegments",
    ),
    BadCase(
        "read-condition-expression",
        op("read", {"Key": {"id": "1"}, "ConditionExpression": "attribute_exists(id)"}),
        400,
        "may not contain ConditionExpression",
    ),
    BadCase(
        "list-consumed-capacity",
        op("list", {"ReturnConsumedCapacity": "INDEXES"}),
        400,
        "may not contain ReturnConsumedCapacity",
    ),
    BadCase("list-index-name", op("list", {"IndexName": "gsi"}), 400, "may not contain IndexName"),
    BadCase(
        "create-item-collection-metrics",
        op("create", {"Item": {"id": "1"}, "ReturnItemCollectionMetrics": "SIZE"}),
        400,
        "may not contain ReturnItemCollectionMetrics",
    ),
    # Wrong types inside allowed parameters
    BadCase("list-limit-string", op("list", {"Limit": "10"}), 400, "Limit must be a positive"),
    BadCase("list-limit-zero", op("list", {"Limit": 0}), 400, "Limit must be a positive"),
    BadCase("list-limit-negative", op("list", {"Limit": -5}), 400, "Limit must be a positive"),
    BadCase("list-limit-bool", op("list", {"Limit": True}), 400, "Limit must be a positive"),
    BadCase(
        "list-cursor-string", op("list", {"ExclusiveStartKey": "abc"}), 400, "ExclusiveStartKey"
    ),
    BadCase(
        "update-expression-number",
        op("update", {"Key": {"id": "1234ABCD"}, "UpdateExpression": 5}),
        400,
        "UpdateExpression",
    ),
    BadCase(
        "list-expression-names-array",
        op("list", {"FilterExpression": "#a = :v", "ExpressionAttributeNames": ["#a"]}),
        400,
        "ExpressionAttributeNames must be a JSON object, got array",
    ),
    BadCase(
        "create-expression-values-number",
        op("create", {"Item": {"id": "1"}, "ExpressionAttributeValues": 5}),
        400,
        "ExpressionAttributeValues must be a JSON object, got number",
    ),
    # Refused by DynamoDB itself: no write happens
    BadCase(
        "create-key-wrong-type",
        op("create", {"Item": {"id": 5}}),
        400,
        "Type mismatch",
        reaches_dynamodb=True,
    ),
    BadCase(
        "create-key-empty-string",
        op("create", {"Item": {"id": ""}}),
        400,
        "empty string",
        reaches_dynamodb=True,
    ),
    BadCase(
        "read-key-wrong-attribute",
        op("read", {"Key": {"name": "1"}}),
        400,
        "key element does not match the schema",
        reaches_dynamodb=True,
    ),
    BadCase(
        "update-expression-syntax",
        op("update", {"Key": {"id": "1234ABCD"}, "UpdateExpression": "SET"}),
        400,
        "UpdateExpression",
        reaches_dynamodb=True,
        seed=SEED,
    ),
    BadCase(
        "create-item-over-400kb",
        op("create", {"Item": {"id": "big", "blob": HUGE}}),
        413,
        "item too large",
        reaches_dynamodb=True,
    ),
    BadCase(
        "update-item-over-400kb",
        op(
            "update",
            {
                "Key": {"id": "1234ABCD"},
                "UpdateExpression": "SET #b = :b",
                "ExpressionAttributeNames": {"#b": "blob"},
                "ExpressionAttributeValues": {":b": HUGE},
            },
        ),
        413,
        "item too large",
        reaches_dynamodb=True,
        seed=SEED,
    ),
    BadCase(
        "create-conditional-failure",
        op(
            "create",
            {
                "Item": {"id": "1234ABCD", "number": 99},
                "ConditionExpression": "attribute_not_exists(id)",
            },
        ),
        409,
        "condition on this request was not met",
        reaches_dynamodb=True,
        seed=SEED,
    ),
    BadCase(
        "delete-conditional-failure",
        op(
            "delete",
            {
                "Key": {"id": "1234ABCD"},
                "ConditionExpression": "#n = :n",
                "ExpressionAttributeNames": {"#n": "number"},
                "ExpressionAttributeValues": {":n": 6},
            },
        ),
        409,
        "condition on this request was not met",
        reaches_dynamodb=True,
        seed=SEED,
    ),
]


def test_there_are_at_least_thirty_distinct_bad_inputs() -> None:
    assert len({case.id for case in BAD_CASES}) == len(BAD_CASES) >= 30


@pytest.mark.parametrize("case", BAD_CASES, ids=[case.id for case in BAD_CASES])
def test_given_bad_input_then_4xx_naming_the_problem_and_nothing_written(
    handler_module: ModuleType,
    dynalite: Dynalite,
    table: TableDefinition,
    context: LambdaContext,
    dynamodb_calls: list[str],
    case: BadCase,
) -> None:
    for item in case.seed:
        call(handler_module, op("create", {"Item": item}), context)
    before = scan_all(dynalite, table)
    dynamodb_calls.clear()

    status, body = call(handler_module, copy.deepcopy(case.event), context)

    assert status == case.status
    assert case.message in body["message"], body
    assert body["requestId"] == context.aws_request_id
    assert "Traceback" not in json.dumps(body)
    assert scan_all(dynalite, table) == before
    if not case.reaches_dynamodb:
        assert dynamodb_calls == []


# --- server-side failures -------------------------------------------------------------------


def test_given_the_table_is_gone_then_500_with_request_id_and_no_internals(
    handler_module: ModuleType, dynalite: Dynalite, table: TableDefinition, context: LambdaContext
) -> None:
    dynalite.client().delete_table(TableName=table.name)
    status, body = call(handler_module, load_event("tutorial-read.json"), context)
    assert status == 500
    assert body == {
        "message": "DynamoDB error ResourceNotFoundException",
        "requestId": context.aws_request_id,
    }


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ProvisionedThroughputExceededException", 429),
        ("ThrottlingException", 429),
        ("RequestLimitExceeded", 429),
        ("AccessDeniedException", 403),
        ("ConditionalCheckFailedException", 409),
        ("ValidationException", 400),
        ("InternalServerError", 500),
    ],
)
def test_given_a_dynamodb_error_code_then_the_mapped_status(
    handler_module: ModuleType, code: str, status: int
) -> None:
    error = ClientError({"Error": {"Code": code, "Message": "from DynamoDB"}}, "Scan")
    assert handler_module._translate(error).status == status


def test_given_aws_endpoint_url_in_a_fresh_process_then_the_module_client_uses_it(
    dynalite: Dynalite, table: TableDefinition
) -> None:
    env = environment_for(dynalite.endpoint)
    env["AWS_ENDPOINT_URL"] = env.pop("AWS_ENDPOINT_URL_DYNAMODB")
    script = (
        "import json, handler\n"
        "event = {'operation': 'create', 'payload': {'Item': {'id': 'p'}}}\n"
        "r = handler.lambda_handler(event, None)\n"
        "print(json.dumps(r))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        env={"PATH": "/usr/bin:/bin", "TABLE_NAME": table.name, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    response = json.loads(done.stdout.splitlines()[-1])
    assert response["statusCode"] == 200
    assert dynalite.client().get_item(TableName=table.name, Key={"id": {"S": "p"}})["Item"]
