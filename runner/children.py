"""Child processes that follow their parent: own session, and a signal when the parent dies."""

from __future__ import annotations

import ctypes
import os
import select
import subprocess
from collections.abc import Callable

_libc = ctypes.CDLL(None, use_errno=True)
# How long stderr_tail waits for a failing child to exit before reporting it still running.
EXIT_GRACE_S = 2.0
_PR_SET_PDEATHSIG = 1


def detached_but_tied(signum: int) -> Callable[[], None]:
    """A preexec_fn: a new session (a terminal's Ctrl-C reaches only the parent, which stops
    its children in order and so can exit with 130), and `signum` if the parent dies."""

    def in_child() -> None:
        os.setsid()
        _libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)

    return in_child


def first_line(process: subprocess.Popen[bytes], timeout_s: float) -> bytes:
    """The first line a child writes to stdout (its "ready" line), or b"" after the timeout."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    return process.stdout.readline() if ready else b""


def stderr_tail(process: subprocess.Popen[bytes]) -> str:
    """The last line a stopped child wrote to stderr: usually why it did not start."""
    if process.stderr is None:
        return ""
    try:  # a child that closed its stdout is usually a moment from exiting
        process.wait(timeout=EXIT_GRACE_S)
    except subprocess.TimeoutExpired:
        return "(still running)"
    lines = process.stderr.read().decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else f"exit code {process.returncode}"
