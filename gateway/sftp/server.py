"""The SFTP front-end's SSH server: the listener (:class:`SFTPFrontend`: host key, the algorithms offered, revoked
keys, start and stop) and the authentication of each connection (:class:`SSHConnection`: the asyncssh callbacks,
each login through the core's one ``Mailbox.login``, with the tries and the login time one connection gets).
Who may log in is the core's answer; this module only asks.
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path

import asyncssh

from auth.attempts import ConnectionAttempts
from auth.authenticator import CertificateCredentials, PasswordCredentials, PublicKeyCredentials, TokenCredentials
from gateway.config import Config
from gateway.core.mailbox import Mailbox
from gateway.core.session import MailboxSession
from gateway.proxyheader import HeaderFirst, ProxyPolicy
from gateway.sftp import sshcompat  # asyncssh adjustments, installed at import
from gateway.sftp.handler import GatewaySFTPServer
from storage.errors import AuthenticationFailed, GatewayError

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
        self._server: asyncssh.SSHAcceptor | asyncio.Server | None = None
        #: balancers whose connections begin with a PROXY header, and those connections still in their header
        self.proxy = ProxyPolicy.from_networks(config.server.proxy_protocol_from)
        self._in_header: set[HeaderFirst] = set()
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
        options = {
            "server_host_keys": [host_key], "server_factory": lambda: SSHConnection(self),
            "sftp_factory": lambda chan: GatewaySFTPServer(chan, self),
            "allow_scp": False, "agent_forwarding": False, "x11_forwarding": False, "allow_pty": False,
            "kex_algs": KEX_ALGS, "encryption_algs": ENCRYPTION_ALGS, "mac_algs": MAC_ALGS, "compression_algs": ["none"],
            "signature_algs": SIGNATURE_ALGS,
            # our own grace timer (SSHConnection) drops a connection that has not logged in, on the record;
            # asyncssh's is a backstop only
            "login_timeout": cfg.login_timeout + 30, "keepalive_interval": 60, "keepalive_count_max": 3,
            "server_version": "InstitutionalPages", "line_editor": False, "encoding": None}
        if self.proxy.balancers:
            self._server = await self._listen_behind_balancers(where, options)
        else:
            self._server = await asyncssh.listen(**where, **options)
        return self.port

    async def _listen_behind_balancers(self, where: dict, options: dict) -> asyncio.Server:
        """The listener when ``server.proxy_protocol_from`` names balancers: each accepted connection first goes
        through :class:`HeaderFirst` (a balancer's PROXY header read in the event loop, bounded in time and
        length; anyone else's connection handed over untouched), then to asyncssh under the client's address --
        which ``SSHConnection`` takes as the source of everything."""
        loop = asyncio.get_running_loop()
        ssh_options = await asyncssh.SSHServerConnectionOptions.construct(proxy_command=None, **options)

        def connection() -> asyncssh.SSHServerConnection:
            return asyncssh.SSHServerConnection(loop, ssh_options)

        return await loop.create_server(lambda: HeaderFirst(self.proxy, connection, self._in_header), **where,
                                        backlog=100)

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
        for waiting in list(self._in_header):
            waiting.abort()
        conns = list(self.connections)
        for conn in conns:
            conn.close()
        if conns:
            await asyncio.wait([asyncio.ensure_future(c.wait_closed()) for c in conns], timeout=grace)
            await asyncio.sleep(0.1)  # let SFTP session cleanups (upload aborts) run


class SSHConnection(asyncssh.SSHServer):
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
