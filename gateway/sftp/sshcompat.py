"""The few places where the SFTP front-end needs more of asyncssh than its public API gives, kept in one module.

Each adjustment is installed once, at import, and is a no-op for connections whose owner does not ask for it:

- OpenSSH user certificates: asyncssh validates a certificate without showing the server the key inside it or
  the certificate itself. The connection's owner is asked whether the certified key is revoked
  (``owner.is_revoked(key)``) and, once asyncssh accepted the certificate, is handed it
  (``owner.certificate_accepted(username, cert)``), so that the core sees its principals and decides.
- Authentication rounds: every refused userauth request is reported to the owner
  (``owner.auth_refused(method_ran) -> bool``); when it answers True the owner has dropped the connection and
  no failure message is sent (OpenSSH's MaxAuthTries).
- SFTP writes from pkg/sftp before 1.13.6 (Debian 12's rclone 1.60, whose concurrent writes send the first
  packets with padding after the data): OpenSSH's sftp-server ignores bytes after a request's last field, asyncssh
  answered SSH_FX_BAD_MESSAGE. A write's trailing bytes are ignored here too; nothing else is relaxed.
- Unexpected exceptions in an SFTP request handler (asyncssh's own or ours) are logged with their traceback and
  answered with a generic failure, instead of sending the exception's text to the client unlogged.
- A dropped connection: asyncssh closes every open handle through the SFTP server's ``close``, as if the client
  had sent SSH_FXP_CLOSE, so a cut upload would look like a finished one. Before it does, the SFTP server is told
  (``server.connection_dropped()``); its ``close`` then knows the handle was not closed by the client.
- SSH_MSG_IGNORE: asyncssh sends an empty IGNORE packet before every packet after the key exchange, a defence of
  CBC mode (whose next IV is the last ciphertext block, RFC 4251 9.3.1) that costs one more encryption and
  packet per answer. OpenSSH does not send them; none of the ciphers offered here (AES-GCM, ChaCha20-Poly1305,
  AES-CTR) is CBC, and should one with "cbc" in its name be negotiated, the IGNORE packets are sent as before.
- Sending: asyncssh writes every SSH packet to the socket on its own, so a 255 KiB SFTP read answer cost 16
  ``send`` calls (with the IGNORE packets above). The packets one channel flush
  produces are now written with one call (the same bytes, in the same order, at the same moment: only batched);
  and an AES-GCM cipher keeps its key schedule (``AESGCM``) instead of building it again for every packet. Both
  are for server connections and change nothing on the wire (tests/gateway/sftp reads the bytes back).
- Logging: asyncssh formats a log line's text before its logger looks at the level; the level is looked at first
  (what is logged is unchanged).
- Which key exchange algorithms this asyncssh build has (:func:`kex_algorithms`; the post-quantum ones depend on
  liboqs).

tests/gateway/test_sshcompat.py checks that every asyncssh internal named here still has the shape relied on.
"""
from __future__ import annotations

import functools
import logging

import asyncssh
import asyncssh.kex
import asyncssh.sftp as _sftp
from asyncssh.channel import SSHChannel
from asyncssh.connection import SSHServerConnection
from asyncssh.constants import MSG_IGNORE, MSG_KEX_LAST
from asyncssh.crypto.cipher import GCMCipher
from asyncssh.logging import SSHLogger
from asyncssh.packet import PacketDecodeError, SSHPacket, SSHPacketLogger, String, UInt64
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger("instpages.sftp")


def _install_certificate_hooks() -> None:
    original = SSHServerConnection._validate_openssh_certificate

    @functools.wraps(original)  # keeps asyncssh's own at __wrapped__ (tests/gateway/test_sshcompat.py)
    async def checked(self, username, cert):
        owner = self.get_owner()
        is_revoked = getattr(owner, "is_revoked", None)
        if is_revoked is not None and is_revoked(cert.key):
            return None
        key = await original(self, username, cert)
        accepted = getattr(owner, "certificate_accepted", None)
        if key is not None and accepted is not None:
            try:
                accepted(username, cert)
            except Exception:  # never a login on a certificate the owner could not take in
                log.exception("certificate check failed")
                return None
        return key

    SSHServerConnection._validate_openssh_certificate = checked


def _install_auth_round_hook() -> None:
    original = SSHServerConnection.send_userauth_failure

    @functools.wraps(original)
    def send_userauth_failure(self, partial_success: bool) -> None:
        # asyncssh sets _auth to the method's handler while it runs; None means no offered method ran
        # (the "none" request clients start with, or a method the server does not offer)
        refused = getattr(self.get_owner(), "auth_refused", None)
        if refused is not None and refused(method_ran=getattr(self, "_auth", None) is not None):
            return
        original(self, partial_success)

    SSHServerConnection.send_userauth_failure = send_userauth_failure


async def _write_ignoring_padding(self, packet: SSHPacket):
    handle = packet.get_string()
    offset = packet.get_uint64()
    data = packet.get_string()
    return await _ORIGINAL_WRITE(self, SSHPacket(String(handle) + UInt64(offset) + String(data)))


