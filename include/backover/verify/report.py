"""``reports/verify.json`` and the human summary of a verification.

:class:`VerifyReport` is the one type of the report: the verify job builds it and writes
:meth:`VerifyReport.to_json`; clean's guard, the Airflow sensors and the rehearsal read it back with
:meth:`VerifyReport.from_json` (checked, versioned like every record of :mod:`backover.state`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..state import FORMAT_VERSION, RecordError, check_version, checked, utc_now
from .merge import MergeResult

#: The counts of a namespace's entry, in the order they are written.
COUNTS = ("source_count", "target_count", "missing", "extra", "different")


class ProofMode(enum.StrEnum):
    """How a report proved (or disproved) equality: ``reports/verify.json`` ``mode``."""

    FULL = "full"  # every document of both sides compared (``backover verify --full``)
    #: At the freeze, after a passed live pass: the documents keyed in the segments since its start
    #: (and those the target's change stream names), the counts and the index specifications.
    INCREMENTAL = "incremental"


@dataclass
class NamespaceReport:
    """One namespace: the merge's counts and examples, and the index comparison."""

    ns: str
    merge: MergeResult
    index_differences: list[dict[str, Any]] = field(default_factory=list)

    @property
    def indexes_identical(self) -> bool:
        return not self.index_differences

    @property
    def counts_equal(self) -> bool:
        return self.merge.source_count == self.merge.target_count

    @property
    def identical(self) -> bool:
        return self.merge.identical and self.indexes_identical and self.counts_equal

    def to_doc(self) -> dict[str, Any]:
        m = self.merge
        return {
            "source_count": m.source_count,
            "target_count": m.target_count,
            "missing": m.missing,
            "extra": m.extra,
            "different": m.different,
            "first_differences": m.first_differences,
            "indexes_identical": self.indexes_identical,
            "index_differences": self.index_differences,
            "identical": self.identical,
        }

    @classmethod
    def from_json(cls, ns: str, doc: Any, where: str) -> NamespaceReport:
        """The entry of ``ns`` in a stored report (``identical`` and ``indexes_identical`` follow from
        the counts and the index differences)."""
        name = f"namespaces.{ns}"
        if not isinstance(doc, dict):
            raise RecordError(f"{where} has an invalid {name} {doc!r:.60}")
        counts = {k: checked(doc.get(k, 0), int, where, f"{name}.{k}") for k in COUNTS}
        examples = checked(
            doc.get("first_differences", []), list[dict[str, Any]], where, f"{name}.first_differences"
        )
        indexes = checked(
            doc.get("index_differences", []), list[dict[str, Any]], where, f"{name}.index_differences"
        )
        return cls(ns, MergeResult(**counts, first_differences=examples), indexes)

    def line(self) -> str:
        m = self.merge
        verdict = "identical" if self.identical else "DIFFERENT"
        indexes = (
            "indexes identical"
            if self.indexes_identical
            else f"indexes differ: {', '.join(d['name'] for d in self.index_differences)}"
        )
        return f"{self.ns}: {verdict}: {documents_line(m)}; {indexes}"


def documents_line(m: MergeResult) -> str:
    """A merge's counts, for log lines (a namespace's, a partition's)."""
    return (
        f"{m.source_count:,} source / {m.target_count:,} target documents, "
        f"{m.missing:,} missing, {m.extra:,} extra, {m.different:,} different"
    )


