"""The PROXY header parser (gateway/proxyheader.py): what HAProxy sends (v1 text, v2 binary), what a broken or
hostile balancer could send, and the promise that the reader never consumes the SSH/TLS bytes behind a header."""
from __future__ import annotations

import ipaddress
import socket
import struct

import pytest

from gateway.proxyheader import V2_SIGNATURE, HeaderReader, MalformedHeader, ProxyPolicy, parse_v1, parse_v2

SSH = b"SSH-2.0-OpenSSH_9.2p1\r\n"


def v2(command: int = 1, fam: int = 0x11, src=("127.0.0.2", 40000), dst=("127.0.0.1", 2222), tlv: bytes = b"",
       version: int = 2) -> bytes:
    if fam == 0x11:
        addrs = struct.pack("!4s4sHH", socket.inet_aton(src[0]), socket.inet_aton(dst[0]), src[1], dst[1])
    elif fam == 0x21:
        addrs = struct.pack("!16s16sHH", ipaddress.IPv6Address(src[0]).packed, ipaddress.IPv6Address(dst[0]).packed,
                            src[1], dst[1])
    else:
        addrs = b""
    body = addrs + tlv
    return V2_SIGNATURE + struct.pack("!BBH", (version << 4) | command, fam, len(body)) + body


def read_all(data: bytes, step: int | None = None):
    """Feed ``data`` as a socket reader would: at most ``wanted()`` bytes at a time (or ``step``, overshooting)."""
    r = HeaderReader()
    pos = 0
    while pos < len(data):
        n = step or r.wanted()
        header = r.feed(data[pos:pos + n])
        pos += n
        if header is not None:
            return header, r.rest, data[pos:]
    return None, b"", b""


def test_v2_tcp4_from_haproxy_gives_the_client_and_leaves_ssh_bytes_unread():
    header, rest, unread = read_all(v2() + SSH)
    assert header.version == 2 and header.source == ("127.0.0.2", 40000) and header.destination == ("127.0.0.1", 2222)
    assert header.client(("10.0.0.5", 1)) == ("127.0.0.2", 40000)
    assert rest == b"" and unread == SSH  # reading only what is wanted never takes the SSH banner


def test_v2_tcp6_and_tlvs_are_read_and_tlvs_skipped():
    tlv = b"\x04\x00\x03abc"  # PP2_TYPE_NOOP-ish: any TLV is skipped
    header, _, unread = read_all(v2(fam=0x21, src=("2001:db8::7", 5000), dst=("2001:db8::1", 443), tlv=tlv) + SSH)
    assert header.source == ("2001:db8::7", 5000) and unread == SSH


def test_v2_local_keeps_the_balancers_own_address():
    header, _, unread = read_all(v2(command=0, fam=0x00) + SSH)
    assert header.source is None and header.client(("10.0.0.5", 3333)) == ("10.0.0.5", 3333) and unread == SSH


def test_v2_unspec_and_unix_keep_the_balancers_address():
    assert parse_v2(v2(fam=0x00)).source is None
    assert parse_v2(V2_SIGNATURE + struct.pack("!BBH", 0x21, 0x31, 216) + bytes(216)).source is None


def test_v1_tcp4_tcp6_unknown():
    assert parse_v1(b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\n").source == ("192.0.2.7", 56324)
    assert parse_v1(b"PROXY TCP6 2001:db8::7 2001:db8::1 1 2\r\n").source == ("2001:db8::7", 1)
    assert parse_v1(b"PROXY UNKNOWN\r\n").source is None
    assert parse_v1(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n").source is None


def test_v1_is_read_up_to_its_crlf_only():
    line = b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\n"
    header, rest, unread = read_all(line + SSH)
    assert header.source == ("192.0.2.7", 56324) and rest == b"" and unread == SSH
    header, rest, unread = read_all(b"PROXY UNKNOWN\r\n" + SSH)  # the shortest header of all
    assert header.source is None and unread == SSH


@pytest.mark.parametrize("step", [1, 3, 4096])
def test_any_chunking_gives_the_same_header_and_the_rest(step):
    for data in (v2() + SSH, b"PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\n" + SSH):
        header, rest, unread = read_all(data, step)
        assert header.source[0] in ("127.0.0.2", "192.0.2.7")
        assert rest + unread == SSH


@pytest.mark.parametrize("data", [
    SSH,                                               # a direct SSH client
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(20),  # a TLS ClientHello
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",           # one field too many
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 70000\r\n",         # port out of range
    b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",            # leading zero
    b"PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n",         # family mismatch
    b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
    b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY TCP4 \xff.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2" + b" " * 80 + b"\r\n",  # longer than 107 bytes
    b"PROXY " + b"x" * 200,                            # no CRLF within 107 bytes
    v2(version=1),                                     # wrong version nibble
    v2(command=2),                                     # unknown command
    v2(fam=0x12),                                      # UDP over IPv4
    V2_SIGNATURE + struct.pack("!BBH", 0x21, 0x11, 4) + bytes(4),  # address block too short
])
def test_garbage_is_refused(data):
    with pytest.raises(MalformedHeader):
        read_all(data, 4096)
    with pytest.raises(MalformedHeader):
        read_all(data)


def test_a_non_header_is_refused_on_its_first_byte():
    with pytest.raises(MalformedHeader):
        HeaderReader().feed(b"S")  # no waiting for a timeout on a direct client's bytes


def test_a_truncated_header_waits_and_the_length_bound_holds():
    r = HeaderReader()
    assert r.feed(v2()[:20]) is None and r.wanted() == len(v2()) - 20
    r = HeaderReader()
    big = V2_SIGNATURE + struct.pack("!BBH", 0x21, 0x11, 65535)
    assert r.feed(big) is None and r.wanted() == 65535  # never more than the v2 length field allows


def test_policy_expects_headers_only_from_balancers():
    p = ProxyPolicy.from_networks(["127.0.0.1/32", "10.0.0.0/24"])
    assert p.expects("127.0.0.1") and p.expects("10.0.0.77") and p.expects("::ffff:10.0.0.5")
    assert not p.expects("127.0.0.2") and not p.expects("192.0.2.7")
    assert not ProxyPolicy().expects("127.0.0.1")
