"""A sandbox's Runtime API answers only the sandbox's own process.

Another local process that finds the port (it is in the sandbox's environment and in
`ss -ltn`) must not take events, forge answers or wedge the sandbox. Real processes only:
the local stack, its awslambdaric sandboxes, and attacker subprocesses.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from runner.emulator._lambda_pool import MAX_REFUSALS_LOGGED
from runner.emulator._peer import PeerCheck, holds_socket, proc_net_inode
from runner.targets import LocalStackProcess
from tests.conftest import BEHAVIOURS_HANDLER, StartStack, stack_args
from tests.test_local_stack import call, log_lines

# Runs in a separate process: the "other local process" of the threat.
ATTACKER = r"""
import http.client, json, socket, sys
host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
prefix = "/2018-06-01/runtime/"
out = {}
if mode == "next":
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request("GET", prefix + "invocation/next")
        reply = connection.getresponse()
        out = {"status": reply.status, "body": reply.read().decode()}
        out["headers"] = dict(reply.getheaders())
    except (OSError, http.client.HTTPException) as exc:
        out = {"error": repr(exc)}
elif mode == "forge":
    connection = http.client.HTTPConnection(host, port, timeout=10)
    forged = json.dumps({"statusCode": 200, "body": json.dumps({"forged": True})})
    try:
        connection.request("POST", prefix + "invocation/" + sys.argv[4] + "/response", body=forged)
        reply = connection.getresponse()
        out = {"status": reply.status, "body": reply.read().decode()}
    except (OSError, http.client.HTTPException) as exc:
        out = {"error": repr(exc)}
elif mode == "pipeline":
    sock = socket.create_connection((host, port), timeout=10)
    body = b'{"statusCode":200,"body":"forged"}'
    sock.sendall(
        b"GET " + prefix.encode() + b"invocation/next HTTP/1.1\r\nHost: x\r\n\r\n"
        + b"POST " + prefix.encode() + b"invocation/x/response HTTP/1.1\r\nHost: x\r\n"
        + b"Content-Length: %d\r\n\r\n" % len(body) + body
        + b"POST " + prefix.encode() + b"init/error HTTP/1.1\r\nHost: x\r\n"
        + b"Content-Length: 2\r\n\r\n{}"
    )
    data = b""
    try:
        while len(data) < 1_000_000:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        lines = [line for line in data.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]
        out = {"statuses": [line.split()[1].decode() for line in lines], "closed": True}
    except OSError as exc:
        out = {"error": repr(exc), "closed": False}
elif mode == "flood":
    statuses = []
    for _ in range(int(sys.argv[4])):
        connection = http.client.HTTPConnection(host, port, timeout=10)
        try:
            connection.request("GET", prefix + "invocation/next")
            statuses.append(connection.getresponse().status)
        except (OSError, http.client.HTTPException) as exc:
            statuses.append(repr(exc))
        finally:
            connection.close()
    out = {"statuses": statuses}
