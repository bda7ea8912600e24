"""Many machines and bad days: the swarm across real network hosts, and its faults.

Hosts are network namespaces on a private bridge (tests/netns.py): one runs the target (the
local stack, bound to its LAN address), one the master (`python -m runner`), the others
workers (`python -m runner worker --master-host <master>`). The fault matrix, with how each
fault is injected and what must happen, is in tests/README.md and is kept true by these tests.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runner.results import Results, read_results
from runner.stack import PROJECT_ROOT
from tests import netns
from tests.test_local_stack import wait_until

REASON = netns.available()
pytestmark = pytest.mark.skipif(bool(REASON), reason=REASON or "")

API_KEY = "multihost-test-key-0123456789"
MASTER_PORT = 5557
STACK_PORT = 8080
# Locust marks a silent worker missing after ~3 missed 1 s heartbeats; the fault matrix's bound
# (tests/README.md: detected within 10 s).
DETECTION_BOUND_S = 10.0
# A worker quits after this much silence from its master (runner/load/locustfile.py).
WORKER_GIVES_UP_S = 15 + 10

SCENARIO = """\
name: across hosts
target: {{kind: url, url: "{url}", api_key: {key}}}
sweep: {{memory_mb: [128, 1024], warmup_s: 1}}
load:
  stages: [{{users: {users}, duration_s: {duration}}}]
  think_time: {{min_s: 0.02, max_s: 0.06}}
requests:
  - name: create
    weight: 2
    body: {{operation: create, payload: {{Item: {{id: "{{{{uuid}}}}", n: "{{{{int:1:9}}}}"}}}}}}
  - name: read
    body: {{operation: read, payload: {{Key: {{id: "{{{{seeded}}}}"}}}}}}
seed: {{items: 5}}
workers: {{local: 0, expect_remote: {workers}, wait_s: {wait}}}
"""


class Lan:
    """The module's network: a target host with a local stack, a master, three workers."""

    def __init__(self, network: netns.Network, logs: Path) -> None:
        self.network = network
        self.logs = logs
        self.target = network.add_host("target")
        self.master = network.add_host("master")
        self.workers = [network.add_host(f"w{i}") for i in (1, 2, 3)]
        self.url = self.start_stack(STACK_PORT)

    def start_stack(self, port: int, *, host: str | None = None) -> str:
        """`python -m runner local` on the target host; returns its URL once it answers."""
        bind = host or self.target.address
        log = self.logs / f"stack-{port}.log"
        self.network.start(
            self.target,
            [
                sys.executable,
                "-m",
                "runner",
                "local",
                "--host",
                bind,
                "--port",
                str(port),
                "--api-key",
                API_KEY,
                "--memory",
                "1024",
                "--no-calibrate",
                "--json",
                "--no-usage-plan-throttle",
                "--log",
                str(self.logs / f"lambda-{port}.log"),
            ],
            log=log,
            cwd=PROJECT_ROOT,
        )
        ready: dict[str, Any] = {}

        def started() -> bool:
            for line in log.read_text().splitlines():
                if line.startswith("{") and '"ready"' in line:
                    ready.update(json.loads(line))
            return bool(ready)

        assert wait_until(started, 90), log.read_text()[-2000:]
        return str(ready["url"])

    def scenario(
        self,
        tmp_path: Path,
        *,
        url: str | None = None,
        workers: int = 2,
        users: int = 4,
        duration: float = 4,
        wait: float = 30,
    ) -> Path:
        path = tmp_path / "scenario.yaml"
        path.write_text(
            SCENARIO.format(
                url=url or self.url,
                key=API_KEY,
                workers=workers,
                users=users,
                duration=duration,
                wait=wait,
            )
        )
        return path

    def master_run(
        self, scenario: Path, tmp_path: Path, *args: str, bind: str | None = None
    ) -> subprocess.Popen[Any]:
        bind_args = [] if bind == "default" else ["--master-bind-host", bind or self.master.address]
        return self.network.start(
            self.master,
            [
                sys.executable,
                "-m",
                "runner",
                str(scenario),
                "--out",
                str(tmp_path / "reports"),
                "--run-id",
                "test",
                "--quiet",
                "--master-port",
                str(MASTER_PORT),
                *bind_args,
                *args,
            ],
            log=tmp_path / "master.log",
            cwd=PROJECT_ROOT,
        )

    def worker(
        self,
        index: int,
        tmp_path: Path,
        *,
        env: dict[str, str] | None = None,
        python_path: Path | None = None,
    ) -> subprocess.Popen[Any]:
        return self.network.start(
            self.workers[index],
            [
                sys.executable,
                "-m",
                "runner",
                "worker",
                "--master-host",
                self.master.address,
                "--master-port",
                str(MASTER_PORT),
            ],
            log=tmp_path / f"worker{index}.log",
            env=env,
            cwd=python_path or PROJECT_ROOT,
        )


