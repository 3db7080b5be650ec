"""Two gateway nodes behind a real HAProxy in TCP mode (issue 11, part 6, the load balancer): HAProxy sends PROXY v2
headers (``send-proxy-v2``) from its own address 127.0.0.5, the nodes read them only from there
(``server.proxy_protocol_from``), and the real client -- 127.0.0.2 or 127.0.0.3, other loopback addresses -- is the
source of every rule and of the record.

- HAProxy's health checks (TCP on SFTP, ``/readyz`` over TLS on HTTPS, both with a PROXY LOCAL header) see both
  nodes up; SFTP uploads and WebDAV downloads through HAProxy reach both nodes, and the record shows the client's
  address, never the balancer's;
- an account limited to 127.0.0.2/32 logs in through HAProxy from 127.0.0.2, over SFTP and WebDAV, and is refused
  from 127.0.0.3 (on the record, with 127.0.0.3);
- a direct client sending a forged PROXY header that claims 127.0.0.2 is not believed: the header is garbage to
  SSH and TLS, nobody logs in, and a direct client without a header is served as itself;
- a v1 text header (``send-proxy``) works the same on both ports;
- a connection from the balancer's address with no header, or a truncated one, is closed within the bound (5 s),
  logged, and the nodes serve everyone else meanwhile; one with no header at all but SSH/TLS bytes is closed at
  once.
"""
from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import struct
import subprocess
import time

import asyncssh
import pytest

from gateway.proxyheader import HEADER_TIMEOUT_SECONDS, V2_SIGNATURE
from gateway.web.tls import ensure_self_signed
from tests.cluster import BALANCER, cluster, haproxy
from tests.conftest import CENTRE_A, SFTP_OPTS, STAFF_PASSWORD, fresh_database, ssh_env
from tests.pdfsamples import minimal_pdf
from tests.people import logins

CLIENT, OTHER = "127.0.0.2", "127.0.0.3"


@pytest.fixture(scope="module")
def front(tmp_path_factory, pg_server_url, s3_server):
    """Nodes a and b of two workers each (one TLS pair for both, as behind one name) and HAProxy in front;
    ``front.lb``."""
    root = tmp_path_factory.mktemp("proxy")
    cert, key = root / "tls" / "server.pem", root / "tls" / "server.key"
    ensure_self_signed(cert, key, ["127.0.0.1"])
    # two worker processes per node: the listeners the supervisor opened read PROXY headers too
    env = {"INSTPAGES_SERVER_PROXY_PROTOCOL_FROM": f"{BALANCER}/32", "INSTPAGES_SERVER_WORKERS": "2",
           "INSTPAGES_WEBDAV_TLS_CERT": str(cert), "INSTPAGES_WEBDAV_TLS_KEY": str(key)}
    with fresh_database(pg_server_url) as url, cluster(root, url, s3_server, env=env) as c, haproxy(root, c.nodes) as lb:
        c.lb, c.cert = lb, cert
        yield c


def sftp(c, user: str, commands: str, *, port: int, src: str) -> subprocess.CompletedProcess:
    """OpenSSH ``sftp -b -`` as ``user`` connecting from ``src`` to 127.0.0.1:``port``."""
    cmd = ["sftp", *SFTP_OPTS, "-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey", "-o",
           f"BindAddress={src}", "-i", str(c.keys[user]), "-P", str(port), "-b", "-", f"{user}@127.0.0.1"]
    return subprocess.run(cmd, input=commands, capture_output=True, text=True, env=ssh_env(), timeout=120,
                          start_new_session=True, check=False)


def curl(c, path: str, *, port: int, src: str, user: str) -> tuple[int, bytes]:
    """curl GET of ``/dav`` + ``path`` from ``src`` with ``user``'s password; (status, body)."""
    p = subprocess.run(["curl", "-sS", "--max-time", "30", "--interface", src, "--cacert", str(c.cert),
                        "-u", f"{user}:{STAFF_PASSWORD}", "-o", "-", "-w", "\n%{http_code}",
                        f"https://127.0.0.1:{port}/dav{path}"], capture_output=True, timeout=60, check=False)
    body, _, code = p.stdout.rpartition(b"\n")
    return (int(code) if code.strip().isdigit() else 0), body


def events(c, action: str, actor: str, since: int) -> list:
    return [e for e in c.audit(action=action, limit=500) if e.actor == actor and e.id > since]


def last_id(c) -> int:
    newest = c.audit(limit=1)
    return newest[0].id if newest else 0


def forged_header(claimed: str, port: int) -> bytes:
    addrs = struct.pack("!4s4sHH", socket.inet_aton(claimed), socket.inet_aton("127.0.0.1"), 40000, port)
    return V2_SIGNATURE + struct.pack("!BBH", 0x21, 0x11, len(addrs)) + addrs


