"""The WebDAV front-end with real clients over loopback: curl and Python's http.client/ssl against the shared
``world`` gateway's HTTPS port.

Covers: GET (the bytes an uploader sent over SFTP), ranged GET, HEAD, ETag/Last-Modified; PUT by a staff member
with a write grant (atomic, PDF only with a plain-text 415 reason, never over an existing document, identical
re-PUT harmless); DELETE = archive (restorable); PROPFIND Depth 0/1 parsed (names, sizes), Depth infinity
refused on collections and answered on documents; MKCOL; COPY/MOVE never into another centre or host, no MOVE of
committed documents; LOCK/UNLOCK and locks surviving a restart; the role x operation x centre matrix with the same expectations as SFTP (a hidden centre
answers exactly like a centre that does not exist); OPTIONS unauthenticated, 401 for everything else without
valid credentials, ``DOMAIN\\user``; PUTs cut off midway (short Content-Length, unterminated chunked body) leave
nothing; XML bombs and external entities refused; the HTML listing escapes names and has download links; SFTP
and WebDAV see each other's uploads at once.

Every test works in its own folder (named after the test) so that the shared gateway's state never leaks
between tests.
"""
from __future__ import annotations

import base64
import hashlib
import http.client
import re
import socket
import ssl
import subprocess
import time
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlsplit

import defusedxml.ElementTree as SafeET
import pytest
import sqlalchemy as sa

from gateway.core.enterprise import with_check
from tests.conftest import (
    CENTRE_A,
    CENTRE_B,
    CENTRE_PAPER,
    CENTRE_SUSP,
    OFFICE_CASES,
    STAFF_CASES,
    STAFF_PASSWORD,
    start_gateway,
)
from tests.davtools import Answer, sftp_put
from tests.pdfsamples import minimal_pdf, not_a_pdf_html, not_a_pdf_zip

#: a well-formed enterprise number no centre has: the reference answer for "does not exist"
GHOST = with_check("09999999")

#: staff with a write grant (the WebDAV counterpart of an uploader): writes into A, and into the centres that
#: have not switched over (to see the refusal naming their status); cannot see B
WRITER, WRITER_PW = "wd-writer", "wd-writer-password-1"
#: staff with write and remove grants on A and B (COPY/MOVE between two centres it may write)
MOVER, MOVER_PW = "wd-mover", "wd-mover-password-1"

PASSWORDS = {"staff-a": STAFF_PASSWORD, "staff-a-rm": STAFF_PASSWORD, "staff-ab": STAFF_PASSWORD,
             "admin-a": STAFF_PASSWORD, "cell": STAFF_PASSWORD, WRITER: WRITER_PW, MOVER: MOVER_PW}

STATUS = {CENTRE_A: "active", CENTRE_B: "active", CENTRE_PAPER: "paper", CENTRE_SUSP: "suspended"}


