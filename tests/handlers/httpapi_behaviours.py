"""A Lambda handler for testing the local stack's HTTP API front: the request picks the answer.

Body: {"action": "...", ...}; a body that is not a JSON object asks for the event. `return`
hands back `value` as it is, so a test can make the function return a string, a number, a
list, an object with or without statusCode.
"""

from __future__ import annotations

import json
import time
from typing import Any

NAME = "httpapi_behaviours"


def _request(body: str | None) -> dict[str, Any]:
    try:
        request = json.loads(body or "{}")
    except ValueError:
        return {"action": "event"}
    return request if isinstance(request, dict) else {"action": "event"}


def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    request = _request(event.get("body"))
    action = request.get("action")
    if action == "event":
        return {"statusCode": 200, "body": json.dumps(event)}
    if action == "return":
        return request["value"]
    if action == "raise":
        raise RuntimeError("boom from the handler")
    if action == "sleep":
        time.sleep(float(request["seconds"]))
        return {"slept": request["seconds"]}
    return NAME
