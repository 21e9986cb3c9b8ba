"""The event the start, restore and clean Lambdas take, parsed into a typed, validated record.

::

    {
      "migration_id": "orders-2026-06",
      "bucket": "backover-prod",
      "prefix": "backover",                       # optional, default backover.defaults.PREFIX
      "master_secret_id": "docdb/master",         # Secrets Manager id of the master credentials
      "app_user": "orders_app",                   # the microservices' user (in ``admin``)
      "databases": ["shop", "inventory"],         # or "namespaces": ["shop", "inventory.items"]
      "tls_ca_file": "global-bundle.pem",         # optional, DocumentDB's CA bundle
      "app_secret_id": "docdb/orders-app",        # optional: proves read-only by a real write
      "required_retention_hours": 24,             # optional: start refuses a shorter retention
      "retention_hours": 24,                      # optional: the cluster's retention, if known
      "force": false,                             # optional: clean without the restore checks
      "allow_missing": false                      # optional: start accepts databases/collections the
                                                  # source does not hold yet (created later)
    }

A malformed event raises :class:`InvalidEvent`, whose message names the field, before anything
is read or changed. Unknown fields are refused too, so a misspelt option is never ignored. The
migration id, bucket and prefix follow the command line's rules (``backover.layout``), and are
taken exactly as given: an id with a trailing newline is refused, never stripped, so a Lambda and
a worker command can never work in two different folders.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import defaults
from ..errors import UsageError
from ..layout import InvalidName, MigrationLayout, check_bucket_name, check_migration_id, check_prefix
from ..namespaces import InvalidNamespace, Namespace

REQUIRED = ("migration_id", "bucket", "master_secret_id", "app_user")
OPTIONAL = (
    "prefix",
    "databases",
    "namespaces",
    "tls_ca_file",
    "app_secret_id",
    "required_retention_hours",
    "retention_hours",
    "force",
    "allow_missing",
)


class InvalidEvent(UsageError):
    """The event is malformed; ``field`` names the culprit and nothing was changed."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"invalid event: field '{field}' {problem}")


@dataclass(frozen=True)
class LifecycleEvent:
    """What every lifecycle Lambda is told."""

    migration_id: str
    bucket: str
    master_secret_id: str
    app_user: str
    namespaces: tuple[Namespace, ...]
    prefix: str = defaults.PREFIX
    tls_ca_file: str | None = None
    app_secret_id: str | None = None
    required_retention_hours: float | None = None
    retention_hours: float | None = None
    force: bool = False
    #: start: a database or collection the source does not hold is meant to be created later (its
    #: changes are captured from T0 once it exists) rather than refused as a typo.
    allow_missing: bool = False

    @property
    def databases(self) -> tuple[str, ...]:
        return tuple(sorted({ns.db for ns in self.namespaces}))

    def layout(self) -> MigrationLayout:
        return MigrationLayout(bucket=self.bucket, prefix=self.prefix, migration_id=self.migration_id)

    @classmethod
    def from_dict(cls, raw: Any) -> LifecycleEvent:
        """Parse and validate a Lambda event; :class:`InvalidEvent` names the first bad field."""
        if not isinstance(raw, Mapping):
            raise InvalidEvent("(event)", f"must be a JSON object, not {type(raw).__name__}")
        unknown = sorted(set(raw) - set(REQUIRED) - set(OPTIONAL))
        if unknown:
            raise InvalidEvent(unknown[0], f"is not known (known fields: {', '.join(REQUIRED + OPTIONAL)})")
        for name in REQUIRED:
            if name not in raw:
                raise InvalidEvent(name, "is missing")
        migration_id = _named(raw, "migration_id", check_migration_id)
        bucket = _named(raw, "bucket", check_bucket_name)
        prefix = _named(raw, "prefix", check_prefix, default=defaults.PREFIX)
        return cls(
            migration_id=migration_id,
            bucket=bucket,
            master_secret_id=_string(raw, "master_secret_id"),
            app_user=_string(raw, "app_user"),
            namespaces=_namespaces(raw),
            prefix=prefix,
            tls_ca_file=_optional_string(raw, "tls_ca_file"),
            app_secret_id=_optional_string(raw, "app_secret_id"),
            required_retention_hours=_optional_hours(raw, "required_retention_hours"),
            retention_hours=_optional_hours(raw, "retention_hours"),
            force=_optional_bool(raw, "force"),
            allow_missing=_optional_bool(raw, "allow_missing"),
        )


def _named(
    raw: Mapping[str, Any], name: str, check: Callable[[object], str], default: str | None = None
) -> str:
    """A bucket, prefix or migration id, exactly as given (never stripped), checked by the rule in
    ``backover.layout`` that the command line applies too."""
    value = raw.get(name, default)
    if not isinstance(value, str):
        raise InvalidEvent(name, "must be a string")
    try:
        return check(value)
    except InvalidName as e:
        raise InvalidEvent(name, f"must be {e.rule}") from None


def _string(raw: Mapping[str, Any], name: str) -> str:
    value = raw.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidEvent(name, "must be a non-empty string")
    return value.strip()


def _optional_string(raw: Mapping[str, Any], name: str) -> str | None:
    return None if raw.get(name) is None else _string(raw, name)


def _optional_hours(raw: Mapping[str, Any], name: str) -> float | None:
    value = raw.get(name)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidEvent(name, "must be a positive number of hours")
    return float(value)


def _optional_bool(raw: Mapping[str, Any], name: str) -> bool:
    value = raw.get(name, False)
    if not isinstance(value, bool):
        raise InvalidEvent(name, "must be true or false")
    return value


def _namespaces(raw: Mapping[str, Any]) -> tuple[Namespace, ...]:
    """``databases`` (names) or ``namespaces`` (``db`` or ``db.coll``): exactly one of the two."""
    given = [name for name in ("databases", "namespaces") if raw.get(name) is not None]
    if not given:
        raise InvalidEvent("databases", "is missing (give 'databases' or 'namespaces')")
    if len(given) == 2:
        raise InvalidEvent("namespaces", "cannot be given together with 'databases'")
    name = given[0]
    values = raw[name]
    if not isinstance(values, list) or not values:
        raise InvalidEvent(name, "must be a non-empty list of strings")
    parsed: set[Namespace] = set()
    for value in values:
        if not isinstance(value, str):
            raise InvalidEvent(name, "must be a non-empty list of strings")
        if name == "databases" and "." in value:
            raise InvalidEvent(name, f"holds {value!r}: a database name has no '.' (use 'namespaces')")
        try:
            parsed.add(Namespace.parse(value))
        except InvalidNamespace as e:
            raise InvalidEvent(name, f"is invalid: {e}") from None
    # A collection inside a database that is migrated whole adds nothing.
    kept = {ns for ns in parsed if not any(o != ns and o.contains(ns) for o in parsed)}
    return tuple(sorted(kept))
