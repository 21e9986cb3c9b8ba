"""``backover backup``: each collection to ``backups/{label}/{db}/{coll}.bson.gz`` + ``.metadata.json.gz``.

The layout and formats are mongodump's ``--gzip`` output (raw BSON documents, gzip; metadata as
canonical Extended JSON with ``options``, ``indexes``, ``uuid``, ``collectionName``, ``type``), so
``mongorestore --gzip --dir`` reads a downloaded copy; :mod:`.load` (``backover backup --restore``)
brings a backup back straight from S3. :mod:`.dump` streams, :mod:`.multipart` uploads.
"""
