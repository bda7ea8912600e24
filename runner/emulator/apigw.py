"""API Gateway (REST API) in front of the local Lambda pool.

What a client sees is what API Gateway does: unknown resource or method → 403 "Missing
Authentication Token"; `private: true` without the right `x-api-key` → 403 "Forbidden";
usage-plan throttling → 429; body over 10 MB → 413; integration over 29 s → 504; a
function error, crashed sandbox, malformed proxy response or throttled Lambda → 502/500
"Internal server error". Proxy integration builds the v1 event; `lambda` (non-proxy)
integration passes the JSON body as the event and returns the function's result, as the
AWS tutorial's original API did.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from runner.emulator.http import Connection, Request
from runner.emulator.lambda_pool import InvokeResult, LambdaPool, Outcome, new_request_id

# API Gateway quotas (AWS docs, "Amazon API Gateway quotas"): 10 MB payload, 29 s
# integration timeout (the default; raising it needs a quota increase).
MAX_REQUEST_BYTES = 10 * 1024 * 1024
INTEGRATION_TIMEOUT_S = 29.0
API_ID = "local00001"
ACCOUNT_ID = "000000000000"

_MISSING_TOKEN = b'{"message":"Missing Authentication Token"}'
_FORBIDDEN = b'{"message":"Forbidden"}'
_TOO_LARGE = b'{"message":"Request Too Long"}'
_TOO_MANY = b'{"message":"Too Many Requests"}'
_TIMED_OUT = b'{"message": "Endpoint request timed out"}'
_INTERNAL = b'{"message": "Internal server error"}'


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # e.g. "/DynamoDBManager"
    api_key_required: bool
    integration: str = "lambda-proxy"  # or "lambda" (non-proxy)


@dataclass
class Throttle:
    """The usage plan's token bucket (rateLimit tokens/s, burstLimit capacity)."""

    rate: float
    burst: float

    def __post_init__(self) -> None:
        self._tokens = self.burst
        self._at = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class ApiGatewayFront:
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
        self.pool = pool
        self.route = route
        self.stage = stage
        self.api_key = api_key.encode()
        self.throttle = throttle
        self.integration_timeout_s = integration_timeout_s
        self.added_latency_s = added_latency_ms / 1000
        # Clients may call with or without the stage in the path, as with a custom domain.
        self._paths = {route.path.encode(), f"/{stage}{route.path}".encode()}
        self._method = route.method.upper().encode()

    def handle(self, request: Request, connection: Connection) -> None:
        path, _, query = request.path.partition(b"?")
        if path not in self._paths or request.method != self._method:
            self._reply(
                connection,
                request,
                403,
                _MISSING_TOKEN,
                error_type=b"MissingAuthenticationTokenException",
            )
            return
        if self.route.api_key_required and request.headers.get(b"x-api-key") != self.api_key:
            self._reply(connection, request, 403, _FORBIDDEN, error_type=b"ForbiddenException")
            return
        if request.too_large:
            self._reply(connection, request, 413, _TOO_LARGE, error_type=b"RequestTooLarge")
            return
        if self.throttle is not None and not self.throttle.allow():
            self._reply(connection, request, 429, _TOO_MANY, error_type=b"TooManyRequestsException")
            return
        request_id = new_request_id()
        if self.route.integration == "lambda":
            event = self._non_proxy_event(request)
            if event is None:
                body = b'{"message": "Could not parse request body into json"}'
                self._reply(connection, request, 400, body, request_id=request_id)
                return
        else:
            event = self._proxy_event(request, path.decode(), query.decode(), request_id)
        future = self.pool.invoke(event)
        loop = asyncio.get_running_loop()
        timeout = loop.call_later(
            self.integration_timeout_s, self._timed_out, future, connection, request, request_id
        )
        future.add_done_callback(
            lambda done: self._answer(done, connection, request, request_id, timeout)
        )

    # -- events ------------------------------------------------------------------------------

    def _proxy_event(self, request: Request, path: str, query: str, request_id: str) -> bytes:
        headers: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for raw_name, raw_value in request.raw_headers:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            headers[name] = value
            multi.setdefault(name, []).append(value)
        pairs = parse_qsl(query, keep_blank_values=True)
        query_multi: dict[str, list[str]] = {}
        for key, text in pairs:
            query_multi.setdefault(key, []).append(text)
        body: str | None
        try:
            body = request.body.decode() if request.body else None
            encoded = False
        except UnicodeDecodeError:
            body = base64.b64encode(request.body).decode("ascii")
            encoded = True
        now = time.time()
        resource_path = self.route.path
        source_ip = (request.peer or ("127.0.0.1", 0))[0]
        event: dict[str, Any] = {
            "resource": resource_path,
            "path": resource_path,
            "httpMethod": self.route.method.upper(),
            "headers": headers or None,
            "multiValueHeaders": multi or None,
            "queryStringParameters": {k: v[-1] for k, v in query_multi.items()} or None,
            "multiValueQueryStringParameters": query_multi or None,
            "pathParameters": None,
            "stageVariables": None,
            "requestContext": {
                "resourceId": "local",
                "resourcePath": resource_path,
                "httpMethod": self.route.method.upper(),
                "extendedRequestId": request_id,
                "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "path": f"/{self.stage}{resource_path}",
                "accountId": ACCOUNT_ID,
                "protocol": "HTTP/1.1",
                "stage": self.stage,
                "domainPrefix": "localhost",
                "requestTimeEpoch": int(now * 1000),
                "requestId": request_id,
                "identity": {
                    "apiKey": headers.get("x-api-key") if self.route.api_key_required else None,
                    "sourceIp": source_ip,
                    "userAgent": request.headers.get(b"user-agent", b"").decode("latin-1"),
                },
                "domainName": "localhost",
                "apiId": API_ID,
            },
            "body": body,
            "isBase64Encoded": encoded,
        }
        return json.dumps(event).encode()

    @staticmethod
    def _non_proxy_event(request: Request) -> bytes | None:
        body = request.body or b"{}"
        try:
            json.loads(body)
        except ValueError:
            return None
        return body

    # -- answers -----------------------------------------------------------------------------

    def _answer(
        self,
        done: asyncio.Future[InvokeResult],
        connection: Connection,
        request: Request,
        request_id: str,
        timeout: asyncio.TimerHandle,
    ) -> None:
        timeout.cancel()
        if connection.closed or request.answered:
            return
        result = done.result()
        if self.route.integration == "lambda":
            status, body, headers, content_type = self._non_proxy_response(result)
        else:
            status, body, headers, content_type = self._proxy_response(result)
        self._reply(
            connection,
            request,
            status,
            body,
            request_id=request_id,
            headers=headers,
            content_type=content_type,
        )

    @staticmethod
    def _proxy_response(
        result: InvokeResult,
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes]:
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
            document = json.loads(result.payload)
            status = document["statusCode"]
            if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
                raise ValueError("statusCode")
            body = document.get("body")
            if body is not None and not isinstance(body, str):
                raise ValueError("body")
            raw = body.encode() if body is not None else b""
            if document.get("isBase64Encoded"):
                raw = base64.b64decode(raw, validate=True)
            headers = [
                (str(name).encode("latin-1"), str(value).encode("latin-1"))
                for name, value in (document.get("headers") or {}).items()
            ]
            for name, values in (document.get("multiValueHeaders") or {}).items():
                headers += [(str(name).encode("latin-1"), str(v).encode("latin-1")) for v in values]
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            # Malformed Lambda proxy response.
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
            elif name.lower() not in (b"content-length", b"connection", b"transfer-encoding"):
                kept.append((name, value))
        return status, raw, kept, content_type

    @staticmethod
    def _non_proxy_response(
        result: InvokeResult,
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes]:
        if result.outcome is Outcome.THROTTLED:
            return 500, _INTERNAL, [], b"application/json"
        if result.outcome in (Outcome.CRASH, Outcome.TIMEOUT):
            return 502, _INTERNAL, [], b"application/json"
        # Without integration responses, a function error is passed through with 200.
        return 200, result.payload, [], b"application/json"

    def _timed_out(
        self,
        future: asyncio.Future[InvokeResult],
        connection: Connection,
        request: Request,
        request_id: str,
    ) -> None:
        if future.done() or connection.closed:
            return
        self._reply(
            connection,
            request,
            504,
            _TIMED_OUT,
            request_id=request_id,
            error_type=b"IntegrationTimeout",
        )

    def _reply(
        self,
        connection: Connection,
        request: Request,
        status: int,
        body: bytes,
        *,
        request_id: str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
        content_type: bytes = b"application/json",
        error_type: bytes | None = None,
    ) -> None:
        if request.answered:
            return
        request.answered = True
        extra = list(headers or [])
        extra.append((b"x-amzn-RequestId", (request_id or new_request_id()).encode()))
        if error_type is not None:
            extra.append((b"x-amzn-ErrorType", error_type))
        keep_alive = request.keep_alive
        if self.added_latency_s > 0:
            asyncio.get_running_loop().call_later(
                self.added_latency_s,
                lambda: connection.respond(
                    status, body, headers=extra, content_type=content_type, keep_alive=keep_alive
                ),
            )
        else:
            connection.respond(
                status, body, headers=extra, content_type=content_type, keep_alive=keep_alive
            )
