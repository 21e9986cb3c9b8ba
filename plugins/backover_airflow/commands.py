"""The one place that builds what the DAGs send: worker command lines and Lambda payloads.

Every line is ``{backover_command} <sub-command> <options>``, the same command a user would type
on the worker, so an SSM task's log shows the same progress lines. Databases are named by
Secrets Manager secret *ids* only; a secret never appears in a command line, a payload, XCom or
a log.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from backover.replication.config import FOLLOW_DRAIN_POLL_SECONDS, FOLLOW_MAX_SECONDS
from backover_airflow.config import BackoverConfig, ConfigError, RunParams

#: SSM's ``StandardOutputContent`` keeps 24,000 characters; when the output does not go to
#: CloudWatch Logs the script keeps the head and the tail of longer output so the final summary or
#: error line is never cut off.
OUTPUT_HEAD_BYTES = 6_000
OUTPUT_TAIL_BYTES = 16_000
#: What SSM's ``StandardOutputContent`` keeps (characters): an output shorter than this is whole.
SSM_STDOUT_CHARS = 24_000
#: When the output goes to CloudWatch Logs, the script also writes the last this many bytes of a
#: longer output to standard error at the end, between :data:`END_BEGIN` and :data:`END_END` (SSM's
#: ``StandardErrorContent`` keeps 8,000 characters): the end of the output when CloudWatch cannot
#: give it. The reader of CloudWatch's stderr stream leaves these lines out (they are a copy).
OUTPUT_END_BYTES = 6_000
END_BEGIN = "---- backover: the end of the output, as SSM keeps only the start of it ----"
END_END = "---- backover: end of the output ----"
BACKUP_LABELS = ("documentdb", "mongodb")


def _migration(config: BackoverConfig, run: RunParams) -> list[str]:
    return ["--bucket", config.bucket, "--prefix", config.prefix, "--migration-id", run.migration_id]


def _secret(config: BackoverConfig, name: str) -> str:
    return config.secret_ids[name]


def replicate(config: BackoverConfig, run: RunParams) -> list[str]:
    """Start the replicator in the background on the worker (returns once it runs); in follow mode
    its segments roll after ``FOLLOW_MAX_SECONDS`` so the follow restore trails by seconds, and it
    reads the drain request every ``FOLLOW_DRAIN_POLL_SECONDS`` (the freeze waits for it)."""
    roll = (
        ["--max-seconds", f"{FOLLOW_MAX_SECONDS:g}", "--drain-poll-seconds", f"{FOLLOW_DRAIN_POLL_SECONDS:g}"]
        if run.follow
        else []
    )
    return [
        "replicate",
        "--detach",
        "--source-secret-id",
        _secret(config, "documentdb"),
        *roll,
        *_migration(config, run),
    ]


def follow_restore(config: BackoverConfig, run: RunParams) -> list[str]:
    """Start the follow restore in the background on the worker (returns once it follows)."""
    return [
        "restore",
        "--follow",
        "--detach",
        "--target-secret-id",
        _secret(config, "mongodb"),
        *_migration(config, run),
    ]


#: The steps of a pass over the sync plan's partitions (backup, verify --live): ``begin`` on the
#: first worker, one ``partition`` per planned partition (mapped over the workers), ``finish``
#: (what no partition holds, then the verdict or the manifest); None: the whole pass at once.
PASS_STEPS = ("begin", "partition", "finish")


def _step(step: str | None, partition: str | None) -> list[str]:
    if step is None:
        if partition is not None:
            raise ConfigError("a partition goes with step 'partition'")
        return []
    if step not in PASS_STEPS:
        raise ConfigError(f"a pass step is one of {', '.join(PASS_STEPS)}, not {step!r}")
    if step != "partition":
        if partition is not None:
            raise ConfigError(f"step {step!r} takes no partition")
        return [f"--{step}"]
    return ["--partition", _partition_id(partition)]


def _partition_id(partition: Any) -> str:
    if not isinstance(partition, str) or not partition or partition.startswith("-"):
        raise ConfigError(f"a sync partition id from the plan, not {partition!r}")
    return partition


def backup(
    config: BackoverConfig, run: RunParams, label: str, step: str | None = None, partition: str | None = None
) -> list[str]:
    """Back up one side (``documentdb`` or ``mongodb``) to ``backups/{label}/``; ``documentdb`` may
    go in steps over the sync plan's partitions (``step``: begin, partition, finish)."""
    if label not in BACKUP_LABELS:
        raise ConfigError(f"backup label must be one of {', '.join(BACKUP_LABELS)}, not {label!r}")
    if step is not None and label != "documentdb":
        raise ConfigError("only the documentdb backup goes over the partitions")
    return [
        "backup",
        "--secret-id",
        _secret(config, label),
        "--label",
        label,
        *_step(step, partition),
        *_migration(config, run),
    ]


