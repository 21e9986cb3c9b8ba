"""Airflow side of Back Over: hooks, sensors, triggers and operators that drive a migration.

Layered like the Amazon provider: ``hooks/`` read the migration's state objects in S3,
``sensors/`` wait on them (the "monitor" services of the design), ``triggers/`` do the same
waiting in the triggerer for ``deferrable=True``, ``operators/`` run ``backover`` commands on the
worker and call the Lambdas. ``config`` reads the environment (Airflow Variable ``backover``) and
the run's Params; ``commands`` is the one place that builds the worker's command lines and the
Lambdas' payloads.
"""
