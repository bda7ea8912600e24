"""LambdaFunctionOverHttps: the tutorial's DynamoDB operations over HTTP, hardened.

Accepts the API Gateway REST proxy event (body string, possibly base64) and the tutorial's
direct event ({"operation", "tableName", "payload"}), so the tutorial's test events and curl
commands work unchanged. The response body keeps the tutorial's contract: the DynamoDB
response document for create/read/update/delete/list, the payload for echo, "pong" for ping.

Hardening over the tutorial: the DynamoDB table is fixed by configuration (TABLE_NAME), the
client is built once per sandbox, every operation takes only an allow-listed set of
parameters, `list` is capped and returns a cursor, and every failure becomes a JSON response
with a status code and no stack trace.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import json
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from decimal import Decimal
from itertools import accumulate
from typing import Any

import boto3
from boto3.dynamodb.types import DYNAMODB_CONTEXT, Binary, TypeDeserializer
from botocore.config import Config
from botocore.exceptions import ClientError, ParamValidationError

# The tutorial's table name; deployments may override it (see serverless.yml params).
TABLE_NAME = os.environ.get("TABLE_NAME", "lambda-apigateway")
# A scan reads up to 1 MB per call; capping it keeps `list` latency and cost bounded.
# Callers page with the returned LastEvaluatedKey (passed back as ExclusiveStartKey).
LIST_LIMIT_MAX = int(os.environ.get("LIST_LIMIT_MAX", "100"))
# Marker the runner's log parser looks for (one line per invocation).
LOG_TYPE = "memsweep.invocation"

# --- bounds on what a request may hold, checked before any work scales with it -------------
# Lambda quota: a synchronous invocation's request payload is at most 6 MB, so no larger
# body reaches this code on AWS (API Gateway's own 10 MB is never the binding one).
MAX_BODY_CHARS = 6 * 1024 * 1024
# Deep enough for DynamoDB's 32 levels inside the request's envelope (request, payload,
# Item) with room to spare; shallow enough that every later walk (ours, boto3's
# serialiser, json.dumps) stays far from Python's recursion limit.
MAX_JSON_DEPTH = 64
# The widest DynamoDB number written out without an exponent is -0.(129 zeros)(38 digits):
# 170 characters. A longer literal is refused before it is converted.
MAX_NUMBER_CHARS = 200

# DynamoDB's documented constraints (Developer Guide, "Constraints in Amazon DynamoDB":
# Data types, Items, Attributes, Naming rules, Expression parameters). AWS answers each
# with a ValidationException; the handler refuses them first so the local stack (dynalite,
# which misses several) and AWS give the same 400 naming the limit, and nothing is written.
DYNAMODB_NUMBER_DIGITS = 38  # significant digits
DYNAMODB_NUMBER_MAX_EXPONENT = 125  # 9.9999999999999999999999999999999999999E+125
DYNAMODB_NUMBER_MIN_EXPONENT = -130  # 1E-130
DYNAMODB_MAX_ITEM_BYTES = 400 * 1024  # attribute names and values, UTF-8
DYNAMODB_MAX_NESTING = 32  # levels of nested attributes, the item's own level included
DYNAMODB_MAX_ATTRIBUTE_NAME_BYTES = 65535  # "at least one character, no greater than 64 KB"
DYNAMODB_MAX_EXPRESSION_BYTES = 4 * 1024  # any one expression string
DYNAMODB_MAX_PLACEHOLDER_BYTES = 255  # one #name or :value placeholder
DYNAMODB_MAX_SUBSTITUTION_BYTES = 2 * 1024 * 1024  # all names and values of one request
_EXPRESSIONS = (
    "ConditionExpression",
    "UpdateExpression",
    "ProjectionExpression",
    "FilterExpression",
)
_NUMBER_RANGE = "1E-130 to 9.9999999999999999999999999999999999999E+125, positive or negative"

# Built once per sandbox: a per-call resource costs ~11 ms of CPU (docs/ARCHITECTURE.md, 4.2), which
# at 128 MB is most of the tutorial's latency. boto3 reads AWS_ENDPOINT_URL by itself, which
# is how the local stack and the tests point it at dynalite.
_DYNAMODB = boto3.resource(
    "dynamodb",
    config=Config(retries={"mode": "standard", "max_attempts": 3}),
)
TABLE = _DYNAMODB.Table(TABLE_NAME)


def _deserialize_number(self: TypeDeserializer, value: str) -> Decimal:
    return Decimal(value)


# boto3 re-checks every number DynamoDB returns against its 38-digit context, and so fails
# (decimal.Rounded) on valid stored numbers written out with more than 38 digits: 1E+100 is
# returned as "1000...0" (boto/boto3#2500, open). DynamoDB has validated them already.
setattr(TypeDeserializer, "_deserialize_n", _deserialize_number)  # noqa: B010 - untyped stub


class ApiError(Exception):
    """A failure the caller caused or should see, carrying its HTTP status."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ApiError):
    status = 400


