"""The SFTP front-end's request handler: the asyncssh ``SFTPServer`` that translates each SFTP request of a logged-in
connection into ``MailboxSession`` calls (run in worker threads, so database, disk and crypto never stall the event
loop), with the handles of open uploads (sequential writes, bounded reordering) and downloads (read-ahead), and
core errors into SFTP status codes through ``ERRORS``.
"""
from __future__ import annotations

import asyncio
import errno
import functools
import os
import stat as statmod
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import asyncssh
from asyncssh import SFTPAttrs, SFTPName

from gateway.core import path as vpath
from gateway.core.entry import Entry
from gateway.core.session import MailboxSession
from gateway.core.transfer import Download, Upload
from gateway.sftp.errors import to_sftp_error
from storage.errors import GatewayError, ServiceUnavailable, TooLarge, Unsupported

if TYPE_CHECKING:
    from gateway.sftp.server import SFTPFrontend, SSHConnection


#: seconds a CLOSE waits for its download's event to be durable (as long as the record's own callers wait)
RECORD_WAIT = 60.0


def _attrs(entry: Entry) -> SFTPAttrs:
    kind = statmod.S_IFDIR if entry.is_folder else statmod.S_IFREG
    mtime = int(entry.mtime)
    return SFTPAttrs(type=asyncssh.FILEXFER_TYPE_DIRECTORY if entry.is_folder else asyncssh.FILEXFER_TYPE_REGULAR,
                     size=entry.size, uid=0, gid=0, permissions=kind | entry.mode, atime=mtime, mtime=mtime,
                     nlink=1)


@functools.lru_cache(maxsize=64)
def _filemode(bits: int) -> str:
    return statmod.filemode(bits)


@functools.lru_cache(maxsize=4096)
def _when(minute: int, recent: bool) -> str:
    """The date column of ``ls -l``, formatted once per minute (documents delivered together share it)."""
    return time.strftime("%b %d %H:%M" if recent else "%b %d  %Y", time.gmtime(minute * 60))


