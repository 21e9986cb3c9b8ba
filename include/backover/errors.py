"""Errors every ``backover`` job raises; the command line maps them to exit statuses."""

from __future__ import annotations


class BackoverError(Exception):
    """A job could not do what was asked; ``str(e)`` is one line for the user (never a secret)."""

    exit_code = 1


class UsageError(BackoverError):
    """Bad usage or configuration: wrong option, unreachable bucket, bad credentials (exit 2)."""

    exit_code = 2


class JobFailed(BackoverError):
    """The job ran and failed, or verification found differences (exit 1)."""

    exit_code = 1


class JobRefused(JobFailed):
    """The job ran and refuses to go on: the migration's records or the source are in a state no
    retry changes (a recorded T0 the change streams no longer reach, say); exit 1. A Lambda error
    of this type is not retried by Airflow."""
