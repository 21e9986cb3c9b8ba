"""``reports/verify.json`` and the human summary of a verification."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..state import utc_now
from .merge import MergeResult


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
        return {"source_count": m.source_count, "target_count": m.target_count, "missing": m.missing,
                "extra": m.extra, "different": m.different, "first_differences": m.first_differences,
                "indexes_identical": self.indexes_identical, "index_differences": self.index_differences,
                "identical": self.identical}

    def line(self) -> str:
        m = self.merge
        verdict = "identical" if self.identical else "DIFFERENT"
        indexes = "indexes identical" if self.indexes_identical else \
            f"indexes differ: {', '.join(d['name'] for d in self.index_differences)}"
        return (f"{self.ns}: {verdict}: {m.source_count:,} source / {m.target_count:,} target documents, "
                f"{m.missing:,} missing, {m.extra:,} extra, {m.different:,} different; {indexes}")


@dataclass
class VerifyReport:
    """Every namespace compared."""

    namespaces: list[NamespaceReport]
    checked_at: datetime = field(default_factory=utc_now)
    seconds: float = 0.0

    @property
    def identical(self) -> bool:
        return all(n.identical for n in self.namespaces)

    @property
    def differing(self) -> list[str]:
        return [n.ns for n in self.namespaces if not n.identical]

    def to_doc(self) -> dict[str, Any]:
        return {"identical": self.identical, "checked_at": self.checked_at,
                "namespaces": {n.ns: n.to_doc() for n in self.namespaces}}

    def summary(self) -> str:
        documents = sum(n.merge.source_count for n in self.namespaces)
        if self.identical:
            return f"verify: identical: {len(self.namespaces)} namespace(s), {documents:,} source documents"
        return (f"verify: DIFFERENCES in {len(self.differing)} of {len(self.namespaces)} namespace(s): "
                f"{', '.join(self.differing[:5])}{' ...' if len(self.differing) > 5 else ''}")
