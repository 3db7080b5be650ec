"""Writing one new encrypted blob: chunking, AES-GCM and the plaintext's SHA-256, into a store's sink.

A large ``write()`` hashes its data on the store's hashing pool while the calling thread encrypts and writes it
(hashlib, AES-GCM and ``os.write`` all release the GIL): SHA-256 costs about as much as AES-GCM plus the write
together, so with a spare core this nearly halves the wall time of an upload.  One hand-off per call, joined
before the call returns, so the caller's buffer is free again and hash updates stay in order.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from storage.blobs import chunks
from storage.blobs.chunks import TAG_SIZE
from storage.blobs.reader import BlobReader
from storage.blobs.store import BlobRef, BlobSink
from storage.keyring import Keyring

ASYNC_HASH_MIN = 512 * 1024  # smaller writes are hashed on the calling thread


class HashPool:
    """The threads a store's writers hash on (or, named otherwise, send parts of uploads on); owned by the store,
    closed with it.

    Threads start on the first hand-off; after :meth:`close` (which waits for running hashes) the next hand-off
    starts them again, so a store used after closing still works.
    """

    def __init__(self, workers: int | None = None, name: str = "blob-sha256"):
        self._workers = workers or os.cpu_count() or 2
        self._name = name
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def submit(self, fn, *args) -> Future:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix=self._name)
            return self._executor.submit(fn, *args)

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)


class BlobWriter:
    """Sequential writer of one new blob; returned by :meth:`BlobStore.create`.

    ``write()`` as often as needed, then ``finish()`` (the blob is complete but still temporary: invisible to
    ``open()``/``list_ids()``), optionally ``open_reader()`` to validate the content, then ``commit()`` -- or
    ``abort()``.  Used as a context manager, leaving the block without ``commit()`` aborts.
    One thread at a time.
    """

    def __init__(self, blob_id: str, sink: BlobSink, keyring: Keyring, chunk_size: int,
                 hash_pool: HashPool | None = None, io_pool: HashPool | None = None):
        self.blob_id = blob_id
        self.size = 0
        self._sink = sink
        self._keyring = keyring
        self._hash_pool = hash_pool
        self._io_pool = io_pool
        self._chunk_size = chunk_size
        self._header = chunks.header(chunk_size)
        self._hash = hashlib.sha256()  # of the plaintext, fed by write()
        self._index = 0
        self._buf = bytearray(chunk_size)  # plaintext of the chunk being filled (not yet encrypted)
        self._fill = 0
        self._out = bytearray(chunk_size + TAG_SIZE)  # reused ciphertext buffer
        self._ref: BlobRef | None = None
        self._state = "writing"  # writing -> finished -> committed | aborted
        try:
            self._aead, self._key_id, self._wrapped_key = chunks.new_data_key(keyring, blob_id)
            sink.write(self._header)
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
        hashing = None
        if total >= ASYNC_HASH_MIN and self._hash_pool is not None:
            hashing = self._hash_pool.submit(self._hash.update, view)
        else:
            self._hash.update(view)
        try:
            self._encrypt(view)
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

    def _encrypt(self, view: memoryview) -> None:
        """Feed ``view`` through the chunk buffer, writing every chunk known not to be the final one."""
        cs = self._chunk_size
        total = len(view)
        pos = 0
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

    def _emit(self, plaintext, final: bool) -> None:
        n = len(plaintext)
        out = self._out if n == self._chunk_size else memoryview(self._out)[:n + TAG_SIZE]
        self._aead.encrypt_into(chunks.nonce(self._index), plaintext,
                                chunks.aad(self._header, self._index, final), out)
        self._sink.write(out)
        self._index += 1

    def finish(self) -> BlobRef:
        """Encrypt the final chunk, flush and make it durable.  The blob stays temporary until :meth:`commit`."""
        if self._state == "finished":
            return self._ref
        if self._state != "writing":
            raise ValueError(f"finish() on a {self._state} blob")
        try:
            self._emit(memoryview(self._buf)[:self._fill], final=True)
            self._sink.finish()
        except BaseException:
            self._fail()
            raise
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

    def digest(self) -> str:
        """Hex SHA-256 of the plaintext written so far: once the last ``write()`` returned, that of the whole blob,
        known before :meth:`finish` (every write is hashed as it comes; finish only encrypts the last chunk)."""
        return self._hash.hexdigest()

    def finish_async(self) -> Future:
        """:meth:`finish` on the store's I/O pool, so that the caller's own work (a database read, the content
        check of a copy it kept) runs while the last chunk is encrypted and the file made durable; the future
        gives the :class:`BlobRef` or raises what :meth:`finish` raised. Until it is done the caller must not
        touch the writer. A store without an I/O pool finishes here, before returning."""
        if self._io_pool is not None:
            return self._io_pool.submit(self.finish)
        done: Future = Future()
        try:
            done.set_result(self.finish())
        except Exception as exc:  # noqa: BLE001 - handed to whoever asks the future
            done.set_exception(exc)
        return done

    @property
    def ref(self) -> BlobRef | None:
        """The :class:`BlobRef` once finished, else None."""
        return self._ref

    def open_reader(self, verify: bool = False) -> BlobReader:
        """After :meth:`finish`: a reader over the (still temporary) blob, so the caller can validate it.

        Every chunk is still authenticated by AES-GCM (index, final flag and size included), so the reader
        returns exactly the bytes written.  Re-checking the SHA-256 that was computed from those very bytes a
        moment ago would only cost a second pass of hashing over the upload, hence ``verify=False`` here.
        """
        if self._state not in ("finished", "committed"):
            raise ValueError(f"open_reader() on a {self._state} blob")
        return BlobReader(self._sink.open_source(), self._ref, self._keyring, verify)

    def commit(self) -> None:
        """After :meth:`finish`: make the blob visible to ``open()``, durably."""
        if self._state == "committed":
            return
        if self._state != "finished":
            raise ValueError(f"commit() on a {self._state} blob")
        self._sink.commit()
        self._state = "committed"

    def abort(self) -> None:
        """Discard the blob.  Idempotent; a no-op after :meth:`commit`."""
        if self._state in ("committed", "aborted"):
            return
        self._state = "aborted"
        self._buf = self._out = bytearray()
        self._sink.abort()

    def _fail(self) -> None:
        # After a failed write the chunk sequence is unknown; the blob can only be aborted.
        self._state = "failed"

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.abort()

    def __del__(self) -> None:
        # Never delete here (the sweep removes leftovers); only do not leak what the sink holds open.
        with contextlib.suppress(Exception):
            self._sink.close()
