"""The start Lambda never shows a password from a secret's ``uri`` field, whatever it holds.

The master secret holds ``{"engine": "docdb", "uri": ...}`` with a password that has an unescaped
'/', '@', ':', '?', '#' or '%', or is escaped but wrong. The invocation fails with a one-line
``errorMessage``; neither it, the Tail log nor any line the function logged (at DEBUG) holds the
password or four characters of it, and nothing was changed.
"""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from lifecycle_world import LambdaWorld, Source, s3_keys

from secret_leaks import SPECIALS, VALID_ESCAPES, leaks, password, uri

pytestmark = pytest.mark.slow  # every invocation starts a Python process (the runner)


@pytest.mark.parametrize("special", SPECIALS)
@pytest.mark.parametrize("escaped", [False, True], ids=["unescaped", "escaped-wrong"])
def test_start_lambda_never_shows_the_secret_uris_password(
    lambdas: LambdaWorld,
    source: Source,
    standins: dict,
    moto_server: str,
    aws_endpoints: str,
    special: str,
    escaped: bool,
) -> None:
    secret = password(special)
    secret_id = f"lc/{uuid.uuid4().hex[:8]}/uri"
    boto3.client("secretsmanager", endpoint_url=moto_server, region_name="us-east-1").create_secret(
        Name=secret_id,
        SecretString=json.dumps(
            {"engine": "docdb", "uri": uri(standins["documentdb"].port, secret, escaped=escaped)}
        ),
    )
    reply = lambdas.invoke("start", source.event("start", master_secret_id=secret_id))

    assert reply.function_error == "Unhandled"
    shown = "\n".join([json.dumps(reply.payload), reply.log_tail, *lambdas.log_lines])
    assert not leaks(secret, shown), shown
    message = reply.payload["errorMessage"]
    assert reply.payload["errorType"] == "UsageError" and "\n" not in message, message
    refused = not escaped and special not in VALID_ESCAPES
    assert ("must be percent-escaped" if refused else "authentication failed") in message
    assert f"127.0.0.1:{standins['documentdb'].port}" in message  # the host is still named
    assert source.user_roles() == source.prior_roles
    assert source.enabled_streams() == []
    assert not [k for k in s3_keys(source.bucket) if not k.endswith("state/start.json")]