@pytest.fixture(scope="module")
def lan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lan]:
    logs = tmp_path_factory.mktemp("lan")
    with netns.Network() as network:
        yield Lan(network, logs)


def finish(process: subprocess.Popen[Any], timeout: float = 120) -> int:
    return process.wait(timeout=timeout)


def log_of(tmp_path: Path, name: str = "master") -> str:
    return (tmp_path / f"{name}.log").read_text()


def results_of(tmp_path: Path) -> Results:
    return read_results(tmp_path / "reports" / "test" / "results.json")


def report_of(tmp_path: Path) -> str:
    return (tmp_path / "reports" / "test" / "report.html").read_text()


def loading(tmp_path: Path) -> bool:
    return "load running" in log_of(tmp_path)


def gone(process: subprocess.Popen[Any]) -> bool:
    return process.poll() is not None


def api(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "x-api-key": API_KEY},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def two_workers(lan: Lan, tmp_path: Path) -> list[subprocess.Popen[Any]]:
    return [lan.worker(0, tmp_path), lan.worker(1, tmp_path)]


# --- the happy path -----------------------------------------------------------------------


def test_given_a_sweep_across_hosts_then_all_workers_count_and_totals_add_up(
    lan: Lan, tmp_path: Path
) -> None:
    master = lan.master_run(lan.scenario(tmp_path), tmp_path)
    workers = two_workers(lan, tmp_path)
    assert finish(master) == 0, log_of(tmp_path)
    results = results_of(tmp_path)
    assert [step.memory_mb for step in results.steps] == [128, 1024]
    for step in results.steps:
        assert step.valid, step.problems
        assert len(step.workers) == 2 and all(w.requests > 0 for w in step.workers)
        assert sum(w.requests for w in step.workers) == step.requests
        assert sum(r.requests for r in step.per_request) == step.requests
    # The master tells its workers to quit when the run ends.
    assert wait_until(lambda: all(gone(w) for w in workers), 20)


def stock_locust_worker(lan: Lan, index: int, tmp_path: Path) -> subprocess.Popen[Any]:
    """The README's `locust --worker -f - --master-host H --master-port P`, as printed."""
    locust = str(Path(sys.executable).parent / "locust")
    return lan.network.start(
        lan.workers[index],
        [
            *(locust, "--worker", "-f", "-"),
            *("--master-host", lan.master.address, "--master-port", str(MASTER_PORT)),
        ],
        log=tmp_path / f"worker{index}.log",
        cwd=PROJECT_ROOT,
    )


def test_given_the_readme_example_with_local_workers_too_then_every_worker_takes_load(
    lan: Lan, tmp_path: Path
) -> None:
    # README "More load machines", as printed, plus one local worker: local workers dialled
    # 127.0.0.1, where a master bound to its LAN address does not listen (was: exit 3).
    master = lan.master_run(
        lan.scenario(tmp_path, users=6, workers=0),
        tmp_path,
        "--workers",
        "1",
        "--expect-workers",
        "2",
    )
    workers = [lan.worker(0, tmp_path), stock_locust_worker(lan, 1, tmp_path)]
    assert finish(master) == 0, log_of(tmp_path)
    for step in results_of(tmp_path).steps:
        assert step.valid, step.problems
        assert len(step.workers) == 3, step.workers
        assert all(worker.requests > 0 for worker in step.workers), step.workers
    assert wait_until(lambda: all(gone(w) for w in workers), 20)


# --- faults -------------------------------------------------------------------------------


def test_given_a_worker_sigkilled_mid_step_then_detected_in_10_s_named_and_exit_3(
    lan: Lan, tmp_path: Path
) -> None:
    master = lan.master_run(lan.scenario(tmp_path, duration=20), tmp_path)
    victim, survivor = two_workers(lan, tmp_path)
    assert wait_until(lambda: loading(tmp_path), 60), log_of(tmp_path)
    time.sleep(5)  # past the 1 s warm-up and a 3 s report: the victim has reported numbers
    killed_at = time.time()
    victim.kill()
    assert finish(master) == 3, log_of(tmp_path)
    step = results_of(tmp_path).steps[0]
    assert not step.valid
    (lost,) = [w for w in step.workers if w.lost]
    assert lost.lost_at is not None and lost.lost_at - killed_at <= DETECTION_BOUND_S
    assert step.window_end - killed_at <= DETECTION_BOUND_S + 1  # the step ends at detection
    assert lost.requests > 0  # its last reports are kept
    assert "missing" in lost.detail or "disconnected" in lost.detail
    assert any(lost.id in problem.detail for problem in results_of(tmp_path).problems)
    assert f"Locust worker(s) lost: {lost.id}" in log_of(tmp_path)
    report = report_of(tmp_path)
    assert "This run failed" in report and f"lost: {lost.detail}" in report
    assert wait_until(lambda: gone(survivor), 20)


