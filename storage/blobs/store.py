"""What a blob store is: the :class:`BlobStore` protocol the core and recovery use, and the byte-level protocols
(:class:`BlobSink`, :class:`BlobSource`) a store implements for where the bytes live.

The encrypted format is not a store's business: every store hands out the same
:class:`~storage.blobs.writer.BlobWriter` (over a :class:`BlobSink` of its own) and
:class:`~storage.blobs.reader.BlobReader` (over a :class:`BlobSource`), which do chunking, AES-GCM, the SHA-256
check on full reads and range reads.  A store only keeps ciphertext: temporary while written, visible under its
id once committed.

Blob ids are 32 lowercase hex digits (:func:`new_blob_id`); a store treats any other id as absent.

Every temporary blob has an owner, ``"<node>/<worker>"`` (:func:`owner_tag`), and a start time.  Several nodes (and
several workers per node) share one store, so a sweep names whose temporaries it removes: start-up recovery removes
its own node's (``owner=node``, any age), the periodic sweep anybody's that are older than a bound
(``owner=None``), so that an upload another node has in progress is never touched.
"""
from __future__ import annotations

import os
import re
import urllib.parse
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


@dataclass(frozen=True)
class Temporary:
    """A temporary blob (being written, or left behind by a crash) as :meth:`BlobStore.list_temporary` sees it."""

    blob_id: str
    owner: str | None  # "<node>/<worker>"; None for a leftover of an older version, which named no owner
    started: float  # seconds since the epoch: when it was started (S3) or last written to (local folder)


def owner_tag(node: str, worker: str) -> str:
    """The owner of the temporaries a node's worker writes: ``"<node>/<worker>"``."""
    if not node or not worker or "/" in node or "/" in worker:
        raise ValueError("node and worker ids must be non-empty and free of '/'")
    return f"{node}/{worker}"


def default_owner() -> str:
    """The owner of a store built without one: this host, worker 0 (one process, the embedded default)."""
    return owner_tag(os.uname().nodename or "localhost", "0")


def owner_parts(owner: str) -> list[str]:
    """``owner`` (a node id, or ``"<node>/<worker>"``) as quoted path segments, for keys and folder names."""
    parts = owner.split("/")
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise ValueError(f"an owner is a node id or <node>/<worker>, not {owner!r}")
    return [urllib.parse.quote(p, safe="") for p in parts]


def owner_from_parts(node: str, worker: str) -> str:
    return f"{urllib.parse.unquote(node)}/{urllib.parse.unquote(worker)}"


def owned_by(tag: str | None, owner: str | None) -> bool:
    """Whether a temporary tagged ``tag`` is ``owner``'s (a node owns its workers'; ``None`` is anybody)."""
    if owner is None:
        return True
    return tag is not None and (tag == owner or tag.startswith(owner + "/"))


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
    """Where encrypted blobs live: :class:`~storage.blobs.local.LocalBlobStore` (a folder, the embedded default) or
    :class:`~storage.blobs.s3.S3BlobStore` (an S3-compatible bucket shared by several nodes)."""

    #: whose temporaries :meth:`create` makes, ``"<node>/<worker>"``
    owner: str

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

    def list_temporary(self, owner: str | None = None) -> Iterator[Temporary]:
        """The temporary blobs of ``owner`` (a node id: all its workers; ``"<node>/<worker>"``; None: anybody)."""
        ...

    def sweep_temporary(self, *, owner: str | None, older_than: float) -> int:
        """Remove ``owner``'s temporary blobs (as :meth:`list_temporary`) started at least ``older_than`` seconds
        ago; returns how many.  ``owner=<this node>, older_than=0`` at start-up (no worker of the node is writing
        yet); ``owner=None`` only with a bound after which an upload is provably abandoned."""
        ...

    def ping(self) -> None:
        """Cheap check that the store answers (readiness); ServiceUnavailable when it does not."""
        ...

    def close(self) -> None:
        """Release the store's resources (its hashing threads); blobs being written must be finished first."""
        ...
