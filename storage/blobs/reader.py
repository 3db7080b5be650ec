"""Reading one encrypted blob: a seekable plaintext stream with range reads, authenticated chunk by chunk.

Only the chunks a read touches are fetched from the store's :class:`~storage.blobs.store.BlobSource` and
decrypted.  Any authentication failure, a bad header, an impossible size or a plaintext whose SHA-256 differs from
``BlobRef.sha256`` (checked when the blob is read in order to its end) raises
:class:`~storage.errors.IntegrityFailure`.  A reader streaming a blob in order can have the next range decrypted
(and hashed) ahead on the store's threads while it sends the current one (:meth:`BlobReader.prefetch`).
"""
from __future__ import annotations

import errno
import hashlib
import hmac
import io
from concurrent import futures
from concurrent.futures import Future

from cryptography.exceptions import InvalidTag

from storage.blobs import chunks
from storage.blobs.chunks import HEADER_SIZE, TAG_SIZE
from storage.blobs.store import BlobRef, BlobSource
from storage.errors import IntegrityFailure
from storage.fsio import ReadOnlyStream
from storage.keyring import Keyring

_SCRATCH_MAX = 16 * 1024 * 1024  # larger reads get a buffer of their own


class BlobReader(ReadOnlyStream):
    """Seekable, read-only plaintext view of one blob.

    Decrypts only the chunks a read touches, keeping the last decrypted chunk so that small sequential reads
    decrypt every chunk once.  When ``verify`` is true and the blob is read in order from offset 0 to the end
    (re-reading is allowed, skipping ahead is not), the SHA-256 of the plaintext is compared with
    ``BlobRef.sha256`` before the last bytes are returned.  Each reader has its own source and buffers and
    reads at explicit offsets, so any number of readers of one blob may be used in parallel threads (each by one thread
    at a time).  A :meth:`prefetch` in progress is that thread's too: every read and :meth:`close` waits for it
    first, so the reader's buffers are never used by two threads at once.
    """

    def __init__(self, source: BlobSource, ref: BlobRef, keyring: Keyring, verify: bool = True, pool=None):
        super().__init__()
        self._src = source
        self.ref = ref
        self._pos = 0
        self._pool = pool  # where prefetch() decrypts (anything with submit(fn, *args) -> Future); None: nowhere
        self._ahead: tuple[int, int, Future] | None = None  # (offset, length, decryption) of a prefetch()
        try:
            header = bytearray(HEADER_SIZE)
            if source.read_into(header, 0) != HEADER_SIZE:
                raise IntegrityFailure()
            self._header = header = bytes(header)
            self._chunk_size = cs = chunks.parse_header(header)
            self._nchunks, self.size = chunks.layout(source.size, cs)
            if self.size != ref.size:
                raise IntegrityFailure()
            self._aead = chunks.data_key(keyring, ref.blob_id, ref.key_id, ref.wrapped_key)
            biggest = min(cs, self.size)  # a document smaller than a chunk gets buffers of its own size
            self._ct = bytearray(biggest + TAG_SIZE)  # reused ciphertext buffer
            self._cache = bytearray(biggest)  # plaintext of chunk self._cache_index
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
            self._src = None
            source.close()
            raise

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
        self._join_ahead()
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
        data = self._join_ahead(self._pos, size)
        if data is None:
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
        data = self._join_ahead(offset, length)
        return self._read_bytes(offset, length) if data is None else data

    def prefetch(self, offset: int, length: int) -> bool:
        """Start decrypting ``[offset, offset + length)`` on the store's threads, so that the next read of exactly
        that range (``read_range(offset, length)``, or ``read(length)`` at ``offset``) finds it done: a stream
        sends one range while the next is decrypted.  The plaintext is authenticated and hashed as by that read
        (an IntegrityFailure is raised by it, never earlier, and the last bytes only come after the SHA-256
        check); a read of anything else discards the prefetched range.  Returns whether it was started (not when
        the reader has no threads, a prefetch is already under way, or there is nothing there)."""
        self._check_open()
        if self._pool is None or self._ahead is not None or self._failed or offset < 0 or length <= 0 \
                or offset >= self.size:
            return False
        self._ahead = (offset, length, self._pool.submit(self._read_bytes, offset, length))
        return True

    def close(self) -> None:
        if self._src is not None:
            self._join_ahead()
        src, self._src = self._src, None
        if src is not None:
            src.close()
            self._aead = None
            self._cache = self._ct = self._scratch = bytearray()
        super().close()

    def fileno(self) -> int:
        raise io.UnsupportedOperation("a blob reader has no plaintext file descriptor")

    # -- internals -----------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._src is None:
            raise ValueError("I/O operation on closed blob reader")

    def _join_ahead(self, offset: int = -1, length: int = 0) -> bytes | None:
        """Wait for the prefetch in progress; the bytes of ``[offset, offset + length)`` when it holds them, else
        None (nothing prefetched, or another range: dropped, its failure too -- a failed chunk fails the next read)."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        at, n, fut = ahead
        if fut.cancel():  # still queued behind other work: the caller reads it itself
            return None
        if not at <= offset < at + n:
            futures.wait((fut,))
            return None
        data = fut.result()  # what a read of this range raises, it raises
        start, stop = offset - at, offset - at + length
        if stop <= len(data) or at + len(data) >= self.size:
            return data[start:stop]  # all of it: the same object, no copy
        return None

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
        got = self._src.read_into(ct, chunks.chunk_offset(index, self._chunk_size))
        if got != n_ct:
            self._failed = True
            raise IntegrityFailure()  # the file shrank under us
        final = index == self._nchunks - 1
        try:
            self._aead.decrypt_into(chunks.nonce(index), ct, chunks.aad(self._header, index, final), dst)
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


def _expected_digest(sha256_hex: object) -> bytes:
    try:
        return bytes.fromhex(sha256_hex)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return b""  # never equal to a digest
