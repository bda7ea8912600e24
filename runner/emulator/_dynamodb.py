"""DynamoDB for the local stack: dynalite (DynamoDB's wire protocol on LevelDB) on loopback."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from runner.children import first_line, stderr_tail
from runner.errors import SetupError
from runner.stack import PROJECT_ROOT, TableDefinition, node_tool

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Listening on port 0 and printing the kernel's choice avoids the race of probing for a
# free port first. Closing stdin (the parent died, even by SIGKILL) stops the server, so a
# crashed runner never leaves dynalite behind. Table state changes are instant: CREATING
# for 500 ms (dynalite's default) only slows start-up. dynalite_limits.js is loaded first:
# it adds the DynamoDB limits dynalite lacks (nesting depth, also of an updated item; UTF-8
# sizes; attribute names; expression sizes, document-path depth, 300 operators, 100 IN
# operands), so the local stack refuses what DynamoDB refuses.
_LAUNCHER = """
require(process.argv[3])(process.argv[1]);
const dynalite = require(process.argv[1]);
const path = process.argv[2] || undefined;
const server = dynalite({path, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0});
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.stdin.on('end', stop);
process.stdin.resume();
"""
LIMITS_PATCH = Path(__file__).with_name("dynalite_limits.js")
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
# Fake but well-formed credentials: dynalite checks the signature's shape, not its secret.
LOCAL_ACCESS_KEY = "memsweep-local"
LOCAL_REGION = "us-east-1"


class Dynalite:
    """A dynalite server on 127.0.0.1, in memory unless given a directory; a context manager."""

    def __init__(self, *, path: Path | None = None) -> None:
        self.path = path
        self.endpoint = ""
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Dynalite:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        module = PROJECT_ROOT / "node_modules" / "dynalite"
        node_tool("dynalite")  # clear error if `npm ci` was not run
        self._process = subprocess.Popen(
            ["node", "-e", _LAUNCHER, str(module), str(self.path or ""), str(LIMITS_PATCH)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=PROJECT_ROOT,
        )
        port = self._read_port()
        self.endpoint = f"http://127.0.0.1:{port}"

    def _read_port(self) -> int:
        assert self._process is not None
        line = first_line(self._process, START_TIMEOUT_S)
        if not line.strip().isdigit():
            why = stderr_tail(self._process)  # before stop(), which closes the pipes
            self.stop()
            raise SetupError(f"dynalite did not start within {START_TIMEOUT_S:.0f} s: {why}")
        return int(line)

    def stop(self) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def client(self) -> DynamoDBClient:
        return local_client(self.endpoint)


def local_client(endpoint: str) -> DynamoDBClient:
    """A low-level DynamoDB client for a local endpoint."""
    client: DynamoDBClient = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        config=Config(retries={"mode": "standard", "max_attempts": 3}),
        aws_access_key_id=LOCAL_ACCESS_KEY,
        aws_secret_access_key=LOCAL_ACCESS_KEY,
        region_name=LOCAL_REGION,
    )
    return client


def create_table(client: DynamoDBClient, table: TableDefinition, *, reset: bool = False) -> None:
    """Create the stack's table (dropping it first when `reset`), and wait until it is active."""
    existing = client.list_tables()["TableNames"]
    if table.name in existing:
        if not reset:
            return
        client.delete_table(TableName=table.name)
        _wait_until(lambda: table.name not in client.list_tables()["TableNames"], table)
    args: Any = table.create_table_args
    client.create_table(**args)
    _wait_until(
        lambda: client.describe_table(TableName=table.name)["Table"]["TableStatus"] == "ACTIVE",
        table,
    )


def _wait_until(condition: Callable[[], bool], table: TableDefinition) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise SetupError(f"table {table.name} did not settle within {START_TIMEOUT_S:.0f} s")
        time.sleep(0.02)


def environment_for(endpoint: str) -> dict[str, str]:
    """Variables that point boto3 (e.g. inside handler.py) at a local DynamoDB endpoint."""
    return {
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
        "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": LOCAL_ACCESS_KEY,
        "AWS_DEFAULT_REGION": LOCAL_REGION,
        # No real account to reach: never fall back to instance metadata or SSO.
        "AWS_EC2_METADATA_DISABLED": "true",
    }
