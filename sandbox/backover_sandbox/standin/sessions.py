"""Sessions on the stand-in: retryable writes deduplicated, transactions refused, write concern.

* Retryable writes (flavour mongodb): a write command with ``lsid`` and ``txnNumber`` records
  each statement it executed under that transaction number; the same command sent again (a
  driver's retry) answers from the record instead of writing twice, as mongod's
  TransactionParticipant does (``retriedStmtIds`` in the reply). A lower ``txnNumber`` than the
  session's last fails with 225 TransactionTooOld. Only the latest transaction number of a session
  is kept, sessions idle longer than ``logicalSessionTimeoutMinutes`` (30) are forgotten and at
  most :data:`MAX_SESSIONS` are kept, so the record stays bounded.
* Transactions are not implemented: ``startTransaction``/``autocommit`` are refused as mongod
  refuses a field it does not know (40415, on both flavours: DocumentDB 4.0+ has transactions);
  ``commitTransaction``/``abortTransaction`` are unknown commands (59).
* Write concern: the stand-in is a one-member replica set, so ``w`` above 1 (or a tag set) is
  applied and answered with mongod's ``writeConcernError`` (100 UnsatisfiableWriteConcern, 79
  UnknownReplWriteConcern); a malformed write concern fails the command (9) before it runs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bson.binary import Binary
from bson.int64 import Int64
from bson.raw_bson import RawBSONDocument

from backover.bsonvalues import encode, to_plain
from backover.mongo import errors
from backover.mongo.ordering import is_number, type_name

from .clock import WallClock
from .unsupported import unknown_field_error

#: Commands that are retryable writes (mongod's transaction_validation.cpp).
RETRYABLE_WRITE_COMMANDS = frozenset({"insert", "update", "delete", "findAndModify", "findandmodify"})

#: Commands that take a ``writeConcern`` (the stand-in's write and DDL commands).
WRITE_CONCERN_COMMANDS = frozenset(
    {
        *RETRYABLE_WRITE_COMMANDS,
        "create",
        "drop",
        "dropDatabase",
        "renameCollection",
        "createIndexes",
        "dropIndexes",
        "collMod",
        "createUser",
        "updateUser",
        "dropUser",
        "dropAllUsersFromDatabase",
        "grantRolesToUser",
        "revokeRolesFromUser",
        "modifyChangeStreams",
    }
)

#: Sessions whose retryable-write record is kept at most (least recently used dropped first).
MAX_SESSIONS = 10_000
#: mongod's logicalSessionTimeoutMinutes (the stand-in's hello answers 30 too).
SESSION_TIMEOUT_SECONDS = 30 * 60
#: A replica set's most members (mongod's ReplSetConfig::kMaxMembers): the largest numeric ``w``.
MAX_MEMBERS = 50
#: The stand-in's data-bearing members.
MEMBERS = 1


# -- session fields -----------------------------------------------------------------------------------
def check_session_fields(flavour: str, name: str, body: Mapping[str, Any]) -> int | None:
    """Validate the session fields of a command; the ``txnNumber`` of a retryable write (None
    without one). Transactions are refused; a ``txnNumber`` where mongod allows none fails as
    mongod fails it; on the documentdb flavour a ``txnNumber`` is refused as DocumentDB does."""
    for txn_field in ("startTransaction", "autocommit"):
        if txn_field in body:
            raise unknown_field_error(name, txn_field, detail="multi-document transactions")
    if "txnNumber" not in body:
        return None
    if flavour == "documentdb":
        raise errors.CommandError(
            errors.DOCUMENTDB_RETRYABLE_WRITES_NOT_SUPPORTED,
            "OperationFailed",
            "Retryable writes are not supported",
        )
    txn_number = body["txnNumber"]
    if not isinstance(txn_number, Int64):
        raise errors.type_mismatch(
            f"BSON field 'OperationSessionInfo.txnNumber' is the wrong type '{type_name(txn_number)}', "
            "expected type 'long'"
        )
    if "lsid" not in body:
        raise errors.CommandError(
            errors.INVALID_OPTIONS,
            "InvalidOptions",
            "Transaction number requires a session ID to also be specified",
        )
    if txn_number < 0:
        raise errors.CommandError(
            errors.INVALID_OPTIONS, "InvalidOptions", "Transaction number cannot be negative"
        )
    if name not in RETRYABLE_WRITE_COMMANDS:
        raise errors.location(
            errors.TXN_NUMBER_NOT_ALLOWED,
            "txnNumber may only be provided for multi-document transactions and retryable write "
            f"commands. autocommit:false was not provided, and {name} is not a retryable write command.",
        )
    return int(txn_number)


def session_key(lsid: Any) -> bytes:
    """A session's identity: the bytes of its ``lsid`` document."""
    if isinstance(lsid, RawBSONDocument):
        return bytes(lsid.raw)
    return encode(lsid) if isinstance(lsid, Mapping) else repr(lsid).encode()


