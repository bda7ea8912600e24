"""serverless.yml: packaged offline by osls, linted by cfn-lint, deployed to moto server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from runner.stack import PROJECT_ROOT, node_tool, serverless_env
from tests.conftest import MOTO_STAGE

SLS_TIMEOUT_S = 180


def serverless(
    *args: str, env: dict[str, str] | None = None, cwd: Path = PROJECT_ROOT
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(node_tool("serverless")), *args],
        cwd=cwd,
        env={**serverless_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=SLS_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, (
        f"serverless {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    )
    return done


def package(tmp: Path, *params: str) -> dict[str, Any]:
    """`serverless package` into tmp (offline) and the CloudFormation template it wrote.

    osls stages its artifacts in the project's own .serverless directory, so packages built at
    the same time each run in their own copy of the project (serverless.yml and the modules it
    packages: the stack uses no plugins).
    """
    project = tmp / "project"
    project.mkdir()
    for name in ("serverless.yml", *PACKAGED):
        shutil.copy(PROJECT_ROOT / name, project / name)
    arguments = ["package", "--package", str(tmp / "out"), "--stage", "dev"]
    arguments += ["--region", "us-east-1"]
    for param in params:
        arguments += ["--param", param]
    # No credentials and no endpoint: packaging must not need AWS at all.
    serverless(*arguments, env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}, cwd=project)
    template: dict[str, Any] = json.loads(
        (tmp / "out" / "cloudformation-template-update-stack.json").read_text()
    )
    return template


# What the deployment package holds: the function's handler, the tutorial's original handler
# (the handler axis switches to it without a redeploy) and the HTTP API's authorizer.
PACKAGED = ("authorizer.py", "handler.py", "tutorial_handler.py")

PACKAGES = {
    "128": ("memory=128",),
    # Throttle params ride on an existing package (CI time): they reach both APIs.
    "1024": ("memory=1024", "throttleRate=7", "throttleBurst=9", "authorizerCacheSeconds=60"),
    "arm64": ("architecture=arm64",),
    "default": (),
}


@pytest.fixture(scope="module")
def package_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each parameter set packaged once, the four osls runs at the same time (CI time: each
    is a mostly single-threaded node process of several seconds)."""
    from concurrent.futures import ThreadPoolExecutor

    dirs = {name: tmp_path_factory.mktemp(f"pkg{name}") for name in PACKAGES}
    with ThreadPoolExecutor(len(PACKAGES)) as pool:
        list(pool.map(lambda name: package(dirs[name], *PACKAGES[name]), PACKAGES))
    return dirs


@pytest.fixture(scope="module")
def templates(package_dirs: dict[str, Path]) -> dict[str, dict[str, Any]]:
    return {
        name: json.loads((path / "out" / "cloudformation-template-update-stack.json").read_text())
        for name, path in package_dirs.items()
    }


