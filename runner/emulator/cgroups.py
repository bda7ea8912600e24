"""Memory → CPU fidelity: one cgroup per sandbox with Lambda's CPU share and memory limit.

Lambda gives a function CPU in proportion to its memory (1,769 MB = one vCPU). Each sandbox
gets a CFS quota of memory/1769 of one CPU per 20 ms period and a memory limit of its memory
size. Init runs unthrottled, then the share applies (`EMULATOR_FACTS.md`: this reproduces
the tutorial's 128/1024 MB cold starts, 2.7 s vs 0.40 s, where throttled init gave 5.2 s).

Three implementations behind one interface, picked by what the host allows:
cgroup v1 (cpu + memory controllers), cgroup v2 (cpu.max + memory.max), or none, where the
pool paces invocations by their measured CPU time instead and results say
`fidelity: degraded`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# 1,769 MB buys one full vCPU (AWS Lambda documentation, "Memory and computing power").
MB_PER_VCPU = 1769
# Lambda's throttling appears to work in 20 ms steps; a 100 ms period flattened the
# 128/1024 MB ratio to 1.5-1.7 instead of the tutorial's 2.97 (EMULATOR_FACTS.md).
CFS_PERIOD_US = 20_000
# The kernel's floor for cfs_quota_us.
MIN_QUOTA_US = 1_000
CGROUP_ROOT = Path(os.environ.get("MEMSWEEP_CGROUP_ROOT", "/sys/fs/cgroup"))
GROUP_PREFIX = "memsweep"
# A reaped process can leave its cgroup busy for a moment.
RMDIR_RETRY_S = 2.0


def cpu_share(memory_mb: int) -> float:
    """Fraction of one CPU Lambda gives a function of this memory size."""
    return memory_mb / MB_PER_VCPU


def cpu_quota_us(memory_mb: int, correction: float = 1.0, period_us: int = CFS_PERIOD_US) -> int:
    """CFS quota per period; `correction` makes up for what the mechanism fails to deliver."""
    return max(MIN_QUOTA_US, round(period_us * cpu_share(memory_mb) * correction))


class SandboxGroup(Protocol):
    """The limits of one sandbox process."""

    def attach_self(self) -> None:
        """Move the calling process in (run in the child before exec)."""

    def unthrottle(self) -> None: ...

    def throttle(self, memory_mb: int, correction: float = 1.0) -> None: ...

    def remove(self) -> None: ...


class Limiter(Protocol):
    """Creates sandbox groups; `fidelity` says how faithfully it models Lambda."""

    mode: str
    fidelity: str

    def create(self, name: str, *, memory_mb: int) -> SandboxGroup: ...

    def cleanup_stale(self) -> None: ...


def _write(path: Path, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


def _rmdir(path: Path) -> None:
    deadline = time.monotonic() + RMDIR_RETRY_S
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class _V1Group:
    cpu: Path
    memory: Path

    def attach_self(self) -> None:
        pid = str(os.getpid())
        _write(self.cpu / "cgroup.procs", pid)
        _write(self.memory / "cgroup.procs", pid)

    def unthrottle(self) -> None:
        _write(self.cpu / "cpu.cfs_quota_us", "-1")

    def throttle(self, memory_mb: int, correction: float = 1.0) -> None:
        _write(self.cpu / "cpu.cfs_quota_us", str(cpu_quota_us(memory_mb, correction)))

    def remove(self) -> None:
        _rmdir(self.cpu)
        _rmdir(self.memory)


class CgroupV1Limiter:
    mode = "cgroup-v1"
    fidelity = "full"

    def __init__(self, *, root: Path = CGROUP_ROOT) -> None:
        self.cpu_root = root / "cpu" / GROUP_PREFIX
        self.memory_root = root / "memory" / GROUP_PREFIX

    @classmethod
    def available(cls, *, root: Path = CGROUP_ROOT) -> bool:
        limiter = cls(root=root)
        try:
            for parent in (limiter.cpu_root, limiter.memory_root):
                parent.mkdir(exist_ok=True)
                probe = parent / f"probe-{os.getpid()}"
                probe.mkdir(exist_ok=True)
                try:
                    target = "cpu.cfs_period_us" if parent == limiter.cpu_root else None
                    if target:
                        _write(probe / target, str(CFS_PERIOD_US))
                finally:
                    _rmdir(probe)
        except OSError:
            return False
        return True

    def create(self, name: str, *, memory_mb: int) -> _V1Group:
        group = _V1Group(cpu=self.cpu_root / name, memory=self.memory_root / name)
        group.cpu.mkdir(parents=True, exist_ok=True)
        group.memory.mkdir(parents=True, exist_ok=True)
        try:
            _write(group.cpu / "cpu.cfs_period_us", str(CFS_PERIOD_US))
            _write(group.cpu / "cpu.cfs_quota_us", "-1")
            _write(group.memory / "memory.limit_in_bytes", str(memory_mb << 20))
        except OSError:
            group.remove()
            raise
        return group

    def cleanup_stale(self) -> None:
        _remove_dead_owner_groups([self.cpu_root, self.memory_root])


@dataclass
class _V2Group:
    path: Path

    def attach_self(self) -> None:
        _write(self.path / "cgroup.procs", str(os.getpid()))

    def unthrottle(self) -> None:
        _write(self.path / "cpu.max", f"max {CFS_PERIOD_US}")

    def throttle(self, memory_mb: int, correction: float = 1.0) -> None:
        _write(self.path / "cpu.max", f"{cpu_quota_us(memory_mb, correction)} {CFS_PERIOD_US}")

    def remove(self) -> None:
        _rmdir(self.path)


class CgroupV2Limiter:
    mode = "cgroup-v2"
    fidelity = "full"

    def __init__(self, *, root: Path = CGROUP_ROOT) -> None:
        self.parent = root / GROUP_PREFIX

    @classmethod
    def available(cls, *, root: Path = CGROUP_ROOT) -> bool:
        if not (root / "cgroup.controllers").exists():
            return False
        limiter = cls(root=root)
        try:
            limiter.parent.mkdir(exist_ok=True)
            _write(root / "cgroup.subtree_control", "+cpu +memory")
            _write(limiter.parent / "cgroup.subtree_control", "+cpu +memory")
            controllers = (limiter.parent / "cgroup.subtree_control").read_text().split()
        except OSError:
            return False
        return {"cpu", "memory"} <= set(controllers)

    def create(self, name: str, *, memory_mb: int) -> _V2Group:
        group = _V2Group(path=self.parent / name)
        group.path.mkdir(exist_ok=True)
        try:
            group.unthrottle()
            _write(group.path / "memory.max", str(memory_mb << 20))
            _write(group.path / "memory.swap.max", "0")
        except OSError:
            group.remove()
            raise
        return group

    def cleanup_stale(self) -> None:
        _remove_dead_owner_groups([self.parent])


class _NoGroup:
    def attach_self(self) -> None:
        return None

    def unthrottle(self) -> None:
        return None

    def throttle(self, memory_mb: int, correction: float = 1.0) -> None:
        return None

    def remove(self) -> None:
        return None


class PacingLimiter:
    """No writable cgroup: the pool stretches each invocation by its CPU time instead."""

    mode = "cpu-time-pacing"
    fidelity = "degraded"

    def create(self, name: str, *, memory_mb: int) -> _NoGroup:
        return _NoGroup()

    def cleanup_stale(self) -> None:
        return None


def _remove_dead_owner_groups(parents: list[Path]) -> None:
    """Remove groups left by a runner that was killed (named <owner pid>-<n>)."""
    for parent in parents:
        if not parent.is_dir():
            continue
        for child in parent.iterdir():
            owner = child.name.split("-", 1)[0]
            if child.is_dir() and owner.isdigit() and not _pid_alive(int(owner)):
                with contextlib.suppress(OSError):
                    _rmdir(child)


def detect_limiter(preference: str = "auto") -> Limiter:
    """The most faithful limiter this host allows (`preference`: auto, v1, v2 or none)."""
    preference = os.environ.get("MEMSWEEP_CGROUP", preference)
    if preference in ("auto", "v1") and CgroupV1Limiter.available():
        return CgroupV1Limiter()
    if preference in ("auto", "v2") and CgroupV2Limiter.available():
        return CgroupV2Limiter()
    return PacingLimiter()


# A CPU-bound child measures the share it actually gets: with HZ=250 the kernel enforces
# quotas in 4 ms ticks, so 128 MB got ~9 % here, not the nominal 7.2 % (EMULATOR_FACTS.md).
_SPIN = (
    "import time\n"
    "wall0, cpu0 = time.perf_counter(), time.process_time()\n"
    "while time.perf_counter() - wall0 < {seconds}:\n"
    "    pass\n"
    "print((time.process_time() - cpu0) / (time.perf_counter() - wall0))\n"
)
CALIBRATION_S = 0.5


def measure_cpu_share(
    limiter: Limiter,
    memory_mb: int | None,
    *,
    correction: float = 1.0,
    seconds: float = CALIBRATION_S,
) -> float:
    """Fraction of one CPU a CPU-bound sandbox gets here (memory None: unthrottled)."""
    if limiter.fidelity == "degraded":
        return min(1.0, cpu_share(memory_mb)) if memory_mb else 1.0  # modelled, not enforced
    group = limiter.create(f"{os.getpid()}-calibrate", memory_mb=memory_mb or MB_PER_VCPU)
    try:
        if memory_mb is not None:
            group.throttle(memory_mb, correction)
        done = subprocess.run(
            [sys.executable, "-S", "-c", _SPIN.format(seconds=seconds)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
            preexec_fn=group.attach_self,
        )
        return float(done.stdout.strip())
    finally:
        group.remove()


# The quota correction is bounded: a probe on a very busy host must not hand out wild shares.
MAX_CORRECTION = 1.5
MIN_CORRECTION = 0.7


@dataclass(frozen=True)
class Calibration:
    """What a memory size's quota delivers here, before and after correction."""

    memory_mb: int
    nominal_share: float  # memory / 1769, capped at one CPU
    host_share: float  # what an unthrottled probe got (the host is not idle)
    measured_share: float  # what a probe got with the corrected quota
    correction: float  # quota multiplier

    @property
    def relative_share(self) -> float:
        """Measured share relative to an unthrottled process here: compare to nominal_share."""
        return self.measured_share / self.host_share if self.host_share else float("nan")


def calibrate(limiter: Limiter, memory_mb: int) -> Calibration:
    """Measure the achieved share and correct the quota so the ratio to full speed is Lambda's.

    A 20 ms period under-delivers small quotas here (128 MB got ~6.5 % of a CPU for a nominal
    7.2 %, making CPU-bound work 15.5x slower than at 1769 MB instead of 13.8x).
    """
    nominal = min(1.0, cpu_share(memory_mb))
    host = measure_cpu_share(limiter, None)
    if nominal >= 1.0 or limiter.fidelity == "degraded":
        measured = measure_cpu_share(limiter, memory_mb) if nominal < 1.0 else host
        return Calibration(memory_mb, nominal, host, measured, 1.0)
    first = measure_cpu_share(limiter, memory_mb)
    correction = 1.0
    if first > 0:
        correction = min(MAX_CORRECTION, max(MIN_CORRECTION, nominal * host / first))
    measured = measure_cpu_share(limiter, memory_mb, correction=correction)
    return Calibration(memory_mb, nominal, host, measured, correction)
