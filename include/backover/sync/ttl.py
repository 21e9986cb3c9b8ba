"""TTL indexes held back on the target until the cutover (one rule, here).

A TTL index the sync creates on MongoDB would let MongoDB's TTL monitor delete documents before
the replay does: the monitor's clock is not the source's, so a document the source still holds at
F could be gone from the target (verify would find it missing), and the deletion is a write no
source event accounts for (``verify --live`` fails on it as a foreign write). So the sync creates
every TTL index with ``expireAfterSeconds`` :data:`HELD` (the largest value MongoDB takes: a
document expires 68 years after its date, i.e. dates before 1958 only), keeps the source's spec in
the plan, and ``backover sync --release-ttl`` (the restore DAG's last step, after verification)
sets each back to the source's value with ``collMod`` (metadata only, no index build). Verify
compares a held index as equal to the source's when the plan holds it (:func:`comparable`, with
:func:`held_by_plan` read once per verify run).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pymongo import MongoClient
from pymongo.errors import OperationFailure

from ..errors import JobFailed
from ..state import SyncPlan

log = logging.getLogger("backover.sync")

#: ``expireAfterSeconds`` of a TTL index held back: MongoDB's largest (0 .. 2**31 - 1).
HELD = 2_147_483_647


def is_ttl(spec: Mapping[str, Any]) -> bool:
    return "expireAfterSeconds" in spec


def held_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec the sync creates on the target: a TTL index with :data:`HELD`, anything else as is."""
    return {**spec, "expireAfterSeconds": HELD} if is_ttl(spec) else dict(spec)


def held_indexes(plan: SyncPlan | None) -> dict[str, dict[str, Any]]:
    """``"<db>.<coll>/<index name>" -> the source's spec`` of every TTL index the plan created."""
    if plan is None:
        return {}
    return {
        f"{c.ns}/{spec.get('name')}": dict(spec)
        for c in plan.collections
        for spec in c.indexes
        if is_ttl(spec)
    }


def comparable(
    held: Mapping[str, Mapping[str, Any]], ns: str, target_spec: Mapping[str, Any]
) -> Mapping[str, Any]:
    """The target's spec as verify compares it (``held``: :func:`held_indexes` of the plan): a TTL
    index the sync holds back, still at :data:`HELD`, compares as the source's spec (its real value
    comes at the release); any other spec as it is."""
    source = held.get(f"{ns}/{target_spec.get('name')}")
    if source is None or target_spec.get("expireAfterSeconds") != HELD:
        return target_spec
    return {**target_spec, "expireAfterSeconds": source["expireAfterSeconds"]}


def held_by_plan(s3: Any, layout: Any) -> dict[str, dict[str, Any]]:
    """:func:`held_indexes` of the migration's ``sync/plan.json`` (empty without a plan)."""
    from .job import read_plan  # job imports plan, which imports this module

    return held_indexes(read_plan(s3, layout))


@dataclass
class Released:
    """What ``--release-ttl`` did: indexes set to the source's value, those found already set."""

    released: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"ttl_released": self.released, "ttl_already_released": self.already}


def release(target: MongoClient[dict[str, Any]], plan: SyncPlan | None) -> Released:
    """Set every held TTL index of the plan back to the source's ``expireAfterSeconds`` (collMod),
    then check each index as listed; safe to run again (a released index is left as it is). An
    index missing on the target, or listed with another value after the change, fails (exit 1)."""
    from .plan import errmsg  # plan creates the held indexes with held_spec: imported here, not at the top

    done = Released()
    for key, spec in sorted(held_indexes(plan).items()):
        ns, name = key.split("/", 1)
        db, coll = ns.split(".", 1)
        listed = {ix.get("name"): ix for ix in target[db][coll].list_indexes()}
        current = listed.get(name)
        if current is None:
            raise JobFailed(f"the TTL index {name!r} of {ns} is not on the target: it cannot be released")
        wanted = spec["expireAfterSeconds"]
        if current.get("expireAfterSeconds") == wanted:
            done.already.append(key)
            continue
        try:
            target[db].command({"collMod": coll, "index": {"name": name, "expireAfterSeconds": wanted}})
        except OperationFailure as e:
            raise JobFailed(
                f"MongoDB refused to release the TTL index {name!r} of {ns}: {errmsg(e)} (code {e.code})"
            ) from None
        after = {ix.get("name"): ix for ix in target[db][coll].list_indexes()}.get(name) or {}
        if after.get("expireAfterSeconds") != wanted:
            raise JobFailed(
                f"the TTL index {name!r} of {ns} shows expireAfterSeconds {after.get('expireAfterSeconds')!r} "
                f"after the release, not the source's {wanted!r}"
            )
        log.info(
            "sync: TTL index %s of %s released: expireAfterSeconds %s (held until now)", name, ns, wanted
        )
        done.released.append(key)
    if not done.released and not done.already:
        log.info("sync: no TTL index held back on the target (no initial sync, or none has TTL)")
    return done
