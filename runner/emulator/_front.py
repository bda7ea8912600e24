"""What both API Gateway fronts share: the gates, the invocation, its deadline and the reply.

The REST API (_apigw.py) and the HTTP API (_httpapi.py) take every request through the same
steps: match the route, check the key, refuse a body over the payload quota, take a token
from the throttle, invoke the function, and answer with its result or, past the integration
timeout, without it. `Front.handle` runs those steps; a subclass supplies what differs
between the API types, the way botocore's protocol parsers subclass one `ResponseParser`:

- `event`: the event the function gets for a request (it may raise `Refused`);
- `response`: what the client gets for the function's result;
- its refusals, as `Refusal` class attributes (`NO_ROUTE`, `NO_KEY`, `WRONG_KEY`,
  `TOO_LARGE`, `TOO_MANY`, `TIMED_OUT`), and the header that carries the request id.

This is the per-request path, the local stack's throughput limit (docs/ARCHITECTURE.md,
section 4.3): no await in it, and no object made per request that the answer does not need.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from runner.emulator._deadlines import Deadlines
from runner.emulator._http import Connection, Request
from runner.emulator._lambda_pool import InvokeResult, LambdaPool, new_request_id

ACCOUNT_ID = "000000000000"
# Response headers the front writes itself (http.py), never copied from the function's.
OWN_HEADERS = (b"content-length", b"connection", b"transfer-encoding")

# What the client gets for a function's result: status, body, headers, content type.
Answer = tuple[int, bytes, list[tuple[bytes, bytes]], bytes]


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


@dataclass(frozen=True)
class Refusal:
    """An answer the front gives in place of the function's: status, body, error type."""

    status: int
    body: bytes
    error_type: bytes | None = None  # sent as x-amzn-ErrorType (REST APIs name their errors)


