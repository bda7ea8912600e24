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
    the same time each run in their own copy of the project (serverless.yml and handler.py:
    the stack uses no plugins).
    """
    project = tmp / "project"
    project.mkdir()
    for name in ("serverless.yml", "handler.py"):
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


PACKAGES = {
    "128": ("memory=128",),
    "1024": ("memory=1024",),
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


def function_properties(template: dict[str, Any]) -> dict[str, Any]:
    (function,) = resources_of_type(template, "AWS::Lambda::Function").values()
    properties: dict[str, Any] = function["Properties"]
    return properties


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
    (role,) = resources_of_type(templates["default"], "AWS::IAM::Role").values()
    statements = [
        statement
        for policy in role["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
    ]
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
    (group,) = resources_of_type(templates["default"], "AWS::Logs::LogGroup").values()
    assert group["Properties"]["RetentionInDays"] == 14


def test_given_the_template_then_it_outputs_what_the_aws_target_reads(
    templates: dict[str, dict[str, Any]],
) -> None:
    outputs = templates["default"]["Outputs"]
    assert {"ApiUrl", "ApiKeyId", "FunctionName", "TableName"} <= set(outputs)
    assert outputs["FunctionName"]["Value"] == {"Ref": "LambdaFunctionOverHttpsLambdaFunction"}
    assert outputs["TableName"]["Value"] == {"Ref": "LambdaApigatewayTable"}
    assert outputs["ApiKeyId"]["Value"] == {"Ref": "ApiGatewayApiKey1"}
    assert outputs["ApiUrl"]["Value"]["Fn::Sub"].endswith("/dev/DynamoDBManager")


def test_given_the_package_then_it_ships_handler_py_alone(package_dirs: dict[str, Path]) -> None:
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
    assert files == ["handler.py"]


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


@pytest.mark.removes_the_moto_stack
def test_given_the_deployed_stack_when_removed_then_nothing_is_left(
    moto_stack: dict[str, str],
) -> None:
    serverless("remove", "--stage", MOTO_STAGE, env=moto_stack)

    assert aws("lambda", moto_stack).list_functions()["Functions"] == []
    assert aws("dynamodb", moto_stack).list_tables()["TableNames"] == []
    stacks = aws("cloudformation", moto_stack).list_stacks()["StackSummaries"]
    assert all(s["StackStatus"] == "DELETE_COMPLETE" for s in stacks)
