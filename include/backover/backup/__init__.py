"""``backover backup``: each collection to ``backups/{label}/{db}/{coll}.bson.gz`` + ``.metadata.json.gz``.

The layout and formats are mongodump's ``--gzip`` output (raw BSON documents, gzip; metadata as
canonical Extended JSON with ``options``, ``indexes``, ``uuid``, ``collectionName``, ``type``), so
``mongorestore --gzip --dir`` reads a downloaded copy; :mod:`.load` (``backover backup --restore``)
brings a backup back straight from S3. :mod:`.dump` streams, :mod:`.multipart` uploads.

With a sync plan, the DocumentDB backup can be taken over its partitions on several workers
(:mod:`.partitioned`; :mod:`.compose` builds a collection's object from its parts server-side).
The API Airflow maps over: :func:`begin` with a :class:`BackupConfig`, then :func:`partition_ids`
(from the begin record) and :func:`dump_partition` for each, then :func:`finish`.
"""

from __future__ import annotations

from .dump import BackupConfig, BackupResult
from .partitioned import (
    BeginResult,
    FinishResult,
    PartResult,
    begin,
    dump_partition,
    finish,
    partition_ids,
    run_backup,
)

__all__ = [
    "BackupConfig",
    "BackupResult",
    "BeginResult",
    "FinishResult",
    "PartResult",
    "begin",
    "dump_partition",
    "finish",
    "partition_ids",
    "run_backup",
]
