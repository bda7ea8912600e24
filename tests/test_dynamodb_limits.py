"""DynamoDB's documented limits, each on both sides of its boundary, against real dynalite.

Source of every limit: the DynamoDB Developer Guide, "Constraints in Amazon DynamoDB". Just
under a limit the request is accepted and the item written; just over, the answer is a 4xx
naming the limit and nothing is written. The handler refuses first (so AWS and the local
stack answer alike); where only DynamoDB can judge (key sizes, an update's resulting item),
the local DynamoDB refuses as AWS does, through runner/emulator/dynalite_limits.js.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import ClientError

from runner.emulator._dynamodb import Dynalite
from runner.stack import TableDefinition
from runner.targets import LocalStackProcess
from tests.conftest import LambdaContext
from tests.test_handler import call, proxy_event, scan_all
from tests.test_local_stack import call as call_stack

MAX_ITEM = 400 * 1024
TOP = "9.9999999999999999999999999999999999999E+125"  # DynamoDB's largest number


def body_with(document: dict[str, Any], **literals: str) -> dict[str, Any]:
    """A proxy event whose JSON carries number literals verbatim (json.dumps would round them)."""
    text = json.dumps(document)
    for name, literal in literals.items():
        text = text.replace(f'"<{name}>"', literal)
    return proxy_event(text)


def create(item: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"operation": "create", "payload": {"Item": item, **extra}}


def nested(levels: int, leaf: Any = "x", *, as_list: bool = False) -> Any:
    """A value with `levels` nested containers (a map or list at each level) above a leaf."""
    value = leaf
    for _ in range(levels):
        value = [value] if as_list else {"k": value}
    return value


@dataclass
class Limit:
    id: str
    under: Any  # an event the handler accepts, writing item id "u"
    over: Any  # an event refused with `status`, naming the limit in `message`
    status: int
    message: str
    seed: dict[str, Any] | None = None


def numbers(name: str, under: str, over: str, message: str) -> Limit:
    return Limit(
        name,
        body_with(create({"id": "u", "n": "<n>"}), n=under),
        body_with(create({"id": "o", "n": "<n>"}), n=over),
        400,
        message,
    )


LIMITS = [
    # Data types: Number, 38 digits of precision, 1E-130 to 9.99...E+125 either sign
    numbers("number-largest", TOP, "1E+126", "too large"),
    numbers("number-largest-negative", "-" + TOP, "-1E+126", "too large"),
    numbers("number-smallest", "1E-130", "1E-131", "too small"),
    numbers("number-smallest-negative", "-1E-130", "-1E-131", "too small"),
    numbers("number-precision", "1" * 38, "1" * 39, "DynamoDB numbers keep at most 38"),
    numbers("number-precision-fraction", "0." + "7" * 38, "0." + "7" * 39, "at most 38"),
    # The handler's own bound on a literal's length (longer than any DynamoDB number needs)
    numbers("number-literal-length", "1." + "0" * 198, "1." + "0" * 199, "at most 200 characters"),
    # Attributes: nested attribute depth, 32 levels (31 maps or lists above a scalar)
    Limit(
        "nesting-maps",
        create({"id": "u", "d": nested(31)}),
        create({"id": "o", "d": nested(32)}),
        400,
        "limit of 32 levels",
    ),
    Limit(
        "nesting-lists",
        create({"id": "u", "d": nested(31, as_list=True)}),
        create({"id": "o", "d": nested(32, as_list=True)}),
        400,
        "limit of 32 levels",
    ),
    Limit(
        "nesting-expression-value",
        create(
            {"id": "u"},
            ConditionExpression="attribute_not_exists(id) OR d = :d",
            ExpressionAttributeValues={":d": nested(31)},
        ),
        create(
            {"id": "o"},
            ConditionExpression="attribute_not_exists(id) OR d = :d",
            ExpressionAttributeValues={":d": nested(32)},
        ),
        400,
        "limit of 32 levels",
    ),
    # Items: 400 KB, attribute names included, strings in UTF-8 bytes ("id"+"u" = 3, "b" = 1)
    Limit(
        "item-size-ascii",
        create({"id": "u", "b": "x" * (MAX_ITEM - 4)}),
        create({"id": "o", "b": "x" * (MAX_ITEM - 3)}),
        413,
        "item size limit is 400 KB",
    ),
    Limit(
        "item-size-utf8",
        create({"id": "u", "b": "é" * ((MAX_ITEM - 4) // 2)}),
        create({"id": "o", "b": "é" * ((MAX_ITEM - 4) // 2) + "x"}),
        413,
        "item size limit is 400 KB",
    ),
    Limit(
        "item-size-names-count",
        create({"id": "u", "n" * 1000: "x" * (MAX_ITEM - 1003)}),
        create({"id": "o", "n" * 1001: "x" * (MAX_ITEM - 1003)}),
        413,
        "attribute names included",
    ),
    # Partition key: 1 to 2048 bytes (DynamoDB itself judges keys: the handler does not
    # know the table's key schema)
    Limit(
        "partition-key-ascii",
        create({"id": "u" * 2048}),
        create({"id": "o" * 2049}),
        400,
        "maximum size limit of2048 bytes",
    ),
    Limit(
        "partition-key-utf8",
        create({"id": "é" * 1024}),
        create({"id": "ö" * 1024 + "o"}),
        400,
        "maximum size limit of2048 bytes",
    ),
    Limit(
        "key-empty-string",
        create({"id": "u", "note": ""}),  # an empty string is fine outside a key
        create({"id": ""}),
        400,
        "cannot contain an empty string",
    ),
    # Naming rules: attribute names of 1 character to 64 KB
    Limit(
        "attribute-name-length",
        create({"id": "u", "a" * 65535: 1}),
        create({"id": "o", "a" * 65536: 1}),
        400,
        "limit for an attribute name is 64 KB",
    ),
    Limit(
        "attribute-name-empty",
        create({"id": "u", "a": 1}),
        create({"id": "o", "": 1}),
        400,
        "at least one character",
    ),
    # Expression parameters: 4 KB per expression, 255 bytes per placeholder, 2 MB in all
    Limit(
        "expression-length",
        create({"id": "u"}, ConditionExpression="attribute_not_exists(id)" + " " * (4096 - 24)),
        create({"id": "o"}, ConditionExpression="attribute_not_exists(id)" + " " * (4097 - 24)),
        400,
        "limit for an expression is 4 KB",
    ),
    Limit(
        "placeholder-length",
        create(
            {"id": "u"},
            ConditionExpression="attribute_not_exists(#" + "i" * 254 + ")",
            ExpressionAttributeNames={"#" + "i" * 254: "id"},
        ),
        create(
            {"id": "o"},
            ConditionExpression="attribute_not_exists(#" + "i" * 255 + ")",
            ExpressionAttributeNames={"#" + "i" * 255: "id"},
        ),
        400,
        "255 bytes",
    ),
    Limit(
        "substitutions-2mb",
        create(
            {"id": "u"},
            ConditionExpression="attribute_not_exists(id) OR b = :v",
            ExpressionAttributeValues={":v": "x" * (2 * 1024 * 1024 - 2)},
        ),
        create(
            {"id": "o"},
            ConditionExpression="attribute_not_exists(id) OR b = :v",
            ExpressionAttributeValues={":v": "x" * (2 * 1024 * 1024 - 1)},
        ),
        400,
        "limit for all substitutions is 2 MB",
    ),
    # An update's resulting item is judged by DynamoDB (here dynalite, counting UTF-8)
    Limit(
        "update-result-size-utf8",
        {
            "operation": "update",
            "payload": {
                "Key": {"id": "u"},
                "UpdateExpression": "SET b = :b",
                "ExpressionAttributeValues": {":b": "é" * ((MAX_ITEM - 4) // 2)},
            },
        },
        {
            "operation": "update",
            "payload": {
                "Key": {"id": "o"},
                "UpdateExpression": "SET b = :b",
                "ExpressionAttributeValues": {":b": "é" * ((MAX_ITEM - 4) // 2) + "x"},
            },
        },
        413,
        "item too large",
    ),
    Limit(
        "update-legacy-nesting",
        {
            "operation": "update",
            "payload": {
                "Key": {"id": "u"},
                "AttributeUpdates": {"d": {"Value": nested(31), "Action": "PUT"}},
            },
        },
        {
            "operation": "update",
            "payload": {
                "Key": {"id": "o"},
                "AttributeUpdates": {"d": {"Value": nested(32), "Action": "PUT"}},
            },
        },
        400,
        "limit of 32 levels",
    ),
]


@pytest.mark.parametrize("limit", LIMITS, ids=[limit.id for limit in LIMITS])
def test_given_a_request_just_under_a_dynamodb_limit_then_200_and_the_item_is_written(
    handler_module: ModuleType,
    dynalite: Dynalite,
    table: TableDefinition,
    context: LambdaContext,
    limit: Limit,
) -> None:
    status, body = call(handler_module, limit.under, context)
    assert status == 200, body
    items = scan_all(dynalite, table)
    assert len(items) == 1 and items[0]["id"]["S"] in ("u", "u" * 2048, "é" * 1024)


@pytest.mark.parametrize("limit", LIMITS, ids=[limit.id for limit in LIMITS])
def test_given_a_request_just_over_a_dynamodb_limit_then_4xx_naming_it_and_nothing_written(
    handler_module: ModuleType,
    dynalite: Dynalite,
    table: TableDefinition,
    context: LambdaContext,
    limit: Limit,
) -> None:
    status, body = call(handler_module, limit.over, context)
    assert (status, limit.message in body["message"]) == (limit.status, True), body
    assert scan_all(dynalite, table) == []


def test_given_numbers_at_the_edges_then_they_are_stored_and_read_back_exactly(
    handler_module: ModuleType, table: TableDefinition, context: LambdaContext
) -> None:
    literals = {"top": TOP, "tiny": "-1E-130", "wide": "1" + "0" * 40, "zeros": "1." + "0" * 60}
    item = {"id": "edges", **{name: f"<{name}>" for name in literals}}
    assert call(handler_module, body_with(create(item), **literals), context)[0] == 200
    read = {"operation": "read", "payload": {"Key": {"id": "edges"}}}
    status, body = call(handler_module, read, context)
    assert status == 200, body
    assert body["Item"]["top"] == int("9" * 38 + "0" * 88)
    assert body["Item"]["tiny"] == -1e-130
    assert body["Item"]["wide"] == 10**40
    assert body["Item"]["zeros"] == 1


# --- JSON parsing bounds: before any decoding ------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ('{"operation":"echo","payload":1e999999999}', 400, "too large"),
        ('{"operation":"echo","payload":-1e999999999}', 400, "too large"),
        ('{"operation":"echo","payload":1e-999999999}', 400, "too small"),
        ('{"operation":"echo","payload":' + "9" * 5000 + "}", 400, "at most 200 characters"),
        ('{"operation":"echo","payload":' + "[" * 10_000 + "]" * 10_000 + "}", 400, "at most 64"),
        ('{"operation":"echo","payload":' + "[" * 64 + "]" * 64 + "}", 400, "nests 65 levels"),
        (
            '{"operation":"echo","payload":' + '{"a":' * 10_000 + "1" + "}" * 10_001,
            400,
            "at most 64",
        ),
        ('{"operation":"echo","payload":[NaN]}', 400, "NaN is not a valid JSON number"),
        ('{"operation":"echo","payload":-Infinity}', 400, "-Infinity is not a valid JSON number"),
        ('{"operation":"echo","payload":"' + "x" * (6 * 1024 * 1024) + '"}', 413, "6 MB"),
    ],
    ids=[
        "huge-exponent",
        "huge-negative-exponent",
        "tiny-exponent",
        "5000-digit-integer",
        "10000-deep-arrays",
        "65-deep",
        "10000-deep-objects",
        "nan",
        "negative-infinity",
        "body-over-6mb",
    ],
)
def test_given_a_hostile_json_body_then_4xx_naming_the_bound_quickly(
    handler_module: ModuleType, context: LambdaContext, body: str, status: int, message: str
) -> None:
    got, reply = call(handler_module, proxy_event(body), context)
    assert (got, message in reply["message"]) == (status, True), reply


def test_given_json_63_levels_deep_and_brackets_inside_strings_then_echoed(
    handler_module: ModuleType, context: LambdaContext
) -> None:
    payload = [nested(61, as_list=True), "[[[[{{{{" * 20, {"q": '\\"[[[[[' * 20}]
    status, body = call(
        handler_module, proxy_event({"operation": "echo", "payload": payload}), context
    )
    assert (status, body) == (200, payload)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (1e300, "too large"),
        (-(10**150), "too large"),
        (10**5000, "out of DynamoDB's number range"),
        (nested(100), "at most 64 levels"),
    ],
    ids=["float-1e300", "int-1e150", "int-5000-digits", "100-deep"],
)
def test_given_a_direct_event_out_of_bounds_then_400(
    handler_module: ModuleType, context: LambdaContext, payload: Any, message: str
) -> None:
    status, body = call(handler_module, {"operation": "echo", "payload": payload}, context)
    assert (status, message in body["message"]) == (400, True), body


# --- the local DynamoDB itself refuses what DynamoDB refuses (any client, not just ours) ------


def nested_wire(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"S": "x"}
    for _ in range(levels):
        value = {"M": {"k": value}}
    return value


WIRE_LIMITS = [
    ("nesting", {"d": nested_wire(31)}, {"d": nested_wire(32)}, {}, "Nesting Levels"),
    ("key-utf8", {}, {}, {"id": "é" * 1024 + "x"}, "maximum size limit of2048 bytes"),
    ("item-utf8", {"b": {"S": "é" * 204_798}}, {"b": {"S": "é" * 204_799}}, {}, "Item size"),
    ("name-length", {"a" * 65535: {"N": "1"}}, {"a" * 65536: {"N": "1"}}, {}, "65535 bytes"),
    ("name-empty", {"a": {"N": "1"}}, {"": {"N": "1"}}, {}, "at least one character"),
]


@pytest.mark.parametrize(
    ("extra_under", "extra_over", "key_over", "message"),
    [case[1:] for case in WIRE_LIMITS],
    ids=[case[0] for case in WIRE_LIMITS],
)
def test_given_a_put_straight_to_local_dynamodb_then_it_enforces_dynamodbs_limit(
    dynalite: Dynalite,
    table: TableDefinition,
    extra_under: dict[str, Any],
    extra_over: dict[str, Any],
    key_over: dict[str, str],
    message: str,
) -> None:
    client = dynalite.client()
    client.put_item(TableName=table.name, Item={"id": {"S": "u"}, **extra_under})
    over_key = key_over.get("id", "o")
    with pytest.raises(ClientError) as refused:
        client.put_item(TableName=table.name, Item={"id": {"S": over_key}, **extra_over})
    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationException" and message in error["Message"]
    assert [item["id"]["S"] for item in scan_all(dynalite, table)] == ["u"]


def test_given_expressions_straight_to_local_dynamodb_then_4_kb_and_255_byte_limits_hold(
    dynalite: Dynalite, table: TableDefinition
) -> None:
    client = dynalite.client()
    ok = "attribute_not_exists(id)"
    client.put_item(
        TableName=table.name, Item={"id": {"S": "u"}}, ConditionExpression=ok + " " * (4096 - 24)
    )
    for extra in (
        {"ConditionExpression": ok + " " * (4097 - 24)},
        {
            "ConditionExpression": "attribute_not_exists(#" + "i" * 255 + ")",
            "ExpressionAttributeNames": {"#" + "i" * 255: "id"},
        },
    ):
        with pytest.raises(ClientError) as refused:
            client.put_item(TableName=table.name, Item={"id": {"S": "o"}}, **extra)
        assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert [item["id"]["S"] for item in scan_all(dynalite, table)] == ["u"]


def test_given_a_sort_key_over_1024_utf8_bytes_then_local_dynamodb_refuses_it(
    dynalite: Dynalite,
) -> None:
    client = dynalite.client()
    name = "memsweep-sort-key-limit"
    if name not in client.list_tables()["TableNames"]:
        client.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
        )
        client.get_waiter("table_exists").wait(TableName=name)
    client.put_item(TableName=name, Item={"pk": {"S": "p"}, "sk": {"S": "é" * 512}})
    with pytest.raises(ClientError) as refused:
        client.put_item(TableName=name, Item={"pk": {"S": "p"}, "sk": {"S": "é" * 512 + "x"}})
    assert "size limit of 1024 bytes" in refused.value.response["Error"]["Message"]


# --- through the whole local stack: the sandbox survives --------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"operation":"echo","payload":1e999999999}', "too large"),
        (b'{"operation":"echo","payload":' + b"[" * 10_000 + b"]" * 10_000 + b"}", "at most 64"),
        (
            json.dumps(create({"id": "deep", "d": nested(32)})).encode(),
            "limit of 32 levels",
        ),
        (
            json.dumps(create({"id": "deep", "n": 1})).replace("1}", "1E+126}").encode(),
            "too large",
        ),
    ],
    ids=["1e999999999", "10000-deep", "item-33-levels", "number-1e126"],
)
def test_given_a_hostile_body_through_the_local_stack_then_400_and_the_next_request_works(
    small_stack: LocalStackProcess, body: bytes, message: str
) -> None:
    reply = call_stack(small_stack, body)
    assert (reply.status, message in reply.json()["message"]) == (400, True), reply.body[:300]
    read = call_stack(small_stack, {"operation": "read", "payload": {"Key": {"id": "deep"}}})
    assert read.status == 200 and "Item" not in read.json()
    assert call_stack(small_stack, {"operation": "ping"}).json() == "pong"


# --- limits only DynamoDB can judge: an update's resulting item, an expression's structure ----
#
# The handler cannot know the stored item an update starts from, and counting an expression's
# operators means parsing it, so these are DynamoDB's to refuse (here dynalite_limits.js, in
# DynamoDB's words); the handler answers 400 (413 for size) and appends the documented limit.


def deep_path(elements: int) -> str:
    """A document path of `elements` elements down nested()'s maps: d.k.k...k."""
    return "d" + ".k" * (elements - 1)


