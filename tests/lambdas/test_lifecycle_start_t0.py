"""T0 is taken after the change-stream enablement and proven by opening the replicator's stream there.

Against the documentdb stand-in, which refuses (code 136) a stream that starts before the
namespace's enablement, as DocumentDB does. The start step runs in-process with the Lambda's event.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from bson.timestamp import Timestamp
from lifecycle_world import Source

from backover.errors import JobFailed
from backover.lifecycle import change_streams
from backover.lifecycle.events import LifecycleEvent
from backover.lifecycle.start import start
from backover.namespaces import Namespace
from backover.replication.namespaces import narrowest_scope
from backover.replication.source import StreamStart, open_stream


def _replicator_stream(source: Source, namespaces: list[str], t0: Timestamp) -> Any:
    """The change stream ``backover replicate`` opens for these namespaces at T0 (raises if refused)."""
    scope = narrowest_scope(tuple(sorted(Namespace(*ns.partition(".")[::2]) for ns in namespaces)))
    stream, session = open_stream(source.root, scope, StreamStart(start_at=t0), await_ms=200)
    return stream, session


def _at_the_start_of_a_second() -> None:
    """Wait for a fresh wall-clock second: the cluster time keeps its seconds until the next one."""
    time.sleep(1.0 - time.time() % 1.0 + 0.01)


def test_a_write_just_before_start_does_not_make_t0_precede_the_enablement(
    source: Source, aws_endpoints: str
) -> None:
    orders, stock = source.databases
    _at_the_start_of_a_second()
    with source.app_client() as app:
        app[orders].items.update_one({"_id": "seed"}, {"$inc": {"n": 1}})  # the same second as the start
    result = start(LifecycleEvent.from_dict(source.event("start")))

    stream, session = _replicator_stream(source, source.databases, result.t0)  # 136 before the fix
    try:
        with source.app_client() as app:
            app[stock].items.insert_one({"_id": "after-start"})
        event = stream.try_next() or stream.try_next()
        assert event is not None and event["documentKey"] == {"_id": "after-start"}
    finally:
        stream.close()
        session.end_session()
    again = start(LifecycleEvent.from_dict(source.event("start")))
    assert again.t0 == result.t0 and again.already_started


def test_a_rerun_after_the_streams_were_off_meanwhile_fails_instead_of_keeping_a_dead_t0(
    source: Source, aws_endpoints: str
) -> None:
    event = LifecycleEvent.from_dict(source.event("start"))
    start(event)
    source.root.admin.command("modifyChangeStreams", 1, database="", collection="", enable=False)
    with source.app_client() as app:
        app[source.databases[0]].items.insert_one({"_id": "not-streamed"})
    with pytest.raises(JobFailed, match="enabled again after T0 .*start a new migration id"):
        start(event)


def test_several_collections_of_one_database_enable_the_database_the_replicator_watches(
    source: Source, aws_endpoints: str
) -> None:
    orders = source.databases[0]
    namespaces = [f"{orders}.items", f"{orders}.parcels"]
    source.root[orders].parcels.insert_one({"_id": "seed"})  # both collections exist on the source
    result = start(LifecycleEvent.from_dict(source.event("start", databases=None, namespaces=namespaces)))
    assert source.enabled_streams() == [{"database": orders, "collection": ""}]
    stream, session = _replicator_stream(source, namespaces, result.t0)
    stream.close()
    session.end_session()
    source.root.admin.command("modifyChangeStreams", 1, database=orders, collection="", enable=False)


def test_no_t0_after_the_enablement_is_a_clear_failure(
    source: Source, aws_endpoints: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every candidate refused (streams switched off by someone else right after enabling)."""
    monkeypatch.setattr(change_streams, "T0_RETRY_SECONDS", 0.01)
    enable = change_streams.enable

    def enable_then_lose(client: Any, flavour: str, namespaces: Any) -> Any:
        done = enable(client, flavour, namespaces)
        client.admin.command("modifyChangeStreams", 1, database="", collection="", enable=False)
        return done

    monkeypatch.setattr(change_streams, "enable", enable_then_lose)
    with pytest.raises(JobFailed, match="no T0 the change stream on the cluster accepts after 5 attempts"):
        start(LifecycleEvent.from_dict(source.event("start")))
