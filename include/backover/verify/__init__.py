"""Proof of equality (``backover verify``): both sides scanned in ``_id`` order as raw BSON and
merged, document bytes compared, index specifications compared; a report in S3.

Modules: ``config``, ``scan`` (raw batches, read ahead on a thread), ``merge`` (pure streaming
merge), ``indexes``, ``report``, ``job``.
"""

from __future__ import annotations

from .config import VerifyConfig
from .job import run_verify
from .report import NamespaceReport, VerifyReport

__all__ = ["NamespaceReport", "VerifyConfig", "VerifyReport", "run_verify"]