class Refused(Exception):
    """Raised by an `event` hook: the request can't be made into an event; answer this."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.status)
        self.refusal = refusal


class _Call:
    """One request waiting for its integration."""

    __slots__ = ("connection", "request", "request_id")

    def __init__(self, connection: Connection, request: Request, request_id: str) -> None:
        self.connection = connection
        self.request = request
        self.request_id = request_id

    @property
    def finished(self) -> bool:
        return self.request.answered or self.connection.closed


class Front(ABC):
    """One API's front door: `handle` runs the steps, a subclass supplies the hooks."""

    REQUEST_ID_HEADER: ClassVar[bytes]
    NO_ROUTE: ClassVar[Refusal]  # no route for the method and path
    NO_KEY: ClassVar[Refusal]  # the route wants a key and none was sent
    WRONG_KEY: ClassVar[Refusal]  # not the API's key, or more than one x-api-key header
    TOO_LARGE: ClassVar[Refusal]  # a body over the payload quota
    TOO_MANY: ClassVar[Refusal]  # the throttle's bucket is empty
    TIMED_OUT: ClassVar[Refusal]  # the integration ran past its timeout

    def __init__(
        self,
        pool: LambdaPool,
        *,
        route: Route,
        paths: Iterable[str],
        api_key: str,
        throttle: Throttle | None,
        integration_timeout_s: float,
        added_latency_ms: float,
    ) -> None:
        self.pool = pool
        self.route = route
        self.api_key = api_key.encode()
        self.throttle = throttle
        self.integration_timeout_s = integration_timeout_s
        self.added_latency_s = added_latency_ms / 1000
        self._paths = {path.encode() for path in paths}
        self._method = route.method.upper().encode()
        self._timeouts: Deadlines[_Call] = Deadlines(integration_timeout_s, self._timed_out)

    def handle(self, request: Request, connection: Connection) -> None:
        path, _, query = request.path.partition(b"?")
        if path not in self._paths or request.method != self._method:
            self._refuse(connection, request, self.NO_ROUTE)
            return
        if self.route.api_key_required:
            key = request.headers.get(b"x-api-key")
            if key is None:
                self._refuse(connection, request, self.NO_KEY)
                return
            if key != self.api_key or (request.repeated and b"x-api-key" in request.repeated):
                # Two x-api-key headers: AWS documents only that "duplicated headers are not
                # supported" (API Gateway important notes). Refused: the values may differ, and
                # the function must not be called on a key that was not the one checked.
                self._refuse(connection, request, self.WRONG_KEY)
                return
        if request.too_large:
            self._refuse(connection, request, self.TOO_LARGE)
            return
        if self.throttle is not None and not self.throttle.allow():
            self._refuse(connection, request, self.TOO_MANY)
            return
        request_id = new_request_id()
        try:
            event = self.event(request, path=path, query=query, request_id=request_id)
        except Refused as refused:
            self._refuse(connection, request, refused.refusal, request_id=request_id)
            return
        call = _Call(connection, request, request_id)
        self.pool.invoke(event, lambda result: self._answer(result, call))
        if not call.finished:
            self._timeouts.add(call)

    # -- the hooks ---------------------------------------------------------------------------

    @abstractmethod
    def event(self, request: Request, *, path: bytes, query: bytes, request_id: str) -> bytes:
        """The function's event for this request, as JSON; `Refused` if there can be none."""

    @abstractmethod
    def response(self, result: InvokeResult) -> Answer:
        """What the client gets for the function's result."""

    # -- answers -----------------------------------------------------------------------------

    def _answer(self, result: InvokeResult, call: _Call) -> None:
        if call.finished:
            return
        status, body, headers, content_type = self.response(result)
        self._reply(
            call.connection,
            call.request,
            status,
            body,
            request_id=call.request_id,
            headers=headers,
            content_type=content_type,
        )

    def _timed_out(self, call: _Call) -> None:
        self._refuse(call.connection, call.request, self.TIMED_OUT, request_id=call.request_id)

    def _refuse(
        self,
        connection: Connection,
        request: Request,
        refusal: Refusal,
        *,
        request_id: str | None = None,
    ) -> None:
        self._reply(
            connection,
            request,
            refusal.status,
            refusal.body,
            request_id=request_id,
            error_type=refusal.error_type,
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
        extra.append((self.REQUEST_ID_HEADER, (request_id or new_request_id()).encode()))
        if error_type is not None:
            extra.append((b"x-amzn-ErrorType", error_type))
        respond_after(
            self.added_latency_s,
            connection,
            status,
            body,
            headers=extra,
            content_type=content_type,
            keep_alive=request.keep_alive,
        )


def respond_after(
    delay_s: float,
    connection: Connection,
    status: int,
    body: bytes,
    *,
    headers: list[tuple[bytes, bytes]],
    content_type: bytes,
    keep_alive: bool,
) -> None:
    """Answer now, or after the front's added latency (the network a real API Gateway adds)."""

    def respond() -> None:
        connection.respond(
            status, body, headers=headers, content_type=content_type, keep_alive=keep_alive
        )

    if delay_s > 0:
        asyncio.get_running_loop().call_later(delay_s, respond)
    else:
        respond()


# -- the function's response headers, for both response mappings -------------------------------

# An HTTP token (RFC 9110 5.6.2): what a header name may be made of.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# Control characters other than tab (RFC 9110 5.5): CR or LF would end the header early.
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_dumps = json.JSONEncoder().encode  # json.dumps' own encoder, without its argument checks


def header_name(name: str) -> bytes:
    """A response header's name as sent; ValueError if it is not an HTTP token."""
    encoded = name.encode("latin-1")
    if not _TOKEN.match(encoded):
        raise ValueError(f"header name {name!r}")
    return encoded


def header_value(value: Any) -> bytes:
    """A response header's value as sent; ValueError or TypeError if it can't be one."""
    # Scalars are written as JSON writes them; objects, arrays and null are malformed.
    if isinstance(value, str):
        encoded = value.encode("latin-1")
    elif isinstance(value, (bool, int, float)):
        encoded = _dumps(value).encode()
    else:
        raise TypeError("header value")
    if _CONTROL.search(encoded):
        raise ValueError("control character in a header value")
    return encoded
