"""The start step refuses a database or collection the source does not hold, unless told it is
created later (``allow_missing``).

Against the documentdb stand-in, with the start Lambda's event, in-process. A typo must not grant
the app user ``readWrite`` on nothing, enable change streams or record T0.
"""

from __future__ import annotations

import pytest
from lifecycle_world import Source, s3_json, s3_keys

from backover.errors import UsageError
from backover.layout import MigrationLayout
from backover.lifecycle.events import LifecycleEvent
from backover.lifecycle.start import start


def _layout(source: Source) -> MigrationLayout:
    return LifecycleEvent.from_dict(source.event("start")).layout()


@pytest.mark.parametrize(
    ("scope", "named"),
    [
        pytest.param(
            {"databases": ["{orders}", "nosuchdb"]}, "there is no database 'nosuchdb'", id="database"
        ),
        pytest.param(
            {"databases": None, "namespaces": ["{orders}.items", "{orders}.nosuchcoll"]},
            "database '{orders}' has no collection 'nosuchcoll'",
            id="collection",
        ),
    ],
)
def test_a_scope_the_source_does_not_hold_is_refused_before_anything_changes(
    scope: dict[str, list[str] | None], named: str, source: Source, aws_endpoints: str
) -> None:
    orders = source.databases[0]
    changes = {k: [v.format(orders=orders) for v in vs] if vs else None for k, vs in scope.items()}
    with pytest.raises(UsageError) as refused:
        start(LifecycleEvent.from_dict(source.event("start", **changes)))
    message = str(refused.value)
    assert named.format(orders=orders) in message and "allow_missing" in message
    assert "\n" not in message
    assert source.user_roles() == source.prior_roles  # no readWrite granted
    assert source.enabled_streams() == []  # no change stream enabled
    assert s3_keys(source.bucket) == []  # no state/start.json, no T0


def test_allow_missing_starts_a_migration_of_a_database_created_later(
    source: Source, aws_endpoints: str
) -> None:
    orders = source.databases[0]
    event = source.event("start", databases=[orders, "created_later_db"], allow_missing=True)
    result = start(LifecycleEvent.from_dict(event))
    assert {"role": "readWrite", "db": "created_later_db"} in result.roles_granted
    assert source.enabled_streams() == [{"database": "", "collection": ""}]  # two databases: the cluster
    recorded = s3_json(source.bucket, _layout(source).start_state)
    assert recorded["databases"] == sorted([orders, "created_later_db"]) and recorded["t0"] is not None
    # A re-run keeps the recorded scope without asking again (a database dropped since T0 is captured).
    again = start(LifecycleEvent.from_dict({**event, "allow_missing": False}))
    assert again.already_started and again.t0 == result.t0