class Forbidden(ApiError):
    status = 403


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class TooManyRequests(ApiError):
    status = 429


# DynamoDB error codes → the error the caller sees. ValidationException is refined by
# message below (oversized items are 413, not 400).
_DYNAMODB_ERRORS: dict[str, type[ApiError]] = {
    "ConditionalCheckFailedException": Conflict,
    "ProvisionedThroughputExceededException": TooManyRequests,
    "ThrottlingException": TooManyRequests,
    "RequestLimitExceeded": TooManyRequests,
    "ValidationException": BadRequest,
    "AccessDeniedException": Forbidden,
    "ResourceNotFoundException": ApiError,
}


def _json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float, Decimal)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _reject_constant(name: str) -> Any:
    raise BadRequest(f"request body: {name} is not a valid JSON number")


def _number(text: str, *, integer: bool) -> Decimal | int:
    """A number literal as DynamoDB can store it, or a 400 naming the limit it breaks.

    Every number in a request is held to DynamoDB's number type, echo's too: the function
    carries DynamoDB documents, and an unbounded number (1e999999999 is 11 characters) must
    never reach int() or boto3's serialiser.
    """
    if len(text) > MAX_NUMBER_CHARS:
        raise BadRequest(
            f"number {text[:32]}... is {len(text)} characters long; this function accepts "
            f"number literals of at most {MAX_NUMBER_CHARS} characters"
        )
    value = Decimal(text)
    sign, digits, exponent = value.as_tuple()
    significant = _significant_digits(value)
    if not significant:
        return 0 if integer else Decimal(0)  # any zero: 0E-999999 would trip boto3
    if value.adjusted() > DYNAMODB_NUMBER_MAX_EXPONENT:
        raise BadRequest(
            f"number {text[:64]} is too large: DynamoDB numbers range over {_NUMBER_RANGE}"
        )
    if value.adjusted() < DYNAMODB_NUMBER_MIN_EXPONENT:
        raise BadRequest(
            f"number {text[:64]} is too small: DynamoDB numbers range over {_NUMBER_RANGE}"
        )
    if significant > DYNAMODB_NUMBER_DIGITS:
        raise BadRequest(
            f"number {text[:64]} has {significant} significant digits: DynamoDB numbers "
            f"keep at most {DYNAMODB_NUMBER_DIGITS}"
        )
    if len(digits) > significant:  # trailing zeros past 38 digits: boto3 would say Rounded
        value = Decimal((sign, digits[:significant], int(exponent) + len(digits) - significant))
    try:
        DYNAMODB_CONTEXT.create_decimal(value)  # what boto3 will do with it
    except decimal.DecimalException:
        raise BadRequest(
            f"number {text[:64]} has more digits than DynamoDB keeps at that magnitude"
        ) from None
    if integer and len(digits) <= DYNAMODB_NUMBER_DIGITS:
        return int(text)
    return value


def _parse_float(text: str) -> Decimal | int:
    # Decimal, not float: DynamoDB numbers are decimal and boto3 refuses floats.
    return _number(text, integer=False)


def _parse_int(text: str) -> Decimal | int:
    return _number(text, integer=True)


