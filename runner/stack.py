"""The reference stack as serverless.yml defines it: the one source of the table definition.

Variables (`${param:…}`, `${sls:stage}`, …) are resolved by the Serverless Framework itself
(`serverless print`), so the local stack sees exactly what a deployment would get.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from runner.errors import SetupError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SERVERLESS_YML = PROJECT_ROOT / "serverless.yml"
NODE_BIN = PROJECT_ROOT / "node_modules" / ".bin"
# `serverless print` starts Node and loads the framework: ~2 s here, 1 s is typical.
PRINT_TIMEOUT_S = 60

# CreateTable takes these; CloudFormation-only properties (Tags, StreamSpecification, …)
# have no effect on a local table's behaviour under load and are left out.
_CREATE_TABLE_KEYS = (
    "TableName",
    "AttributeDefinitions",
    "KeySchema",
    "BillingMode",
    "ProvisionedThroughput",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
)


def serverless_env() -> dict[str, str]:
    """Environment for the Serverless CLI: telemetry off, no interactive prompts."""
    env = dict(os.environ)
    env["SLS_TELEMETRY_DISABLED"] = "1"
    env["SLS_NOTIFICATIONS_MODE"] = "off"
    env.setdefault("CI", "1")
    return env


def node_tool(name: str) -> Path:
    """Path of a pinned Node tool from package.json, or a clear error naming the fix."""
    path = NODE_BIN / name
    if not path.exists():
        raise SetupError(f"{name} is not installed in {NODE_BIN}: run `npm ci` in {PROJECT_ROOT}")
    if shutil.which("node") is None:
        raise SetupError("node is not on PATH: install Node.js 20 or later")
    return path


def resolved_config(
    *, params: Mapping[str, str] | None = None, stage: str = "dev"
) -> dict[str, Any]:
    """serverless.yml with every variable resolved, as `serverless print` gives it."""
    command = [str(node_tool("serverless")), "print", "--format", "json", "--stage", stage]
    for key, value in (params or {}).items():
        command += ["--param", f"{key}={value}"]
    try:
        done = subprocess.run(
            command,
            cwd=PROJECT_ROOT,
            env=serverless_env(),
            capture_output=True,
            text=True,
            timeout=PRINT_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SetupError(f"`serverless print` took over {PRINT_TIMEOUT_S} s") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise SetupError(
            f"{SERVERLESS_YML}: `serverless print` failed: "
            + (" ".join(detail[-3:]) if detail else f"exit {done.returncode}")
        )
    config: dict[str, Any] = json.loads(done.stdout)
    return config


@dataclass(frozen=True)
class TableDefinition:
    """The stack's DynamoDB table, in the shape CreateTable takes."""

    logical_id: str
    create_table_args: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.create_table_args["TableName"])


def table_definition(config: Mapping[str, Any]) -> TableDefinition:
    """The single AWS::DynamoDB::Table resource of the resolved serverless config."""
    resources = config.get("resources", {}).get("Resources", {})
    tables = {
        logical_id: resource
        for logical_id, resource in resources.items()
        if resource.get("Type") == "AWS::DynamoDB::Table"
    }
    if len(tables) != 1:
        raise SetupError(
            f"{SERVERLESS_YML}: expected exactly one AWS::DynamoDB::Table under "
            f"resources.Resources, found {len(tables)}"
        )
    ((logical_id, resource),) = tables.items()
    properties = resource.get("Properties", {})
    missing = [
        key for key in ("TableName", "AttributeDefinitions", "KeySchema") if key not in properties
    ]
    if missing:
        raise SetupError(
            f"{SERVERLESS_YML}: resources.Resources.{logical_id}.Properties is missing "
            + ", ".join(missing)
        )
    args = {key: properties[key] for key in _CREATE_TABLE_KEYS if key in properties}
    args.setdefault("BillingMode", "PAY_PER_REQUEST")
    return TableDefinition(logical_id=logical_id, create_table_args=args)


# --- the usage plan: the API key's throttle ------------------------------------------------


@dataclass(frozen=True)
class RateLimit:
    """A usage plan's throttle: `rate` requests/s on average, `burst` at once (token bucket)."""

    rate: float
    burst: float


def usage_plan_limit(config: Mapping[str, Any]) -> RateLimit | None:
    """The usage plan's throttle in serverless.yml as the framework resolved it
    (provider.apiGateway.usagePlan.throttle); None when it sets none."""
    provider = config.get("provider") or {}
    plan = (provider.get("apiGateway") or {}).get("usagePlan") or {}
    limits = plan.get("throttle") if isinstance(plan, dict) else None
    if not limits:
        return None
    return RateLimit(rate=float(limits["rateLimit"]), burst=float(limits["burstLimit"]))


def default_rate_limit(path: Path = SERVERLESS_YML) -> RateLimit:
    """The usage plan serverless.yml deploys by default (params.default.throttleRate and
    throttleBurst): the pace for targets that cannot tell (a deployed stack, a URL)."""
    try:
        document = yaml.load(path.read_text(), Loader=_TagTolerantLoader)
        defaults = document["params"]["default"]
        return RateLimit(
            rate=float(defaults["throttleRate"]), burst=float(defaults["throttleBurst"])
        )
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise SetupError(
            f"{path}: params.default.throttleRate and throttleBurst: cannot read them ({exc})"
        ) from None


class _TagTolerantLoader(yaml.SafeLoader):
    """Safe YAML that reads CloudFormation tags (!Ref, !GetAtt) as None instead of failing."""


_TagTolerantLoader.add_multi_constructor("!", lambda loader, suffix, node: None)