def session_text(lsid: Any) -> str:
    """A session as mongod prints it in messages (``{ id: UUID("...") }``)."""
    plain = to_plain(lsid)
    session_id = plain.get("id") if isinstance(plain, Mapping) else None
    if isinstance(session_id, Binary) and session_id.subtype == 4:
        return f'{{ id: UUID("{session_id.as_uuid()}") }}'
    return f"{{ id: {session_id!r} }}"


# -- retryable writes ---------------------------------------------------------------------------------
@dataclass
class TxnStatements:
    """The statements one ``(lsid, txnNumber)`` executed: statement id -> what it did."""

    txn_number: int
    executed: dict[int, Any] = field(default_factory=dict)
    last_used: float = 0.0

    def get(self, stmt_id: int) -> Any:
        """What statement ``stmt_id`` did when it first ran, or None if it has not run."""
        return self.executed.get(stmt_id)

    def put(self, stmt_id: int, outcome: Any) -> None:
        self.executed[stmt_id] = outcome


class RetryableWrites:
    """The retryable-write record of every session, bounded (see the module docstring)."""

    def __init__(
        self,
        clock: WallClock,
        *,
        max_sessions: int = MAX_SESSIONS,
        timeout_seconds: float = SESSION_TIMEOUT_SECONDS,
    ) -> None:
        self._clock = clock
        self._max_sessions = max_sessions
        self._timeout = timeout_seconds
        self._sessions: OrderedDict[bytes, TxnStatements] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._sessions)

    def begin(self, lsid: Any, txn_number: int) -> TxnStatements:
        """The record of ``(lsid, txn_number)``: a fresh one for a new transaction number, the
        existing one for a retry; 225 TransactionTooOld for a number below the session's last."""
        key = session_key(lsid)
        now = self._clock.time()
        with self._lock:
            self._expire(now)
            current = self._sessions.get(key)
            if current is not None and current.txn_number > txn_number:
                raise errors.CommandError(
                    errors.TRANSACTION_TOO_OLD,
                    "TransactionTooOld",
                    f"Retryable write with txnNumber {txn_number} is prohibited on session "
                    f"{session_text(lsid)} because a newer retryable write with txnNumber "
                    f"{current.txn_number} has already started on this session.",
                )
            if current is None or current.txn_number < txn_number:
                current = TxnStatements(txn_number)
                self._sessions[key] = current
            current.last_used = now
            self._sessions.move_to_end(key)
            while len(self._sessions) > self._max_sessions:
                self._sessions.popitem(last=False)
            return current

    def _expire(self, now: float) -> None:
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if now - oldest.last_used <= self._timeout:
                return
            self._sessions.popitem(last=False)


def statement_ids(cmd: Mapping[str, Any], count: int) -> list[int]:
    """The statement id of each of ``count`` statements: ``stmtId + i`` (``stmtId`` defaults to 0),
    as mongod numbers the statements of a write command."""
    first = cmd.get("stmtId", 0)
    if isinstance(first, bool) or not is_number(first):
        raise errors.type_mismatch(
            f"BSON field 'OperationSessionInfo.stmtId' is the wrong type '{type_name(first)}', "
            "expected type 'int'"
        )
    return [int(first) + i for i in range(count)]


# -- write concern ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WriteConcern:
    """A parsed ``writeConcern``: what mongod echoes in ``errInfo.writeConcern``."""

    w: Any
    j: bool | None
    wtimeout: int

    def error(self) -> dict[str, Any] | None:
        """The ``writeConcernError`` a one-member replica set answers, or None when satisfied."""
        if isinstance(self.w, str):
            if self.w == "majority":
                return None
            code, code_name = errors.UNKNOWN_REPL_WRITE_CONCERN, "UnknownReplWriteConcern"
            message = f"No write concern mode named '{self.w}' found in replica set configuration"
        elif isinstance(self.w, int) and self.w > MEMBERS:
            code, code_name = errors.UNSATISFIABLE_WRITE_CONCERN, "UnsatisfiableWriteConcern"
            message = "Not enough data-bearing nodes"
        else:
            return None
        echoed: dict[str, Any] = {"w": self.w}
        if self.j is not None:
            echoed["j"] = self.j
        echoed["wtimeout"] = self.wtimeout
        echoed["provenance"] = "clientSupplied"
        return {"code": code, "codeName": code_name, "errmsg": message, "errInfo": {"writeConcern": echoed}}


