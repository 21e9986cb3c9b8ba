"""The docs name only files and Python objects that exist (a moved module leaves no stale reference)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([*ROOT.glob("docs/*.md"), ROOT / "README.md", ROOT / "benchmarks" / "README.md"])
FOLDERS = (
    "include",
    "plugins",
    "dags",
    "tests",
    "benchmarks",
    "sandbox",
    "scripts",
    "lambdas",
    "deploy",
    "docs",
)
PATH = re.compile(rf"(?:{'|'.join(FOLDERS)})/[\w./-]*")
DOTTED = re.compile(r"backover(?:_sandbox|_airflow)?(?:\.\w+)+")


def _quoted(doc: Path) -> list[str]:
    return [m.group(1).rstrip(".,:;") for m in re.finditer(r"`([^`\s]+)`", doc.read_text())]


def _resolves(dotted: str) -> bool:
    """A module, or an attribute chain on the longest importable module prefix."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:n]))
        except ImportError:
            continue
        for name in parts[n:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return n > 1 or len(parts) == 1
    return False


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_and_module_a_doc_names_exists(doc: Path) -> None:
    quoted = _quoted(doc)
    missing_files = [r for r in quoted if PATH.fullmatch(r) and not (ROOT / r).exists()]
    missing_objects = [r for r in quoted if DOTTED.fullmatch(r) and not _resolves(r)]
    assert not missing_files, f"{doc.name} names files that do not exist: {missing_files}"
    assert not missing_objects, f"{doc.name} names Python objects that do not exist: {missing_objects}"
