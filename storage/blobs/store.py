"""What a blob store is: the :class:`BlobStore` protocol the core and recovery use, and the byte-level protocols
(:class:`BlobSink`, :class:`BlobSource`) a store implements for where the bytes live.

The encrypted format is not a store's business: every store hands out the same
:class:`~storage.blobs.writer.BlobWriter` (over a :class:`BlobSink` of its own) and
:class:`~storage.blobs.reader.BlobReader` (over a :class:`BlobSource`), which do chunking, AES-GCM, the SHA-256
check on full reads and range reads.  A store only keeps ciphertext: temporary while written, visible under its
id once committed.

Blob ids are 32 lowercase hex digits (:func:`new_blob_id`); a store treats any other id as absent.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from storage.blobs.reader import BlobReader
    from storage.blobs.writer import BlobWriter

_ID_RE = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class BlobRef:
    """What the metadata layer keeps about a blob; everything needed to find, decrypt and verify it."""

    blob_id: str  # opaque id (uuid4 hex)
    size: int  # plaintext length
    sha256: str  # hex SHA-256 of the plaintext
    key_id: str  # master key that wrapped the data key
    wrapped_key: bytes  # the per-blob data key, wrapped

    def __repr__(self) -> str:  # the wrapped key is not secret, but it is noise in logs
        return (
            f"BlobRef(blob_id={self.blob_id!r}, size={self.size}, sha256={self.sha256!r}, "
            f"key_id={self.key_id!r})"
        )


def new_blob_id() -> str:
    return uuid.uuid4().hex


def valid_blob_id(blob_id: object) -> bool:
    return isinstance(blob_id, str) and _ID_RE.match(blob_id) is not None


class BlobSource(Protocol):
    """Random access to the stored (encrypted) bytes of one blob; one per reader, closed with it."""

    size: int  # stored length in bytes

    def read_into(self, buf, offset: int) -> int:
        """Fill ``buf`` (a writable buffer) from ``offset``; returns the bytes read (fewer only at the end)."""
        ...

    def close(self) -> None: ...


class BlobSink(Protocol):
    """Where the stored bytes of one new blob go, in order; made by :meth:`BlobStore.create`."""

    def write(self, data) -> None:
        """Append every byte of ``data``."""
        ...

    def finish(self) -> None:
        """Make everything written durable; no more writes.  The blob stays temporary."""
        ...

    def open_source(self) -> BlobSource:
        """After :meth:`finish`: the bytes written, temporary or committed, for a reader."""
        ...

    def commit(self) -> None:
        """After :meth:`finish`: make the blob visible under its id (durably)."""
        ...

    def abort(self) -> None:
        """Discard the temporary blob; idempotent."""
        ...

    def close(self) -> None:
        """Release what the sink holds open without discarding anything (the sweep removes leftovers)."""
        ...


@runtime_checkable
class BlobStore(Protocol):
    """Where encrypted blobs live.  :class:`~storage.blobs.local.LocalBlobStore` now; an S3 store will follow."""

    def create(self) -> BlobWriter:
        """A writer of a new blob under a fresh id (temporary until the writer's ``commit()``)."""
        ...

    def open(self, ref: BlobRef, verify: bool = True) -> BlobReader:
        """A seekable reader (``read_range``) of a committed blob; NotFound when it does not exist."""
        ...

    def delete(self, blob_id: str) -> None:
        """Remove a committed blob; nothing when it does not exist."""
        ...

    def exists(self, blob_id: str) -> bool: ...

    def list_ids(self) -> Iterator[str]:
        """Ids of every committed blob (recovery deletes those no document refers to)."""
        ...

    def sweep_temporary(self, older_than: float = 0) -> int:
        """Remove temporary blobs not written to for ``older_than`` seconds; returns how many."""
        ...

    def ping(self) -> None:
        """A cheap check that the store can be reached (readiness probes); raises OSError when not."""
        ...

    def close(self) -> None:
        """Release the store's resources (its hashing threads); blobs being written must be finished first."""
        ...
