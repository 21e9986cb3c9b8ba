"""Proof of equality (``backover verify``): both sides scanned in ``_id`` order as raw BSON and
merged, document bytes compared, index specifications compared; a report in S3.

Modules: ``config``, ``scan`` (raw batches, read ahead on a thread), ``merge`` (pure streaming
merge), ``indexes``, ``report``, ``job``; the pre-freeze pass ``live`` (with ``settle``: what
differed, compared again as the restore passes it) and the freeze-time ``incremental`` check.

The API Airflow maps the live pass with (``backover.verify.live``): :func:`~.live.begin`, then
:func:`~.live.partition_ids` (the running pass's sync-plan partitions) and
:func:`~.live.verify_partition` for each (on any worker), then :func:`~.live.finish`; each takes a
:class:`VerifyConfig`. :func:`~.live.run_verify_live` runs the three in one process.
"""

from __future__ import annotations

from .config import VerifyConfig
from .job import run_verify
from .report import NamespaceReport, VerifyReport

__all__ = ["NamespaceReport", "VerifyConfig", "VerifyReport", "run_verify"]
