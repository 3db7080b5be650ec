"""Blobs in an S3-compatible bucket: the :class:`~storage.blobs.store.BlobStore` several gateway nodes share.

Only where the bytes live differs from the local folder: the same :class:`~storage.blobs.writer.BlobWriter` and
:class:`~storage.blobs.reader.BlobReader` write and read them, so encryption, chunk format, range reads and the
SHA-256 check on full reads are the folder's.

Keys, under the configured prefix::

    tmp/<node>/<worker>/<id>    a temporary blob: an in-progress multipart upload while written, an object once
                                finished (readable, for the content checks), owner and id in the key
    blobs/<id>                  a committed blob

Writing streams: the sink keeps at most one part (``part_size``) in memory while the previous part is sent; a
blob smaller than one part is one PUT.  Every create is conditional (``If-None-Match: *`` on the PUT, on the
completion of the multipart upload and on the commit's copy), so no two writers -- on any node -- can ever
overwrite one object.  Commit copies the finished temporary object to ``blobs/<id>`` (a server-side copy: the
committed object appears only then, whole) and removes the temporary; abort removes the multipart upload or the
temporary object.  Reads are ranged GETs with a read-ahead window that grows while a reader goes in order.

Every failure of the S3 service (unreachable, refused, timed out) is :class:`~storage.errors.ServiceUnavailable`;
an object that is not there is :class:`~storage.errors.NotFound`.  The client is boto3 (see pyproject.toml).
"""
from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from storage.blobs.chunks import DEFAULT_CHUNK_SIZE, HEADER_SIZE, TAG_SIZE, check_chunk_size
from storage.blobs.reader import BlobReader
from storage.blobs.store import (BlobRef, BlobStore, Temporary, new_blob_id, owned_by, owner_from_parts, owner_parts,
                                 valid_blob_id)
from storage.blobs.writer import BlobWriter, HashPool
from storage.errors import Conflict, NotFound, ServiceUnavailable
from storage.keyring import Keyring

log = logging.getLogger("instpages.blobs.s3")

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's smallest part but the last
READ_AHEAD_MAX = 2 * 1024 * 1024  # per window; an open reader holds two: 200 readers at most 800 MiB
_NOT_FOUND = {"NoSuchKey", "NotFound", "404"}
_PRECONDITION = {"PreconditionFailed", "412", "ConditionalRequestConflict"}
#: error codes that mean a setting is wrong, and which
_SETTING_OF_CODE = {"InvalidAccessKeyId": "access_key", "SignatureDoesNotMatch": "secret_key",
                    "AccessDenied": "access_key", "403": "access_key", "NoSuchBucket": "bucket",
                    "AuthorizationHeaderMalformed": "region", "PermanentRedirect": "region"}


@dataclass(frozen=True)
class S3Settings:
    """Where the bucket is and how to sign in; the keys never appear in a repr (nor in logs)."""

    endpoint: str = ""  # e.g. https://s3.example.org; empty = AWS, by region
    bucket: str = ""
    prefix: str = ""  # every key starts with it (e.g. "instpages/")
    region: str = "us-east-1"
    access_key: str = field(default="", repr=False)  # empty = boto3's own credential chain (environment, role)
    secret_key: str = field(default="", repr=False)
    part_size: int = 8 * 1024 * 1024
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_connections: int = 64


def make_client(settings: S3Settings):
    """A boto3 S3 client (thread-safe) for ``settings``: path-style addressing for an explicit endpoint, checksums
    only where S3 requires them (every chunk is authenticated by AES-GCM already), a few quick retries."""
    import boto3
    from botocore.config import Config as BotoConfig

    config = BotoConfig(
        s3={"addressing_style": "path" if settings.endpoint else "auto"},
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout,
        max_pool_connections=settings.max_connections, signature_version="s3v4",
        request_checksum_calculation="when_required", response_checksum_validation="when_required")
    return boto3.session.Session().client(
        "s3", endpoint_url=settings.endpoint or None, region_name=settings.region or None,
        aws_access_key_id=settings.access_key or None, aws_secret_access_key=settings.secret_key or None,
        config=config)


