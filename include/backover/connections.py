"""Database credentials from an option, the environment or a Secrets Manager secret.

A URI is wrapped in :class:`DatabaseUri`, whose ``str``/``repr`` hide the password, so it cannot
reach a log line, an exception or S3 by accident. Secrets are DocumentDB-style JSON
(``{"engine", "username", "password", "host", "port", "ssl"}``) as AWS keeps a cluster's master
credentials; a secret may also hold ``{"uri": "mongodb://..."}``.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pymongo import MongoClient
from pymongo.errors import ConfigurationError, OperationFailure, PyMongoError
from pymongo.uri_parser import parse_uri

from .errors import UsageError


@dataclass(frozen=True)
class DatabaseUri:
    """A MongoDB URI that never shows its password."""

    value: str = field(repr=False)
    documentdb: bool = False  # DocumentDB: no retryable writes
    tls_ca_file: str | None = None

    def __str__(self) -> str:
        return redact(self.value)

    def __repr__(self) -> str:
        return f"DatabaseUri({redact(self.value)!r})"

    def client(self, **options: Any) -> MongoClient:
        """A client with Back Over's defaults: DocumentDB gets ``retryWrites=false``."""
        kwargs: dict[str, Any] = {"serverSelectionTimeoutMS": 10_000, "appname": "backover"}
        if self.documentdb:
            kwargs["retryWrites"] = False
        if self.tls_ca_file:
            kwargs["tlsCAFile"] = self.tls_ca_file
        kwargs.update(options)
        try:
            return MongoClient(self.value, **kwargs)
        except (ConfigurationError, ValueError) as e:
            raise UsageError(f"invalid database URI {self}: {_strip(str(e), self.value)}") from None


def redact(uri: str) -> str:
    """``mongodb://user:secret@host/`` -> ``mongodb://user:***@host/``."""
    scheme, sep, rest = uri.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return uri
    userinfo, _, hostpart = rest.partition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hostpart}"


def _strip(message: str, uri: str) -> str:
    """A driver message with any trace of the URI's password removed."""
    try:
        password = parse_uri(uri).get("password")
    except (ConfigurationError, ValueError):
        password = None
    if password:
        message = message.replace(password, "***").replace(urllib.parse.quote_plus(password), "***")
    return message.replace(uri, redact(uri))


def uri_from_secret(secret: dict[str, Any]) -> DatabaseUri:
    """A URI from a DocumentDB-style secret (or one holding ``uri``)."""
    documentdb = secret.get("engine") == "docdb"
    if "uri" in secret:
        return DatabaseUri(str(secret["uri"]), documentdb=documentdb)
    try:
        user = urllib.parse.quote_plus(str(secret["username"]))
        password = urllib.parse.quote_plus(str(secret["password"]))
        host, port = secret["host"], int(secret.get("port", 27017))
    except (KeyError, ValueError) as e:
        raise UsageError(f"the database secret lacks {e} (needs username, password, host, port)") from None
    params = {"authSource": "admin", "directConnection": "true"}
    if secret.get("ssl") or secret.get("tls"):
        params["tls"] = "true"
    if documentdb:
        params["retryWrites"] = "false"
    query = urllib.parse.urlencode(params)
    return DatabaseUri(f"mongodb://{user}:{password}@{host}:{port}/?{query}", documentdb=documentdb)


def read_secret(secret_id: str) -> dict[str, Any]:
    """A JSON secret from Secrets Manager; errors name the secret id, never its value."""
    try:
        value = boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        raise UsageError(f"cannot read secret {secret_id!r}: {code}") from None
    except BotoCoreError as e:
        raise UsageError(f"cannot reach Secrets Manager for secret {secret_id!r}: {type(e).__name__}") from None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        raise UsageError(f"secret {secret_id!r} is not JSON") from None
    if not isinstance(parsed, dict):
        raise UsageError(f"secret {secret_id!r} is not a JSON object")
    return parsed


def resolve(uri: str | None, secret_id: str | None, what: str, *, documentdb: bool | None = None) -> DatabaseUri:
    """The URI given directly or through a secret; exactly one of the two."""
    if uri and secret_id:
        raise UsageError(f"give the {what} as a URI or as a secret id, not both")
    if secret_id:
        resolved = uri_from_secret(read_secret(secret_id))
    elif uri:
        resolved = DatabaseUri(uri, documentdb="retrywrites=false" in uri.lower())
    else:
        raise UsageError(f"no {what}: pass --{what}-uri or --{what}-secret-id")
    if documentdb is not None and documentdb != resolved.documentdb:
        resolved = DatabaseUri(resolved.value, documentdb=documentdb, tls_ca_file=resolved.tls_ca_file)
    return resolved


def check_connection(uri: DatabaseUri, client: MongoClient) -> dict[str, Any]:
    """``hello`` and an authenticated ``ping``; UsageError with the reason when either fails."""
    try:
        client.admin.command("ping")
        return client.admin.command("hello")
    except OperationFailure as e:
        if e.code == 18:
            raise UsageError(f"authentication failed for {uri}") from None
        raise UsageError(f"{uri} refused the connection check: {_strip(str(e), uri.value)}") from None
    except PyMongoError as e:
        raise UsageError(f"cannot reach {uri}: {_strip(str(e), uri.value)}") from None
