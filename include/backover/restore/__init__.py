"""The restore service: replay captured change segments into MongoDB (``backover restore``).

Modules, from the edge in: ``reader`` (segments from S3, verified), ``events`` (raw event ->
what replay needs), ``planner`` (windows, compaction, rounds, DDL barriers; pure), ``statements``
(bulk commands from raw bytes), ``target`` (MongoDB or a null sink), ``displaced`` and
``applier`` (lanes, unique-key conflicts, DDL), ``checkpoint``, ``progress``, ``job``.
"""

from __future__ import annotations

from .config import RestoreConfig
from .job import PlanSummary, RestoreResult, run_restore

__all__ = ["PlanSummary", "RestoreConfig", "RestoreResult", "run_restore"]
