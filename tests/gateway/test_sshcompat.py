"""The asyncssh internals gateway/sftp/sshcompat.py relies on still have the shape it relies on.

Each test names one internal; when an asyncssh upgrade changes it, the test says which adjustment to revisit
instead of an SFTP test failing somewhere far from the cause. (The SFTP tests check the behaviour itself.)
"""
from __future__ import annotations

import inspect
import logging
import time

import asyncssh
import asyncssh.connection
import asyncssh.kex
import asyncssh.sftp as sftp_module
from asyncssh.connection import SSHConnection, SSHServerConnection
from asyncssh.packet import PacketDecodeError, SSHPacket, String, UInt64
from asyncssh.public_key import SSHOpenSSHCertificate

from gateway.sftp import sshcompat


def _source(obj) -> str:
    """``inspect.getsource``; for a class it parses the module with ``ast``, and CPython 3.11 can fail that parse
    ("AST constructor recursion depth mismatch", a SystemError) while another thread of the process parses too
    (3.11's tracebacks do, to place their carets). Tried up to three times."""
    for attempt in range(3):
        try:
            return inspect.getsource(obj)
        except SystemError:
            if attempt == 2:
                raise
            time.sleep(0.1)
    raise AssertionError("unreachable")


def _params(fn) -> list[str]:
    return list(inspect.signature(fn, follow_wrapped=False).parameters)


ASYNCSSH_HANDLER = sshcompat.GatewaySFTPHandler.__bases__[0]


def test_the_adjustments_are_installed_once_and_replace_asyncssh_s_own():
    sshcompat.install()  # a second call changes nothing
    assert SSHServerConnection._instpages_compat is True
    assert sftp_module.SFTPServerHandler is sshcompat.GatewaySFTPHandler
    assert ASYNCSSH_HANDLER.__module__ == "asyncssh.sftp" and ASYNCSSH_HANDLER.__name__ == "SFTPServerHandler"
    validate = SSHServerConnection._validate_openssh_certificate
    failure = SSHServerConnection.send_userauth_failure
    assert validate.__wrapped__.__module__ == failure.__wrapped__.__module__ == "asyncssh.connection"
    assert not hasattr(validate.__wrapped__, "__wrapped__")  # wrapped once, not once per install()


def test_certificate_validation_is_an_async_method_taking_the_username_and_the_certificate():
    original = SSHServerConnection._validate_openssh_certificate.__wrapped__
    assert inspect.iscoroutinefunction(original)
    assert _params(original) == ["self", "username", "cert"]
    # the hook reads the certified key, the principals and the signing CA's key of what it is given
    assert "self.key = key" in _source(asyncssh.SSHCertificate.__init__)
    source = _source(SSHOpenSSHCertificate.__init__)
    assert "self.principals = principals" in source and "self.signing_key = signing_key" in source
    assert callable(SSHServerConnection.get_owner)


def test_a_refused_userauth_request_is_sent_by_send_userauth_failure_which_clears_auth():
    original = SSHServerConnection.send_userauth_failure.__wrapped__
    assert original is SSHConnection.__dict__["send_userauth_failure"]
    assert _params(original) == ["self", "partial_success"]
    assert "self._auth = None" in _source(original)
    # _auth holds the running method's handler: set when a method starts, None in a fresh connection
    module = _source(asyncssh.connection)
    assert "self._auth = lookup_server_auth(" in module
    assert "self._auth: Optional[Auth] = None" in _source(SSHConnection.__init__)


def test_sftp_requests_are_dispatched_through_a_class_table_of_coroutines_by_packet_type():
    table = ASYNCSSH_HANDLER._packet_handlers
    assert isinstance(table, dict) and sftp_module.FXP_WRITE in table
    assert ASYNCSSH_HANDLER._handler_names[sftp_module.FXP_WRITE] == "FXP_WRITE"
    for kind, handler in table.items():
        assert isinstance(kind, (int, bytes)), kind
        assert inspect.iscoroutinefunction(handler), kind
        assert _params(handler) == ["self", "packet"], kind
    # our table covers every request asyncssh's does
    assert set(sshcompat.GatewaySFTPHandler._packet_handlers) == set(table)
    assert "self._packet_handlers.get(" in _source(ASYNCSSH_HANDLER)


def test_a_write_request_is_handle_offset_data_and_read_with_the_packet_getters():
    write = ASYNCSSH_HANDLER._packet_handlers[sftp_module.FXP_WRITE]
    source = _source(write)
    assert source.index("get_string()") < source.index("get_uint64()") < source.rindex("get_string()")
    assert "packet.check_end()" in source  # what refused the padded writes
    packet = SSHPacket(String(b"h") + UInt64(7) + String(b"data") + b"\0\0")
    assert (packet.get_string(), packet.get_uint64(), packet.get_string()) == (b"h", 7, b"data")
    assert issubclass(PacketDecodeError, Exception)


