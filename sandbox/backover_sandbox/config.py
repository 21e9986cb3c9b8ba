"""Where the sandbox lives and which loopback ports it uses."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from backover.errors import UsageError

#: Below Linux's ephemeral range (32768-60999), so client connections never hold a sandbox port.
DEFAULT_PORT_BASE = 31000
REGION = "us-east-1"
#: moto accepts any key pair; these are not secrets.
AWS_TEST_KEY_ID = "testing"
AWS_TEST_SECRET_KEY = "testing"


#: The EC2 tag every sandbox worker carries (the Variable's ``worker_tag`` with several workers).
WORKER_TAG = {"Key": "backover-worker", "Value": "sandbox"}
#: Workers one machine's sandbox starts at most (each copy is a local process).
MAX_WORKERS = 8


@dataclass(frozen=True)
class Ports:
    """moto, the local Lambda/SSM runner and the two MongoDB stand-ins, from one base port."""

    moto: int
    runner: int
    documentdb: int
    mongodb: int

    @classmethod
    def from_base(cls, base: int) -> Ports:
        return cls(moto=base, runner=base + 1, documentdb=base + 17, mongodb=base + 18)


def free_port_base(start: int, host: str = "127.0.0.1", step: int = 100, tries: int = 50) -> int:
    """The first base from ``start`` (in ``step``s) whose four sandbox ports are all free now."""
    for base in range(start, start + step * tries, step):
        if all(port_free(host, port) for port in vars(Ports.from_base(base)).values()):
            return base
    raise OSError(f"no free sandbox ports between {start} and {start + step * tries}")


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class SandboxConfig:
    """Everything ``backover sandbox`` needs to know before it starts anything.

    :param directory: pid, log and state files (default ``.sandbox`` in the current directory,
        or ``BACKOVER_SANDBOX_DIR``).
    :param ports: loopback ports (default from ``BACKOVER_SANDBOX_PORT_BASE``, else 31000).
    :param workers: EC2 workers in moto (each tagged :data:`WORKER_TAG`; the local runner runs SSM
        commands for any of them); with more than one, the Variable names them by that tag.
    :param empty_target: the MongoDB stand-in starts without the demo data (the initial sync
        copies it); DocumentDB is seeded as always.
    """

    directory: Path
    ports: Ports
    host: str = "127.0.0.1"
    bucket: str = "backover-sandbox"
    prefix: str = "migrations"
    project_root: Path = field(default_factory=lambda: Path.cwd())
    workers: int = 1
    empty_target: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= MAX_WORKERS:
            raise UsageError(f"--workers must be between 1 and {MAX_WORKERS}, not {self.workers}")

    @classmethod
    def from_env(
        cls,
        directory: str | None = None,
        port_base: int | None = None,
        *,
        workers: int = 1,
        empty_target: bool = False,
    ) -> SandboxConfig:
        directory = directory or os.environ.get("BACKOVER_SANDBOX_DIR") or ".sandbox"
        base = port_base or int(os.environ.get("BACKOVER_SANDBOX_PORT_BASE", DEFAULT_PORT_BASE))
        return cls(
            directory=Path(directory).resolve(),
            ports=Ports.from_base(base),
            project_root=Path.cwd(),
            workers=workers,
            empty_target=empty_target,
        )

    @property
    def state_file(self) -> Path:
        return self.directory / "state.json"

    def url(self, port: int) -> str:
        return f"http://{self.host}:{port}"


@dataclass
class SandboxState:
    """What ``up`` started and seeded; kept in ``state.json`` (never a password)."""

    ports: dict[str, int]
    pids: dict[str, int]
    host: str
    bucket: str
    prefix: str
    worker_instance_id: str = ""  # the first worker (replicator, restore, the sync's plan)
    worker_instance_ids: list[str] = field(default_factory=list)  # every worker, the first first
    worker_tag: dict[str, str] | None = None  # in the Variable when there is more than one worker
    secret_ids: dict[str, str] = field(default_factory=dict)
    lambda_names: dict[str, str] = field(default_factory=dict)
    app_user: str = ""
    databases: list[str] = field(default_factory=list)

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> SandboxState | None:
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        return cls(**data)
