"""The PROXY protocol (HAProxy's, versions 1 and 2): the client's address sent by a TCP load balancer before the
first byte of SSH or TLS, so that source-network rules, the login throttle and the record see the real client.

Only connections from the balancers named in ``server.proxy_protocol_from`` (a :class:`ProxyPolicy`) are read
for a header, and each of them MUST start with one: a connection from anywhere else is a direct client, and a
header it sends is not believed (it is garbage to SSH or TLS and fails there). ``PROXY ... LOCAL`` (v2) and
``PROXY UNKNOWN`` (v1), the balancer's own health checks, keep the balancer's address.

The read is bounded: :data:`HEADER_TIMEOUT_SECONDS`, and at most 107 bytes (v1) or 16 + 65535 bytes (v2, its
length field). :class:`HeaderReader` parses incrementally and says how many bytes it may still read without
reading past the header (``wanted``), for a raw socket; :class:`HeaderFirst` is the asyncio protocol that reads
the header and then hands the transport to the real protocol (asyncssh's connection) under the client's address.
Spec: https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from auth.networks import Network, in_networks, parse_networks

log = logging.getLogger("instpages.proxy")

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
V1_MAX = 107          # the longest v1 line, CRLF included
V2_FIXED = 16         # signature, version/command, family/protocol, length
#: seconds a balancer has, after connecting, to send its whole header
HEADER_TIMEOUT_SECONDS = 5.0
_SHORTEST = 15        # len(b"PROXY UNKNOWN\r\n"); a v2 header is at least 16 bytes
_V2_ADDRESSES = {0x11: ("!4s4sHH", 12), 0x21: ("!16s16sHH", 36)}  # TCP over IPv4, TCP over IPv6


class MalformedHeader(ValueError):
    """What a balancer sent is no valid PROXY header: the connection is closed."""


@dataclass(frozen=True)
class ProxyHeader:
    """One parsed header. ``source`` is None for LOCAL / UNKNOWN (and address families without an IP)."""

    version: int
    source: tuple[str, int] | None = None
    destination: tuple[str, int] | None = None

    def client(self, peer: tuple) -> tuple[str, int]:
        """The address the connection is from: the header's source, or the balancer's own (``peer``)."""
        return self.source if self.source is not None else (peer[0], peer[1])


@dataclass(frozen=True)
class ProxyPolicy:
    """From which peers a PROXY header is expected (and required); empty = never."""

    balancers: tuple[Network, ...] = ()
    timeout: float = HEADER_TIMEOUT_SECONDS

    @classmethod
    def from_networks(cls, networks: Iterable[str], timeout: float = HEADER_TIMEOUT_SECONDS) -> ProxyPolicy:
        return cls(parse_networks(list(networks)), timeout)

    def expects(self, peer: str) -> bool:
        return bool(self.balancers) and in_networks(peer, self.balancers)


class HeaderReader:
    """Incremental parser for one connection: :meth:`feed` bytes until it returns the header (then ``rest`` holds
    what came after it); it raises :class:`MalformedHeader` as soon as the bytes cannot be a header."""

    def __init__(self) -> None:
        self._buf = b""
        self.rest = b""

    def wanted(self) -> int:
        """Bytes that certainly still belong to the header: reading at most this many never consumes the SSH or
        TLS bytes behind it."""
        buf = self._buf
        if len(buf) < _SHORTEST:
            return _SHORTEST - len(buf)
        if buf.startswith(V2_SIGNATURE):
            if len(buf) < V2_FIXED:
                return V2_FIXED - len(buf)
            return V2_FIXED + struct.unpack_from("!H", buf, 14)[0] - len(buf)
        return 1 if buf.endswith(b"\r") else 2  # v1: at least "\r\n" is still to come

    def feed(self, data: bytes) -> ProxyHeader | None:
        buf = self._buf + data
        self._buf = buf
        if not (V2_SIGNATURE.startswith(buf[:12]) or V1_PREFIX.startswith(buf[:6])):
            raise MalformedHeader("no PROXY header")
        if V2_SIGNATURE.startswith(buf[:12]):  # v2 (the first byte tells the two apart)
            if len(buf) < V2_FIXED:
                return None
            end = V2_FIXED + struct.unpack_from("!H", buf, 14)[0]
            if len(buf) < end:
                return None
            header = parse_v2(buf[:end])
        else:
            end = buf.find(b"\r\n", 0, V1_MAX) + 2
            if end < 2:
                if len(buf) >= V1_MAX:
                    raise MalformedHeader(f"PROXY v1 line longer than {V1_MAX} bytes")
                return None
            header = parse_v1(buf[:end])
        self.rest, self._buf = buf[end:], b""
        return header


def parse_v1(line: bytes) -> ProxyHeader:
    """``PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\\r\\n`` or ``PROXY UNKNOWN ...\\r\\n``."""
    if not line.startswith(V1_PREFIX) or not line.endswith(b"\r\n") or len(line) > V1_MAX:
        raise MalformedHeader("malformed PROXY v1 line")
    try:
        parts = line[:-2].decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise MalformedHeader("PROXY v1 line is not ASCII") from None
    if parts[1] == "UNKNOWN":
        return ProxyHeader(1)
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise MalformedHeader("malformed PROXY v1 line")
    kind = ipaddress.IPv4Address if parts[1] == "TCP4" else ipaddress.IPv6Address
    try:
        src, dst = str(kind(parts[2])), str(kind(parts[3]))
    except ValueError:
        raise MalformedHeader(f"PROXY v1 line: addresses are not {parts[1]}") from None
    return ProxyHeader(1, (src, _port(parts[4])), (dst, _port(parts[5])))


def _port(text: str) -> int:
    if not text.isdigit() or (len(text) > 1 and text[0] == "0") or int(text) > 65535:
        raise MalformedHeader(f"PROXY v1 line: bad port {text[:8]!r}")
    return int(text)


def parse_v2(data: bytes) -> ProxyHeader:
    """The binary header: signature, version 2 + command (LOCAL 0, PROXY 1), family + protocol, length, addresses
    (then TLVs, which are skipped)."""
    if len(data) < V2_FIXED or not data.startswith(V2_SIGNATURE):
        raise MalformedHeader("malformed PROXY v2 header")
    ver_cmd, fam, length = struct.unpack_from("!BBH", data, 12)
    if len(data) != V2_FIXED + length:
        raise MalformedHeader("PROXY v2 header: wrong length")
    if ver_cmd >> 4 != 2:
        raise MalformedHeader(f"PROXY header version {ver_cmd >> 4}, expected 2")
    command = ver_cmd & 0x0F
    if command == 0:  # LOCAL: the balancer speaking for itself (health checks)
        return ProxyHeader(2)
    if command != 1:
        raise MalformedHeader(f"PROXY v2 header: unknown command {command}")
    if fam in _V2_ADDRESSES:
        layout, size = _V2_ADDRESSES[fam]
        if length < size:
            raise MalformedHeader("PROXY v2 header: address block too short")
        src, dst, sport, dport = struct.unpack_from(layout, data, V2_FIXED)
        return ProxyHeader(2, (str(ipaddress.ip_address(src)), sport), (str(ipaddress.ip_address(dst)), dport))
    if fam == 0x00 or fam >> 4 == 3:  # UNSPEC, or a UNIX socket: no client address, keep the balancer's
        return ProxyHeader(2)
    raise MalformedHeader(f"PROXY v2 header: unsupported family/protocol 0x{fam:02x} (TCP only)")


class Relabelled:
    """A transport as it is, except that its peer is the client named in the PROXY header."""

    def __init__(self, transport: asyncio.Transport, peer: tuple[str, int]):
        self._transport, self._peer = transport, peer

    def get_extra_info(self, name: str, default=None):
        if name == "peername":
            return self._peer
        return self._transport.get_extra_info(name, default)

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class HeaderFirst(asyncio.Protocol):
    """The protocol of each accepted connection while its PROXY header is read: a connection from a balancer of
    ``policy`` must send a valid header within ``policy.timeout`` (else it is closed, logged); then, and at once
    for any other peer, the transport belongs to ``inner()`` (what came after the header included), its peer
    being the header's client. ``pending`` (shared by a listener) holds the connections still in their header."""

    def __init__(self, policy: ProxyPolicy, inner: Callable[[], asyncio.Protocol], pending: set | None = None):
        self.policy, self.inner = policy, inner
        self.pending = pending if pending is not None else set()
        self._transport: asyncio.Transport | None = None
        self._reader = HeaderReader()
        self._timer: asyncio.TimerHandle | None = None
        self._peer: tuple = ("", 0)

    def connection_made(self, transport) -> None:
        self._transport = transport
        self._peer = transport.get_extra_info("peername") or ("", 0)
        if not self.policy.expects(self._peer[0]):
            self._hand_over(None, b"")
            return
        self.pending.add(self)
        self._timer = asyncio.get_running_loop().call_later(
            self.policy.timeout, self.refuse, f"no complete PROXY header within {self.policy.timeout:g} s")

    def data_received(self, data: bytes) -> None:
        try:
            header = self._reader.feed(data)
        except MalformedHeader as exc:
            self.refuse(str(exc))
            return
        if header is not None:
            self._done()
            self._hand_over(header.client(self._peer), self._reader.rest)

    def eof_received(self) -> bool:
        self.refuse("closed before the end of its PROXY header")
        return False

    def connection_lost(self, exc) -> None:
        self._done()

    def refuse(self, why: str) -> None:
        if self._transport is not None and not self._transport.is_closing():
            log.warning("connection from balancer %s closed: %s", self._peer[0], why)
        self.abort()

    def abort(self) -> None:
        """Close the connection (still in its header) without a word: the server is stopping."""
        self._done()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()

    def _done(self) -> None:
        self.pending.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _hand_over(self, client: tuple[str, int] | None, rest: bytes) -> None:
        transport = self._transport
        protocol = self.inner()
        transport.set_protocol(protocol)
        protocol.connection_made(transport if client is None else Relabelled(transport, client))
        if rest and not transport.is_closing():
            protocol.data_received(rest)
