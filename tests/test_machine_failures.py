"""When the machine under the run fails: a read-only or full disk under --out (issue 27).

Real mounts (tmpfs, as root; skipped with the reason otherwise) and real runs of the README's
main job against the local stack, shortened.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runner.stack import PROJECT_ROOT

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@pytest.fixture
def mounted(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A tmpfs mounted with the options the test names (e.g. 'ro,size=64k')."""
    where = tmp_path / "mnt"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", request.param, "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def run(
    out: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "runner",
            "scenarios/memory_sweep.yaml",
            *("--memory", "1024", "--until", "fixed", "--duration", "3s", "--quiet"),
            *("--out", str(out)),
            *extra,
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def leftovers(path: Path) -> list[str]:
    """Processes still naming the run's directory (a stack or a worker left behind)."""
    found = subprocess.run(["pgrep", "-af", str(path)], capture_output=True, text=True).stdout
    return [line for line in found.splitlines() if "pgrep" not in line]


@pytest.mark.parametrize("mounted", ["ro,size=64k"], indirect=True)
def test_given_a_read_only_out_then_exit_2_in_one_line_before_anything_starts(
    mounted: Path,
) -> None:
    done = run(mounted / "reports")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert lines == [
        f"memsweep: --out {mounted / 'reports'}: cannot write there: Read-only "
        f"file system ({mounted / 'reports'})"
    ], done.stderr
    assert "results:" not in done.stdout  # no line for a file that does not exist


@pytest.mark.parametrize("mounted", ["size=12k"], indirect=True)
def test_given_a_disk_that_fills_then_exit_3_naming_the_file_with_or_without_debug(
    mounted: Path,
) -> None:
    # WHEN the run's directory fills up (12 KB: the Lambda log and the results do not fit),
    # with the debug flag that used to turn "internal error", exit 3, into a traceback, exit 2
    done = run(mounted, "--run-id", "full", env={"MEMSWEEP_DEBUG": "1"})
    # THEN exit 3, no traceback, the last line names the file and the errno's meaning
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith(f"memsweep: cannot write {mounted / 'full'}"), done.stderr
    assert "No space left on device" in last
    # results.json on disk is a complete write (the last one that fitted), never half a file
    written = mounted / "full" / "results.json"
    if written.exists():
        assert json.loads(written.read_text())["run_id"] == "full"
        assert "its last complete write" in done.stderr
    assert leftovers(mounted) == []


def descendants(pid: int) -> list[int]:
    """Every process under `pid` (children first), read from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _dynalite(run: int) -> int:
    (pid,) = [pid for pid in descendants(run) if "dynalite" in cmdline(pid)]
    return pid


def _parent(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _stack(run: int) -> int:
    # The run's own child: a sandbox between fork and exec still shows the stack's cmdline
    (pid,) = [
        pid for pid in descendants(run) if "runner local" in cmdline(pid) and _parent(pid) == run
    ]
    return pid


def _gone_code_dir(run: int, code_dir: Path) -> int:
    """The function's code directory moved away: the next sandbox cannot start (its cwd)."""
    code_dir.rename(code_dir.with_name("moved"))
    return _stack(run)


# Each part of the local stack, how it is made to fail mid-step, and what the run must say.
PARTS: dict[str, tuple[Callable[[int, Path], int], str]] = {
    "dynamodb killed": (
        lambda run, _: _signalled(_dynalite(run), signal.SIGKILL),
        "DynamoDB (the local stack's dynalite, pid {pid}) exited",
    ),
    "stack stopped": (
        lambda run, _: _signalled(_stack(run), signal.SIGSTOP),
        "the local stack (pid {pid}) is stopped (SIGSTOP)",
    ),
    # Two sizes: the second replaces every sandbox, so some start after the move for certain
    "sandboxes cannot start": (
        _gone_code_dir,
        "the local stack's sandbox pool could not start",
    ),
}


def _signalled(pid: int, sent: signal.Signals) -> int:
    os.kill(pid, sent)
    return pid


@pytest.mark.parametrize("part", list(PARTS))
def test_given_a_part_of_the_stack_failing_mid_step_then_the_run_fails_naming_it(
    tmp_path: Path, part: str
) -> None:
    breaks, expected = PARTS[part]
    # GIVEN a run (its handler in a directory of its own) whose first step is loading
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    shutil.copy(PROJECT_ROOT / "handler.py", code_dir / "handler.py")
    scenario = tmp_path / "scenario.yaml"
    text = (PROJECT_ROOT / "scenarios" / "memory_sweep.yaml").read_text()
    scenario.write_text(text.replace("  kind: local\n", f"  kind: local\n  code_dir: {code_dir}\n"))
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runner",
                str(scenario),
                *("--memory", "1024,2048", "--until", "fixed", "--duration", "8s", "--quiet"),
                *("--out", str(tmp_path / "reports"), "--run-id", "dead"),
            ],
            cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
            start_new_session=True,
        )
    try:
        for _ in range(600):  # bounded: 60 s
            if "load running" in stderr.read_text() or process.poll() is not None:
                break
            time.sleep(0.1)
        assert process.poll() is None and "load running" in stderr.read_text(), stderr.read_text()
        # WHEN that part is killed, stopped or broken
        pid = breaks(process.pid, code_dir)
        code = process.wait(timeout=150)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
    # THEN the run fails (exit 3) naming the part, not "no memory size met the thresholds"
    said = stderr.read_text()
    assert code == 3, said
    assert expected.format(pid=pid) in said
    assert "met the thresholds" not in said and "Traceback" not in said
    results = json.loads((tmp_path / "reports" / "dead" / "results.json").read_text())
    assert results["status"] == "failed" and results["exit_code"] == 3
    assert any(expected.format(pid=pid) in problem["detail"] for problem in results["problems"])
    # AND the step it failed under is kept, marked with the part (not a memory measurement)
    first = results["steps"][-1]["problems"][0]
    assert first["kind"] == "target failed" and expected.format(pid=pid) in first["detail"]
    assert results["steps"][-1]["valid"] is False
    assert descendants(process.pid) == [] and leftovers(tmp_path) == []


