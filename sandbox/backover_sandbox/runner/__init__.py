"""Local AWS runner: Lambda Invoke and SSM Run Command served on loopback, run as local processes.

moto serves S3, Secrets Manager and EC2 in the sandbox but cannot run a Lambda handler or an SSM
command; this runner does both, so boto3 and the unchanged Airflow Amazon provider operators work
against it. Start it with ``python -m backover_sandbox.runner`` (see :func:`server.main`) or, in
tests, :func:`start_in_thread`.
"""

from __future__ import annotations

from .registry import FunctionRegistry, FunctionSpec, RegistryError
from .server import RunnerConfig, RunnerServer, main, start_in_thread

__all__ = [
    "FunctionRegistry",
    "FunctionSpec",
    "RegistryError",
    "RunnerConfig",
    "RunnerServer",
    "main",
    "start_in_thread",
]