@dataclass
class VerifyReport:
    """Every namespace compared. ``recorded`` is the verdict as a stored report says it (None for a
    report built by a run: the verdict follows from the namespaces)."""

    WHAT = "a verification report (reports/verify.json)"

    namespaces: list[NamespaceReport]
    checked_at: datetime | None = field(default_factory=utc_now)
    seconds: float = 0.0
    recorded: bool | None = None
    mode: ProofMode = ProofMode.FULL
    #: Documents compared at the freeze (incremental: the keys compared; None for a full comparison).
    documents_at_freeze: int | None = None
    #: Writes on the target that no source event accounts for (``{ns, _id, op, cluster_time}``):
    #: someone else writes to the target, so nothing is proven.
    foreign_writes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        if self.recorded is not None:
            return self.recorded
        return all(n.identical for n in self.namespaces) and not self.foreign_writes

    @property
    def differing(self) -> list[str]:
        return [n.ns for n in self.namespaces if not n.identical]

    def predates(self, moment: datetime | None) -> bool:
        """Whether the comparison ran before ``moment`` (a restore checkpoint's ``updated_at``)."""
        if self.checked_at is None or moment is None:
            return False
        return _aware(self.checked_at) < _aware(moment)

    def differences(self, limit: int = 5) -> str:
        """The namespaces that differ and how (the first ``limit``), in one line."""
        parts = []
        for n in self.namespaces:
            m = n.merge
            counts = [f"{getattr(m, k)} {k}" for k in ("missing", "extra", "different") if getattr(m, k)]
            if not n.counts_equal and not (m.missing or m.extra):
                counts.append(f"counts differ ({m.source_count:,} source, {m.target_count:,} target)")
            if not n.indexes_identical:
                counts.append("indexes differ")
            if counts:
                parts.append(f"{n.ns}: {', '.join(counts)}")
        if self.foreign_writes:
            parts.insert(0, foreign_summary(self.foreign_writes))
        more = len(parts) - limit
        return ("; ".join(parts[:limit]) or "see reports/verify.json") + (
            f"; and {more} more namespaces" if more > 0 else ""
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "identical": self.identical,
            "checked_at": self.checked_at,
            "mode": self.mode.value,
            "documents_at_freeze": self.documents_at_freeze,
            "foreign_writes": self.foreign_writes,
            "namespaces": {n.ns: n.to_doc() for n in self.namespaces},
        }

    def to_doc(self) -> dict[str, Any]:  # the name of before issue 11
        return self.to_json()

    @classmethod
    def from_json(cls, doc: Any, where: str) -> VerifyReport:
        """The report stored at ``where``; RecordError (one line naming it) when ``doc`` is not one."""
        check_version(doc, where, cls.WHAT)
        if "identical" not in doc:
            raise RecordError(f"{where} is not {cls.WHAT} (no identical)")
        identical = checked(doc["identical"], bool, where, "identical")
        checked_at = checked(doc.get("checked_at"), datetime | None, where, "checked_at")
        entries = checked(doc.get("namespaces", {}), dict[str, Any], where, "namespaces")
        namespaces = [NamespaceReport.from_json(ns, entry, where) for ns, entry in entries.items()]
        return cls(
            namespaces,
            checked_at=checked_at,
            recorded=identical,
            mode=checked(doc.get("mode", ProofMode.FULL.value), ProofMode, where, "mode"),
            documents_at_freeze=checked(
                doc.get("documents_at_freeze"), int | None, where, "documents_at_freeze"
            ),
            foreign_writes=checked(
                doc.get("foreign_writes", []), list[dict[str, Any]], where, "foreign_writes"
            ),
        )

    def summary(self) -> str:
        documents = sum(n.merge.source_count for n in self.namespaces)
        if self.identical:
            how = (
                f" ({self.documents_at_freeze:,} compared at the freeze)"
                if self.mode is ProofMode.INCREMENTAL and self.documents_at_freeze is not None
                else ""
            )
            return (
                f"verify: identical: {len(self.namespaces)} namespace(s), {documents:,} source documents{how}"
            )
        if self.foreign_writes:
            return f"verify: {foreign_summary(self.foreign_writes)}"
        return (
            f"verify: DIFFERENCES in {len(self.differing)} of {len(self.namespaces)} namespace(s): "
            f"{', '.join(self.differing[:5])}{' ...' if len(self.differing) > 5 else ''}"
        )


def foreign_summary(writes: list[dict[str, Any]], limit: int = 3) -> str:
    """One line naming the first writes on the target that no source event accounts for."""
    shown = ", ".join(
        f"{w.get('op')} of {w.get('ns')}" + (f" _id {w['_id']!r}" if "_id" in w else "")
        for w in writes[:limit]
    )
    more = f" and {len(writes) - limit} more" if len(writes) > limit else ""
    return (
        f"{len(writes)} write(s) on the target that no source event accounts for: {shown}{more}; "
        "nobody but the restore may write to the target"
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