def seal(config: BackoverConfig, run: RunParams) -> list[str]:
    """Make the DocumentDB backup taken before the freeze consistent at F: copy the captured
    segments it needs next to it (S3 only, no database)."""
    return ["backup", "--label", "documentdb", "--seal", *_migration(config, run)]


def restore(config: BackoverConfig, run: RunParams) -> list[str]:
    """Replay every captured segment into MongoDB; a follow restore still applying the tail is
    waited for (``--wait``), then whatever is left is applied."""
    return ["restore", "--wait", "--target-secret-id", _secret(config, "mongodb"), *_migration(config, run)]


def verify(config: BackoverConfig, run: RunParams) -> list[str]:
    """Compare the run's databases on DocumentDB and MongoDB; exits 1 on any difference."""
    namespaces = [arg for db in run.databases for arg in ("--namespace", db)]
    return [
        "verify",
        "--source-secret-id",
        _secret(config, "documentdb"),
        "--target-secret-id",
        _secret(config, "mongodb"),
        *_migration(config, run),
        *namespaces,
    ]


def verify_live(
    config: BackoverConfig, run: RunParams, step: str | None = None, partition: str | None = None
) -> list[str]:
    """The verification pass before the freeze (follow mode): every document compared while both
    sides move; the check at the freeze then compares only what changed since. In steps over the
    sync plan's partitions with ``step`` (begin, partition, finish)."""
    return [*verify(config, run), "--live", *_step(step, partition)]


def _databases(config: BackoverConfig) -> list[str]:
    return [
        "--source-secret-id",
        _secret(config, "documentdb"),
        "--target-secret-id",
        _secret(config, "mongodb"),
    ]


#: ``backover sync --plan``'s flags for each ``initial_sync`` mode (``never`` runs no sync task).
SYNC_MODE_FLAGS = {"auto": ["--if-needed"], "always": []}


def sync_plan(config: BackoverConfig, run: RunParams) -> list[str]:
    """Plan the initial sync: check the target, create its collections and indexes, write
    ``sync/plan.json`` (``auto``: ``--if-needed``, nothing when the target holds the data;
    ``always``: a target holding data is refused, or dropped first with ``drop_target``)."""
    if run.initial_sync not in SYNC_MODE_FLAGS:
        raise ConfigError(f"initial_sync {run.initial_sync!r} runs no sync")
    flags = ["--drop-target"] if run.drop_target else SYNC_MODE_FLAGS[run.initial_sync]
    return [
        "sync",
        "--plan",
        *flags,
        "--partition-documents",
        str(run.sync_partition_documents),
        *_databases(config),
        *_migration(config, run),
    ]


def sync_partition(config: BackoverConfig, run: RunParams, partition: str) -> list[str]:
    """Copy one partition of the plan (a worker's share); the last one to complete writes
    ``sync/complete.json``."""
    return ["sync", "--partition", _partition_id(partition), *_databases(config), *_migration(config, run)]


def release_ttl(config: BackoverConfig, run: RunParams) -> list[str]:
    """After verification: give every TTL index held back on MongoDB (the initial sync creates them
    so: MongoDB's TTL monitor deleted nothing before the cutover) the source's ``expireAfterSeconds``."""
    return ["sync", "--release-ttl", *_databases(config), *_migration(config, run)]


def clean(config: BackoverConfig, run: RunParams) -> list[str]:
    """Delete the change segments (backups and reports stay)."""
    return ["clean", *_migration(config, run)]


def abort(config: BackoverConfig, run: RunParams) -> list[str]:
    """Give the microservices' user its prior roles back and stop the capture; keep every file."""
    return ["abort", "--source-secret-id", _secret(config, "documentdb"), *_migration(config, run)]


