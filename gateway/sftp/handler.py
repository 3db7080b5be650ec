"""The SFTP front-end's request handler: the asyncssh ``SFTPServer`` that translates each SFTP request of a logged-in
connection into ``MailboxSession`` calls (run in worker threads, so database, disk and crypto never stall the event
loop), with the handles of open uploads (sequential writes, bounded reordering) and downloads (read-ahead), and
core errors into SFTP status codes through ``ERRORS``.
"""
from __future__ import annotations

import asyncio
import errno
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
from storage.errors import GatewayError, TooLarge, Unsupported

if TYPE_CHECKING:
    from gateway.sftp.server import SFTPFrontend, SSHConnection


def _attrs(entry: Entry) -> SFTPAttrs:
    kind = statmod.S_IFDIR if entry.is_folder else statmod.S_IFREG
    mtime = int(entry.mtime)
    return SFTPAttrs(type=asyncssh.FILEXFER_TYPE_DIRECTORY if entry.is_folder else asyncssh.FILEXFER_TYPE_REGULAR,
                     size=entry.size, uid=0, gid=0, permissions=kind | entry.mode, atime=mtime, mtime=mtime,
                     nlink=1)


def _longname(entry: Entry, now: float) -> bytes:
    mode = statmod.filemode((statmod.S_IFDIR if entry.is_folder else statmod.S_IFREG) | entry.mode)
    t = time.gmtime(entry.mtime)
    when = time.strftime("%b %d %H:%M" if now - entry.mtime < 182 * 86400 else "%b %d  %Y", t)
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
    """Read-ahead over a core Download: the next window is decrypted in a worker thread while the client is
    sent the current one, so most SFTP reads are answered from memory without a thread hop."""

    WINDOW = 1024 * 1024

    __slots__ = ("download", "start", "data", "next_start", "next")

    def __init__(self, download: Download):
        self.download = download
        self.start = 0
        self.data = b""
        self.next_start = -1
        self.next: asyncio.Future | None = None

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return _seek_data(self.download.size, offset, whence)

    def _covers(self, start: int, data: bytes, offset: int, end: int) -> bool:
        return start <= offset and end <= start + len(data)

    async def read(self, fe: SFTPFrontend, offset: int, size: int) -> bytes:
        d = self.download
        end = min(offset + size, d.size)
        if offset >= end:
            return b""
        if not self._covers(self.start, self.data, offset, end):
            if self.next is not None:
                # one reader, one thread at a time: the read-ahead finishes before anything else is fetched
                fut, self.next = self.next, None
                data = await fut
                if self.start <= offset < self.start + len(self.data) == self.next_start:
                    # the read straddles the window's end: keep its tail and append the read-ahead
                    self.data = self.data[offset - self.start:] + data
                    self.start = offset
                elif self.next_start <= offset < self.next_start + len(data):
                    self.start, self.data = self.next_start, data
            if not self._covers(self.start, self.data, offset, end):
                self.start = offset
                self.data = await fe.run(d.fetch, offset, max(size, self.WINDOW))
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
        await fe.run(self.download.close, dropped)


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

    # -- paths -----------------------------------------------------------------------------------------------
    def realpath(self, path: bytes) -> bytes:
        # purely lexical: the client keeps its own working directory and asks us to resolve it
        return vpath.normalize(path).encode("utf-8")

    async def stat(self, path: bytes) -> SFTPAttrs:
        return _attrs(await self._core("stat", path))

    lstat = stat

    async def setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        await self._core("setstat_allowed", path)

    lsetstat = setstat

    async def scandir(self, path: bytes) -> AsyncIterator[SFTPName]:
        entries = await self._core("list", path)
        now = time.time()
        here = await self._core("stat", path)
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
        return _DownloadHandle(await self._core("open_download", path))

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
        if h.flushing is not None:
            fut, h.flushing = h.flushing, None
            try:
                await fut
            except GatewayError as exc:
                h.failed = exc
                raise to_sftp_error(exc) from None
        if h.buffer:
            data, h.buffer = bytes(h.buffer), bytearray()
            h.flushing = asyncio.get_running_loop().run_in_executor(self.fe.executor, h.upload.append, data)

    async def _fail(self, h: _UploadHandle, err: GatewayError):
        h.failed = err
        h.buffer.clear()
        h.pending.clear()
        if h.flushing is not None:
            try:
                await h.flushing
            except Exception:
                pass
            h.flushing = None
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
            if h.flushing is not None:
                try:
                    await h.flushing
                except Exception:
                    pass
            await self.fe.run(h.upload.abort, "connection lost before the upload was closed")
            return
        if h.pending:
            await self._fail(h, Unsupported("the upload has gaps (missing bytes)"))
        if h.flushing is not None:  # wait for the write in progress
            fut, h.flushing = h.flushing, None
            try:
                await fut
            except GatewayError as exc:
                h.failed = exc
                raise to_sftp_error(exc) from None
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