def resources_of_type(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


FUNCTION = "LambdaFunctionOverHttpsLambdaFunction"
AUTHORIZER = "ApiKeyAuthorizerLambdaFunction"


def function_properties(template: dict[str, Any], logical_id: str = FUNCTION) -> dict[str, Any]:
    properties: dict[str, Any] = template["Resources"][logical_id]["Properties"]
    return properties


def one_of_type(template: dict[str, Any], kind: str) -> dict[str, Any]:
    (resource,) = resources_of_type(template, kind).values()
    properties: dict[str, Any] = resource["Properties"]
    return properties


def policy_statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        statement
        for policy in role["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
    ]


def test_given_the_default_params_then_the_template_passes_cfn_lint(
    templates: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    path = tmp_path / "template.json"
    path.write_text(json.dumps(templates["default"]))
    cfn_lint = shutil.which("cfn-lint") or str(Path(sys.executable).parent / "cfn-lint")
    done = subprocess.run(
        [cfn_lint, str(path)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("memory", ["128", "1024"])
def test_given_a_memory_param_then_the_function_gets_that_memory_size(
    templates: dict[str, dict[str, Any]], memory: str
) -> None:
    assert function_properties(templates[memory])["MemorySize"] == int(memory)


def test_given_no_memory_param_then_128_mb_x86_64_python312(
    templates: dict[str, dict[str, Any]],
) -> None:
    function = function_properties(templates["default"])
    assert function["MemorySize"] == 128
    assert function["Runtime"] == "python3.12"
    assert function["Architectures"] == ["x86_64"]
    assert function["Handler"] == "handler.lambda_handler"
    assert function["Environment"]["Variables"]["TABLE_NAME"] == {"Ref": "LambdaApigatewayTable"}


def test_given_the_architecture_param_then_arm64(templates: dict[str, dict[str, Any]]) -> None:
    assert function_properties(templates["arm64"])["Architectures"] == ["arm64"]


def test_given_the_template_then_dynamodb_actions_are_granted_on_the_table_arn_only(
    templates: dict[str, dict[str, Any]],
) -> None:
    role = templates["default"]["Resources"]["IamRoleLambdaExecution"]
    statements = policy_statements(role)
    dynamodb = [s for s in statements if any(str(a).startswith("dynamodb:") for a in s["Action"])]
    assert dynamodb, "no DynamoDB statement"
    for statement in dynamodb:
        resources = statement["Resource"]
        resources = resources if isinstance(resources, list) else [resources]
        assert resources == [{"Fn::GetAtt": ["LambdaApigatewayTable", "Arn"]}]
        assert "*" not in json.dumps(statement["Action"])
    actions = {action for statement in dynamodb for action in statement["Action"]}
    assert actions == {
        "dynamodb:PutItem",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Scan",
    }


def test_given_the_template_then_the_post_method_requires_an_api_key_with_a_usage_plan(
    templates: dict[str, dict[str, Any]],
) -> None:
    template = templates["default"]
    (method,) = resources_of_type(template, "AWS::ApiGateway::Method").values()
    assert method["Properties"]["HttpMethod"] == "POST"
    assert method["Properties"]["ApiKeyRequired"] is True
    assert method["Properties"]["Integration"]["Type"] == "AWS_PROXY"
    (resource,) = resources_of_type(template, "AWS::ApiGateway::Resource").values()
    assert resource["Properties"]["PathPart"] == "DynamoDBManager"
    (plan,) = resources_of_type(template, "AWS::ApiGateway::UsagePlan").values()
    assert plan["Properties"]["Throttle"] == {"RateLimit": 100, "BurstLimit": 200}
    assert resources_of_type(template, "AWS::ApiGateway::ApiKey")
    assert resources_of_type(template, "AWS::ApiGateway::UsagePlanKey")
    (api,) = resources_of_type(template, "AWS::ApiGateway::RestApi").values()
    assert api["Properties"]["Name"] == "DynamoDBOperations-dev"


def test_given_the_template_then_the_table_is_on_demand_with_string_key_id(
    templates: dict[str, dict[str, Any]],
) -> None:
    (table,) = resources_of_type(templates["default"], "AWS::DynamoDB::Table").values()
    properties = table["Properties"]
    assert properties["TableName"] == "lambda-apigateway"
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert properties["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]


def test_given_the_template_then_logs_are_retained_for_a_bounded_time(
    templates: dict[str, dict[str, Any]],
) -> None:
    groups = resources_of_type(templates["default"], "AWS::Logs::LogGroup")
    assert set(groups) == {"LambdaFunctionOverHttpsLogGroup", "ApiKeyAuthorizerLogGroup"}
    assert {group["Properties"]["RetentionInDays"] for group in groups.values()} == {14}


def test_given_the_template_then_it_outputs_what_the_aws_target_reads(
    templates: dict[str, dict[str, Any]],
) -> None:
    outputs = templates["default"]["Outputs"]
    assert {"ApiUrl", "ApiKeyId", "FunctionName", "TableName"} <= set(outputs)
    assert outputs["FunctionName"]["Value"] == {"Ref": "LambdaFunctionOverHttpsLambdaFunction"}
    assert outputs["TableName"]["Value"] == {"Ref": "LambdaApigatewayTable"}
    assert outputs["ApiKeyId"]["Value"] == {"Ref": "ApiGatewayApiKey1"}
    assert outputs["ApiUrl"]["Value"]["Fn::Sub"].endswith("/dev/DynamoDBManager")
    assert "${ApiGatewayRestApi}" in outputs["ApiUrl"]["Value"]["Fn::Sub"]


def test_given_the_template_then_the_outputs_name_both_apis_urls(
    templates: dict[str, dict[str, Any]],
) -> None:
    outputs = templates["default"]["Outputs"]
    # REST: osls's ServiceEndpoint (the stage's base URL) and ApiUrl (the POST endpoint).
    assert {"Ref": "ApiGatewayRestApi"} in outputs["ServiceEndpoint"]["Value"]["Fn::Join"][1]
    # HTTP: osls's HttpApiUrl (base URL, $default stage) and HttpApiRouteUrl (the POST endpoint).
    assert {"Ref": "HttpApi"} in outputs["HttpApiUrl"]["Value"]["Fn::Join"][1]
    route_url = outputs["HttpApiRouteUrl"]["Value"]["Fn::Sub"]
    assert route_url == (
        "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/DynamoDBManager"
    )
    assert outputs["HttpApiId"]["Value"] == {"Ref": "HttpApi"}
    assert "HTTP API" in outputs["HttpApiRouteUrl"]["Description"]
    assert "REST API" in outputs["ApiUrl"]["Description"]


def test_given_the_template_then_an_http_api_routes_post_to_the_same_function_with_payload_2(
    templates: dict[str, dict[str, Any]],
) -> None:
    template = templates["default"]
    api = one_of_type(template, "AWS::ApiGatewayV2::Api")
    assert api["ProtocolType"] == "HTTP"
    assert api["Name"] == "DynamoDBOperations-http-dev"
    route = one_of_type(template, "AWS::ApiGatewayV2::Route")
    assert route["RouteKey"] == "POST /DynamoDBManager"
    assert route["AuthorizationType"] == "CUSTOM"
    assert route["AuthorizerId"] == {"Ref": "HttpApiAuthorizerApiKey"}
    integration = one_of_type(template, "AWS::ApiGatewayV2::Integration")
    assert integration["IntegrationType"] == "AWS_PROXY"
    assert integration["PayloadFormatVersion"] == "2.0"
    assert integration["IntegrationUri"] == {"Fn::GetAtt": [FUNCTION, "Arn"]}
    assert route["Target"]["Fn::Join"][1][1] == {"Ref": "HttpApiIntegrationLambdaFunctionOverHttps"}
    # The REST API is still there, unchanged, beside it.
    assert one_of_type(template, "AWS::ApiGateway::Method")["ApiKeyRequired"] is True
    invokers = [
        permission["Properties"]
        for permission in resources_of_type(template, "AWS::Lambda::Permission").values()
        if permission["Properties"]["FunctionName"] == {"Fn::GetAtt": [FUNCTION, "Arn"]}
    ]
    assert len(invokers) == 2  # one per API


def test_given_the_template_then_the_authorizer_is_a_cached_simple_request_lambda_on_x_api_key(
    templates: dict[str, dict[str, Any]],
) -> None:
    authorizer = one_of_type(templates["default"], "AWS::ApiGatewayV2::Authorizer")
    assert authorizer["AuthorizerType"] == "REQUEST"
    assert authorizer["EnableSimpleResponses"] is True
    assert authorizer["AuthorizerPayloadFormatVersion"] == "2.0"
    assert authorizer["IdentitySource"] == ["$request.header.x-api-key"]
    assert authorizer["AuthorizerResultTtlInSeconds"] == 300
    assert {"Fn::GetAtt": [AUTHORIZER, "Arn"]} in authorizer["AuthorizerUri"]["Fn::Join"][1]
    assert (
        one_of_type(templates["1024"], "AWS::ApiGatewayV2::Authorizer")[
            "AuthorizerResultTtlInSeconds"
        ]
        == 60
    )
    function = function_properties(templates["default"], AUTHORIZER)
    assert function["Handler"] == "authorizer.lambda_handler"
    assert function["Environment"]["Variables"]["API_KEY_ID"] == {"Ref": "ApiGatewayApiKey1"}
    # Fixed size: memsweep sweeps the other function's memory, never this one's.
    assert function["MemorySize"] == 128
    assert function_properties(templates["1024"], AUTHORIZER)["MemorySize"] == 128


def test_given_the_template_then_the_authorizer_may_only_read_the_usage_plan_key_and_log(
    templates: dict[str, dict[str, Any]],
) -> None:
    template = templates["default"]
    role_arn = function_properties(template, AUTHORIZER)["Role"]
    assert role_arn == {"Fn::Sub": "${ApiKeyAuthorizerRole.Arn}"}
    statements = policy_statements(template["Resources"]["ApiKeyAuthorizerRole"])
    granted = {
        (action, json.dumps(statement["Resource"]))
        for statement in statements
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
    }
    assert all(statement["Effect"] == "Allow" for statement in statements)
    key = {
        "Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}::/apikeys/${ApiGatewayApiKey1}"
    }
    logs = {
        "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
        "${ApiKeyAuthorizerLogGroup}:*"
    }
    assert granted == {
        ("apigateway:GET", json.dumps(key)),
        ("logs:CreateLogStream", json.dumps(logs)),
        ("logs:PutLogEvents", json.dumps(logs)),
    }
    # And the function's own role gains nothing on API Gateway.
    function_role = json.dumps(template["Resources"]["IamRoleLambdaExecution"])
    assert "apigateway:" not in function_role


def test_given_throttle_params_then_the_usage_plan_and_the_http_api_stage_both_get_them(
    templates: dict[str, dict[str, Any]],
) -> None:
    for name, (rate, burst) in {"default": (100, 200), "1024": (7, 9)}.items():
        stage = one_of_type(templates[name], "AWS::ApiGatewayV2::Stage")
        assert stage["StageName"] == "$default"
        # A --param arrives as a string ("7"): CloudFormation (and cfn-lint) take numeric
        # strings for number properties; osls's schema turns the usage plan's into numbers.
        assert float(stage["DefaultRouteSettings"]["ThrottlingRateLimit"]) == rate
        assert float(stage["DefaultRouteSettings"]["ThrottlingBurstLimit"]) == burst
        plan = one_of_type(templates[name], "AWS::ApiGateway::UsagePlan")
        assert plan["Throttle"] == {"RateLimit": rate, "BurstLimit": burst}


def test_given_the_package_then_it_ships_the_handlers_and_the_authorizer_alone(
    package_dirs: dict[str, Path],
) -> None:
    listing = subprocess.run(
        [
            sys.executable,
            "-m",
            "zipfile",
            "-l",
            str(package_dirs["default"] / "out" / "memsweep.zip"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    files = [line.split()[0] for line in listing.splitlines()[1:]]
    assert sorted(files) == list(PACKAGED)


# --- deploy and remove against moto server --------------------------------------------------


def aws(service: Any, env: dict[str, str]) -> Any:
    return boto3.client(
        service,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def test_given_moto_server_when_deployed_then_boto3_reads_it_back(
    moto_stack: dict[str, str],
) -> None:
    # The shared deployment (conftest.moto_stack): osls deploy --param memory=128.
    stack = aws("cloudformation", moto_stack).describe_stacks(StackName=f"memsweep-{MOTO_STAGE}")
    assert stack["Stacks"][0]["StackStatus"] in {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
    function_name = f"memsweep-{MOTO_STAGE}-LambdaFunctionOverHttps"
    config = aws("lambda", moto_stack).get_function_configuration(FunctionName=function_name)
    assert config["MemorySize"] == 128
    assert config["Runtime"] == "python3.12"
    assert config["Environment"]["Variables"]["TABLE_NAME"] == "lambda-apigateway"
    table = aws("dynamodb", moto_stack).describe_table(TableName="lambda-apigateway")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    apis = aws("apigateway", moto_stack).get_rest_apis()["items"]
    assert [api["name"] for api in apis] == [f"DynamoDBOperations-{MOTO_STAGE}"]
    # The HTTP API's authorizer deploys with its own role. (moto's CloudFormation does not
    # model AWS::ApiGatewayV2::*: it skips those resources, and the template's Outputs with
    # them, as it does for the usage plan and API key; the stack deploys all the same.)
    authorizer = aws("lambda", moto_stack).get_function_configuration(
        FunctionName=f"memsweep-{MOTO_STAGE}-ApiKeyAuthorizer"
    )
    assert authorizer["Handler"] == "authorizer.lambda_handler"
    assert authorizer["Role"] != config["Role"]


@pytest.mark.removes_the_moto_stack
def test_given_the_deployed_stack_when_removed_then_nothing_is_left(
    moto_stack: dict[str, str],
) -> None:
    serverless("remove", "--stage", MOTO_STAGE, env=moto_stack)

    assert aws("lambda", moto_stack).list_functions()["Functions"] == []
    assert aws("dynamodb", moto_stack).list_tables()["TableNames"] == []
    stacks = aws("cloudformation", moto_stack).list_stacks()["StackSummaries"]
    assert all(s["StackStatus"] == "DELETE_COMPLETE" for s in stacks)
