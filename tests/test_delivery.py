"""Was the modelled CPU share delivered? Real sandboxes, cgroups and busy loops on every core."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner.control_api import CFS_PERIOD_US, DELIVERY_COUNTERS, DELIVERY_PATH, Delivery
from runner.emulator._cgroups import (
    HOST_IDLE_MIN_SHARE,
    MAX_CORRECTION,
    MIN_CORRECTION,
    CgroupV1Limiter,
    calibrate,
)
from runner.targets import LocalStackProcess
from tests.conftest import BEHAVIOURS_HANDLER, HANDLERS_DIR, StartStack, stack_args
from tests.test_local_stack import call

DELIVERY_KEYS = set(typing.get_type_hints(Delivery))
# "Quiet": under 10 % of the machine's CPU busy for a second, waited for up to a minute.
QUIET_BUSY_MAX = 0.10
QUIET_WAIT_S = 60.0
# Hard limit on each busy loop, in case the finally that kills them never runs.
HOG_LIMIT_S = 20.0
_HOG = (
    "import os, sys, time\n"
    "os.sched_setaffinity(0, {int(sys.argv[1])})\n"
    "end = time.monotonic() + float(sys.argv[2])\n"
    "while time.monotonic() < end:\n"
    "    pass\n"
)


@contextlib.contextmanager
def busy_host() -> Iterator[None]:
    """One pure-Python busy loop pinned to each core this process may use."""
    hogs: list[subprocess.Popen[bytes]] = []
    try:
        for cpu in sorted(os.sched_getaffinity(0)):
            hogs.append(
                subprocess.Popen([sys.executable, "-S", "-c", _HOG, str(cpu), str(HOG_LIMIT_S)])
            )
        time.sleep(0.3)  # spinning before anything is measured
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def host_busy_share(seconds: float = 1.0) -> float:
    """Fraction of this machine's CPU time spent busy over `seconds` (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields[:8]) - idle, sum(fields[:8])

    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return (busy1 - busy0) / max(1, total1 - total0)


def wait_for_quiet_host(timeout_s: float = QUIET_WAIT_S) -> float:
    """Wait for a second with the machine nearly idle (others may run tests here too)."""
    deadline = time.monotonic() + timeout_s
    busy = host_busy_share()
    while busy > QUIET_BUSY_MAX and time.monotonic() < deadline:
        busy = host_busy_share()
    return busy


def require_cgroup_v1() -> None:
    if not CgroupV1Limiter.available():
        pytest.skip("no writable cgroup v1 cpu/memory hierarchy on this host")


@pytest.fixture(scope="module")
def cpu_stack(start_module_stack: StartStack) -> LocalStackProcess:
    """A CPU-bound handler at 128 MB (nominal 7.2 % of a CPU), quota uncorrected."""
    stack = start_module_stack(*stack_args(memory_mb=128, handler=BEHAVIOURS_HANDLER, timeout_s=30))
    if stack.status()["fidelity"] != "full":
        stack.stop()  # not left running beside the module's other tests
        pytest.skip("no writable cgroup on this host: no quota to measure delivery of")
    return stack


