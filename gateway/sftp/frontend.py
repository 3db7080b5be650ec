"""The SFTP front-end (asyncssh).

It only translates: SSH authentication into one ``Mailbox.login``, SFTP requests into ``MailboxSession`` calls
(run in worker threads, so database, disk and crypto never stall the event loop), and core errors into SFTP
status codes through the one table ``ERRORS``. Permissions and the audit record live in the core.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import os
import stat as statmod
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import AsyncIterator, Callable

import asyncssh
from asyncssh import SFTPAttrs, SFTPName

from auth.attempts import ConnectionAttempts
from auth.authenticator import CertificateCredentials, PasswordCredentials, PublicKeyCredentials, TokenCredentials
from gateway.core import path as vpath
from gateway.sftp import sshcompat  # asyncssh adjustments, installed at import
from gateway.config import Config
from gateway.core.mailbox import Download, Entry, Mailbox, MailboxSession, Upload
from storage import errors
from storage.errors import AuthenticationFailed, GatewayError, TooLarge, Unsupported, lookup

log = logging.getLogger("instpages.sftp")

# What ssh-audit rates clean, plus what a named client cannot do without (ssh-audit "warn", never "fail"). Clients
# choose by their own preference order, so a modern client never picks an algorithm kept for an older one.
# Checked by tests/gateway/test_sftp_algorithms.py (ssh-audit) and test_sftp_clients.py (the clients).
KEX_ALGS = [  # post-quantum hybrids first, in OpenSSH 10's order
    "mlkem768x25519-sha256",          # OpenSSH >= 9.9, paramiko 5, current rclone
    *(["sntrup761x25519-sha512", "sntrup761x25519-sha512@openssh.com"]  # OpenSSH >= 9.0; asyncssh needs liboqs
      if b"sntrup761x25519-sha512" in sshcompat.kex_algorithms() else []),
    "curve25519-sha256",              # no post-quantum protection (warn), but OpenSSH 9.2 (sftp, lftp), curl's
                                      # libssh2 1.10 and rclone 1.60 (Debian 12) have nothing better
    "curve25519-sha256@libssh.org",   # its old name, the only one paramiko < 5 knows (Debian 12's 2.12)
]
ENCRYPTION_ALGS = ["chacha20-poly1305@openssh.com", "aes256-gcm@openssh.com", "aes128-gcm@openssh.com",
                   "aes256-ctr", "aes128-ctr"]  # CTR: curl's libssh2 1.10 has neither GCM nor ChaCha20
MAC_ALGS = ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com",
            "hmac-sha2-256"]  # encrypt-and-MAC (warn): curl's libssh2 1.10 has no encrypt-then-MAC
SIGNATURE_ALGS = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
                  "rsa-sha2-512", "rsa-sha2-256", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"]

# The one translation table: core error (storage.errors) -> SFTP status, looked up along the error's MRO. The
# message of the core error is sent as the reason. tests/test_errors.py checks that it answers every error.
ERRORS: dict[type[GatewayError], type[asyncssh.SFTPError]] = {
    errors.NotFound: asyncssh.SFTPNoSuchFile,
    errors.PermissionDenied: asyncssh.SFTPPermissionDenied,
    errors.InstitutionNotActive: asyncssh.SFTPPermissionDenied,
    errors.AlreadyExists: asyncssh.SFTPFileAlreadyExists,     # v3 clients see FX_FAILURE + the message
    errors.ContentRefused: asyncssh.SFTPFailure,
    errors.TooLarge: asyncssh.SFTPQuotaExceeded,
    errors.InvalidName: asyncssh.SFTPInvalidFilename,
    errors.Unsupported: asyncssh.SFTPOpUnsupported,
    errors.IntegrityFailure: asyncssh.SFTPFailure,
    errors.ServiceUnavailable: asyncssh.SFTPFailure,
    errors.AuthenticationFailed: asyncssh.SFTPPermissionDenied,
    errors.Throttled: asyncssh.SFTPPermissionDenied,
    errors.MalformedRequest: asyncssh.SFTPFailure,
    errors.ConfigError: asyncssh.SFTPFailure,
    errors.Conflict: asyncssh.SFTPFailure,
    errors.AdminError: asyncssh.SFTPFailure,
    errors.AdminNotFound: asyncssh.SFTPNoSuchFile,
    errors.AdminForbidden: asyncssh.SFTPPermissionDenied,
}


def to_sftp_error(exc: GatewayError) -> asyncssh.SFTPError:
    return (lookup(ERRORS, exc) or asyncssh.SFTPFailure)(exc.message)


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


class SFTPFrontend:
    """Owns the listener; one per server process."""

    def __init__(self, config: Config, mailbox: Mailbox, executor: Executor,
                 trusted_ca: dict[str, asyncssh.SSHKey]):
        self.config = config
        self.mailbox = mailbox
        self.executor = executor
        #: the SSH user CAs by fingerprint, read once by ``services.load_user_cas``
        self.trusted_ca = trusted_ca
        self.revoked: frozenset[str] = frozenset()
        self.reload_revoked()
        self._server: asyncssh.SSHAcceptor | None = None
        self.connections: set[asyncssh.SSHServerConnection] = set()

    def reload_revoked(self) -> int:
        """Read the revoked-keys files (again); returns how many keys are revoked."""
        revoked = set()
        for f in self.config.sftp.revoked_keys:
            try:
                for key in asyncssh.read_public_key_list(f):
                    revoked.add(key.get_fingerprint("sha256"))
            except (OSError, asyncssh.KeyImportError) as exc:
                log.error("cannot read revoked keys file %s: %s", f, exc)
        self.revoked = frozenset(revoked)
        return len(revoked)

    async def run(self, fn: Callable, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    @staticmethod
    def load_or_create_host_key(path: Path) -> asyncssh.SSHKey:
        if path.exists():
            return asyncssh.read_private_key(str(path))
        key = asyncssh.generate_private_key("ssh-ed25519", comment="instpages host key")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.export_private_key())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        path.with_name(path.name + ".pub").write_bytes(key.export_public_key())
        log.info("generated SSH host key %s (%s)", path, key.get_fingerprint("sha256"))
        return key

    async def start(self, listener=None) -> int:
        """Listen on ``sftp.host``/``port``, or on ``listener`` (a socket the supervisor opened for its workers)."""
        host_key = self.load_or_create_host_key(self.config.host_key_path)
        cfg = self.config.sftp
        where = {"sock": listener} if listener is not None else {"host": cfg.host, "port": cfg.port}
        self._server = await asyncssh.listen(
            **where, server_host_keys=[host_key],
            server_factory=lambda: _SSHConnection(self),
            sftp_factory=lambda chan: GatewaySFTPServer(chan, self),
            allow_scp=False, agent_forwarding=False, x11_forwarding=False, allow_pty=False,
            kex_algs=KEX_ALGS, encryption_algs=ENCRYPTION_ALGS, mac_algs=MAC_ALGS, compression_algs=["none"],
            # our own grace timer (_SSHConnection) drops a connection that has not logged in, on the record;
            # asyncssh's is a backstop only
            signature_algs=SIGNATURE_ALGS, login_timeout=cfg.login_timeout + 30, keepalive_interval=60,
            keepalive_count_max=3, server_version="InstitutionalPages", line_editor=False,
            encoding=None)
        return self.port

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    async def stop(self, grace: float = 5.0) -> None:
        """Stop listening, then close live connections: their open uploads are aborted, not committed."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        conns = list(self.connections)
        for conn in conns:
            conn.close()
        if conns:
            await asyncio.wait([asyncio.ensure_future(c.wait_closed()) for c in conns], timeout=grace)
            await asyncio.sleep(0.1)  # let SFTP session cleanups (upload aborts) run


