"""The local stack as one process: DynamoDB + Lambda pool + API Gateway fronts + control API.

`python -m runner local` runs `serve()` until SIGINT/SIGTERM. The function, its route, its
environment and the table all come from serverless.yml (resolved by the framework), so the
local stack runs what a deployment would run. Both API types are served at once, each on its
own listener as on AWS (two hosts): the REST API (_apigw.py, payload format 1.0) and the HTTP
API (_httpapi.py, payload format 2.0), one pool behind both. A small control API on its own
loopback port (token-protected) lets the runner change the memory size and the handler
between steps and read status.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import os
import resource
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runner.control_api import (
    CALIBRATE_PATH,
    DELIVERY_PATH,
    HANDLER_PATH,
    MEMORY_PATH,
    RESET_TABLE_PATH,
    STATUS_PATH,
    TOKEN_HEADER,
    StackReady,
    StackStatus,
    handler_problem,
)
from runner.emulator import _dynamodb as dynamodb
from runner.emulator._apigw import (
    IDLE_TIMEOUT_S,
    INTEGRATION_TIMEOUT_S,
    MAX_HEADER_VALUES_BYTES,
    MAX_REQUEST_BYTES,
    MAX_URL_BYTES,
    REQUEST_TIMEOUT_S,
    ApiGatewayFront,
)
from runner.emulator._cgroups import Calibration, Limiter, calibrate, cpu_share, detect_limiter
from runner.emulator._front import Route, Throttle
from runner.emulator._http import Connection, Limits, Request, bound_port, serve
from runner.emulator._httpapi import INTEGRATION_TIMEOUT_S as HTTP_INTEGRATION_TIMEOUT_S
from runner.emulator._httpapi import HttpApiFront
from runner.emulator._lambda_pool import DEFAULT_CONCURRENCY, LambdaPool
from runner.emulator._sandbox import FunctionConfig
from runner.errors import BadInput, SetupError
from runner.lambda_facts import DEFAULT_ARCHITECTURE, MAX_MEMORY_MB, MIN_MEMORY_MB
from runner.stack import (
    PROJECT_ROOT,
    SERVERLESS_YML,
    TableDefinition,
    resolved_config,
    table_definition,
    usage_plan_limit,
)

# The Serverless Framework's default function timeout (s).
DEFAULT_TIMEOUT_S = 6.0
# The control API's requests are a memory size or a list of them: small and flat. Bounded
# before decoding so a hostile body gets a 400 at once, not a RecursionError (and no answer).
CONTROL_MAX_BODY = 64 * 1024
CONTROL_MAX_DEPTH = 8
# The control API's wire names as the HTTP parser gives them (bytes), from runner/control_api.py.
_TOKEN_HEADER = TOKEN_HEADER.encode()
_STATUS, _DELIVERY = STATUS_PATH.encode(), DELIVERY_PATH.encode()
_MEMORY, _CALIBRATE, _RESET_TABLE, _HANDLER = (
    p.encode() for p in (MEMORY_PATH, CALIBRATE_PATH, RESET_TABLE_PATH, HANDLER_PATH)
)


@dataclass
class LocalStackOptions:
    host: str = "127.0.0.1"
    port: int = 0  # the REST API's listener
    http_port: int = 0  # the HTTP API's listener
    stage: str = "dev"
    memory_mb: int | None = None  # None: serverless.yml's memorySize
    api_key: str | None = None  # None: a new random key
    handler: str | None = None  # e.g. "tutorial_handler.lambda_handler"
    code_dir: Path | None = None
    integration: str | None = None  # "lambda-proxy" or "lambda"; None: serverless.yml's
    timeout_s: float | None = None  # function timeout; None: serverless.yml's
    integration_timeout_s: float = INTEGRATION_TIMEOUT_S
    # The HTTP API's; None: 30 s, or integration_timeout_s when that is not REST's default
    # (one --integration-timeout shortens both fronts' for a test).
    http_integration_timeout_s: float | None = None
    request_timeout_s: float = REQUEST_TIMEOUT_S  # a client's time to send one request
    idle_timeout_s: float = IDLE_TIMEOUT_S  # an idle keep-alive connection's life
    concurrency: int = DEFAULT_CONCURRENCY
    usage_plan_throttle: bool = True
    dynamodb_endpoint: str | None = None  # None: start dynalite
    dynamodb_path: Path | None = None  # dynalite's LevelDB directory; None: in memory
    log_path: Path | None = None
    added_latency_ms: float = 0.0
    cgroup: str = "auto"
    calibrate: bool = True
    config_json: Path | None = None  # a saved `serverless print --format json`
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StackDefinition:
    """What the local stack runs, read from the resolved serverless config."""

    function: FunctionConfig
    route: Route  # the REST API's
    http_route: Route  # the HTTP API's
    table: TableDefinition
    throttle: Throttle | None


def check_memory(memory_mb: int) -> int:
    if not MIN_MEMORY_MB <= memory_mb <= MAX_MEMORY_MB:
        raise BadInput(
            f"memory {memory_mb} MB is outside Lambda's range {MIN_MEMORY_MB}-{MAX_MEMORY_MB} MB"
        )
    return memory_mb


def stack_definition(config: Mapping[str, Any], options: LocalStackOptions) -> StackDefinition:
    table = table_definition(config)
    provider = config.get("provider", {})
    functions = config.get("functions") or {}
    with_http = {
        key: fn
        for key, fn in functions.items()
        if any("http" in event for event in fn.get("events", []))
    }
    if len(with_http) != 1:
        raise SetupError(
            f"{SERVERLESS_YML}: expected one function with an http event, found {len(with_http)}"
        )
    ((key, fn),) = with_http.items()
    http = next(event["http"] for event in fn["events"] if "http" in event)
    service = config.get("service", "service")
    environment = {
        name: _environment_value(name, value, table)
        for name, value in {**provider.get("environment", {}), **fn.get("environment", {})}.items()
    }
    memory = options.memory_mb or int(fn.get("memorySize") or provider.get("memorySize") or 1024)
    function = FunctionConfig(
        name=fn.get("name") or f"{service}-{options.stage}-{key}",
        handler=options.handler or fn["handler"],
        code_dir=(options.code_dir or PROJECT_ROOT).resolve(),
        memory_mb=check_memory(memory),
        timeout_s=float(
            options.timeout_s or fn.get("timeout") or provider.get("timeout") or DEFAULT_TIMEOUT_S
        ),
        environment=environment,
        region=str(provider.get("region", "us-east-1")),
    )
    integration = options.integration or http.get("integration") or "lambda-proxy"
    route = Route(
        method=str(http.get("method", "post")).upper(),
        path="/" + str(http["path"]).strip("/"),
        api_key_required=bool(http.get("private", False)),
        integration="lambda" if integration == "lambda" else "lambda-proxy",
    )
    http_route = _http_api_route(fn, route)
    limit = usage_plan_limit(config)
    throttle = None
    if options.usage_plan_throttle and limit is not None:
        throttle = Throttle(rate=limit.rate, burst=limit.burst)
    return StackDefinition(
        function=function, route=route, http_route=http_route, table=table, throttle=throttle
    )


def _http_api_route(function: Mapping[str, Any], rest: Route) -> Route:
    """The HTTP API's route: the function's `httpApi` event if serverless.yml has one, else
    the REST route's method and path (the local stack serves both API types either way).

    Protected as the REST route is: the deployed HTTP API checks the same key with a Lambda
    authorizer, since HTTP APIs have no API keys.
    """
    method, path = rest.method, rest.path
    for event in function.get("events", []):
        spec = event.get("httpApi") if isinstance(event, dict) else None
        if isinstance(spec, str) and " " in spec:  # the short form: "POST /DynamoDBManager"
            method, _, path = spec.partition(" ")
        elif isinstance(spec, dict) and spec.get("path"):
            method, path = str(spec.get("method", method)), str(spec["path"])
        else:
            continue
        break
    return Route(
        method=method.upper(),
        path="/" + path.strip("/"),
        api_key_required=rest.api_key_required,
    )


def _environment_value(name: str, value: Any, table: TableDefinition) -> str:
    if isinstance(value, (str, int, float)):
        return str(value)
    if value == {"Ref": table.logical_id}:
        return table.name
    raise SetupError(
        f"{SERVERLESS_YML}: provider.environment.{name}: the local stack can resolve only "
        f"plain values and {{Ref: {table.logical_id}}}, got {json.dumps(value)}"
    )


class LocalStack:
    """Everything `serve()` runs, with the operations the control API exposes."""

    def __init__(self, options: LocalStackOptions) -> None:
        for flag, seconds in (
            ("--request-timeout", options.request_timeout_s),
            ("--idle-timeout", options.idle_timeout_s),
        ):
            if not seconds > 0:  # also NaN
                raise BadInput(f"{flag} must be a positive number of seconds, got {seconds}")
        self.options = options
        self.limiter: Limiter = detect_limiter(options.cgroup)
        self.api_key = options.api_key or secrets.token_urlsafe(24)
        self.control_token = secrets.token_urlsafe(24)
        self.calibration: Calibration | None = None
        # Per memory size for the stack's life: a sweep revisits sizes (repeats, interleaving).
        self._calibrations: dict[int, Calibration] = {}
        self._dynalite: dynamodb.Dynalite | None = None
        self._servers: list[asyncio.Server] = []
        self.pool: LambdaPool | None = None
        self.ready: StackReady | None = None  # set by start()
        self.code_dir: Path | None = None  # where POST /handler looks up modules
        self._tasks: set[asyncio.Task[None]] = set()
        self._table: TableDefinition | None = None  # for /reset-table

    async def start(self) -> None:
        options = self.options
        if options.config_json is not None:
            config = json.loads(options.config_json.read_text())
        else:
            config = await asyncio.to_thread(
                resolved_config, params=options.params, stage=options.stage
            )
        definition = stack_definition(config, options)
        # Refused before anything starts: a sandbox would only fail its import, call by call.
        problem = handler_problem(definition.function.handler, definition.function.code_dir)
        if problem is not None:
            raise BadInput(problem)
        self._table = definition.table
        self.limiter.cleanup_stale()

        endpoint = options.dynamodb_endpoint
        if endpoint is None:
            self._dynalite = dynamodb.Dynalite(path=options.dynamodb_path)
            await asyncio.to_thread(self._dynalite.start)
            endpoint = self._dynalite.endpoint
        await asyncio.to_thread(
            dynamodb.create_table, dynamodb.local_client(endpoint), definition.table
        )
        function = definition.function
        function = FunctionConfig(
            **{
                **function.__dict__,
                "environment": {**dynamodb.environment_for(endpoint), **function.environment},
            }
        )
        log_path = lambda_log(options.log_path)
        self.pool = LambdaPool(
            function, limiter=self.limiter, log_path=log_path, concurrency=options.concurrency
        )
        await self._calibrate()
        front = ApiGatewayFront(
            self.pool,
            route=definition.route,
            stage=options.stage,
            api_key=self.api_key,
            throttle=definition.throttle,
            integration_timeout_s=options.integration_timeout_s,
            added_latency_ms=options.added_latency_ms,
        )
        front_limits = Limits(
            max_body=MAX_REQUEST_BYTES,
            max_url=MAX_URL_BYTES,
            max_header_values=MAX_HEADER_VALUES_BYTES,
            request_timeout_s=options.request_timeout_s,
            idle_timeout_s=options.idle_timeout_s,
            shed=True,  # clients hoarding connections must not starve sandboxes and control
        )
        http_timeout = options.http_integration_timeout_s or (
            HTTP_INTEGRATION_TIMEOUT_S
            if options.integration_timeout_s == INTEGRATION_TIMEOUT_S
            else options.integration_timeout_s
        )
        http_front = HttpApiFront(
            self.pool,
            route=definition.http_route,
            api_key=self.api_key,
            # Its own bucket: on AWS each API has its own throttle.
            throttle=replace(definition.throttle) if definition.throttle else None,
            integration_timeout_s=http_timeout,
            added_latency_ms=options.added_latency_ms,
        )
        front_server = await serve(
            front.handle, host=options.host, port=options.port, limits=front_limits
        )
        http_server = await serve(
            http_front.handle, host=options.host, port=options.http_port, limits=front_limits
        )
        control_limits = Limits(
            max_body=CONTROL_MAX_BODY,
            request_timeout_s=options.request_timeout_s,
            idle_timeout_s=options.idle_timeout_s,
        )
        control_server = await serve(self._control, host="127.0.0.1", port=0, limits=control_limits)
        self._servers = [front_server, http_server, control_server]
        self.code_dir = function.code_dir
        rest_url = (
            f"http://{options.host}:{bound_port(front_server)}/{options.stage}"
            f"{definition.route.path}"
        )
        self.ready = {
            "event": "ready",
            "url": rest_url,
            "urls": {
                "rest": rest_url,
                # The $default stage: no stage name in the path.
                "http": f"http://{options.host}:{bound_port(http_server)}"
                f"{definition.http_route.path}",
            },
            "api_key": self.api_key if definition.route.api_key_required else None,
            "control_url": f"http://127.0.0.1:{bound_port(control_server)}",
            "control_token": self.control_token,
            "log": str(log_path),
            "function": function.name,
            "code_dir": str(function.code_dir),
            # Only prices depend on it here: the sandboxes run on this machine's CPU.
            "architecture": str(
                config.get("provider", {}).get("architecture") or DEFAULT_ARCHITECTURE
            ),
            "integration": definition.route.integration,
            "table": definition.table.name,
            "dynamodb_endpoint": endpoint,
            "pid": os.getpid(),
            "dynalite_pid": self._dynalite.pid if self._dynalite else None,
            # The runner paces its seeding to it (runner/load/_seeding.py).
            "usage_plan": (
                {"rate": definition.throttle.rate, "burst": definition.throttle.burst}
                if definition.throttle
                else None
            ),
            **self.status(),
        }

    def status(self) -> StackStatus:
        assert self.pool is not None
        refused = self.calibration.refused if self.calibration else ""
        return {
            "memory_mb": self.pool.memory_mb,
            "handler": self.pool.function.handler,
            "cgroup": self.limiter.mode,
            # A refused calibration: the host could not show that the quota delivers the share.
            "fidelity": "degraded" if refused else self.limiter.fidelity,
            "calibration_refused": refused,
            "cpu_share_nominal": min(1.0, cpu_share(self.pool.memory_mb)),
            "cpu_share_measured": self.calibration.relative_share if self.calibration else None,
            "cpu_quota_correction": self.pool.cpu_correction,
            "sandboxes": self.pool.sandboxes,
            "idle_sandboxes": self.pool.idle_sandboxes,
            "sandbox_pids": self.pool.sandbox_pids(),
            "cold_starts": self.pool.cold_starts,
            "invocations": self.pool.invocations,
        }

    async def set_memory(self, memory_mb: int) -> None:
        assert self.pool is not None
        check_memory(memory_mb)
        await self.pool.set_memory(memory_mb)
        await self._calibrate()

    async def set_handler(self, handler: str) -> None:
        """Run `handler` from now on: checked first (an unknown one changes nothing), then
        every sandbox is replaced, so the next requests cold-start with it."""
        assert self.pool is not None and self.code_dir is not None
        problem = handler_problem(handler, self.code_dir)
        if problem is not None:
            raise BadInput(problem)
        await self.pool.set_handler(handler)

    async def _calibrate(self) -> None:
        """Measure (and correct) the CPU share the current memory size gets on this host."""
        assert self.pool is not None
        self.calibration = None
        if not self.options.calibrate:
            return
        self.calibration = await self.calibrate(self.pool.memory_mb)
        self.pool.cpu_correction = self.calibration.correction

    async def calibrate(self, memory_mb: int) -> Calibration:
        cached = self._calibrations.get(memory_mb)
        if cached is None:
            cached = await asyncio.to_thread(calibrate, self.limiter, memory_mb)
            if not cached.refused:  # a busy host may be quiet by the next visit: try again
                self._calibrations[memory_mb] = cached
        return cached

    def _control(self, request: Request, connection: Connection) -> None:
        # Constant-time: the answer's timing must not tell how much of a guess was right.
        token = request.headers.get(_TOKEN_HEADER, b"")
        if not hmac.compare_digest(token, self.control_token.encode()):
            connection.respond(403, b'{"message":"Forbidden"}')
            return
        if request.too_large:
            message = f"control request body over {CONTROL_MAX_BODY} bytes"
            connection.respond(413, json.dumps({"message": message}).encode(), keep_alive=False)
            return
        actions = {
            _MEMORY: self._apply_memory,
            _CALIBRATE: self._apply_calibration,
            _RESET_TABLE: self._reset_table,
            _HANDLER: self._apply_handler,
        }
        if request.method == b"GET" and request.path == _STATUS:
            connection.respond(200, json.dumps(self.status()).encode())
        elif request.method == b"GET" and request.path == _DELIVERY:
            assert self.pool is not None
            connection.respond(200, json.dumps(self.pool.delivery()).encode())
        elif request.method == b"POST" and request.path in actions:
            action = actions[request.path]
            task = asyncio.get_running_loop().create_task(
                self._answer_control(action, request, connection)
            )
            self._tasks.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self._tasks.discard)
        else:
            connection.respond(404, b'{"message":"unknown control path"}')

    async def _answer_control(
        self,
        action: Callable[[Any], Awaitable[None]],
        request: Request,
        connection: Connection,
    ) -> None:
        """Run a control action on the request's JSON; 400 naming the problem, else status."""
        try:
            await action(_control_json(request.body))
        except (ValueError, KeyError, TypeError) as exc:
            connection.respond(400, json.dumps({"message": f"bad request: {exc}"}).encode())
        except BadInput as exc:
            connection.respond(400, json.dumps({"message": str(exc)}).encode())
        except Exception as exc:  # noqa: BLE001 - the runner must get an answer, not a timeout
            message = f"internal error in the local stack: {type(exc).__name__}: {exc}"
            connection.respond(500, json.dumps({"message": message}).encode())
        else:
            connection.respond(200, json.dumps(self.status()).encode())

    async def _apply_memory(self, document: Any) -> None:
        memory = document["memory_mb"]
        if isinstance(memory, bool) or not isinstance(memory, int):
            raise BadInput(f"memory_mb must be an integer, got {memory!r}")
        await self.set_memory(memory)

    async def _apply_handler(self, document: Any) -> None:
        handler = document["handler"]
        if not isinstance(handler, str):
            raise BadInput(f"handler must be a string (module.function), got {handler!r}")
        await self.set_handler(handler)

    async def _apply_calibration(self, document: Any) -> None:
        """Measure the given sizes now, so later memory changes don't pay for it."""
        sizes = document["memory_mb"]
        if not isinstance(sizes, list) or not all(
            isinstance(m, int) and not isinstance(m, bool) for m in sizes
        ):
            raise BadInput(f"memory_mb must be a list of integers, got {sizes!r}")
        for memory in sizes:
            check_memory(memory)
            if self.options.calibrate:
                await self.calibrate(memory)

    async def _reset_table(self, document: Any) -> None:
        """Drop and re-create the table in the stack's own dynalite: a seeding reset that
        spends none of the API's usage plan (and takes milliseconds, not a delete per item)."""
        if self._dynalite is None or self._table is None:
            raise BadInput("the table is not in the stack's own dynalite: reset it through the API")
        client = dynamodb.local_client(self._dynalite.endpoint)
        await asyncio.to_thread(dynamodb.create_table, client, self._table, reset=True)

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        if self.pool is not None:
            await self.pool.close()
        if self._dynalite is not None:
            await asyncio.to_thread(self._dynalite.stop)


