"""A small HTTP/1.1 server core (asyncio protocol + httptools' parser) for the local stack.

The API Gateway front and the Lambda Runtime API both run on it. Their per-request CPU is
the local stack's throughput limit (EMULATOR_FACTS.md part 2: aiohttp spent 0.27-0.46 ms
of CPU per invoke on two HTTP exchanges), so this keeps the path to a parser callback and
one write. A handler may answer later (the Runtime API holds `GET /next` open until an
invocation arrives); requests on one connection are answered in order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from http import HTTPStatus

import httptools

Headers = list[tuple[bytes, bytes]]

_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


class Request:
    __slots__ = (
        "answered",
        "body",
        "headers",
        "keep_alive",
        "method",
        "path",
        "peer",
        "raw_headers",
        "too_large",
    )

    def __init__(self, peer: tuple[str, int] | None) -> None:
        self.method = b""
        self.path = b""
        self.headers: dict[bytes, bytes] = {}  # names lower-cased, for lookups
        self.raw_headers: list[tuple[bytes, bytes]] = []  # as sent, for events
        self.body = b""
        self.keep_alive = True
        self.too_large = False
        self.answered = False
        self.peer = peer


Handler = Callable[[Request, "Connection"], None]


class Connection(asyncio.Protocol):
    """One client connection: parses requests, hands them over in order, writes replies."""

    def __init__(self, handler: Handler, *, max_body: int) -> None:
        self._handler = handler
        self._max_body = max_body
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._current: Request | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        self._pending: deque[Request] = deque()
        self._busy = False
        self.closed = False
        self.on_lost: Callable[[], None] | None = None
        self.peer: tuple[str, int] | None = None

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports don't subclass asyncio.Transport; both have the methods used.
        self._transport = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername")

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, b'{"message":"upgrade not supported"}')
        except httptools.HttpParserError:
            self._fail(400, b'{"message":"malformed HTTP request"}')

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._transport = None
        if self.on_lost is not None:
            self.on_lost()

    # -- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._current = Request(self.peer)
        self._chunks = []
        self._size = 0

    def on_url(self, url: bytes) -> None:
        assert self._current is not None
        self._current.path += url

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._current is not None
        self._current.headers[name.lower()] = value
        self._current.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self._current is not None
        self._current.method = self._parser.get_method()
        self._current.keep_alive = self._parser.should_keep_alive()
        length = self._current.headers.get(b"content-length", b"0")
        if length.isdigit() and int(length) > self._max_body:
            self._current.too_large = True

    def on_body(self, body: bytes) -> None:
        assert self._current is not None
        self._size += len(body)
        if self._size > self._max_body:
            self._current.too_large = True
            self._chunks = []
        elif not self._current.too_large:
            self._chunks.append(body)

    def on_message_complete(self) -> None:
        request = self._current
        assert request is not None
        self._current = None
        if not request.too_large:
            request.body = b"".join(self._chunks)
        self._chunks = []
        if request.too_large:
            # Nothing more is read from a client that overran the limit.
            request.keep_alive = False
        self._pending.append(request)
        if not self._busy:
            self._next()

    # -- answering ---------------------------------------------------------------------------

    def _next(self) -> None:
        while self._pending and not self._busy and not self.closed:
            self._busy = True
            self._handler(self._pending.popleft(), self)

    def respond(
        self,
        status: int,
        body: bytes,
        *,
        headers: Headers | None = None,
        content_type: bytes = b"application/json",
        keep_alive: bool = True,
    ) -> None:
        """Answer the request being handled; later requests on this connection follow."""
        transport = self._transport
        self._busy = False
        if transport is None:
            return
        lines = [
            b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
            % (status, _REASONS.get(status, b"Unknown"), content_type, len(body))
        ]
        for name, value in headers or ():
            lines.append(b"%s: %s\r\n" % (name, value))
        if not keep_alive:
            lines.append(b"Connection: close\r\n")
        lines.append(b"\r\n")
        lines.append(body)
        transport.write(b"".join(lines))
        if not keep_alive:
            transport.close()
            return
        if self._pending:
            self._next()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _fail(self, status: int, body: bytes) -> None:
        self._busy = True
        self.respond(status, body, keep_alive=False)


async def serve(handler: Handler, *, host: str, port: int, max_body: int) -> asyncio.Server:
    """Listen on host:port (0 = any free port) with `handler` for every request."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: Connection(handler, max_body=max_body), host=host, port=port, reuse_address=True
    )


def bound_port(server: asyncio.Server) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port
