"""Shared fixtures: real dynalite, the stack's own table definition, handler.py loaded fresh."""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import pytest

from runner.emulator._dynamodb import Dynalite, create_table, environment_for
from runner.stack import PROJECT_ROOT, TableDefinition, resolved_config, table_definition
from runner.targets import LocalStackProcess

EVENTS_DIR = Path(__file__).parent / "events"
HANDLERS_DIR = Path(__file__).parent / "handlers"
# tests/handlers/behaviours.py: the request picks what it does (sleep, spin, allocate, crash …).
BEHAVIOURS_HANDLER = "behaviours.lambda_handler"


def load_event(name: str) -> Any:
    return json.loads((EVENTS_DIR / name).read_text())


@dataclass
class LambdaContext:
    """The fields of Lambda's context object that handler.py reads."""

    aws_request_id: str = "test-request-id"
    function_name: str = "LambdaFunctionOverHttps"
    memory_limit_in_mb: str = "128"


@pytest.fixture(scope="session")
def stack_config() -> dict[str, Any]:
    return resolved_config()


@pytest.fixture(scope="session")
def table_def(stack_config: dict[str, Any]) -> TableDefinition:
    return table_definition(stack_config)


@pytest.fixture(scope="session")
def dynalite() -> Iterator[Dynalite]:
    with Dynalite() as server:
        yield server


@pytest.fixture(scope="session")
def handler_module(dynalite: Dynalite, table_def: TableDefinition) -> Iterator[ModuleType]:
    """handler.py imported with its module-scope client pointed at dynalite."""
    patch = pytest.MonkeyPatch()
    for key, value in environment_for(dynalite.endpoint).items():
        patch.setenv(key, value)
    patch.setenv("TABLE_NAME", table_def.name)
    patch.syspath_prepend(str(PROJECT_ROOT))
    sys.modules.pop("handler", None)
    module = importlib.import_module("handler")
    yield module
    sys.modules.pop("handler", None)
    patch.undo()


@pytest.fixture
def table(dynalite: Dynalite, table_def: TableDefinition) -> TableDefinition:
    """An empty table, created from serverless.yml's definition, for each test."""
    create_table(dynalite.client(), table_def, reset=True)
    return table_def


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()


# --- the local stack ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def config_json(stack_config: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """serverless.yml resolved once (by `serverless print`) for every stack in the session."""
    path = tmp_path_factory.mktemp("config") / "serverless.json"
    path.write_text(json.dumps(stack_config))
    return path


def start_stack(config_json: Path, tmp_path: Path, *args: str) -> LocalStackProcess:
    """`runner local` on the session's config, its Lambda log in tmp_path, not calibrated."""
    stack = LocalStackProcess(
        [
            "--config-json",
            str(config_json),
            "--log",
            str(tmp_path / "lambda.log"),
            "--no-calibrate",
            *args,
        ]
    )
    stack.start()
    return stack


def stack_args(
    *, memory_mb: int, handler: str | None = None, timeout_s: float | None = None
) -> list[str]:
    """A test stack's options: one memory size, no usage-plan throttle (tested apart), and
    optionally a handler from tests/handlers and a function timeout (else serverless.yml's)."""
    args = ["--memory", str(memory_mb), "--no-usage-plan-throttle"]
    if handler is not None:
        args += ["--handler", handler, "--code-dir", str(HANDLERS_DIR)]
    if timeout_s is not None:
        args += ["--timeout", str(timeout_s)]
    return args


class StartStack(Protocol):
    def __call__(self, *args: str) -> LocalStackProcess: ...


@pytest.fixture(scope="module")
def start_module_stack(
    config_json: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[StartStack]:
    """Starts a local stack with these options (`stack_args` and any others) for one test
    module: a start takes seconds, so a module's stack fixture starts one and shares it. Every
    stack started stops after the module."""
    started: list[LocalStackProcess] = []

    def start(*args: str) -> LocalStackProcess:
        directory = tmp_path_factory.mktemp(request.module.__name__.rpartition(".")[2])
        stack = start_stack(config_json, directory, *args)
        started.append(stack)
        return stack

    yield start
    for stack in started:
        stack.stop()


@pytest.fixture(scope="module")
def small_stack(start_module_stack: StartStack) -> LocalStackProcess:
    """handler.py at 128 MB, Lambda's smallest size: where 1e999999999 used to be OOM-killed."""
    return start_module_stack(*stack_args(memory_mb=128))


def _tolerate_unsupported_resources_in_describe_stack_resource() -> None:
    """Work around a moto bug so `serverless remove` can run against moto server.

    moto's CloudFormation keeps None for resource types it does not model
    (AWS::ApiGateway::ApiKey, UsagePlan, UsagePlanKey, AWS::S3::BucketPolicy), and its
    DescribeStackResource then fails with a 500 on `None.logical_resource_id`. osls calls
    DescribeStackResource(ApiGatewayRestApi) before removing a stack with API keys. This
    skips the None entries; everything else is moto's own behaviour.
    """
    from moto.cloudformation import models
    from moto.cloudformation.exceptions import ValidationError

    def describe_stack_resource(
        self: models.CloudFormationBackend, stack_name: str, logical_resource_id: str
    ) -> Any:
        stack = self.get_stack(stack_name)
        for resource in stack.stack_resources:
            if getattr(resource, "logical_resource_id", None) == logical_resource_id:
                return stack, resource
        raise ValidationError(
            stack_name, f"Resource {logical_resource_id} does not exist for stack {stack_name}"
        )

    models.CloudFormationBackend.describe_stack_resource = describe_stack_resource  # type: ignore[method-assign]


@contextlib.contextmanager
def moto_server_endpoint(*, reset: bool = True) -> Iterator[str]:
    """A fresh moto server (real HTTP on a free loopback port) for the AWS control plane.

    `reset=False` leaves moto's state as it is: it is global to the process, so a test that
    runs beside the session's deployment (`moto_stack`) and uses names of its own keeps it."""
    from moto.server import ThreadedMotoServer

    _tolerate_unsupported_resources_in_describe_stack_resource()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        # moto's state is global to the process: start every server from a clean slate.
        if reset:
            urllib.request.urlopen(
                urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
            )
        yield endpoint
    finally:
        server.stop()


# The stack deployed once to one moto server for the whole session (an osls deploy costs
# about 20 s of CI): test_stack reads it back, test_aws_target sweeps it, and the test marked
# `removes_the_moto_stack` runs last and removes it.
MOTO_STAGE = "awstest"
MOTO_API_KEY = "moto-and-local-share-this-key-0123"


@pytest.fixture(scope="session")
def moto_stack() -> Iterator[dict[str, str]]:
    """serverless.yml deployed by osls (the real deploy path) at 128 MB to a moto server."""
    import boto3

    from tests.test_stack import serverless

    with moto_server_endpoint() as endpoint:
        env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        serverless("deploy", "--stage", MOTO_STAGE, "--param", "memory=128", env=env)
        # moto's CloudFormation does not model AWS::ApiGateway::ApiKey: create the key the
        # stack would have, under the name serverless.yml gives it.
        boto3.client(
            "apigateway",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).create_api_key(name=f"memsweep-{MOTO_STAGE}-key", value=MOTO_API_KEY, enabled=True)
        yield env


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The test that removes the shared moto stack runs after every test that uses it."""
    last = [item for item in items if item.get_closest_marker("removes_the_moto_stack")]
    items[:] = [item for item in items if item not in last] + last


def pytest_report_header() -> str:
    node_tools = (PROJECT_ROOT / "node_modules").is_dir()
    return f"memsweep project root: {PROJECT_ROOT} (node_modules present: {node_tools})"
