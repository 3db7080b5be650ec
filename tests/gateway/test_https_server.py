"""The HTTPS port as a server (issue 11, part 1): TLS handshakes in parallel, request bodies streamed to storage
as they arrive, ``Expect: 100-continue`` answered only once the body is wanted, and ``/healthz`` / ``/readyz``
for load balancers. In-process gateways on 127.0.0.1, real clients (curl, Python's ssl client).
"""
from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from types import SimpleNamespace

import pytest

from tests.conftest import CENTRE_A, STAFF_PASSWORD
from tests.machinecert import add_machine
from tests.pdfsamples import big_pdf
from tests.rawhttp import read_response, request, tls_connect

MB = 1024 * 1024


def curl_url(port: int, path: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sk", "--max-time", "60", "-o", "-", "-w", "\n%{http_code}", *args,
                           f"https://127.0.0.1:{port}{path}"], capture_output=True, timeout=120)


def code_of(p: subprocess.CompletedProcess) -> int:
    return int(p.stdout.rpartition(b"\n")[2] or 0)


def tmp_bytes(gw) -> int:
    total = 0
    for p in (gw.data_dir / "blobs" / "tmp").rglob("*.tmp"):  # tmp/<node>/<worker>/<id>.tmp
        try:
            total += p.stat().st_size
        except FileNotFoundError:
            pass
    return total


@pytest.fixture
def gw(make_gateway):
    return make_gateway()


# -- /healthz and /readyz -------------------------------------------------------------------------------------
def test_healthz_and_readyz_answer_without_login_and_reveal_nothing(world):
    before = len(world.audit(limit=500))
    for path in ("/healthz", "/readyz"):
        p = curl_url(world.dav_port, path, "-i")
        head, _, body = p.stdout.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert body.rpartition(b"\n")[0] == b"ok\n"
        assert b"Set-Cookie" not in head and b"WWW-Authenticate" not in head
        assert b"cheroot" not in head.lower() and b"python" not in head.lower()
        h = subprocess.run(["curl", "-sk", "-I", f"https://127.0.0.1:{world.dav_port}{path}"], capture_output=True,
                           timeout=30)
        assert h.stdout.startswith(b"HTTP/1.1 200 ") and b"Content-Length: 3" in h.stdout
        assert code_of(curl_url(world.dav_port, path, "-X", "POST")) == 405
    assert len(world.audit(limit=500)) == before, "a health probe went on the record"


def test_readyz_fails_while_the_blob_store_is_unreachable(gw):
    blobs = gw.data_dir / "blobs"
    away = gw.data_dir / "blobs-away"
    assert code_of(curl_url(gw.dav_port, "/readyz")) == 200
    blobs.rename(away)
    try:
        time.sleep(1.1)  # a verdict is reused for a second
        p = curl_url(gw.dav_port, "/readyz")
        assert code_of(p) == 503
        body = p.stdout.rpartition(b"\n")[0]
        assert body == b"not ready\n"  # no path, no error text
        assert code_of(curl_url(gw.dav_port, "/healthz")) == 200  # the process is up
    finally:
        away.rename(blobs)
    time.sleep(1.1)
    assert code_of(curl_url(gw.dav_port, "/readyz")) == 200


# -- handshakes in parallel -----------------------------------------------------------------------------------
def _with_sni(ctx, callback):
    ctx.sni_callback = callback
    return ctx