# -- clients ----------------------------------------------------------------------------------------------------
class Dav:
    """Requests to the gateway's /dav over TLS, the server certificate verified against the gateway's own."""

    def __init__(self, world):
        self.world = world
        self.port = world.dav_port
        self.cafile = str(world.config.tls_cert_path)
        self.ctx = ssl.create_default_context(cafile=self.cafile)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{self.href(path)}"

    @staticmethod
    def href(path: str) -> str:
        return "/dav" + quote(path)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
                user: str | None = None, password: str | None = None, raw_path: bool = False) -> Answer:
        hdrs = dict(headers or {})
        if user is not None:
            pw = PASSWORDS.get(user, "") if password is None else password
            hdrs["Authorization"] = "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=30)
        try:
            conn.request(method, path if raw_path else self.href(path), body=body, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            return Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            conn.close()

    def curl(self, *args: str, user: str | None = None, password: str | None = None,
             tmp: Path) -> Answer:
        """Run curl (verifying the server certificate) and return the final response."""
        hfile, bfile = tmp / "curl-headers", tmp / "curl-body"
        cmd = ["curl", "-sS", "--max-time", "30", "--cacert", self.cafile, "-D", str(hfile), "-o", str(bfile)]
        if user is not None:
            cmd += ["-u", f"{user}:{PASSWORDS.get(user, '') if password is None else password}"]
        p = subprocess.run(cmd + list(args), capture_output=True, timeout=60)
        assert p.returncode == 0, f"curl {args} failed: rc={p.returncode} {p.stderr.decode()}"
        blocks = [b for b in hfile.read_text("latin-1").replace("\r\n", "\n").split("\n\n") if b.strip()]
        lines = blocks[-1].splitlines()  # the last block: after any "100 Continue"
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        return Answer(status, headers, bfile.read_bytes() if bfile.exists() else b"")

    # -- WebDAV helpers --
    def propfind(self, path: str, depth: str, user: str, password: str | None = None) -> dict[str, dict]:
        r = self.request("PROPFIND", path, headers={"Depth": depth}, user=user, password=password)
        assert r.status == 207, f"PROPFIND {path} as {user}: {r}"
        return parse_multistatus(r.body)

    def names(self, path: str, user: str) -> dict[str, dict]:
        """Members of a collection (Depth 1), by name."""
        base = self.href(path if path.endswith("/") else path + "/")
        out = {}
        for href, props in self.propfind(path, "1", user).items():
            if href.rstrip("/") == unquote(base).rstrip("/"):
                continue
            out[href.rstrip("/").rsplit("/", 1)[-1]] = props
        return out


def parse_multistatus(body: bytes) -> dict[str, dict]:
    """{unquoted href: {"collection": bool, "size": int|None, "displayname": str, "etag": str, ...}}"""
    root = SafeET.fromstring(body)
    assert root.tag == "{DAV:}multistatus", body[:200]
    out = {}
    for resp in root.findall("{DAV:}response"):
        href = unquote(resp.findtext("{DAV:}href"))
        props: dict = {}
        for ps in resp.findall("{DAV:}propstat"):
            if " 200 " not in (ps.findtext("{DAV:}status") or ""):
                continue
            prop = ps.find("{DAV:}prop")
            rt = prop.find("{DAV:}resourcetype")
            if rt is not None:
                props["collection"] = rt.find("{DAV:}collection") is not None
            for tag, key in (("getcontentlength", "size"), ("displayname", "displayname"), ("getetag", "etag"),
                             ("getcontenttype", "type"), ("getlastmodified", "lastmodified")):
                el = prop.find("{DAV:}" + tag)
                if el is not None:
                    props[key] = int(el.text) if key == "size" else (el.text or "")
        out[href] = props
    return out


@pytest.fixture(scope="module")
def dav(world) -> Dav:
    a = world.admin
    a.add_account(WRITER, "staff", password=WRITER_PW)
    for centre in (CENTRE_A, CENTRE_PAPER, CENTRE_SUSP):
        a.grant(WRITER, centre, can_write=True)
    a.add_account(MOVER, "staff", password=MOVER_PW)
    for centre in (CENTRE_A, CENTRE_B):
        a.grant(MOVER, centre, can_write=True, can_remove=True)
    return Dav(world)


def folder_for(request) -> str:
    return "wd-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:10]


@pytest.fixture
def folder(request) -> str:
    return folder_for(request)


def documents(world, centre: str, folder: str, state: str | None = "committed") -> dict[str, list]:
    """Rows of ``documents`` in a folder, by name: [(state, blob_id, size)]."""
    q = "select name, state, blob_id, size from documents where institution_id = :i and folder = :f"
    with world.repo.read() as c:
        rows = c.execute(sa.text(q), {"i": centre, "f": folder}).all()
    out: dict[str, list] = {}
    for r in rows:
        if state is None or r.state == state:
            out.setdefault(r.name, []).append((r.state, r.blob_id, r.size))
    return out


def audit_events(world, action: str, path: str, limit: int = 500) -> list:
    return [e for e in world.audit(action, limit=limit) if e.path == path]


def etag_of(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:40] + '"'


PDF1 = minimal_pdf("WebDAV test document one")
PDF2 = minimal_pdf("WebDAV test document two")
PDF3 = minimal_pdf("WebDAV test document three", pages=3)


# -- reading -----------------------------------------------------------------------------------------------------
def test_get_returns_the_bytes_uploaded_over_sftp(world, dav, folder, tmp_path):
    sftp_put(world, "podmi", CENTRE_A, folder, {"maandstaat.pdf": PDF3}, tmp_path)
    path = f"/{CENTRE_A}/{folder}/maandstaat.pdf"

    r = dav.curl(dav.url(path), user="staff-a", tmp=tmp_path)
    assert r.status == 200, r
    assert r.body == PDF3
    assert r.headers["content-type"].startswith("application/pdf")
    assert int(r.headers["content-length"]) == len(PDF3)

    r2 = dav.request("GET", path, user="staff-ab")
    assert (r2.status, r2.body) == (200, PDF3)
    # the record is written when the server closes the document, just after the last byte went out
    deadline = time.monotonic() + 5
    while True:
        done = [e for e in audit_events(world, "download", path) if e.outcome == "complete"]
        if {e.actor for e in done} >= {"staff-a", "staff-ab"} or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert {e.actor for e in done} >= {"staff-a", "staff-ab"}, [(e.actor, e.outcome, e.detail) for e in
                                                                 audit_events(world, "download", path)]


def test_ranged_get(world, dav, folder, tmp_path):
    data = minimal_pdf("ranged " * 200, pages=4)
    assert len(data) > 2000
    sftp_put(world, "podmi", CENTRE_A, folder, {"range.pdf": data}, tmp_path)
    url = dav.url(f"/{CENTRE_A}/{folder}/range.pdf")
    n = len(data)

    for rng, lo, hi in (("10-99", 10, 99), ("0-0", 0, 0), (f"{n - 50}-", n - 50, n - 1), ("-37", n - 37, n - 1),
                        (f"1000-{n + 500}", 1000, n - 1)):
        r = dav.curl("-r", rng, url, user="staff-a", tmp=tmp_path)
        assert r.status == 206, (rng, r)
        assert r.headers["content-range"] == f"bytes {lo}-{hi}/{n}", (rng, r.headers)
        assert r.body == data[lo:hi + 1], rng
        assert int(r.headers["content-length"]) == hi - lo + 1

    r = dav.curl("-r", f"{n + 10}-{n + 20}", url, user="staff-a", tmp=tmp_path)
    assert r.status == 416, r


def test_head_etag_and_last_modified(world, dav, folder, tmp_path):
    before = time.time()
    sftp_put(world, "podmi", CENTRE_A, folder, {"head.pdf": PDF1}, tmp_path)
    after = time.time()
    path = f"/{CENTRE_A}/{folder}/head.pdf"

    head = dav.request("HEAD", path, user="staff-a")
    assert head.status == 200, head
    assert head.body == b""
    assert int(head.headers["content-length"]) == len(PDF1)
    assert head.headers["etag"] == etag_of(PDF1), "ETag must come from the document's hash"
    modified = parsedate_to_datetime(head.headers["last-modified"]).timestamp()
    assert before - 2 <= modified <= after + 2, (before, modified, after)

    get = dav.request("GET", path, user="staff-a")
    assert get.headers["etag"] == head.headers["etag"]
    assert get.headers["last-modified"] == head.headers["last-modified"]
    props = dav.propfind(path, "0", "staff-a")[unquote(dav.href(path))]
    assert '"' + props["etag"].strip('"') + '"' == head.headers["etag"]
    assert props["lastmodified"] == head.headers["last-modified"]

    cond = dav.request("GET", path, user="staff-a", headers={"If-None-Match": head.headers["etag"]})
    assert cond.status == 304 and cond.body == b"", cond
    stale = dav.request("GET", path, user="staff-a", headers={"If-None-Match": etag_of(PDF2)})
    assert (stale.status, stale.body) == (200, PDF1)


# -- writing -----------------------------------------------------------------------------------------------------
def test_put_by_staff_with_write_grant(world, dav, folder, tmp_path):
    assert dav.request("MKCOL", f"/{CENTRE_A}/{folder}/", user=WRITER).status == 201
    path = f"/{CENTRE_A}/{folder}/brief.pdf"
    (tmp_path / "brief.pdf").write_bytes(PDF2)

    r = dav.curl("-T", str(tmp_path / "brief.pdf"), dav.url(path), user=WRITER, tmp=tmp_path)
    assert r.status == 201, r
    assert r.headers.get("etag") == etag_of(PDF2)

    listing = dav.names(f"/{CENTRE_A}/{folder}/", "staff-a")
    assert listing["brief.pdf"]["size"] == len(PDF2)
    assert dav.request("GET", path, user="staff-a").body == PDF2
    assert list(documents(world, CENTRE_A, folder)) == ["brief.pdf"]
    committed = [e for e in audit_events(world, "upload", path) if e.outcome == "committed"]
    assert [(e.actor, e.protocol) for e in committed] == [(WRITER, "webdav")]


@pytest.mark.parametrize("sample", [not_a_pdf_html, not_a_pdf_zip])
def test_put_of_a_non_pdf_is_refused_with_a_reason(world, dav, folder, sample, tmp_path):
    assert dav.request("MKCOL", f"/{CENTRE_A}/{folder}/", user=WRITER).status == 201
    path = f"/{CENTRE_A}/{folder}/disguised.pdf"
    (tmp_path / "x").write_bytes(sample())

    r = dav.curl("-T", str(tmp_path / "x"), "-H", "Content-Type: application/pdf", dav.url(path), user=WRITER,
                 tmp=tmp_path)
    assert r.status == 415, r
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    assert "pdf" in r.text.lower() and len(r.text.strip().splitlines()) >= 2, f"no reason given: {r.text!r}"

    assert dav.names(f"/{CENTRE_A}/{folder}/", "staff-a") == {}
    assert dav.request("GET", path, user="staff-a").status == 404
    assert documents(world, CENTRE_A, folder) == {}
    refused = [e for e in audit_events(world, "upload", path) if e.outcome == "refused"]
    assert len(refused) == 1 and "pdf" in refused[0].detail.lower()


def test_put_over_an_existing_document_is_refused_and_identical_reput_is_harmless(world, dav, folder, tmp_path):
    sftp_put(world, "podmi", CENTRE_A, folder, {"afrekening.pdf": PDF1}, tmp_path)
    path = f"/{CENTRE_A}/{folder}/afrekening.pdf"
    (tmp_path / "other.pdf").write_bytes(PDF2)
    (tmp_path / "same.pdf").write_bytes(PDF1)

    r = dav.curl("-T", str(tmp_path / "other.pdf"), dav.url(path), user=WRITER, tmp=tmp_path)
    assert r.status == 409, r
    assert "exists" in r.text and "overwrit" in r.text, r.text
    assert dav.request("GET", path, user="staff-a").body == PDF1, "the original was changed"

    again = dav.curl("-T", str(tmp_path / "same.pdf"), dav.url(path), user=WRITER, tmp=tmp_path)
    assert again.status in (200, 201, 204), again
    assert dav.request("GET", path, user="staff-a").body == PDF1
    docs = documents(world, CENTRE_A, folder)
    assert list(docs) == ["afrekening.pdf"] and len(docs["afrekening.pdf"]) == 1, docs


def test_delete_archives_and_the_local_admin_can_restore(world, dav, folder, tmp_path):
    sftp_put(world, "podmi", CENTRE_A, folder, {"weg.pdf": PDF2, "blijft.pdf": PDF1}, tmp_path)
    path = f"/{CENTRE_A}/{folder}/weg.pdf"

    denied = dav.curl("-X", "DELETE", dav.url(path), user="staff-a", tmp=tmp_path)
    assert denied.status == 403, denied
    assert dav.request("GET", path, user="staff-a").status == 200

    r = dav.curl("-X", "DELETE", dav.url(path), user="staff-a-rm", tmp=tmp_path)
    assert r.status == 204, r
    assert dav.request("GET", path, user="staff-a").status == 404
    assert set(dav.names(f"/{CENTRE_A}/{folder}/", "staff-a")) == {"blijft.pdf"}
    archived = documents(world, CENTRE_A, folder, state="archived")
    assert list(archived) == ["weg.pdf"], "DELETE must archive, not destroy"
    assert archived["weg.pdf"][0][1] in set(world.services.blobs.list_ids()), "the archived blob is kept"

    world.admin.restore(CENTRE_A, f"{folder}/weg.pdf")
    back = dav.request("GET", path, user="staff-a")
    assert (back.status, back.body) == (200, PDF2)


def test_propfind_depth_0_and_1(world, dav, folder, tmp_path):
    sftp_put(world, "podmi", CENTRE_A, folder, {"een.pdf": PDF1, "drie.pdf": PDF3}, tmp_path)
    assert world.sftp("podmi", f'mkdir "/{CENTRE_A}/{folder}/sub"\n').returncode == 0
    base = f"/{CENTRE_A}/{folder}/"

    d0 = dav.propfind(base, "0", "staff-a")
    assert list(d0) == [unquote(dav.href(base))]
    assert d0[unquote(dav.href(base))]["collection"] is True

    d1 = dav.names(base, "staff-a")
    assert set(d1) == {"een.pdf", "drie.pdf", "sub"}
    assert d1["een.pdf"]["size"] == len(PDF1) and d1["drie.pdf"]["size"] == len(PDF3)
    assert d1["een.pdf"]["collection"] is False and d1["sub"]["collection"] is True
    assert d1["een.pdf"]["type"] == "application/pdf"
    assert d1["drie.pdf"]["etag"].strip('"') == etag_of(PDF3).strip('"')

    doc = dav.propfind(base + "drie.pdf", "0", "staff-a")
    assert doc == {unquote(dav.href(base + "drie.pdf")): d1["drie.pdf"]}

    root = dav.propfind("/", "1", "staff-ab")
    centres = {h.strip("/").rsplit("/", 1)[-1]: p for h, p in root.items() if h.rstrip("/") != "/dav"}
    assert set(centres) == {CENTRE_A, CENTRE_B}, "staff-ab sees exactly its two centres"
    assert centres[CENTRE_A]["displayname"] == "OCMW Aalst-test"
    assert centres[CENTRE_B]["displayname"] == "CPAS de Bstad"


@pytest.mark.parametrize("depth", ["infinity", "Infinity", None])
def test_propfind_depth_infinity_is_refused(world, dav, depth):
    headers = {"Depth": depth} if depth else {}
    r = dav.request("PROPFIND", f"/{CENTRE_A}/", headers=headers, user="staff-a")
    assert r.status == 403, r
    assert b"propfind-finite-depth" in r.body
    assert dav.request("PROPFIND", "/", headers={"Depth": "1"}, user="staff-a").status == 207


@pytest.mark.parametrize("depth", ["infinity", None])
def test_propfind_on_a_document_without_depth_is_answered(world, dav, folder, tmp_path, depth):
    """On a document, Depth infinity (the default when the header is missing, as webdav4 sends it) and Depth 0
    are the same answer; a name that holds nothing is plainly not found."""
    sftp_put(world, "podmi", CENTRE_A, folder, {"stuk.pdf": PDF1}, tmp_path)
    args = ["-X", "PROPFIND"] + (["-H", f"Depth: {depth}"] if depth else [])
    r = dav.curl(*args, dav.url(f"/{CENTRE_A}/{folder}/stuk.pdf"), user="staff-a", tmp=tmp_path)
    assert r.status == 207, r
    [(href, props)] = parse_multistatus(r.body).items()
    assert href.endswith(f"/{folder}/stuk.pdf") and props["size"] == len(PDF1) and not props["collection"]
    missing = dav.curl(*args, dav.url(f"/{CENTRE_A}/{folder}/geen.pdf"), user="staff-a", tmp=tmp_path)
    assert missing.status == 404, missing


def test_mkcol(world, dav, folder, tmp_path):
    path = f"/{CENTRE_A}/{folder}/"
    r = dav.curl("-X", "MKCOL", dav.url(path), user=WRITER, tmp=tmp_path)
    assert r.status == 201, r
    assert dav.propfind(path, "0", "staff-a")[unquote(dav.href(path))]["collection"] is True
    ls = world.sftp("staff-a", f'ls -1 "/{CENTRE_A}"\n')
    assert f"/{CENTRE_A}/{folder}" in ls.stdout.split(), ls.stdout

    assert dav.request("MKCOL", path, user=WRITER).status == 405, "MKCOL on an existing collection"
    assert dav.request("MKCOL", path + "a/b/", user=WRITER).status == 409, "MKCOL without its parent"
    nested = dav.request("MKCOL", path + "a/", user=WRITER)
    assert nested.status == 201, nested

    staff = dav.curl("-X", "MKCOL", dav.url(path + "by-staff/"), user="staff-a", tmp=tmp_path)
    assert staff.status == 403, staff
    assert set(dav.names(path, "staff-a")) == {"a"}


def test_copy_and_move_never_into_another_centre_or_host(world, dav, folder, tmp_path):
    sftp_put(world, "podmi", CENTRE_A, folder, {"bron.pdf": PDF1}, tmp_path)
    sftp_put(world, "podmi", CENTRE_B, folder, {"anders.pdf": PDF2}, tmp_path)
    src = f"/{CENTRE_A}/{folder}/bron.pdf"

    for method in ("COPY", "MOVE"):
        # MOVER may write and remove in both A and B: still refused between them
        r = dav.curl("-X", method, "-H", f"Destination: {dav.url(f'/{CENTRE_B}/{folder}/bron.pdf')}", dav.url(src),
                     user=MOVER, tmp=tmp_path)
        assert r.status == 403, (method, r)
        assert "centre" in r.text, r.text
        # another host
        r = dav.curl("-X", method, "-H", f"Destination: https://elsewhere.example/dav/{CENTRE_A}/{folder}/x.pdf",
                     dav.url(src), user=MOVER, tmp=tmp_path)
        assert r.status in (403, 502), (method, r)

        # WRITER cannot see B: exactly the answer for a centre that does not exist
        hidden = dav.request(method, src, user=WRITER,
                             headers={"Destination": dav.url(f"/{CENTRE_B}/{folder}/bron.pdf")})
        ghost = dav.request(method, src, user=WRITER, headers={"Destination": dav.url(f"/{GHOST}/{folder}/bron.pdf")})
        assert hidden.status >= 400
        assert (hidden.status, normalize(hidden.body, CENTRE_B)) == (ghost.status, normalize(ghost.body, GHOST))

    assert list(documents(world, CENTRE_B, folder)) == ["anders.pdf"]
    assert dav.request("GET", src, user="staff-a").body == PDF1


def test_move_of_a_committed_document_is_refused_copy_makes_a_new_one(world, dav, folder, tmp_path):
    sftp_put(world, "podmi", CENTRE_A, folder, {"vast.pdf": PDF1}, tmp_path)
    src = f"/{CENTRE_A}/{folder}/vast.pdf"

    r = dav.curl("-X", "MOVE", "-H", f"Destination: {dav.url(f'/{CENTRE_A}/{folder}/hernoemd.pdf')}", dav.url(src),
                 user=MOVER, tmp=tmp_path)
    assert r.status == 403, r
    assert "cannot be renamed" in r.text, r.text
    assert set(dav.names(f"/{CENTRE_A}/{folder}/", "staff-a")) == {"vast.pdf"}

    c = dav.curl("-X", "COPY", "-H", f"Destination: {dav.url(f'/{CENTRE_A}/{folder}/kopie.pdf')}", dav.url(src),
                 user=MOVER, tmp=tmp_path)
    assert c.status == 201, c
    assert dav.request("GET", f"/{CENTRE_A}/{folder}/kopie.pdf", user="staff-a").body == PDF1
    assert dav.request("GET", src, user="staff-a").body == PDF1
    assert set(documents(world, CENTRE_A, folder)) == {"vast.pdf", "kopie.pdf"}


LOCKINFO = (b'<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
            b"</D:lockscope><D:locktype><D:write/></D:locktype><D:owner>test</D:owner></D:lockinfo>")


def test_lock_and_unlock_with_curl(world, dav, folder, tmp_path):
    sftp_put(world, "podmi", CENTRE_A, folder, {"slot.pdf": PDF1}, tmp_path)
    url = dav.url(f"/{CENTRE_A}/{folder}/slot.pdf")
    (tmp_path / "lockinfo.xml").write_bytes(LOCKINFO)

    r = dav.curl("-X", "LOCK", "-H", "Content-Type: application/xml", "-H", "Timeout: Second-600",
                 "--data-binary", f"@{tmp_path / 'lockinfo.xml'}", url, user=MOVER, tmp=tmp_path)
    assert r.status == 200, r
    token = r.headers["lock-token"].strip("<>")
    assert token and token in r.text

    other = dav.curl("-X", "DELETE", url, user="staff-a-rm", tmp=tmp_path)
    assert other.status == 423, f"a locked document was removed by someone else: {other}"
    un = dav.curl("-X", "UNLOCK", "-H", f"Lock-Token: <{token}>", url, user=MOVER, tmp=tmp_path)
    assert un.status == 204, un
    assert dav.request("GET", f"/{CENTRE_A}/{folder}/slot.pdf", user="staff-a").body == PDF1


def test_locks_survive_a_restart(tmp_path):
    data_dir = tmp_path / "var"
    gw = start_gateway(data_dir)
    try:
        a = gw.admin
        a.add_institution(CENTRE_A, "OCMW Aalst-test", "active")
        a.add_account("locker", "staff", password="locker-password-1")
        a.grant("locker", CENTRE_A, can_write=True)
        d = Dav(gw)
        creds = dict(user="locker", password="locker-password-1")
        assert d.request("MKCOL", f"/{CENTRE_A}/map/", **creds).status == 201
        r = d.request("LOCK", f"/{CENTRE_A}/map/", body=LOCKINFO, **creds,
                      headers={"Content-Type": "application/xml", "Timeout": "Second-3600", "Depth": "0"})
        assert r.status == 200, r
        token = r.headers["lock-token"].strip("<>")
    finally:
        gw.stop()
        gw.services.close()
    gw = start_gateway(data_dir)
    try:
        d = Dav(gw)
        r = d.request("PROPFIND", f"/{CENTRE_A}/map/", user="locker", password="locker-password-1",
                      headers={"Depth": "0", "Content-Type": "application/xml"},
                      body=b'<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop>'
                           b"</D:propfind>")
        assert r.status == 207 and token in r.text, f"the lock did not survive the restart: {r}"
        un = d.request("UNLOCK", f"/{CENTRE_A}/map/", user="locker", password="locker-password-1",
                       headers={"Lock-Token": f"<{token}>"})
        assert un.status == 204, un
    finally:
        gw.stop()
        gw.services.close()


@pytest.mark.parametrize("name", [".DS_Store", "._brief.pdf", "Thumbs.db", "desktop.ini"])
def test_finder_and_explorer_junk_is_answered_but_never_stored(world, dav, folder, name):
    assert dav.request("MKCOL", f"/{CENTRE_A}/{folder}/", user=WRITER).status == 201
    r = dav.request("PUT", f"/{CENTRE_A}/{folder}/{name}", body=b"\x00\x05\x16\x07 Mac OS X junk", user=WRITER)
    assert r.status in (200, 201, 204), r
    assert dav.names(f"/{CENTRE_A}/{folder}/", "staff-a") == {}
    assert documents(world, CENTRE_A, folder, state=None) == {}
    assert dav.request("GET", f"/{CENTRE_A}/{folder}/{name}", user="staff-a").status == 404


# -- the role x operation x centre matrix -----------------------------------------------------------------------
OK, DENIED, HIDDEN, MISSING = "ok", "denied", "hidden", "missing"
OPS = ("root", "ls", "stat", "get", "put", "mkdir", "rm", "rename")
READS = {"staff-a": {CENTRE_A}, "staff-a-rm": {CENTRE_A}, "staff-ab": {CENTRE_A, CENTRE_B}, "admin-a": {CENTRE_A},
         WRITER: {CENTRE_A, CENTRE_PAPER, CENTRE_SUSP}}
REMOVES = {"staff-a-rm": {CENTRE_A}}
WRITES = {WRITER: {CENTRE_A, CENTRE_PAPER, CENTRE_SUSP}}
SEED, RM, RN = "seed.pdf", "rm.pdf", "rn.pdf"


def expected(user: str, centre: str) -> dict:
    """Per operation: OK, HIDDEN (exactly the answer for a centre that does not exist), MISSING (a plain 404:
    nothing was ever stored there), or (DENIED, substring of the reason or None). ``root``: listed in "/"."""
    active = STATUS[centre] == "active"
    if user == "cell":
        return dict(root=True, ls=(DENIED, None), stat=(DENIED, "does not read"), get=(DENIED, None),
                    put=(DENIED, None), mkdir=(DENIED, None), rm=(DENIED, None), rename=(DENIED, None))
    if centre not in READS[user]:
        return dict(root=False, **{op: HIDDEN for op in OPS[1:]})
    writes = centre in WRITES.get(user, ())
    if writes and not active:
        # removing needs the remove grant, whatever the name: refused as over SFTP, before looking the name up
        not_active = (DENIED, f"status: {STATUS[centre]}")
        return dict(root=True, ls=OK, stat=MISSING, get=MISSING, put=not_active, mkdir=not_active, rm=(DENIED, None),
                    rename=MISSING)
    return dict(root=True, ls=OK, stat=OK, get=OK, put=OK if writes else (DENIED, None),
                mkdir=OK if writes else (DENIED, None), rm=OK if centre in REMOVES.get(user, ()) else (DENIED, None),
                rename=(DENIED, None))


CASES = [
    *STAFF_CASES,
    *OFFICE_CASES,
    ("writer-granted", WRITER, CENTRE_A),
    ("writer-not-granted", WRITER, CENTRE_B),
    ("writer-paper", WRITER, CENTRE_PAPER),
    ("writer-suspended", WRITER, CENTRE_SUSP),
]

_STAMP = re.compile(rb"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?")


def normalize(body: bytes, centre: str) -> bytes:
    """The body with the centre's number (it is in the request path) and wsgidav's page timestamp masked."""
    return _STAMP.sub(b"<time>", body.replace(centre.encode(), b"<centre>"))


def ops_for(dav: Dav, user: str, centre: str, folder: str) -> dict:
    """The WebDAV request of each operation, as a function of the centre (so the same request can be sent to a
    centre that does not exist)."""
    active = STATUS[centre] == "active"

    def base(c: str) -> str:  # the seeded folder in active centres; nothing can be stored in the others
        return f"/{c}/{folder}" if active else f"/{c}"

    def pf(depth: str, p: str):
        return lambda c: dav.request("PROPFIND", p.format(c=c, b=base(c)), headers={"Depth": depth}, user=user)

    return {
        "ls": pf("1", "/{c}/"),
        "stat": pf("0", "{b}/" + SEED if active else "{b}/" + folder + "-" + SEED),
        "get": lambda c: dav.request("GET", f"{base(c)}/{SEED}" if active else f"{base(c)}/{folder}-{SEED}",
                                     user=user),
        "put": lambda c: dav.request("PUT", f"{base(c)}/put.pdf" if active else f"{base(c)}/{folder}-put.pdf",
                                     body=PDF2, user=user),
        "mkdir": lambda c: dav.request("MKCOL", f"{base(c)}/sub/" if active else f"{base(c)}/{folder}-sub/",
                                       user=user),
        "rm": lambda c: dav.request("DELETE", f"{base(c)}/{RM}" if active else f"{base(c)}/{folder}-{RM}", user=user),
        "rename": lambda c: dav.request(
            "MOVE", f"{base(c)}/{RN}" if active else f"{base(c)}/{folder}-{RN}", user=user,
            headers={"Destination": dav.url(f"{base(c)}/rn2.pdf" if active else f"{base(c)}/{folder}-rn2.pdf"),
                     "Overwrite": "F"}),
    }


@pytest.fixture(scope="module")
def matrix_seed(world, dav, tmp_path_factory):
    """One SFTP session by podmi seeds every row's folder in the active centres."""
    tmp = tmp_path_factory.mktemp("matrix")
    (tmp / "seed").write_bytes(PDF1)
    cmds = []
    for label, _user, centre in CASES:
        if STATUS[centre] == "active":
            f = f"/{centre}/mx-{label}"
            cmds += [f'mkdir "{f}"'] + [f'put "{tmp / "seed"}" "{f}/{n}"' for n in (SEED, RM, RN)]
    p = world.sftp("podmi", "\n".join(cmds) + "\n")
    assert p.returncode == 0, p.stdout + p.stderr
    return True


@pytest.mark.parametrize("label,user,centre", CASES, ids=[c[0] for c in CASES])
def test_matrix(world, dav, matrix_seed, label, user, centre):
    folder = f"mx-{label}"
    exp = expected(user, centre)
    ops = ops_for(dav, user, centre, folder)
    problems = []

    root = dav.propfind("/", "1", user)
    listed = {h.strip("/").rsplit("/", 1)[-1] for h in root}
    if (centre in listed) != exp["root"]:
        problems.append(f"root: centre {'missing from' if exp['root'] else 'shown in'} '/'")

    for op, fn in ops.items():
        e = exp[op]
        kind = e[0] if isinstance(e, tuple) else e
        r = fn(centre)
        if kind == OK:
            ok = {"ls": 207, "stat": 207, "get": 200, "put": 201, "mkdir": 201, "rm": 204}[op]
            if r.status != ok:
                problems.append(f"{op}: expected {ok}, got {r}")
            elif op == "get" and r.body != PDF1:
                problems.append("get: wrong bytes")
            elif op == "ls" and STATUS[centre] == "active" and folder not in dav.names(f"/{centre}/", user):
                problems.append(f"ls: {folder} not listed")
        elif kind == DENIED:
            if r.status != 403 or (e[1] and e[1] not in r.text):
                problems.append(f"{op}: expected 403{f' naming {e[1]!r}' if e[1] else ''}, got {r}")
        elif kind == MISSING:
            if r.status not in (404, 409):
                problems.append(f"{op}: expected not found, got {r}")
        else:  # HIDDEN
            g = fn(GHOST)
            if g.status not in (404, 409):
                problems.append(f"{op}: the reference request on a non-existent centre answered {g}")
            if (r.status, normalize(r.body, centre)) != (g.status, normalize(g.body, GHOST)):
                problems.append(f"{op}: expected exactly the answer for a non-existent centre ({g}), got {r}")

    # the final state, as stored: exactly the allowed changes happened
    if STATUS[centre] == "active":
        docs = set(documents(world, centre, folder))
        want = {SEED, RN} | ({RM} if exp["rm"] != OK else set()) | ({"put.pdf"} if exp["put"] == OK else set())
        if docs != want:
            problems.append(f"final state: documents {sorted(docs)}, expected {sorted(want)}")
        with world.repo.read() as c:
            sub = c.execute(sa.text("select count(*) from folders where institution_id = :i and path = :p"),
                            {"i": centre, "p": f"{folder}/sub"}).scalar()
        if bool(sub) != (exp["mkdir"] == OK):
            problems.append(f"final state: subfolder {'missing' if not sub else 'created'}")
    else:
        if f"{folder}-put.pdf" in documents(world, centre, "", state="committed"):
            problems.append("final state: a document was stored in a centre that has not switched over")
        with world.repo.read() as c:
            if c.execute(sa.text("select count(*) from folders where institution_id = :i and path = :p"),
                         {"i": centre, "p": f"{folder}-sub"}).scalar():
                problems.append("final state: a folder was created in a centre that has not switched over")
    assert not problems, f"{label} ({user} on {STATUS[centre]} centre):\n  " + "\n  ".join(problems)


def test_machine_accounts_have_no_webdav_login(world, dav):
    """Uploaders and archivers log in with keys only: whatever password they send, WebDAV answers 401."""
    for user in ("podmi", "arch-a"):
        for pw in ("", STAFF_PASSWORD, "x" * 20):
            r = dav.request("PROPFIND", "/", headers={"Depth": "1"}, user=user, password=pw)
            assert r.status == 401, (user, r)


# -- authentication ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/dav/", f"/dav/{CENTRE_A}/", f"/dav/{GHOST}/no/such/doc.pdf", "/dav", "/",
                                  "/elsewhere"])