class _SSHConnection(asyncssh.SSHServer):
    """Authentication for one connection: asyncssh proves possession (signatures, certificate validity); the core
    decides who that is (a certificate's principals included) and records the login. ``auth.attempts`` limits
    the tries and the time one connection gets."""

    def __init__(self, fe: SFTPFrontend):
        self.fe = fe
        cfg = fe.config.sftp
        self._attempts = ConnectionAttempts(cfg.max_auth_tries, cfg.login_timeout)
        self._grace: asyncio.TimerHandle | None = None
        self._dropped = False
        self.session: MailboxSession | None = None
        self._creds = None
        self._source = ""
        self._username = ""
        self._methods_tried: set[str] = set()
        self._failure_recorded = False  # the core already put this connection's failed login on the record
        self._refused = False           # source outside the account's networks, or banned
        self._kbd_stage = "password"
        self._kbd_password = ""
        self._kbd_number = 0
        self._conn: asyncssh.SSHServerConnection | None = None
        #: set once the core has accepted the login; asyncssh may open the SFTP channel before that
        self.ready = asyncio.Event()

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self.fe.connections.add(conn)
        peer = conn.get_extra_info("peername")
        self._source = peer[0] if peer else ""
        self._grace = asyncio.get_running_loop().call_later(
            self._attempts.grace_seconds, self._drop, self._attempts.too_slow, "Login grace time exceeded")

    def auth_refused(self, *, method_ran: bool) -> bool:
        """asyncssh is about to refuse an authentication request (sshcompat): True when this was the last try
        and the connection is dropped instead."""
        if not self._attempts.refused(method_ran=method_ran):
            return False
        self._drop(self._attempts.too_many, "Too many authentication failures")
        return True

    def _drop(self, reason: str, told: str) -> None:
        """Disconnect before login, with ``reason`` on the record (the client is told ``told``)."""
        if self._conn is None or self.session is not None or self._dropped:
            return
        self._dropped = True
        self._failure_recorded = True  # the disconnect is this connection's record, not also "no accepted key"
        methods = ",".join(sorted(self._methods_tried)) or "none"
        self.fe.executor.submit(self._record_disconnect, f"{reason}; methods tried: {methods}")
        self._conn.disconnect(asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, told)

    def _record_disconnect(self, reason: str) -> None:
        try:
            self.fe.mailbox.record_disconnect(self._username, "sftp", self._source, reason)
        except Exception:
            log.exception("could not record a dropped connection from %s", self._source)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fe.connections.discard(self._conn)
        if self._grace is not None:
            self._grace.cancel()
        if self.session is None and self._methods_tried and not self._failure_recorded:
            # keys offered but none accepted: one failed login on the record (password failures are recorded
            # by the core as they happen)
            methods = ",".join(sorted(self._methods_tried - {"password"}))
            if methods:
                loop = asyncio.get_event_loop()
                loop.run_in_executor(self.fe.executor, self.fe.mailbox.record_failed_login, self._username[:64],
                                     "sftp", self._source, methods, "no accepted key")

    async def begin_auth(self, username: str) -> bool:
        """Source networks are checked here, before any credential: a refused source makes every method fail
        without a password being looked at. (Bans and delays are the core's, at login: they never refuse keys.)"""
        self._username = username
        mailbox = self.fe.mailbox
        try:
            self._refused = not await self.fe.run(mailbox.source_allowed, username, self._source)
        except Exception:  # database trouble: refuse rather than let anyone in
            log.exception("source check failed")
            self._refused = True
            reason = "source check failed"
        else:
            reason = f"source address {self._source} is outside the account's networks"
        if self._refused:
            self._failure_recorded = True
            await self.fe.run(mailbox.record_failed_login, username[:64], "sftp", self._source, "any", reason)
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def is_revoked(self, key: asyncssh.SSHKey) -> bool:
        if key.get_fingerprint("sha256") in self.fe.revoked:
            self._methods_tried.add("revoked key")
            return True
        return False

    async def _failed(self, exc: AuthenticationFailed) -> bool:
        if exc.delay:
            await asyncio.sleep(exc.delay)  # slows guessing down without holding a worker thread
        return False

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        if self._refused:
            return False
        self._methods_tried.add("publickey")
        fp = key.get_fingerprint("sha256")
        if self.is_revoked(key):
            return False
        try:
            ok = await self.fe.run(self.fe.mailbox.accepts_public_key, username, fp)
        except Exception:  # database trouble: never a login
            log.exception("public key lookup failed")
            return False
        if ok:
            self._creds = PublicKeyCredentials(username, fp)
        return ok

    def validate_ca_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        if self._refused:
            return False
        self._methods_tried.add("certificate")
        return key.get_fingerprint("sha256") in self.fe.trusted_ca

    def certificate_accepted(self, username: str, cert) -> None:
        """asyncssh validated ``cert`` (sshcompat): the core decides what it may log in as, from its principals."""
        self._creds = CertificateCredentials(username, cert.signing_key.get_fingerprint("sha256"),
                                             principals=tuple(cert.principals))

    def password_auth_supported(self) -> bool:
        # with a second factor required, a password alone can never succeed: do not offer the method
        return self.fe.config.sftp.password_auth and self.fe.config.auth.second_factor == "off"

    async def validate_password(self, username: str, password: str) -> bool:
        if self._refused:
            return False
        self._methods_tried.add("password")
        return await self._login(PasswordCredentials(username, password))

    async def _login(self, creds) -> bool:
        try:
            self.session = await self.fe.run(
                lambda: self.fe.mailbox.login(creds, protocol="sftp", source=self._source))
        except AuthenticationFailed as exc:
            return await self._failed(exc)
        except GatewayError:  # e.g. the directory is unreachable: recorded by the core, never a login
            return False
        self.ready.set()
        return True

    # keyboard-interactive: the password, then the code of the person's token card with the number asked
    def kbdint_auth_supported(self) -> bool:
        return self.fe.config.sftp.password_auth

    def get_kbdint_challenge(self, username: str, lang: str, submethods: str):
        self._kbd_stage = "password"
        return "", "", "", [("Password: ", False)]

    async def validate_kbdint_response(self, username: str, responses):
        if self._refused or len(responses) != 1:
            return False
        self._methods_tried.add("password")
        if self._kbd_stage == "password":
            self._kbd_password = responses[0]
            if self.fe.config.auth.second_factor == "off":
                return await self._login(PasswordCredentials(username, responses[0]))
            self._kbd_number = await self.fe.run(self.fe.mailbox.token_challenge, username)
            self._kbd_stage = "code"
            return "", "", "", [(f"Code number {self._kbd_number} of your token: ", False)]
        password, self._kbd_password = self._kbd_password, ""
        self._kbd_stage = "password"
        return await self._login(TokenCredentials(username, password, self._kbd_number, responses[0]))

    async def auth_completed(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
        if self.session is not None:
            return
        creds = self._creds
        try:
            if creds is None:
                raise AuthenticationFailed("no credentials recorded")
            self.session = await self.fe.run(
                lambda: self.fe.mailbox.login(creds, protocol="sftp", source=self._source))
        except (AuthenticationFailed, GatewayError):
            self._failure_recorded = True
            if self._conn is not None:
                self._conn.close()
        finally:
            self.ready.set()


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

    async def read(self, fe: "SFTPFrontend", offset: int, size: int) -> bytes:
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

    async def close(self, fe: "SFTPFrontend", dropped: bool) -> None:
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
        self._owner: _SSHConnection = chan.get_connection().get_owner()
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
        await self._flush(h)
        await self._flush(h)  # wait for the last one
        await self._call(h.upload.commit)

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
