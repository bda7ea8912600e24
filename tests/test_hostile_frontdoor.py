"""The local stack's front door and control port under hostile and careless clients.

Real processes and sockets: a local stack whose function returns whatever proxy response the
request carries (tests/handlers/frontdoor.py), raw TCP clients that send what no well-behaved
HTTP client would, and the emulator's own RSS and descriptor limit read from /proc.
"""

from __future__ import annotations

import http.client
import json
import resource
import select
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from runner.emulator._apigw import MAX_HEADER_VALUES_BYTES, MAX_URL_BYTES
from runner.errors import SetupError
from runner.targets import LocalStackProcess
from tests.conftest import StartStack, stack_args, start_stack

# Short enough that a test sees them pass, long enough that no honest request in a test
# (sent at once, on loopback) comes near them.
REQUEST_TIMEOUT_S = 1.0
IDLE_TIMEOUT_S = 2.0
# How long a test waits for an answer or a close it expects: timeouts plus the sweep's tick.
WAIT_S = 15.0
INTERNAL = {"message": "Internal server error"}


@dataclass
class Reply:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def front_args(*extra: str) -> list[str]:
    return [
        *stack_args(memory_mb=1769, handler="frontdoor.lambda_handler", timeout_s=3),
        *("--request-timeout", str(REQUEST_TIMEOUT_S)),
        *("--idle-timeout", str(IDLE_TIMEOUT_S)),
        *extra,
    ]


@pytest.fixture(scope="module")
def stack(start_module_stack: StartStack) -> LocalStackProcess:
    return start_module_stack(*front_args())


# --- a raw HTTP client ------------------------------------------------------------------------