def connect_from(src: str, port: int) -> socket.socket:
    s = socket.socket()
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def closed_after(s: socket.socket, limit: float) -> float | None:
    """Seconds until the server closed ``s`` (EOF or reset), None if it was still open after ``limit``."""
    start = time.monotonic()
    s.settimeout(limit)
    try:
        while s.recv(4096):
            pass
    except TimeoutError:
        return None
    except OSError:
        pass
    return time.monotonic() - start


# -- 1 ----------------------------------------------------------------------------------------------------------
def test_through_haproxy_both_nodes_serve_and_the_record_shows_the_client_not_the_balancer(front, tmp_path):
    lb, mark = front.lb, last_id(front)
    # HAProxy's own health checks carry a PROXY LOCAL header: TCP on SFTP, GET /readyz over TLS on HTTPS
    assert lb.wait_up() == {"sftp/gw-a": "UP", "sftp/gw-b": "UP", "https/gw-a": "UP", "https/gw-b": "UP"}

    doc = minimal_pdf()
    (tmp_path / "up.pdf").write_bytes(doc)
    for i in (1, 2):  # round robin: one connection to each node
        r = sftp(front, "podmi", f"-mkdir /{CENTRE_A}/lb\nput {tmp_path / 'up.pdf'} /{CENTRE_A}/lb/lb-{i}.pdf\n",
                 port=lb.port, src=CLIENT)
        assert r.returncode == 0, r.stderr
    owners = {front.documents(f"lb-{i}.pdf")[0][1].split("/")[0] for i in (1, 2)}
    assert owners == {"node-a", "node-b"}
    for i in (1, 2, 1, 2):  # and two downloads through each node
        status, body = curl(front, f"/{CENTRE_A}/lb/lb-{i}.pdf", port=lb.https_port, src=CLIENT, user="staff-a")
        assert status == 200 and body == doc, status

    uploads = events(front, "upload", "podmi", mark)
    deadline = time.monotonic() + 10  # a download is recorded once its last byte went out
    while len(downloads := events(front, "download", "staff-a", mark)) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(uploads) == 2 and len(downloads) == 4
    assert {(e.protocol, e.source) for e in uploads + downloads} == {("sftp", CLIENT), ("webdav", CLIENT)}
    assert {e.source for e in logins(front, "podmi") + logins(front, "staff-a") if e.id > mark} == {CLIENT}
    assert not [e for e in front.audit(limit=500) if e.id > mark and e.source == BALANCER]


# -- 2 ----------------------------------------------------------------------------------------------------------
def test_an_account_limited_to_the_clients_address_logs_in_from_it_through_haproxy_and_not_from_another(front):
    lb, mark = front.lb, last_id(front)
    front.admin.set_account_networks("podmi2", f"{CLIENT}/32")
    front.admin.set_account_networks("staff-ab", f"{CLIENT}/32")
    for _ in range(2):  # both nodes
        r = sftp(front, "podmi2", "ls /\n", port=lb.port, src=CLIENT)
        assert r.returncode == 0, r.stderr
        assert curl(front, "/", port=lb.https_port, src=CLIENT, user="staff-ab")[0] in (200, 207)
        r = sftp(front, "podmi2", "ls /\n", port=lb.port, src=OTHER)
        assert r.returncode != 0
        assert curl(front, "/", port=lb.https_port, src=OTHER, user="staff-ab")[0] == 401

    for actor in ("podmi2", "staff-ab"):
        ok = [e for e in logins(front, actor, "ok") if e.id > mark]
        failed = [e for e in logins(front, actor, "failed") if e.id > mark]
        assert ok and {e.source for e in ok} == {CLIENT}, actor
        assert failed and {e.source for e in failed} == {OTHER}, actor
        assert all(f"source address {OTHER} is outside the account's networks" in e.detail for e in failed)