def test_handshakes_stuck_in_a_slow_server_step_do_not_hold_up_a_fresh_client(gw):
    """Three handshakes whose server side takes long (here: its SNI step blocks, as a slow key exchange or a
    lookup would) while a new client connects: the new client is served at once, by another handshake thread."""
    https = gw._server.https
    release, stuck = threading.Event(), []

    def slow_sni(sslobj, name, context):
        if name == "slow.invalid":
            stuck.append(name)
            release.wait(15)

    # the slow step on the context in use and on any the trust refresh makes meanwhile (pinned certificates and
    # cache epochs rebuild it while the gateway runs)
    build_context = https._tls_context
    https._tls_context = lambda pems: _with_sni(build_context(pems), slow_sni)
    https.context.sni_callback = slow_sni
    done: list[float] = []

    def slow_client():
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        c.check_hostname, c.verify_mode = False, ssl.CERT_NONE
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", gw.dav_port), timeout=30) as raw, \
                c.wrap_socket(raw, server_hostname="slow.invalid") as s:
            s.sendall(request("GET", "/healthz"))
            assert read_response(s, timeout=30).status == 200
        done.append(time.monotonic() - t0)

    threads = [threading.Thread(target=slow_client) for _ in range(3)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while len(stuck) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(stuck) == 3, "the slow handshakes did not reach the server"
        for _ in range(3):
            t0 = time.monotonic()
            p = curl_url(gw.dav_port, "/healthz")
            took = time.monotonic() - t0
            assert code_of(p) == 200 and took < 1.0, f"fresh client: {code_of(p)} after {took:.2f} s"
        assert not done, "the slow handshakes were not held"
    finally:
        release.set()
        for t in threads:
            t.join(30)
        del https._tls_context
        https.context.sni_callback = None
    assert len(done) == 3, "the slow clients were not served once their handshake went on"


# -- request bodies streamed ----------------------------------------------------------------------------------
def test_a_large_put_reaches_storage_while_the_client_is_still_sending(gw, tmp_path):
    cert, key = add_machine(gw, tmp_path, "podmi-stream")
    body = big_pdf(40)
    head = request("PUT", f"/dav/{CENTRE_A}/streamed.pdf", {"Content-Length": str(len(body)),
                                                            "Content-Type": "application/pdf"})
    with tls_connect(gw.dav_port, timeout=60, cert=SimpleNamespace(cert=cert, key=key)) as s:
        s.sendall(head + body[:20 * MB])
        # the client stops half-way: what it sent is already being written to the blob store
        deadline = time.monotonic() + 20
        while tmp_bytes(gw) < 10 * MB:
            assert time.monotonic() < deadline, f"only {tmp_bytes(gw)} bytes stored of the 20 MB sent so far"
            time.sleep(0.05)
        s.sendall(body[20 * MB:])
        r = read_response(s, method="PUT", timeout=60)
    assert r.status == 201, (r.status, r.body[:300])
    got = curl_url(gw.dav_port, f"/dav/{CENTRE_A}/streamed.pdf", "-u", f"staff-a:{STAFF_PASSWORD}")
    assert code_of(got) == 200 and got.stdout.rpartition(b"\n")[0] == body


# -- Expect: 100-continue -------------------------------------------------------------------------------------
def test_curl_uploading_a_large_file_gets_100_continue_then_the_answer(gw, tmp_path):
    cert, key = add_machine(gw, tmp_path, "podmi-expect")
    doc = tmp_path / "large.pdf"
    doc.write_bytes(big_pdf(3))  # curl asks "Expect: 100-continue" for uploads over 1 MB
    p = subprocess.run(["curl", "-sk", "-v", "--max-time", "60", "--cert", str(cert), "--key", str(key), "-T",
                        str(doc), "-o", "/dev/null", "-w", "%{http_code}",
                        f"https://127.0.0.1:{gw.dav_port}/dav/{CENTRE_A}/large.pdf"], capture_output=True,
                       timeout=120)
    err = p.stderr.decode(errors="replace")
    assert "Expect: 100-continue" in err
    assert p.stdout == b"201", err[-2000:]
    i100, i201 = err.find("< HTTP/1.1 100 Continue"), err.find("< HTTP/1.1 201")
    assert 0 <= i100 < i201, err[-2000:]


@pytest.mark.parametrize("who", ["nobody", "staff"])
def test_a_refused_upload_is_answered_before_its_body_is_sent(gw, who):
    headers = {"Content-Length": str(50 * MB), "Expect": "100-continue", "Content-Type": "application/pdf"}
    if who == "staff":  # logged in, but staff read: they do not deliver documents
        import base64

        headers["Authorization"] = "Basic " + base64.b64encode(f"staff-a:{STAFF_PASSWORD}".encode()).decode()
    with tls_connect(gw.dav_port, timeout=10) as s:
        t0 = time.monotonic()
        s.sendall(request("PUT", f"/dav/{CENTRE_A}/refused.pdf", headers, close=False))
        r = read_response(s, method="PUT", timeout=10)  # no body byte sent
        took = time.monotonic() - t0
        assert r.complete and r.status in (401, 403), (r.status, r.problem, r.raw[:300])
        assert b"100 Continue" not in r.raw, "100 Continue invited a body that is refused"
        assert took < 5
        assert r.headers.get("connection", "").lower() == "close"
        s.settimeout(10)
        try:
            assert s.recv(1) == b""  # and the connection ends there: no wait for a body that does not come
        except (ConnectionResetError, ssl.SSLError):
            pass


def test_an_accepted_upload_gets_100_continue_when_its_body_is_wanted(gw, tmp_path):
    cert, key = add_machine(gw, tmp_path, "podmi-expect2")
    body = big_pdf(2)
    with tls_connect(gw.dav_port, timeout=30, cert=SimpleNamespace(cert=cert, key=key)) as s:
        s.sendall(request("PUT", f"/dav/{CENTRE_A}/continued.pdf", {
            "Content-Length": str(len(body)), "Expect": "100-continue", "Content-Type": "application/pdf"}))
        buf = b""
        s.settimeout(10)
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            assert chunk, "connection closed before 100 Continue"
            buf += chunk
        assert buf.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), buf[:200]
        s.sendall(body)
        r = read_response(s, method="PUT", timeout=30)
    assert r.status == 201, (r.status, r.body[:300])