def test_given_a_workers_link_cut_mid_step_then_the_same_detection_and_it_stays_out(
    lan: Lan, tmp_path: Path
) -> None:
    master = lan.master_run(lan.scenario(tmp_path, duration=20), tmp_path)
    cut, survivor = two_workers(lan, tmp_path)
    assert wait_until(lambda: loading(tmp_path), 60), log_of(tmp_path)
    time.sleep(2)
    cut_at = time.time()
    lan.network.cut(lan.workers[0])
    try:
        assert finish(master) == 3, log_of(tmp_path)
    finally:
        lan.network.restore(lan.workers[0])
    step = results_of(tmp_path).steps[0]
    (lost,) = [w for w in step.workers if w.lost]
    assert lost.lost_at is not None and lost.lost_at - cut_at <= DETECTION_BOUND_S
    assert "missing" in lost.detail
    assert lost.id in report_of(tmp_path)
    # Stated rule: the sweep stops at the step that lost a worker, so a worker that comes
    # back is not re-admitted; with its master gone it quits by itself.
    assert wait_until(lambda: gone(cut) and gone(survivor), WORKER_GIVES_UP_S)


def test_given_the_master_killed_then_workers_exit_by_themselves(lan: Lan, tmp_path: Path) -> None:
    master = lan.master_run(lan.scenario(tmp_path, duration=60), tmp_path)
    workers = two_workers(lan, tmp_path)
    assert wait_until(lambda: loading(tmp_path), 60), log_of(tmp_path)
    os.killpg(master.pid, signal.SIGKILL)
    master.wait(timeout=10)
    assert wait_until(lambda: all(gone(w) for w in workers), WORKER_GIVES_UP_S), [
        w.pid for w in workers if not gone(w)
    ]
    assert not [pid for pid in lan.network.pids(lan.master)]  # nothing left on the master
    for index in (0, 1):
        assert not lan.network.pids(lan.workers[index])


def test_given_the_target_killed_mid_step_then_errors_by_type_and_exit_3(
    lan: Lan, tmp_path: Path
) -> None:
    url = lan.start_stack(STACK_PORT + 1)
    # The load runs its full length against a dead target: 8 s leaves 6 s of errors.
    master = lan.master_run(lan.scenario(tmp_path, url=url, duration=8), tmp_path)
    workers = two_workers(lan, tmp_path)
    assert wait_until(lambda: loading(tmp_path), 60), log_of(tmp_path)
    time.sleep(2)
    stack = lan.network.processes[-4]  # started just before the master and its two workers
    assert "runner" in " ".join(Path(f"/proc/{stack.pid}/cmdline").read_text().split("\0"))
    os.killpg(stack.pid, signal.SIGKILL)
    assert finish(master) == 3, log_of(tmp_path)
    results = results_of(tmp_path)
    step = results.steps[0]
    assert step.failures > 0 and not step.valid
    kinds = {error.kind for error in step.errors}
    assert any("Connection" in kind or "Refused" in kind for kind in kinds), kinds
    down = [problem for problem in step.problems if problem.kind == "target down"]
    assert down and "target stopped answering" in down[0].detail
    assert "the target stopped answering" in report_of(tmp_path)
    # Memory restore is the target's job; a url target has none to restore (the local and
    # aws targets' restores are tested in test_sweep.py and test_aws_target.py).
    assert results.target.kind == "url" and results.target.restored is None
    assert wait_until(lambda: all(gone(w) for w in workers), 20)


