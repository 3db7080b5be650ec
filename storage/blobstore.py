"""Encrypted blob storage: every document is encrypted at rest under its own key, readable at any byte range.

Blob format (version 1)
=======================

::

    header   16 bytes   magic b"IPGBLOB" | version u8 (=1) | chunk_size u32 BE | reserved u32 (=0)
    chunk 0  AES-256-GCM(dek, nonce=0, plaintext[0:cs], aad=header|u64 0|final) = ciphertext || 16-byte tag
    chunk 1  ...
    chunk n-1 (final, flag 1): 1..cs plaintext bytes + tag; an empty blob is one empty final chunk (tag only)

* ``dek`` is a fresh random 256-bit data key per blob.  It is stored only wrapped by a master key of the
  :class:`~storage.keyring.Keyring` (``BlobRef.key_id``/``BlobRef.wrapped_key``), with the blob id as associated
  data, so a wrapped key moved to another blob does not unwrap.
* The GCM nonce of chunk *i* is *i* as a 12-byte big-endian counter.  This is safe because GCM only requires that
  a (key, nonce) pair never encrypts two different messages: the key is random and used for exactly one blob,
  the writer encrypts each chunk index exactly once (it holds back a full chunk until it knows whether more data
  follows, so the final chunk is never re-encrypted), and a 96-bit counter cannot wrap.  Nothing is left for a
  random nonce to protect, and a counter costs no space.
* The associated data of every chunk is ``header || index (u64 BE) || final flag (1 byte)``.  The header binds
  format version and chunk size; the index detects swapped, dropped or duplicated chunks; the final flag detects
  truncation at a chunk border (the new last chunk was written as non-final) and extension (the old final chunk
  is no longer last).
* Every ciphertext chunk is ``chunk_size + 16`` bytes except the last (16..chunk_size+16), so the plaintext size
  follows from the file size: ``n = ceil((file_size - 16) / (chunk_size + 16))``,
  ``size = file_size - 16 - 16 * n``.  A file whose size fits no such layout, or disagrees with ``BlobRef.size``,
  is rejected before anything is decrypted.

Layout on disk (:class:`LocalBlobStore`): ``root/tmp/<id>.tmp`` while being written, ``root/<id[:2]>/<id[2:4]>/<id>``
once committed; files 0600, directories 0700; file fsynced before the rename, directory fsynced after.

Any authentication failure, a bad header, an impossible size or a plaintext whose SHA-256 differs from
``BlobRef.sha256`` raises :class:`~storage.errors.IntegrityFailure`.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import io
import os
import re
import stat
import struct
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from storage.errors import IntegrityFailure, NotFound
from storage.fsio import ReadOnlyStream, fsync_dir, write_all
from storage.keyring import Keyring

__all__ = [
    "BlobRef",
    "BlobWriter",
    "BlobReader",
    "BlobStore",
    "LocalBlobStore",
    "DEFAULT_CHUNK_SIZE",
    "FORMAT_VERSION",
]

MAGIC = b"IPGBLOB"
FORMAT_VERSION = 1
DEFAULT_CHUNK_SIZE = 256 * 1024
MAX_CHUNK_SIZE = 64 * 1024 * 1024
TAG_SIZE = 16
_HEADER = struct.Struct(">7sBII")
HEADER_SIZE = _HEADER.size  # 16
_INDEX = struct.Struct(">Q")
_SCRATCH_MAX = 16 * 1024 * 1024  # larger reads get a buffer of their own
_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_TMP_SUFFIX = ".tmp"
_FILE_MODE = 0o600
_DIR_MODE = 0o700


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


def _header(chunk_size: int) -> bytes:
    return _HEADER.pack(MAGIC, FORMAT_VERSION, chunk_size, 0)


def _nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


def _aad(header: bytes, index: int, final: bool) -> bytes:
    return header + _INDEX.pack(index) + (b"\x01" if final else b"\x00")


# A large write() hashes its data on a helper thread while the calling thread encrypts and writes it (hashlib,
# AES-GCM and os.write all release the GIL): SHA-256 costs about as much as AES-GCM plus the write together,
# so with a spare core this nearly halves the wall time of an upload.  One hand-off per call, joined before
# the call returns, so the caller's buffer is free again and hash updates stay in order.
_ASYNC_HASH_MIN = 512 * 1024
_hash_pool: ThreadPoolExecutor | None = None
_hash_pool_lock = threading.Lock()


def _hash_executor() -> ThreadPoolExecutor:
    global _hash_pool
    with _hash_pool_lock:
        if _hash_pool is None:
            _hash_pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="blob-sha256")
        return _hash_pool


def _check_chunk_size(chunk_size: int) -> int:
    if not isinstance(chunk_size, int) or not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise ValueError(f"chunk_size must be between 1 and {MAX_CHUNK_SIZE}")
    return chunk_size


# ---------------------------------------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------------------------------------


class BlobWriter:
    """Sequential writer of one new blob; returned by :meth:`BlobStore.create`.

    ``write()`` as often as needed, then ``finish()`` (the blob is complete but still temporary: invisible to
    ``open()``/``list_ids()``), optionally ``open_reader()`` to validate the content, then ``commit()`` -- or
    ``abort()``.  Used as a context manager, leaving the block without ``commit()`` aborts.
    One thread at a time.
    """

    def __init__(self, store: "LocalBlobStore", blob_id: str, temp_path: Path, final_path: Path,
                 keyring: Keyring, chunk_size: int):
        self.blob_id = blob_id
        self.size = 0
        self._store = store
        self._temp_path = temp_path
        self._final_path = final_path
        self._keyring = keyring
        self._chunk_size = chunk_size
        self._header = _header(chunk_size)
        self._hash = hashlib.sha256()  # of the plaintext, fed by write()
        self._index = 0
        self._buf = bytearray(chunk_size)  # plaintext of the chunk being filled (not yet encrypted)
        self._fill = 0
        self._out = bytearray(chunk_size + TAG_SIZE)  # reused ciphertext buffer
        self._ref: BlobRef | None = None
        self._state = "writing"  # writing -> finished -> committed | aborted
        self._fd: int | None = None

        dek = AESGCM.generate_key(bit_length=256)
        self._aead = AESGCM(dek)
        self._key_id, self._wrapped_key = keyring.wrap(dek, blob_id.encode("ascii"))
        del dek

        self._fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW,
                           _FILE_MODE)
        try:
            os.fchmod(self._fd, _FILE_MODE)
            write_all(self._fd, self._header)
        except BaseException:
            self.abort()
            raise

    def __repr__(self) -> str:
        return f"BlobWriter(blob_id={self.blob_id!r}, size={self.size}, state={self._state!r})"

    # -- writing -------------------------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``.  Full chunks are encrypted and written as soon as it is known they are not last."""
        if self._state != "writing":
            raise ValueError(f"write() on a {self._state} blob")
        view = memoryview(data)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        total = len(view)
        if not total:
            return
        cs = self._chunk_size
        pos = 0
        hashing = None
        if total >= _ASYNC_HASH_MIN:
            hashing = _hash_executor().submit(self._hash.update, view)
        else:
            self._hash.update(view)
        try:
            while pos < total:
                if self._fill == cs:
                    # More data follows, so the buffered chunk is not the final one.
                    self._emit(self._buf, final=False)
                    self._fill = 0
                if self._fill == 0 and total - pos > cs:
                    # Whole chunk straight from the caller's buffer, known not to be final: no copy.
                    self._emit(view[pos:pos + cs], final=False)
                    pos += cs
                    continue
                take = min(cs - self._fill, total - pos)
                self._buf[self._fill:self._fill + take] = view[pos:pos + take]
                self._fill += take
                pos += take
        except BaseException:
            self._fail()
            raise
        finally:
            if hashing is not None:
                try:
                    hashing.result()
                except BaseException:
                    self._fail()
                    raise
        self.size += total

    def _emit(self, plaintext, final: bool) -> None:
        n = len(plaintext)
        out = self._out if n == self._chunk_size else memoryview(self._out)[:n + TAG_SIZE]
        self._aead.encrypt_into(_nonce(self._index), plaintext, _aad(self._header, self._index, final), out)
        write_all(self._fd, out)
        self._index += 1

    def finish(self) -> BlobRef:
        """Encrypt the final chunk, flush and fsync.  The blob stays temporary until :meth:`commit`."""
        if self._state == "finished":
            return self._ref
        if self._state != "writing":
            raise ValueError(f"finish() on a {self._state} blob")
        try:
            self._emit(memoryview(self._buf)[:self._fill], final=True)
            os.fsync(self._fd)
        except BaseException:
            self._fail()
            raise
        self._close_fd()
        self._buf = self._out = bytearray()
        self._ref = BlobRef(
            blob_id=self.blob_id,
            size=self.size,
            sha256=self._hash.hexdigest(),
            key_id=self._key_id,
            wrapped_key=self._wrapped_key,
        )
        self._state = "finished"
        return self._ref

    @property
    def ref(self) -> BlobRef | None:
        """The :class:`BlobRef` once finished, else None."""
        return self._ref

    def open_reader(self, verify: bool = False) -> "BlobReader":
        """After :meth:`finish`: a reader over the (still temporary) blob, so the caller can validate it.

        Every chunk is still authenticated by AES-GCM (index, final flag and size included), so the reader
        returns exactly the bytes written.  Re-checking the SHA-256 that was computed from those very bytes a
        moment ago would only cost a second pass of hashing over the upload, hence ``verify=False`` here.
        """
        if self._state not in ("finished", "committed"):
            raise ValueError(f"open_reader() on a {self._state} blob")
        path = self._temp_path if self._state == "finished" else self._final_path
        return BlobReader._open_path(path, self._ref, self._keyring, verify)

    def commit(self) -> None:
        """After :meth:`finish`: move the blob to its final place (visible to ``open()``), fsync the directory."""
        if self._state == "committed":
            return
        if self._state != "finished":
            raise ValueError(f"commit() on a {self._state} blob")
        self._store._ensure_dir(self._final_path.parent)
        os.rename(self._temp_path, self._final_path)
        fsync_dir(self._final_path.parent)
        self._state = "committed"

    def abort(self) -> None:
        """Discard the blob.  Idempotent; a no-op after :meth:`commit`."""
        if self._state in ("committed", "aborted"):
            return
        self._state = "aborted"
        self._close_fd()
        self._buf = self._out = bytearray()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._temp_path)

    def _fail(self) -> None:
        # After a failed write the chunk sequence is unknown; the blob can only be aborted.
        self._state = "failed"

    def _close_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.abort()

    def __del__(self) -> None:
        # Never delete here (the sweep removes leftovers); only do not leak the descriptor.
        with contextlib.suppress(Exception):
            self._close_fd()


