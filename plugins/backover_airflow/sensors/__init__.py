"""Sensors: the "monitor" services of the design, waiting on a migration's state objects in S3."""
