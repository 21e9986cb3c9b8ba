"""``reports/verify.json`` and the human summary of a verification.

:class:`VerifyReport` is the one type of the report: the verify job builds it and writes
:meth:`VerifyReport.to_json`; clean's guard, the Airflow sensors and the rehearsal read it back with
:meth:`VerifyReport.from_json` (checked, versioned like every record of :mod:`backover.state`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..state import FORMAT_VERSION, RecordError, check_version, checked, utc_now
from .merge import MergeResult

#: The counts of a namespace's entry, in the order they are written.
COUNTS = ("source_count", "target_count", "missing", "extra", "different")


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
    def identical(self) -> bool:
        return self.merge.identical and self.indexes_identical

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
        return (
            f"{self.ns}: {verdict}: {m.source_count:,} source / {m.target_count:,} target documents, "
            f"{m.missing:,} missing, {m.extra:,} extra, {m.different:,} different; {indexes}"
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

    @property
    def identical(self) -> bool:
        return self.recorded if self.recorded is not None else all(n.identical for n in self.namespaces)

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
            if not n.indexes_identical:
                counts.append("indexes differ")
            if counts:
                parts.append(f"{n.ns}: {', '.join(counts)}")
        more = len(parts) - limit
        return ("; ".join(parts[:limit]) or "see reports/verify.json") + (
            f"; and {more} more namespaces" if more > 0 else ""
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "identical": self.identical,
            "checked_at": self.checked_at,
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
        return cls(namespaces, checked_at=checked_at, recorded=identical)

    def summary(self) -> str:
        documents = sum(n.merge.source_count for n in self.namespaces)
        if self.identical:
            return f"verify: identical: {len(self.namespaces)} namespace(s), {documents:,} source documents"
        return (
            f"verify: DIFFERENCES in {len(self.differing)} of {len(self.namespaces)} namespace(s): "
            f"{', '.join(self.differing[:5])}{' ...' if len(self.differing) > 5 else ''}"
        )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
