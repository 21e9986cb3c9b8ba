"""The replay planner on hand-built events: compaction, rounds, barriers, skips and stops."""

from __future__ import annotations

import bson
import pytest
from bson import Int64
from restore_streams import built_event

from backover.restore.events import EventError, FullDocument, parse_event
from backover.restore.planner import (
    DELETE,
    UPDATE,
    UPSERT,
    Barrier,
    SegmentEvents,
    Window,
    delta_writes,
    plan,
)


def seg(seq: int, *events: bytes) -> SegmentEvents:
    return SegmentEvents(seq, f"changes/{seq:012d}.bson.zst", list(events))


def only_window(steps: list) -> Window:
    windows = [s for s in steps if isinstance(s, Window) and s.events]
    assert len(windows) == 1
    return windows[0]


def test_hot_key_keeps_only_the_last_state_per_document_in_a_window() -> None:
    steps = list(
        plan(
            [
                seg(
                    1,
                    built_event("insert", _id=1, full={"_id": 1, "v": 1}),
                    built_event("update", _id=1, full={"_id": 1, "v": 2}),
                    built_event("replace", _id=1, full={"_id": 1, "v": 3}),
                    built_event("insert", _id=2, full={"_id": 2, "v": 1}),
                    built_event("delete", _id=2),
                )
            ],
            window_events=100,
        )
    )
    window = only_window(steps)
    rounds = window.rounds()
    assert len(rounds) == 1
    writes = {bson.decode(w.document_key)["_id"]: w for w in rounds[0][("d", "c")]}
    assert writes[1].kind == UPSERT and bson.decode(writes[1].document) == {"_id": 1, "v": 3}
    assert writes[2].kind == DELETE
    assert window.events == 5 and window.done[0].seq == 1


def test_numerically_equal_ids_are_one_document() -> None:
    """An int32 1 deleted and an Int64 1 inserted are the same MongoDB document: order is kept."""
    steps = list(
        plan(
            [
                seg(
                    1,
                    built_event("insert", _id=1, full={"_id": 1}),
                    built_event("delete", _id=1),
                    built_event("insert", _id=Int64(1), full={"_id": Int64(1), "x": 1}),
                )
            ],
            100,
        )
    )
    (write,) = only_window(steps).rounds()[0][("d", "c")]
    assert write.kind == UPSERT and bson.decode(write.document)["x"] == 1


def test_windows_never_compact_across_a_ddl_barrier() -> None:
    steps = list(
        plan(
            [
                seg(
                    1,
                    built_event("insert", _id=1, full={"_id": 1, "v": 1}),
                    built_event("drop"),
                    built_event("insert", _id=1, full={"_id": 1, "v": 2}),
                )
            ],
            100,
        )
    )
    kinds = [type(s).__name__ for s in steps]
    assert kinds == ["Window", "Barrier", "Window"]
    assert bson.decode(steps[0].rounds()[0][("d", "c")][0].document)["v"] == 1
    assert isinstance(steps[1], Barrier) and steps[1].event.op == "drop"
    assert bson.decode(steps[2].rounds()[0][("d", "c")][0].document)["v"] == 2
    assert [d.seq for d in steps[2].done] == [1]  # the segment completes with its last event


def test_window_size_cuts_and_segments_complete_with_their_last_event() -> None:
    events = [built_event("insert", _id=i, full={"_id": i}) for i in range(5)]
    steps = list(plan([seg(1, *events[:3]), seg(2, *events[3:])], window_events=2))
    assert [s.events for s in steps] == [2, 2, 1]
    assert [[d.seq for d in s.done] for s in steps] == [[], [1], [2]]


def test_an_empty_segment_still_completes() -> None:
    steps = list(plan([seg(1), seg(2, built_event("insert", _id=1, full={"_id": 1}))], 10))
    assert [[d.seq for d in s.done] for s in steps] == [[1], [2]]


def test_null_full_document_replays_its_description_as_best_effort_and_is_counted() -> None:
    steps = list(
        plan(
            [
                seg(
                    1,
                    built_event("insert", _id=1, full={"_id": 1}),
                    built_event("update", _id=1, full=None, description={"updatedFields": {"x": 1}}),
                    built_event("update", _id=2, full=None, description={"updatedFields": {"y": 1}}),
                )
            ],
            10,
        )
    )
    window = only_window(steps)
    first, second = window.rounds()
    assert first[("d", "c")][0].kind == UPSERT and not first[("d", "c")][0].best_effort
    assert [w.best_effort for w in first[("d", "c")][1:] + second[("d", "c")]] == [True, True]
    assert window.done[0].counts == {"d.c": {"insert": 1, "update": 2, "lookup_null": 2}}


def test_update_descriptions_chain_after_the_last_full_state() -> None:
    steps = list(
        plan(
            [
                seg(
                    1,
                    built_event("insert", _id=1, full={"_id": 1, "a": [1, 2, 3]}),
                    built_event("update", _id=1, description={"updatedFields": {"b.c": 1}}),
                    built_event("update", _id=1, description={"removedFields": ["b"]}),
                )
            ],
            10,
        )
    )
    rounds = only_window(steps).rounds()
    assert [r[("d", "c")][0].kind for r in rounds] == [UPSERT, UPDATE, UPDATE]
    assert [list(r[("d", "c")][0].update or {}) for r in rounds[1:]] == [["$set"], ["$unset"]]


def test_a_truncation_on_a_set_path_is_a_write_of_its_own() -> None:
    event = parse_event(
        built_event(
            "update",
            _id=1,
            description={"updatedFields": {"a.1": 9}, "truncatedArrays": [{"field": "a", "newSize": 2}]},
        )
    )
    first, second = delta_writes(event)
    assert first.update == {"$push": {"a": {"$each": [], "$slice": 2}}}
    assert dict(second.update["$set"]) == {"a.1": 9}
    (combined,) = delta_writes(
        parse_event(
            built_event(
                "update",
                _id=1,
                description={"updatedFields": {"b": 1}, "truncatedArrays": [{"field": "a", "newSize": 0}]},
            )
        )
    )
    assert set(combined.update) == {"$set", "$push"}


def test_events_keep_their_documents_as_raw_bytes() -> None:
    full = bson.encode({"_id": 7, "n": Int64(1)})
    event = parse_event(built_event("replace", _id=7, full=bson.decode(full)))
    assert event.full is FullDocument.PRESENT and event.full_document == bson.encode(
        {"_id": 7, "n": Int64(1)}
    )
    assert event.document_key == bson.encode({"_id": 7})


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(built_event("invalidate"), "invalidate", id="invalidate"),
        pytest.param(built_event("createIndexes"), "unknown event type 'createIndexes'", id="unknown"),
        pytest.param(bson.encode({"_id": 1}), "no readable operationType", id="malformed"),
        pytest.param(bson.encode({}), "no readable operationType", id="empty"),
        pytest.param(
            bson.encode({"operationType": "insert"}).replace(b"\x07\x00\x00\x00", b"\x70\x00\x00\x00"),
            "malformed",
            id="overrun",
        ),
        pytest.param(built_event("insert", _id=1), "without a fullDocument", id="insert-without-document"),
    ],
)
def test_invalidate_unknown_and_malformed_events_stop_the_plan(raw: bytes, reason: str) -> None:
    with pytest.raises(EventError) as failure:
        list(plan([seg(3, built_event("insert", _id=1, full={"_id": 1}), raw)], 10))
    assert reason in str(failure.value)
    assert "changes/000000000003.bson.zst event 1" in str(failure.value)
