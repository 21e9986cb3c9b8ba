"""Documents moved aside so that another document could take a unique key.

Why this is safe: while the replay is at stream position ``p``, a document ``Y`` that holds a
unique key ``k`` on the target which the write of ``X`` at ``p`` needs must change again later in
the stream. (Both states are real states of the source, at two different times, and a unique
index held at both; so between them ``Y`` lost ``k`` or gained it, by an event after ``p``.) Its
later write brings it back; until then it is kept here, and saved with the restore checkpoint so a
crash cannot lose it. A later ``updateDescription`` of a document kept here (a stream without
updateLookup, or a null lookup) is applied to the kept copy, with the stand-in's update engine
(``backover.mongo.update``, which follows mongod's rules), since there is nothing on the target
to update. What is still here when the stream is complete is written back at the end (and the
restore fails, naming it, if that is rejected).

Crash safety: the kept copies are saved to S3 *before* their holder is removed from the target,
and before any record that lets a restarted restore skip events (the checkpoint, the DDL record).
``generation`` counts the saved states; each record names the generation it relies on, and a
saved state older than a record is refused (it would resurrect a document that a skipped event
had brought back).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any

import bson
from bson.errors import BSONError
from bson.raw_bson import RawBSONDocument

from ..bsonvalues import RAW, decode, element_document, encode, to_plain
from ..errors import JobFailed
from ..mongo.update import apply_update
from ..namespaces import Namespace
from .events import id_element_of, identity_of


class Displaced:
    """Raw documents by namespace and identity."""

    #: The first document of the saved file: what it is, its format and its generation.
    HEADER = "backover-displaced"
    FORMAT = 1

    def __init__(self, generation: int = 0) -> None:
        self._docs: dict[Namespace, dict[Hashable, bytes]] = {}
        self.changed = False
        self.generation = generation  # of the last state saved (0: never saved)

    def __len__(self) -> int:
        return sum(len(docs) for docs in self._docs.values())

    def __bool__(self) -> bool:
        return bool(self._docs)

    def put(self, ns: Namespace, raw: bytes) -> None:
        self._docs.setdefault(ns, {})[identity_of(id_element_of(raw))] = raw
        self.changed = True

    def holds(self, ns: Namespace, identity: Hashable) -> bool:
        return identity in self._docs.get(ns, {})

    def update(self, ns: Namespace, identity: Hashable, update: dict[str, Any]) -> None:
        """Apply operator ``update`` to the kept copy; CommandError (code, message) as MongoDB
        would refuse it."""
        docs = self._docs[ns]
        plain = {operator: to_plain(value) for operator, value in update.items()}
        docs[identity] = encode(apply_update(decode(docs[identity]), plain, inserting=False))
        self.changed = True

    def discard(self, ns: Namespace, identity: Hashable) -> None:
        docs = self._docs.get(ns)
        if docs is not None and docs.pop(identity, None) is not None:
            self.changed = True
            if not docs:
                del self._docs[ns]

    def drop_namespace(self, ns: Namespace) -> None:
        if self._docs.pop(ns, None) is not None:
            self.changed = True

    def drop_database(self, db: str) -> None:
        for ns in [ns for ns in self._docs if ns.db == db]:
            self.drop_namespace(ns)

    def rename(self, ns: Namespace, to: Namespace) -> None:
        docs = self._docs.pop(ns, None)
        if docs is not None:
            self._docs.setdefault(to, {}).update(docs)
            self.changed = True

    def items(self) -> Iterator[tuple[Namespace, bytes, bytes]]:
        """``(ns, document_key, raw)`` of every document kept."""
        for ns, docs in list(self._docs.items()):
            for raw in list(docs.values()):
                yield ns, element_document(id_element_of(raw)), raw

    def to_bytes(self) -> bytes:
        """The saved form: a header ``{backover-displaced: FORMAT, generation}``, then one
        ``{db, coll, doc}`` per document (concatenated BSON, ``bsondump`` reads it)."""
        header = bson.encode({self.HEADER: self.FORMAT, "generation": self.generation})
        return header + b"".join(
            bson.encode({"db": ns.db, "coll": ns.coll, "doc": RawBSONDocument(raw)})
            for ns, _key, raw in self.items()
        )

    @classmethod
    def from_bytes(cls, data: bytes, key: str = "restore/displaced.bson") -> Displaced:
        """The saved state; JobFailed naming ``key`` when the bytes are not one."""
        try:
            entries = bson.decode_all(data, RAW)
            header = entries[0] if entries else None
            if (
                header is None
                or header.get(cls.HEADER) != cls.FORMAT
                or not isinstance(header.get("generation"), int)
            ):
                raise ValueError("no backover-displaced header of format 1")
            out = cls(generation=int(header["generation"]))
            for entry in entries[1:]:
                db, coll, doc = entry["db"], entry["coll"], entry["doc"]
                if (
                    not isinstance(db, str)
                    or not isinstance(coll, str)
                    or not isinstance(doc, RawBSONDocument)
                ):
                    raise ValueError("an entry is not {db: string, coll: string, doc: document}")
                out.put(Namespace(db, coll), bytes(doc.raw))  # a large doc's raw is a memoryview
        except (BSONError, ValueError, KeyError, IndexError, TypeError) as e:
            raise JobFailed(f"{key} is not a saved set of displaced documents ({e})") from None
        out.changed = False
        return out
