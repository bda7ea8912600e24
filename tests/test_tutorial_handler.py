"""tutorial_handler.py (the AWS tutorial's original function) against real dynalite.

The handler axis switches the deployed function to it, where both APIs are proxy
integrations: its adapter must hand the tutorial's code the body, as the tutorial's non-proxy
integration did, and answer a proxy response; a direct event must reach the tutorial's code
as it always did.
"""

from __future__ import annotations

import base64
import copy
import importlib
import json
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from runner.emulator._dynamodb import Dynalite, environment_for
from runner.stack import PROJECT_ROOT, TableDefinition
from tests.conftest import LambdaContext, load_event


@pytest.fixture
def tutorial(
    dynalite: Dynalite, table: TableDefinition, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    """tutorial_handler.py from the project root, its per-call boto3 resource on dynalite."""
    for key, value in environment_for(dynalite.endpoint).items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(PROJECT_ROOT))
    sys.modules.pop("tutorial_handler", None)
    yield importlib.import_module("tutorial_handler")
    sys.modules.pop("tutorial_handler", None)


def rest_event(body: dict[str, Any], *, base64_encoded: bool = False) -> dict[str, Any]:
    event: dict[str, Any] = load_event("apigw-proxy-create.json")
    text = json.dumps(body)
    event["body"] = base64.b64encode(text.encode()).decode() if base64_encoded else text
    event["isBase64Encoded"] = base64_encoded
    return event


def http_event(body: dict[str, Any]) -> dict[str, Any]:
    event: dict[str, Any] = copy.deepcopy(load_event("httpapi-v2-event.json"))
    event["body"] = json.dumps(body)
    event["isBase64Encoded"] = False
    return event


def proxied(response: Any) -> Any:
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "application/json"
    return json.loads(response["body"])


def test_given_a_fraction_stored_by_another_client_then_listed_as_a_json_number(
    tutorial: ModuleType, dynalite: Dynalite, table: TableDefinition
) -> None:
    dynalite.client().put_item(
        TableName=table.name, Item={"id": {"S": "f"}, "score": {"N": "1.25"}}
    )
    body = {"operation": "list", "tableName": table.name, "payload": {}}
    listed = proxied(tutorial.lambda_handler(rest_event(body), LambdaContext()))
    assert listed["Items"] == [{"id": "f", "score": 1.25}]


def test_given_the_tutorials_direct_events_then_its_own_results_unchanged(
    tutorial: ModuleType,
) -> None:
    context = LambdaContext()
    for name in ("tutorial-create.json", "tutorial-read.json"):
        result = tutorial.lambda_handler(load_event(name), context)
        assert result["ResponseMetadata"]["HTTPStatusCode"] == 200
    read = tutorial.lambda_handler(load_event("tutorial-read.json"), context)
    assert read["Item"]["id"] == load_event("tutorial-read.json")["payload"]["Key"]["id"]
    assert tutorial.lambda_handler(load_event("tutorial-ping.json"), context) == "pong"
    with pytest.raises(ValueError, match="Unrecognized operation"):
        tutorial.lambda_handler({"operation": "nope"}, context)


@pytest.mark.parametrize("api", ["rest", "rest-base64", "http"])
def test_given_a_proxy_event_from_either_api_then_the_body_reaches_the_tutorials_code(
    tutorial: ModuleType, api: str
) -> None:
    def event(body: dict[str, Any]) -> dict[str, Any]:
        if api == "http":
            return http_event(body)
        return rest_event(body, base64_encoded=api == "rest-base64")

    context = LambdaContext()
    # Whole numbers only: the tutorial's code (like Lambda's own event parser) reads JSON
    # fractions as floats, which boto3 refuses.
    item = {"id": "n1", "name": "Bob", "age": 42}
    create = {"operation": "create", "tableName": "lambda-apigateway", "payload": {"Item": item}}
    assert (
        proxied(tutorial.lambda_handler(event(create), context))["ResponseMetadata"][
            "HTTPStatusCode"
        ]
        == 200
    )
    listed = proxied(
        tutorial.lambda_handler(
            event({"operation": "list", "tableName": "lambda-apigateway", "payload": {}}), context
        )
    )
    # DynamoDB's numbers (Decimal) come back as JSON numbers, as the non-proxy integration
    # gave them.
    assert listed["Items"] == [item]
    echo = {"operation": "echo", "payload": {"a": [1, "b"]}}
    assert proxied(tutorial.lambda_handler(event(echo), context)) == {"a": [1, "b"]}
