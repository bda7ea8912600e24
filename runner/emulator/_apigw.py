"""API Gateway (REST API) in front of the local Lambda pool.

What a client sees is what API Gateway does: unknown resource or method → 403 "Missing
Authentication Token"; `private: true` without the right `x-api-key` → 403 "Forbidden";
usage-plan throttling → 429; body over 10 MB → 413; URL over 10240 bytes → 414; header
values over 10240 bytes → 431; integration over 29 s → 504; a function error, crashed
sandbox, malformed proxy response or throttled Lambda → 502/500 "Internal server error".
Proxy integration builds the v1 event; `lambda` (non-proxy) integration passes the JSON body
as the event and returns the function's result, as the AWS tutorial's original API did.
The steps every request takes are _front.py's; this module supplies the REST API's event,
response mapping and refusals.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from json.encoder import encode_basestring_ascii
from typing import Any
from urllib.parse import parse_qsl

from runner.emulator._front import (
    ACCOUNT_ID,
    OWN_HEADERS,
    Answer,
    Front,
    Refusal,
    Refused,
    Route,
    Throttle,
    header_name,
    header_value,
)
from runner.emulator._http import Request
from runner.emulator._lambda_pool import InvokeResult, LambdaPool, Outcome

# API Gateway quotas (AWS docs, "Amazon API Gateway quotas", REST API table): 10 MB payload,
# 29 s integration timeout (the default; raising it needs a quota increase).
MAX_REQUEST_BYTES = 10 * 1024 * 1024
INTEGRATION_TIMEOUT_S = 29.0
# Same table: "Length, in characters, of the URL for a regional API: 10240" and "Total combined
# size of all header values: 10240 Bytes", neither adjustable. AWS documents the limits, not
# the status: a URL over it gets 414, as the same page says of an over-long method ARN, and
# header values over it get 431 Request Header Fields Too Large (RFC 6585), refused as soon
# as the header that passes the limit is read (http.py bounds the bytes read before that).
MAX_URL_BYTES = 10240
MAX_HEADER_VALUES_BYTES = 10240
# How long a client may take to send one request, first byte to last, before a 408 and a
# close; and how long a keep-alive connection may sit idle before it is closed. AWS documents
# neither for REST APIs (its one documented idle timeout, for WebSocket APIs, is 10 minutes):
# these only need to be longer than any real client takes. A 10 MB body takes under 10 s even
# at 10 Mbit/s; Locust users hold their connection across think times of seconds.
REQUEST_TIMEOUT_S = 60.0
IDLE_TIMEOUT_S = 600.0
API_ID = "local00001"

_INTERNAL = b'{"message": "Internal server error"}'
_FORBIDDEN = Refusal(403, b'{"message":"Forbidden"}', b"ForbiddenException")
_UNPARSEABLE = Refusal(400, b'{"message": "Could not parse request body into json"}')


class ApiGatewayFront(Front):
    REQUEST_ID_HEADER = b"x-amzn-RequestId"
    NO_ROUTE = Refusal(
        403, b'{"message":"Missing Authentication Token"}', b"MissingAuthenticationTokenException"
    )
    NO_KEY = _FORBIDDEN  # a usage plan's key check says no more than "Forbidden"
    WRONG_KEY = _FORBIDDEN
    TOO_LARGE = Refusal(413, b'{"message":"Request Too Long"}', b"RequestTooLarge")
    TOO_MANY = Refusal(429, b'{"message":"Too Many Requests"}', b"TooManyRequestsException")
    TIMED_OUT = Refusal(504, b'{"message": "Endpoint request timed out"}', b"IntegrationTimeout")

    def __init__(
        self,
        pool: LambdaPool,
        *,
        route: Route,
        stage: str,
        api_key: str,
        throttle: Throttle | None,
        integration_timeout_s: float = INTEGRATION_TIMEOUT_S,
        added_latency_ms: float = 0.0,
    ) -> None:
        super().__init__(
            pool,
            route=route,
            # Clients may call with or without the stage in the path, as with a custom domain.
            paths=(route.path, f"/{stage}{route.path}"),
            api_key=api_key,
            throttle=throttle,
            integration_timeout_s=integration_timeout_s,
            added_latency_ms=added_latency_ms,
        )
        self.stage = stage
        self._event_template = _proxy_event_template(route, stage)
        self._request_time = (0, "")  # (epoch second, its requestTime text)

    # -- events ------------------------------------------------------------------------------

    def event(self, request: Request, *, path: bytes, query: bytes, request_id: str) -> bytes:
        """The REST API v1 proxy event, filled into a pre-serialised template (with the
        non-proxy integration, the request's JSON body).

        Building a dict and `json.dumps`-ing it all was the emulator's largest piece of
        Python per request (~30 us of ~350 us CPU; ~11 us this way, bench/PROFILE.md).
        """
        if self.route.integration == "lambda":
            return self._non_proxy_event(request)
        # JSON-quoted name -> JSON-quoted value(s): json's dict encoder costs several us a call.
        headers: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for raw_name, raw_value in request.raw_headers:
            name, value = _quote(raw_name.decode("latin-1")), _quote(raw_value.decode("latin-1"))
            headers[name] = value
            if name in multi:
                multi[name].append(value)
            else:
                multi[name] = [value]
        query_multi: dict[str, list[str]] = {}
        if query:
            for key, text in parse_qsl(query.decode(), keep_blank_values=True):
                query_multi.setdefault(key, []).append(text)
        try:
            body = _quote(request.body.decode()) if request.body else "null"
            encoded = "false"
        except UnicodeDecodeError:
            body = _quote(base64.b64encode(request.body).decode("ascii"))
            encoded = "true"
        now = time.time()
        second = int(now)
        if self._request_time[0] != second:
            text = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(second))
            self._request_time = (second, _quote(text))
        api_key = headers.get('"x-api-key"', "null") if self.route.api_key_required else "null"
        user_agent = request.headers.get(b"user-agent", b"").decode("latin-1")
        event = self._event_template % {
            "headers": _object([f"{k}: {v}" for k, v in headers.items()]),
            "multiValueHeaders": _object([f"{k}: [{', '.join(v)}]" for k, v in multi.items()]),
            "queryStringParameters": _dumps({k: v[-1] for k, v in query_multi.items()})
            if query_multi
            else "null",
            "multiValueQueryStringParameters": _dumps(query_multi) if query_multi else "null",
            "requestId": _quote(request_id),
            "requestTime": self._request_time[1],
            "requestTimeEpoch": int(now * 1000),
            "apiKey": api_key,
            "sourceIp": _quote((request.peer or ("127.0.0.1", 0))[0]),
            "userAgent": _quote(user_agent),
            "body": body,
            "isBase64Encoded": encoded,
        }
        return event.encode()

    @staticmethod
    def _non_proxy_event(request: Request) -> bytes:
        body = request.body or b"{}"
        try:
            json.loads(body)
        except ValueError:
            raise Refused(_UNPARSEABLE) from None
        return body

    # -- answers -----------------------------------------------------------------------------

    def response(self, result: InvokeResult) -> Answer:
        """The proxy response the function returned (non-proxy: its result as it is)."""
        if self.route.integration == "lambda":
            return self._non_proxy_response(result)
        if result.outcome is Outcome.THROTTLED:
            # Lambda's 429 reaches a REST API client as a 500 (INTEGRATION_FAILURE).
            return (
                500,
                _INTERNAL,
                [(b"x-amzn-ErrorType", b"InternalServerErrorException")],
                b"application/json",
            )
        if result.outcome is not Outcome.OK:
            return (
                502,
                _INTERNAL,
                [(b"x-amzn-ErrorType", b"InternalServerErrorException")],
                b"application/json",
            )
        try:
            status, raw, headers = _proxy_document(json.loads(result.payload))
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError, binascii.Error):
            # "Malformed Lambda proxy response": API Gateway answers 502 whenever the function's
            # output is not the documented shape (statusCode, headers, multiValueHeaders, body,
            # isBase64Encoded). A header that would break the response's framing (CR, LF or any
            # other control character) counts as malformed too: it is never written.
            return (
                502,
                _INTERNAL,
                [(b"x-amzn-ErrorType", b"InternalServerErrorException")],
                b"application/json",
            )
        content_type = b"application/json"
        kept = []
        for name, value in headers:
            if name.lower() == b"content-type":
                content_type = value
            elif name.lower() not in OWN_HEADERS:
                kept.append((name, value))
        return status, raw, kept, content_type

    @staticmethod
    def _non_proxy_response(result: InvokeResult) -> Answer:
        if result.outcome is Outcome.THROTTLED:
            return 500, _INTERNAL, [], b"application/json"
        if result.outcome in (Outcome.CRASH, Outcome.TIMEOUT):
            return 502, _INTERNAL, [], b"application/json"
        # Without integration responses, a function error is passed through with 200.
        return 200, result.payload, [], b"application/json"


def _proxy_document(document: Any) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """(status, body, headers) of a Lambda proxy response; ValueError or TypeError if malformed."""
    if not isinstance(document, dict):
        raise TypeError("not a JSON object")
    status = document["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError("statusCode")
    body = document.get("body")
    if body is not None and not isinstance(body, str):
        raise ValueError("body")
    raw = body.encode() if body is not None else b""
    if document.get("isBase64Encoded"):
        raw = base64.b64decode(raw, validate=True)
    single = document.get("headers")
    multi = document.get("multiValueHeaders")
    if not isinstance(single, (dict, type(None))) or not isinstance(multi, (dict, type(None))):
        raise TypeError("headers")
    headers = [(header_name(name), header_value(value)) for name, value in (single or {}).items()]
    for name, values in (multi or {}).items():
        if not isinstance(values, list):
            raise TypeError(f"multiValueHeaders.{name}")  # a string would be one per character
        headers += [(header_name(name), header_value(value)) for value in values]
    return status, raw, headers


_dumps = json.JSONEncoder().encode  # json.dumps' own encoder, without its argument checks
_quote = encode_basestring_ascii  # one JSON string literal, as json.dumps writes it


def _object(members: list[str]) -> str:
    """A JSON object from its `"key": value` texts; null when empty, as API Gateway sends."""
    return "{" + ", ".join(members) + "}" if members else "null"


def _proxy_event_template(route: Route, stage: str) -> str:
    """The v1 proxy event as JSON text with a `%(name)s` slot for each per-request value."""
    method = route.method.upper()

    def slot(name: str) -> str:
        return f"@@{name}@@"

    shape: dict[str, Any] = {
        "resource": route.path,
        "path": route.path,
        "httpMethod": method,
        "headers": slot("headers"),
        "multiValueHeaders": slot("multiValueHeaders"),
        "queryStringParameters": slot("queryStringParameters"),
        "multiValueQueryStringParameters": slot("multiValueQueryStringParameters"),
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": route.path,
            "httpMethod": method,
            "extendedRequestId": slot("requestId"),
            "requestTime": slot("requestTime"),
            "path": f"/{stage}{route.path}",
            "accountId": ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": "localhost",
            "requestTimeEpoch": slot("requestTimeEpoch"),
            "requestId": slot("requestId"),
            "identity": {
                "apiKey": slot("apiKey"),
                "sourceIp": slot("sourceIp"),
                "userAgent": slot("userAgent"),
            },
            "domainName": "localhost",
            "apiId": API_ID,
        },
        "body": slot("body"),
        "isBase64Encoded": slot("isBase64Encoded"),
    }
    text = json.dumps(shape).replace("%", "%%")
    return re.sub(r'"@@(\w+)@@"', r"%(\1)s", text)
