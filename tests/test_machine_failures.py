"""When the machine under the run fails: a read-only or full disk under --out (issue 27).

Real mounts (tmpfs, as root; skipped with the reason otherwise) and real runs of the README's
main job against the local stack, shortened.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