def unavailable(exc: BaseException, settings: S3Settings) -> ServiceUnavailable:
    """``exc`` (botocore's) as ServiceUnavailable; ``setting`` names the setting most likely at fault and
    ``detail`` says what happened (for the log and the start-up refusal; the client sees only the message)."""
    err = ServiceUnavailable("document storage is unavailable; try again later")
    code = _code(exc)
    if code:
        err.setting = _SETTING_OF_CODE.get(code, "endpoint")
        err.detail = f"refused by {settings.endpoint or 'S3'} ({code})"
        if err.setting == "bucket":
            err.detail = f"no bucket {settings.bucket!r} at {settings.endpoint or 'S3'}"
    else:
        err.setting = "endpoint"
        err.detail = f"cannot reach {settings.endpoint or 'S3'}: {_network_reason(exc)}"
    return err


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode"))


def _network_reason(exc: BaseException) -> str:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, socket.gaierror):
            return "host name not found"
        if isinstance(e, (TimeoutError, socket.timeout)) or "Timeout" in type(e).__name__:
            return "timed out"
        todo += [e.__cause__, e.__context__, getattr(e, "kwargs", {}).get("error")]
    return type(exc).__name__


class S3Source:
    """Ranged GETs of one object, through a read-ahead window that doubles (up to READ_AHEAD_MAX) while reads go
    in order, the next window then fetched in the background while this one is decrypted; NotFound at
    construction when the object is not there."""

    def __init__(self, store: S3BlobStore, key: str, first: int):
        self._store, self._key = store, key
        self._start, self._window = 0, b""
        self._ahead = first
        self._next = None  # (offset, future of its window) while reads go in order
        self.size = 0
        try:
            self._window, total = self._get(0, first)
        except ServiceUnavailable as exc:
            if getattr(exc, "code", "") != "InvalidRange":
                raise
            self._window, total = b"", 0  # an empty object
        self.size = total if total is not None else len(self._window)

    def _get(self, offset: int, length: int) -> tuple[bytes, int | None]:
        """Bytes ``[offset, offset + length)`` (fewer at the end) and the object's size when S3 says it."""
        r = self._store.call("get_object", Key=self._key, Range=f"bytes={offset}-{offset + length - 1}")
        total = r.get("ContentRange", "").rpartition("/")[2]
        body = r["Body"]
        try:
            data = body.read()
        except Exception as exc:  # noqa: BLE001 - a broken transfer is the service's trouble
            raise unavailable(exc, self._store.settings) from None
        finally:
            body.close()
        return data, int(total) if total.isdigit() else None

    def _covers(self, offset: int, length: int) -> bool:
        return self._start <= offset and offset + length <= self._start + len(self._window)

    def _refill(self, offset: int, want: int) -> None:
        in_order = offset == self._start + len(self._window)
        ahead, self._next = self._next, None
        if ahead is not None and ahead[0] == offset:
            self._window, self._start = ahead[1].result()[0], offset
        if not self._covers(offset, want):
            self._ahead = min(max(self._ahead * 2, want), READ_AHEAD_MAX) if in_order else want
            self._window, self._start = self._get(offset, max(want, self._ahead))[0], offset
        after = self._start + len(self._window)
        if in_order and after < self.size:
            self._next = (after, self._store.read_pool.submit(self._get, after, self._ahead))

    def read_into(self, buf, offset: int) -> int:
        dst = memoryview(buf).cast("B")
        want = min(len(dst), self.size - offset)
        if want <= 0:
            return 0
        if not self._covers(offset, want):
            self._refill(offset, want)
        start = offset - self._start
        got = max(0, min(want, len(self._window) - start))
        dst[:got] = memoryview(self._window)[start:start + got]
        return got

    def close(self) -> None:
        self._window, self._next = b"", None


