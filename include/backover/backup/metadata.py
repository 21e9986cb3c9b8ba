"""``{coll}.metadata.json.gz``: mongodump's collection metadata plus Back Over's ``backover`` checks.

The dump writes it (:func:`metadata_document`) once the data object is complete; ``--restore``
reads it (:meth:`CollectionMetadata.parse`) and refuses, with one line naming the key, anything it
cannot trust: not gzip, truncated, not Extended JSON, a field missing or of the wrong type, an
index spec without ``name``/``key``, or another collection's name.

``backover`` = :class:`DataCheck`: the documents, uncompressed bytes and SHA-256 of the data, and
the data object's size and ETag. S3 gives a completed multipart upload an ETag of its own, so a
HEAD of the data object proves, before anything is written, that it is the very object this
metadata was written for (and not the data of a later dump that was killed before its metadata).
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Mapping
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
class DataCheck:
    """What the dump knows of one data object; the restore checks the object against it.

    ``compressed_bytes`` and ``etag`` are absent from backups written before they were recorded;
    such a data object is then read once, before any write, to check the rest.
    """

    documents: int
    uncompressed_bytes: int
    sha256: str
    compressed_bytes: int | None = None
    etag: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "documents": self.documents,
            "uncompressedBytes": self.uncompressed_bytes,
            "sha256": self.sha256,
        }
        if self.compressed_bytes is not None:
            doc["compressedBytes"] = self.compressed_bytes
        if self.etag is not None:
            doc["etag"] = normalise_etag(self.etag)
        return doc

    @classmethod
    def from_json(cls, key: str, doc: Any) -> DataCheck:
        if not isinstance(doc, dict):
            raise JobFailed(f"{key} has no backover checks (not written by backover backup?)")
        for name in ("documents", "uncompressedBytes"):
            if not extjson.is_count(doc.get(name)):
                raise JobFailed(f"{key}: backover.{name} is missing or not a count")
        sha256 = doc.get("sha256")
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise JobFailed(f"{key}: backover.sha256 is missing or not a SHA-256")
        compressed = doc.get("compressedBytes")
        if compressed is not None and not extjson.is_count(compressed):
            raise JobFailed(f"{key}: backover.compressedBytes is not a count")
        etag = doc.get("etag")
        if etag is not None and not (isinstance(etag, str) and normalise_etag(etag)):
            raise JobFailed(f"{key}: backover.etag is not an ETag")
        return cls(
            doc["documents"],
            doc["uncompressedBytes"],
            sha256,
            compressed,
            None if etag is None else normalise_etag(etag),
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
