"""A stack deployed to AWS with `npx serverless deploy`: memory, architecture and handler set
with the Lambda API, the load sent to its REST or its HTTP API.

boto3 with its normal credential chain (AWS_ENDPOINT_URL is honoured, which is how the
tests run it against a moto server). The stack is found by name in CloudFormation
(outputs, falling back to its resources); the API key's value is read from API Gateway.
Every change waits until LastUpdateStatus is Successful (no load before the update is
live) and retries ResourceConflictException with backoff; the original memory size,
architecture and handler are put back by `restore()`, which the sweep calls in `finally`
(so also after an exception, SIGINT or SIGTERM).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound, WaiterError

from runner import control_api
from runner.errors import BadInput, MemsweepError, one_line
from runner.invocations import Phases, attribute
from runner.lambda_facts import API_TYPES, ARCHITECTURES, DEFAULT_API
from runner.lambda_logs import PLATFORM_REPORT
from runner.results import (
    LOGS_UNAVAILABLE,
    Fidelity,
    Invocations,
    OutsideWindow,
    TargetInfo,
    WindowMetrics,
)
from runner.scenario import AwsTarget
from runner.stack import RateLimit
from runner.targets._base import Target
from runner.targets._cloudwatch import MetricsOf, metrics_wait_s, read_window
from runner.targets._insights import (
    INSIGHTS_ABOVE_INVOCATIONS,
    InsightsError,
    InsightsReader,
    read_step,
)

# Lambda refuses a configuration change while another is in progress.
CONFLICT_RETRIES = 8
CONFLICT_BACKOFF_S = 0.5
# An update is polled once a second (GetFunctionConfiguration's LastUpdateStatus) for at most
# this many polls: about 5 minutes, botocore's own bound for FunctionUpdatedV2 (1 s x 300).
UPDATE_WAIT_S = 300
# CloudWatch Logs ingests with a lag: re-read a window until its count stops changing.
LOG_SETTLE_POLLS = 6
LOG_SETTLE_S = 5.0
# A step's logs are read from a little before its load (seeding's invocations are counted
# apart, not lost) to after its window (a REPORT line is written when its invocation ends,
# up to the function timeout later).
LOG_LOOKBEHIND_S = 30.0
LOG_LOOKAHEAD_S = 30.0


# A stack in one of these states has no function to sweep (a failed create rolls back to
# nothing) or is going away; CloudFormation's stack status values, DescribeStacks reference.
UNUSABLE_STACK = (
    "CREATE_IN_PROGRESS",
    "CREATE_FAILED",
    "REVIEW_IN_PROGRESS",
    "ROLLBACK_IN_PROGRESS",
    "ROLLBACK_FAILED",
    "ROLLBACK_COMPLETE",
)
# STS error codes for credentials AWS refuses (STS and CloudFormation error references).
REFUSED_CREDENTIALS = {
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "AuthFailure",
}


# Seeding sends POST (runner/load/_seeding.py); API Gateway names a method's throttle by
# resource path and HTTP method: "/DynamoDBManager/POST" in a usage plan's
# apiStages[].throttle (ApiStage reference), "DynamoDBManager/POST" or "*/*" (every method) in
# a stage's methodSettings (MethodSetting reference; "~1" escapes "/" in patch paths, so a key
# may carry it).
SEED_METHOD = "POST"
ALL_METHODS = "*/*"

# The route both APIs serve (serverless.yml: `path: DynamoDBManager`). serverless.yml's outputs
# ApiUrl and HttpApiRouteUrl are the routes' full URLs; osls's own outputs name the APIs' bases:
# ServiceEndpoint (REST, https://<id>.execute-api.<region>.amazonaws.com/<stage>) and
# HttpApiUrl (HTTP, https://<id>.execute-api.<region>.amazonaws.com: its $default stage has
# no path). A stack deployed before the HTTP API has none of the HTTP ones.
ROUTE_PATH = "DynamoDBManager"
# What Lambda accepts as a Python handler: `module.function`, the module a dotted or slashed
# path in the package (awslambdaric turns "/" into "."); Handler is at most 128 characters
# (UpdateFunctionConfiguration reference).
HANDLER_PATTERN = re.compile(r"[A-Za-z_]\w*(?:[./][A-Za-z_]\w*)*\.[A-Za-z_]\w*")
MAX_HANDLER_CHARS = 128


class AwsTargetError(MemsweepError):
    exit_code = 3


def _session(spec: AwsTarget) -> boto3.session.Session:
    # boto3 reads AWS_DEFAULT_REGION only (botocore's configprovider); AWS_REGION is what the
    # other AWS SDKs and CI credential actions set, so it counts too.
    region = spec.region or os.environ.get("AWS_REGION") or None
    try:
        return boto3.session.Session(region_name=region)
    except ProfileNotFound as exc:
        raise BadInput(
            f"AWS configuration: {_said(exc)}: name a profile of ~/.aws/config in AWS_PROFILE, "
            "or unset it"
        ) from None
    except BotoCoreError as exc:
        raise BadInput(f"AWS configuration: {_said(exc)}") from None


def preflight(spec: AwsTarget) -> None:
    """Region, credentials and the stack, checked before the run starts (nothing written).

    Each missing piece is one line with its fix (exit 2); AWS out of reach is exit 3. Without
    this, boto3's NoRegionError surfaced as an "internal error" after the run had begun.
    """
    metrics_wait_s()  # a bad $MEMSWEEP_METRICS_WAIT_S: one line before anything starts
    session = _session(spec)
    region = session.region_name
    if not region:
        raise BadInput(
            "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), --region, or target.region "
            "in the scenario"
        )
    try:
        credentials = session.get_credentials()
    except BotoCoreError as exc:  # a broken profile, an expired SSO token, ...
        raise BadInput(f"no usable AWS credentials: {_said(exc)}") from None
    if credentials is None:
        raise BadInput(
            "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, "
            "or run `aws configure` (or `aws sso login`)"
        )
    stack_name = f"{spec.stack}-{spec.stage}"
    config = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=10)
    try:
        stack = session.client("cloudformation", config=config).describe_stacks(
            StackName=stack_name
        )["Stacks"][0]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        # CloudFormation answers a missing stack with ValidationError "Stack with id X does
        # not exist" (boto/boto3#2807).
        if error.get("Code") == "ValidationError" and "does not exist" in error.get("Message", ""):
            raise BadInput(
                f"stack {stack_name} not found in {region}: deploy it with `npx serverless "
                f"deploy --stage {spec.stage} --region {region}`, or name the deployed one "
                "with --stage/--region/--stack"
            ) from None
        if error.get("Code") in REFUSED_CREDENTIALS:
            raise BadInput(
                f"AWS refused the credentials ({error.get('Code')}): renew them, or check "
                "AWS_PROFILE / AWS_ACCESS_KEY_ID"
            ) from None
        raise AwsTargetError(
            f"AWS: looking up stack {stack_name} in {region}: {_said(exc)}"
        ) from None
    except BotoCoreError as exc:
        raise AwsTargetError(
            f"AWS: looking up stack {stack_name} in {region}: {_said(exc)}"
        ) from None
    status = str(stack.get("StackStatus", ""))
    if status in UNUSABLE_STACK or status.startswith("DELETE_"):
        raise BadInput(
            f"stack {stack_name} in {region} is {status}: fix the deploy and run `npx "
            f"serverless deploy --stage {spec.stage} --region {region}` again"
        )


def _method_key(stack_url: str, stage: str) -> str:
    """The method key of seeding's requests: the resource path follows the stage in the URL
    (https://<api>.execute-api.<region>.amazonaws.com/<stage>/DynamoDBManager)."""
    path = urlsplit(stack_url).path.strip("/")
    if path.startswith(f"{stage}/") or path == stage:
        path = path[len(stage) :].strip("/")
    return _normalised(f"{path}/{SEED_METHOD}")


def _normalised(key: str) -> str:
    return key.replace("~1", "/").strip("/")


def _said(exc: BaseException) -> str:
    """What an AWS call's error said, as one line of at most 300 characters: a proxy or a
    stand-in for an AWS endpoint may answer with an HTML page, which botocore puts whole into
    the message (moto's 404 page for a call it lacks took 7 lines of a one-line warning)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [repr(exc)]
    said = one_line(lines[0]) + (" …" if len(lines) > 1 else "")
    return said if len(said) <= 300 else said[:299] + "…"


def _what_to_do(error: ClientError, fields: Mapping[str, Any]) -> str:
    """What to do about a refused update, when AWS's message says: a memory size above the
    account's quota ("New AWS accounts have reduced concurrency and memory quotas", Lambda
    quotas page) is refused as an invalid MemorySize."""
    message = str(error.response.get("Error", {}).get("Message", ""))
    code = error.response.get("Error", {}).get("Code")
    if (
        "MemorySize" in fields
        and code == "InvalidParameterValueException"
        and ("MemorySize" in message or "memory" in message.lower())
    ):
        return (
            f". This account does not allow {fields['MemorySize']} MB (new accounts have "
            "reduced memory quotas): ask for an increase in Service Quotas (AWS Lambda), or "
            "sweep the sizes it allows (--memory)"
        )
    return ""


def _is_report(message: str) -> bool:
    """A text REPORT line or a JSON platform.report record (the filter also passes handler
    lines)."""
    return message.startswith("REPORT") or PLATFORM_REPORT in message


def log_source(function: str, configuration: Mapping[str, Any]) -> tuple[str, str]:
    """(log group, log format) of a function, from its GetFunctionConfiguration: Lambda's
    advanced logging controls may name a custom group (LoggingConfig.LogGroup) and the JSON
    format; without them, /aws/lambda/<function> and text."""
    logging = configuration.get("LoggingConfig") or {}
    group = str(logging.get("LogGroup") or f"/aws/lambda/{function}")
    return group, str(logging.get("LogFormat") or "Text")


def _lowest(throttles: list[dict[str, Any]]) -> RateLimit | None:
    """The lowest rate and burst of several throttles; a negative value means none set
    (-1 is how API Gateway reports stage throttling that is off)."""
    rates = [float(t["rateLimit"]) for t in throttles if _is_limit(t.get("rateLimit"))]
    bursts = [float(t["burstLimit"]) for t in throttles if _is_limit(t.get("burstLimit"))]
    if not rates:
        return None
    rate = min(rates)
    # A rate with no burst set: count on a bucket one second deep (seeding paces on the rate).
    return RateLimit(rate=rate, burst=min(bursts) if bursts else rate)


def _is_limit(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def _default_rate_limit(why: str) -> RateLimit:
    """serverless.yml's default plan, with one line on stderr saying why it is used."""
    from runner.stack import default_rate_limit

    limit = default_rate_limit()
    print(
        f"memsweep: AWS: {why}; seeding paces to serverless.yml's default usage plan "
        f"({limit.rate:g} requests/s, burst {limit.burst:g})",
        file=sys.stderr,
    )
    return limit


