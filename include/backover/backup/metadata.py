"""``{coll}.metadata.json.gz``: mongodump's collection metadata plus Back Over's ``backover`` checks.

The dump writes it (:func:`metadata_document`) once the data object is complete; ``--restore``
reads it (:meth:`CollectionMetadata.parse`) and refuses, with one line naming the key, anything it
cannot trust: not gzip, truncated, not Extended JSON, a field missing or of the wrong type, an
index spec without ``name``/``key``, or another collection's name.

``backover`` = :class:`DataCheck`: the documents, uncompressed bytes and SHA-256 of the data, and
the data object's size and ETag. S3 gives a completed multipart upload an ETag of its own, so a
HEAD of the data object proves, before anything is written, that it is the very object this
metadata was written for (and not the data of a later dump that was killed before its metadata).

A collection built from a partitioned backup's parts (:mod:`.partitioned`) is several gzip
members, one per part, concatenated server-side: nobody read the whole stream, so no SHA-256 of it
exists. Its ``backover.members`` lists each member's checks in order (:class:`MemberCheck`); the
totals are their sums and ``sha256`` is :func:`members_digest` of theirs, so the load checks each
member as it reads it. Without ``members`` (every backup written before them, and every collection
dumped whole) the data is one member whose checks are the totals.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bson.binary import Binary
from bson.errors import BSONError

from .. import extjson
from ..errors import JobFailed

_SHA256 = re.compile(r"[0-9a-f]{64}")


def one_line(error: BaseException) -> str:
    """An exception's text on one line (zlib and JSON errors are, some botocore ones are not)."""
    return " ".join(str(error).split()) or type(error).__name__


def normalise_etag(etag: str) -> str:
    """S3 quotes ETags in some replies and not in others."""
    return etag.strip().strip('"')


@dataclass(frozen=True)
class MemberCheck:
    """One gzip member of a data object: its documents, uncompressed bytes, their SHA-256, and its
    compressed bytes (None only for the one member of a backup written before they were recorded)."""

    documents: int
    uncompressed_bytes: int
    sha256: str
    compressed_bytes: int | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "documents": self.documents,
            "uncompressedBytes": self.uncompressed_bytes,
            "sha256": self.sha256,
        }
        if self.compressed_bytes is not None:
            doc["compressedBytes"] = self.compressed_bytes
        return doc

    @classmethod
    def from_json(cls, key: str, doc: Any, where: str = "backover") -> MemberCheck:
        if not isinstance(doc, dict):
            raise JobFailed(f"{key}: {where} is not a document")
        for name in ("documents", "uncompressedBytes"):
            if not extjson.is_count(doc.get(name)):
                raise JobFailed(f"{key}: {where}.{name} is missing or not a count")
        sha256 = doc.get("sha256")
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise JobFailed(f"{key}: {where}.sha256 is missing or not a SHA-256")
        compressed = doc.get("compressedBytes")
        if compressed is not None and not extjson.is_count(compressed):
            raise JobFailed(f"{key}: {where}.compressedBytes is not a count")
        return cls(doc["documents"], doc["uncompressedBytes"], sha256, compressed)


def members_digest(members: Sequence[MemberCheck]) -> str:
    """The ``sha256`` of a data object of several members: SHA-256 of their SHA-256s in order."""
    return hashlib.sha256(b"".join(bytes.fromhex(m.sha256) for m in members)).hexdigest()


