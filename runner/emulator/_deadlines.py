"""Timeouts for many calls that share one duration, on a single event-loop timer.

A `call_later` per request (two per invocation: API Gateway's 29 s and the function's
timeout, each created and cancelled) showed up in the emulator's profile (bench/PROFILE.md).
With one duration per queue, deadlines expire in the order they were set, so a FIFO and one
armed timer for its oldest live entry do the same job; finished entries are dropped lazily.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Pending(Protocol):
    @property
    def finished(self) -> bool: ...


T = TypeVar("T", bound=Pending)


class Deadlines(Generic[T]):
    """Calls `expire(item)` for every item still unfinished `duration_s` after `add(item)`."""

    def __init__(self, duration_s: float, expire: Callable[[T], None]) -> None:
        self.duration_s = duration_s
        self._expire = expire
        self._queue: deque[tuple[float, T]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, item: T) -> None:
        queue = self._queue
        # Calls mostly finish in the order they started: keeps the queue near the in-flight count.
        while queue and queue[0][1].finished:
            queue.popleft()
        loop = asyncio.get_running_loop()
        queue.append((loop.time() + self.duration_s, item))
        if self._timer is None:
            self._timer = loop.call_at(queue[0][0], self._fire)

    def _fire(self) -> None:
        self._timer = None
        queue = self._queue
        loop = asyncio.get_running_loop()
        now = loop.time()
        while queue and (queue[0][0] <= now or queue[0][1].finished):
            _, item = queue.popleft()
            if not item.finished:
                self._expire(item)
        if queue and self._timer is None:
            self._timer = loop.call_at(queue[0][0], self._fire)

    def __len__(self) -> int:
        return len(self._queue)