def test_options_without_credentials(world, dav, path):
    r = dav.request("OPTIONS", path, raw_path=True)
    assert r.status == 200, r
    assert {"1", "2"} <= {v.strip() for v in r.headers.get("dav", "").split(",")}, r.headers
    assert r.headers.get("ms-author-via") == "DAV", r.headers
    assert r.body == b""


NO_AUTH_REQUESTS = [
    ("GET", {}, None), ("HEAD", {}, None), ("PUT", {}, PDF1), ("DELETE", {}, None),
    ("PROPFIND", {"Depth": "0"}, None), ("PROPFIND", {"Depth": "1"}, None), ("PROPFIND", {"Depth": "infinity"}, None),
    ("PROPFIND", {}, None), ("PROPFIND", {"Depth": "1", "Content-Type": "application/xml"}, "bomb"),
    ("PROPPATCH", {}, None), ("MKCOL", {}, None), ("COPY", {"Destination": "/dav/x"}, None),
    ("MOVE", {"Destination": "/dav/x"}, None), ("LOCK", {"Content-Type": "application/xml"}, LOCKINFO),
    ("UNLOCK", {"Lock-Token": "<opaquelocktoken:x>"}, None), ("POST", {}, None), ("PATCH", {}, None),
]


def _no_auth_id(method: str, headers: dict, body) -> str:
    if method != "PROPFIND":
        return method
    return f"PROPFIND-{headers.get('Depth', 'nodepth')}" + ("-xml-bomb" if body == "bomb" else "")


