"""The stand-in's retryable-write record stays bounded: one transaction number per session, idle
sessions forgotten, at most ``max_sessions`` kept."""

from __future__ import annotations

import uuid

import pytest
from bson import Binary

from backover.mongo.errors import TRANSACTION_TOO_OLD, CommandError
from backover_sandbox.standin.clock import ManualClock
from backover_sandbox.standin.sessions import RetryableWrites, parse_write_concern


def _lsid() -> dict:
    return {"id": Binary(uuid.uuid4().bytes, 4)}


def test_a_new_transaction_number_replaces_the_record_and_an_older_one_is_too_old() -> None:
    writes = RetryableWrites(ManualClock())
    lsid = _lsid()
    writes.begin(lsid, 1).put(0, True)
    assert writes.begin(lsid, 1).get(0) is True  # a retry sees what ran
    assert writes.begin(lsid, 2).get(0) is None  # a new number starts afresh
    with pytest.raises(CommandError) as e:
        writes.begin(lsid, 1)
    assert e.value.code == TRANSACTION_TOO_OLD


def test_sessions_are_bounded_and_forgotten_when_idle() -> None:
    clock = ManualClock()
    writes = RetryableWrites(clock, max_sessions=3, timeout_seconds=60)
    sessions = [_lsid() for _ in range(5)]
    for lsid in sessions:
        writes.begin(lsid, 1).put(0, True)
    assert len(writes) == 3
    assert writes.begin(sessions[0], 1).get(0) is None  # the least recently used was dropped
    clock.advance(61)
    writes.begin(_lsid(), 1)
    assert len(writes) == 1


def test_a_write_concern_is_parsed_as_mongod_parses_it() -> None:
    assert parse_write_concern({}) is None
    assert parse_write_concern({"writeConcern": {}}) is None
    assert parse_write_concern({"writeConcern": {"w": 1}}).error() is None  # type: ignore[union-attr]
    assert parse_write_concern({"writeConcern": {"w": "majority"}}).error() is None  # type: ignore[union-attr]
    unsatisfiable = parse_write_concern({"writeConcern": {"w": 2, "wtimeout": 5}}).error()  # type: ignore[union-attr]
    assert unsatisfiable == {
        "code": 100,
        "codeName": "UnsatisfiableWriteConcern",
        "errmsg": "Not enough data-bearing nodes",
        "errInfo": {"writeConcern": {"w": 2, "wtimeout": 5, "provenance": "clientSupplied"}},
    }
    for bad in ({"w": 51}, {"w": -1}, {"w": [1]}, {"j": True, "fsync": True}):
        with pytest.raises(CommandError) as e:
            parse_write_concern({"writeConcern": bad})
        assert e.value.code == 9, bad
