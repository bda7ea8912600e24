"""Child processes that follow their parent: own session, and a signal when the parent dies."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def detached_but_tied(signum: int) -> Callable[[], None]:
    """A preexec_fn: a new session (a terminal's Ctrl-C reaches only the parent, which stops
    its children in order and so can exit with 130), and `signum` if the parent dies."""

    def in_child() -> None:
        os.setsid()
        _libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)

    return in_child