@pytest.mark.parametrize("method,headers,body", NO_AUTH_REQUESTS, ids=[_no_auth_id(*r) for r in NO_AUTH_REQUESTS])
def test_no_credentials_gets_401(world, dav, folder, method, headers, body):
    path = f"/{CENTRE_A}/{folder}/anon.pdf"
    r = dav.request(method, path, body=BILLION_LAUGHS if body == "bomb" else body, headers=headers)
    assert r.status == 401, f"{method} {headers} without credentials: {r}"
    assert r.headers.get("www-authenticate", "").startswith("Basic"), r.headers
    assert "digest" not in r.headers.get("www-authenticate", "").lower()
    assert documents(world, CENTRE_A, folder, state=None) == {}


def test_wrong_password_gets_401_whatever_was_wrong(world, dav):
    answers = []
    for user, pw in (("staff-a", "wrong-password-12"), ("staff-a", ""), ("nobody-here", STAFF_PASSWORD),
                     ("CPAS\\staff-a", "wrong-password-12")):
        for method, headers in (("PROPFIND", {"Depth": "1"}), ("GET", {})):
            r = dav.request(method, f"/{CENTRE_A}/", headers=headers, user=user, password=pw)
            assert r.status == 401, (user, method, r)
            answers.append((method, r.status, r.body, r.headers.get("www-authenticate")))
    by_method = {}
    for method, *rest in answers:
        by_method.setdefault(method, set()).add(tuple(rest))
    assert all(len(v) == 1 for v in by_method.values()), f"the answer tells what was wrong: {by_method}"
    failed = [e for e in world.audit("login", limit=200) if e.outcome == "failed" and e.protocol == "webdav"]
    assert {e.actor for e in failed} >= {"staff-a", "nobody-here"}


