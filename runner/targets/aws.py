"""A stack deployed to AWS with `npx serverless deploy`: memory set with the Lambda API.

boto3 with its normal credential chain (AWS_ENDPOINT_URL is honoured, which is how the
tests run it against a moto server). The stack is found by name in CloudFormation
(outputs, falling back to its resources); the API key's value is read from API Gateway.
Memory changes wait until LastUpdateStatus is Successful (no load before the update is
live) and retry ResourceConflictException with backoff; the original memory size is put
back by `restore()`, which the sweep calls in `finally` and on SIGINT/SIGTERM.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound, WaiterError

from runner.errors import BadInput, MemsweepError
from runner.lambda_logs import Phases, attribute
from runner.results import Fidelity, Invocations, OutsideWindow, TargetInfo
from runner.scenario import AwsTarget
from runner.targets.base import RateLimit, Target

# Lambda refuses a configuration change while another is in progress.
CONFLICT_RETRIES = 8
CONFLICT_BACKOFF_S = 0.5
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


# Seeding sends POST (runner.seeding); API Gateway names a method's throttle by resource path
# and HTTP method: "/DynamoDBManager/POST" in a usage plan's apiStages[].throttle (ApiStage
# reference), "DynamoDBManager/POST" or "*/*" (every method) in a stage's methodSettings
# (MethodSetting reference; "~1" escapes "/" in patch paths, so a key may carry it).
SEED_METHOD = "POST"
ALL_METHODS = "*/*"


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
            f"AWS configuration: {exc}: name a profile of ~/.aws/config in AWS_PROFILE, or unset it"
        ) from None
    except BotoCoreError as exc:
        raise BadInput(f"AWS configuration: {exc}") from None


def preflight(spec: AwsTarget) -> None:
    """Region, credentials and the stack, checked before the run starts (nothing written).

    Each missing piece is one line with its fix (exit 2); AWS out of reach is exit 3. Without
    this, boto3's NoRegionError surfaced as an "internal error" after the run had begun.
    """
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
        raise BadInput(f"no usable AWS credentials: {exc}") from None
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
        raise AwsTargetError(f"AWS: looking up stack {stack_name} in {region}: {exc}") from None
    except BotoCoreError as exc:
        raise AwsTargetError(f"AWS: looking up stack {stack_name} in {region}: {exc}") from None
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
    from runner.seeding import default_rate_limit  # gevent and yaml, for this fallback only

    limit = default_rate_limit()
    print(
        f"memsweep: AWS: {why}; seeding paces to serverless.yml's default usage plan "
        f"({limit.rate:g} requests/s, burst {limit.burst:g})",
        file=sys.stderr,
    )
    return limit


class AwsStackTarget(Target):
    kind = "aws"

    def __init__(self, spec: AwsTarget) -> None:
        self.spec = spec
        self.stack_name = f"{spec.stack}-{spec.stage}"
        session = _session(spec)
        config = Config(retries={"mode": "standard", "max_attempts": 5})
        self.region = session.region_name or "us-east-1"
        self.cloudformation = session.client("cloudformation", config=config)
        self.lambda_client = session.client("lambda", config=config)
        self.apigateway = session.client("apigateway", config=config)
        self.logs = session.client("logs", config=config)
        self.function = ""
        self._url = ""
        self._api_key: str | None = None
        self._api_key_id: str | None = None
        self._api_id: str | None = None
        self._method_key = ""
        self._rate_limit: tuple[RateLimit | None] | None = None
        self.original_memory: int | None = None
        self.architecture: str | None = None
        self.configured_memory: int | None = None

    # -- discovery -----------------------------------------------------------------------------

    def start(self) -> None:
        try:
            outputs, resources = self._describe_stack()
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
            stack_url = outputs.get("ApiUrl") or (
                f"https://{api_id}.execute-api.{self.region}.amazonaws.com/"
                f"{self.spec.stage}/DynamoDBManager"
                if api_id
                else ""
            )
            self._url = self.spec.url or stack_url
            if not self._url:
                raise AwsTargetError(f"stack {self.stack_name}: no ApiUrl output or REST API")
            self._method_key = _method_key(stack_url, self.spec.stage)
            self._api_key_id, self._api_key = self._find_api_key(
                outputs.get("ApiKeyId") or resources.get("ApiGatewayApiKey1")
            )
            configuration = self.lambda_client.get_function_configuration(
                FunctionName=self.function
            )
            self.original_memory = int(configuration["MemorySize"])
            self.configured_memory = self.original_memory
            self.architecture = (configuration.get("Architectures") or ["x86_64"])[0]
        except (ClientError, BotoCoreError) as exc:
            raise AwsTargetError(f"AWS: finding stack {self.stack_name}: {exc}") from None

    def _describe_stack(self) -> tuple[dict[str, str], dict[str, str]]:
        try:
            stack = self.cloudformation.describe_stacks(StackName=self.stack_name)["Stacks"][0]
        except ClientError as exc:
            raise AwsTargetError(
                f"no CloudFormation stack {self.stack_name} in {self.region}: deploy it with "
                f"`npx serverless deploy --stage {self.spec.stage}` ({exc})"
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
            return _default_rate_limit(f"cannot read the throttle of {where} ({exc})")
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

    # -- memory --------------------------------------------------------------------------------

    def set_memory(self, memory_mb: int) -> None:
        for attempt in range(CONFLICT_RETRIES + 1):
            try:
                self.lambda_client.update_function_configuration(
                    FunctionName=self.function, MemorySize=memory_mb
                )
                break
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code != "ResourceConflictException" or attempt == CONFLICT_RETRIES:
                    raise AwsTargetError(
                        f"AWS: setting {self.function} to {memory_mb} MB: {exc}"
                    ) from None
                time.sleep(CONFLICT_BACKOFF_S * 2**attempt)
        try:
            self.lambda_client.get_waiter("function_updated").wait(
                FunctionName=self.function,
                WaiterConfig={"Delay": 1, "MaxAttempts": UPDATE_WAIT_S},
            )
        except WaiterError as exc:
            raise AwsTargetError(f"AWS: {self.function} did not finish updating: {exc}") from None
        configuration = self.lambda_client.get_function_configuration(FunctionName=self.function)
        self.configured_memory = int(configuration["MemorySize"])
        if self.configured_memory != memory_mb:
            raise AwsTargetError(
                f"AWS: {self.function} reports {self.configured_memory} MB after setting "
                f"{memory_mb} MB"
            )

    def restore(self) -> None:
        if self.original_memory is not None and self.configured_memory != self.original_memory:
            self.set_memory(self.original_memory)

    # -- metrics (no delivery(): Lambda's own CPU is what it is, nothing to check it against) --

    def invocations(self, phases: Phases) -> tuple[Invocations, OutsideWindow]:
        """From before the load to after the window (REPORT lines land when calls end)."""
        group = f"/aws/lambda/{self.function}"
        start = phases.load_started - LOG_LOOKBEHIND_S
        end = phases.window_end + LOG_LOOKAHEAD_S
        lines: list[tuple[float | None, str]] = []
        previous = -1
        try:
            for poll in range(LOG_SETTLE_POLLS):
                lines = self._log_lines(group, start, end)
                if len(lines) == previous:
                    break
                previous = len(lines)
                if poll < LOG_SETTLE_POLLS - 1:
                    time.sleep(LOG_SETTLE_S)
        except (ClientError, BotoCoreError) as exc:
            return Invocations(source=f"CloudWatch Logs unavailable: {exc}"), OutsideWindow()
        return attribute(lines, phases, f"CloudWatch Logs {group}")

    def _log_lines(self, group: str, start: float, end: float) -> list[tuple[float | None, str]]:
        lines: list[tuple[float | None, str]] = []
        paginator = self.logs.get_paginator("filter_log_events")
        pages = paginator.paginate(
            logGroupName=group,
            startTime=int(start * 1000),
            endTime=int(end * 1000),
            filterPattern='?REPORT ?"memsweep.invocation"',
        )
        try:
            for page in pages:
                lines += [
                    (event["timestamp"] / 1000 if "timestamp" in event else None, event["message"])
                    for event in page.get("events", [])
                ]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return []
            raise
        return lines

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