def update(key: str, expression: str, values: dict[str, Any] | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"Key": {"id": key}, "UpdateExpression": expression}
    if values is not None:
        payload["ExpressionAttributeValues"] = values
    return {"operation": "update", "payload": payload}


def read(key: str, *, projection: str) -> dict[str, Any]:
    payload = {"Key": {"id": key}, "ProjectionExpression": projection}
    return {"operation": "read", "payload": payload}


def in_list(count: int) -> tuple[str, dict[str, Any]]:
    names = [f":v{index}" for index in range(count)]
    return "id IN (" + ", ".join(names) + ")", {name: "x" for name in names}


def operators(count: int) -> str:
    """A condition of exactly `count` operators (count odd, or even with one size())."""
    # attribute_not_exists (1) + comparisons and ORs in pairs (2 each); size() adds one.
    pairs, extra = divmod(count - 1, 2)
    terms = ["size(n) = :v" if extra else "n = :v"] + ["n = :v"] * (pairs - 1)
    return "attribute_not_exists(id) OR " + " OR ".join(terms)


@dataclass
class StoredLimit:
    id: str
    seed: dict[str, Any] | None  # written (as id "u" and id "o") before the request
    under: Any  # accepted: 200, and the table changes when `writes`
    over: Any  # refused with `status`, naming the limit in `message`; the table is unchanged
    status: int
    message: str
    writes: bool = True


