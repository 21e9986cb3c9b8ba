"""deploy/cloudformation/backover.yaml: cfn-lint clean, its roles are exactly deploy/iam/*.json, the
worker bootstrap is sound shell, and the stack deploys on moto (with what moto cannot do said)."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "cloudformation" / "backover.yaml"
IAM = ROOT / "deploy" / "iam"


class CfnLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation's short-form tags as ``{"Fn::X": value}``."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if suffix == "GetAtt" and isinstance(node, yaml.ScalarNode):
        return {name: loader.construct_scalar(node).split(".", 1)}
    if isinstance(node, yaml.ScalarNode):
        return {name: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {name: loader.construct_sequence(node, deep=True)}
    return {name: loader.construct_mapping(node, deep=True)}


CfnLoader.add_multi_constructor("!", _tag)


def template() -> dict[str, Any]:
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)


def unsub(value: Any) -> Any:
    """The template's policy with each ``!Sub "..."`` back to its plain string."""
    if isinstance(value, dict):
        if list(value) == ["Fn::Sub"] and isinstance(value["Fn::Sub"], str):
            return value["Fn::Sub"]
        return {k: unsub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unsub(v) for v in value]
    return value


@pytest.mark.slow  # runs cfn-lint (a Python program)
def test_cfn_lint_passes() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("resource", "policy"), [("LambdaRole", "lambda"), ("WorkerRole", "worker"), ("AirflowPolicy", "airflow")]
)
def test_the_template_grants_exactly_the_documented_policies(resource: str, policy: str) -> None:
    props = template()["Resources"][resource]["Properties"]
    document = (
        props["PolicyDocument"] if "PolicyDocument" in props else props["Policies"][0]["PolicyDocument"]
    )
    assert unsub(document) == json.loads((IAM / f"{policy}.json").read_text())
    if "AssumeRolePolicyDocument" in props:
        assert props["AssumeRolePolicyDocument"] == json.loads((IAM / f"{policy}-trust.json").read_text())


def test_bucket_is_encrypted_private_and_expires_migration_data() -> None:
    bucket = template()["Resources"]["MigrationsBucket"]["Properties"]
    rule = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert rule == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Fn::GetAtt": ["DataKey", "Arn"]}}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    ids = {r["Id"] for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert ids == {"abort-incomplete-uploads", "expire-migration-data"}


def test_the_three_lambdas_come_from_the_lambda_zips() -> None:
    resources = template()["Resources"]
    handlers = sorted(p.parent.name for p in (ROOT / "lambdas").glob("*/handler.py"))
    functions = {k: v["Properties"] for k, v in resources.items() if v["Type"] == "AWS::Lambda::Function"}
    assert sorted(p["Code"]["S3Key"]["Fn::Sub"] for p in functions.values()) == sorted(
        f"${{ArtifactPrefix}}{name}.zip" for name in handlers
    )
    assert {p["Handler"] for p in functions.values()} == {"handler.handler"}
    assert {p["Runtime"] for p in functions.values()} == {"python3.11"}


def user_data() -> str:
    text = template()["Resources"]["Worker"]["Properties"]["UserData"]["Fn::Base64"]["Fn::Sub"]
    values = {
        "ArtifactBucket": "art",
        "ArtifactPrefix": "backover/0.1.0/",
        "WheelName": "backover.whl",
        "AWS::Region": "eu-west-1",
        "MigrationsBucket": "bkt",
        "Prefix": "backover",
        "DocumentDbSecretArn": "arn:doc",
        "MongoDbSecretArn": "arn:mongo",
    }
    return re.sub(r"\$\{([A-Za-z:]+)\}", lambda m: values[m.group(1)], text)


def test_worker_bootstrap_is_valid_shell_with_the_replicator_unit(tmp_path: Path) -> None:
    script = user_data()
    (tmp_path / "user-data.sh").write_text(script)
    assert subprocess.run(["bash", "-n", str(tmp_path / "user-data.sh")], capture_output=True).returncode == 0
    unit = script.split("<<'UNIT'\n", 1)[1].split("\nUNIT\n", 1)[0]
    assert "ExecStart=/usr/local/bin/backover replicate --migration-id %i" in unit
    assert "Restart=on-failure" in unit and "EnvironmentFile=/etc/backover.env" in unit
    env = dict(
        line.split("=", 1) for line in script.split("<<'ENV'\n", 1)[1].split("\nENV\n", 1)[0].splitlines()
    )
    # The names backover.options reads, so the unit's replicator needs no secret on its command line.
    assert {"BACKOVER_BUCKET", "BACKOVER_PREFIX", "BACKOVER_SOURCE_SECRET_ID"} <= set(env)
    assert "pip install" in script and "s3://art/backover/0.1.0/backover.whl" in script