def address(stack: LocalStackProcess) -> tuple[str, int]:
    parts = urlsplit(stack.url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def path_of(stack: LocalStackProcess) -> str:
    return urlsplit(stack.url).path


def request_bytes(
    stack: LocalStackProcess,
    body: Any = None,
    *,
    target: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    api_key: bool = True,
) -> bytes:
    data = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
    host, port = address(stack)
    lines = [f"POST {target or path_of(stack)} HTTP/1.1", f"Host: {host}:{port}"]
    if api_key and stack.api_key:
        lines.append(f"x-api-key: {stack.api_key}")
    lines += [f"{name}: {value}" for name, value in headers or []]
    lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data


def connect(stack: LocalStackProcess) -> socket.socket:
    return socket.create_connection(address(stack), timeout=WAIT_S)


def parse_replies(data: bytes) -> list[Reply]:
    replies: list[Reply] = []
    while True:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            return replies
        lines = head.split(b"\r\n")
        headers: dict[str, list[str]] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.setdefault(name.strip().lower().decode(), []).append(
                value.strip().decode("latin-1")
            )
        length = int(headers.get("content-length", ["0"])[0])
        if len(rest) < length:
            return replies
        replies.append(Reply(int(lines[0].split()[1]), headers, rest[:length]))
        data = rest[length:]


def read_until_closed(sock: socket.socket, timeout: float = WAIT_S) -> tuple[list[Reply], bool]:
    """Every reply the server sends, and whether it closed the connection within `timeout`."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    closed = False
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        chunks.append(chunk)
    return parse_replies(b"".join(chunks)), closed


def read_replies(sock: socket.socket, count: int) -> list[Reply]:
    """The next `count` replies on a connection that stays open."""
    data = b""
    deadline = time.monotonic() + WAIT_S
    while len(parse_replies(data)) < count and (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return parse_replies(data)


def exchange(stack: LocalStackProcess, data: bytes) -> tuple[list[Reply], bool]:
    with connect(stack) as sock:
        sock.sendall(data)
        return read_until_closed(sock, timeout=WAIT_S if b"Connection: close" in data else 3.0)


def one(stack: LocalStackProcess, data: bytes) -> Reply:
    with connect(stack) as sock:
        sock.sendall(data)
        (reply,) = read_replies(sock, 1)
        return reply


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def good_call(stack: LocalStackProcess) -> Reply:
    return one(stack, request_bytes(stack, {}))


# --- 1. oversized request lines and headers ---------------------------------------------------


def test_given_a_300_mb_header_then_431_before_it_is_buffered_and_rss_stays_bounded(
    stack: LocalStackProcess,
) -> None:
    assert good_call(stack).status == 200  # warm: the sandbox exists before the baseline
    before = rss_kb(stack.pid)
    head = request_bytes(stack, {}).split(b"\r\n\r\n")[0] + b"\r\nX-Huge: "
    chunk = b"a" * (1 << 20)
    answered = False
    with connect(stack) as sock:
        sock.sendall(head)
        for _ in range(300):  # 300 MB at most; the server answers long before
            if select.select([sock], [], [], 0)[0]:
                answered = True
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break
        replies, closed = read_until_closed(sock)
    assert answered or replies
    assert [reply.status for reply in replies] == [431]
    assert replies[0].json() == {"message": "Request Header Fields Too Large"}
    assert closed
    assert rss_kb(stack.pid) - before < 8 * 1024  # KB: a few MB at most
    assert good_call(stack).status == 200


@pytest.mark.parametrize("size", [70 * 1024, 1 << 20])
def test_given_a_header_of_70_kb_or_1_mb_then_431_and_closed(
    stack: LocalStackProcess, size: int
) -> None:
    replies, closed = exchange(stack, request_bytes(stack, {}, headers=[("X-Big", "b" * size)]))
    assert [reply.status for reply in replies] == [431]
    assert closed


def _padding_for(stack: LocalStackProcess, total: int) -> int:
    """The X-Pad value length that makes the request's header values total `total` bytes."""
    probe = request_bytes(stack, {}, headers=[("X-Pad", "")])
    head = probe.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
    values = sum(len(line.partition(b":")[2].strip()) for line in head)
    return total - values


def test_given_header_values_at_the_10240_byte_quota_then_served_and_one_more_byte_431(
    stack: LocalStackProcess,
) -> None:
    pad = _padding_for(stack, MAX_HEADER_VALUES_BYTES)
    at_limit = one(stack, request_bytes(stack, {}, headers=[("X-Pad", "p" * pad)]))
    assert at_limit.status == 200
    over, closed = exchange(stack, request_bytes(stack, {}, headers=[("X-Pad", "p" * (pad + 1))]))
    assert [reply.status for reply in over] == [431]
    assert closed


def test_given_a_url_at_the_10240_byte_quota_then_served_and_one_more_byte_414(
    stack: LocalStackProcess,
) -> None:
    prefix = path_of(stack) + "?pad="
    at_limit = prefix + "q" * (MAX_URL_BYTES - len(prefix))
    assert one(stack, request_bytes(stack, {}, target=at_limit)).status == 200
    replies, closed = exchange(stack, request_bytes(stack, {}, target=at_limit + "q"))
    assert [(reply.status, reply.json()) for reply in replies] == [
        (414, {"message": "Request-URI Too Long"})
    ]
    assert closed


# --- 2. slow, half-sent and idle connections --------------------------------------------------


def test_given_a_body_shorter_than_its_content_length_then_408_and_closed(
    stack: LocalStackProcess,
) -> None:
    head = (
        request_bytes(stack, b"")
        .split(b"\r\n\r\n")[0]
        .replace(b"Content-Length: 0", b"Content-Length: 100")
    )
    with connect(stack) as sock:
        sock.sendall(head + b"\r\n\r\n" + b"x" * 10)  # 90 bytes never come
        replies, closed = read_until_closed(sock)
    assert [(reply.status, reply.json()) for reply in replies] == [
        (408, {"message": "Request Timeout"})
    ]
    assert closed


def test_given_a_half_sent_request_line_and_headers_then_408_and_closed(
    stack: LocalStackProcess,
) -> None:
    with connect(stack) as sock:
        sock.sendall(f"POST {path_of(stack)} HTTP/1.1\r\nHost: x\r\nX-Partial: ab".encode())
        replies, closed = read_until_closed(sock)
    assert [reply.status for reply in replies] == [408]
    assert closed


def test_given_an_idle_keep_alive_connection_then_it_is_closed_after_the_idle_timeout(
    stack: LocalStackProcess,
) -> None:
    with connect(stack) as sock:
        sock.sendall(request_bytes(stack, {}))
        assert [reply.status for reply in read_replies(sock, 1)] == [200]
        replies, closed = read_until_closed(sock)  # nothing more is sent
    assert replies == []
    assert closed


def test_given_a_connection_that_never_sends_then_it_is_closed_after_the_idle_timeout(
    stack: LocalStackProcess,
) -> None:
    with connect(stack) as sock:
        replies, closed = read_until_closed(sock)
    assert (replies, closed) == ([], True)


# --- 3. descriptor reserve --------------------------------------------------------------------


def test_given_300_hoarded_sockets_at_a_300_fd_limit_then_requests_sandboxes_and_control_work(
    config_json: Path, tmp_path: Path
) -> None:
    limited = start_stack(config_json, tmp_path, *front_args())
    hoard: list[socket.socket] = []
    try:
        assert good_call(limited).status == 200
        resource.prlimit(limited.pid, resource.RLIMIT_NOFILE, (300, 300))
        for _ in range(300):
            try:
                hoard.append(socket.create_connection(address(limited), timeout=WAIT_S))
            except OSError:
                break  # the backlog is full: the hoard is as large as it can get
        assert len(hoard) >= 250
        assert good_call(limited).status == 200
        assert limited.status()["memory_mb"] == 1769  # the control port answers
        # A memory change replaces every sandbox: new processes, pipes and sockets.
        assert limited.set_memory(1024)["memory_mb"] == 1024
        assert good_call(limited).status == 200
        assert open_fds(limited.pid) <= 300
    finally:
        for sock in hoard:
            sock.close()
        limited.stop()


# --- 4. pipelining ----------------------------------------------------------------------------


def test_given_garbage_pipelined_after_a_good_request_then_400_only_after_its_answer(
    stack: LocalStackProcess,
) -> None:
    good = request_bytes(stack, {"sleep": 0.3})
    replies, closed = exchange(stack, good + b"GARBAGE \x00\x01 NOT HTTP\r\n\r\n")
    assert [reply.status for reply in replies] == [200, 400]
    assert replies[0].json() == {"ok": True}
    assert replies[1].json() == {"message": "malformed HTTP request"}
    assert closed


def test_given_pipelined_requests_then_answers_come_in_request_order(
    stack: LocalStackProcess,
) -> None:
    def proxy(text: str) -> dict[str, Any]:
        return {"statusCode": 200, "body": text}

    first = request_bytes(stack, {"sleep": 0.3, "response": proxy("first")})
    second = request_bytes(stack, {"response": proxy("second")})
    with connect(stack) as sock:
        sock.sendall(first + second)
        replies = read_replies(sock, 2)
    assert [reply.body for reply in replies] == [b"first", b"second"]


# --- 5. malformed function responses ----------------------------------------------------------

MALFORMED = {
    "statusCode a string": {"statusCode": "200", "body": "x"},
    "statusCode a boolean": {"statusCode": True, "body": "x"},
    "statusCode out of range": {"statusCode": 1000, "body": "x"},
    "statusCode missing": {"body": "x"},
    "CR/LF in a header value": {
        "statusCode": 200,
        "headers": {"X-Note": "a\r\nSet-Cookie: session=stolen"},
        "body": "x",
    },
    "LF in a header value": {"statusCode": 200, "headers": {"X-Note": "a\nb"}, "body": "x"},
    "CR/LF in a header name": {
        "statusCode": 200,
        "headers": {"X-A\r\nSet-Cookie": "session=stolen"},
        "body": "x",
    },
    "a space in a header name": {"statusCode": 200, "headers": {"X A": "b"}, "body": "x"},
    "a header value that is an object": {
        "statusCode": 200,
        "headers": {"X-A": {"b": 1}},
        "body": "x",
    },
    "a header value that is null": {"statusCode": 200, "headers": {"X-A": None}, "body": "x"},
    "headers a list": {"statusCode": 200, "headers": [["X-A", "b"]], "body": "x"},
    "multiValueHeaders value a string": {
        "statusCode": 200,
        "multiValueHeaders": {"Set-Cookie": "abc"},
        "body": "x",
    },
    "multiValueHeaders with an object": {
        "statusCode": 200,
        "multiValueHeaders": {"X-A": [{"b": 1}]},
        "body": "x",
    },
    "multiValueHeaders with CR/LF": {
        "statusCode": 200,
        "multiValueHeaders": {"X-A": ["ok", "a\r\nSet-Cookie: session=stolen"]},
        "body": "x",
    },
    "body an object": {"statusCode": 200, "body": {"a": 1}},
    "body a number": {"statusCode": 200, "body": 5},
    "isBase64Encoded with a body that is not base64": {
        "statusCode": 200,
        "isBase64Encoded": True,
        "body": "not base64!",
    },
    "a list, not an object": [200, "x"],
    "a string, not an object": "hello",
}


@pytest.mark.parametrize("response", list(MALFORMED.values()), ids=list(MALFORMED))
def test_given_a_malformed_proxy_response_then_502_internal_server_error(
    stack: LocalStackProcess, response: Any
) -> None:
    with connect(stack) as sock:
        sock.sendall(request_bytes(stack, {"response": response}))
        data = b""
        while b"Internal server error" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    (reply,) = parse_replies(data)
    assert (reply.status, reply.json()) == (502, INTERNAL)
    assert reply.headers["x-amzn-errortype"] == ["InternalServerErrorException"]
    assert b"Set-Cookie" not in data and b"session=stolen" not in data


def test_given_scalar_header_values_then_they_are_written_as_json_writes_them(
    stack: LocalStackProcess,
) -> None:
    response = {
        "statusCode": 201,
        "headers": {"X-Count": 5, "X-Flag": True, "X-Text": "plain"},
        "multiValueHeaders": {"X-Many": ["1", 2]},
        "body": "made",
    }
    reply = one(stack, request_bytes(stack, {"response": response}))
    assert (reply.status, reply.body) == (201, b"made")
    assert reply.headers["x-count"] == ["5"]
    assert reply.headers["x-flag"] == ["true"]
    assert reply.headers["x-text"] == ["plain"]
    assert reply.headers["x-many"] == ["1", "2"]


# --- 6. duplicate x-api-key -------------------------------------------------------------------


@pytest.mark.parametrize("order", ["right-then-wrong", "wrong-then-right", "right-twice"])
def test_given_two_x_api_key_headers_then_403_forbidden(
    stack: LocalStackProcess, order: str
) -> None:
    right = stack.api_key or ""
    first, second = {
        "right-then-wrong": (right, "wrong"),
        "wrong-then-right": ("wrong", right),
        "right-twice": (right, right),
    }[order]
    headers = [("x-api-key", first), ("X-Api-Key", second)]
    reply = one(stack, request_bytes(stack, {}, headers=headers, api_key=False))
    assert (reply.status, reply.json()) == (403, {"message": "Forbidden"})
    assert good_call(stack).status == 200  # one key, the right one: served


# --- 7. the control port ----------------------------------------------------------------------


def control(
    stack: LocalStackProcess, body: bytes, *, token: str | None = None, path: str = "/memory"
) -> Reply:
    parts = urlsplit(stack.ready["control_url"])
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=WAIT_S)
    try:
        connection.request(
            "POST",
            path,
            body=body,
            headers={"x-memsweep-control": token or stack.ready["control_token"]},
        )
        response = connection.getresponse()
        return Reply(response.status, {}, response.read())
    finally:
        connection.close()