# A JSON string, escapes included (the unrolled form keeps the regex linear).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_DEPTH_STEP = [0] * 256
_DEPTH_STEP[ord("[")] = _DEPTH_STEP[ord("{")] = 1
_DEPTH_STEP[ord("]")] = _DEPTH_STEP[ord("}")] = -1


def _json_depth(text: str | bytes) -> int:
    """How deep a JSON text nests (an upper bound if it is malformed), in linear C-speed steps."""
    if isinstance(text, str):
        if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
            return 0  # too few brackets to be too deep: the common case costs two scans
        text = text.encode("utf-8", "surrogatepass")
    elif text.count(b"[") + text.count(b"{") <= MAX_JSON_DEPTH:
        return 0
    brackets = _JSON_STRING.sub(b"", text).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def _decode_json(text: str | bytes) -> Any:
    if len(text) > MAX_BODY_CHARS:
        raise PayloadTooLarge(
            f"request body is {len(text)} bytes; the limit is {MAX_BODY_CHARS} "
            "(Lambda's 6 MB synchronous payload quota)"
        )
    depth = _json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise BadRequest(
            f"request body nests {depth} levels deep; this function accepts JSON nested at "
            f"most {MAX_JSON_DEPTH} levels"
        )
    try:
        return json.loads(
            text,
            parse_float=_parse_float,
            parse_int=_parse_int,
            parse_constant=_reject_constant,
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {str(exc)[:200]}") from None


def _to_decimals(value: Any, depth: int = 1) -> Any:
    """A direct (already decoded) event held to the same rules as a proxy body."""
    if depth > MAX_JSON_DEPTH:
        raise BadRequest(
            f"request nests more than {MAX_JSON_DEPTH} levels deep; this function accepts "
            f"JSON nested at most {MAX_JSON_DEPTH} levels"
        )
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise BadRequest(f"payload: {value} is not a valid number")
        return _number(repr(value), integer=False)
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > 4 * MAX_NUMBER_CHARS:  # str() of a huge int is itself costly
            raise BadRequest(
                f"an integer of {value.bit_length()} bits is out of DynamoDB's number range"
            )
        return _number(str(value), integer=True)
    if isinstance(value, dict):
        return {key: _to_decimals(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_decimals(item, depth + 1) for item in value]
    return value


def _is_proxy_event(event: Any) -> bool:
    """API Gateway's proxy event: REST (v1, `httpMethod`) or HTTP API (v2, `version` "2.0")."""
    return (
        isinstance(event, Mapping)
        and "requestContext" in event
        and ("httpMethod" in event or event.get("version") == "2.0")
    )


def parse_request(event: Any) -> dict[str, Any]:
    """The tutorial's request document, from a proxy event (a REST API's payload format 1.0
    or an HTTP API's 2.0: the body is carried the same way) or a direct event."""
    if _is_proxy_event(event):
        body = event.get("body")
        if body is None or body == "":
            raise BadRequest("request body is empty: send a JSON object with an 'operation'")
        if not isinstance(body, str):
            raise BadRequest(f"request body must be a string, got {_json_type(body)}")
        raw: str | bytes = body
        if event.get("isBase64Encoded"):
            try:
                raw = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest("request body is marked base64 but is not valid base64") from None
        request = _decode_json(raw)
    else:
        request = _to_decimals(event)
    if not isinstance(request, dict):
        raise BadRequest(
            f"request must be a JSON object with an 'operation', got {_json_type(request)}"
        )
    return request


# --- operations -----------------------------------------------------------------------------

Payload = dict[str, Any]


def _create(payload: Payload) -> dict[str, Any]:
    _require_object(payload, "Item")
    return dict(TABLE.put_item(**payload))


def _read(payload: Payload) -> dict[str, Any]:
    _require_object(payload, "Key")
    return dict(TABLE.get_item(**payload))


def _update(payload: Payload) -> dict[str, Any]:
    _require_object(payload, "Key")
    if "UpdateExpression" not in payload and "AttributeUpdates" not in payload:
        raise BadRequest("payload.UpdateExpression (or the legacy AttributeUpdates) is required")
    return dict(TABLE.update_item(**payload))


def _delete(payload: Payload) -> dict[str, Any]:
    _require_object(payload, "Key")
    return dict(TABLE.delete_item(**payload))


def _list(payload: Payload) -> dict[str, Any]:
    limit = payload.get("Limit", LIST_LIMIT_MAX)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise BadRequest(f"payload.Limit must be a positive integer, got {limit!r}")
    if "ExclusiveStartKey" in payload:
        _require_object(payload, "ExclusiveStartKey")
    return dict(TABLE.scan(**{**payload, "Limit": min(limit, LIST_LIMIT_MAX)}))


def _echo(payload: Any) -> Any:
    return payload


def _ping(payload: Any) -> str:
    return "pong"


def _require_object(payload: Payload, key: str) -> None:
    if key not in payload:
        raise BadRequest(f"payload.{key} is required")
    if not isinstance(payload[key], dict) or not payload[key]:
        raise BadRequest(f"payload.{key} must be a non-empty JSON object")


# --- DynamoDB's limits, checked before the call ----------------------------------------------


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _attribute_name(name: str, where: str, *, top_level: bool = True) -> int:
    """An attribute name's size in bytes, or a 400 naming DynamoDB's naming rule."""
    size = _utf8_len(name)
    if size > DYNAMODB_MAX_ATTRIBUTE_NAME_BYTES:
        raise BadRequest(
            f"{where}: attribute name {name[:32]!r}... is {size} bytes; DynamoDB's limit for "
            f"an attribute name is 64 KB ({DYNAMODB_MAX_ATTRIBUTE_NAME_BYTES} bytes)"
        )
    if not size and top_level:
        raise BadRequest(f"{where}: DynamoDB attribute names must be at least one character long")
    return size


def _significant_digits(number: Decimal) -> int:
    """Digits without trailing zeros: what DynamoDB's precision and size rules count."""
    digits = number.as_tuple().digits
    significant = len(digits)
    while significant and digits[significant - 1] == 0:
        significant -= 1
    return significant


def _number_size(value: Decimal | int) -> int:
    # DynamoDB's size of a number: about 1 byte per two significant digits plus 1 (the
    # Developer Guide's item-size rules), refined as dynalite measures it.
    number = Decimal(value)
    sign = number.as_tuple().sign
    significant = _significant_digits(number)
    if not significant:
        return 1
    even = not (significant % 2 or number.adjusted() % 2)
    return 1 + (significant + 1) // 2 + even + sign


def _value_size(value: Any, level: int, where: str) -> int:
    """DynamoDB's size of one attribute value at a nesting level (a top-level attribute is 1).

    Sizes follow the Developer Guide's item-size rules (UTF-8 strings, 3 bytes plus 1 per
    element for a list or map, names included); one linear walk also checks nesting.
    """
    if isinstance(value, str):
        return _utf8_len(value)
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, (int, Decimal)):
        return _number_size(value)
    if isinstance(value, (dict, list)):
        if level >= DYNAMODB_MAX_NESTING:
            raise BadRequest(
                f"{where}: nested deeper than DynamoDB's limit of {DYNAMODB_MAX_NESTING} levels "
                "for nested attributes (the item is the first level)"
            )
        if isinstance(value, list):
            return 3 + sum(1 + _value_size(item, level + 1, where) for item in value)
        return (
            3
            + len(value)
            + sum(
                _attribute_name(key, where, top_level=False) + _value_size(item, level + 1, where)
                for key, item in value.items()
            )
        )
    if isinstance(value, (set, frozenset)):  # not from JSON; a direct caller's own values
        if not value:
            raise BadRequest(f"{where}: DynamoDB refuses an empty set")
        return sum(_value_size(item, level, where) for item in value)
    if isinstance(value, Binary):
        return len(value.__bytes__())
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    return 0  # any other type: boto3's serialiser names it


def _check_item(item: dict[str, Any], where: str) -> None:
    size = 0
    for name, value in item.items():
        label = f"{where}.{name[:64]}"
        size += _attribute_name(name, where) + _value_size(value, 1, label)
    if size > DYNAMODB_MAX_ITEM_BYTES:
        raise PayloadTooLarge(
            f"item too large: {where} is {size} bytes; DynamoDB's item size limit is 400 KB "
            f"({DYNAMODB_MAX_ITEM_BYTES} bytes, attribute names included)"
        )


def _placeholder(placeholder: str, where: str) -> int:
    size = _utf8_len(placeholder)
    if size > DYNAMODB_MAX_PLACEHOLDER_BYTES:
        raise BadRequest(
            f"payload.{where}: placeholder {placeholder[:32]!r}... is {size} bytes; DynamoDB's "
            f"limit for an expression attribute name or value is "
            f"{DYNAMODB_MAX_PLACEHOLDER_BYTES} bytes"
        )
    return size


def check_dynamodb_limits(payload: Payload) -> None:
    """Refuse what DynamoDB would refuse for its documented limits, before anything is sent.

    Only values of the right shape are checked; wrong shapes are left to the operation's own
    checks and to boto3, which name them.
    """
    for key in ("ExpressionAttributeNames", "ExpressionAttributeValues"):
        # boto3's resource layer merges into these (dict.update) before validating them.
        if key in payload and not isinstance(payload[key], dict):
            raise BadRequest(f"payload.{key} must be a JSON object, got {_json_type(payload[key])}")
    item = payload.get("Item")
    if isinstance(item, dict):
        _check_item(item, "payload.Item")
    for key in _EXPRESSIONS:
        expression = payload.get(key)
        if isinstance(expression, str):
            size = _utf8_len(expression)
            if size > DYNAMODB_MAX_EXPRESSION_BYTES:
                raise BadRequest(
                    f"payload.{key} is {size} bytes; DynamoDB's limit for an expression is "
                    f"4 KB ({DYNAMODB_MAX_EXPRESSION_BYTES} bytes)"
                )
    substitutions = 0
    names = payload.get("ExpressionAttributeNames")
    if isinstance(names, dict):
        for placeholder, name in names.items():
            substitutions += _placeholder(placeholder, "ExpressionAttributeNames")
            if isinstance(name, str):
                where = f"payload.ExpressionAttributeNames.{placeholder[:64]}"
                substitutions += _attribute_name(name, where)
    values = payload.get("ExpressionAttributeValues")
    if isinstance(values, dict):
        for placeholder, value in values.items():
            substitutions += _placeholder(placeholder, "ExpressionAttributeValues")
            where = f"payload.ExpressionAttributeValues.{placeholder[:64]}"
            substitutions += _value_size(value, 1, where)
    if substitutions > DYNAMODB_MAX_SUBSTITUTION_BYTES:
        raise BadRequest(
            f"payload's ExpressionAttributeNames and ExpressionAttributeValues hold "
            f"{substitutions} bytes; DynamoDB's limit for all substitutions is 2 MB"
        )
    updates = payload.get("AttributeUpdates")
    if isinstance(updates, dict):
        for name, update in updates.items():
            where = f"payload.AttributeUpdates.{name[:64]}"
            _attribute_name(name, "payload.AttributeUpdates")
            if isinstance(update, dict) and "Value" in update:
                _value_size(update["Value"], 1, where)


_EXPRESSION_NAMES_VALUES = frozenset({"ExpressionAttributeNames", "ExpressionAttributeValues"})


class Operation:
    """One entry of the dispatch table: what it runs and what the caller may pass to it."""

    def __init__(
        self,
        run: Callable[[Any], Any],
        *,
        allowed: frozenset[str] | None,
        writes: bool = False,
        uses_table: bool = True,
    ) -> None:
        self.run = run
        # None: any payload (echo, ping). Otherwise the DynamoDB parameters the caller may
        # set; TableName, ReturnConsumedCapacity, Segment, Select and the like are not in any
        # list, so a request can't reach another table or change what the function bills.
        self.allowed = allowed
        self.writes = writes
        self.uses_table = uses_table


OPERATIONS: dict[str, Operation] = {
    "create": Operation(
        _create,
        allowed=frozenset({"Item", "ConditionExpression", "ReturnValues"})
        | _EXPRESSION_NAMES_VALUES,
        writes=True,
    ),
    "read": Operation(
        _read,
        allowed=frozenset(
            {"Key", "ProjectionExpression", "ExpressionAttributeNames", "ConsistentRead"}
        ),
    ),
    "update": Operation(
        _update,
        # AttributeUpdates: the legacy form the tutorial's update event uses.
        allowed=frozenset(
            {"Key", "UpdateExpression", "AttributeUpdates", "ConditionExpression", "ReturnValues"}
        )
        | _EXPRESSION_NAMES_VALUES,
        writes=True,
    ),
    "delete": Operation(
        _delete,
        allowed=frozenset({"Key", "ConditionExpression", "ReturnValues"})
        | _EXPRESSION_NAMES_VALUES,
        writes=True,
    ),
    "list": Operation(
        _list,
        allowed=frozenset(
            {
                "Limit",
                "ExclusiveStartKey",
                "FilterExpression",
                "ProjectionExpression",
                "ConsistentRead",
            }
        )
        | _EXPRESSION_NAMES_VALUES,
    ),
    "echo": Operation(_echo, allowed=None, uses_table=False),
    "ping": Operation(_ping, allowed=None, uses_table=False),
}


def _resolve(request: dict[str, Any]) -> tuple[str, Operation, Any]:
    """Check the request against the dispatch table before anything touches DynamoDB."""
    if "operation" not in request:
        raise BadRequest(f"'operation' is required, one of: {', '.join(OPERATIONS)}")
    name = request["operation"]
    if not isinstance(name, str):
        raise BadRequest(f"'operation' must be a string, got {_json_type(name)}")
    operation = OPERATIONS.get(name)
    if operation is None:
        raise BadRequest(
            f"unknown operation {name[:64]!r}: expected one of {', '.join(OPERATIONS)}"
        )
    table_name = request.get("tableName", TABLE_NAME)
    if not isinstance(table_name, str):
        raise BadRequest(f"'tableName' must be a string, got {_json_type(table_name)}")
    if operation.uses_table and table_name != TABLE_NAME:
        raise BadRequest(
            f"tableName {table_name[:256]!r} is not served here: this function "
            f"serves table {TABLE_NAME!r}"
        )
    payload = request.get("payload", {} if operation.uses_table else None)
    if operation.allowed is not None:
        if not isinstance(payload, dict):
            raise BadRequest(f"payload for {name} must be a JSON object, got {_json_type(payload)}")
        unexpected = sorted(set(payload) - operation.allowed)
        if unexpected:
            raise BadRequest(
                f"payload for {name} may not contain {', '.join(unexpected)[:256]}; "
                f"allowed: {', '.join(sorted(operation.allowed))}"
            )
    return name, operation, payload


# Limits only DynamoDB can judge: an update's resulting item (the stored item is not known
# here) and the structure of an expression (counting would mean parsing every expression on
# every request). DynamoDB's ValidationException message gets the documented limit appended
# (Developer Guide, "Constraints in Amazon DynamoDB": Attributes, Expression parameters).
_DYNAMODB_LIMIT_MESSAGES = (
    (
        "Nesting Levels have exceeded supported limits",
        f"DynamoDB's limit is {DYNAMODB_MAX_NESTING} levels of nested attributes, "
        "the item is the first level",
    ),
    (
        "The document path has too many nesting levels",
        f"DynamoDB's limit for a document path is {DYNAMODB_MAX_NESTING} levels",
    ),
    (
        "The expression contains too many operators",
        "DynamoDB's limit is 300 operators or functions in one expression",
    ),
    (
        "The IN operator is provided with too many operands",
        "DynamoDB's limit is 100 operands for IN",
    ),
)


def _translate(error: ClientError) -> ApiError:
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "") or code
    if code == "ValidationException" and "exceeded the maximum allowed size" in message:
        return PayloadTooLarge(f"item too large: {message} (limit 400 KB)")
    if code == "ValidationException":
        for fragment, limit in _DYNAMODB_LIMIT_MESSAGES:
            if fragment in message:
                return BadRequest(f"{message} ({limit})")
    if code == "ConditionalCheckFailedException":
        return Conflict("the condition on this request was not met (item unchanged)")
    error_class = _DYNAMODB_ERRORS.get(code)
    if error_class is None or error_class is ApiError:
        return ApiError(f"DynamoDB error {code}")
    return error_class(message)


