"""Shared fixtures: real dynalite, the stack's own table definition, handler.py loaded fresh."""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from runner.emulator.dynamodb import Dynalite, create_table, environment_for
from runner.stack import PROJECT_ROOT, TableDefinition, resolved_config, table_definition

EVENTS_DIR = Path(__file__).parent / "events"


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


def pytest_report_header() -> str:
    return f"memsweep project root: {PROJECT_ROOT} (node tools: {os.path.isdir(PROJECT_ROOT / 'node_modules')})"
