"""The HTTP API's Lambda REQUEST authorizer: it accepts the REST API's usage-plan key.

HTTP APIs have no API keys or usage plans. So that one `x-api-key` header works on both APIs,
this authorizer compares the header with the value of the REST API's key (`API_KEY_ID`), read
with apigateway:GET on that key alone (serverless.yml gives this function its own role) and
kept in memory for KEY_TTL_S, so a warm sandbox makes no AWS call per authorization. API
Gateway also caches each answer per header value (serverless.yml: resultTtlInSeconds), so
this function runs about once per key per cache period, not once per request.

Simple responses (`{"isAuthorized": bool}`, payload format 2.0). A request without the header
never reaches this function: API Gateway answers 401 itself (the header is the identity
source). A wrong key gets 403. A key disabled in API Gateway stops working here within
KEY_TTL_S plus the authorizer cache's TTL. Any error reading the key is raised, so API
Gateway answers 500 and nothing is let through.

Like the REST API's key, this is metering, not authentication: README.md, "The HTTP API".
"""

from __future__ import annotations

import hmac
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import boto3

HEADER = "x-api-key"
# How long a sandbox trusts the key value (and its `enabled` flag) it read.
KEY_TTL_S = 300.0


class KeySource:
    """The REST API key's value, read from API Gateway at most once per `ttl_s`."""

    def __init__(
        self,
        key_id: str,
        client: Any,
        *,
        ttl_s: float = KEY_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.key_id = key_id
        self._client = client
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._value: str | None = None
        self._read_at: float | None = None

    def value(self) -> str | None:
        """The key's value, or None while the key is disabled."""
        with self._lock:
            now = self._clock()
            if self._read_at is None or now - self._read_at >= self._ttl_s:
                key = self._client.get_api_key(apiKey=self.key_id, includeValue=True)
                self._value = str(key["value"]) if key.get("enabled", True) else None
                self._read_at = now
            return self._value


def is_authorized(event: Mapping[str, Any], keys: KeySource) -> bool:
    """Whether the request's x-api-key header is the REST API's (enabled) key."""
    headers = event.get("headers")
    supplied = None
    if isinstance(headers, Mapping):
        # Payload 2.0 lower-cases header names; look case-insensitively all the same.
        for name, value in headers.items():
            if isinstance(name, str) and name.lower() == HEADER:
                supplied = value
                break
    if not isinstance(supplied, str) or not supplied:
        return False
    expected = keys.value()
    if expected is None:
        return False
    return hmac.compare_digest(supplied.encode(), expected.encode())


_KEYS: KeySource | None = None


def _keys() -> KeySource:
    global _KEYS
    if _KEYS is None:
        # boto3 honours AWS_ENDPOINT_URL by itself (tests point it at moto server).
        _KEYS = KeySource(os.environ["API_KEY_ID"], boto3.client("apigateway"))
    return _KEYS


def lambda_handler(event: Mapping[str, Any], context: Any) -> dict[str, bool]:
    """API Gateway HTTP API REQUEST authorizer, simple response format."""
    return {"isAuthorized": is_authorized(event, _keys())}
