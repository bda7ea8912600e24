"""Which process is at the other end of a loopback TCP connection: the Runtime API's gate.

In Lambda only code inside the execution environment can reach its Runtime API. Here every
sandbox's Runtime API is a TCP port on 127.0.0.1, which any local process can connect to:
one that did could take the next event (headers and body), post a forged answer that the
client receives, and leave the real sandbox waiting. So a connection is served only if its
client socket is one of the sandbox process's own file descriptors (or a descendant's).

Why this and not the alternatives:
- A secret path prefix in AWS_LAMBDA_RUNTIME_API does not work: awslambdaric passes the
  value to http.client.HTTPConnection for /init/error, which refuses "host:port/prefix"
  (InvalidURL: nonnumeric port). And a secret in the environment is readable by any
  process of the same user in /proc/PID/environ.
- A uid per sandbox plus an iptables owner match needs root, free uids, rules to clean up,
  and file permissions on the function's code; the local stack runs without root too.
- Unix sockets (SO_PEERCRED) are out: awslambdaric speaks TCP to host:port only.
What remains open: a process that can ptrace the sandbox (same user, or root) can act as
the sandbox anyway, as it could read the sandbox's memory; that is not this gate's job.

How: the kernel's sock_diag netlink interface looks up the client's socket by its
four-tuple (the listener's peer address, as the client sees it from its own side) and
gives its inode; /proc/PID/fd of the sandbox lists `socket:[inode]` for sockets it holds.
Where sock_diag is missing (a kernel without inet_diag, some sandboxed kernels), the inode
comes from /proc/net/tcp{,6} instead.

Cost, measured on this 2-core host, busy with other work (the pool checks once per
connection, and awslambdaric keeps one connection for its whole life, so once per sandbox,
beside a cold start of 50-225 ms): 0.2-0.3 ms per check of a real awslambdaric sandbox
(9 fds), of which sock_diag 10-50 us whatever the number of sockets (10 to 2,000 tried)
and the fd scan 10-20 us per descriptor, newest first; the /proc/net/tcp fallback lists
every socket: 1.0 ms with 440 open, 5-6 ms with 900-2,000. Descendants are listed only
when the sandbox process itself does not hold the socket (refusals, or a forked helper).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import struct
import sys
from collections import deque
from collections.abc import Iterator

# <linux/sock_diag.h>, <linux/inet_diag.h>, <linux/netlink.h>
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 0x1
_NLMSG_ERROR = 0x2
_NLMSG_HEADER = struct.Struct("=IHHII")  # len, type, flags, seq, pid
# inet_diag_req_v2: family, protocol, ext, pad, states; then inet_diag_sockid.
_REQUEST = struct.Struct("=BBBBI")
_INET_DIAG_NOCOOKIE = 0xFFFFFFFF  # both cookie halves: match by address only
# In the reply (inet_diag_msg): family..retrans (4), sockid (48), expires, rqueue, wqueue,
# uid, inode.
_INODE_OFFSET = _NLMSG_HEADER.size + 4 + 48 + 16
# A netlink reply is read within this; the kernel answers in microseconds.
_NETLINK_TIMEOUT_S = 1.0
# Descendants looked at before giving up: a function that forks this many is not waiting
# on its Runtime API from the last of them.
MAX_FAMILY = 256


class PeerCheck:
    """Tells whether a loopback TCP client socket belongs to a given process (or its tree)."""

    def __init__(self) -> None:
        self._netlink: socket.socket | None = None
        self._netlink_failed = False
        self._seq = itertools.count(1)

    def owned_by(self, peer: tuple[str, int], local: tuple[str, int], pid: int) -> bool:
        """Is the client socket at `peer`, connected to our `local`, held by `pid`'s tree?"""
        inode = self.client_inode(peer, local)
        return inode is not None and holds_socket(pid, inode)

    def client_inode(self, peer: tuple[str, int], local: tuple[str, int]) -> int | None:
        """The inode of the socket whose own address is `peer` and whose remote is `local`."""
        if not self._netlink_failed:
            try:
                return self._diag_inode(peer, local)
            except OSError:
                # No sock_diag here (EPROTONOSUPPORT, EPERM): read the proc tables instead.
                self._netlink_failed = True
                self.close()
        return proc_net_inode(peer, local)

    def _diag_inode(self, peer: tuple[str, int], local: tuple[str, int]) -> int | None:
        family = socket.AF_INET6 if ":" in peer[0] else socket.AF_INET
        if self._netlink is None:
            self._netlink = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG)
            self._netlink.settimeout(_NETLINK_TIMEOUT_S)
        seq = next(self._seq)
        # inet_diag_sockid, from the client's side: it sent from peer to local.
        sockid = (
            struct.pack("!HH", peer[1], local[1])
            + _address16(family, peer[0])
            + _address16(family, local[0])
            + struct.pack("=III", 0, _INET_DIAG_NOCOOKIE, _INET_DIAG_NOCOOKIE)
        )
        body = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + sockid
        header = _NLMSG_HEADER.pack(
            _NLMSG_HEADER.size + len(body), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, seq, 0
        )
        self._netlink.send(header + body)
        for _ in range(8):  # skip stale replies to an earlier request that timed out
            reply = self._netlink.recv(8192)
            if len(reply) < _NLMSG_HEADER.size:
                return None
            _, kind, _, reply_seq, _ = _NLMSG_HEADER.unpack_from(reply)
            if reply_seq != seq:
                continue
            if kind == _NLMSG_ERROR:
                return None  # ENOENT: no such socket (the client went away)
            if kind != _SOCK_DIAG_BY_FAMILY or len(reply) < _INODE_OFFSET + 4:
                return None
            (inode,) = struct.unpack_from("=I", reply, _INODE_OFFSET)
            return inode or None  # 0: a TIME_WAIT socket, owned by no one
        return None

    def close(self) -> None:
        if self._netlink is not None:
            with contextlib.suppress(OSError):
                self._netlink.close()
            self._netlink = None


