"""Build the deployable Lambda zips: ``dist/<name>.zip`` for every ``lambdas/<name>/handler.py``.

Each zip holds, at its root: ``handler.py`` (Lambda handler setting ``handler.handler``), the
``backover`` package (the sandbox and the stand-ins are another package, ``backover_sandbox``, and
never in a zip) and the libraries it imports that the Lambda Python runtime lacks: pymongo (with
``bson`` and ``gridfs``) and dnspython. boto3/botocore come with the runtime and are left out.

The libraries are copied from this interpreter's installation, compiled parts included: build on
Linux x86_64 with CPython 3.11 for Lambda's ``python3.11``/``x86_64`` runtime (the script warns
otherwise; pymongo then runs its pure-Python code, slower but correct, if given ``--pure``).

Checks: Lambda's limits of 50 MB zipped (direct upload) and 250 MB unzipped, and a smoke test
per zip: in a fresh interpreter from the unpacked zip, every module of ``backover`` is imported
(``backover`` and ``pymongo`` must come from the zip; nothing may need the sandbox) and the handler
answers a malformed event with ``InvalidEvent``. The zips are
reproducible: sorted entries, fixed timestamps.

Usage: ``python scripts/build_lambda_zips.py [--out dist] [--pure]``; exit 0 built, 1 a check failed.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import platform
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("build_lambda_zips")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "include" / "backover"
LAMBDAS = ROOT / "lambdas"
#: Distributions the handlers need beyond the runtime (which ships boto3 and botocore).
DISTRIBUTIONS = ("pymongo", "dnspython")
MAX_ZIPPED = 50 * 1000 * 1000
MAX_UNZIPPED = 250 * 1000 * 1000
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
SKIPPED_PARTS = {"__pycache__"}
SKIPPED_SUFFIXES = (".pyc", ".pyo")
SMOKE = """
import importlib, json, pkgutil, sys
root = sys.argv[1]
import handler, backover, pymongo
for module in (backover, pymongo):
    assert module.__file__.startswith(root), f"{module.__name__} came from {module.__file__}, not the zip"
for info in pkgutil.walk_packages(backover.__path__, "backover."):
    if info.name.endswith(".__main__"):  # runs the command line; cli is imported on its own
        continue
    try:
        importlib.import_module(info.name)
    except ImportError as e:
        print(json.dumps({"error": "ImportError", "message": f"{info.name}: {e}"}))
        sys.exit(0)
try:
    handler.handler({"migration_id": "smoke"}, None)
except Exception as e:
    print(json.dumps({"error": type(e).__name__, "message": str(e)}))
else:
    print(json.dumps({"error": None}))
"""


class BuildError(Exception):
    """A zip could not be built or failed a check."""


@dataclass
class ZipReport:
    name: str
    path: Path
    zipped: int
    unzipped: int
    files: int


def _wanted(relative: Path) -> bool:
    return not (SKIPPED_PARTS & set(relative.parts)) and not relative.name.endswith(SKIPPED_SUFFIXES)


def package_files(pure: bool) -> list[tuple[Path, str]]:
    """``(file on disk, name in the zip)`` for backover and the libraries."""
    files = []
    for path in sorted(PACKAGE.rglob("*")):
        relative = path.relative_to(PACKAGE)
        if path.is_file() and _wanted(relative):
            files.append((path, f"backover/{relative.as_posix()}"))
    for name in DISTRIBUTIONS:
        dist = importlib.metadata.distribution(name)
        for entry in dist.files or []:
            relative = Path(str(entry))
            if relative.parts[0].endswith(".dist-info") or relative.parts[0] == ".." or not _wanted(relative):
                continue
            if pure and relative.suffix in (".so", ".pyd"):
                continue
            source = Path(str(dist.locate_file(entry)))
            if source.is_file():
                files.append((source, relative.as_posix()))
    return files


def build_zip(name: str, handler: Path, out: Path, library: list[tuple[Path, str]]) -> ZipReport:
    """Write ``out/<name>.zip``; BuildError when it breaks Lambda's size limits."""
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}.zip"
    entries = sorted([(handler, "handler.py"), *library], key=lambda item: item[1])
    unzipped = 0
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for source, arcname in entries:
            info = zipfile.ZipInfo(arcname, FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o755 if source.suffix == ".so" else 0o644) << 16
            data = source.read_bytes()
            unzipped += len(data)
            archive.writestr(info, data)
    report = ZipReport(name, target, target.stat().st_size, unzipped, len(entries))
    if report.zipped > MAX_ZIPPED:
        raise BuildError(f"{target} is {report.zipped / 1e6:.1f} MB zipped: above Lambda's 50 MB")
    if report.unzipped > MAX_UNZIPPED:
        raise BuildError(f"{target} is {report.unzipped / 1e6:.1f} MB unzipped: above Lambda's 250 MB")
    return report


def smoke_test(report: ZipReport) -> None:
    """Import the handler from the unpacked zip in a fresh interpreter and send it a bad event."""
    import boto3

    runtime_libs = str(Path(boto3.__file__).resolve().parents[1])  # stands in for the runtime's boto3
    with tempfile.TemporaryDirectory(prefix=f"lambda-{report.name}-") as tmp:
        with zipfile.ZipFile(report.path) as archive:
            archive.extractall(tmp)
        root = str(Path(tmp).resolve())
        done = subprocess.run(
            [sys.executable, "-S", "-c", SMOKE, root],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
            env={"PYTHONPATH": f"{root}:{runtime_libs}", "PYTHONNOUSERSITE": "1", "PATH": "/usr/bin:/bin"},
        )
    if done.returncode != 0:
        raise BuildError(
            f"{report.path}: the handler does not import from the zip: "
            f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
        )
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    if outcome["error"] == "ImportError":
        raise BuildError(
            f"{report.path}: a shipped module does not import from the zip: {outcome['message']}"
        )
    if outcome["error"] != "InvalidEvent":
        raise BuildError(f"{report.path}: a malformed event gave {outcome}, not InvalidEvent")


def build_all(out: Path, pure: bool = False, smoke: bool = True) -> list[ZipReport]:
    """Build (and smoke-test) one zip per ``lambdas/<name>/handler.py``."""
    if (platform.system(), platform.machine(), sys.version_info[:2]) != (
        "Linux",
        "x86_64",
        (3, 11),
    ) and not pure:
        log.warning(
            "building on %s %s with Python %d.%d: the compiled parts may not load on Lambda's "
            "python3.11 x86_64 runtime; use --pure",
            platform.system(),
            platform.machine(),
            *sys.version_info[:2],
        )
    handlers = sorted(LAMBDAS.glob("*/handler.py"))
    if not handlers:
        raise BuildError(f"no lambdas/<name>/handler.py under {LAMBDAS}")
    library = package_files(pure)
    reports = []
    for handler in handlers:
        report = build_zip(handler.parent.name, handler, out, library)
        if smoke:
            smoke_test(report)
        log.info(
            "built %s: %d files, %.1f MB zipped, %.1f MB unzipped (limits 50/250 MB); handler "
            "handler.handler",
            report.path,
            report.files,
            report.zipped / 1e6,
            report.unzipped / 1e6,
        )
        reports.append(report)
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default dist/)")
    parser.add_argument("--pure", action="store_true", help="leave out compiled extensions (any platform)")
    parser.add_argument("--no-smoke", action="store_true", help="skip the import smoke test")
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(levelname)s %(message)s")
    try:
        build_all(args.out, pure=args.pure, smoke=not args.no_smoke)
    except (BuildError, OSError, importlib.metadata.PackageNotFoundError) as e:
        log.error("lambda zips: %s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