# ---------------------------------------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------------------------------------


class BlobReader(ReadOnlyStream):
    """Seekable, read-only plaintext view of one blob.

    Decrypts only the chunks a read touches, keeping the last decrypted chunk so that small sequential reads
    decrypt every chunk once.  When ``verify`` is true and the blob is read in order from offset 0 to the end
    (re-reading is allowed, skipping ahead is not), the SHA-256 of the plaintext is compared with
    ``BlobRef.sha256`` before the last bytes are returned.  Each reader has its own descriptor and buffers and
    uses ``pread``, so any number of readers of one blob may be used in parallel threads (each by one thread
    at a time).
    """

    def __init__(self, fd: int, ref: BlobRef, keyring: Keyring, verify: bool = True):
        super().__init__()
        self._fd = fd
        self.ref = ref
        self._pos = 0
        try:
            st = os.fstat(fd)
            header = os.pread(fd, HEADER_SIZE, 0)
            if len(header) != HEADER_SIZE:
                raise IntegrityFailure()
            magic, version, chunk_size, reserved = _HEADER.unpack(header)
            if magic != MAGIC or version != FORMAT_VERSION or reserved != 0 or not 1 <= chunk_size <= MAX_CHUNK_SIZE:
                raise IntegrityFailure()
            self._header = header
            self._chunk_size = cs = chunk_size
            body = st.st_size - HEADER_SIZE
            stride = cs + TAG_SIZE
            nchunks = -(-body // stride)
            last_ct = body - (nchunks - 1) * stride
            if body < TAG_SIZE or last_ct < TAG_SIZE or (nchunks > 1 and last_ct == TAG_SIZE):
                raise IntegrityFailure()
            self.size = body - TAG_SIZE * nchunks
            if self.size != ref.size:
                raise IntegrityFailure()
            self._nchunks = nchunks
            self._aead = AESGCM(keyring.unwrap(ref.key_id, ref.wrapped_key, ref.blob_id.encode("ascii")))
            self._ct = bytearray(stride)  # reused ciphertext buffer
            self._cache = bytearray(cs)  # plaintext of chunk self._cache_index
            self._cache_index = -1
            self._scratch = bytearray()  # reused target of multi-chunk read()/read_range()
            self._verify = bool(verify)
            self._hash = hashlib.sha256() if verify else None
            self._hashed = 0  # plaintext bytes [0, _hashed) have been hashed in order
            self._verified = False
            self._failed = False
            if self.size == 0:
                self._decrypt_chunk(0, memoryview(self._cache)[:0])  # authenticate the empty final chunk
        except BaseException:
            os.close(fd)
            self._fd = None
            raise

    @classmethod
    def _open_path(cls, path: Path, ref: BlobRef, keyring: Keyring, verify: bool) -> "BlobReader":
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise NotFound() from None
        return cls(fd, ref, keyring, verify)

    def __repr__(self) -> str:
        return f"BlobReader(blob_id={self.ref.blob_id!r}, size={self.size}, pos={self._pos}, closed={self.closed})"

    # -- io protocol ---------------------------------------------------------------------------------------

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence ({whence})")
        if pos < 0:
            raise OSError(errno.EINVAL, "negative seek position")
        self._pos = pos
        return pos

    def readinto(self, b) -> int:
        self._check_open()
        view = memoryview(b)
        if view.format != "B" or view.ndim != 1:
            view = view.cast("B")
        n = self._read_at(self._pos, view)
        self._pos += n
        return n

    def read(self, size: int | None = -1) -> bytes:
        self._check_open()
        if size is None or size < 0:
            size = self.size - self._pos
        data = self._read_bytes(self._pos, size)
        self._pos += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def read_range(self, offset: int, length: int) -> bytes:
        """``length`` plaintext bytes from ``offset`` (fewer at the end); does not move the read position."""
        self._check_open()
        if offset < 0 or length < 0:
            raise ValueError("offset and length must not be negative")
        return self._read_bytes(offset, length)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
            self._aead = None
            self._cache = self._ct = self._scratch = bytearray()
        super().close()

    def fileno(self) -> int:
        raise io.UnsupportedOperation("a blob reader has no plaintext file descriptor")

    # -- internals -----------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._fd is None:
            raise ValueError("I/O operation on closed blob reader")

    def _read_bytes(self, offset: int, length: int) -> bytes:
        if self._failed:
            raise IntegrityFailure()
        length = max(0, min(length, self.size - offset))
        cs = self._chunk_size
        if length and offset // cs == (offset + length - 1) // cs:
            # Within one chunk (the common case for small reads): one copy out of the chunk cache.
            index = offset // cs
            self._load_chunk(index)
            start = offset - index * cs
            data = bytes(memoryview(self._cache)[start:start + length])
            self._account(offset, data)
            return data
        if length > _SCRATCH_MAX:
            out = bytearray(length)
            self._read_at(offset, memoryview(out))
            return bytes(out)
        # Decrypt into a buffer kept for the reader's lifetime: a fresh large buffer per call costs a page
        # fault per 4 KiB, which is more than the decryption itself.  One copy leaves it as bytes.
        if len(self._scratch) < length:
            self._scratch = bytearray(length)
        view = memoryview(self._scratch)[:length]
        self._read_at(offset, view)
        return bytes(view)

    def _read_at(self, offset: int, dst: memoryview) -> int:
        """Decrypt plaintext ``[offset, offset + len(dst))`` (clamped to the end) into ``dst``."""
        if self._failed:
            raise IntegrityFailure()
        length = max(0, min(len(dst), self.size - offset))
        cs = self._chunk_size
        done = 0
        while done < length:
            pos = offset + done
            index, start = divmod(pos, cs)
            chunk_len = self._chunk_len(index)
            take = min(chunk_len - start, length - done)
            piece = dst[done:done + take]
            if start == 0 and take == chunk_len and index != self._cache_index:
                # Whole chunk wanted: decrypt straight into the caller's buffer.
                self._decrypt_chunk(index, piece)
            else:
                self._load_chunk(index)
                piece[:] = memoryview(self._cache)[start:start + take]
            try:
                self._account(pos, piece)  # per chunk, while the plaintext is still in the CPU cache
            except IntegrityFailure:
                dst[:done + take] = bytes(done + take)  # withhold everything this call produced
                raise
            done += take
        if not length:
            self._account(offset, dst[:0])
        return length

    def _chunk_len(self, index: int) -> int:
        if index < self._nchunks - 1:
            return self._chunk_size
        return self.size - (self._nchunks - 1) * self._chunk_size

    def _load_chunk(self, index: int) -> None:
        if index == self._cache_index:
            return
        self._cache_index = -1
        n = self._chunk_len(index)
        self._decrypt_chunk(index, memoryview(self._cache)[:n])
        self._cache_index = index

    def _decrypt_chunk(self, index: int, dst: memoryview) -> None:
        """Read, authenticate and decrypt chunk ``index`` into ``dst`` (exactly its plaintext length)."""
        n_ct = len(dst) + TAG_SIZE
        ct = self._ct if n_ct == len(self._ct) else memoryview(self._ct)[:n_ct]
        got = os.preadv(self._fd, [ct], HEADER_SIZE + index * (self._chunk_size + TAG_SIZE))
        if got != n_ct:
            self._failed = True
            raise IntegrityFailure()  # the file shrank under us
        final = index == self._nchunks - 1
        try:
            self._aead.decrypt_into(_nonce(index), ct, _aad(self._header, index, final), dst)
        except InvalidTag:
            dst[:] = bytes(len(dst))  # never leave unauthenticated plaintext in the caller's buffer
            self._failed = True
            raise IntegrityFailure() from None

    def _account(self, offset: int, data) -> None:
        """Feed bytes about to be returned to the running hash; check it when the end is reached."""
        if not self._verify or self._verified or self._hashed is None:
            return
        if not len(data) and self.size:
            return  # nothing returned (read at or past the end): no evidence either way
        end = offset + len(data)
        if offset > self._hashed:
            self._hashed = None  # skipped ahead: this reader can no longer see the whole blob in order
            return
        if end > self._hashed:
            self._hash.update(memoryview(data)[self._hashed - offset:])
            self._hashed = end
        if self._hashed == self.size:
            if not hmac.compare_digest(self._hash.digest(), _expected_digest(self.ref.sha256)):
                self._failed = True
                raise IntegrityFailure()
            self._verified = True
            self._hash = None


# ---------------------------------------------------------------------------------------------------------
# Store
# ---------------------------------------------------------------------------------------------------------


@runtime_checkable
class BlobStore(Protocol):
    """Where encrypted blobs live.  :class:`LocalBlobStore` now; an S3 implementation will follow."""

    def create(self) -> BlobWriter: ...

    def open(self, ref: BlobRef, verify: bool = True) -> BlobReader: ...

    def delete(self, blob_id: str) -> None: ...

    def exists(self, blob_id: str) -> bool: ...

    def list_ids(self) -> Iterator[str]: ...

    def sweep_temporary(self, older_than: float = 0) -> int: ...

    def ping(self) -> None:
        """A cheap check that the store can be reached (readiness probes); raises OSError when not."""


class LocalBlobStore(BlobStore):
    """Blobs as files under ``root``: ``root/tmp/<id>.tmp`` while written, ``root/<id[:2]>/<id[2:4]>/<id>`` after."""

    def __init__(self, root: Path, keyring: Keyring, chunk_size: int = DEFAULT_CHUNK_SIZE):
        self.root = Path(root)
        self.keyring = keyring
        self.chunk_size = _check_chunk_size(chunk_size)
        self._tmp = self.root / "tmp"
        self._ensure_dir(self._tmp)

    def __repr__(self) -> str:
        return f"LocalBlobStore(root={str(self.root)!r}, chunk_size={self.chunk_size})"

    def create(self) -> BlobWriter:
        self._ensure_dir(self._tmp)
        blob_id = uuid.uuid4().hex
        return BlobWriter(self, blob_id, self._temp_path(blob_id), self._final_path(blob_id), self.keyring,
                          self.chunk_size)

    def open(self, ref: BlobRef, verify: bool = True) -> BlobReader:
        if not _valid_id(ref.blob_id):
            raise NotFound()
        return BlobReader._open_path(self._final_path(ref.blob_id), ref, self.keyring, verify)

    def delete(self, blob_id: str) -> None:
        if not _valid_id(blob_id):
            return
        path = self._final_path(blob_id)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        fsync_dir(path.parent)

    def exists(self, blob_id: str) -> bool:
        return _valid_id(blob_id) and os.path.isfile(self._final_path(blob_id))

    def ping(self) -> None:
        if not (os.path.isdir(self._tmp) and os.access(self._tmp, os.W_OK | os.X_OK)):
            raise OSError(f"the blob folder {self.root} cannot be reached")

    def list_ids(self) -> Iterator[str]:
        for first in _scan_dirs(self.root, 2):
            for second in _scan_dirs(first, 2):
                with os.scandir(second) as entries:
                    names = sorted(e.name for e in entries if e.is_file(follow_symlinks=False))
                for name in names:
                    if _valid_id(name) and name[:2] == first.name and name[2:4] == second.name:
                        yield name

    def sweep_temporary(self, older_than: float = 0) -> int:
        """Delete temporary blobs (crash leftovers) not modified for ``older_than`` seconds; returns the count.

        ``older_than=0`` also removes blobs being written right now: use it only when no writer is active
        (at start-up).
        """
        now = time.time()
        removed = 0
        try:
            entries = list(os.scandir(self._tmp))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if not entry.name.endswith(_TMP_SUFFIX):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode) or now - st.st_mtime < older_than:
                    continue
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            removed += 1
        if removed:
            fsync_dir(self._tmp)
        return removed

    # -- internals -----------------------------------------------------------------------------------------

    def _temp_path(self, blob_id: str) -> Path:
        return self._tmp / f"{blob_id}{_TMP_SUFFIX}"

    def _final_path(self, blob_id: str) -> Path:
        return self.root / blob_id[:2] / blob_id[2:4] / blob_id

    def _ensure_dir(self, path: Path) -> None:
        """Create ``path`` and missing parents with mode 0700, fsyncing each parent that gained an entry."""
        if path.is_dir():
            return
        if path.parent != path:
            self._ensure_dir(path.parent)
        try:
            os.mkdir(path, _DIR_MODE)
        except FileExistsError:
            return
        os.chmod(path, _DIR_MODE)  # regardless of umask
        fsync_dir(path.parent)


def _expected_digest(sha256_hex: object) -> bytes:
    try:
        return bytes.fromhex(sha256_hex)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return b""  # never equal to a digest


def _valid_id(blob_id: object) -> bool:
    return isinstance(blob_id, str) and _ID_RE.match(blob_id) is not None


def _scan_dirs(path: Path, name_len: int) -> list[Path]:
    try:
        with os.scandir(path) as entries:
            return sorted(
                Path(e.path) for e in entries
                if len(e.name) == name_len and e.is_dir(follow_symlinks=False)
                and all(c in "0123456789abcdef" for c in e.name)
            )
    except FileNotFoundError:
        return []
