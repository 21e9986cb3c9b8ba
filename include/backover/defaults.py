"""Defaults that more than one way into Back Over applies, each defined once.

The command line (:mod:`backover.options`), the Lambda event (:mod:`backover.lifecycle.events`) and
the Airflow environment Variable (``backover_airflow.config``) all read these names, so a migration
started by one of them without naming a prefix is found by the others without naming it either.
"""

from __future__ import annotations

#: The key prefix in the bucket when none is given: ``s3://{bucket}/backover/{migration_id}/``.
#: ``--prefix`` / ``BACKOVER_PREFIX``, the event's ``prefix`` and the Variable's ``prefix`` override
#: it; an explicit empty prefix means the bucket's top.
PREFIX = "backover"
