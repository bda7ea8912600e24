"""A small HTTP/1.1 server core (asyncio protocol + httptools' parser) for the local stack.

The API Gateway front and the Lambda Runtime API both run on it. Their per-request CPU is
the local stack's throughput limit (docs/ARCHITECTURE.md, section 4.3: aiohttp spent 0.27-0.46 ms
of CPU per invoke on two HTTP exchanges), so this keeps the path to a parser callback and
one write. A handler may answer later (the Runtime API holds `GET /next` open until an
invocation arrives); requests on one connection are answered in order, refusals included.

What a careless or hostile client can cost is bounded here (`Limits`): the bytes of a
request's head buffered before it is refused, the time a half-sent request or an idle
keep-alive connection holds its descriptor, the requests queued behind a slow one, and the
share of the process's descriptors that client connections may take (`_Descriptors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

import httptools

Headers = list[tuple[bytes, bytes]]

_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}

# Bytes of request line and headers read for one request, whatever a server's own quotas:
# llhttp hands httptools a header in pieces that httptools joins in memory, so without a
# bound one endless header grows the process (a 300 MB header took it to 541 MB RSS).
MAX_HEAD_BYTES = 64 * 1024
# Requests parsed and queued behind the one being answered before the connection stops
# reading: a pipelining client can't queue without bound behind a slow invocation.
MAX_PIPELINED = 32
# After an error answer the connection still reads (and drops) this long and this much, so
# the client reads the answer before unread bytes make the kernel reset the connection.
LINGER_S = 2.0
LINGER_BYTES = 1 << 20
# Descriptors kept free for what the stack opens itself (sandboxes' pipes and Runtime API
# sockets, dynalite connections, the control port): client connections beyond
# RLIMIT_NOFILE minus this are shed, idle ones first. A quarter of the limit, at least 32 and
# at most 256 (more than a listen backlog of 100, which can be accepted in one loop turn).
FD_RESERVE_SHARE = 0.25
FD_RESERVE_MIN = 32
FD_RESERVE_MAX = 256

_MALFORMED = b'{"message":"malformed HTTP request"}'
_UPGRADE = b'{"message":"upgrade not supported"}'
_HEAD_TOO_LARGE = b'{"message":"Request Header Fields Too Large"}'
_TIMED_OUT = b'{"message":"Request Timeout"}'
_UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b'Content-Length: 33\r\nConnection: close\r\n\r\n{"message":"Service Unavailable"}'
)


@dataclass(frozen=True)
class Limits:
    """What one listener tolerates from a client connection (None: no such limit)."""

    max_body: int
    max_head: int = MAX_HEAD_BYTES  # request line + headers as sent; over: 431
    max_url: int | None = None  # request target; over: 414
    max_header_values: int | None = None  # all header values together; over: 431
    request_timeout_s: float | None = None  # a request's first byte to its last; over: 408
    idle_timeout_s: float | None = None  # a connection with nothing to answer; over: closed
    shed: bool = False  # under descriptor pressure these connections may be closed


class Request:
    __slots__ = (
        "answered",
        "body",
        "error",
        "headers",
        "keep_alive",
        "method",
        "path",
        "peer",
        "raw_headers",
        "repeated",
        "too_large",
    )

    def __init__(self, peer: tuple[str, int] | None) -> None:
        self.method = b""
        self.path = b""
        self.headers: dict[bytes, bytes] = {}  # names lower-cased, for lookups; the last wins
        self.raw_headers: list[tuple[bytes, bytes]] = []  # as sent, for events
        self.repeated: set[bytes] | None = None  # lower-cased names sent more than once
        self.body = b""
        self.keep_alive = True
        self.too_large = False
        self.answered = False
        self.peer = peer
        # Set for a request the connection refuses itself (status, body), answered in turn.
        self.error: tuple[int, bytes] | None = None


Handler = Callable[[Request, "Connection"], None]


class _Refusal(Exception):
    """Raised in a parser callback: stop parsing and answer this, in turn."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class _Listener:
    """One server's open connections, and the timer that enforces its timeouts."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.connections: dict[Connection, None] = {}  # oldest first
        timeouts = [t for t in (limits.request_timeout_s, limits.idle_timeout_s) if t]
        # A quarter of the shortest timeout: a connection is cut within 1.25x its timeout.
        self._tick_s = min(5.0, max(0.05, min(timeouts) / 4)) if timeouts else None
        self._timer: asyncio.TimerHandle | None = None

    def add(self, connection: Connection) -> None:
        self.connections[connection] = None
        if self._tick_s is not None and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._tick_s, self._sweep)

    def discard(self, connection: Connection) -> None:
        self.connections.pop(connection, None)

    def _sweep(self) -> None:
        self._timer = None
        now = asyncio.get_running_loop().time()
        for connection in list(self.connections):
            connection.check_timeouts(now)
        if self.connections and self._tick_s is not None:
            self._timer = asyncio.get_running_loop().call_later(self._tick_s, self._sweep)


class _Descriptors:
    """The process's client connections against RLIMIT_NOFILE (one event loop per process)."""

    def __init__(self) -> None:
        self.open = 0  # connections of every listener
        self.sheddable: dict[Connection, None] = {}  # oldest first
        self.closing = 0  # shed, their descriptors not yet released

    def admit(self, newcomer: Connection) -> bool:
        """Make room for one more connection; False: none can be made, refuse it."""
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return True
        reserve = max(FD_RESERVE_MIN, min(FD_RESERVE_MAX, int(soft * FD_RESERVE_SHARE)))
        if (self.open + reserve) * 2 < soft:
            return True  # far from the limit: skip counting descriptors
        try:
            used = len(os.listdir("/proc/self/fd")) - 1  # less listdir's own
        except OSError:
            used = self.open + reserve
        excess = used - self.closing + reserve - soft
        if excess <= 0:
            return True
        # Idle connections first (oldest first), then requests stalled half-sent.
        for stalled in (False, True):
            for connection in list(self.sheddable):
                if connection is not newcomer and connection.sheddable(stalled=stalled):
                    connection.shed()
                    self.closing += 1
                    excess -= 1
                    if excess <= 0:
                        return True
        return False


