"""Aggregation stage names as MongoDB knows them, named once for the stand-in's pipelines.

A name outside :data:`MONGODB_STAGES` is one mongod does not know (code 40324); a known stage
outside :data:`CHANGE_STREAM_ALLOWED` after ``$changeStream`` is refused with code 20, as
mongod's allowlist does (its jstests' ``change_stream_allowlist`` case).
"""

from __future__ import annotations

from backover.mongo import errors

#: Every stage a MongoDB 6.0/7.0 server parses (its user-facing ones).
MONGODB_STAGES = frozenset(
    {
        "$addFields",
        "$bucket",
        "$bucketAuto",
        "$changeStream",
        "$changeStreamSplitLargeEvent",
        "$collStats",
        "$count",
        "$currentOp",
        "$densify",
        "$documents",
        "$facet",
        "$fill",
        "$geoNear",
        "$graphLookup",
        "$group",
        "$indexStats",
        "$limit",
        "$listLocalSessions",
        "$listSampledQueries",
        "$listSearchIndexes",
        "$listSessions",
        "$lookup",
        "$match",
        "$merge",
        "$out",
        "$planCacheStats",
        "$project",
        "$redact",
        "$replaceRoot",
        "$replaceWith",
        "$sample",
        "$search",
        "$searchMeta",
        "$set",
        "$setWindowFields",
        "$shardedDataDistribution",
        "$skip",
        "$sort",
        "$sortByCount",
        "$unionWith",
        "$unset",
        "$unwind",
        "$vectorSearch",
    }
)

#: The stages MongoDB allows after ``$changeStream`` (its change-stream allowlist).
CHANGE_STREAM_ALLOWED = frozenset(
    {"$match", "$project", "$addFields", "$set", "$unset", "$replaceRoot", "$replaceWith", "$redact"}
)


def unrecognized_stage(name: str) -> errors.CommandError:
    """Code 40324: a stage name the server does not know."""
    return errors.CommandError(
        errors.UNRECOGNIZED_PIPELINE_STAGE, "Location40324", f"Unrecognized pipeline stage name: '{name}'"
    )


def not_implemented_stage(name: str) -> errors.CommandError:
    """Code 40324 for a stage MongoDB has and the stand-in does not run: the answer of a server that
    does not know it, saying it is the stand-in's."""
    return errors.CommandError(
        errors.UNRECOGNIZED_PIPELINE_STAGE,
        "Location40324",
        f"Unrecognized pipeline stage name: '{name}' (not implemented by the Back Over stand-in)",
    )


def not_permitted_in_change_stream(name: str) -> errors.CommandError:
    """Code 20: a known stage outside the change-stream allowlist."""
    return errors.illegal_operation(f"{name} is not permitted in a $changeStream pipeline")