ONE = {":v": 1}
GROWN = "x" * 300_000  # seed {"id", "b": GROWN}: 3 + 300_001 bytes of the 409_600
STORED_LIMITS = [
    # Attributes: nested attribute depth, 32 levels, reached through a SET on a deep path
    StoredLimit(
        "update-set-path-nesting",
        {"d": nested(31)},
        update("u", f"SET {deep_path(31)} = :v", {":v": {"z": "x"}}),  # a map at level 31
        update("o", f"SET {deep_path(32)} = :v", {":v": {"z": "x"}}),  # a map at level 32
        400,
        "limit is 32 levels of nested attributes",
    ),
    # ... and through a value that is within the limit on its own but not where it is set
    StoredLimit(
        "update-set-value-nesting",
        {"d": {"k": "x"}},
        update("u", "SET d.k = :v", {":v": nested(30)}),
        update("o", "SET d.k = :v", {":v": nested(31)}),
        400,
        "Nesting Levels have exceeded supported limits",
    ),
    # Items: 400 KB, judged on the item the update produces
    StoredLimit(
        "update-grows-item-past-400kb",
        {"b": GROWN},
        update("u", "SET c = :v", {":v": "y" * (MAX_ITEM - 300_005)}),
        update("o", "SET c = :v", {":v": "y" * (MAX_ITEM - 300_004)}),
        413,
        "Item size to update has exceeded the maximum allowed size",
    ),
    # Expression parameters: a document path of at most 32 levels, in any expression
    StoredLimit(
        "update-path-depth",
        {"d": nested(31)},
        update("u", f"SET {deep_path(32)} = :v", {":v": "y"}),
        update("o", f"SET {deep_path(33)} = :v", {":v": "y"}),
        400,
        "The document path has too many nesting levels; nesting levels: 33",
    ),
    StoredLimit(
        "projection-path-depth",
        {"d": nested(31)},
        read("u", projection=deep_path(32)),
        read("o", projection=deep_path(33)),
        400,
        "limit for a document path is 32 levels",
        writes=False,
    ),
    # Expression parameters: at most 100 operands for IN
    StoredLimit(
        "condition-in-operands",
        None,
        create(
            {"id": "u"},
            ConditionExpression="attribute_not_exists(id) OR " + in_list(100)[0],
            ExpressionAttributeValues=in_list(100)[1],
        ),
        create(
            {"id": "o"},
            ConditionExpression="attribute_not_exists(id) OR " + in_list(101)[0],
            ExpressionAttributeValues=in_list(101)[1],
        ),
        400,
        "IN operator is provided with too many operands; number of operands: 101",
    ),
    StoredLimit(
        "filter-in-operands",
        {"n": 1},
        {
            "operation": "list",
            "payload": {
                "FilterExpression": in_list(100)[0],
                "ExpressionAttributeValues": in_list(100)[1],
            },
        },
        {
            "operation": "list",
            "payload": {
                "FilterExpression": in_list(101)[0],
                "ExpressionAttributeValues": in_list(101)[1],
            },
        },
        400,
        "limit is 100 operands for IN",
        writes=False,
    ),
    # Expression parameters: at most 300 operators or functions in any expression
    StoredLimit(
        "condition-operators",
        None,
        create({"id": "u"}, ConditionExpression=operators(300), ExpressionAttributeValues=ONE),
        create({"id": "o"}, ConditionExpression=operators(301), ExpressionAttributeValues=ONE),
        400,
        "too many operators; operator count: 301 (DynamoDB's limit is 300 operators",
    ),
]


