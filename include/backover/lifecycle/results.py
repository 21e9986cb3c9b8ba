"""Small result records of the lifecycle steps: JSON-able, so Airflow can show and template them.

``to_dict()`` turns cluster times into ``"<seconds>:<increment>"`` strings, dates into ISO 8601
and namespaces into ``db`` / ``db.coll``. No record holds a credential.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from bson.timestamp import Timestamp

from .. import clustertime
from ..namespaces import Namespace
from ..state import ReadOnlyProof, utc_now


def now_ms() -> datetime:
    """UTC now at the millisecond precision BSON dates (and so the JSON state files) keep."""
    now = utc_now()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def jsonable(value: Any) -> Any:
    """``value`` with BSON and Python types a JSON encoder does not know turned into strings."""
    if isinstance(value, Timestamp):
        return clustertime.format(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Namespace):
        return str(value)
    if isinstance(value, ResultRecord):
        return value.to_dict()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [jsonable(v) for v in value]
        return sorted(items) if isinstance(value, (set, frozenset)) else items
    return value


class ResultRecord:
    """Mixin for the dataclass results: ``to_dict()`` gives plain JSON values."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: jsonable(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


@dataclass
class RetentionCheck(ResultRecord):
    """What the start step knew about the change-stream retention, and its verdict."""

    required_hours: float | None
    available_hours: float | None
    source: str  # event, environment, server, documentdb-default, unknown
    ok: bool
    note: str


@dataclass
class StartResult(ResultRecord):
    """Outcome of the start Lambda."""

    migration_id: str
    source_flavour: str
    t0: Timestamp
    app_user: str
    databases: list[str]
    namespaces: list[Namespace]
    roles_granted: list[dict[str, str]]
    change_streams_enabled: list[Namespace]
    retention: RetentionCheck
    already_started: bool
    state_key: str


@dataclass
class FreezeResult(ResultRecord):
    """Outcome of the restore Lambda."""

    migration_id: str
    f: Timestamp
    app_user: str
    read_only_roles: list[dict[str, str]]  # the roles the user kept (re-read after the change)
    roles_removed: list[dict[str, str]]  # the write and user-admin roles taken away or replaced
    read_only_proof: ReadOnlyProof
    proof_note: str
    already_frozen: bool
    state_key: str
    drain_key: str


@dataclass
class CleanResult(ResultRecord):
    """Outcome of the clean Lambda."""

    migration_id: str
    source_flavour: str
    change_streams_disabled: list[Namespace]
    disabled_now: list[Namespace]
    state_key: str


@dataclass
class AbortLeft(ResultRecord):
    """What an abort leaves as it is (read from the migration's records), and the next steps."""

    change_streams_left_on: list[Namespace]  # the streams backover_start enabled: they stay on
    replicator_state: str | None  # the replicator's checkpoint now (None: it never ran)
    restore_state: str | None  # the (follow) restore's checkpoint now (None: none ran)
    left: list[str]  # one line each: replicator, restore, change streams, files
    next_steps: list[str]


@dataclass
class AbortResult(ResultRecord):
    """Outcome of an abort."""

    migration_id: str
    app_user: str
    roles_restored: list[dict[str, str]]  # the prior roles given back (state/start.json)
    roles_now: list[dict[str, str]]  # the user's roles as the source reports them afterwards
    can_write: list[str]  # the migrated databases those roles let it write
    cannot_write: list[str]  # the others: its prior roles were read-only there
    stop_requested_at: datetime
    stop_key: str
    left: AbortLeft
    notes: list[str] = field(default_factory=list)
