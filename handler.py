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
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import Binary
from botocore.config import Config
from botocore.exceptions import ClientError, ParamValidationError

# The tutorial's table name; deployments may override it (see serverless.yml params).
TABLE_NAME = os.environ.get("TABLE_NAME", "lambda-apigateway")
# A scan reads up to 1 MB per call; capping it keeps `list` latency and cost bounded.
# Callers page with the returned LastEvaluatedKey (passed back as ExclusiveStartKey).
LIST_LIMIT_MAX = int(os.environ.get("LIST_LIMIT_MAX", "100"))
# Marker the runner's log parser looks for (one line per invocation).
LOG_TYPE = "memsweep.invocation"

# Built once per sandbox: a per-call resource costs ~11 ms of CPU (EMULATOR_FACTS.md), which
# at 128 MB is most of the tutorial's latency. boto3 reads AWS_ENDPOINT_URL by itself, which
# is how the local stack and the tests point it at dynalite.
_DYNAMODB = boto3.resource(
    "dynamodb",
    config=Config(retries={"mode": "standard", "max_attempts": 3}),
)
TABLE = _DYNAMODB.Table(TABLE_NAME)


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


def _decode_json(text: str | bytes) -> Any:
    # Decimal, not float: DynamoDB numbers are decimal and boto3 refuses floats.
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None


def _to_decimals(value: Any) -> Any:
    """Floats in a direct (already decoded) event become Decimals, as in a proxy body."""
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise BadRequest(f"payload: {value} is not a valid number")
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {key: _to_decimals(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_decimals(item) for item in value]
    return value


def parse_request(event: Any) -> dict[str, Any]:
    """The tutorial's request document, from a proxy event or a direct event."""
    if isinstance(event, Mapping) and "httpMethod" in event and "requestContext" in event:
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


def _translate(error: ClientError) -> ApiError:
    code = error.response.get("Error", {}).get("Code", "")
    message = error.response.get("Error", {}).get("Message", "") or code
    if code == "ValidationException" and "exceeded the maximum allowed size" in message:
        return PayloadTooLarge(f"item too large: {message} (limit 400 KB)")
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
        return int(value) if value == value.to_integral_value() else float(value)
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
        log["requestTimeEpoch"] = context_info.get("requestTimeEpoch")
    capacity = {"read": 0.0, "write": 0.0}
    try:
        request = parse_request(event)
        name, operation, payload = _resolve(request)
        log["operation"] = name
        if operation.uses_table:
            payload = {**payload, "ReturnConsumedCapacity": "TOTAL"}
        try:
            result = operation.run(payload)
        except ClientError as exc:
            raise _translate(exc) from None
        except ParamValidationError as exc:
            raise BadRequest(f"payload for {name}: {exc}") from None
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