def seed_items(handler: ModuleType, context: LambdaContext, seed: dict[str, Any] | None) -> None:
    if seed is None:
        return
    for key in ("u", "o"):
        status, body = call(handler, create({"id": key, **seed}), context)
        assert status == 200, body


@pytest.mark.parametrize("limit", STORED_LIMITS, ids=[limit.id for limit in STORED_LIMITS])
def test_given_an_update_or_expression_just_under_a_limit_only_dynamodb_judges_then_200(
    handler_module: ModuleType,
    dynalite: Dynalite,
    table: TableDefinition,
    context: LambdaContext,
    limit: StoredLimit,
) -> None:
    seed_items(handler_module, context, limit.seed)
    before = scan_all(dynalite, table)
    status, body = call(handler_module, limit.under, context)
    assert status == 200, body
    after = scan_all(dynalite, table)
    assert (after != before) == limit.writes
    assert [item for item in after if item not in before] == (
        [item for item in after if item["id"]["S"] == "u"] if limit.writes else []
    )


@pytest.mark.parametrize("limit", STORED_LIMITS, ids=[limit.id for limit in STORED_LIMITS])
def test_given_an_update_or_expression_just_over_a_limit_only_dynamodb_judges_then_refused(
    handler_module: ModuleType,
    dynalite: Dynalite,
    table: TableDefinition,
    context: LambdaContext,
    limit: StoredLimit,
) -> None:
    seed_items(handler_module, context, limit.seed)
    before = scan_all(dynalite, table)
    status, body = call(handler_module, limit.over, context)
    assert (status, limit.message in body["message"]) == (limit.status, True), body
    assert scan_all(dynalite, table) == before