@dataclass(frozen=True)
class DataCheck:
    """What the dump knows of one data object; the restore checks the object against it.

    ``compressed_bytes`` and ``etag`` are absent from backups written before they were recorded;
    such a data object is then read once, before any write, to check the rest. ``members``: the
    gzip members of an object built from parts, in order (empty: one member, these totals).
    """

    documents: int
    uncompressed_bytes: int
    sha256: str
    compressed_bytes: int | None = None
    etag: str | None = None
    members: tuple[MemberCheck, ...] = ()

    @classmethod
    def of_members(cls, members: Sequence[MemberCheck], etag: str) -> DataCheck:
        """The checks of an object made of ``members`` concatenated, whose ETag is ``etag``."""
        return cls(
            sum(m.documents for m in members),
            sum(m.uncompressed_bytes for m in members),
            members_digest(members),
            sum(m.compressed_bytes or 0 for m in members),
            etag,
            tuple(members),
        )

    def expected_members(self) -> tuple[MemberCheck, ...]:
        """What the load finds in the object, member by member."""
        if self.members:
            return self.members
        return (MemberCheck(self.documents, self.uncompressed_bytes, self.sha256, self.compressed_bytes),)

    def to_json(self) -> dict[str, Any]:
        doc = MemberCheck(
            self.documents, self.uncompressed_bytes, self.sha256, self.compressed_bytes
        ).to_json()
        if self.etag is not None:
            doc["etag"] = normalise_etag(self.etag)
        if self.members:
            doc["members"] = [m.to_json() for m in self.members]
        return doc

    @classmethod
    def from_json(cls, key: str, doc: Any) -> DataCheck:
        if not isinstance(doc, dict):
            raise JobFailed(f"{key} has no backover checks (not written by backover backup?)")
        totals = MemberCheck.from_json(key, doc)
        etag = doc.get("etag")
        if etag is not None and not (isinstance(etag, str) and normalise_etag(etag)):
            raise JobFailed(f"{key}: backover.etag is not an ETag")
        listed = doc.get("members", [])
        if not isinstance(listed, list):
            raise JobFailed(f"{key}: backover.members is not a list")
        members = tuple(MemberCheck.from_json(key, m, f"backover.members[{i}]") for i, m in enumerate(listed))
        if members:
            if any(m.compressed_bytes is None for m in members):
                raise JobFailed(f"{key}: a member in backover.members has no compressedBytes")
            built = cls.of_members(members, "")
            if (built.documents, built.uncompressed_bytes, built.sha256, built.compressed_bytes) != (
                totals.documents,
                totals.uncompressed_bytes,
                totals.sha256,
                totals.compressed_bytes,
            ):
                raise JobFailed(f"{key}: backover.members do not add up to its totals")
        return cls(
            totals.documents,
            totals.uncompressed_bytes,
            totals.sha256,
            totals.compressed_bytes,
            None if etag is None else normalise_etag(etag),
            members,
        )


@dataclass(frozen=True)
class CollectionMetadata:
    """The parts of ``{coll}.metadata.json.gz`` the restore uses, checked."""

    collection: str
    options: dict[str, Any]
    indexes: list[dict[str, Any]]  # without ``ns``; ``_id_`` included, as mongodump writes them
    check: DataCheck

    @property
    def secondary_indexes(self) -> list[dict[str, Any]]:
        """The indexes to build after the data (``_id_`` comes with the collection)."""
        return [ix for ix in self.indexes if ix["name"] != "_id_"]

    @classmethod
    def parse(cls, key: str, body: bytes, collection: str) -> CollectionMetadata:
        """Gzip + canonical Extended JSON, checked field by field; JobFailed naming ``key`` otherwise."""
        try:
            text = gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as e:
            raise JobFailed(f"{key} is not a whole gzip file: {one_line(e)}") from None
        try:
            doc = extjson.loads(text)
        except (ValueError, TypeError, KeyError, BSONError) as e:
            raise JobFailed(f"{key} is not Extended JSON: {one_line(e)}") from None
        if not isinstance(doc, dict):
            raise JobFailed(f"{key} is not a metadata document")
        if doc.get("collectionName") != collection:
            raise JobFailed(f"{key} describes collection {doc.get('collectionName')!r}, not {collection!r}")
        options = doc.get("options", {})
        if not isinstance(options, dict):
            raise JobFailed(f"{key}: options is not a document")
        indexes = doc.get("indexes", [])
        if not isinstance(indexes, list):
            raise JobFailed(f"{key}: indexes is not a list")
        specs = []
        for i, spec in enumerate(indexes):
            if (
                not isinstance(spec, dict)
                or not isinstance(spec.get("name"), str)
                or not spec["name"]
                or not isinstance(spec.get("key"), dict)
                or not spec["key"]
            ):
                raise JobFailed(f"{key}: index {i} has no name or no key")
            specs.append({k: v for k, v in spec.items() if k != "ns"})
        return cls(collection, options, specs, DataCheck.from_json(key, doc.get("backover")))


def metadata_document(
    info: Mapping[str, Any], indexes: list[dict[str, Any]], check: DataCheck
) -> dict[str, Any]:
    """``{coll}.metadata.json`` as mongodump writes it, plus Back Over's ``backover`` checks."""
    doc: dict[str, Any] = {
        "options": info.get("options") or {},
        "indexes": [{k: v for k, v in ix.items() if k != "ns"} for ix in indexes],
    }
    uuid = (info.get("info") or {}).get("uuid")
    if isinstance(uuid, Binary):
        doc["uuid"] = uuid.hex()
    doc["collectionName"] = info["name"]
    doc["type"] = info.get("type", "collection")
    doc["backover"] = check.to_json()
    return doc


def encode(doc: dict[str, Any]) -> bytes:
    """The gzip bytes of a metadata document (``mtime=0``: the same metadata gives the same bytes)."""
    return gzip.compress(extjson.dumps(doc).encode(), mtime=0)
