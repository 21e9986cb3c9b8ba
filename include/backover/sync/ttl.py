"""TTL indexes held back on the target until the cutover (one rule, here).

A TTL index the sync creates on MongoDB would let MongoDB's TTL monitor delete documents before
the replay does: the monitor's clock is not the source's, so a document the source still holds at
F could be gone from the target (verify would find it missing), and the deletion is a write no
source event accounts for (``verify --live`` fails on it as a foreign write). So the sync creates
every TTL index with ``expireAfterSeconds`` :data:`HELD` (the largest value MongoDB takes: a
document expires 68 years after its date, i.e. dates before 1958 only), and holds an index an
empty target collection already had as the source has it the same way.

Both ends go by the target's own value, not by the plan, so a rename of the collection, a plan
made by an earlier migration or none at all change nothing: verify compares a target index at
:data:`HELD` as the source's when the source's index of that name is a TTL index with the same
spec otherwise (:func:`comparable`); ``backover sync --release-ttl`` (the restore DAG's step after
verification) gives every target index at :data:`HELD` in the migrated databases the source's
current value with ``collMod`` (metadata only, no index build) and never touches another value.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pymongo import MongoClient
from pymongo.errors import OperationFailure

from ..errors import JobFailed
from ..namespaces import Namespace, is_internal

log = logging.getLogger("backover.sync")

#: ``expireAfterSeconds`` of a TTL index held back: MongoDB's largest (0 .. 2**31 - 1).
HELD = 2_147_483_647
_TTL = "expireAfterSeconds"
_SERVER_FIELDS = ("v", "ns")


def is_ttl(spec: Mapping[str, Any]) -> bool:
    return _TTL in spec


def held_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec the sync creates on the target: a TTL index with :data:`HELD`, anything else as is."""
    return {**spec, _TTL: HELD} if is_ttl(spec) else dict(spec)


def _without(spec: Mapping[str, Any], *fields: str) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k not in fields}


def is_held(source: Mapping[str, Any] | None, target: Mapping[str, Any]) -> bool:
    """True when ``target`` is ``source`` held back: at :data:`HELD`, and ``source`` a TTL index
    whose spec is the same in every other field (the server's ``v``/``ns`` aside)."""
    if source is None or not is_ttl(source) or target.get(_TTL) != HELD:
        return False
    return _without(source, _TTL, *_SERVER_FIELDS) == _without(target, _TTL, *_SERVER_FIELDS)


def comparable(source: Mapping[str, Any] | None, target: Mapping[str, Any]) -> Mapping[str, Any]:
    """The target's spec as verify compares it with the source's index of the same name: a held
    index (:func:`is_held`) as the source's value; any other spec as it is (a held index whose
    source index changed in another way still differs)."""
    if source is not None and is_held(source, target):
        return {**target, _TTL: source[_TTL]}
    return target


def hold_existing(
    database: Any, coll: str, spec: Mapping[str, Any], listed: Mapping[str, Any] | None
) -> bool:
    """An empty target collection that already has the source's TTL index as the source has it:
    hold it (``collMod`` to :data:`HELD`) and say so (True); False when there is nothing to hold
    (no such index, or one that differs: ``createIndexes`` then decides)."""
    if (
        not is_ttl(spec)
        or listed is None
        or _without(listed, *_SERVER_FIELDS) != _without(spec, *_SERVER_FIELDS)
    ):
        return False
    database.command({"collMod": coll, "index": {"name": spec["name"], _TTL: HELD}})
    return True


@dataclass
class Released:
    """What ``--release-ttl`` did: ``db.coll/index`` names set to the source's value, and those
    left held because the source has no TTL index of that name and spec (logged)."""

    released: list[str] = field(default_factory=list)
    left_held: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"ttl_released": self.released, "ttl_left_held": self.left_held}


def _indexes(client: MongoClient[dict[str, Any]], ns: Namespace) -> dict[str, dict[str, Any]]:
    return {str(ix.get("name")): dict(ix) for ix in client[ns.db][ns.coll].list_indexes()}


def _collections(client: MongoClient[dict[str, Any]], scope: Iterable[Namespace]) -> list[Namespace]:
    out: set[Namespace] = set()
    for ns in scope:
        if is_internal(ns.db):
            continue
        if ns.coll:
            out.add(ns)
            continue
        for info in client[ns.db].list_collections():
            if info.get("type", "collection") == "collection" and not str(info["name"]).startswith("system."):
                out.add(Namespace(ns.db, str(info["name"])))
    return sorted(out)


def release(
    source: MongoClient[dict[str, Any]], target: MongoClient[dict[str, Any]], scope: Iterable[Namespace]
) -> Released:
    """Give every target index at :data:`HELD` in ``scope`` (the migration's databases or
    collections) the source's current ``expireAfterSeconds`` (``collMod``), then check the listed
    value; an index whose source index is not the same TTL index is left held and named. Safe to
    run again (nothing is held then); no other value is ever changed."""
    from .plan import errmsg  # plan creates the held indexes with held_spec: imported here, not at the top

    done = Released()
    for ns in _collections(target, scope):
        held = {name: spec for name, spec in _indexes(target, ns).items() if spec.get(_TTL) == HELD}
        if not held:
            continue
        source_specs = _indexes(source, ns) if ns.coll in source[ns.db].list_collection_names() else {}
        for name, spec in sorted(held.items()):
            key = f"{ns}/{name}"
            original = source_specs.get(name)
            if original is None or not is_held(original, spec):
                log.warning(
                    "sync: TTL index %s of %s is held (expireAfterSeconds %d) but the source has no TTL index of "
                    "that name and spec: left as it is; set its expiry with collMod yourself",
                    name,
                    ns,
                    HELD,
                )
                done.left_held.append(key)
                continue
            wanted = original[_TTL]
            try:
                target[ns.db].command({"collMod": ns.coll, "index": {"name": name, _TTL: wanted}})
            except OperationFailure as e:
                raise JobFailed(
                    f"MongoDB refused to release the TTL index {name!r} of {ns}: {errmsg(e)} (code {e.code})"
                ) from None
            after = _indexes(target, ns).get(name) or {}
            if after.get(_TTL) != wanted:
                raise JobFailed(
                    f"the TTL index {name!r} of {ns} shows expireAfterSeconds {after.get(_TTL)!r} after the "
                    f"release, not the source's {wanted!r}"
                )
            log.info(
                "sync: TTL index %s of %s released: expireAfterSeconds %s (held until now)", name, ns, wanted
            )
            done.released.append(key)
    if not done.released and not done.left_held:
        log.info("sync: no TTL index held back on the target")
    return done
