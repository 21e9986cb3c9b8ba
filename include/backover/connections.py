"""Database credentials from an option, the environment or a Secrets Manager secret.

A URI is wrapped in :class:`DatabaseUri`, whose ``str``/``repr`` hide the password, so it cannot
reach a log line, an exception or S3 by accident. Redaction reads the URI the way the driver must
for the password to stay hidden whatever it holds: everything between ``://`` and the *last* ``@``
is credentials. When that part is not a well-formed (percent-escaped) ``user:password``, nothing
of it is shown, and :meth:`DatabaseUri.client` refuses the URI before the driver reads it (the
driver would cut an unescaped password at its ``/`` or ``?`` and report the pieces as host names). Secrets are DocumentDB-style JSON
(``{"engine", "username", "password", "host", "port", "ssl"}``) as AWS keeps a cluster's master
credentials; a secret may also hold ``{"uri": "mongodb://..."}``.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pymongo import MongoClient
from pymongo.errors import ConfigurationError, OperationFailure, PyMongoError

from .errors import Unreachable, UsageError, is_transient
from .mongo import errors as codes


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
        """A client with Back Over's defaults (a 10 s server selection timeout, appname ``backover``),
        each yielding to the same option written in the URI; DocumentDB gets ``retryWrites=false``."""
        written = _uri_option_names(self.value)
        kwargs: dict[str, Any] = {
            name: value for name, value in CLIENT_DEFAULTS.items() if name.lower() not in written
        }
        if self.documentdb:
            kwargs["retryWrites"] = False
        if self.tls_ca_file:
            kwargs["tlsCAFile"] = self.tls_ca_file
        kwargs.update(options)
        _refuse_unescaped(self.value)
        try:
            return MongoClient(self.value, **kwargs)
        except (ConfigurationError, ValueError) as e:
            raise UsageError(f"invalid database URI {self}: {_strip(str(e), self.value)}") from None


#: What :meth:`DatabaseUri.client` sets unless the URI says otherwise.
CLIENT_DEFAULTS: dict[str, Any] = {"serverSelectionTimeoutMS": 10_000, "appname": "backover"}


def _uri_option_names(uri: str) -> set[str]:
    """The (lower-cased) names of the options a URI writes after its '?'."""
    query = uri.rpartition("@")[2].partition("?")[2]
    return {pair.split("=", 1)[0].strip().lower() for pair in re.split(r"[&;]", query) if pair}


SCHEMES = ("mongodb://", "mongodb+srv://")
#: RFC 3986 userinfo: unreserved and sub-delimiter characters, percent escapes, and ':'.
_USERINFO = re.compile(r"(?:[A-Za-z0-9._~!$&'()*+,;=:-]|%[0-9A-Fa-f]{2})*")
#: URI options whose values are secrets (a key file's password, an AWS session token).
_SECRET_OPTIONS = re.compile(
    r"(?i)([?&;](?:tlsCertificateKeyFilePassword|sslPEMKeyPassword|authMechanismProperties)=)[^&;]*"
)
_DELIMITERS = re.compile(r"[:/?#\[\]@]")
NOT_A_URI = "<not a mongodb:// URI>"


@dataclass(frozen=True)
class _Parts:
    """A URI cut where the password cannot be: ``scheme``, ``userinfo`` (before the last '@') and ``rest``."""

    scheme: str
    userinfo: str | None  # None: no '@', so no credentials
    rest: str

    @property
    def well_formed(self) -> bool:
        """``user[:password]``, percent-escaped, so the driver reads exactly these credentials."""
        return (
            self.userinfo is not None
            and self.userinfo.count(":") <= 1
            and bool(_USERINFO.fullmatch(self.userinfo))
        )

    def secrets(self) -> list[str]:
        """Every text that may hold the password as it could appear in a driver's message."""
        if self.userinfo is None:
            return []
        if not self.well_formed:  # the password may be any piece of it
            pieces = [p for p in _DELIMITERS.split(self.userinfo) if len(p) >= 4]
            return [self.userinfo, urllib.parse.unquote_plus(self.userinfo), *pieces]
        escaped = self.userinfo.partition(":")[2]
        return [escaped, *password_forms(urllib.parse.unquote_plus(escaped))]


