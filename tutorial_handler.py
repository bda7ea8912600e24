"""The AWS tutorial's original LambdaFunctionOverHttps, kept unchanged as a fidelity fixture.

It builds a boto3 resource on every call (~11 ms of CPU, docs/ARCHITECTURE.md, section 4.2),
which is most of the tutorial's published 128 MB vs 1024 MB gap (327 ms vs 110 ms average).
Sweeps and benchmarks run it beside the hardened handler.py (the handler axis,
`tutorial_handler.lambda_handler`) to show how much of "memory makes it faster" is this one
line. It sits at the project root so the local stack (whose code directory is the root) and the
deployed package (serverless.yml's package.patterns) both hold it; it is never the stack's
default handler. It lets any caller name any table and pass any parameters: the function's
role, granted on the stack's table only, is what bounds it.

The tutorial's API used the non-proxy integration, which hands the function the request's JSON
body as its event and returns its result as the body; the deployed stack's APIs are proxy
integrations (REST v1 and HTTP API v2 events). So `lambda_handler` below only adapts: a proxy
event's body becomes the tutorial's event and the result a 200 JSON response, the way the
non-proxy integration did it; a direct event (the local stack's `integration: lambda`, the
tutorial's test events) goes straight through. `tutorial_lambda_handler` is the tutorial's
function, verbatim but for its name.
"""

# The tutorial's code as published: lint rules it predates stay off for this file only.
# ruff: noqa: UP010, UP032
# mypy: ignore-errors

from __future__ import print_function

import base64
import decimal
import json

import boto3

print("Loading function")


def lambda_handler(event, context):
    """Lambda's entry point: the tutorial's function from a proxy or a non-proxy integration."""
    if not _is_proxy_event(event):
        return tutorial_lambda_handler(event, context)
    body = event.get("body") or "{}"
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8")
    result = tutorial_lambda_handler(json.loads(body), context)
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(result, default=_json_number),
    }


def _is_proxy_event(event):
    """A REST (v1) or HTTP API (v2) proxy event, not the tutorial's direct event."""
    return (
        isinstance(event, dict)
        and "operation" not in event
        and "requestContext" in event
        and "body" in event
    )


def _json_number(value):
    """DynamoDB numbers come back as Decimal; Lambda's own serialiser writes them as numbers."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def tutorial_lambda_handler(event, context):
    """Provide an event that contains the following keys:

    - operation: one of the operations in the operations dict below
    - tableName: required for operations that interact with DynamoDB
    - payload: a parameter to pass to the operation being performed
    """
    # print("Received event: " + json.dumps(event, indent=2))

    operation = event["operation"]

    if "tableName" in event:
        dynamo = boto3.resource("dynamodb").Table(event["tableName"])

    operations = {
        "create": lambda x: dynamo.put_item(**x),
        "read": lambda x: dynamo.get_item(**x),
        "update": lambda x: dynamo.update_item(**x),
        "delete": lambda x: dynamo.delete_item(**x),
        "list": lambda x: dynamo.scan(**x),
        "echo": lambda x: x,
        "ping": lambda x: "pong",
    }

    if operation in operations:
        return operations[operation](event.get("payload"))
    else:
        raise ValueError('Unrecognized operation "{}"'.format(operation))