def http_route_url(outputs: dict[str, str], resources: dict[str, str], region: str) -> str:
    """The HTTP API's route: HttpApiRouteUrl (serverless.yml's output), else HttpApiUrl
    (osls's, the API's base) or the HttpApi resource's id, with the route appended; "" when
    the stack has no HTTP API."""
    if outputs.get("HttpApiRouteUrl"):
        return outputs["HttpApiRouteUrl"]
    base = outputs.get("HttpApiUrl", "")
    if not base and resources.get("HttpApi"):
        base = f"https://{resources['HttpApi']}.execute-api.{region}.amazonaws.com"
    if not base:
        return ""
    if urlsplit(base).path.strip("/"):
        return base  # already a route's URL
    return f"{base.rstrip('/')}/{ROUTE_PATH}"


def execute_api_id(url: str) -> str | None:
    """The API id in an API's default endpoint, https://<id>.execute-api.<region>.amazonaws.com
    (API Gateway developer guide, "Invoking a REST API"/"HTTP API" default endpoint); None for
    another address (a custom domain)."""
    host = urlsplit(url).hostname or ""
    labels = host.split(".")
    if len(labels) > 2 and labels[1] == "execute-api" and labels[0]:
        return labels[0]
    return None


@dataclass(frozen=True)
class Package:
    """The deployment package `serverless deploy` gave the function, as its stack's template
    names it, checked to be the code the function runs."""

    bucket: str
    key: str
    version: str | None  # the S3 object version, when the bucket keeps versions
    files: frozenset[str]  # the names in the zip
    archive: bytes = field(repr=False, default=b"")  # the zip itself

    def handler_problem(self, handler: str) -> str | None:
        """Why this package cannot run `handler` (its module missing, not parsing, or not
        defining the function), read as the local stack reads a code directory
        (control_api.handler_problem: the source parsed, never imported); None if it can."""
        candidates = handler_module_files(handler)
        member = next((name for name in candidates if name in self.files), None)
        if member is None:
            return (
                f"{candidates[0]} is not in the deployed package: add it to serverless.yml's "
                "package.patterns and redeploy"
            )
        with tempfile.TemporaryDirectory(prefix="memsweep-package-") as directory:
            with zipfile.ZipFile(io.BytesIO(self.archive)) as archive:
                archive.extract(member, directory)
            problem = control_api.handler_problem(handler, Path(directory))
        if problem is None:
            return None
        return problem.replace(f"{directory}/", "").replace(directory, "the deployed package")