# -- 3 ----------------------------------------------------------------------------------------------------------
def test_a_forged_proxy_header_from_a_direct_client_is_not_believed(front):
    a, mark = front["a"], last_id(front)
    front.admin.set_account_networks("podmi2", f"{CLIENT}/32")

    async def forged_ssh():
        s = connect_from(OTHER, a.port)
        s.sendall(forged_header(CLIENT, a.port))
        with pytest.raises((asyncssh.Error, OSError)):
            async with asyncssh.connect(sock=s, username="podmi2", known_hosts=None, agent_path=None,
                                        client_keys=[str(front.keys["podmi2"])], preferred_auth="publickey",
                                        connect_timeout=20):
                pass

    asyncio.run(forged_ssh())

    s = connect_from(OTHER, a.https_port)
    s.sendall(forged_header(CLIENT, a.https_port))
    ctx = ssl.create_default_context(cafile=str(front.cert))
    with pytest.raises((ssl.SSLError, OSError)), ctx.wrap_socket(s, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert tls.recv(100) == b""
        raise ConnectionResetError("closed")  # (an empty answer is a failure too)

    assert not [e for e in logins(front, "podmi2") if e.id > mark and e.outcome == "ok"]
    # without a header the same direct client is served, as itself
    r = sftp(front, "podmi", "ls /\n", port=a.port, src=OTHER)
    assert r.returncode == 0, r.stderr
    assert curl(front, "/", port=a.https_port, src=OTHER, user="staff-a")[0] in (200, 207)
    assert {e.source for e in logins(front, "podmi") + logins(front, "staff-a") if e.id > mark} == {OTHER}


# -- 4 ----------------------------------------------------------------------------------------------------------
def test_a_balancer_connection_without_a_valid_header_is_closed_within_the_bound_and_others_are_served(front):
    a, b, lb = front["a"], front["b"], front.lb
    half_header = forged_header(CLIENT, 1)[:20]
    stuck = [(connect_from(BALANCER, node.port if i % 2 else node.https_port), what)
             for node in (a, b) for i in range(20) for what in (b"", half_header)]
    started = time.monotonic()
    for s, what in stuck:
        if what:
            s.sendall(what)
    # an SSH client or a TLS client hello from the balancer's address, without a header: closed at once
    for port, hello in ((a.port, b"SSH-2.0-OpenSSH_9.2\r\n"), (a.https_port, b"\x16\x03\x01\x00\xa0\x01\x00")):
        s = connect_from(BALANCER, port)
        s.sendall(hello)
        assert (closed_after(s, 3) or 99) < 2
        s.close()

    # meanwhile the nodes serve everyone else, through HAProxy
    r = sftp(front, "podmi", "ls /\n", port=lb.port, src=CLIENT)
    assert r.returncode == 0, r.stderr
    assert curl(front, "/", port=lb.https_port, src=CLIENT, user="staff-a")[0] in (200, 207)
    assert time.monotonic() - started < HEADER_TIMEOUT_SECONDS  # while all the stuck ones were still open

    bound = HEADER_TIMEOUT_SECONDS + 3
    for s, _ in stuck:
        took = closed_after(s, max(0.1, started + bound - time.monotonic()))
        assert took is not None, "a connection from the balancer without a header was kept open"
        s.close()
    assert time.monotonic() - started >= HEADER_TIMEOUT_SECONDS - 0.5
    for node in (a, b):
        text = node.text()
        assert f"connection from balancer {BALANCER} closed: no complete PROXY header within" in text
    assert lb.wait_up()["sftp/gw-a"] == "UP"


# -- 5 ----------------------------------------------------------------------------------------------------------
def test_a_v1_text_header_from_the_balancer_is_read_on_both_ports(front):
    """HAProxy's ``send-proxy`` (v1): the line names the client, here one from another network altogether."""
    a, mark, far = front["a"], last_id(front), "192.0.2.44"

    async def ssh_after_v1():
        s = connect_from(BALANCER, a.port)
        s.sendall(f"PROXY TCP4 {far} 127.0.0.1 50000 {a.port}\r\n".encode())
        async with asyncssh.connect(sock=s, username="podmi", known_hosts=None, agent_path=None,
                                    client_keys=[str(front.keys["podmi"])], preferred_auth="publickey") as conn:
            sftp_client = await conn.start_sftp_client()
            assert CENTRE_A in await sftp_client.listdir("/")
            sftp_client.exit()

    asyncio.run(ssh_after_v1())

    s = connect_from(BALANCER, a.https_port)
    s.sendall(f"PROXY TCP4 {far} 127.0.0.1 50001 {a.https_port}\r\n".encode())
    ctx = ssl.create_default_context(cafile=str(front.cert))
    with ctx.wrap_socket(s, server_hostname="127.0.0.1") as tls:
        auth = base64.b64encode(f"staff-a:{STAFF_PASSWORD}".encode()).decode()
        tls.sendall(f"PROPFIND /dav/ HTTP/1.1\r\nHost: gw\r\nDepth: 0\r\nAuthorization: Basic {auth}\r\n"
                    f"Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
        answer = b"".join(iter(lambda: tls.recv(65536), b""))
    assert answer.startswith(b"HTTP/1.1 207"), answer[:200]
    assert [e.source for e in logins(front, "podmi") + logins(front, "staff-a") if e.id > mark] == [far, far]
