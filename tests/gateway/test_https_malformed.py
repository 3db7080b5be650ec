"""Malformed requests get a complete 4xx answer on every part of the HTTPS port (issue 9, item 11), sent as raw
bytes over a real TLS socket (and with curl where curl can send them): Basic credentials without a colon, not in
base64 or not UTF-8; session tokens and cookies with bytes no session value has; a bad chunk size in a chunked
body; an overlong UTF-8 escape (``%C0%AE``) and ``%2e%2e`` segments in the path. Each answer has its status line,
its headers and exactly the body its Content-Length announces; refused credentials are on the record as failed
logins; and the port goes on serving.
"""
from __future__ import annotations

import base64
import subprocess

import pytest

from gateway.web.websession import SessionSigner
from tests import pdfsamples
from tests.conftest import CENTRE_A, STAFF_PASSWORD
from tests.rawhttp import Response, request, send

GOOD = "Basic " + base64.b64encode(f"staff-a:{STAFF_PASSWORD}".encode()).decode()
WRITER, WRITER_PW = "writer-malformed", "writer-malformed-pw1"
BAD_CHUNK = b"zz\r\nabc\r\n0\r\n\r\n"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.fixture(scope="module")
def sessions(world):
    """A console/API session of the security cell and an account-page session of staff-a, signed as the
    gateway signs them after a strong login."""
    with world.repo.read() as c:
        cell = world.repo.account_by_name(c, "cell").id
        staff = world.repo.account_by_name(c, "staff-a").id
    keyring = world.services.keyring
    account = SessionSigner(keyring.derive(b"account-cookie"), purpose="account")
    return {"console": SessionSigner(keyring.derive(b"web-session")).issue(cell, "cell").value,
            "account": account.issue(staff, "staff-a").value}


@pytest.fixture(scope="module")
def writer(world):
    world.admin.add_account(WRITER, "staff", password=WRITER_PW)
    world.admin.grant(WRITER, CENTRE_A, can_write=True)
    return "Basic " + b64(f"{WRITER}:{WRITER_PW}".encode())


def failed_logins(world, reason: str) -> int:
    return sum(1 for e in world.audit(action="login", limit=500) if e.outcome == "failed" and reason in e.detail)


def still_serving(world) -> None:
    r = send(world.dav_port, request("GET", "/dav/", {"Authorization": GOOD}))
    assert r.complete and r.status == 200, r
    r = send(world.dav_port, request("GET", "/api/openapi.json"))
    assert r.complete and r.status == 200, r


def check(r: Response, *statuses: int) -> None:
    assert r.complete, f"incomplete answer ({r.problem}): {r.raw[:300]!r}"
    assert r.status in statuses, (r.status, r.body[:300])
    assert int(r.headers["content-length"]) == len(r.body), r.headers


# -- credentials ------------------------------------------------------------------------------------------
MALFORMED_CREDENTIALS = [
    ("dav-basic-without-colon", "/dav/", {"Authorization": "Basic " + b64(b"staff-a")}, 401,
     "Basic credentials without a colon"),
    ("dav-basic-not-base64", "/dav/", {"Authorization": "Basic !!not*base64"}, 401, "Basic credentials are not base64"),
    ("dav-basic-not-utf8", "/dav/", {"Authorization": "Basic " + b64(b"staff-a:\xff\xfe")}, 401,
     "Basic credentials are not UTF-8"),
    ("dav-basic-latin1-bytes", "/dav/", {"Authorization": "Basic \xe9\xe9"}, 401, "Basic credentials are not base64"),
    ("api-basic-without-colon", "/api/me", {"Authorization": "Basic " + b64(b"cell")}, 401,
     "Basic credentials without a colon"),
    ("api-bearer-non-ascii", "/api/me", {"Authorization": "Bearer YWJj.\xe9\xe9"}, 401,
     "bearer token is not a token of printable ASCII"),
    ("api-cookie-non-ascii", "/api/me", {"Cookie": "ip_console=YWJj.\xe9\xe9"}, 401, "malformed ip_console cookie"),
    ("console-cookie-non-ascii", "/console/", {"Cookie": "ip_console=YWJj.\xe9\xe9"}, 400,
     "malformed ip_console cookie"),
    ("account-cookie-non-ascii", "/account/", {"Cookie": "ip_account=YWJj.\xe9\xe9"}, 400,
     "malformed ip_account cookie"),
]


@pytest.mark.parametrize("path,headers,status,reason", [c[1:] for c in MALFORMED_CREDENTIALS],
                         ids=[c[0] for c in MALFORMED_CREDENTIALS])
def test_malformed_credentials_are_a_recorded_refusal(world, path, headers, status, reason):
    before = failed_logins(world, reason)
    r = send(world.dav_port, request("GET", path, headers))
    check(r, status)
    if status == 401 and path.startswith("/dav/"):
        assert r.headers.get("www-authenticate", "").startswith("Basic "), r.headers
    if "Cookie" in headers:
        assert "Max-Age=0" in r.headers.get("set-cookie", "") or status == 401, r.headers  # the browser drops it
    assert failed_logins(world, reason) == before + 1, f"not on the record: {reason}"
    still_serving(world)