def test_given_a_front_that_accepts_but_never_answers_or_refuses_then_the_probe_says_so() -> None:
    import socket

    from runner.targets._local import FRONT_PROBE_S, _front_silent

    # GIVEN a listener nobody serves (the kernel completes the handshake; no answer comes)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        started = time.monotonic()
        said = _front_silent(f"http://127.0.0.1:{port}/dev/DynamoDBManager")
        assert said == f"did not answer within {FRONT_PROBE_S:g} s"
        assert time.monotonic() - started < FRONT_PROBE_S + 2
    # AND the same port closed
    refused = _front_silent(f"http://127.0.0.1:{port}/dev/DynamoDBManager")
    assert refused is not None and refused.startswith("stopped answering (Connection refused")


def test_given_a_cold_start_storm_then_the_step_is_degraded_naming_what_the_host_was_doing(
    tmp_path: Path,
) -> None:
    # GIVEN 600 users at once on a 128 MB function: the local stack starts up to 100 sandboxes
    # together, their inits unthrottled, on this machine's cores
    done = run(tmp_path / "reports", "--memory", "128", "--users", "600", "--run-id", "storm")
    # THEN the step is degraded (exit 3) and says what the host was doing, in figures
    assert done.returncode == 3, done.stderr
    results = json.loads((tmp_path / "reports" / "storm" / "results.json").read_text())
    (step,) = results["steps"]
    causes = " ".join(step["trust"]["causes"])
    assert step["trust"]["degraded"] and "host saturated" in causes, causes
    if step["trust"]["cpu"]["cpu_s"] < 0.2:  # nothing to judge delivery on: the storm's cause
        assert "sandboxes started for 600 users asked" in causes, causes
        assert "CPUs were" in causes and "busy" in causes
    assert "host saturated" in done.stdout and "Traceback" not in done.stderr
    assert leftovers(tmp_path) == []
    # AND the run says how it departed from the file, in results.json and the report's title
    changes = "--memory 128 --until fixed --duration 3s --users 600"
    assert results["run_with"] == changes
    report = (tmp_path / "reports" / "storm" / "report.html").read_text()
    assert (
        f"<title>memsweep: tutorial memory sweep (list, 128 vs 1024 MB), run with {changes}</title>"
        in report
    )