class S3Sink:
    """A new blob as ``tmp/<node>/<worker>/<id>``: parts sent while written (one in flight), completed at
    :meth:`finish`, copied to ``blobs/<id>`` at :meth:`commit`."""

    def __init__(self, store: S3BlobStore, blob_id: str):
        self._store = store
        self._temp_key, self._final_key = store.temp_key(blob_id), store.final_key(blob_id)
        self._buf = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict] = []
        self._next_part = 1
        self._inflight = None
        self._state = "writing"  # writing -> finished -> committed | aborted

    def write(self, data) -> None:
        self._buf += data
        if len(self._buf) >= self._store.part_size:
            self._send_part()

    def _send_part(self) -> None:
        body, self._buf = bytes(self._buf), bytearray()
        if self._upload_id is None:
            self._upload_id = self._store.call("create_multipart_upload", Key=self._temp_key)["UploadId"]
        self._wait_inflight()
        number, self._next_part = self._next_part, self._next_part + 1
        self._inflight = self._store.part_pool.submit(self._upload_part, self._upload_id, number, body)

    def _upload_part(self, upload_id: str, number: int, body: bytes) -> dict:
        r = self._store.call("upload_part", Key=self._temp_key, UploadId=upload_id, PartNumber=number, Body=body)
        return {"PartNumber": number, "ETag": r["ETag"]}

    def _wait_inflight(self) -> None:
        fut, self._inflight = self._inflight, None
        if fut is not None:
            self._parts.append(fut.result())

    def finish(self) -> None:
        if self._upload_id is None:
            self._store.call("put_object", Key=self._temp_key, Body=bytes(self._buf), IfNoneMatch="*")
        else:
            if self._buf:
                self._send_part()
            self._wait_inflight()
            self._store.call("complete_multipart_upload", Key=self._temp_key, UploadId=self._upload_id,
                             MultipartUpload={"Parts": self._parts}, IfNoneMatch="*")
            self._upload_id = None
        self._buf = bytearray()
        self._state = "finished"

    def open_source(self) -> S3Source:
        key = self._final_key if self._state == "committed" else self._temp_key
        return S3Source(self._store, key, self._store.first_read)

    def commit(self) -> None:
        try:
            self._store.call("copy_object", Key=self._final_key, IfNoneMatch="*",
                             CopySource={"Bucket": self._store.settings.bucket, "Key": self._temp_key})
        except Conflict:
            raise Conflict("a blob with this id exists already") from None
        self._state = "committed"
        try:
            self._store.call("delete_object", Key=self._temp_key)
        except ServiceUnavailable as exc:  # committed all the same; the sweep removes the temporary later
            log.warning("temporary %s not removed after commit: %s", self._temp_key, getattr(exc, "detail", exc))

    def abort(self) -> None:
        """Remove the multipart upload or the temporary object.  Never raises for an unreachable service: the
        temporary is its owner's, and recovery or the sweep removes it (a refusal must still be recorded)."""
        if self._state in ("committed", "aborted"):
            return
        self._state = "aborted"
        self._buf = bytearray()
        try:
            with contextlib.suppress(Exception):
                self._wait_inflight()
            if self._upload_id is not None:
                upload_id, self._upload_id = self._upload_id, None
                self._store.call("abort_multipart_upload", Key=self._temp_key, UploadId=upload_id)
            self._store.call("delete_object", Key=self._temp_key)
        except (ServiceUnavailable, NotFound) as exc:
            log.warning("temporary %s left for the sweep: %s", self._temp_key, getattr(exc, "detail", exc))

    def close(self) -> None:
        self._buf = bytearray()