def password_forms(password: str) -> list[str]:
    """The password as a message may show it: as is and percent-escaped both ways."""
    return [password, urllib.parse.quote_plus(password), urllib.parse.quote(password, safe="")]


def strip_password(message: str, password: str | None) -> str:
    """``message`` with every form of ``password`` (:func:`password_forms`) replaced by ``***``."""
    if not password:
        return message
    for form in sorted(set(password_forms(password)), key=len, reverse=True):
        message = message.replace(form, "***")
    return message


def _parts(uri: str) -> _Parts | None:
    for scheme in SCHEMES:
        if uri.startswith(scheme):
            userinfo, at, rest = uri[len(scheme) :].rpartition("@")
            return _Parts(scheme, userinfo if at else None, rest)
    return None


def redact(uri: str) -> str:
    """``mongodb://user:secret@host/`` -> ``mongodb://user:***@host/``; never any of the password.

    Credentials end at the last '@'. A user name is shown only when the credentials are
    well-formed; otherwise they are all ``***``. Secret options' values are ``***`` too. A text
    that is not a ``mongodb://``/``mongodb+srv://`` URI is not shown at all.
    """
    parts = _parts(uri)
    if parts is None:
        return NOT_A_URI
    rest = _SECRET_OPTIONS.sub(r"\1***", parts.rest)
    if parts.userinfo is None:
        return parts.scheme + rest
    if parts.well_formed:
        user, colon, _ = parts.userinfo.partition(":")
        return f"{parts.scheme}{user}{':***' if colon else ''}@{rest}"
    return f"{parts.scheme}***@{rest}"


def _refuse_unescaped(uri: str) -> None:
    """UsageError, before the driver reads it, when a URI's credentials are not percent-escaped."""
    parts = _parts(uri)
    if parts is not None and parts.userinfo is not None and not parts.well_formed:
        raise UsageError(
            f"invalid database URI {redact(uri)}: the user name and password (all before the last '@') "
            "must be percent-escaped (urllib.parse.quote_plus) where they hold ':', '/', '?', '#', '[', ']', "
            "'@' or '%'"
        )


def _strip(message: str, uri: str) -> str:
    """A driver message with any trace of the URI's password removed."""
    parts = _parts(uri)
    message = message.replace(uri, redact(uri))
    for secret in sorted(set(parts.secrets() if parts else [uri]), key=len, reverse=True):
        if secret:
            message = message.replace(secret, "***")
    return message


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
        kind = Unreachable if is_transient(e) else UsageError
        raise kind(f"cannot read secret {secret_id!r}: {code}") from None
    except BotoCoreError as e:
        raise Unreachable(
            f"cannot reach Secrets Manager for secret {secret_id!r}: {type(e).__name__}"
        ) from None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        raise UsageError(f"secret {secret_id!r} is not JSON") from None
    if not isinstance(parsed, dict):
        raise UsageError(f"secret {secret_id!r} is not a JSON object")
    return parsed


def resolve(
    uri: str | None, secret_id: str | None, what: str, *, documentdb: bool | None = None
) -> DatabaseUri:
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
        if e.code == codes.AUTHENTICATION_FAILED:
            raise UsageError(f"authentication failed for {uri}") from None
        raise UsageError(f"{uri} refused the connection check: {_strip(str(e), uri.value)}") from None
    except PyMongoError as e:
        raise Unreachable(f"cannot reach {uri}: {_strip(str(e), uri.value)}") from None
    except ValueError as e:  # the driver's SASLprep refuses the password before sending it
        raise UsageError(f"authentication failed for {uri}: {_strip(str(e), uri.value)}") from None