def test_curl_with_malformed_credentials_gets_complete_answers(world):
    base = f"https://127.0.0.1:{world.dav_port}"
    for url, header, status in [
            (base + "/dav/", b"Authorization: Basic " + b64(b"nocolon").encode(), b"401"),
            (base + "/api/me", b"Authorization: Bearer YWJj.\xe9\xe9", b"401"),
            (base + "/console/", b"Cookie: ip_console=YWJj.\xe9\xe9", b"400"),
            (base + "/account/", b"Cookie: ip_account=\xc3\xa9t\xc3\xa9", b"400")]:
        p = subprocess.run([b"curl", b"-sS", b"-k", b"--max-time", b"20", b"-o", b"/dev/null", b"-w",
                            b"%{http_code} %{size_download} %{content_type}", b"-H", header, url.encode()],
                           capture_output=True, timeout=60)
        assert p.returncode == 0 and p.stdout.startswith(status), (url, header, p.stdout, p.stderr)
    still_serving(world)


# -- bodies ------------------------------------------------------------------------------------------------
def test_a_bad_chunk_size_gets_400_everywhere(world, writer, sessions):
    targets = [
        ("PUT", f"/dav/{CENTRE_A}/chunked.pdf", {"Authorization": writer}),
        ("PROPFIND", "/dav/", {"Authorization": GOOD, "Depth": "1", "Content-Type": "application/xml"}),
        ("POST", "/api/session", {"Content-Type": "application/json"}),
        ("POST", "/console/login", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("POST", "/account/login", {"Content-Type": "application/x-www-form-urlencoded"}),
    ]
    for method, path, headers in targets:
        r = send(world.dav_port, request(method, path, dict(headers, **{"Transfer-Encoding": "chunked"})) + BAD_CHUNK)
        check(r, 400)
        assert b"chunk" in r.body.lower(), (path, r.body[:300])
    # nothing was stored by the broken PUT, and the upload is on the record as aborted
    r = send(world.dav_port, request("GET", f"/dav/{CENTRE_A}/chunked.pdf", {"Authorization": writer}))
    check(r, 404)
    assert any(e.action == "upload" and e.outcome == "aborted" and e.path.endswith("/chunked.pdf")
               for e in world.audit(limit=50))
    # a well-formed chunked PUT still works
    pdf = pdfsamples.minimal_pdf("chunked after all")
    body = f"{len(pdf):x}\r\n".encode() + pdf + b"\r\n0\r\n\r\n"
    r = send(world.dav_port, request("PUT", f"/dav/{CENTRE_A}/chunked.pdf",
                                     {"Authorization": writer, "Transfer-Encoding": "chunked"}) + body)
    check(r, 201, 204)
    still_serving(world)


# -- paths -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("escape", ["%C0%AE", "%C0%AE%C0%AE", "%E0%80%AE", "%FF"])
def test_undecodable_paths_get_404_everywhere(world, sessions, escape):
    for path, headers in [
            (f"/dav/{escape}/", {}),
            (f"/dav/{CENTRE_A}/{escape}", {"Authorization": GOOD}),
            (f"/api/{escape}", {"Authorization": f"Bearer {sessions['console']}"}),
            (f"/console/{escape}", {"Cookie": f"ip_console={sessions['console']}"}),
            (f"/account/{escape}", {"Cookie": f"ip_account={sessions['account']}"})]:
        for method in ("GET", "PROPFIND") if path.startswith("/dav/") else ("GET",):
            r = send(world.dav_port, request(method, path, headers))
            check(r, 404)
    still_serving(world)


def test_dot_segments_are_resolved_inside_the_tree(world, sessions):
    for path, headers, status in [
            (f"/dav/{CENTRE_A}/%2e%2e/%2e%2e/etc/passwd", {"Authorization": GOOD}, 404),
            ("/dav/%2e%2e/%2e%2e/", {}, 401),
            ("/api/%2e%2e/me", {"Authorization": f"Bearer {sessions['console']}"}, 404),
            ("/console/%2e%2e/x", {"Cookie": f"ip_console={sessions['console']}"}, 404),
            ("/account/%2e%2e/x", {"Cookie": f"ip_account={sessions['account']}"}, 404)]:
        r = send(world.dav_port, request("GET", path, headers))
        check(r, status)
    # resolved, they name what they name: the drive's root, listed in full
    r = send(world.dav_port, request("PROPFIND", "/dav/%2e%2e/./", {"Authorization": GOOD, "Depth": "1"}))
    check(r, 207)
    assert f"/dav/{CENTRE_A}/".encode() in r.body
    still_serving(world)


def test_curl_path_as_is_gets_complete_answers(world):
    base = f"https://127.0.0.1:{world.dav_port}"
    for path, status in [("/dav/%C0%AE", "404"), (f"/dav/{CENTRE_A}/%2e%2e/%2e%2e/etc", "404"),
                         ("/dav/%2e%2e/", "200")]:
        p = subprocess.run(["curl", "-sS", "-k", "--path-as-is", "--max-time", "20", "-u",
                            f"staff-a:{STAFF_PASSWORD}", "-o", "/dev/null", "-w", "%{http_code}", base + path],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and p.stdout == status, (path, p.stdout, p.stderr)
