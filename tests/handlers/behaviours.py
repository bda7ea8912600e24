"""A Lambda handler whose behaviour the request picks: for testing the local stack.

Body: {"action": "...", ...}. Every answer is a proxy response.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any


def _response(status: int, body: Any) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body),
    }


def _spin(units: int) -> int:
    """A fixed amount of pure-Python CPU work (no I/O, no allocation to speak of)."""
    total = 0
    for index in range(units * 10_000):
        total += index * index % 7
    return total


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    request = json.loads(event.get("body") or "{}")
    action = request.get("action")
    if action == "event":
        return _response(
            200,
            {
                "event": event,
                "memory": context.memory_limit_in_mb,
                "remaining_ms": context.get_remaining_time_in_millis(),
                "pid": os.getpid(),
            },
        )
    if action == "raise":
        raise RuntimeError("boom from the handler")
    if action == "sleep":
        time.sleep(float(request["seconds"]))
        return _response(200, {"slept": request["seconds"], "pid": os.getpid()})
    if action == "spin":
        started, cpu = time.perf_counter(), time.process_time()
        _spin(int(request["units"]))
        return _response(
            200,
            {
                "ms": (time.perf_counter() - started) * 1000,
                "cpu_ms": (time.process_time() - cpu) * 1000,
            },
        )
    if action == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "allocate":
        block = bytearray(int(request["mb"]) << 20)
        for offset in range(0, len(block), 4096):
            block[offset] = 1  # touch every page so it is charged
        return _response(200, {"allocated_mb": request["mb"]})
    if action == "malformed":
        return {"not": "a proxy response"}
    if action == "binary":
        return {
            "statusCode": 200,
            "isBase64Encoded": True,
            "body": "AAEC",
            "headers": {"Content-Type": "application/octet-stream"},
        }
    return _response(200, {"pid": os.getpid()})
