"""moto as its own process for the replicator benchmarks, with its request log (for PUT counts)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType

import boto3

from standin_process import free_port


def source_uri(port: int) -> str:
    """The DocumentDB stand-in (no auth) as the replicator reaches it."""
    return f"mongodb://127.0.0.1:{port}/?directConnection=true&retryWrites=false"


class MotoProcess:
    """``python -m moto.server`` on a free port, its request log in a temporary file."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = tempfile.TemporaryDirectory(prefix="bench-moto-")
        self.log_path = Path(self._dir.name) / "moto.log"
        self._proc: subprocess.Popen | None = None

    def environment(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def bucket(self, name: str) -> str:
        boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).create_bucket(Bucket=name)
        return name

    def put_count(self, under: str = "") -> int:
        """PUT requests moto answered so far (for keys under ``under`` when given)."""
        text = self.log_path.read_text(errors="replace")
        return sum(1 for line in text.splitlines() if '"PUT /' in line and f"/{under}" in line)

    def __enter__(self) -> MotoProcess:
        log = open(self.log_path, "ab")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1).read()
                return self
            except OSError:
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    raise RuntimeError(f"moto did not start (log {self.log_path})") from None
                time.sleep(0.1)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
        self._dir.cleanup()
