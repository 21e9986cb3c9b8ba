"""``scripts/build_lambda_zips.py`` (``make lambda-zips``): deployable zips within Lambda's limits."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.slow  # builds the Lambda zips

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_lambda_zips.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_lambda_zips", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_each_lambda_gets_a_zip_that_imports_on_its_own_and_fits_the_limits(tmp_path: Path) -> None:
    build = _script()
    assert build.main(["--out", str(tmp_path)]) == 0  # includes the import smoke test of every zip
    zips = sorted(p.name for p in tmp_path.glob("*.zip"))
    assert zips == ["clean.zip", "restore.zip", "start.zip"]
    with zipfile.ZipFile(tmp_path / "start.zip") as archive:
        names = set(archive.namelist())
        unzipped = sum(i.file_size for i in archive.infolist())
    assert {
        "handler.py",
        "backover/lifecycle/start.py",
        "pymongo/__init__.py",
        "bson/__init__.py",
        "dns/__init__.py",
    } <= names
    assert not any(n.startswith(("backover_sandbox/", "boto3/", "botocore/")) for n in names)
    assert not any("__pycache__" in n for n in names)
    assert (tmp_path / "start.zip").stat().st_size < build.MAX_ZIPPED and unzipped < build.MAX_UNZIPPED


def test_a_shipped_module_that_needs_the_sandbox_fails_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every module of ``backover`` is imported from the unpacked zip, not just the handler's."""
    build = _script()
    package = tmp_path / "include" / "backover"
    shutil.copytree(build.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "restore" / "uses_standin.py").write_text("from backover_sandbox.standin import server\n")
    monkeypatch.setattr(build, "PACKAGE", package)
    with pytest.raises(
        build.BuildError, match=r"does not import from the zip: backover\.restore\.uses_standin"
    ):
        build.build_all(tmp_path / "dist")


def test_a_zip_above_the_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build = _script()
    monkeypatch.setattr(build, "MAX_ZIPPED", 1000)
    with pytest.raises(build.BuildError, match="above Lambda's 50 MB"):
        build.build_all(tmp_path, smoke=False)


def test_zips_are_reproducible(tmp_path: Path) -> None:
    build = _script()
    first = build.build_all(tmp_path / "a", smoke=False)
    second = build.build_all(tmp_path / "b", smoke=False)
    assert [r.path.read_bytes() for r in first] == [r.path.read_bytes() for r in second]