def proc_net_inode(peer: tuple[str, int], local: tuple[str, int]) -> int | None:
    """The same lookup through /proc/net/tcp{,6}: slower, as it lists every socket."""
    family = socket.AF_INET6 if ":" in peer[0] else socket.AF_INET
    table = "/proc/net/tcp6" if family == socket.AF_INET6 else "/proc/net/tcp"
    want_local = _proc_address(family, peer)
    want_remote = _proc_address(family, local)
    try:
        with open(table, "rb") as handle:
            next(handle, None)  # the column titles
            for line in handle:
                fields = line.split()
                if len(fields) > 9 and fields[1] == want_local and fields[2] == want_remote:
                    return int(fields[9]) or None
    except (OSError, ValueError):
        return None
    return None


def holds_socket(pid: int, inode: int) -> bool:
    """Does `pid`, or a process descended from it, hold the socket with this inode?"""
    target = f"socket:[{inode}]"
    for member in _family(pid):
        fd_dir = f"/proc/{member}/fd"
        try:
            fds = sorted((int(fd) for fd in os.listdir(fd_dir)), reverse=True)
        except (OSError, ValueError):
            continue  # gone, or not ours to look at
        for fd in fds:
            with contextlib.suppress(OSError):
                if os.readlink(f"{fd_dir}/{fd}") == target:
                    return True
    return False


def _family(pid: int) -> Iterator[int]:
    """`pid`, then its descendants breadth first (at most MAX_FAMILY), listed only if asked."""
    queue = deque([pid])
    for _ in range(MAX_FAMILY):
        if not queue:
            return
        member = queue.popleft()
        yield member
        try:
            tids = os.listdir(f"/proc/{member}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{member}/task/{tid}/children", "rb") as handle:
                    queue.extend(int(child) for child in handle.read().split())
            except (OSError, ValueError):
                continue


def _address16(family: int, host: str) -> bytes:
    packed = socket.inet_pton(family, host)
    return packed + b"\0" * (16 - len(packed))


def _proc_address(family: int, address: tuple[str, int]) -> bytes:
    """ADDR:PORT as /proc/net/tcp prints it: each 32-bit word in host byte order."""
    packed = socket.inet_pton(family, address[0])
    if sys.byteorder == "little":
        packed = b"".join(packed[i : i + 4][::-1] for i in range(0, len(packed), 4))
    return b"%s:%04X" % (packed.hex().upper().encode(), address[1])