def test_given_sigint_to_the_master_mid_step_then_partial_results_report_and_exit_130(
    lan: Lan, tmp_path: Path
) -> None:
    master = lan.master_run(lan.scenario(tmp_path, duration=30), tmp_path)
    workers = two_workers(lan, tmp_path)
    assert wait_until(lambda: loading(tmp_path), 60), log_of(tmp_path)
    time.sleep(2)
    os.killpg(master.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole job
    assert finish(master, timeout=60) == 130, log_of(tmp_path)
    results = results_of(tmp_path)
    assert results.status == "interrupted" and results.steps[0].requests > 0
    assert "This run was interrupted" in report_of(tmp_path)
    assert wait_until(lambda: all(gone(w) for w in workers), 20)
    assert not lan.network.pids(lan.master)


def test_given_workers_that_never_arrive_then_one_clear_line_and_exit_3(
    lan: Lan, tmp_path: Path
) -> None:
    master = lan.master_run(lan.scenario(tmp_path, wait=3), tmp_path)
    assert finish(master, timeout=60) == 3
    lines = [line for line in log_of(tmp_path).splitlines() if line.startswith("memsweep:")]
    assert len(lines) == 1, log_of(tmp_path)
    assert "expected 2 Locust workers (0 local, 2 remote)" in lines[0]
    assert "0 arrived within 3 s" in lines[0]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("version", "memsweep 0.0.0-other+"),
        ("locustfile", "its locustfile differs from the master's"),
    ],
)
def test_given_a_worker_of_another_version_then_refused_with_a_clear_message(
    lan: Lan, tmp_path: Path, change: str, expected: str
) -> None:
    other = tmp_path / "other"
    shutil.copytree(PROJECT_ROOT / "runner", other / "runner")
    if change == "version":
        init = other / "runner" / "__init__.py"
        init.write_text(init.read_text().replace('__version__ = "', '__version__ = "0.0.0-other+'))
    else:  # same version, different user code: what an unreleased local edit looks like
        users = other / "runner" / "load" / "locustfile.py"
        users.write_text(users.read_text() + "\n# a local edit\n")
    master = lan.master_run(lan.scenario(tmp_path), tmp_path)
    started = time.monotonic()
    workers = [lan.worker(0, tmp_path), lan.worker(1, tmp_path, python_path=other)]
    assert finish(master, timeout=90) == 3, log_of(tmp_path)
    assert time.monotonic() - started < 60  # refused, not hung
    line = next(line for line in log_of(tmp_path).splitlines() if line.startswith("memsweep:"))
    assert "refused the step" in line and expected in line, line
    assert wait_until(lambda: all(gone(w) for w in workers), 20)


def test_given_a_worker_killed_under_a_crud_mix_then_every_acknowledged_write_is_stored(
    lan: Lan, tmp_path: Path
) -> None:
    journal = tmp_path / "acks"
    journal.mkdir()
    env = {"MEMSWEEP_ACK_JOURNAL_DIR": str(journal)}
    master = lan.master_run(lan.scenario(tmp_path, duration=20, users=8), tmp_path)
    victim = lan.worker(0, tmp_path, env=env)
    lan.worker(1, tmp_path, env=env)
    assert wait_until(lambda: loading(tmp_path), 60), log_of(tmp_path)
    time.sleep(5)
    victim.kill()
    assert finish(master) == 3, log_of(tmp_path)
    acknowledged = set()
    for path in journal.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if entry["name"] == "create":
                acknowledged.add(json.loads(entry["body"])["payload"]["Item"]["id"])
    assert len(list(journal.glob("*.jsonl"))) == 2 and len(acknowledged) > 20
    stored: set[str] = set()
    payload: dict[str, Any] = {"Limit": 100}
    for _ in range(1000):  # bounded: `list` pages with LastEvaluatedKey
        page = api(lan.url, {"operation": "list", "payload": payload})
        stored.update(item["id"] for item in page["Items"])
        if "LastEvaluatedKey" not in page:
            break
        payload = {"Limit": 100, "ExclusiveStartKey": page["LastEvaluatedKey"]}
    assert acknowledged <= stored, sorted(acknowledged - stored)[:5]


# --- exposure -----------------------------------------------------------------------------


def connects(lan: Lan, from_host: netns.Host, address: str, port: int) -> bool:
    probe = (
        "import socket,sys\n"
        "s=socket.socket(); s.settimeout(3)\n"
        f"sys.exit(s.connect_ex(({address!r}, {port})))"
    )
    return lan.network.run(from_host, [sys.executable, "-c", probe]).returncode == 0


def test_given_the_default_bind_then_the_master_port_is_not_reachable_from_other_hosts(
    lan: Lan, tmp_path: Path
) -> None:
    master = lan.master_run(lan.scenario(tmp_path, workers=1, wait=6), tmp_path, bind="default")
    worker = lan.worker(0, tmp_path)
    time.sleep(2)
    assert not connects(lan, lan.workers[0], lan.master.address, MASTER_PORT)
    assert finish(master, timeout=60) == 3
    assert "0 arrived within 6 s" in log_of(tmp_path)
    worker.kill()


def test_given_the_local_stack_defaults_then_loopback_only_and_the_key_is_required(
    lan: Lan, tmp_path: Path
) -> None:
    port = STACK_PORT + 2
    lan.start_stack(port, host="127.0.0.1")
    assert not connects(lan, lan.workers[2], lan.target.address, port)
    # Bound to its LAN address on purpose: reachable, and still only with the API key.
    assert connects(lan, lan.workers[2], lan.target.address, STACK_PORT)
    request = urllib.request.Request(
        lan.url, data=b'{"operation": "ping"}', headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403
    request.add_header("x-api-key", API_KEY)
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