def test_domain_backslash_user_is_accepted(world, dav, folder, tmp_path):
    sftp_put(world, "podmi", CENTRE_A, folder, {"dom.pdf": PDF1}, tmp_path)
    for user in ("OCMW\\staff-a", "ocmw.local\\staff-a"):
        r = dav.request("PROPFIND", f"/{CENTRE_A}/{folder}/", headers={"Depth": "1"}, user=user,
                        password=STAFF_PASSWORD)
        assert r.status == 207, (user, r)
        assert "dom.pdf" in r.text
        g = dav.curl(dav.url(f"/{CENTRE_A}/{folder}/dom.pdf"), user=user, password=STAFF_PASSWORD, tmp=tmp_path)
        assert (g.status, g.body) == (200, PDF1)
    logins = [e for e in world.audit("login", limit=100) if e.protocol == "webdav" and e.outcome == "ok"]
    assert "staff-a" in {e.actor for e in logins}
    assert not any("\\" in e.actor for e in logins)


# -- interrupted uploads -----------------------------------------------------------------------------------------
def raw_put(dav: Dav, path: str, headers: dict[str, str], body: bytes, user: str = WRITER) -> None:
    """Send a PUT over a raw TLS socket, with exactly ``body`` after the headers, then drop the connection."""
    pw = PASSWORDS[user]
    head = (f"PUT {dav.href(path)} HTTP/1.1\r\nHost: 127.0.0.1:{dav.port}\r\n"
            f"Authorization: Basic {base64.b64encode(f'{user}:{pw}'.encode()).decode()}\r\n"
            "Content-Type: application/pdf\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n")
    sock = dav.ctx.wrap_socket(socket.create_connection(("127.0.0.1", dav.port), timeout=10),
                               server_hostname="127.0.0.1")
    try:
        sock.sendall(head.encode() + body)
        time.sleep(0.3)
    finally:
        sock.close()


