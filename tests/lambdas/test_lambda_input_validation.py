"""Through the runner: the start Lambda refuses a migration id, bucket or prefix that the command
line refuses (never stripping it), names the field, and changes nothing."""

from __future__ import annotations

import pytest
from lifecycle_world import LambdaWorld, Source, s3_keys

from backover.layout import BUCKET_RULE, MIGRATION_ID_RULE, PREFIX_RULE

pytestmark = pytest.mark.slow  # every invocation starts a Python process (the runner)


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        pytest.param("migration_id", "{id}\n", MIGRATION_ID_RULE, id="id-trailing-newline"),
        pytest.param("migration_id", " {id}", MIGRATION_ID_RULE, id="id-leading-space"),
        pytest.param("bucket", "{bucket}\n", BUCKET_RULE, id="bucket-trailing-newline"),
        pytest.param("prefix", "../../etc", PREFIX_RULE, id="prefix-climbs-out"),
        pytest.param("prefix", "//a//b//", PREFIX_RULE, id="prefix-empty-segments"),
    ],
)
def test_start_refuses_what_the_command_line_refuses(
    lambdas: LambdaWorld, source: Source, aws_endpoints: str, field: str, value: str, rule: str
) -> None:
    given = value.format(id=source.migration_id, bucket=source.bucket)
    reply = lambdas.invoke("start", source.event("start", **{field: given}))
    assert reply.function_error == "Unhandled"
    assert reply.payload["errorType"] == "InvalidEvent"
    message = reply.payload["errorMessage"]
    assert f"field '{field}'" in message and rule in message and "\n" not in message
    assert s3_keys(source.bucket) == []
    assert source.user_roles() == source.prior_roles
    assert source.enabled_streams() == []