def _consumed_capacity(response: Any, operation: Operation) -> dict[str, float]:
    consumed = response.pop("ConsumedCapacity", None) if isinstance(response, dict) else None
    units = float(consumed.get("CapacityUnits", 0)) if isinstance(consumed, dict) else 0.0
    # On-demand tables bill request units; writes and reads are priced differently.
    return {"write": units, "read": 0.0} if operation.writes else {"read": units, "write": 0.0}


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Within DynamoDB's range (every number passed _number() or came from DynamoDB) an
        # integral value has at most 126 digits; the bound keeps int() cheap regardless.
        if value.adjusted() <= DYNAMODB_NUMBER_MAX_EXPONENT and value == value.to_integral_value():
            return int(value)
        return float(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if isinstance(value, Binary):
        value = value.__bytes__()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _response(status: int, body: Any) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body, default=_json_default),
    }


def handle(event: Any, context: Any) -> dict[str, Any]:
    """Run one request; every outcome is a proxy response, logged as one JSON line."""
    started = time.perf_counter()
    request_id = getattr(context, "aws_request_id", None) or "local"
    log: dict[str, Any] = {"type": LOG_TYPE, "requestId": request_id, "operation": None}
    # API Gateway's own request id and arrival time: the runner joins this line to the
    # REPORT line (same requestId) and attributes the invocation to the measured window the
    # request arrived in, not to the moment its logs happened to land.
    context_info = event.get("requestContext") if isinstance(event, dict) else None
    if isinstance(context_info, dict):
        log["apiRequestId"] = context_info.get("requestId")
        # REST (v1) names it requestTimeEpoch; an HTTP API's payload 2.0 names it timeEpoch.
        log["requestTimeEpoch"] = context_info.get("requestTimeEpoch") or context_info.get(
            "timeEpoch"
        )
    capacity = {"read": 0.0, "write": 0.0}
    try:
        request = parse_request(event)
        name, operation, payload = _resolve(request)
        log["operation"] = name
        if operation.uses_table:
            check_dynamodb_limits(payload)
            payload = {**payload, "ReturnConsumedCapacity": "TOTAL"}
        try:
            result = operation.run(payload)
        except ClientError as exc:
            raise _translate(exc) from None
        except ParamValidationError as exc:
            raise BadRequest(f"payload for {name}: {exc}") from None
        except decimal.DecimalException as exc:  # boto3's serialiser; _number() should prevent it
            raise BadRequest(
                f"payload for {name}: a number DynamoDB cannot hold ({exc!r})"
            ) from None
        if operation.uses_table:
            capacity = _consumed_capacity(result, operation)
        response = _response(200, result)
    except ApiError as exc:
        if exc.status >= 500:
            log["error"] = exc.message
        response = _response(exc.status, {"message": exc.message, "requestId": request_id})
    except Exception as exc:  # noqa: BLE001 - the caller gets a request id, the log the trace
        log["error"] = f"{type(exc).__name__}: {exc}"
        log["trace"] = traceback.format_exc()
        response = _response(500, {"message": "internal error", "requestId": request_id})
    log["status"] = response["statusCode"]
    log["consumedCapacity"] = capacity
    log["durationMs"] = round((time.perf_counter() - started) * 1000, 3)
    # One write per line: awslambdaric flushes stdout after every write, and print() would
    # write the text and the newline separately (two syscalls, two log-pipe writes).
    sys.stdout.write(json.dumps(log) + "\n")
    sys.stdout.flush()
    return response


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    return handle(event, context)