def parse_write_concern(body: Mapping[str, Any]) -> WriteConcern | None:
    """The command's ``writeConcern`` parsed as mongod's WriteConcernOptions::parse does; None
    when absent or empty (the default). Malformed: 9 FailedToParse or 14 TypeMismatch."""
    if "writeConcern" not in body:
        return None
    spec = to_plain(body["writeConcern"])
    if not isinstance(spec, Mapping):
        raise errors.type_mismatch(
            f"BSON field 'writeConcern' is the wrong type '{type_name(spec)}', expected type 'object'"
        )
    if not spec:
        return None
    w: Any = spec.get("w")
    if w is not None:
        if is_number(w) and not isinstance(w, bool):
            w = int(w)
            if w < 0 or w > MAX_MEMBERS:
                raise errors.failed_to_parse(
                    f"w has to be a non-negative number and not greater than {MAX_MEMBERS}; found: {w}"
                )
        elif not isinstance(w, str):
            raise errors.failed_to_parse("w has to be a number or a string")
    j = spec.get("j")
    fsync = spec.get("fsync")
    if j is not None and not isinstance(j, bool) and not is_number(j):
        raise errors.type_mismatch(
            f"BSON field 'writeConcern.j' is the wrong type '{type_name(j)}', expected types '[bool, "
            "long, int, decimal, double]'"
        )
    if j and fsync:
        raise errors.failed_to_parse("fsync and j options cannot be used together")
    wtimeout = spec.get("wtimeout", 0)
    if isinstance(wtimeout, bool) or not is_number(wtimeout):
        raise errors.type_mismatch(
            f"BSON field 'writeConcern.wtimeout' is the wrong type '{type_name(wtimeout)}', expected "
            "types '[long, int, decimal, double]'"
        )
    return WriteConcern(1 if w is None else w, None if j is None else bool(j), int(wtimeout))


#: Read commands: they take a ``readConcern`` and refuse a ``writeConcern`` (72, as mongod).
READ_CONCERN_COMMANDS = frozenset({"find", "aggregate", "count", "distinct"})
NO_WRITE_CONCERN_COMMANDS = frozenset(
    {*READ_CONCERN_COMMANDS, "getMore", "listCollections", "listIndexes", "listDatabases"}
)
#: Read concern levels mongod knows; on one member every level but snapshot reads what is there.
READ_CONCERN_LEVELS = frozenset({"local", "majority", "linearizable", "available", "snapshot"})


def check_concerns(name: str, body: Mapping[str, Any]) -> None:
    """A ``readConcern`` the stand-in can honour, and no ``writeConcern`` on a read, else mongod's
    answer: a read of one member at ``local``/``majority``/``linearizable``/``available`` (with or
    without ``afterClusterTime``) is the data as it is; ``snapshot`` and ``atClusterTime`` (a read
    of the past) are refused (not implemented)."""
    aggregate_writes = name == "aggregate" and any(
        isinstance(stage, Mapping) and ("$out" in stage or "$merge" in stage)
        for stage in body.get("pipeline") or ()
    )
    if name in NO_WRITE_CONCERN_COMMANDS and "writeConcern" in body and not aggregate_writes:
        raise errors.CommandError(
            errors.INVALID_OPTIONS, "InvalidOptions", "Command does not support writeConcern"
        )
    if "readConcern" not in body:
        return
    spec = to_plain(body["readConcern"])
    if not isinstance(spec, Mapping):
        raise errors.type_mismatch(
            f"BSON field 'readConcern' is the wrong type '{type_name(spec)}', expected type 'object'"
        )
    for key in spec:
        if key not in ("level", "afterClusterTime", "atClusterTime"):
            raise unknown_field_error("readConcern", key)
    level = spec.get("level", "local")
    if not isinstance(level, str) or level not in READ_CONCERN_LEVELS:
        raise errors.bad_value(
            f"Enumeration value '{level}' for field 'readConcern.level' is not a valid value."
        )
    if level == "snapshot" or "atClusterTime" in spec:
        raise unknown_field_error(
            "readConcern", "atClusterTime" if "atClusterTime" in spec else "level", detail="snapshot reads"
        )