print(json.dumps(out))
"""


def attack(address: tuple[str, int], mode: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", ATTACKER, address[0], str(address[1]), mode, *args],
        stdout=subprocess.PIPE,
        text=True,
    )


def outcome(process: subprocess.Popen[str]) -> dict[str, Any]:
    stdout, _ = process.communicate(timeout=30)
    result: dict[str, Any] = json.loads(stdout)
    return result


@pytest.fixture(scope="module")
def stack(start_module_stack: StartStack) -> LocalStackProcess:
    return start_module_stack(*stack_args(memory_mb=1769, handler=BEHAVIOURS_HANDLER, timeout_s=5))


def warm_sandbox(stack: LocalStackProcess) -> tuple[int, tuple[str, int]]:
    """The pid of an idle sandbox and its Runtime API address, read from its environment."""
    reply = call(stack, {"action": "ping"})
    assert reply.status == 200
    pid: int = reply.json()["pid"]
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    api = next(v for v in environ if v.startswith(b"AWS_LAMBDA_RUNTIME_API="))
    host, port = api.split(b"=", 1)[1].decode().rsplit(":", 1)
    return pid, (host, int(port))


def refusal_lines(stack: LocalStackProcess) -> list[str]:
    return [line for line in log_lines(stack) if "Runtime API of sandbox" in line]


def test_given_another_process_asking_for_the_next_event_then_403_and_the_real_answer_arrives(
    stack: LocalStackProcess,
) -> None:
    pid, address = warm_sandbox(stack)
    before = len(refusal_lines(stack))
    thief = attack(address, "next")
    # GIVEN the thief's GET /next is sent before a real request arrives
    with ThreadPoolExecutor(max_workers=1) as pool:
        time.sleep(0.2)
        real = pool.submit(call, stack, {"action": "ping"})
        stolen = outcome(thief)
        reply = real.result()
    # THEN the thief is refused and learns nothing of the event
    assert stolen["status"] == 403, stolen
    assert "only its own sandbox" in stolen["body"]
    assert "Lambda-Runtime-Aws-Request-Id" not in stolen["headers"]
    # AND the client gets the handler's answer from the same sandbox, which keeps serving
    assert (reply.status, reply.json()) == (200, {"pid": pid})
    assert call(stack, {"action": "ping"}).json() == {"pid": pid}
    lines = refusal_lines(stack)
    assert len(lines) == before + 1
    assert "refused GET from 127.0.0.1:" in lines[-1]


def test_given_a_forged_answer_from_another_process_then_403_and_the_real_answer_arrives(
    stack: LocalStackProcess,
) -> None:
    pid, address = warm_sandbox(stack)
    starts = [line for line in log_lines(stack) if line.startswith("START RequestId:")]
    with ThreadPoolExecutor(max_workers=1) as pool:
        real = pool.submit(call, stack, {"action": "sleep", "seconds": 1.5})
        deadline = time.monotonic() + 10
        request_id = None
        while request_id is None and time.monotonic() < deadline:
            now = [line for line in log_lines(stack) if line.startswith("START RequestId:")]
            if len(now) > len(starts):
                request_id = now[-1].split()[2]
            time.sleep(0.02)
        assert request_id is not None, "the sleeping invocation never started"
        # WHEN another process answers it, knowing its request id
        forged = outcome(attack(address, "forge", request_id))
        reply = real.result()
    # THEN the forger is refused and the client gets what the handler returned
    assert forged["status"] == 403, forged
    assert (reply.status, reply.json()) == (200, {"slept": 1.5, "pid": pid})
    assert call(stack, {"action": "ping"}).json() == {"pid": pid}


def test_given_pipelined_runtime_calls_from_another_process_then_one_403_and_the_connection_closes(
    stack: LocalStackProcess,
) -> None:
    pid, address = warm_sandbox(stack)
    result = outcome(attack(address, "pipeline"))
    # next, a forged response and a forged init error in one write: only the first is answered
    assert result == {"statuses": ["403"], "closed": True}
    assert call(stack, {"action": "ping"}).json() == {"pid": pid}


def test_given_a_flood_of_refused_connections_then_the_log_stays_bounded_and_the_sandbox_serves(
    stack: LocalStackProcess,
) -> None:
    pid, address = warm_sandbox(stack)
    flood = outcome(attack(address, "flood", str(MAX_REFUSALS_LOGGED + 10)))
    assert flood["statuses"] == [403] * (MAX_REFUSALS_LOGGED + 10)
    lines = refusal_lines(stack)
    assert len(lines) == MAX_REFUSALS_LOGGED
    assert "counted, not logged" in lines[-1]
    assert call(stack, {"action": "ping"}).json() == {"pid": pid}


def test_given_a_sweep_like_sequence_then_every_call_is_served_by_a_checked_sandbox(
    stack: LocalStackProcess,
) -> None:
    # Concurrent calls start new sandboxes, each checked on its first connection.
    with ThreadPoolExecutor(max_workers=4) as pool:
        replies = list(pool.map(lambda _: call(stack, {"action": "ping"}), range(40)))
    assert [reply.status for reply in replies] == [200] * 40
    assert stack.status()["sandboxes"] >= 1


# -- _peer.py on real sockets ------------------------------------------------------------------

# Connects to argv[1]:argv[2], prints its own port, holds the connection.
HOLD = (
    "import socket, sys, time; s = socket.create_connection((sys.argv[1], int(sys.argv[2])));"
    " print(s.getsockname()[1], flush=True); time.sleep(30)"
)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(10)
    yield server
    server.close()


class Held:
    """A process (tree) holding a connection to the listener, and our side of it."""

    def __init__(self, server: socket.socket, command: list[str]) -> None:
        host, port = server.getsockname()
        self.process = subprocess.Popen(
            [*command, host, str(port)], stdout=subprocess.PIPE, text=True
        )
        self.accepted, self.peer = server.accept()
        assert self.process.stdout is not None
        assert int(self.process.stdout.readline()) == self.peer[1]

    def stop(self) -> None:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        with contextlib.suppress(OSError):
            for child in children.read_text().split():
                os.kill(int(child), signal.SIGKILL)
        self.process.kill()
        self.process.wait()
        self.accepted.close()


def test_given_a_connection_from_a_child_then_only_that_childs_tree_owns_it(
    listener: socket.socket,
) -> None:
    held = Held(listener, [sys.executable, "-c", HOLD])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        check = PeerCheck()
        local = listener.getsockname()
        assert check.owned_by(held.peer, local, held.process.pid)
        assert not check.owned_by(held.peer, local, other.pid)
        # sock_diag and /proc/net/tcp agree on the client's socket, which is not ours
        inode = check.client_inode(held.peer, local)
        assert inode is not None and inode == proc_net_inode(held.peer, local)
        assert inode != os.fstat(held.accepted.fileno()).st_ino
        assert holds_socket(held.process.pid, inode)
        check.close()
    finally:
        held.stop()
        other.kill()
        other.wait()


def test_given_a_grandchild_holding_the_socket_then_the_ancestor_owns_it(
    listener: socket.socket,
) -> None:
    # sh runs python as a child, not by exec: the socket is the grandchild's
    held = Held(listener, ["sh", "-c", '"$0" -c "$1" "$2" "$3"; true', sys.executable, HOLD])
    try:
        assert PeerCheck().owned_by(held.peer, listener.getsockname(), held.process.pid)
    finally:
        held.stop()


def test_given_a_client_that_has_gone_then_no_one_owns_its_address(
    listener: socket.socket,
) -> None:
    held = Held(listener, [sys.executable, "-c", HOLD])
    held.process.kill()
    held.process.wait()
    check = PeerCheck()
    local = listener.getsockname()
    # its socket closed with it (an orphaned FIN_WAIT socket has no inode)
    assert check.client_inode(held.peer, local) is None
    assert proc_net_inode(held.peer, local) is None
    assert not check.owned_by(held.peer, local, held.process.pid)
    held.stop()
