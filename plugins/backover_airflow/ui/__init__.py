"""The Migrations page of the Airflow UI: an Airflow 3 plugin served by Airflow's own API server.

``airflow_plugin`` registers it (a FastAPI app under :data:`links.MOUNT`, a "Migrations" entry in
the navigation bar, a "Migration" tab on every DAG run); ``web_app`` reads the environment and the
migrations' state objects and answers; ``overview`` and ``lag_history`` are what a page shows of
one migration, from its records; ``html_pages`` and ``svg_chart`` write plain HTML with inline SVG
(no script: the UI shows plugin pages in a sandboxed iframe). Modules here import each other by
absolute name, as Airflow loads every file of the plugins folder on its own.
"""