BUILDERS: dict[str, Callable[..., list[str]]] = {
    "replicate": replicate,
    "backup": backup,
    "seal": seal,
    "restore": restore,
    "follow_restore": follow_restore,
    "verify": verify,
    "verify_live": verify_live,
    "sync_plan": sync_plan,
    "sync_partition": sync_partition,
    "release_ttl": release_ttl,
    "clean": clean,
    "abort": abort,
}


#: How a task log names the commands whose builder is not the sub-command's own name.
TITLES = {
    "follow_restore": "restore --follow",
    "verify_live": "verify --live",
    "seal": "backup --seal",
    "sync_plan": "sync --plan",
    "sync_partition": "sync --partition",
    "release_ttl": "sync --release-ttl",
}


def title(command: str) -> str:
    """``restore --follow`` for ``follow_restore``: the command as the user would type it."""
    return TITLES.get(command, command)


def arguments(command: str, config: BackoverConfig, run: RunParams, **options: Any) -> list[str]:
    """The arguments of ``backover <command>`` for this environment and run."""
    try:
        builder = BUILDERS[command]
    except KeyError:
        raise ConfigError(f"unknown backover command {command!r}; known: {', '.join(BUILDERS)}") from None
    return builder(config, run, **options)


def command_line(config: BackoverConfig, argv: list[str]) -> str:
    """``{backover_command} <argv>``, the arguments quoted for a POSIX shell."""
    return f"{config.backover_command} {shlex.join(argv)}"


def shell_script(line: str, live: bool = False) -> list[str]:
    """The ``AWS-RunShellScript`` commands that run ``line`` and report its output.

    Output and errors are kept together in order. ``live`` (the output goes to CloudWatch Logs):
    every line as soon as it is written, unbuffered, all of it, and the end of an output longer
    than SSM keeps (:data:`SSM_STDOUT_CHARS`) again on standard error, between :data:`END_BEGIN`
    and :data:`END_END`, for when CloudWatch cannot give it; otherwise the output is reported
    when the command ends and, when longer than SSM keeps, as its first ``OUTPUT_HEAD_BYTES`` and
    last ``OUTPUT_TAIL_BYTES`` with a note of what was left out. The script exits with the
    command's own status.
    """
    if live:
        # tee copies each line as it comes (the live output) and keeps it for the end; the
        # command's status goes through a file, as POSIX sh has no PIPESTATUS.
        return [
            "export PYTHONUNBUFFERED=1",
            'out="$(mktemp)" || exit 2',
            f'{{ {line} 2>&1; echo "$?" >"$out.rc"; }} | tee "$out"',
            'rc="$(cat "$out.rc" 2>/dev/null || echo 1)"',
            f'if [ "$(wc -c <"$out")" -ge {SSM_STDOUT_CHARS} ]; then '
            f'{{ echo "{END_BEGIN}"; tail -c {OUTPUT_END_BYTES} "$out" | tail -n +2; echo; echo "{END_END}"; }} >&2; fi',
            'rm -f "$out" "$out.rc"',
            'exit "$rc"',
        ]
    return [
        'out="$(mktemp)" || exit 2',
        f'{line} >"$out" 2>&1',
        "rc=$?",
        'size="$(wc -c <"$out")"',
        f'if [ "$size" -le {OUTPUT_HEAD_BYTES + OUTPUT_TAIL_BYTES} ]; then cat "$out"; else '
        f'head -c {OUTPUT_HEAD_BYTES} "$out"; '
        f'printf "\\n[... %s bytes of output left out ...]\\n" "$((size - {OUTPUT_HEAD_BYTES + OUTPUT_TAIL_BYTES}))"; '
        f'tail -c {OUTPUT_TAIL_BYTES} "$out"; fi',
        'rm -f "$out"',
        'exit "$rc"',
    ]


def lambda_payload(config: BackoverConfig, run: RunParams) -> dict[str, Any]:
    """The event of the start, restore and clean Lambdas (secret ids only)."""
    return {
        "migration_id": run.migration_id,
        "bucket": config.bucket,
        "prefix": config.prefix,
        "master_secret_id": _secret(config, "documentdb"),
        "app_user": config.app_user,
        "app_secret_id": _secret(config, "app_user"),
        "databases": list(run.databases),
        **({"allow_missing": True} if run.allow_missing else {}),
    }