@pytest.mark.slow  # deploys the whole stack on moto
def test_the_stack_deploys_on_moto(aws_endpoints: str) -> None:
    """moto creates the KMS key, bucket, roles, instance profile, instance, managed policy and
    Lambdas (from zips uploaded to its S3); it does not run the user data nor check VPC access."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="cfn-artifacts")
    for name in ("start", "restore", "clean"):
        s3.put_object(Bucket="cfn-artifacts", Key=f"backover/0.1.0/{name}.zip", Body=_tiny_zip())
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="backover-cfn", Description="t", VpcId=vpc)["GroupId"]
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:{}-AbCdEf"
    cfn = boto3.client("cloudformation")
    cfn.create_stack(
        StackName="backover-test",
        TemplateBody=TEMPLATE.read_text(),
        Capabilities=["CAPABILITY_IAM"],
        Parameters=[
            {"ParameterKey": k, "ParameterValue": v}
            for k, v in {
                "ArtifactBucket": "cfn-artifacts",
                "DocumentDbSecretArn": arn.format("docdb"),
                "MongoDbSecretArn": arn.format("mongo"),
                "AppUserSecretArn": arn.format("app"),
                "WorkerImageId": image,
                "SubnetId": subnet,
                "SecurityGroupId": group,
                "MigrationId": "m-1",  # with its alarms (moto skips AWS::CloudWatch::Alarm, with a warning)
            }.items()
        ],
    )
    stack = cfn.describe_stacks(StackName="backover-test")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    variable = json.loads(outputs["AirflowVariable"])
    assert variable["lambda_names"] == {
        "start": "backover-start",
        "restore": "backover-restore",
        "clean": "backover-clean",
    }
    assert variable["worker_instance_id"] == outputs["WorkerInstanceId"]
    instance = ec2.describe_instances(InstanceIds=[outputs["WorkerInstanceId"]])["Reservations"][0][
        "Instances"
    ][0]
    assert (
        instance["IamInstanceProfile"]["Arn"].split("/")[-1].startswith("backover-test-WorkerInstanceProfile")
    )
    encryption = s3.get_bucket_encryption(Bucket=outputs["BucketName"])["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    policy = boto3.client("iam").get_policy(PolicyArn=outputs["AirflowPolicyArn"])["Policy"]
    version = boto3.client("iam").get_policy_version(
        PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"]
    )
    document = version["PolicyVersion"]["Document"]
    document = json.loads(document) if isinstance(document, str) else document
    assert outputs["WorkerInstanceId"] in json.dumps(document) and "${" not in json.dumps(document)
    function = boto3.client("lambda", endpoint_url=aws_endpoints).get_function(FunctionName="backover-start")[
        "Configuration"
    ]
    assert function["Environment"]["Variables"]["BACKOVER_BUCKET"] == outputs["BucketName"]


def _tiny_zip() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    return buffer.getvalue()


def test_user_data_is_base64_encodable() -> None:
    assert base64.b64decode(base64.b64encode(user_data().encode())).decode().startswith("#!/bin/bash")


ALARMS = {"SilentReplicatorAlarm", "CaptureLagAlarm", "RetentionWindowAlarm", "RestoreLagAlarm"}
#: Values of the stack's parameters for the alarm tests (the others keep their defaults).
ALARM_PARAMETERS = {
    "NamePrefix": "backover",
    "Prefix": "backover",
    "MigrationId": "m-2026-12",
    "AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:backover-alarms",
    "CaptureLagAlarmSeconds": "120",
    "RestoreLagAlarmSeconds": "90",
    "ChangeStreamRetentionSeconds": "10800",
    "RetentionAlarmFraction": "0.5",
}


def resolved(value: Any, parameters: dict[str, str], conditions: dict[str, bool]) -> Any:
    """``value`` with Ref, Fn::Sub and Fn::If of the template worked out as CloudFormation would
    (only what the alarms use); ``AWS::NoValue`` drops the property."""
    if isinstance(value, list):
        return [v for v in (resolved(v, parameters, conditions) for v in value) if v is not _NO_VALUE]
    if not isinstance(value, dict):
        return value
    if list(value) == ["Ref"]:
        if value["Ref"] == "AWS::NoValue":
            return _NO_VALUE
        number = template()["Parameters"][value["Ref"]]["Type"] == "Number"
        return float(parameters[value["Ref"]]) if number else parameters[value["Ref"]]
    if list(value) == ["Fn::Sub"]:
        return re.sub(r"\$\{([A-Za-z:]+)\}", lambda m: parameters[m.group(1)], value["Fn::Sub"])
    if list(value) == ["Fn::If"]:
        name, yes, no = value["Fn::If"]
        return resolved(yes if conditions[name] else no, parameters, conditions)
    out = {k: resolved(v, parameters, conditions) for k, v in value.items()}
    return {k: v for k, v in out.items() if v is not _NO_VALUE}


_NO_VALUE = object()


def conditions(parameters: dict[str, str]) -> dict[str, bool]:
    """The template's conditions: each is ``!Not [!Equals [!Ref X, ""]]``."""
    out = {}
    for name, condition in template()["Conditions"].items():
        (equals,) = condition["Fn::Not"]
        left, right = equals["Fn::Equals"]
        out[name] = parameters[left["Ref"]] != right
    return out


