"""The CloudWatch Logs group the roles grant (deploy/iam/*.json, the stack) is the one the code
sends worker commands' output to (``BackoverConfig.command_log_group``), for every prefix the
stack accepts; the empty prefix (the code's ``/backover``) is one the stack refuses."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from test_cloudformation import IAM, TEMPLATE, CfnLoader

from backover_airflow.config import BackoverConfig

PREFIXES = ["backover", "team-a/migrations", "a.b_c-d/x"]
ARN = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return []


def _command_log_groups(texts: list[str], prefix: str) -> set[str]:
    """The log groups of the ARNs that name Back Over's command output, ``${Prefix}`` filled in."""
    groups = set()
    for text in texts:
        if text.startswith(ARN) and "/aws/lambda/" not in text:
            name = text.removeprefix(ARN).replace("${Prefix}", prefix)
            groups.add(name.removesuffix(":log-stream:*"))
    return groups


@pytest.mark.parametrize("prefix", PREFIXES)
def test_the_roles_grant_the_group_the_code_names(prefix: str) -> None:
    code = BackoverConfig.command_log_group.fget(SimpleNamespace(prefix=prefix, log_group=None))  # type: ignore[attr-defined]
    template = yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=CfnLoader)
    sources = {
        "worker.json": _strings(json.loads((IAM / "worker.json").read_text(encoding="utf-8"))),
        "airflow.json": _strings(json.loads((IAM / "airflow.json").read_text(encoding="utf-8"))),
        "backover.yaml": _strings(template["Resources"]),
    }
    for name, texts in sources.items():
        assert _command_log_groups(texts, prefix) == {code}, name


def test_the_stack_refuses_the_empty_prefix() -> None:
    """With prefix "" the code names ``/backover``, the ARNs would say ``/backover/``: the stack
    (and its S3 statements, ``${Prefix}/*``) takes a non-empty prefix only."""
    template = yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=CfnLoader)
    pattern = template["Parameters"]["Prefix"]["AllowedPattern"]
    assert re.fullmatch(pattern, "") is None
    assert all(re.fullmatch(pattern, prefix) for prefix in PREFIXES)
