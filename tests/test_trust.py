"""The step's trust record: CPU delivery, load generator and host checks (pure judgement)."""

from __future__ import annotations

from pathlib import Path

from runner.analysis import host_snapshot
from runner.analysis._trust import HostSnapshot, cpu_delivery, judge
from runner.control_api import Delivery

MS = 1_000_000  # ns


def snapshot(
    *,
    cpu_ms: float,
    delay_ms: float,
    throttled_ms: float,
    periods: int,
    throttled: int,
    started: int = 3,
    start_failures: int = 0,
) -> Delivery:
    return {
        "at": 0.0,
        "memory_mb": 512,
        "nominal_share": 512 / 1769,
        "quota_share": 512 / 1769,
        "mode": "cgroup-v1",
        "cpu_ns": round(cpu_ms * MS),
        "run_delay_ns": round(delay_ms * MS),
        "throttled_ns": round(throttled_ms * MS),
        "nr_periods": periods,
        "nr_throttled": throttled,
        "sandboxes_counted": 3,
        "samples_lost": 0,
        "sandboxes_started": started,
        "start_failures": start_failures,
        "last_start_failure": "sandbox 7 failed to start: [Errno 11] Resource temporarily "
        "unavailable"
        if start_failures
        else "",
    }


ZERO = snapshot(cpu_ms=0, delay_ms=0, throttled_ms=0, periods=0, throttled=0)


def test_given_sandboxes_that_got_their_quota_then_the_step_is_trusted() -> None:
    # 500 periods of 20 ms, each using 5.79 ms (512/1769 of 20 ms), throttled in 400 of them;
    # the run-queue wait is almost all throttling.
    cpu = cpu_delivery(
        ZERO, snapshot(cpu_ms=2894, delay_ms=7200, throttled_ms=7000, periods=500, throttled=400)
    )
    trust = judge(memory_mb=512, cpu=cpu, generator_cpu={"w1": [40, 45]}, host_before=None,
                  host_after=None)  # fmt: skip
    assert not trust.degraded, trust.causes
    assert cpu.per_period_share is not None and abs(cpu.per_period_share - 512 / 1769) < 0.01
    assert cpu.host_wait_share is not None and cpu.host_wait_share < 0.05


def test_given_a_host_that_kept_sandboxes_waiting_then_saturation_is_the_cause() -> None:
    cpu = cpu_delivery(
        ZERO, snapshot(cpu_ms=1000, delay_ms=3000, throttled_ms=500, periods=400, throttled=50)
    )
    trust = judge(memory_mb=1024, cpu=cpu, generator_cpu={}, host_before=None, host_after=None)
    assert trust.degraded
    assert trust.causes[0].startswith("host saturated: 1024 MB sandboxes got 29% of the CPU")


def test_given_a_quota_that_let_more_through_than_memory_1769_then_the_share_is_off() -> None:
    # Throttled in most periods, yet 8 ms per 20 ms period: 38 % more than 512/1769.
    cpu = cpu_delivery(
        ZERO, snapshot(cpu_ms=4000, delay_ms=6100, throttled_ms=6000, periods=500, throttled=450)
    )
    trust = judge(memory_mb=512, cpu=cpu, generator_cpu={}, host_before=None, host_after=None)
    assert trust.degraded
    assert "CPU share off: 512 MB sandboxes got at least 0.400 of a CPU" in trust.causes[0]
    assert "more than memory/1769 = 0.289" in trust.causes[0]


def test_given_throttled_periods_that_got_too_little_then_the_share_is_off() -> None:
    # 450 of 500 periods throttled, yet at most 2.2 ms of CPU in each: 62 % short of 5.79.
    cpu = cpu_delivery(
        ZERO, snapshot(cpu_ms=1000, delay_ms=8200, throttled_ms=8100, periods=500, throttled=450)
    )
    trust = judge(memory_mb=512, cpu=cpu, generator_cpu={}, host_before=None, host_after=None)
    assert trust.causes == [
        "CPU share off: 512 MB sandboxes got at most 0.111 of a CPU per throttled period, "
        "62% less than memory/1769 = 0.289"
    ]


def test_given_an_io_bound_handler_then_per_period_cpu_is_not_judged_against_the_quota() -> None:
    # Rarely throttled: the quota did not bind, so low CPU per period says nothing.
    cpu = cpu_delivery(
        ZERO, snapshot(cpu_ms=300, delay_ms=10, throttled_ms=0, periods=500, throttled=3)
    )
    trust = judge(memory_mb=512, cpu=cpu, generator_cpu={}, host_before=None, host_after=None)
    assert not trust.degraded


