"""Blobs in a local folder: the :class:`~storage.blobs.store.BlobStore` the gateway uses today.

Layout: ``root/tmp/<node>/<worker>/<id>.tmp`` while being written (the owner's ids quoted),
``root/<id[:2]>/<id[2:4]>/<id>`` once committed; files 0600, directories 0700; a file is fsynced before the rename
that commits it, its directory after.  The bytes are the
encrypted format of :mod:`storage.blobs.chunks`, written by :class:`~storage.blobs.writer.BlobWriter` and read by
:class:`~storage.blobs.reader.BlobReader` with ``pread``.
"""
from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path

from storage.blobs.chunks import DEFAULT_CHUNK_SIZE, check_chunk_size
from storage.blobs.reader import BlobReader
from storage.blobs.store import (BlobRef, BlobStore, Temporary, default_owner, new_blob_id, owned_by, owner_from_parts,
                                 owner_parts, valid_blob_id)
from storage.blobs.writer import BlobWriter, HashPool
from storage.errors import NotFound, ServiceUnavailable
from storage.fsio import fsync_dir, write_all
from storage.keyring import Keyring

_TMP_SUFFIX = ".tmp"
_FILE_MODE = 0o600
_DIR_MODE = 0o700


class FileSource:
    """A blob file opened for reading at offsets (``preadv``); NotFound when there is no such file."""

    def __init__(self, path: Path):
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise NotFound() from None
        try:
            self.size = os.fstat(self._fd).st_size
        except BaseException:
            self.close()
            raise

    def read_into(self, buf, offset: int) -> int:
        return os.preadv(self._fd, [buf], offset)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class TempFileSink:
    """A new blob as ``root/tmp/<id>.tmp`` (created exclusively, 0600), renamed into place on commit.

    ``folder_ready``: the creation of the final folder, started when the blob was (see
    :meth:`LocalBlobStore.create`); :meth:`commit` waits for it, and creates the folder itself when it failed.
    """

    def __init__(self, temp_path: Path, final_path: Path, folder_ready: Future | None = None):
        self._temp_path = temp_path
        self._final_path = final_path
        self._folder_ready = folder_ready
        self._committed = False
        self._fd: int | None = os.open(
            temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, _FILE_MODE)
        try:
            os.fchmod(self._fd, _FILE_MODE)
        except BaseException:
            self.abort()
            raise

    def write(self, data) -> None:
        write_all(self._fd, data)

    def finish(self) -> None:
        os.fsync(self._fd)
        self.close()

    def open_source(self) -> FileSource:
        return FileSource(self._final_path if self._committed else self._temp_path)

    def commit(self) -> None:
        ready, self._folder_ready = self._folder_ready, None
        if ready is None or ready.exception() is not None:  # exception() waits for it
            ensure_dir(self._final_path.parent)
        os.rename(self._temp_path, self._final_path)
        fsync_dir(self._final_path.parent)
        self._committed = True

    def abort(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._temp_path)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class LocalBlobStore(BlobStore):
    """Blobs as files under ``root``: ``root/tmp/<node>/<worker>/<id>.tmp`` while written,
    ``root/<id[:2]>/<id[2:4]>/<id>`` after.  A temporary's start time is its modification time.

    Large writes are hashed, and prefetched reads decrypted, on the store's own
    :class:`~storage.blobs.writer.HashPool`, shut down by :meth:`close`.

    A new blob's final folder (``<id[:2]>/<id[2:4]>``, 65,536 of them) is made on its I/O pool as soon as the blob is
    created, while its bytes arrive, and not in :meth:`~storage.blobs.writer.BlobWriter.commit`: on a young store
    almost every upload needs a new one, and creating it durably (``mkdir``, ``fsync`` of its parent, twice for a
    new first level) cost 1.6 ms of a 200 KB upload's 9 ms on this machine. The folders known to exist (made or
    seen by this process) are remembered, one bit each, so that an upload into one of them costs no hand-off.
    """

    def __init__(self, root: Path, keyring: Keyring, chunk_size: int = DEFAULT_CHUNK_SIZE, *, owner: str = "",
                 clock: Callable[[], float] = time.time):
        self.root = Path(root)
        self.keyring = keyring
        self.chunk_size = check_chunk_size(chunk_size)
        self.owner = owner or default_owner()
        self._clock = clock
        self._tmp = self.root / "tmp"
        parts = owner_parts(self.owner)
        if len(parts) != 2:
            raise ValueError("a store's owner is <node>/<worker>")
        self._own_tmp = self._tmp.joinpath(*parts)
        ensure_dir(self._tmp)
        self._hash_pool = HashPool()
        #: finishing blobs (the file's fsync) and making their final folders, off the caller's thread; as many
        #: threads as uploads may finish at once in a process, so none waits behind another's fsync
        self._io_pool = HashPool(workers=32, name="blob-io")
        self._folders_known = bytearray(65536 // 8)  # bit i: folder <i as 4 hex digits> exists (made or seen)
        self._folders_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalBlobStore(root={str(self.root)!r}, chunk_size={self.chunk_size}, owner={self.owner!r})"

    def create(self) -> BlobWriter:
        ensure_dir(self._own_tmp)
        blob_id = new_blob_id()
        final = self._final_path(blob_id)
        sink = TempFileSink(self._temp_path(blob_id), final, self._prepare_folder(blob_id, final.parent))
        return BlobWriter(blob_id, sink, self.keyring, self.chunk_size, self._hash_pool, self._io_pool)

    def _prepare_folder(self, blob_id: str, folder: Path) -> Future | None:
        """Start making ``folder`` (the final folder of ``blob_id``) on the pool, unless it is known to exist."""
        bucket = int(blob_id[:4], 16)
        if self._folders_known[bucket >> 3] & (1 << (bucket & 7)):
            return None

        def make() -> None:
            ensure_dir(folder)
            with self._folders_lock:  # a read-modify-write of a byte that other folders' bits share
                self._folders_known[bucket >> 3] |= 1 << (bucket & 7)

        return self._io_pool.submit(make)

    def open(self, ref: BlobRef, verify: bool = True) -> BlobReader:
        if not valid_blob_id(ref.blob_id):
            raise NotFound()
        return BlobReader(FileSource(self._final_path(ref.blob_id)), ref, self.keyring, verify, pool=self._hash_pool)

    def delete(self, blob_id: str) -> None:
        if not valid_blob_id(blob_id):
            return
        path = self._final_path(blob_id)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return
        fsync_dir(path.parent)

    def exists(self, blob_id: str) -> bool:
        return valid_blob_id(blob_id) and os.path.isfile(self._final_path(blob_id))

    def list_ids(self) -> Iterator[str]:
        for first in _scan_dirs(self.root, 2):
            for second in _scan_dirs(first, 2):
                with os.scandir(second) as entries:
                    names = sorted(e.name for e in entries if e.is_file(follow_symlinks=False))
                for name in names:
                    if valid_blob_id(name) and name[:2] == first.name and name[2:4] == second.name:
                        yield name

    def list_temporary(self, owner: str | None = None) -> Iterator[Temporary]:
        for path, tag in self._temp_files(owner):
            try:
                st = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode):
                yield Temporary(path.name[:-len(_TMP_SUFFIX)], tag, st.st_mtime)

    def sweep_temporary(self, *, owner: str | None, older_than: float) -> int:
        """Delete ``owner``'s temporary blobs not modified for ``older_than`` seconds; returns the count.

        ``older_than=0`` also removes blobs being written right now: use it only for the caller's own node when
        none of its workers writes (at start-up).  Leftovers of older versions (``tmp/<id>.tmp``, no owner) go
        only with ``owner=None``.
        """
        now = self._clock()
        removed = 0
        touched: set[Path] = set()
        for path, _ in self._temp_files(owner):
            try:
                st = os.stat(path, follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode) or now - st.st_mtime < older_than:
                    continue
                os.unlink(path)
            except FileNotFoundError:
                continue
            touched.add(path.parent)
            removed += 1
        for directory in touched:
            fsync_dir(directory)
        return removed

    def ping(self) -> None:
        if not (self.root.is_dir() and os.access(self.root, os.W_OK | os.X_OK)):
            raise ServiceUnavailable("the blob folder is not a writable directory")

    def close(self) -> None:
        self._hash_pool.close()
        self._io_pool.close()

    # -- internals -----------------------------------------------------------------------------------------

    def _temp_path(self, blob_id: str) -> Path:
        return self._own_tmp / f"{blob_id}{_TMP_SUFFIX}"

    def _temp_files(self, owner: str | None) -> Iterator[tuple[Path, str | None]]:
        """``(path, owner)`` of every temporary file that is ``owner``'s (see :func:`owned_by`)."""
        if owner is None:
            yield from ((p, None) for p in _scan(self._tmp, lambda e: e.is_file(follow_symlinks=False)))
        node_dirs = [self._tmp / owner_parts(owner)[0]] if owner is not None else _scan(self._tmp, _is_dir)
        for node_dir in node_dirs:
            for worker_dir in _scan(node_dir, _is_dir):
                tag = owner_from_parts(node_dir.name, worker_dir.name)
                if owned_by(tag, owner):
                    yield from ((p, tag) for p in _scan(worker_dir, lambda e: e.is_file(follow_symlinks=False)))

    def _final_path(self, blob_id: str) -> Path:
        return self.root / blob_id[:2] / blob_id[2:4] / blob_id


def ensure_dir(path: Path) -> None:
    """Create ``path`` and missing parents with mode 0700, fsyncing each parent that gained an entry."""
    if path.is_dir():
        return
    if path.parent != path:
        ensure_dir(path.parent)
    try:
        os.mkdir(path, _DIR_MODE)
    except FileExistsError:
        return
    os.chmod(path, _DIR_MODE)  # regardless of umask
    fsync_dir(path.parent)


def _is_dir(entry: os.DirEntry) -> bool:
    return entry.is_dir(follow_symlinks=False)


def _scan(path: Path, keep: Callable[[os.DirEntry], bool]) -> list[Path]:
    """The temporary files (``<id>.tmp``) or owner folders directly in ``path`` that ``keep`` accepts."""
    try:
        with os.scandir(path) as entries:
            return sorted(Path(e.path) for e in entries if keep(e) and (
                _is_dir(e) or (e.name.endswith(_TMP_SUFFIX) and valid_blob_id(e.name[:-len(_TMP_SUFFIX)]))))
    except (FileNotFoundError, NotADirectoryError):
        return []


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
