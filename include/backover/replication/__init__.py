"""The replication service: DocumentDB change streams into gapless, checkpointed segments in S3.

``replicate(config)`` (:mod:`.service`) checks its input, then runs the watch loop
(:mod:`.capture`): events as raw BSON, batched and written by :mod:`.segment_writer`, the
checkpoint (:mod:`.checkpoint`) after each segment, drain on request (:mod:`.drain`), transient
errors retried from the last token (:mod:`.source`, :mod:`.retry`). ``backover status`` reads
it back (:mod:`.status`); ``--detach`` runs it in the background (:mod:`.detach`).
"""
