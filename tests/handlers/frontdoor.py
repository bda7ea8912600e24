"""A Lambda handler for the front-door tests: it returns whatever proxy response it is sent.

Body: {"response": <any JSON>} returns that value as the function's result, well formed or
not; {"sleep": seconds} sleeps first; anything else answers 200 {"ok": true}.
"""

from __future__ import annotations

import json
import time
from typing import Any


def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    request = json.loads(event.get("body") or "{}")
    if "sleep" in request:
        time.sleep(float(request["sleep"]))
    if "response" in request:
        return request["response"]
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": '{"ok": true}',
    }
