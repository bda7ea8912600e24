"""When the machine under the run fails: a read-only or full disk under --out (issue 27).

Real mounts (tmpfs, as root; skipped with the reason otherwise) and real runs of the README's
main job against the local stack, shortened.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
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


def test_given_dynamodb_killed_mid_step_then_the_run_fails_naming_it_not_a_memory_verdict(
    tmp_path: Path,
) -> None:
    # GIVEN a run whose step is loading
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runner",
                "scenarios/memory_sweep.yaml",
                *("--memory", "1024", "--until", "fixed", "--duration", "8s", "--quiet"),
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
        # WHEN its DynamoDB (the local stack's dynalite) is killed
        (dynalite,) = [pid for pid in descendants(process.pid) if "dynalite" in cmdline(pid)]
        os.kill(dynalite, 9)
        code = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 9)
    # THEN the run fails (exit 3) naming DynamoDB, not "no memory size met the thresholds"
    said = stderr.read_text()
    assert code == 3, said
    assert f"DynamoDB (the local stack's dynalite, pid {dynalite}) exited" in said
    assert "met the thresholds" not in said
    results = json.loads((tmp_path / "reports" / "dead" / "results.json").read_text())
    assert results["status"] == "failed" and results["exit_code"] == 3
    assert any("DynamoDB" in problem["detail"] for problem in results["problems"])
    assert descendants(process.pid) == [] and leftovers(tmp_path) == []