def _install_send_batching() -> None:
    flush, send = SSHChannel._flush_send_buf, SSHServerConnection._send

    @functools.wraps(send)
    def batched_send(self, data: bytes) -> None:
        held = self._instpages_held
        if held is None:
            send(self, data)
        else:
            held.append(data)

    @functools.wraps(flush)
    def batched_flush(self) -> None:
        conn = self._conn
        if not isinstance(conn, SSHServerConnection) or conn._instpages_held is not None:
            flush(self)
            return
        conn._instpages_held = held = []
        try:
            flush(self)  # every packet it sends (data, the IGNORE before it, a rekey's KEXINIT...) lands in held
        finally:
            conn._instpages_held = None
            if held:
                send(conn, held[0] if len(held) == 1 else b"".join(held))

    SSHServerConnection._instpages_held = None
    SSHServerConnection._send = batched_send
    SSHChannel._flush_send_buf = batched_flush


def _install_gcm_key_schedule() -> None:
    original = GCMCipher.encrypt_and_sign

    @functools.wraps(original)
    def encrypt_and_sign(self, header: bytes, data: bytes) -> tuple[bytes, bytes]:
        aead = self.__dict__.get("_instpages_aead")
        if aead is None:  # one cipher object per direction and key: a rekey makes a new one
            aead = self._instpages_aead = AESGCM(self._key)
        sealed = aead.encrypt(self._iv, data, header)
        self._update_iv()
        return header + sealed[:-16], sealed[-16:]

    GCMCipher.encrypt_and_sign = encrypt_and_sign


_EXPECTED = (asyncssh.SFTPError, PacketDecodeError, NotImplementedError)


def _logged(name: str, handler):
    async def run(self, packet):
        try:
            return await handler(self, packet)
        except _EXPECTED:
            raise
        except OSError:
            log.exception("SFTP %s failed", name)
            raise  # asyncssh answers with the status of its errno
        except Exception:
            log.exception("SFTP %s failed unexpectedly", name)
            raise asyncssh.SFTPFailure("internal error; the gateway's log has the details") from None

    return run


_ORIGINAL_WRITE = _sftp.SFTPServerHandler._packet_handlers[_sftp.FXP_WRITE]


class GatewaySFTPHandler(_sftp.SFTPServerHandler):
    """asyncssh's SFTP server session, with the write parsing, error logging and drop notice described above."""

    async def _cleanup(self, exc):
        # asyncssh's _cleanup closes the open handles through the server's close(): say why first
        dropped = getattr(self._server, "connection_dropped", None)
        if dropped is not None:
            dropped()
        await super()._cleanup(exc)

    _packet_handlers = {
        kind: _logged(kind.decode() if isinstance(kind, bytes) else _sftp.SFTPServerHandler._handler_names.get(
            kind, str(kind)), _write_ignoring_padding if kind == _sftp.FXP_WRITE else handler)
        for kind, handler in _sftp.SFTPServerHandler._packet_handlers.items()
    }


def _install_no_cbc_ignore() -> None:
    original = SSHServerConnection.send_packet

    @functools.wraps(original)
    def send_packet(self, pkttype: int, *args: bytes, handler=None) -> None:
        if self.__dict__.get("_instpages_sending"):
            if pkttype == MSG_IGNORE and b"cbc" not in self._enc_alg_sc:
                return  # the one asyncssh puts before the packet being sent: not needed without CBC
            return original(self, pkttype, *args, handler=handler)
        if pkttype <= MSG_KEX_LAST:
            return original(self, pkttype, *args, handler=handler)
        self._instpages_sending = True
        try:
            return original(self, pkttype, *args, handler=handler)
        finally:
            self._instpages_sending = False

    SSHServerConnection.send_packet = send_packet


def _install_quiet_logging() -> None:
    """asyncssh formats every packet's log line (its name, its byte count) and converts every log call's arguments
    before its logger looks at the level: about a tenth of an SFTP server's busy time in a run of small downloads
    (bench/results/2026-11-30d/profiles). The level is looked at first now; what is logged at each level is
    unchanged (packets at debug level 3, as before)."""
    packet_log = SSHPacketLogger._log_packet

    @functools.wraps(packet_log)
    def _log_packet(self, msg, pkttype, pktid, packet, note) -> None:
        logger = self.logger
        if logger._debug_level >= 3 and logger.isEnabledFor(logging.DEBUG):
            packet_log(self, msg, pkttype, pktid, packet, note)

    plain_log = SSHLogger.log

    @functools.wraps(plain_log)
    def log(self, level: int, msg, *args, **kwargs) -> None:
        if self.isEnabledFor(level):
            plain_log(self, level, msg, *args, **kwargs)

    SSHPacketLogger._log_packet = _log_packet
    SSHLogger.log = log


def kex_algorithms() -> list[bytes]:
    """The key exchange algorithms this asyncssh build can do."""
    return asyncssh.kex.get_kex_algs()


def install() -> None:
    if getattr(SSHServerConnection, "_instpages_compat", False):
        return
    _install_certificate_hooks()
    _install_auth_round_hook()
    _install_no_cbc_ignore()
    _install_send_batching()
    _install_gcm_key_schedule()
    _install_quiet_logging()
    # asyncssh creates the session handler by this module-level name when an SFTP subsystem starts
    _sftp.SFTPServerHandler = GatewaySFTPHandler
    SSHServerConnection._instpages_compat = True


install()
