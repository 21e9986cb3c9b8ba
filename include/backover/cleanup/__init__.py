"""``backover clean``: delete a finished migration's change segments and checkpoints.

:mod:`.guard` refuses unless the restore completed, verification found the databases
identical, the migration was frozen and the replicator is drained or stopped (or ``--force``); :mod:`.record` keeps ``state/clean.json``, which the clean Lambda and
the clean job both update; :mod:`.job` does the deleting.
"""