def spin_for(stack: LocalStackProcess, seconds: float) -> None:
    """Back-to-back CPU-bound calls (~25 ms of CPU each at full speed) for `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert call(stack, {"action": "spin", "units": 30}).status == 200


def grown(before: Delivery, after: Delivery) -> dict[str, int]:
    return {key: after[key] - before[key] for key in DELIVERY_COUNTERS}


def test_given_cpu_bound_calls_at_128_mb_then_delivery_shows_the_quota_share_was_delivered(
    cpu_stack: LocalStackProcess,
) -> None:
    assert call(cpu_stack, {"action": "ping"}).status == 200  # the cold start: not counted
    before = cpu_stack.delivery()
    spin_for(cpu_stack, 2.0)
    after = cpu_stack.delivery()

    # the stack sends exactly the keys both ends declare (the client keeps only those)
    assert set(cpu_stack._control("GET", DELIVERY_PATH)) == DELIVERY_KEYS
    assert after["mode"] == cpu_stack.status()["cgroup"]
    assert after["memory_mb"] == 128 and after["at"] > before["at"]
    assert after["nominal_share"] == pytest.approx(128 / 1769)
    assert after["quota_share"] == pytest.approx(128 / 1769, rel=0.01)  # uncorrected
    assert all(isinstance(after[key], int) for key in DELIVERY_COUNTERS)
    delta = grown(before, after)
    assert delta["cpu_ns"] > 0 and delta["nr_throttled"] > 0, delta
    assert delta["run_delay_ns"] >= delta["throttled_ns"] * 0.5, delta  # throttling is waiting
    share = delta["cpu_ns"] / (delta["nr_periods"] * CFS_PERIOD_US * 1000)
    assert 0.3 * after["quota_share"] < share < 3 * after["quota_share"], (share, delta)
    assert after["sandboxes_counted"] >= 1


def test_given_a_memory_change_then_the_retired_sandboxes_counters_are_kept(
    cpu_stack: LocalStackProcess,
) -> None:
    spin_for(cpu_stack, 0.5)
    before = cpu_stack.delivery()
    try:
        status = cpu_stack.set_memory(256)
        after = cpu_stack.delivery()
    finally:
        cpu_stack.set_memory(128)

    assert status["sandboxes"] == 0  # every sandbox retired: only retired counters are left
    assert all(after[key] >= before[key] for key in DELIVERY_COUNTERS), (before, after)
    assert after["sandboxes_counted"] >= before["sandboxes_counted"] >= 1
    assert after["samples_lost"] == before["samples_lost"]
    assert after["memory_mb"] == 256 and after["nominal_share"] == pytest.approx(256 / 1769)


def test_given_a_sandbox_that_dies_by_itself_then_it_is_a_lost_sample_and_nothing_goes_back(
    cpu_stack: LocalStackProcess,
) -> None:
    spin_for(cpu_stack, 0.3)
    before = cpu_stack.delivery()
    assert call(cpu_stack, {"action": "crash"}).status == 502
    after = cpu_stack.delivery()

    assert after["samples_lost"] == before["samples_lost"] + 1
    assert all(after[key] >= before[key] for key in DELIVERY_COUNTERS), (before, after)


def test_given_a_quiet_host_then_calibration_is_accepted() -> None:
    require_cgroup_v1()
    busy = wait_for_quiet_host()
    result = calibrate(CgroupV1Limiter(), 128)
    assert result.refused == "", (f"host {busy:.0%} busy just before", result)
    assert result.host_share >= HOST_IDLE_MIN_SHARE
    assert MIN_CORRECTION <= result.correction <= MAX_CORRECTION
    assert result.measured_share < 0.5 * result.host_share  # the quota visibly holds it back


def test_given_a_busy_loop_on_every_core_then_calibration_is_refused_naming_the_host_share() -> (
    None
):
    require_cgroup_v1()
    with busy_host():
        started = time.monotonic()
        result = calibrate(CgroupV1Limiter(), 128)
        elapsed = time.monotonic() - started
    assert result.refused.startswith("host busy: an unthrottled probe got "), result
    assert f"{result.host_share:.2f} of a CPU" in result.refused
    assert result.host_share < HOST_IDLE_MIN_SHARE
    assert result.correction == 1.0
    assert result.attempts == 2  # retried once, then refused
    assert elapsed < HOG_LIMIT_S  # refused while the host was still busy


def test_given_a_refused_calibration_then_the_stack_says_fidelity_degraded_and_why(
    config_json: Path,
    tmp_path: Path,
) -> None:
    require_cgroup_v1()
    wait_for_quiet_host()  # the start-up calibration (1769 MB) should be accepted
    stack = LocalStackProcess(
        [
            "--config-json",
            str(config_json),
            "--log",
            str(tmp_path / "lambda.log"),
            "--handler",
            "behaviours.lambda_handler",
            "--code-dir",
            str(HANDLERS_DIR),
            "--memory",
            "1769",
            "--no-usage-plan-throttle",
        ]
    )
    with stack:
        quiet = stack.status()
        with busy_host():
            busy = stack.set_memory(128)
        assert call(stack, {"action": "ping"}).status == 200  # still serves, uncorrected

    assert (quiet["fidelity"], quiet["calibration_refused"]) == ("full", "")
    assert busy["fidelity"] == "degraded"
    assert busy["calibration_refused"].startswith("host busy: an unthrottled probe got ")
    assert busy["cpu_quota_correction"] == 1.0