def test_given_a_locust_worker_at_a_full_core_then_the_generator_is_the_cause() -> None:
    trust = judge(
        memory_mb=256,
        cpu=None,
        generator_cpu={"quiet": [20.0, 25.0], "busy": [95.0, 99.0, 97.0]},
        host_before=None,
        host_after=None,
    )
    assert trust.degraded and trust.generator_cpu_max == 99.0
    assert trust.causes == [
        "load generator saturated: worker busy averaged 97 % of a core "
        "(its timers and latency records run late)"
    ]


def test_given_steal_above_a_tenth_then_the_vm_is_the_cause() -> None:
    before = HostSnapshot(at=0.0, steal=100, total=10_000, pressure_some_us=0)
    after = HostSnapshot(at=10.0, steal=400, total=12_000, pressure_some_us=2_000_000)
    trust = judge(memory_mb=128, cpu=None, generator_cpu={}, host_before=before, host_after=after)
    assert trust.steal == 0.15 and trust.pressure == 0.2
    assert trust.causes == ["hypervisor steal: the VM lost 15% of its CPU time"]


def test_given_this_machines_proc_then_a_host_snapshot_reads_its_counters(tmp_path: Path) -> None:
    (tmp_path / "pressure").mkdir()
    (tmp_path / "stat").write_text("cpu  10 0 5 80 1 0 0 4 0 0\ncpu0 1 0 0 0 0 0 0 0 0 0\n")
    (tmp_path / "pressure" / "cpu").write_text(
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=1234\n"
    )
    snap = host_snapshot(5.0, proc=tmp_path)
    assert snap == HostSnapshot(at=5.0, steal=4, total=100, pressure_some_us=1234, idle=81)
    assert host_snapshot(1.0) is not None  # and the real one is readable here


def test_given_a_cold_start_storm_then_the_busy_host_is_the_cause() -> None:
    # GIVEN a step whose sandboxes ran 0.01 s (they were still starting: init is not counted)
    # while the host's CPUs were 97 % busy
    # and 412 sandboxes started, for 3000 users asked of which Locust had spawned 1800
    cpu = cpu_delivery(
        snapshot(cpu_ms=0, delay_ms=0, throttled_ms=0, periods=0, throttled=0, started=3),
        snapshot(cpu_ms=10, delay_ms=0, throttled_ms=0, periods=2, throttled=0, started=415),
    )
    before = HostSnapshot(at=0.0, steal=0, total=10_000, pressure_some_us=0, idle=5_000)
    after = HostSnapshot(at=5.0, steal=0, total=11_000, pressure_some_us=4_000_000, idle=5_030)
    trust = judge(
        memory_mb=128,
        cpu=cpu,
        generator_cpu={},
        host_before=before,
        host_after=after,
        users_spawned=1800,
        users_asked=3000,
    )
    # THEN the step says what the host was doing (it recorded "0.00 s" and no cause)
    assert trust.host_busy == 0.97 and trust.pressure == 0.8
    assert trust.causes == [
        "host saturated: its CPUs were 97% busy, some task waited for a CPU 80% of the time, "
        "412 sandboxes started for 3000 users asked, Locust had spawned 1800 of the 3000 users, "
        "while the 128 MB sandboxes ran 0.01 s (starting sandboxes run their init unthrottled "
        "and uncounted: a cold-start storm, or other work on the host)"
    ]
    # AND a quiet host with as little sandbox CPU is not a cause
    idle = HostSnapshot(at=5.0, steal=0, total=11_000, pressure_some_us=0, idle=5_800)
    assert not judge(
        memory_mb=128, cpu=cpu, generator_cpu={}, host_before=before, host_after=idle
    ).degraded


def test_given_sandboxes_the_host_could_not_start_then_the_window_counts_them() -> None:
    # GIVEN two snapshots between which the pool failed to start 2 sandboxes
    cpu = cpu_delivery(
        ZERO,
        snapshot(cpu_ms=900, delay_ms=0, throttled_ms=0, periods=90, throttled=0, start_failures=2),
    )
    # THEN the window's record names them and the last error (measure_step fails the step)
    assert cpu.start_failures == 2
    assert cpu.last_start_failure.endswith("[Errno 11] Resource temporarily unavailable")
    assert cpu.sandboxes_started == 0