def alarms(parameters: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The alarms the stack creates with ``parameters``, as PutMetricAlarm arguments."""
    known = conditions(parameters)
    return {
        name: resolved(resource["Properties"], parameters, known)
        for name, resource in template()["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm" and known[resource["Condition"]]
    }


def test_no_migration_id_no_alarms() -> None:
    assert alarms({**ALARM_PARAMETERS, "MigrationId": ""}) == {}
    assert set(alarms(ALARM_PARAMETERS)) == ALARMS


def test_the_alarms_exist_on_moto_with_their_thresholds(aws_endpoints: str) -> None:
    """moto's CloudFormation does not create AWS::CloudWatch::Alarm: the alarms the template
    declares are worked out for the parameters and created with PutMetricAlarm, which moto checks."""
    from backover import metrics

    cloudwatch = boto3.client("cloudwatch")
    declared = alarms(ALARM_PARAMETERS)
    for properties in declared.values():
        cloudwatch.put_metric_alarm(**properties)
    names = [p["AlarmName"] for p in declared.values()]
    found = {a["AlarmName"]: a for a in cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]}
    assert set(found) == {
        f"backover-m-2026-12-{n}"
        for n in ("silent-replicator", "capture-lag", "retention-window", "restore-lag")
    }
    topic = [ALARM_PARAMETERS["AlarmTopicArn"]]
    assert all(a["AlarmActions"] == topic and a["OKActions"] == topic for a in found.values())
    dimensions = [{"Name": "Prefix", "Value": "backover"}, {"Name": "MigrationId", "Value": "m-2026-12"}]

    silent = found["backover-m-2026-12-silent-replicator"]
    assert (silent["Namespace"], silent["MetricName"], silent["Dimensions"]) == (
        metrics.NAMESPACE,
        metrics.HEARTBEAT,
        dimensions,
    )
    assert silent["TreatMissingData"] == "breaching"  # no heartbeat at all is the alarm
    assert (
        silent["Period"] * silent["EvaluationPeriods"] == 600
        and silent["ComparisonOperator"] == "LessThanThreshold"
    )

    lag = found["backover-m-2026-12-capture-lag"]
    assert (lag["MetricName"], lag["Threshold"], lag["Statistic"]) == (metrics.CAPTURE_LAG, 120.0, "Maximum")
    restore = found["backover-m-2026-12-restore-lag"]
    assert (restore["MetricName"], restore["Threshold"]) == (metrics.RESTORE_LAG, 90.0)

    retention = found["backover-m-2026-12-retention-window"]
    assert retention["Threshold"] == 0.5
    (expression,) = [m for m in retention["Metrics"] if m.get("ReturnData", True) and "Expression" in m]
    assert expression["Expression"] == "lag / 10800"  # the capture lag as a share of the window
    (lag_query,) = [m for m in retention["Metrics"] if "MetricStat" in m]
    assert lag_query["MetricStat"]["Metric"]["MetricName"] == metrics.CAPTURE_LAG


def test_without_a_topic_the_alarms_have_no_actions() -> None:
    declared = alarms({**ALARM_PARAMETERS, "AlarmTopicArn": ""})
    assert set(declared) == ALARMS
    for properties in declared.values():
        assert "AlarmActions" not in properties and "OKActions" not in properties
