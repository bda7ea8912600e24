"""API Gateway's HTTP API (Lambda proxy, payload format 2.0) in front of the local Lambda pool.

The REST front (_apigw.py) plays the tutorial's REST API; this one plays the HTTP API the
stack deploys beside it, on its own listener (on AWS the two are different hosts). What a
client sees is what an HTTP API does (AWS API Gateway Developer Guide, "Create AWS Lambda
proxy integrations for HTTP APIs" and "Working with AWS Lambda authorizers for HTTP APIs";
tests/events/httpapi-v2-*.json hold its documented examples):

- no route for the method and path → 404 {"message":"Not Found"};
- the key: the deployed HTTP API has no API keys, so a Lambda request authorizer checks the
  same x-api-key header the REST API's usage plan does. Its identity source is that header:
  missing → 401 {"message":"Unauthorized"} without calling the authorizer; wrong → the
  authorizer says no → 403 {"message":"Forbidden"}. The authorizer is not run as a function
  here (its invocations would mix with the function's REPORT lines); with caching on, as
  deployed, it adds nothing to most requests;
- body over 10 MB → 413; throttled → 429; integration over 30 s → 503
  {"message":"Service Unavailable"} (what HTTP APIs answer on a timeout, where REST APIs
  answer 504); function error, crash, Lambda timeout or throttle → 500
  {"message":"Internal Server Error"};
- the 2.0 response rules: a JSON object with statusCode is the response (headers, cookies →
  one Set-Cookie each, body, isBase64Encoded); any other valid JSON (an object without
  statusCode, a string, a number, a list) → 200, content-type application/json, the
  function's JSON as the body.

The steps every request takes are _front.py's; this module supplies the HTTP API's event,
response mapping and refusals.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any
from urllib.parse import parse_qsl

from runner.emulator._front import (
    ACCOUNT_ID,
    OWN_HEADERS,
    Answer,
    Front,
    Refusal,
    Route,
    Throttle,
    header_name,
    header_value,
)
from runner.emulator._http import Request
from runner.emulator._lambda_pool import InvokeResult, LambdaPool, Outcome

# "Integration timeout: 30 seconds" (Amazon API Gateway quotas, HTTP API table; not
# adjustable), against 29 s for REST APIs. Payload size: 10 MB, as for REST APIs.
INTEGRATION_TIMEOUT_S = 30.0
# An HTTP API's default stage: its URL carries no stage name.
STAGE = "$default"
API_ID = "local00002"

_INTERNAL = b'{"message":"Internal Server Error"}'


class HttpApiFront(Front):
    REQUEST_ID_HEADER = b"apigw-requestid"
    NO_ROUTE = Refusal(404, b'{"message":"Not Found"}')
    NO_KEY = Refusal(401, b'{"message":"Unauthorized"}')
    WRONG_KEY = Refusal(403, b'{"message":"Forbidden"}')
    # AWS documents the 10 MB quota, not this body: HTTP APIs' other errors are the status's
    # reason phrase as {"message": …}, so this one is too.
    TOO_LARGE = Refusal(413, b'{"message":"Request Entity Too Large"}')
    TOO_MANY = Refusal(429, b'{"message":"Too Many Requests"}')
    TIMED_OUT = Refusal(503, b'{"message":"Service Unavailable"}')

    def __init__(
        self,
        pool: LambdaPool,
        *,
        route: Route,
        api_key: str,
        throttle: Throttle | None,
        integration_timeout_s: float = INTEGRATION_TIMEOUT_S,
        added_latency_ms: float = 0.0,
    ) -> None:
        super().__init__(
            pool,
            route=route,
            paths=(route.path,),
            api_key=api_key,
            throttle=throttle,
            integration_timeout_s=integration_timeout_s,
            added_latency_ms=added_latency_ms,
        )
        self.route_key = f"{route.method.upper()} {route.path}"
        self._time = (0, "")  # (epoch second, its requestContext.time text)

    # -- the event ---------------------------------------------------------------------------

    def event(self, request: Request, *, path: bytes, query: bytes, request_id: str) -> bytes:
        """The payload format 2.0 event for this request, as JSON."""
        headers: dict[str, str] = {}
        cookies: list[str] = []
        for raw_name, raw_value in request.raw_headers:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            if name == "cookie":
                # "All cookie headers in the request are combined with commas and added to the
                # cookies field": one entry per cookie, and no cookie header left in headers.
                cookies += [c.strip() for c in value.split(";") if c.strip()]
            elif name in headers:
                headers[name] += "," + value  # duplicates combined with commas
            else:
                headers[name] = value
        now = time.time()
        second = int(now)
        if self._time[0] != second:
            self._time = (second, time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(second)))
        host = headers.get("host", "localhost").partition(":")[0]
        raw_path = path.decode("latin-1")
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": self.route_key,
            "rawPath": raw_path,
            "rawQueryString": query.decode("latin-1"),
        }
        if cookies:
            event["cookies"] = cookies
        event["headers"] = headers
        if query:
            parameters: dict[str, str] = {}
            for key, text in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                parameters[key] = f"{parameters[key]},{text}" if key in parameters else text
            event["queryStringParameters"] = parameters
        event["requestContext"] = {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": host,
            "domainPrefix": host.partition(".")[0],
            "http": {
                "method": self.route.method.upper(),
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": (request.peer or ("127.0.0.1", 0))[0],
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": self.route_key,
            "stage": STAGE,
            "time": self._time[1],
            "timeEpoch": int(now * 1000),
        }
        encoded = False
        if request.body:
            try:
                event["body"] = request.body.decode()
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(request.body).decode("ascii")
                encoded = True
        event["isBase64Encoded"] = encoded
        return json.dumps(event, separators=(",", ":")).encode()

    # -- the response ------------------------------------------------------------------------

    @staticmethod
    def response(result: InvokeResult) -> Answer:
        """What the client gets for a function's result under the 2.0 response rules."""
        if result.outcome is not Outcome.OK:
            return 500, _INTERNAL, [], b"application/json"
        try:
            document = json.loads(result.payload)
        except (ValueError, RecursionError):
            return 500, _INTERNAL, [], b"application/json"
        if not isinstance(document, dict) or "statusCode" not in document:
            # "API Gateway can infer the response format": 200, application/json, the output as
            # the body (a string arrives JSON-quoted, as the function returned it).
            return 200, result.payload, [], b"application/json"
        try:
            return _formatted(document)
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            return 500, _INTERNAL, [], b"application/json"


def _formatted(document: dict[str, Any]) -> Answer:
    """A response the function formatted itself; ValueError or TypeError if malformed."""
    status = document["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError("statusCode")
    body = document.get("body")
    if body is not None and not isinstance(body, str):
        raise TypeError("body")
    raw = body.encode() if body is not None else b""
    if document.get("isBase64Encoded"):
        raw = base64.b64decode(raw, validate=True)
    headers = document.get("headers") or {}
    cookies = document.get("cookies") or []
    if not isinstance(headers, dict) or not isinstance(cookies, list):
        raise TypeError("headers or cookies")
    content_type = b"application/json"
    kept: list[tuple[bytes, bytes]] = []
    for name, value in headers.items():
        pair = (header_name(name), header_value(value))
        if pair[0].lower() == b"content-type":
            content_type = pair[1]
        elif pair[0].lower() not in OWN_HEADERS:
            kept.append(pair)
    for cookie in cookies:
        if not isinstance(cookie, str):
            raise TypeError("cookie")
        kept.append((b"Set-Cookie", header_value(cookie)))
    return status, raw, kept, content_type


__all__ = ["INTEGRATION_TIMEOUT_S", "STAGE", "HttpApiFront"]