_DESCRIPTORS = _Descriptors()


class Connection(asyncio.Protocol):
    """One client connection: parses requests, hands them over in order, writes replies."""

    def __init__(self, handler: Handler, limits: Limits, listener: _Listener) -> None:
        self._handler = handler
        self._limits = limits
        self._listener = listener
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._current: Request | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        self._pending: deque[Request] = deque()
        self._busy = False
        self._in_head = True  # between requests or in one's request line and headers
        self._head_size = 0
        self._values_size = 0
        self._receiving_since: float | None = None  # a request begun, not yet complete
        self._idle_since = 0.0
        self._refused = False  # an error answer is queued: nothing more is parsed
        self._paused = False
        self._lingering = False
        self._dropped = 0
        self._shed = False
        self.closed = False
        self.on_lost: Callable[[], None] | None = None
        self.peer: tuple[str, int] | None = None

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports don't subclass asyncio.Transport; both have the methods used.
        self._transport = transport  # type: ignore[assignment]
        self.peer = transport.get_extra_info("peername")
        self._idle_since = self._loop.time()
        self._listener.add(self)
        _DESCRIPTORS.open += 1
        if self._limits.shed:
            _DESCRIPTORS.sheddable[self] = None
            if not _DESCRIPTORS.admit(self):
                transport.write(_UNAVAILABLE)  # type: ignore[attr-defined]
                transport.close()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            self._drop(len(data))
            return
        limit = self._limits.max_head
        if not self._in_head or self._head_size + len(data) <= limit:
            if self._in_head:
                self._head_size += len(data)
            self._feed(data)
            return
        # The head would pass its bound within this read: feed up to the bound, then see.
        view = memoryview(data)
        while view and not self._refused:
            if not self._in_head:
                self._feed(view)
                return
            room = limit - self._head_size
            if room <= 0:
                self._refuse(431, _HEAD_TOO_LARGE)
                return
            piece = view[:room]
            self._head_size += len(piece)
            self._feed(piece)
            view = view[len(piece) :]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._transport = None
        self._listener.discard(self)
        _DESCRIPTORS.open -= 1
        _DESCRIPTORS.sheddable.pop(self, None)
        if self._shed:
            _DESCRIPTORS.closing -= 1
        if self.on_lost is not None:
            self.on_lost()

    # -- httptools callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._current = Request(self.peer)
        self._chunks = []
        self._size = 0
        self._values_size = 0
        self._receiving_since = self._loop.time()

    def on_url(self, url: bytes) -> None:
        assert self._current is not None
        self._current.path += url
        max_url = self._limits.max_url
        if max_url is not None and len(self._current.path) > max_url:
            raise _Refusal(414, b'{"message":"Request-URI Too Long"}')

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self._current
        assert request is not None
        lowered = name.lower()
        if lowered in request.headers:
            if request.repeated is None:
                request.repeated = set()
            request.repeated.add(lowered)
        request.headers[lowered] = value
        request.raw_headers.append((name, value))
        max_values = self._limits.max_header_values
        if max_values is not None:
            self._values_size += len(value)
            if self._values_size > max_values:
                raise _Refusal(431, _HEAD_TOO_LARGE)

    def on_headers_complete(self) -> None:
        assert self._current is not None
        self._in_head = False
        self._current.method = self._parser.get_method()
        self._current.keep_alive = self._parser.should_keep_alive()
        length = self._current.headers.get(b"content-length", b"0")
        if length.isdigit() and int(length) > self._limits.max_body:
            self._current.too_large = True

    def on_body(self, body: bytes) -> None:
        assert self._current is not None
        self._size += len(body)
        if self._size > self._limits.max_body:
            self._current.too_large = True
            self._chunks = []
        elif not self._current.too_large:
            self._chunks.append(body)

    def on_message_complete(self) -> None:
        request = self._current
        assert request is not None
        self._current = None
        self._in_head = True
        self._head_size = 0
        self._receiving_since = None
        if not request.too_large:
            request.body = b"".join(self._chunks)
        self._chunks = []
        if request.too_large:
            # Nothing more is read from a client that overran the limit.
            request.keep_alive = False
        self._pending.append(request)
        if len(self._pending) >= MAX_PIPELINED:
            self._pause()
        if not self._busy:
            self._next()

    # -- answering ---------------------------------------------------------------------------

    def _next(self) -> None:
        while self._pending and not self._busy and not self.closed:
            request = self._pending.popleft()
            self._busy = True
            if request.error is not None:
                self._answer_refusal(*request.error)
                return
            self._handler(request, self)
        if self._paused and not self._refused and len(self._pending) < MAX_PIPELINED:
            self._resume()

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
        else:
            self._idle_since = self._loop.time()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # -- refusals, timeouts, shedding --------------------------------------------------------

    def _feed(self, data: bytes | memoryview) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._refuse(400, _UPGRADE)
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, _Refusal):
                self._refuse(cause.status, cause.body)
            else:
                self._refuse(400, _MALFORMED)

    def _refuse(self, status: int, body: bytes) -> None:
        """Parse nothing more; answer `status` after every request before it, then close."""
        if self._refused:
            return
        self._refused = True
        self._current = None
        self._chunks = []
        self._receiving_since = None
        refusal = Request(self.peer)
        refusal.error = (status, body)
        refusal.keep_alive = False
        self._pending.append(refusal)
        self._pause()
        if not self._busy:
            self._next()

    def _answer_refusal(self, status: int, body: bytes) -> None:
        transport = self._transport
        self._busy = False
        if transport is None:
            return
        transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s"
            % (status, _REASONS.get(status, b"Unknown"), len(body), body)
        )
        # Half-close and drain a little, so the answer isn't lost to a reset (LINGER_S).
        self._lingering = True
        try:
            transport.write_eof()
        except (NotImplementedError, OSError, RuntimeError):
            transport.close()
            return
        self._resume()
        self._loop.call_later(LINGER_S, self.close)

    def _drop(self, size: int) -> None:
        self._dropped += size
        if self._lingering and self._dropped > LINGER_BYTES:
            self.close()

    def _pause(self) -> None:
        if not self._paused and self._transport is not None:
            self._paused = True
            with contextlib.suppress(RuntimeError):
                self._transport.pause_reading()

    def _resume(self) -> None:
        if self._paused and self._transport is not None:
            self._paused = False
            with contextlib.suppress(RuntimeError):
                self._transport.resume_reading()

    @property
    def _idle(self) -> bool:
        return not self._busy and not self._pending and self._receiving_since is None

    def check_timeouts(self, now: float) -> None:
        """Called by the listener's timer: 408 a stalled request, close an idle connection."""
        if self.closed or self._refused:
            return
        limits = self._limits
        since = self._receiving_since
        if since is not None:
            if limits.request_timeout_s is not None and now - since > limits.request_timeout_s:
                self._refuse(408, _TIMED_OUT)
        elif (
            self._idle
            and limits.idle_timeout_s is not None
            and now - self._idle_since > limits.idle_timeout_s
        ):
            self.close()

    def sheddable(self, *, stalled: bool) -> bool:
        """Idle (stalled=False), or waiting on a half-sent request (stalled=True)."""
        if self.closed or self._shed:
            return False
        if not stalled:
            return self._idle
        return not self._busy and self._receiving_since is not None

    def shed(self) -> None:
        self._shed = True
        self.close()


async def serve(
    handler: Handler,
    *,
    host: str,
    port: int,
    max_body: int | None = None,
    limits: Limits | None = None,
) -> asyncio.Server:
    """Listen on host:port (0 = any free port) with `handler` for every request."""
    if limits is None:
        if max_body is None:
            raise TypeError("serve() needs max_body or limits")
        limits = Limits(max_body=max_body)
    listener = _Listener(limits)
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: Connection(handler, limits, listener), host=host, port=port, reuse_address=True
    )


def bound_port(server: asyncio.Server) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port
