"""authorizer.py, the HTTP API's Lambda authorizer, against the session's moto server.

The key it reads is the REST API's usage-plan key that conftest.moto_stack creates beside the
deployed stack, so "one x-api-key header works on both APIs" is checked on the real key path
(GetApiKey with its value, over HTTP, through boto3). Calls to API Gateway are counted with
botocore's own event hooks on the client, not replaced.
"""

from __future__ import annotations

import copy
import importlib
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest

from runner.stack import PROJECT_ROOT
from tests.conftest import MOTO_API_KEY, MOTO_STAGE, load_event

AUTHORIZER_EVENT = load_event("httpapi-v2-authorizer-request.json")


def request_with(headers: dict[str, str] | None) -> dict[str, Any]:
    """The documented v2 authorizer payload carrying these headers (None: no headers at all)."""
    event: dict[str, Any] = copy.deepcopy(AUTHORIZER_EVENT)
    if headers is None:
        del event["headers"]
        event["identitySource"] = []
    else:
        event["headers"] = {"header1": "value1", **headers}
        event["identitySource"] = list(headers.values())
    return event


@pytest.fixture(scope="module")
def authorizer() -> Iterator[ModuleType]:
    sys.path.insert(0, str(PROJECT_ROOT))
    sys.modules.pop("authorizer", None)
    module = importlib.import_module("authorizer")
    yield module
    sys.modules.pop("authorizer", None)
    sys.path.remove(str(PROJECT_ROOT))


@pytest.fixture
def apigateway(moto_stack: dict[str, str]) -> Any:
    return boto3.client(
        "apigateway",
        endpoint_url=moto_stack["AWS_ENDPOINT_URL"],
        region_name=moto_stack["AWS_DEFAULT_REGION"],
        aws_access_key_id=moto_stack["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=moto_stack["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture
def rest_key_id(apigateway: Any) -> str:
    """The id of the REST API's usage-plan key in the shared moto deployment."""
    (key,) = apigateway.get_api_keys(nameQuery=f"memsweep-{MOTO_STAGE}-key")["items"]
    return str(key["id"])


def count_get_api_key(client: Any) -> list[str]:
    calls: list[str] = []
    client.meta.events.register(
        "before-send.api-gateway.GetApiKey", lambda request, **_: calls.append(request.url)
    )
    return calls


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_given_the_rest_api_key_when_lambda_runs_the_authorizer_then_allowed_else_denied(
    authorizer: ModuleType,
    moto_stack: dict[str, str],
    rest_key_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As Lambda would run it: configuration from the environment, client built on first use.
    for name, value in moto_stack.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("API_KEY_ID", rest_key_id)
    monkeypatch.setattr(authorizer, "_KEYS", None)

    allowed = authorizer.lambda_handler(request_with({"x-api-key": MOTO_API_KEY}), None)
    wrong = authorizer.lambda_handler(request_with({"x-api-key": MOTO_API_KEY + "x"}), None)

    assert allowed == {"isAuthorized": True}
    assert wrong == {"isAuthorized": False}


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"x-api-key": ""},
        {"x-api-key": "not-the-key"},
        {"x-api-key": MOTO_API_KEY[:-1]},
        {"x-api-key": MOTO_API_KEY + " "},
        {"authorization": MOTO_API_KEY},
        {"x-api-key-2": MOTO_API_KEY},
    ],
    ids=[
        "no-headers",
        "no-key",
        "empty",
        "other-key",
        "prefix",
        "trailing-space",
        "wrong-header",
        "similar-header",
    ],
)
def test_given_a_wrong_or_missing_key_then_denied(
    authorizer: ModuleType, apigateway: Any, rest_key_id: str, headers: dict[str, str] | None
) -> None:
    keys = authorizer.KeySource(rest_key_id, apigateway)
    assert authorizer.is_authorized(request_with(headers), keys) is False


def test_given_the_header_in_any_case_then_allowed(
    authorizer: ModuleType, apigateway: Any, rest_key_id: str
) -> None:
    keys = authorizer.KeySource(rest_key_id, apigateway)
    for name in ("x-api-key", "X-Api-Key", "X-API-KEY"):
        assert authorizer.is_authorized(request_with({name: MOTO_API_KEY}), keys) is True


def test_given_many_requests_then_the_key_is_read_once_per_ttl(
    authorizer: ModuleType, apigateway: Any, rest_key_id: str
) -> None:
    calls = count_get_api_key(apigateway)
    clock = Clock()
    keys = authorizer.KeySource(rest_key_id, apigateway, ttl_s=300, clock=clock)

    for headers in ({"x-api-key": MOTO_API_KEY}, {"x-api-key": "wrong"}) * 5:
        authorizer.is_authorized(request_with(headers), keys)
    assert len(calls) == 1
    assert calls[0].endswith(f"/apikeys/{rest_key_id}?includeValue=true")

    clock.now += 299
    assert authorizer.is_authorized(request_with({"x-api-key": MOTO_API_KEY}), keys)
    assert len(calls) == 1

    clock.now += 1
    assert authorizer.is_authorized(request_with({"x-api-key": MOTO_API_KEY}), keys)
    assert len(calls) == 2


def test_given_a_request_without_the_header_then_no_aws_call_at_all(
    authorizer: ModuleType, apigateway: Any, rest_key_id: str
) -> None:
    calls = count_get_api_key(apigateway)
    keys = authorizer.KeySource(rest_key_id, apigateway)
    assert authorizer.is_authorized(request_with({}), keys) is False
    assert calls == []


def test_given_the_key_is_disabled_then_denied_once_the_cached_value_expires(
    authorizer: ModuleType, apigateway: Any
) -> None:
    # A key of its own: the shared deployment's key stays enabled for the other tests.
    key = apigateway.create_api_key(name="authorizer-test-disabled", enabled=True)
    clock = Clock()
    keys = authorizer.KeySource(key["id"], apigateway, ttl_s=300, clock=clock)
    request = request_with({"x-api-key": key["value"]})
    assert authorizer.is_authorized(request, keys) is True

    apigateway.update_api_key(
        apiKey=key["id"], patchOperations=[{"op": "replace", "path": "/enabled", "value": "false"}]
    )
    assert authorizer.is_authorized(request, keys) is True  # still within the cache period
    clock.now += 300
    assert authorizer.is_authorized(request, keys) is False


def test_given_the_key_cannot_be_read_then_the_error_is_raised_not_allowed(
    authorizer: ModuleType, apigateway: Any
) -> None:
    keys = authorizer.KeySource("no-such-key-id", apigateway)
    with pytest.raises(apigateway.exceptions.NotFoundException):
        authorizer.is_authorized(request_with({"x-api-key": MOTO_API_KEY}), keys)