def test_a_dropped_session_closes_its_open_handles_in_cleanup_through_the_server():
    cleanup = ASYNCSSH_HANDLER.__dict__["_cleanup"]
    assert inspect.iscoroutinefunction(cleanup)
    assert _params(cleanup) == ["self", "exc"]
    source = _source(cleanup)
    assert "self._file_handles" in source and "self._server.close(file_obj)" in source
    assert "self._server = server" in _source(ASYNCSSH_HANDLER.__init__)
    # a client's SSH_FXP_CLOSE goes elsewhere, so it is never taken for a drop
    assert "self._server.close(file_obj)" in _source(ASYNCSSH_HANDLER._process_close)
    assert "self._cleanup(" in _source(sftp_module.SFTPHandler.recv_packets)


def test_asyncssh_creates_the_sftp_session_by_its_module_level_name():
    source = _source(sftp_module._sftp_handler)
    assert "handler = SFTPServerHandler(sftp_server, reader, writer, sftp_version)" in source
    assert _params(ASYNCSSH_HANDLER.__init__) == ["self", "server", "reader", "writer", "sftp_version"]


def test_the_key_exchange_algorithms_are_listed_as_bytes():
    algs = sshcompat.kex_algorithms()
    assert algs == asyncssh.kex.get_kex_algs()
    assert b"curve25519-sha256" in algs and all(isinstance(a, bytes) for a in algs)


def test_send_packet_puts_an_ignore_packet_before_each_packet_through_send_packet_itself():
    source = _source(SSHConnection.send_packet)
    assert "self.send_packet(MSG_IGNORE, String(b''))" in source
    assert SSHServerConnection.send_packet.__wrapped__ is SSHConnection.send_packet
    assert "_enc_alg_sc" in _source(SSHConnection)  # the negotiated server-to-client cipher's name
def test_channel_data_leaves_through_flush_send_buf_and_each_packet_through_send():
    from asyncssh.channel import SSHChannel

    flush = SSHChannel._flush_send_buf.__wrapped__
    send = SSHServerConnection._send.__wrapped__
    assert flush.__module__ == "asyncssh.channel" and send.__module__ == "asyncssh.connection"
    assert _params(flush) == ["self"] and _params(send) == ["self", "data"]
    assert "self._conn" in _source(SSHChannel.send_packet)  # a channel's packets go to its connection
    assert "self._send(" in _source(SSHConnection.send_packet)  # ... and reach the socket through _send
    assert SSHServerConnection._instpages_held is None  # nothing held between flushes


def test_the_gcm_cipher_with_its_kept_key_schedule_seals_exactly_as_asyncssh_s_own():
    import os

    from asyncssh.crypto.cipher import GCMCipher

    original = GCMCipher.encrypt_and_sign.__wrapped__
    assert original.__module__ == "asyncssh.crypto.cipher" and _params(original) == ["self", "header", "data"]
    for name, key_size in (("aes128-gcm", 16), ("aes256-gcm", 32)):
        key, iv = os.urandom(key_size), os.urandom(12)
        ours, theirs = GCMCipher(name, key, iv), GCMCipher(name, key, iv)
        for size in (0, 35, 32768 + 20, 1000):  # the invocation counter moves on per packet in both
            header, data = os.urandom(4), os.urandom(size)
            assert ours.encrypt_and_sign(header, data) == original(theirs, header, data)


def test_logging_looks_at_the_level_first_and_still_logs_packets_at_debug_level_3(caplog):
    from asyncssh.logging import SSHLogger, logger as asyncssh_logger
    from asyncssh.packet import SSHPacketLogger

    assert _params(SSHPacketLogger._log_packet.__wrapped__) == ["self", "msg", "pkttype", "pktid", "packet", "note"]
    assert "self._debug_level >= 3" in _source(SSHLogger.packet)  # what the level check first stands in for

    class Handler(SSHPacketLogger):
        _handler_names = {94: "MSG_CHANNEL_DATA"}
        logger = asyncssh_logger.get_child("compat-test")

    level = SSHLogger._debug_level
    try:
        with caplog.at_level(logging.DEBUG, logger="asyncssh"):
            SSHLogger.set_debug_level(2)
            Handler().log_sent_packet(94, 7, b"\x00\x01")
            assert not [r for r in caplog.records if "MSG_CHANNEL_DATA" in r.getMessage()]
            SSHLogger.set_debug_level(3)
            Handler().log_sent_packet(94, 7, b"\x00\x01")
            [logged] = [r.getMessage() for r in caplog.records if "MSG_CHANNEL_DATA" in r.getMessage()]
            assert logged.startswith("[pktid=7] Sent MSG_CHANNEL_DATA (94), 2 bytes\n  00000000: 00 01 ")
        with caplog.at_level(logging.INFO, logger="asyncssh"):
            caplog.clear()
            Handler.logger.debug1("not shown %s", b"x")
            Handler.logger.info("shown %s", b"bytes as text")
            assert [r.getMessage().rpartition("] ")[2] for r in caplog.records] == ["shown bytes as text"]
    finally:
        SSHLogger.set_debug_level(level)