def _longname(entry: Entry, now: float) -> bytes:
    mode = _filemode((statmod.S_IFDIR if entry.is_folder else statmod.S_IFREG) | entry.mode)
    when = _when(int(entry.mtime // 60), now - entry.mtime < 182 * 86400)
    return f"{mode}    1 pages    pages    {entry.size:>12} {when} {entry.name}".encode()


def _seek_data(size: int, offset: int, whence: int) -> int:
    """``lseek`` with SEEK_DATA / SEEK_HOLE over a document of ``size`` bytes: asyncssh answers the
    ``ranges@asyncssh.com`` extension it advertises (used by its client's ``get``) by seeking the open handle.
    Documents have no holes: all of ``[0, size)`` is data, the only hole is at the end."""
    if whence == os.SEEK_DATA:
        if offset >= size:
            raise OSError(errno.ENXIO, "no data after this offset")
        return offset
    if whence == os.SEEK_HOLE:
        return size
    raise asyncssh.SFTPOpUnsupported("documents are not seekable")


class _UploadHandle:
    __slots__ = ("upload", "expected", "pending", "pending_bytes", "buffer", "flushing", "failed")

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        raise asyncssh.SFTPPermissionDenied("this upload is not readable")

    def __init__(self, upload: Upload):
        self.upload = upload
        self.expected = 0                 # next offset to append
        self.pending: dict[int, bytes] = {}  # out-of-order writes waiting for their turn
        self.pending_bytes = 0
        self.buffer = bytearray()
        self.flushing: asyncio.Future | None = None
        self.failed: GatewayError | None = None


class _DownloadHandle:
    """Read-ahead over a core Download: the first window is decrypted in a worker thread as soon as the document
    is opened (while the answer to OPEN travels and the client sends its READs), then each next one while the
    client is sent the current one, so most SFTP reads are answered from memory without a thread hop. Reads are
    answered with views into the window (asyncssh copies them into its packet anyway): no copy of their own, and a
    read that straddles two windows copies only its own bytes."""

    WINDOW = 1024 * 1024

    __slots__ = ("download", "start", "data", "next_start", "next")

    def __init__(self, download: Download):
        self.download = download
        self.start = 0
        self.data = memoryview(b"")
        self.next_start = -1
        self.next: asyncio.Future | None = None

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return _seek_data(self.download.size, offset, whence)

    def read_ahead(self, fe: SFTPFrontend) -> _DownloadHandle:
        """Start decrypting the first window now."""
        if self.download.size:
            self.next_start = 0
            self.next = asyncio.get_running_loop().run_in_executor(fe.executor, self.download.fetch, 0, self.WINDOW)
        return self

    def _covers(self, offset: int, end: int) -> bool:
        return self.start <= offset and end <= self.start + len(self.data)

    async def read(self, fe: SFTPFrontend, offset: int, size: int) -> bytes | memoryview:
        d = self.download
        end = min(offset + size, d.size)
        if offset >= end:
            return b""
        piece = None
        if not self._covers(offset, end):
            if self.next is not None:
                # one reader, one thread at a time: the read-ahead finishes before anything else is fetched
                fut, self.next = self.next, None
                data = memoryview(await fut)
                head = self.data[offset - self.start:] if self.start <= offset < self.start + len(self.data) else None
                if head is not None and self.start + len(self.data) == self.next_start \
                        and end <= self.next_start + len(data):
                    piece = b"".join((head, data[:end - self.next_start]))  # straddles the two windows
                if self.next_start <= offset < self.next_start + len(data) or piece is not None:
                    self.start, self.data = self.next_start, data
            if piece is None and not self._covers(offset, end):
                self.start = offset
                self.data = memoryview(await fe.run(d.fetch, offset, max(size, self.WINDOW)))
        if piece is None:
            piece = self.data[offset - self.start:end - self.start]
        d.served(offset, len(piece))
        ahead = self.start + len(self.data)
        if self.next is None and ahead < d.size:
            self.next_start = ahead
            self.next = asyncio.get_running_loop().run_in_executor(fe.executor, d.fetch, ahead, self.WINDOW)
        return piece

    async def close(self, fe: SFTPFrontend, dropped: bool) -> None:
        if self.next is not None:
            try:
                await self.next
            except Exception:
                pass
            self.next = None
        self.data = memoryview(b"")
        # the event goes to the record's next group commit straight from here (no worker thread to wait in);
        # the answer to CLOSE still waits until it is durable
        recorded = self.download.close_later(dropped)
        if recorded is None:
            await fe.run(self.download.close, dropped)
            return
        try:
            await asyncio.wait_for(asyncio.wrap_future(recorded), RECORD_WAIT)
        except TimeoutError:
            raise to_sftp_error(ServiceUnavailable(f"the record did not commit within {RECORD_WAIT:g} s; "
                                                   "try again")) from None


class GatewaySFTPServer(asyncssh.SFTPServer):
    FLUSH_AT = 1024 * 1024

    def __init__(self, chan: asyncssh.SSHServerChannel, fe: SFTPFrontend):
        super().__init__(chan)
        self.fe = fe
        self._owner: SSHConnection = chan.get_connection().get_owner()
        self._dropped = False

    def connection_dropped(self) -> None:
        """asyncssh is about to close the handles still open because the connection went away (sshcompat), not
        because the client sent SSH_FXP_CLOSE: without this a cut upload would look like a finished one."""
        self._dropped = True

    @property
    def session(self) -> MailboxSession:
        session = self._owner.session
        if session is None:  # login refused after the SSH layer accepted: the connection is closing
            raise asyncssh.SFTPPermissionDenied("not logged in")
        return session

    async def _call(self, fn: Callable, *args):
        try:
            return await self.fe.run(fn, *args)
        except GatewayError as exc:
            raise to_sftp_error(exc) from None

    async def _core(self, operation: str, *args):
        """Call one MailboxSession operation in a worker thread, once the login is through."""
        if not self._owner.ready.is_set():
            await self._owner.ready.wait()
        return await self._call(getattr(self.session, operation), *args)

    def _known(self, operation: str, path: bytes):
        """The answer of one of the session's ``*_known`` operations (:mod:`gateway.core.known`): given from
        memory in the event loop, authorized by the core; None when the ordinary operation must be asked."""
        session = self._owner.session
        if session is None or not self._owner.ready.is_set():
            return None
        return getattr(session, operation)(path)

    # -- paths -----------------------------------------------------------------------------------------------
    def realpath(self, path: bytes) -> bytes:
        # purely lexical: the client keeps its own working directory and asks us to resolve it
        return vpath.normalize(path).encode("utf-8")

    async def stat(self, path: bytes) -> SFTPAttrs:
        return _attrs(self._known("stat_known", path) or await self._core("stat", path))

    lstat = stat

    async def setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        await self._core("setstat_allowed", path)

    lsetstat = setstat

    def _list_and_stat(self, path: bytes) -> tuple[list[Entry], Entry]:
        session = self.session
        return session.list(path), session.stat(path)

    async def scandir(self, path: bytes) -> AsyncIterator[SFTPName]:
        if not self._owner.ready.is_set():
            await self._owner.ready.wait()
        entries, here = await self._call(self._list_and_stat, path)  # one trip to a worker thread
        now = time.time()
        yield SFTPName(b".", _longname(Entry(".", True, mtime=here.mtime, mode=here.mode), now), _attrs(here))
        yield SFTPName(b"..", _longname(Entry("..", True, mode=0o550), now), _attrs(Entry("..", True, mode=0o550)))
        for e in entries:
            yield SFTPName(e.name.encode("utf-8"), _longname(e, now), _attrs(e))

    # -- files -----------------------------------------------------------------------------------------------
    async def open(self, path: bytes, pflags: int, attrs: SFTPAttrs):
        if pflags & asyncssh.FXF_WRITE:
            if pflags & (asyncssh.FXF_READ | asyncssh.FXF_APPEND):
                raise asyncssh.SFTPOpUnsupported("documents are written once, from the start, and not read back")
            upload = await self._core("open_upload", path)
            return _UploadHandle(upload)
        download = self._known("open_download_known", path) or await self._core("open_download", path)
        return _DownloadHandle(download).read_ahead(self.fe)

    async def read(self, file_obj, offset: int, size: int) -> bytes:
        if not isinstance(file_obj, _DownloadHandle):
            raise asyncssh.SFTPPermissionDenied("this upload is not readable")
        try:
            data = await file_obj.read(self.fe, offset, size)
        except GatewayError as exc:
            raise to_sftp_error(exc) from None
        if not data:
            raise asyncssh.SFTPEOFError()
        return data

    async def write(self, h, offset: int, data: bytes) -> int:
        if not isinstance(h, _UploadHandle):
            raise asyncssh.SFTPPermissionDenied("documents cannot be modified")
        if h.failed is not None:
            raise to_sftp_error(h.failed)
        if offset + len(data) > h.upload.max_size:
            await self._fail(h, TooLarge(f"document exceeds the maximum size of {h.upload.max_size} bytes"))
        if offset == h.expected:
            h.buffer += data
            h.expected += len(data)
            while h.pending and h.expected in h.pending:  # out-of-order writes that now fit
                chunk = h.pending.pop(h.expected)
                h.pending_bytes -= len(chunk)
                h.buffer += chunk
                h.expected += len(chunk)
        elif offset > h.expected and offset not in h.pending:
            if h.pending_bytes + len(data) > self.fe.config.sftp.write_window:
                await self._fail(h, Unsupported("writes too far out of order; documents are written sequentially"))
            h.pending[offset] = bytes(data)
            h.pending_bytes += len(data)
        elif offset < h.expected:
            await self._fail(h, Unsupported("rewriting already written bytes is not supported"))
        if len(h.buffer) >= self.FLUSH_AT:
            await self._flush(h)
        return len(data)

    async def _flush(self, h: _UploadHandle) -> None:
        await self._await_flush(h)
        if h.buffer:
            data, h.buffer = bytes(h.buffer), bytearray()
            h.flushing = asyncio.get_running_loop().run_in_executor(self.fe.executor, h.upload.append, data)

    async def _await_flush(self, h: _UploadHandle) -> None:
        """Wait for the write in progress; its failure fails the upload and is the client's answer."""
        if h.flushing is None:
            return
        fut, h.flushing = h.flushing, None
        try:
            await fut
        except GatewayError as exc:
            h.failed = exc
            raise to_sftp_error(exc) from None

    @staticmethod
    async def _settle_flush(h: _UploadHandle) -> None:
        """Wait for the write in progress whatever its outcome (the upload is being refused or abandoned)."""
        fut, h.flushing = h.flushing, None
        if fut is not None:
            try:
                await fut
            except Exception:  # noqa: BLE001 - the upload ends anyway; its own refusal is what counts
                pass

    async def _fail(self, h: _UploadHandle, err: GatewayError):
        h.failed = err
        h.buffer.clear()
        h.pending.clear()
        await self._settle_flush(h)
        await self.fe.run(h.upload.refuse, err)
        raise to_sftp_error(err)

    async def close(self, file_obj) -> None:
        dropped = self._dropped
        if isinstance(file_obj, _DownloadHandle):
            await file_obj.close(self.fe, dropped)
            return
        h: _UploadHandle = file_obj
        if h.failed is not None:
            if dropped:
                return
            raise to_sftp_error(h.failed)
        if dropped:
            await self._settle_flush(h)
            await self.fe.run(h.upload.abort, "connection lost before the upload was closed")
            return
        if h.pending:
            await self._fail(h, Unsupported("the upload has gaps (missing bytes)"))
        await self._await_flush(h)
        # the last bytes and the commit in one call: one hand-off to a worker thread per small document
        tail, h.buffer = bytes(h.buffer), bytearray()
        await self._call(h.upload.commit, tail)

    async def fstat(self, file_obj) -> SFTPAttrs:
        if isinstance(file_obj, _DownloadHandle):
            return _attrs(file_obj.download.entry)
        h: _UploadHandle = file_obj
        return SFTPAttrs(type=asyncssh.FILEXFER_TYPE_REGULAR, size=h.expected, permissions=statmod.S_IFREG | 0o640,
                         uid=0, gid=0, mtime=int(time.time()), atime=int(time.time()))

    async def fsetstat(self, file_obj, attrs: SFTPAttrs) -> None:
        return None  # times and modes of documents are the gateway's; accepted and ignored

    async def fsync(self, file_obj) -> None:
        return None  # a document is fsynced when it is committed

    # -- tree changes ----------------------------------------------------------------------------------------
    async def remove(self, path: bytes) -> None:
        await self._core("archive", path)

    async def mkdir(self, path: bytes, attrs: SFTPAttrs) -> None:
        await self._core("mkdir", path)

    async def rmdir(self, path: bytes) -> None:
        await self._core("rmdir", path)

    async def rename(self, oldpath: bytes, newpath: bytes) -> None:
        await self._core("rename", oldpath, newpath)

    posix_rename = rename

    def readlink(self, path: bytes) -> bytes:
        raise asyncssh.SFTPOpUnsupported("links are not supported")

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPOpUnsupported("links are not supported")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPOpUnsupported("links are not supported")

    def statvfs(self, path: bytes):
        raise asyncssh.SFTPOpUnsupported("statvfs is not supported")

    def fstatvfs(self, file_obj):
        raise asyncssh.SFTPOpUnsupported("statvfs is not supported")

    def exit(self) -> None:
        if self._owner.session is not None:
            self._owner.session.close()