def wait_for_abort(world, path: str, timeout: float = 15) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ev = [e for e in audit_events(world, "upload", path) if e.outcome == "aborted"]
        if ev:
            return ev
        time.sleep(0.1)
    raise AssertionError(f"no 'upload aborted' on the record for {path}: "
                         f"{[(e.outcome, e.detail) for e in audit_events(world, 'upload', path)]}")


@pytest.mark.parametrize("how", ["short-content-length", "chunked-never-terminated"])
def test_put_cut_off_midway_leaves_nothing(world, dav, folder, how):
    assert dav.request("MKCOL", f"/{CENTRE_A}/{folder}/", user=WRITER).status == 201
    path = f"/{CENTRE_A}/{folder}/afgebroken.pdf"
    data = PDF3  # a whole valid PDF goes out: only the framing says the body is incomplete
    blobs_before = set(world.services.blobs.list_ids())
    committed_before = committed_count(world)

    if how == "short-content-length":
        raw_put(dav, path, {"Content-Length": str(len(data) + 4096)}, data)
    else:
        raw_put(dav, path, {"Transfer-Encoding": "chunked"}, b"%x\r\n%s\r\n" % (len(data), data))

    aborted = wait_for_abort(world, path)
    assert len(aborted) == 1
    time.sleep(0.2)
    assert dav.request("GET", path, user="staff-a").status == 404
    assert dav.names(f"/{CENTRE_A}/{folder}/", "staff-a") == {}
    rows = documents(world, CENTRE_A, folder, state=None)
    assert {s for r in rows.values() for s, _, _ in r} <= {"aborted"}, rows
    assert committed_count(world) == committed_before
    assert set(world.services.blobs.list_ids()) - blobs_before == set(), "a blob was left behind"
    left = [t.blob_id for t in world.services.blobs.list_temporary()]
    assert not any(blob in name for r in rows.values() for _, blob, _ in r for name in left), left
    # the server still answers, and the same name can be uploaded whole afterwards
    ok = dav.request("PUT", path, body=data, user=WRITER)
    assert ok.status == 201, ok
    assert dav.request("GET", path, user="staff-a").body == data


