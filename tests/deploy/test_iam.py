"""deploy/iam/*.json: valid policies (parliament, an offline IAM linter), nothing on ``*`` that can be
named, and every AWS call the code makes is allowed to the role that makes it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from parliament import analyze_policy_string

ROOT = Path(__file__).resolve().parents[2]
IAM = ROOT / "deploy" / "iam"
PERMISSIONS = ("lambda", "worker", "airflow")
#: Sample values for the placeholders the README documents (the CloudFormation template fills them).
SAMPLE = {
    "AWS::Partition": "aws",
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "MigrationsBucket": "acme-backover",
    "Prefix": "backover",
    "NamePrefix": "backover",
    "ArtifactBucket": "acme-artifacts",
    "ArtifactPrefix": "backover/0.1.0/",
    "DataKey.Arn": "arn:aws:kms:eu-west-1:123456789012:key/0b8f1c5e-1111-2222-3333-444455556666",
    "DocumentDbSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:docdb-master-AbCdEf",
    "MongoDbSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:mongodb-master-AbCdEf",
    "AppUserSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:orders-app-AbCdEf",
    "Worker": "i-0123456789abcdef0",
    "AirflowConnectionsPrefix": "airflow/connections",
}
#: Actions AWS does not let a policy scope to a resource: ``*`` is the only possible Resource.
NO_RESOURCE_LEVEL = {
    "ssm:GetCommandInvocation",
    "ssm:ListCommandInvocations",
    "ssm:CancelCommand",
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceStatus",
    "logs:DescribeLogGroups",  # the SSM agent looks its output's log group up before it writes
    "cloudwatch:PutMetricData",  # scoped by its condition key cloudwatch:namespace instead
}
#: boto3 calls found in the code -> (IAM action, the roles that make the call).
CALLS = {
    "get_object": ("s3:GetObject", ("lambda", "worker", "airflow")),
    "head_object": ("s3:GetObject", ("lambda", "worker", "airflow")),
    "put_object": ("s3:PutObject", ("lambda", "worker", "airflow")),
    "create_multipart_upload": ("s3:PutObject", ("worker",)),
    "upload_part": ("s3:PutObject", ("worker",)),
    "complete_multipart_upload": ("s3:PutObject", ("worker",)),
    "abort_multipart_upload": ("s3:AbortMultipartUpload", ("worker",)),
    "delete_objects": ("s3:DeleteObject", ("worker",)),
    "list_objects_v2": ("s3:ListBucket", ("lambda", "worker", "airflow")),
    "head_bucket": ("s3:ListBucket", ("lambda", "worker", "airflow")),
    "get_secret_value": ("secretsmanager:GetSecretValue", ("lambda", "worker")),
    "send_command": ("ssm:SendCommand", ("airflow",)),
    "get_command_invocation": ("ssm:GetCommandInvocation", ("airflow",)),
    "list_command_invocations": ("ssm:ListCommandInvocations", ("airflow",)),
    "cancel_command": ("ssm:CancelCommand", ("airflow",)),
    "describe_instances": ("ec2:DescribeInstances", ("airflow",)),
    "describe_instance_status": ("ec2:DescribeInstanceStatus", ("airflow",)),
    "start_instances": ("ec2:StartInstances", ("airflow",)),
    "stop_instances": ("ec2:StopInstances", ("airflow",)),
    "invoke": ("lambda:InvokeFunction", ("airflow",)),
    "get_log_events": ("logs:GetLogEvents", ("airflow",)),
    "put_metric_data": ("cloudwatch:PutMetricData", ("worker",)),
}
#: What the Amazon provider's operators/sensors the DAGs use call (not visible to a grep of our code).
PROVIDER_CALLS = {
    "EC2StartInstanceOperator": ("start_instances", "describe_instances"),
    "EC2StopInstanceOperator": ("stop_instances", "describe_instances"),
    "EC2InstanceStateSensor": ("describe_instances",),
    "LambdaInvokeFunctionOperator": ("invoke",),
    "S3Hook": ("head_bucket", "list_objects_v2", "get_object", "put_object"),
}
AWS_METHOD = re.compile(r"\.(" + "|".join(sorted(CALLS, key=len, reverse=True)) + r")\(")
CODE = ("include/backover", "lambdas", "plugins", "dags")


def fill(text: str, values: dict[str, str] = SAMPLE) -> str:
    return re.sub(r"\$\{([A-Za-z:.]+)\}", lambda m: values[m.group(1)], text)


def policy(name: str) -> dict[str, Any]:
    return json.loads(fill((IAM / f"{name}.json").read_text()))


def allowed(doc: dict[str, Any]) -> dict[str, list[str]]:
    """IAM action -> resources an Allow statement grants it on."""
    grants: dict[str, list[str]] = {}
    for statement in doc["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        for action in actions:
            grants.setdefault(action, []).extend(resources)
    return grants


@pytest.mark.parametrize("name", [*PERMISSIONS, "lambda-trust", "worker-trust"])
def test_policy_is_json_with_documented_placeholders_only(name: str) -> None:
    text = (IAM / f"{name}.json").read_text()
    used = set(re.findall(r"\$\{([A-Za-z:.]+)\}", text))
    assert used <= set(SAMPLE)
    readme = (IAM / "README.md").read_text()
    for placeholder in used:
        assert f"`${{{placeholder}}}`" in readme, f"{placeholder} is not documented in deploy/iam/README.md"
    assert json.loads(fill(text))["Version"] == "2012-10-17"


@pytest.mark.parametrize("name", PERMISSIONS)
def test_parliament_finds_nothing(name: str) -> None:
    findings = analyze_policy_string(json.dumps(policy(name))).findings
    assert not findings, [(f.issue, f.detail) for f in findings]


def test_parliament_would_catch_a_mistake() -> None:
    """The linter is not vacuous: an object action on the bucket ARN is reported."""
    doc = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::acme-backover"}
        ],
    }
    assert analyze_policy_string(json.dumps(doc)).findings


@pytest.mark.parametrize("name", PERMISSIONS)
def test_no_star_resource_where_a_resource_can_be_named(name: str) -> None:
    for action, resources in allowed(policy(name)).items():
        assert "*" not in action.split(":")[1] or action in NO_RESOURCE_LEVEL, action
        if "*" in resources:
            assert action in NO_RESOURCE_LEVEL, f"{name}: {action} on '*' although it can be scoped"
        for resource in resources:
            assert (
                resource == "*"
                or SAMPLE["MigrationsBucket"] in resource
                or resource.startswith(
                    (
                        "arn:aws:kms:",
                        "arn:aws:secretsmanager:",
                        "arn:aws:lambda:",
                        "arn:aws:ec2:",
                        "arn:aws:ssm:",
                        "arn:aws:logs:",
                        "arn:aws:s3:::acme-artifacts/",
                    )
                )
            ), resource


def test_s3_is_limited_to_the_prefix() -> None:
    for name in PERMISSIONS:
        for statement in policy(name)["Statement"]:
            if statement["Action"] == "s3:ListBucket":
                assert statement["Condition"]["StringLike"]["s3:prefix"] == ["backover/*"]
            elif str(statement["Action"]).startswith("['s3:") or str(statement["Action"]).startswith("s3:"):
                assert all(
                    r.startswith(("arn:aws:s3:::acme-backover/backover/", "arn:aws:s3:::acme-artifacts/"))
                    for r in (
                        statement["Resource"]
                        if isinstance(statement["Resource"], list)
                        else [statement["Resource"]]
                    )
                )


def code_calls() -> set[str]:
    found = set()
    for folder in CODE:
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text()
            found |= set(AWS_METHOD.findall(text))
            for name, calls in PROVIDER_CALLS.items():
                if name in text:
                    found |= set(calls)
    return found


def test_every_aws_call_of_the_code_is_allowed_to_its_role() -> None:
    calls = code_calls()
    # The grep does find the calls (else this test would pass vacuously).
    assert {
        "get_secret_value",
        "send_command",
        "get_command_invocation",
        "cancel_command",
        "invoke",
        "start_instances",
        "delete_objects",
        "create_multipart_upload",
        "put_metric_data",
    } <= calls
    missing = []
    for call in sorted(calls):
        action, roles = CALLS[call]
        for role in roles:
            if action not in allowed(policy(role)):
                missing.append(f"{role}: {action} (for {call})")
    assert not missing


def test_the_worker_cannot_touch_airflow_things_and_lambdas_cannot_delete() -> None:
    worker, lam = allowed(policy("worker")), allowed(policy("lambda"))
    assert not {a for a in worker if a.startswith(("ssm:", "lambda:", "ec2:"))}
    assert "s3:DeleteObject" not in lam and "s3:DeleteObject" not in allowed(policy("airflow"))
    assert SAMPLE["AppUserSecretArn"] not in worker.get("secretsmanager:GetSecretValue", [])


def test_the_worker_publishes_metrics_in_its_own_namespace_only() -> None:
    from backover.metrics import NAMESPACE

    (statement,) = [s for s in policy("worker")["Statement"] if s["Action"] == "cloudwatch:PutMetricData"]
    assert statement["Condition"] == {"StringEquals": {"cloudwatch:namespace": NAMESPACE}}