def _resolve(value: Any, resources: dict[str, str]) -> str | None:
    """A template value that is a literal or a {"Ref": logical id} of a resource; else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Ref"} and isinstance(value["Ref"], str):
        return resources.get(value["Ref"])
    return None


def handler_module_files(handler: str) -> tuple[str, str]:
    """The files in a package that can hold a handler's module: `a.b.f` → a/b.py or
    a/b/__init__.py."""
    module = handler.rsplit(".", 1)[0].replace(".", "/")
    return f"{module}.py", f"{module}/__init__.py"


def handler_problem(handler: str) -> str | None:
    """Why a value cannot be a Python handler name (the value itself not repeated), or None."""
    if len(handler) > MAX_HANDLER_CHARS:
        return f"longer than Lambda's {MAX_HANDLER_CHARS} characters"
    if not HANDLER_PATTERN.fullmatch(handler):
        return (
            "must be module.function (e.g. handler.lambda_handler): a Python module in the "
            "deployed package and a function in it"
        )
    return None


class AwsStackTarget(Target):
    kind = "aws"

    def __init__(self, spec: AwsTarget) -> None:
        self.spec = spec
        self.stack_name = f"{spec.stack}-{spec.stage}"
        self.metrics_wait_s = metrics_wait_s()
        session = _session(spec)
        config = Config(retries={"mode": "standard", "max_attempts": 5})
        self.region = session.region_name or "us-east-1"
        self.cloudformation = session.client("cloudformation", config=config)
        self.lambda_client = session.client("lambda", config=config)
        self.apigateway = session.client("apigateway", config=config)
        self.logs = session.client("logs", config=config)
        self.cloudwatch = session.client("cloudwatch", config=config)
        self.s3 = session.client("s3", config=config)
        self.function = ""
        self._stack: tuple[dict[str, str], dict[str, str]] | None = None  # outputs, resources
        self._url = ""
        self._urls: dict[str, str] = {}  # by API type: what set_api switches between
        self.api: str = DEFAULT_API
        self._api_key: str | None = None
        self._api_key_id: str | None = None
        self._api_id: str | None = None
        self._method_key = ""
        self._http_api_id: str | None = None
        self._rest_api_name: tuple[str] | None = None  # read once; "" when it cannot be
        self._concurrency: tuple[int | None, str] | None = None
        self.table = ""
        self._rate_limit: tuple[RateLimit | None] | None = None
        self._package: Package | str | None = None  # str: why there is none
        # The configuration found at start() (None before), what is live now, and whether
        # anything was asked to change (restore() has nothing to do until then).
        self.original_memory: int | None = None
        self.original_architecture: str | None = None
        self.original_handler: str | None = None
        self.original_code_sha256: str | None = None
        self.configured_memory: int | None = None
        self.architecture: str | None = None
        self.handler: str | None = None
        self._changed = False
        # Where and how the function logs (LoggingConfig; the defaults before start()).
        self.log_group = ""
        self.log_format = "Text"

    # -- discovery -----------------------------------------------------------------------------

    def start(self) -> None:
        try:
            outputs, resources = self._read_stack()
            self.function = outputs.get("FunctionName") or resources.get(
                "LambdaFunctionOverHttpsLambdaFunction", ""
            )
            if not self.function:
                raise AwsTargetError(
                    f"stack {self.stack_name}: no FunctionName output and no "
                    "LambdaFunctionOverHttpsLambdaFunction resource"
                )
            api_id = resources.get("ApiGatewayRestApi")
            self._api_id = api_id
            stack_url = self._rest_url(outputs, api_id)
            self._url = self.spec.url or stack_url
            if not self._url:
                raise AwsTargetError(f"stack {self.stack_name}: no ApiUrl output or REST API")
            self._urls = {DEFAULT_API: self._url}
            self.table = outputs.get("TableName") or resources.get("LambdaApigatewayTable", "")
            http_url = http_route_url(outputs, resources, self.region)
            self._http_api_id = (
                resources.get("HttpApi") or outputs.get("HttpApiId") or execute_api_id(http_url)
            )
            if http_url:
                self._urls["http"] = http_url
            self._method_key = _method_key(stack_url, self.spec.stage)
            self._api_key_id, self._api_key = self._find_api_key(
                outputs.get("ApiKeyId") or resources.get("ApiGatewayApiKey1")
            )
            configuration = self.lambda_client.get_function_configuration(
                FunctionName=self.function
            )
            self.original_memory = int(configuration["MemorySize"])
            self.configured_memory = self.original_memory
            self.original_architecture = (configuration.get("Architectures") or ["x86_64"])[0]
            self.architecture = self.original_architecture
            self.original_handler = str(configuration.get("Handler") or "")
            self.handler = self.original_handler
            self.original_code_sha256 = str(configuration.get("CodeSha256") or "")
            self.log_group, self.log_format = log_source(self.function, configuration)
        except (ClientError, BotoCoreError) as exc:
            raise AwsTargetError(f"AWS: finding stack {self.stack_name}: {_said(exc)}") from None

    def _rest_url(self, outputs: dict[str, str], api_id: str | None) -> str:
        if outputs.get("ApiUrl"):
            return outputs["ApiUrl"]
        if outputs.get("ServiceEndpoint"):
            return f"{outputs['ServiceEndpoint'].rstrip('/')}/{ROUTE_PATH}"
        if api_id:
            return (
                f"https://{api_id}.execute-api.{self.region}.amazonaws.com/"
                f"{self.spec.stage}/{ROUTE_PATH}"
            )
        return ""

    def _read_stack(self) -> tuple[dict[str, str], dict[str, str]]:
        """The stack's outputs and its resources (logical → physical id), read once."""
        if self._stack is None:
            self._stack = self._describe_stack()
        return self._stack

    def _describe_stack(self) -> tuple[dict[str, str], dict[str, str]]:
        try:
            stack = self.cloudformation.describe_stacks(StackName=self.stack_name)["Stacks"][0]
        except ClientError as exc:
            raise AwsTargetError(
                f"no CloudFormation stack {self.stack_name} in {self.region}: deploy it with "
                f"`npx serverless deploy --stage {self.spec.stage}` ({_said(exc)})"
            ) from None
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}
        resources: dict[str, str] = {}
        paginator = self.cloudformation.get_paginator("list_stack_resources")
        for page in paginator.paginate(StackName=self.stack_name):
            for resource in page["StackResourceSummaries"]:
                if resource.get("PhysicalResourceId"):
                    resources[resource["LogicalResourceId"]] = resource["PhysicalResourceId"]
        return outputs, resources

    def _find_api_key(self, key_id: str | None) -> tuple[str | None, str | None]:
        """The API key's id (its usage plans are found by it) and its value."""
        if key_id:
            key = self.apigateway.get_api_key(apiKey=key_id, includeValue=True)
            return key_id, str(key["value"])
        # No output or resource (e.g. an older stack): the key serverless.yml names.
        name = f"memsweep-{self.spec.stage}-key"
        keys = self.apigateway.get_api_keys(nameQuery=name, includeValues=True)["items"]
        return (str(keys[0]["id"]), str(keys[0]["value"])) if keys else (None, None)

    # -- throttle ------------------------------------------------------------------------------

    def rate_limit(self) -> RateLimit | None:
        """The lowest throttle API Gateway puts on seeding's requests (None: none at all).

        A request passes the usage plan of its API key (the plan's throttle, and the plan's
        throttle for the method if it sets one) and the stage's own method throttling; the
        lowest rate and the lowest burst of these is what seeding can count on. Read once per
        run. When the plans cannot be read (AccessDenied: apigateway:GET is not granted), or
        the stack has no REST API to read them from, one line says so and seeding paces to
        the plan serverless.yml deploys by default.
        """
        if self._rate_limit is None:
            self._rate_limit = (self._read_rate_limit(),)
        return self._rate_limit[0]

    def _read_rate_limit(self) -> RateLimit | None:
        if not self._api_id:
            return _default_rate_limit(f"stack {self.stack_name} has no ApiGatewayRestApi")
        where = f"API {self._api_id} stage {self.spec.stage}"
        try:
            throttles = self._plan_throttles() + self._stage_throttles()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            why = error.get("Code") or "refused"
            if error.get("Message"):
                why = f"{why}: {error['Message']}"
            fix = ""
            if "AccessDenied" in str(error.get("Code")):
                fix = f"; grant apigateway:GET on /usageplans and /restapis/{self._api_id}/stages"
            return _default_rate_limit(f"cannot read the throttle of {where} ({why}){fix}")
        except BotoCoreError as exc:
            return _default_rate_limit(f"cannot read the throttle of {where} ({_said(exc)})")
        return _lowest(throttles)

    def _plan_throttles(self) -> list[dict[str, Any]]:
        """The throttles of the usage plans that cover this API stage (the key's, if known)."""
        paginator = self.apigateway.get_paginator("get_usage_plans")
        pages = (
            paginator.paginate(keyId=self._api_key_id) if self._api_key_id else paginator.paginate()
        )
        throttles: list[dict[str, Any]] = []
        for page in pages:
            for plan in page.get("items") or []:
                for api_stage in plan.get("apiStages") or []:
                    if (
                        api_stage.get("apiId") != self._api_id
                        or api_stage.get("stage") != self.spec.stage
                    ):
                        continue
                    throttles.append(plan.get("throttle") or {})
                    for key, throttle in (api_stage.get("throttle") or {}).items():
                        if _normalised(key) == self._method_key:
                            throttles.append(throttle or {})
        return throttles

    def _stage_throttles(self) -> list[dict[str, Any]]:
        """The stage's method throttling for every method and for seeding's method."""
        stage = self.apigateway.get_stage(restApiId=self._api_id, stageName=self.spec.stage)
        throttles: list[dict[str, Any]] = []
        for key, setting in (stage.get("methodSettings") or {}).items():
            if _normalised(key) in (ALL_METHODS, self._method_key):
                throttles.append(
                    {
                        "rateLimit": (setting or {}).get("throttlingRateLimit"),
                        "burstLimit": (setting or {}).get("throttlingBurstLimit"),
                    }
                )
        return throttles

    @property
    def url(self) -> str:
        return self._url

    def headers(self) -> dict[str, str]:
        return {"x-api-key": self._api_key} if self._api_key else {}

    def concurrency_limit(self) -> tuple[int | None, str]:
        """The function's reserved concurrency if it has one (GetFunctionConcurrency), else
        the account's unreserved concurrency (GetAccountSettings): what throttles the load
        before the function runs. New accounts have reduced concurrency quotas."""
        try:
            reserved = self.lambda_client.get_function_concurrency(FunctionName=self.function)
            if reserved.get("ReservedConcurrentExecutions") is not None:
                limit = int(reserved["ReservedConcurrentExecutions"])
                return limit, f"{self.function}'s reserved concurrency"
            account = self.lambda_client.get_account_settings()["AccountLimit"]
            return int(account["UnreservedConcurrentExecutions"]), (
                f"the account's unreserved concurrency in {self.region} (of "
                f"{account['ConcurrentExecutions']} in all)"
            )
        except (ClientError, BotoCoreError, KeyError, TypeError, ValueError) as exc:
            return None, (
                f"warning: the account's Lambda concurrency could not be read ({_said(exc)}); the "
                "plan is not checked against it"
            )

    # -- memory, architecture, handler ---------------------------------------------------------

    def set_memory(self, memory_mb: int) -> None:
        self._changed = True
        what = f"setting {self.function} to {memory_mb} MB"
        self._update(what, self.lambda_client.update_function_configuration, MemorySize=memory_mb)
        configuration = self._wait_live(what)
        self.configured_memory = int(configuration["MemorySize"])
        if self.configured_memory != memory_mb:
            raise AwsTargetError(
                f"AWS: {self.function} reports {self.configured_memory} MB after setting "
                f"{memory_mb} MB"
            )

    def set_architecture(self, architecture: str) -> None:
        """The same package deployed again with another instruction set (UpdateFunctionCode
        with Architectures: a change of code, so new execution environments follow)."""
        if architecture not in ARCHITECTURES:
            raise ValueError(
                f"architecture {architecture!r}: must be one of {', '.join(ARCHITECTURES)}"
            )
        if architecture == self.architecture:
            return
        package = self.package()
        self._changed = True
        self._deploy(package, architecture)

    def set_handler(self, handler: str) -> None:
        problem = handler_problem(handler)
        if problem:
            raise ValueError(f"handler {handler[:40]!r}: {problem}")
        if handler == self.handler:
            return
        self._changed = True
        what = f"setting {self.function}'s handler to {handler}"
        self._update(what, self.lambda_client.update_function_configuration, Handler=handler)
        self.handler = str(self._wait_live(what).get("Handler") or "")
        if self.handler != handler:
            raise AwsTargetError(f"AWS: {self.function} runs {self.handler} after {what}")

    def restore(self) -> None:
        """Put back the memory, architecture and handler found at start(), whichever differ
        from the function's live configuration now (read, not remembered: a change cut short
        by SIGINT is undone too). Safe to call twice: the second call finds nothing to do.
        Every setting is tried even when one fails; the error names each that failed."""
        if not self._changed or self.original_memory is None:
            return
        failed: list[str] = []
        try:
            live = self._wait_live(f"restoring {self.function}")
            fields: dict[str, Any] = {}
            if int(live["MemorySize"]) != self.original_memory:
                fields["MemorySize"] = self.original_memory
            if self.original_handler and live.get("Handler") != self.original_handler:
                fields["Handler"] = self.original_handler
            if fields:
                what = f"restoring {self.function}'s {' and '.join(sorted(fields))}"
                self._update(what, self.lambda_client.update_function_configuration, **fields)
                live = self._wait_live(what)
            self.configured_memory = int(live["MemorySize"])
            self.handler = str(live.get("Handler") or "")
            if self.configured_memory != self.original_memory:
                failed.append(f"memory is {self.configured_memory} MB")
            if self.original_handler and self.handler != self.original_handler:
                failed.append(f"handler is {self.handler}")
        except AwsTargetError as exc:
            failed.append(str(exc))
        try:
            live_architecture = self._live_architecture()
            if self.original_architecture and live_architecture != self.original_architecture:
                self._deploy(self.package(), self.original_architecture)
        except AwsTargetError as exc:
            failed.append(str(exc))
        if failed:
            raise AwsTargetError(
                f"AWS: {self.function} not fully restored to {self._original()}: "
                + "; ".join(failed)
            )

    def _original(self) -> str:
        return f"{self.original_memory} MB, {self.original_architecture}, {self.original_handler}"

    def _live_architecture(self) -> str:
        try:
            configuration = self.lambda_client.get_function_configuration(
                FunctionName=self.function
            )
        except (ClientError, BotoCoreError) as exc:
            raise AwsTargetError(f"AWS: reading {self.function}: {_said(exc)}") from None
        self.architecture = (configuration.get("Architectures") or ["x86_64"])[0]
        return self.architecture

    def _deploy(self, package: Package, architecture: str) -> None:
        what = f"deploying {self.function}'s package for {architecture}"
        version = {"S3ObjectVersion": package.version} if package.version else {}
        self._update(
            what,
            self.lambda_client.update_function_code,
            S3Bucket=package.bucket,
            S3Key=package.key,
            Architectures=[architecture],
            **version,
        )
        configuration = self._wait_live(what)
        self.architecture = (configuration.get("Architectures") or ["x86_64"])[0]
        if self.architecture != architecture:
            raise AwsTargetError(f"AWS: {self.function} runs {self.architecture} after {what}")
        if self.original_code_sha256 and configuration.get("CodeSha256") not in (
            None,
            self.original_code_sha256,
        ):
            raise AwsTargetError(
                f"AWS: {self.function}'s code changed (CodeSha256 {configuration['CodeSha256']}, "
                f"was {self.original_code_sha256}) after {what}"
            )

    def _update(self, what: str, call: Callable[..., Any], **fields: Any) -> None:
        """One Lambda update, retried while another update is in progress."""
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                call(FunctionName=self.function, **fields)
                return
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code != "ResourceConflictException" or attempt == CONFLICT_RETRIES:
                    raise AwsTargetError(
                        f"AWS: {what}: {_said(exc)}{_what_to_do(exc, fields)}"
                    ) from None
                time.sleep(CONFLICT_BACKOFF_S * 2**attempt)
            except BotoCoreError as exc:
                raise AwsTargetError(f"AWS: {what}: {_said(exc)}") from None

    def _wait_live(self, what: str) -> dict[str, Any]:
        """Wait until the last update is live (LastUpdateStatus Successful; at most
        UPDATE_WAIT_S polls a second apart), then the function's configuration."""
        try:
            self.lambda_client.get_waiter("function_updated").wait(
                FunctionName=self.function,
                WaiterConfig={"Delay": 1, "MaxAttempts": UPDATE_WAIT_S},
            )
            configuration: dict[str, Any] = dict(
                self.lambda_client.get_function_configuration(FunctionName=self.function)
            )
        except WaiterError as exc:
            raise AwsTargetError(
                f"AWS: {self.function} did not finish updating ({what}): {_said(exc)}"
            ) from None
        except (ClientError, BotoCoreError) as exc:
            raise AwsTargetError(f"AWS: {what}: {_said(exc)}") from None
        return configuration

    # -- the package UpdateFunctionCode is given -------------------------------------------------

    def package(self) -> Package:
        """The function's deployment package, found once (AwsTargetError: why there is none).

        Changing the architecture needs UpdateFunctionCode with the code the function already
        runs. Two places hold it: GetFunction's Code.Location, a presigned URL to download it
        (then re-upload as ZipFile, at most 50 MB, and moto's Location is not a real address),
        and the S3Bucket/S3Key that the stack's template gives the function: the artifact
        `serverless deploy` uploaded to its deployment bucket. The second is used: Lambda reads
        it straight from S3 (no upload, no size limit beyond Lambda's own), on AWS and on moto
        alike, with s3:GetObject on the deployment bucket, which whoever deployed it has. It is
        read once here and its SHA-256 checked against the function's CodeSha256, so a
        function whose code changed since the deploy (e.g. `serverless deploy function`) is
        refused rather than quietly given the stack's older package; the object version is
        pinned when the bucket keeps versions. The zip's names also tell whether a handler's
        module is in the package (refuses).
        """
        if self._package is None:
            try:
                self._package = self._find_package()
            except AwsTargetError as exc:
                self._package = str(exc)
        if isinstance(self._package, str):
            raise AwsTargetError(self._package)
        return self._package

    def _find_package(self) -> Package:
        redeploy = (
            f"redeploy with `npx serverless deploy --stage {self.spec.stage} "
            f"--region {self.region}`"
        )
        _, resources = self._read_stack()
        try:
            body = self.cloudformation.get_template(StackName=self.stack_name)["TemplateBody"]
        except (ClientError, BotoCoreError) as exc:
            raise AwsTargetError(
                f"AWS: reading stack {self.stack_name}'s template: {_said(exc)}"
            ) from None
        try:
            template = json.loads(body) if isinstance(body, str) else body
        except json.JSONDecodeError:
            raise AwsTargetError(
                f"stack {self.stack_name}'s template is not JSON (not deployed by serverless?): "
                "cannot find the function's package"
            ) from None
        logical = next((k for k, v in resources.items() if v == self.function), "")
        code = (((template.get("Resources") or {}).get(logical) or {}).get("Properties") or {}).get(
            "Code"
        ) or {}
        bucket = _resolve(code.get("S3Bucket"), resources)
        key = _resolve(code.get("S3Key"), resources)
        if not bucket or not key:
            raise AwsTargetError(
                f"stack {self.stack_name}: the template gives {logical or self.function} no "
                f"S3Bucket/S3Key package (Code: {sorted(code)}): {redeploy}"
            )
        where = f"s3://{bucket}/{key}"
        try:
            got = self.s3.get_object(Bucket=bucket, Key=key)
            data: bytes = got["Body"].read()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise AwsTargetError(
                f"the function's package {where} cannot be read ({error.get('Code')}): "
                f"grant s3:GetObject on it, or {redeploy}"
            ) from None
        except BotoCoreError as exc:
            raise AwsTargetError(f"AWS: reading the package {where}: {_said(exc)}") from None
        sha256 = base64.b64encode(hashlib.sha256(data).digest()).decode()
        if self.original_code_sha256 and sha256 != self.original_code_sha256:
            raise AwsTargetError(
                f"{self.function} does not run its stack's package {where} (CodeSha256 "
                f"{self.original_code_sha256}, the package's {sha256}: changed since the "
                f"deploy?): {redeploy}"
            )
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                files = frozenset(archive.namelist())
        except zipfile.BadZipFile:
            raise AwsTargetError(f"the function's package {where} is not a zip file") from None
        version = got.get("VersionId")
        return Package(
            bucket=bucket,
            key=key,
            version=str(version) if version and version != "null" else None,
            files=files,
            archive=data,
        )

    # -- the axes: what this target can run, which API the load goes to -------------------------

    def refuses(self, axis: str, value: str) -> str | None:
        """Format first (no AWS call); once started, what the stack can do: an HTTP API among
        its outputs, a package to redeploy for another architecture, the handler's module in
        that package. The line says why, not which value (the sweep names the axis and value:
        "sweep.<axis>: <value>: <why>")."""
        if axis == "api":
            if value not in API_TYPES:
                return f"must be one of {', '.join(API_TYPES)}"
            if value == DEFAULT_API:
                return None
            if self.function and "http" not in self._urls:
                return (
                    f"stack {self.stack_name} has no HTTP API (no HttpApiUrl output): redeploy "
                    f"with the current serverless.yml (`npx serverless deploy --stage "
                    f"{self.spec.stage} --region {self.region}`)"
                )
            return None
        if axis == "architecture":
            if value not in ARCHITECTURES:
                return f"must be one of {', '.join(ARCHITECTURES)}"
            if self.function and value != self.original_architecture:
                try:
                    self.package()
                except AwsTargetError as exc:
                    return f"changing the architecture needs the function's package: {_said(exc)}"
            return None
        if axis == "handler":
            problem = handler_problem(value)
            if problem or not self.function or value == self.original_handler:
                return problem
            try:
                package = self.package()
            except AwsTargetError:
                return None  # cannot look inside: Lambda says so at the first request
            return package.handler_problem(value)
        return f"the aws target has no axis {axis!r}"

    def set_api(self, api: str) -> None:
        if api not in self._urls:
            raise AwsTargetError(
                self.refuses("api", api) or f"stack {self.stack_name} has no {api} API"
            )
        self.api = api
        self._url = self._urls[api]

    # -- metrics (no delivery(): Lambda's own CPU is what it is, nothing to check it against) --

    def invocations(self, phases: Phases) -> tuple[Invocations, OutsideWindow]:
        """From before the load to after the window (REPORT lines land when calls end), in
        the group the function's LoggingConfig names."""
        group = self.log_group or f"/aws/lambda/{self.function}"
        start = phases.load_started - LOG_LOOKBEHIND_S
        end = phases.window_end + LOG_LOOKAHEAD_S
        lines: list[tuple[float | None, str]] | None = []
        previous = -1
        try:
            for poll in range(LOG_SETTLE_POLLS):
                lines = self._log_lines(group, start, end)
                if lines is None:
                    # Too many to read line by line (and again on every poll): aggregates.
                    reader = InsightsReader(self.logs, group)
                    return read_step(reader, phases, lookbehind_s=LOG_LOOKBEHIND_S)
                if len(lines) == previous:
                    break
                previous = len(lines)
                if poll < LOG_SETTLE_POLLS - 1:
                    time.sleep(LOG_SETTLE_S)
        except (ClientError, BotoCoreError, InsightsError) as exc:
            return Invocations(source=f"{LOGS_UNAVAILABLE}: {_said(exc)}"), OutsideWindow()
        return attribute(lines or [], phases, f"CloudWatch Logs {group}")

    def _log_lines(
        self, group: str, start: float, end: float
    ) -> list[tuple[float | None, str]] | None:
        """Every REPORT and handler line of the range; None once more than
        INSIGHTS_ABOVE_INVOCATIONS reports are seen (the step is read with Logs Insights)."""
        lines: list[tuple[float | None, str]] = []
        reports = 0
        paginator = self.logs.get_paginator("filter_log_events")
        pages = paginator.paginate(
            logGroupName=group,
            startTime=int(start * 1000),
            endTime=int(end * 1000),
            # The text REPORT line, the JSON format's platform.report record, handler.py's line
            filterPattern='?REPORT ?"platform.report" ?"memsweep.invocation"',
        )
        try:
            for page in pages:
                events = page.get("events", [])
                lines += [
                    (event["timestamp"] / 1000 if "timestamp" in event else None, event["message"])
                    for event in events
                ]
                reports += sum(_is_report(event["message"]) for event in events)
                if reports > INSIGHTS_ABOVE_INVOCATIONS:
                    return None
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return []
            raise
        return lines

    def window_metrics(
        self, phases: Phases, *, api: str | None = None, wait: bool = False
    ) -> WindowMetrics:
        """CloudWatch's metrics for the window's minutes (runner/targets/_cloudwatch.py): the
        function's throttles and peak concurrency, the step's API's 4xx/5xx, the table's
        throttle events; the concurrency limit read once per run. Read once unless `wait`
        (then up to metrics_wait_s for the last minute). Never raises: a refused call is
        recorded as the reason there are no figures."""
        if self._concurrency is None:
            self._concurrency = self.concurrency_limit()
        step_api = api or self.api
        of = MetricsOf(
            function=self.function,
            api=step_api,
            api_dimensions=self._api_dimensions(step_api),
            table=self.table,
        )
        return read_window(
            self.cloudwatch,
            of,
            phases,
            concurrency=self._concurrency,
            wait_s=self.metrics_wait_s if wait else 0.0,
        )

    def _api_dimensions(self, api: str) -> dict[str, str]:
        """The step's API's metric dimensions: REST by name and stage (its name read once from
        API Gateway), the HTTP API by id and its $default stage (serverless.yml's httpApi)."""
        if api == "http":
            return {"ApiId": self._http_api_id, "Stage": "$default"} if self._http_api_id else {}
        if self._rest_api_name is None:
            try:
                name = self.apigateway.get_rest_api(restApiId=self._api_id)["name"]
            except (ClientError, BotoCoreError, KeyError):
                name = ""
            self._rest_api_name = (str(name),)
        name = self._rest_api_name[0]
        return {"ApiName": name, "Stage": self.spec.stage} if name else {}

    def fidelity(self) -> Fidelity:
        return Fidelity(mode="aws", level="real", configured_memory_mb=self.configured_memory)

    def info(self) -> TargetInfo:
        return TargetInfo(
            kind="aws",
            url=self._url,
            function=self.function,
            architecture=self.architecture,
            description=f"CloudFormation stack {self.stack_name} in {self.region}",
            original_memory_mb=self.original_memory,
        )
