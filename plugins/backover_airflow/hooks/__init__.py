"""Hooks: how the Airflow side reads a migration."""
