"""Any HTTP endpoint: no memory control, memory sizes are labels only."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from runner.errors import BadInput
from runner.invocations import Phases
from runner.lambda_facts import DEFAULT_API
from runner.results import Fidelity, Invocations, OutsideWindow, TargetInfo
from runner.scenario import UrlTarget
from runner.targets._base import Target

# Where a key comes from when the scenario names none: a variable keeps it out of `ps`, the
# shell history and the scenario file (which results.json and the report echo, redacted).
API_KEY_VARIABLE = "MEMSWEEP_API_KEY"
# An API key is one header value: API Gateway's are 20-128 characters (CreateApiKey), and its
# REST API quota for the request line and all headers together is 10,240 bytes.
MAX_API_KEY_BYTES = 8192
SOURCES = ("api_key_file", "api_key_env", "api_key")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def api_key(spec: UrlTarget) -> str | None:
    """The key a url target sends, from exactly one of api_key_file, api_key_env, api_key
    or, when the scenario names none, $MEMSWEEP_API_KEY."""
    given = [f"target.{name}" for name in SOURCES if getattr(spec, name) is not None]
    if len(given) > 1:
        raise BadInput(f"{' and '.join(given)} are both set: give the API key one way")
    if spec.api_key_file is not None:
        return check_api_key(
            read_api_key_file(Path(spec.api_key_file)), f"target.api_key_file: {spec.api_key_file}"
        )
    if spec.api_key_env is not None:
        value = os.environ.get(spec.api_key_env, "")
        if not value:
            raise BadInput(f"target.api_key_env: ${spec.api_key_env} is not set or empty")
        return check_api_key(value, f"target.api_key_env: ${spec.api_key_env}")
    if spec.api_key is not None:
        return check_api_key(spec.api_key, "target.api_key")
    value = os.environ.get(API_KEY_VARIABLE, "")
    return check_api_key(value, f"${API_KEY_VARIABLE}") if value else None


def read_api_key_file(path: Path, where: str = "target.api_key_file") -> str:
    """The key in a file (a secret kept out of the command line and the scenario)."""
    try:
        # O_NONBLOCK: a FIFO would block open() until someone writes to it.
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise BadInput(f"{where}: {path}: not a regular file")
            raw = handle.read(MAX_API_KEY_BYTES + 1)
    except FileNotFoundError:
        raise BadInput(f"{where}: {path}: no such file") from None
    except OSError as exc:
        raise BadInput(f"{where}: {path}: cannot read it: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{where}: {path}: not UTF-8 text") from None
    key = text.strip()  # the newline an editor or `echo` leaves is not part of the key
    if not key:
        raise BadInput(f"{where}: {path}: is empty")
    return key


def check_api_key(key: str, where: str) -> str:
    """A key that can be sent as one header value (never shown: the message names its source)."""
    if len(key.encode()) > MAX_API_KEY_BYTES:
        raise BadInput(f"{where}: the API key is longer than {MAX_API_KEY_BYTES} bytes")
    if _CONTROL.search(key):
        raise BadInput(f"{where}: the API key holds a control character (a line break?)")
    return key


class UrlOnlyTarget(Target):
    kind = "url"

    def __init__(self, spec: UrlTarget) -> None:
        self.spec = spec
        self._api_key = api_key(spec)

    @property
    def url(self) -> str:
        return self.spec.url

    def headers(self) -> dict[str, str]:
        return {"x-api-key": self._api_key} if self._api_key else {}

    def set_memory(self, memory_mb: int) -> None:
        """A label: nothing to change."""

    def refuses(self, axis: str, value: str) -> str | None:
        """Only what a bare URL is: one REST endpoint whose function it cannot reach (the line
        says why; the sweep names the axis and value)."""
        if axis == "api" and value == DEFAULT_API:
            return None
        if axis == "api":
            return (
                "a url target is a bare URL and cannot switch API types: point target.url at "
                "that API's URL in a scenario of its own"
            )
        return (
            f"a url target is a bare URL and cannot change its {axis}: sweep {axis} on the "
            "local or aws target"
        )

    def invocations(self, phases: Phases) -> tuple[Invocations, OutsideWindow]:
        source = "none: a url target has no access to the function's logs"
        return Invocations(source=source), OutsideWindow()

    def fidelity(self) -> Fidelity:
        return Fidelity(mode="none", level="none")

    def info(self) -> TargetInfo:
        return TargetInfo(
            kind="url", url=self.url, description="memory sizes are labels only (no control)"
        )