def test_given_updates_and_expressions_straight_to_local_dynamodb_then_its_limits_hold(
    dynalite: Dynalite, table: TableDefinition
) -> None:
    client = dynalite.client()
    name = table.name
    client.put_item(TableName=name, Item={"id": {"S": "u"}, "d": nested_wire(31)})
    before = scan_all(dynalite, table)

    def refused(message: str, call: Callable[[], Any]) -> None:
        with pytest.raises(ClientError) as error:
            call()
        assert error.value.response["Error"]["Code"] == "ValidationException"
        assert message in error.value.response["Error"]["Message"]
        assert scan_all(dynalite, table) == before

    key = {"id": {"S": "u"}}
    leaf = "d" + ".k" * 31  # the scalar at level 32
    value = {":v": {"M": {"z": {"S": "x"}}}}
    refused(
        "Nesting Levels have exceeded supported limits",
        lambda: client.update_item(
            TableName=name,
            Key=key,
            UpdateExpression=f"SET {leaf} = :v",
            ExpressionAttributeValues=value,
        ),
    )
    refused(
        "The document path has too many nesting levels; nesting levels: 33",
        lambda: client.get_item(TableName=name, Key=key, ProjectionExpression=leaf + ".k"),
    )
    values = {f":v{index}": {"S": "u"} for index in range(101)}
    refused(
        "The IN operator is provided with too many operands; number of operands: 101",
        lambda: client.scan(
            TableName=name,
            FilterExpression="id IN (" + ", ".join(values) + ")",
            ExpressionAttributeValues=values,
        ),
    )
    refused(
        "The expression contains too many operators; operator count: 301",
        lambda: client.scan(
            TableName=name,
            FilterExpression=" OR ".join(["id = :v"] * 151),  # 151 comparisons, 150 ORs
            ExpressionAttributeValues={":v": {"S": "u"}},
        ),
    )
    # Just under each: the same requests, one level or one operand fewer, are served.
    client.update_item(
        TableName=name,
        Key=key,
        UpdateExpression=f"SET {leaf[:-2]} = :v",  # a map at level 31
        ExpressionAttributeValues=value,
    )
    client.get_item(TableName=name, Key=key, ProjectionExpression=leaf)
    del values[":v100"]
    assert (
        client.scan(
            TableName=name,
            FilterExpression="id IN (" + ", ".join(values) + ")",
            ExpressionAttributeValues=values,
        )["Count"]
        == 1
    )
    assert (
        client.scan(
            TableName=name,
            FilterExpression="NOT id = :w OR " + " OR ".join(["id = :v"] * 149),  # 1 + 150 + 149
            ExpressionAttributeValues={":v": {"S": "u"}, ":w": {"S": "w"}},
        )["Count"]
        == 1
    )
