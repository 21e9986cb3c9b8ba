"""The database-side steps of a migration's lifecycle, shared by the Lambdas and the command line.

* :mod:`.start` (start Lambda): the microservices' user gets read-write roles (its prior roles are
  saved), change streams are enabled, T0 is recorded in ``state/start.json``.
* :mod:`.freeze` (restore Lambda): the user becomes read-only, proven by a refused write; F goes
  to ``state/freeze.json`` and the drain request to ``control/drain.json``.
* :mod:`.clean` (clean Lambda): the change streams that start enabled are disabled.
* :mod:`.abort` (abort DAG, ``backover abort``): the prior roles come back, the replicator is
  asked to stop; nothing is deleted.

Every step is idempotent. Master credentials come from Secrets Manager and only ever travel in a
:class:`~backover.connections.DatabaseUri`.
"""