def committed_count(world) -> int:
    with world.repo.read() as c:
        return c.execute(sa.text("select count(*) from documents where state = 'committed'")).scalar()


# -- XML safety --------------------------------------------------------------------------------------------------
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&lol9;</D:displayname></D:prop></D:propfind>
"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE foo [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&xxe;</D:displayname></D:prop></D:propfind>
"""
EXTERNAL_PROPPATCH = b"""<?xml version="1.0"?>
<!DOCTYPE foo [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><x:leak xmlns:x="urn:x">&xxe;</x:leak></D:prop></D:set>
</D:propertyupdate>
"""
EXTERNAL_LOCK = b"""<?xml version="1.0"?>
<!DOCTYPE foo [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype>
<D:owner>&xxe;</D:owner></D:lockinfo>
"""


@pytest.mark.parametrize("method,body", [("PROPFIND", BILLION_LAUGHS), ("PROPFIND", EXTERNAL_ENTITY),
                                         ("PROPPATCH", EXTERNAL_PROPPATCH), ("LOCK", EXTERNAL_LOCK)],
                         ids=["propfind-billion-laughs", "propfind-external-entity", "proppatch-external-entity",
                              "lock-external-entity"])
@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_xml_entities_are_refused(world, dav, folder, tmp_path, method, body, chunked):
    sftp_put(world, "podmi", CENTRE_A, folder, {"x.pdf": PDF1}, tmp_path)
    target = f"/{CENTRE_A}/{folder}/x.pdf" if method != "PROPFIND" else f"/{CENTRE_A}/{folder}/"
    (tmp_path / "body.xml").write_bytes(body)
    args = ["-X", method, "-H", "Content-Type: application/xml", "-H", "Depth: 0",
            "--data-binary", f"@{tmp_path / 'body.xml'}"]
    if chunked:
        args += ["-H", "Transfer-Encoding: chunked"]
    t0 = time.monotonic()
    r = dav.curl(*args, dav.url(target), user=MOVER, tmp=tmp_path)
    assert r.status == 400, r
    assert "root:" not in r.text and "lol" * 10 not in r.text
    assert time.monotonic() - t0 < 5
    # nothing was locked or stored, and the server still answers
    assert b"urn:x" not in dav.request("PROPFIND", f"/{CENTRE_A}/{folder}/x.pdf", headers={"Depth": "0"},
                                       user="staff-a").body
    assert dav.request("DELETE", f"/{CENTRE_A}/{folder}/x.pdf", user="staff-a-rm").status == 204
    assert dav.request("PROPFIND", "/", headers={"Depth": "1"}, user="staff-a").status == 207


# -- the listing page --------------------------------------------------------------------------------------------
class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag == "a":
            self.links += [v for k, v in attrs if k == "href"]


def check_safe_page(r: Answer) -> _Links:
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers.get("content-security-policy", "")
    directives = {d.strip().split()[0]: d.strip().split()[1:] for d in csp.split(";") if d.strip()}
    scripts = directives.get("script-src", directives.get("default-src"))
    assert scripts is not None, f"no script policy: {csp!r}"
    assert "'unsafe-inline'" not in scripts and "*" not in scripts, csp
    assert directives.get("default-src") == ["'none'"] or scripts == ["'none'"], csp
    assert r.headers.get("x-content-type-options") == "nosniff"
    parser = _Links()
    parser.feed(r.text)
    assert "script" not in parser.tags and "<script" not in r.text.lower()
    return parser


def test_listing_escapes_the_issue_example_name(world, dav, folder, tmp_path):
    """Issue 3 part 5: a document called ``<img src=x onerror=alert(1)>.pdf`` is shown as text."""
    name = "<img src=x onerror=alert(1)>.pdf"
    sftp_put(world, "podmi", CENTRE_A, folder, {name: PDF1, "gewoon.pdf": PDF2}, tmp_path)
    url = dav.url(f"/{CENTRE_A}/{folder}/")
    r = dav.request("GET", urlsplit(url).path, raw_path=True, user="staff-a")
    page = check_safe_page(r)
    assert "&lt;img" in r.text and "<img" not in r.text, r.text
    assert "img" not in page.tags
    for link in page.links:
        if link != "../":
            got = dav.request("GET", urlsplit(urljoin(url, link)).path, raw_path=True, user="staff-a")
            assert got.status == 200 and got.body in (PDF1, PDF2), (link, got)
    assert len([x for x in page.links if x != "../"]) == 2


def test_listing_escapes_names_and_centre_names_and_has_download_links(world, dav, folder, tmp_path):
    evil = with_check("03330099")
    world.admin.add_institution(evil, '<img src=x onerror=alert(1)> & "OCMW" <script>alert(2)</script>', "active")
    world.admin.add_account("wd-viewer", "staff", password="wd-viewer-password")
    world.admin.grant("wd-viewer", evil)
    PASSWORDS["wd-viewer"] = "wd-viewer-password"
    names = {"a&b'c.pdf": PDF1, "x;y=z (1) %41.pdf": PDF2, "émile & zoë.pdf": PDF3}
    sftp_put(world, "podmi", evil, folder, names, tmp_path)

    root = dav.request("GET", "/dav/", raw_path=True, user="wd-viewer")
    page = check_safe_page(root)
    assert "<img" not in root.text and "&lt;img src=x onerror=alert(1)&gt;" in root.text, root.text
    assert "&lt;script&gt;" in root.text
    assert "img" not in page.tags
    assert f"{evil}/" in page.links

    url = dav.url(f"/{evil}/{folder}/")
    r = dav.request("GET", urlsplit(url).path, raw_path=True, user="wd-viewer")
    page = check_safe_page(r)
    assert "a&amp;b" in r.text and "a&b'" not in r.text
    got = {}
    for link in page.links:
        if link == "../":
            continue
        d = dav.request("GET", urlsplit(urljoin(url, link)).path, raw_path=True, user="wd-viewer")
        assert d.status == 200, (link, d)
        got[unquote(link)] = d.body
    assert got == names


# -- SFTP and WebDAV see the same mailbox ------------------------------------------------------------------------
def test_sftp_upload_is_visible_over_webdav_at_once(world, dav, folder, tmp_path):
    assert dav.request("MKCOL", f"/{CENTRE_A}/{folder}/", user=WRITER).status == 201
    assert dav.names(f"/{CENTRE_A}/{folder}/", "staff-a") == {}
    sftp_put(world, "podmi", CENTRE_A, folder, {"nieuw.pdf": PDF3}, tmp_path)
    listing = dav.names(f"/{CENTRE_A}/{folder}/", "staff-a")
    assert set(listing) == {"nieuw.pdf"} and listing["nieuw.pdf"]["size"] == len(PDF3)
    assert dav.request("GET", f"/{CENTRE_A}/{folder}/nieuw.pdf", user="staff-a").body == PDF3


def test_webdav_put_is_visible_over_sftp_at_once(world, dav, folder, tmp_path):
    assert dav.request("MKCOL", f"/{CENTRE_A}/{folder}/", user=WRITER).status == 201
    r = dav.request("PUT", f"/{CENTRE_A}/{folder}/via-dav.pdf", body=PDF2, user=WRITER)
    assert r.status == 201, r
    out = tmp_path / "fetched.pdf"
    p = world.sftp("staff-a", f'ls -l "/{CENTRE_A}/{folder}"\nget "/{CENTRE_A}/{folder}/via-dav.pdf" "{out}"\n')
    assert p.returncode == 0, p.stdout + p.stderr
    assert "via-dav.pdf" in p.stdout
    assert out.read_bytes() == PDF2