def test_given_a_deeply_nested_control_body_then_400_at_once_naming_the_depth(
    stack: LocalStackProcess,
) -> None:
    reply = control(stack, b"[" * 20_000 + b"]" * 20_000)
    assert reply.status == 400
    assert "nested deeper than 8 levels" in reply.json()["message"]
    with_strings = control(stack, json.dumps({"memory_mb": "[[[[[[[[[[[[[[["}).encode())
    assert with_strings.json()["message"] == "memory_mb must be an integer, got '[[[[[[[[[[[[[[['"
    assert stack.status()["memory_mb"] == 1769  # the stack still answers, unchanged


def test_given_a_control_body_over_64_kb_then_413(stack: LocalStackProcess) -> None:
    reply = control(stack, json.dumps({"memory_mb": 512, "pad": "x" * 70_000}).encode())
    assert reply.status == 413
    assert "control request body over 65536 bytes" in reply.json()["message"]


def test_given_a_control_token_wrong_in_its_last_character_then_403(
    stack: LocalStackProcess,
) -> None:
    token = stack.ready["control_token"]
    near = token[:-1] + ("A" if token[-1] != "A" else "B")
    for guess in (near, token + "x", "x"):
        reply = control(stack, b'{"memory_mb": 512}', token=guess)
        assert (reply.status, reply.json()) == (403, {"message": "Forbidden"})
    assert stack.status()["memory_mb"] == 1769
    with pytest.raises(SetupError, match="memory 64 MB is outside"):
        stack.set_memory(64)  # the right token: the request is read, and refused on its merits