class S3BlobStore(BlobStore):
    """Blobs in ``settings.bucket`` under ``settings.prefix``; temporaries tagged with ``owner`` (node/worker).

    ``client`` is a boto3 S3 client (default: :func:`make_client`); ``clock`` gives "now" for the sweep, compared
    with the start times S3 reports (initiation of a multipart upload, last modification of a temporary object).
    """

    def __init__(self, settings: S3Settings, keyring: Keyring, chunk_size: int = DEFAULT_CHUNK_SIZE, *, owner: str,
                 client=None, clock: Callable[[], float] = time.time):
        if not settings.bucket:
            raise ValueError("an S3 blob store needs a bucket")
        if len(owner_parts(owner)) != 2:
            raise ValueError("a store's owner is <node>/<worker>")
        self.settings = settings
        self.keyring = keyring
        self.chunk_size = check_chunk_size(chunk_size)
        self.owner = owner
        self.part_size = max(MIN_PART_SIZE, settings.part_size)
        self.first_read = HEADER_SIZE + self.chunk_size + TAG_SIZE  # header and first chunk: one GET for most
        self._client = client if client is not None else make_client(settings)
        self._clock = clock
        self._prefix = settings.prefix
        self._hash_pool = HashPool()
        self.part_pool = HashPool(workers=8, name="s3-part")
        self.read_pool = HashPool(workers=16, name="s3-read-ahead")

    def __repr__(self) -> str:
        return (f"S3BlobStore(endpoint={self.settings.endpoint!r}, bucket={self.settings.bucket!r}, "
                f"prefix={self._prefix!r}, owner={self.owner!r})")

    # -- keys and calls ----------------------------------------------------------------------------------------

    def final_key(self, blob_id: str) -> str:
        return f"{self._prefix}blobs/{blob_id}"

    def temp_key(self, blob_id: str, owner: str | None = None) -> str:
        return f"{self._prefix}tmp/{'/'.join(owner_parts(owner or self.owner))}/{blob_id}"

    def call(self, operation: str, **kw):
        """``client.<operation>(Bucket=..., **kw)`` with S3's failures as the gateway's errors."""
        try:
            return getattr(self._client, operation)(Bucket=self.settings.bucket, **kw)
        except Exception as exc:  # noqa: BLE001 - translated: botocore's errors never leave the store
            raise self._translate(exc) from None

    def _translate(self, exc: BaseException) -> Exception:
        code = _code(exc)
        if code in _NOT_FOUND:
            return NotFound()
        if code in _PRECONDITION:
            return Conflict("the object exists already")
        if not hasattr(exc, "response") and not type(exc).__module__.startswith(("botocore", "urllib3")):
            return exc  # a bug of ours, not the service's trouble
        err = unavailable(exc, self.settings)
        err.code = code
        return err

    # -- the BlobStore protocol ----------------------------------------------------------------------------------

    def create(self) -> BlobWriter:
        blob_id = new_blob_id()
        return BlobWriter(blob_id, S3Sink(self, blob_id), self.keyring, self.chunk_size, self._hash_pool)

    def open(self, ref: BlobRef, verify: bool = True) -> BlobReader:
        if not valid_blob_id(ref.blob_id):
            raise NotFound()
        return BlobReader(S3Source(self, self.final_key(ref.blob_id), self.first_read), ref, self.keyring, verify,
                          pool=self._hash_pool)

    def delete(self, blob_id: str) -> None:
        if valid_blob_id(blob_id):
            self.call("delete_object", Key=self.final_key(blob_id))

    def exists(self, blob_id: str) -> bool:
        if not valid_blob_id(blob_id):
            return False
        try:
            self.call("head_object", Key=self.final_key(blob_id))
        except NotFound:
            return False
        return True

    def list_ids(self) -> Iterator[str]:
        prefix = f"{self._prefix}blobs/"
        for obj in self._paginate("list_objects_v2", "Contents", Prefix=prefix):
            name = obj["Key"][len(prefix):]
            if valid_blob_id(name):
                yield name

    def list_temporary(self, owner: str | None = None) -> Iterator[Temporary]:
        for temp, _, _ in self._temporaries(owner):
            yield temp

    def sweep_temporary(self, *, owner: str | None, older_than: float) -> int:
        """Abort ``owner``'s multipart uploads and delete its temporary objects started at least ``older_than``
        seconds ago (S3's clock for the start, ``clock`` for now); returns how many."""
        now = self._clock()
        removed = 0
        for temp, key, upload_id in list(self._temporaries(owner)):
            if now - temp.started < older_than:
                continue
            if upload_id is not None:
                with contextlib.suppress(NotFound):
                    self.call("abort_multipart_upload", Key=key, UploadId=upload_id)
            else:
                self.call("delete_object", Key=key)
            removed += 1
        return removed

    def ping(self) -> None:
        """One listing of at most one key: the endpoint answers, the keys sign, the bucket is there."""
        self.call("list_objects_v2", Prefix=self._prefix, MaxKeys=1)

    def close(self) -> None:
        self._hash_pool.close()
        self.part_pool.close()
        self.read_pool.close()

    # -- internals -----------------------------------------------------------------------------------------------

    def _paginate(self, operation: str, item: str, **kw) -> Iterator[dict]:
        try:
            for page in self._client.get_paginator(operation).paginate(Bucket=self.settings.bucket, **kw):
                yield from page.get(item) or ()
        except Exception as exc:  # noqa: BLE001 - translated as in call()
            raise self._translate(exc) from None

    def _temporaries(self, owner: str | None) -> Iterator[tuple[Temporary, str, str | None]]:
        """``(temporary, key, multipart upload id or None)`` of ``owner``'s temporaries."""
        base = f"{self._prefix}tmp/"
        prefix = base + ("/".join(owner_parts(owner)) + "/" if owner is not None else "")
        found = [(u["Key"], u["UploadId"], u["Initiated"]) for u in
                 self._paginate("list_multipart_uploads", "Uploads", Prefix=prefix)]
        found += [(o["Key"], None, o["LastModified"]) for o in
                  self._paginate("list_objects_v2", "Contents", Prefix=prefix)]
        for key, upload_id, when in found:
            parts = key[len(base):].split("/")
            if len(parts) != 3 or not valid_blob_id(parts[2]):
                continue
            tag = owner_from_parts(parts[0], parts[1])
            if owned_by(tag, owner):
                yield Temporary(parts[2], tag, when.timestamp()), key, upload_id
