"""Real network hosts on one machine: network namespaces on a private bridge.

Each host is a network namespace with its own loopback and one veth into a hub namespace that
holds a bridge; the test process (root namespace) joins the same bridge as an observer, so it
can reach every host. Links are cut on the hub side (`ip link set ... down`), which is what a
pulled cable or a dead switch port looks like to both ends. Processes enter a host with
`nsenter --net` (not `ip netns exec`, which remounts /sys and would hide the cgroup
controllers the local stack needs). Everything is removed in `close()`, also after a failed
test; names carry this process's id, and leftovers of a crashed run are removed on start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

PREFIX = "msw"  # every namespace and interface this module creates starts with it
SUBNET = "10.213.57"  # a /24 nobody routes; hosts get .1, .2, ...; the observer .254


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=20)


def available() -> str:
    """'' if network namespaces can be created here, else why not (the skip reason)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"{PREFIX}probe{os.getpid()}"
    done = _ip("netns", "add", probe, check=False)
    if done.returncode != 0:
        return f"cannot create a network namespace: {done.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return ""


def remove_leftovers() -> None:
    """Namespaces from a run that was killed before it could clean up."""
    listing = _ip("netns", "list", check=False).stdout
    for line in listing.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(PREFIX):
            _kill_namespace_processes(name)
            _ip("netns", "del", name, check=False)
    for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
        parts = line.split(":")
        if len(parts) > 1 and parts[1].strip().split("@")[0].startswith(PREFIX):
            _ip("link", "del", parts[1].strip().split("@")[0], check=False)


def _kill_namespace_processes(namespace: str) -> None:
    pids = _ip("netns", "pids", namespace, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


@dataclass
class Host:
    name: str  # short, e.g. "master"
    namespace: str
    address: str
    hub_link: str  # the veth end in the hub: down = this host is cut off


@dataclass
class Network:
    """A private LAN of hosts; a context manager that always tears it down."""

    tag: str = field(default_factory=lambda: str(os.getpid() % 100000))
    hosts: dict[str, Host] = field(default_factory=dict)
    processes: list[subprocess.Popen[Any]] = field(default_factory=list)
    logs: list[IO[Any]] = field(default_factory=list)

    @property
    def hub(self) -> str:
        return f"{PREFIX}{self.tag}hub"

    def __enter__(self) -> Network:
        remove_leftovers()
        _ip("netns", "add", self.hub)
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        _ip("-n", self.hub, "link", "set", "lo", "up")
        # The observer (this test process) on the same bridge.
        outside, inside = f"{PREFIX}{self.tag}o", f"{PREFIX}{self.tag}ob"
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside, "netns", self.hub)
        _ip("-n", self.hub, "link", "set", inside, "master", "br0", "up")
        _ip("addr", "add", f"{SUBNET}.254/24", "dev", outside)
        _ip("link", "set", outside, "up")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_host(self, name: str) -> Host:
        index = len(self.hosts) + 1
        namespace = f"{PREFIX}{self.tag}{name}"[:15]
        _ip("netns", "add", namespace)
        _ip("-n", namespace, "link", "set", "lo", "up")
        inner, hub_side = f"{PREFIX}{self.tag}e{index}", f"{PREFIX}{self.tag}h{index}"
        _ip(
            "link",
            "add",
            inner,
            "netns",
            namespace,
            "type",
            "veth",
            "peer",
            "name",
            hub_side,
            "netns",
            self.hub,
        )
        _ip("-n", self.hub, "link", "set", hub_side, "master", "br0", "up")
        _ip("-n", namespace, "addr", "add", f"{SUBNET}.{index}/24", "dev", inner)
        _ip("-n", namespace, "link", "set", inner, "up")
        host = Host(name, namespace, f"{SUBNET}.{index}", hub_side)
        self.hosts[name] = host
        return host

    def start(
        self,
        host: Host,
        argv: list[str],
        *,
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[Any]:
        """A process on `host`, in its own process group, output to `log`."""
        out = open(log, "w")  # noqa: SIM115 - closed in close()
        self.logs.append(out)
        process = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{host.namespace}", "--", *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def run(
        self, host: Host, argv: list[str], timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["nsenter", f"--net=/run/netns/{host.namespace}", "--", *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def cut(self, host: Host) -> None:
        _ip("-n", self.hub, "link", "set", host.hub_link, "down")

    def restore(self, host: Host) -> None:
        _ip("-n", self.hub, "link", "set", host.hub_link, "up")

    def pids(self, host: Host) -> list[int]:
        return [
            int(pid) for pid in _ip("netns", "pids", host.namespace, check=False).stdout.split()
        ]

    def close(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        for host in self.hosts.values():
            _kill_namespace_processes(host.namespace)
        deadline = time.monotonic() + 10
        for host in self.hosts.values():
            while self.pids(host) and time.monotonic() < deadline:
                time.sleep(0.05)
            _ip("netns", "del", host.namespace, check=False)
        _ip("netns", "del", self.hub, check=False)  # takes the observer's veth with it
        for out in self.logs:
            out.close()