def _control_json(body: bytes) -> Any:
    """The control request's JSON; ValueError naming the problem if it nests too deep."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
            if deepest > CONTROL_MAX_DEPTH:
                raise ValueError(f"JSON nested deeper than {CONTROL_MAX_DEPTH} levels")
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return json.loads(body)


# `runner local` on its own keeps its Lambda log where runs keep theirs (a run passes --log
# inside its own directory), never in the shared temporary directory where anyone may plant
# a link at a predictable name.
LOCAL_LOG_DIR = Path("reports")


def lambda_log(given: Path | None) -> Path:
    """The Lambda log's path, created (or opened) here without following a symbolic link.

    A default log is new (O_EXCL); a given one may exist (a run appends), but must not be a
    link: a planted link would have the stack write its log over the link's target.
    """
    new = given is None
    path = given or LOCAL_LOG_DIR / f"local-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}" / (
        "lambda.log"
    )
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | (os.O_EXCL if new else 0)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, flags, 0o644))
    except FileExistsError:
        raise SetupError(f"{path}: already exists; the local stack starts a new log") from None
    except OSError as exc:
        where = f"--log {path}" if given else str(path)
        if path.is_symlink():
            raise BadInput(
                f"{where}: is a symbolic link; the Lambda log is never written through one"
            ) from None
        raise BadInput(f"{where}: cannot write the Lambda log: {exc.strerror}") from None
    return path


def _describe(ready: StackReady, *, key_given: bool = False) -> str:
    """The banner; a key the user gave (from a file, a variable) is not echoed to the terminal."""
    share = ready["cpu_share_measured"]
    share_text = f", measured CPU share {share:.3f}" if share is not None else ""
    if ready["calibration_refused"]:
        share_text += f"; calibration refused: {ready['calibration_refused']}"
    lines = [
        "memsweep local stack (API Gateway → Lambda → DynamoDB)",
        f"  REST API: POST {ready['urls']['rest']}",
        "  API key:  not required"
        if not ready["api_key"]
        else "  API key:  yours (set, not shown): send it as the x-api-key header"
        if key_given
        else f"  API key:  {ready['api_key']}  (send it as the x-api-key header)",
        # After the key: the key's line stays third, where scripts reading the banner find it.
        f"  HTTP API: POST {ready['urls']['http']}  (payload format 2.0, same key)",
        f"  Lambda:   {ready['function']} ({ready['handler']}), {ready['memory_mb']} MB, "
        f"{ready['cgroup']} (fidelity {ready['fidelity']}{share_text})",
        f"  DynamoDB: {ready['dynamodb_endpoint']} table {ready['table']}",
        f"  log:      {ready['log']}",
        "Ctrl-C stops it.",
    ]
    return "\n".join(lines)


async def serve_until_stopped(options: LocalStackOptions, *, json_ready: bool) -> None:
    stack = LocalStack(options)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await stack.start()
        assert stack.ready is not None
        key_given = options.api_key is not None
        banner = _describe(stack.ready, key_given=key_given)
        print(json.dumps(stack.ready) if json_ready else banner, flush=True)
        await stopping.wait()
    finally:
        await stack.stop()


# On AWS, API Gateway and Lambda's Runtime API don't share CPUs with your function; here they
# do. A higher priority for the process playing them keeps a busy host's sandboxes from
# starving it (measured: +5-15 % echo throughput at 8 connections). Root only; else skipped.
EMULATOR_NICE = -10
# Every client connection, sandbox pipe and Runtime API socket takes a descriptor here, and
# http.py keeps a reserve of them from clients: the soft limit is raised towards the hard
# one (as Locust raises its own), so a desktop's 1024 doesn't cap a sweep at ~750 users.
DESCRIPTOR_SOFT_LIMIT = 65536


def _raise_descriptor_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = DESCRIPTOR_SOFT_LIMIT
    if hard != resource.RLIM_INFINITY:
        wanted = min(hard, wanted)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def run(options: LocalStackOptions, *, json_ready: bool = False) -> None:
    """Run the local stack in this process until SIGINT/SIGTERM."""
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, 0, EMULATOR_NICE)
    _raise_descriptor_limit()
    with contextlib.suppress(ImportError):
        import uvloop  # the event loop's own overhead is part of every invocation

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(serve_until_stopped(options, json_ready=json_ready))
    sys.stdout.flush()
