"""python -m bench.tiny_server PORT DELAY_MS: a keep-alive HTTP server on 127.0.0.1.

Answers every request with a small JSON body after DELAY_MS (0: at once), and `GET /count`
with how many requests it has answered. TCP_NODELAY on every connection (without it a
keep-alive client meets delayed ACKs: docs/ARCHITECTURE.md, 4.4). With DELAY_MS 0 it runs on uvloop,
the fallback fast endpoint when nginx is missing; with a delay it runs on the stock asyncio
loop, wakes 2 ms early and spins to the deadline (both loops' timers round to milliseconds).
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time

import httptools

BODY = b'{"ok":true}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)


# Wake this early and spin to the deadline, so the delay is exact to a few microseconds.
TIMER_SLACK_S = 0.002


class Counter:
    answered = 0


class Protocol(asyncio.Protocol):
    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_message_complete(self) -> None:
        if self.url == b"/count":
            text = str(Counter.answered).encode()
            self._write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(text), text))
        elif self.delay_s:
            deadline = time.perf_counter() + self.delay_s
            asyncio.get_running_loop().call_later(
                self.delay_s - TIMER_SLACK_S, self._answer, deadline
            )
        else:
            self._answer(0.0)

    def _answer(self, deadline: float) -> None:
        while time.perf_counter() < deadline:
            pass  # the last stretch spun: epoll's timeout is rounded up to whole milliseconds
        Counter.answered += 1
        self._write(RESPONSE)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


async def serve(port: int, delay_s: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Protocol(delay_s), "127.0.0.1", port, backlog=1024, reuse_address=True
    )
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    port, delay_ms = int(sys.argv[1]), float(sys.argv[2])
    if delay_ms == 0:
        import uvloop

        uvloop.run(serve(port, 0.0))
    else:
        asyncio.run(serve(port, delay_ms / 1000))


if __name__ == "__main__":
    main()
