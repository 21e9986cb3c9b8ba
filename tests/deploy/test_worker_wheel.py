"""The worker's wheel (what the EC2 bootstrap installs) carries the product and nothing of the sandbox.

Built from this tree with pip, unpacked next to the worker's runtime libraries only (no Airflow,
no moto, no ``backover-sandbox``), the way the EC2 worker has them.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
#: The worker's runtime distributions (requirements/runtime.txt) and what they pull in.
RUNTIME = ("pymongo", "boto3", "zstandard")

pytestmark = pytest.mark.slow


def _distribution_closure(names: tuple[str, ...]) -> set[str]:
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        dist = importlib.metadata.distribution(name)
        key = dist.metadata["Name"].lower()
        if key in seen:
            continue
        seen.add(key)
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen


def _runtime_site(target: Path) -> Path:
    """A site folder with only the runtime distributions, as symlinks to this interpreter's."""
    target.mkdir()
    for name in _distribution_closure(RUNTIME):
        dist = importlib.metadata.distribution(name)
        tops = {str(entry).split("/")[0] for entry in dist.files or []}
        for top in tops:
            if top.endswith((".dist-info", ".pth")) or top in ("..", "__pycache__"):
                continue
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (target / top).exists():
                (target / top).symlink_to(source)
    return target


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("backover-*.whl")
    return built


def test_the_wheel_holds_the_product_and_none_of_the_sandbox(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "backover/restore/applier.py" in names and "backover/mongo/update.py" in names
    assert not [
        n
        for n in names
        if n.startswith("backover_sandbox/") or "/standin/" in n or "/sandbox/" in n or "/rehearsal/" in n
    ], "development code in the worker's wheel"


def test_backover_on_the_worker_lists_only_the_worker_commands(wheel: Path, tmp_path: Path) -> None:
    site = _runtime_site(tmp_path / "site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(site), "PYTHONNOUSERSITE": "1"}
    done = subprocess.run(
        [sys.executable, "-S", "-m", "backover", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for command in ("replicate", "restore", "verify", "backup", "clean", "abort", "status"):
        assert f"    {command} " in done.stdout, done.stdout
    for command in ("sandbox", "rehearsal", "airflow"):
        assert f"    {command} " not in done.stdout, f"`backover {command}` listed on the worker"
