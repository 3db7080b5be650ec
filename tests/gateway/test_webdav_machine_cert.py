"""Machine accounts on the HTTPS port: a client certificate pinned to the account by fingerprint."""
from __future__ import annotations

import subprocess

import pytest

from storage.errors import AdminError
from tests import pdfsamples
from tests.conftest import CENTRE_A, STAFF_PASSWORD
from tests.machinecert import add_machine, make_cert


def curl(*args):
    return subprocess.run(["curl", "-sk", "-o", "-", "-w", "\n%{http_code}", *args], capture_output=True,
                          timeout=60)


def test_uploader_puts_by_webdav_with_its_pinned_certificate(world, tmp_path):
    cert, key = add_machine(world, tmp_path, "podmi-dav")
    pdf = pdfsamples.minimal_pdf("by webdav with a certificate")
    (tmp_path / "doc.pdf").write_bytes(pdf)
    url = f"{world.dav_url}/{CENTRE_A}/dav-cert/doc.pdf"
    r = curl("--cert", str(cert), "--key", str(key), "-X", "MKCOL", f"{world.dav_url}/{CENTRE_A}/dav-cert/")
    assert r.stdout.endswith(b"201"), r.stdout
    r = curl("--cert", str(cert), "--key", str(key), "-T", str(tmp_path / "doc.pdf"), url)
    assert r.stdout.endswith(b"201"), r.stdout
    # the centre's staff read it; the uploader itself may not
    r = curl("-u", f"staff-a:{STAFF_PASSWORD}", url)
    assert r.stdout[:-4] == pdf
    r = curl("--cert", str(cert), "--key", str(key), url)
    assert r.stdout.endswith(b"403")
    events = [e for e in world.audit(limit=30) if e.actor == "podmi-dav"]
    assert ("login", "ok") in [(e.action, e.outcome) for e in events]
    assert any(e.action == "upload" and e.outcome == "committed" and e.path.endswith("/dav-cert/doc.pdf")
               for e in events)


def test_unknown_certificate_gets_401(world, tmp_path):
    cert, key = make_cert(tmp_path, "nobody")
    r = curl("--cert", str(cert), "--key", str(key), f"{world.dav_url}/{CENTRE_A}/")
    # an untrusted self-signed certificate fails the handshake, or at best gets no session
    assert r.returncode != 0 or r.stdout.endswith(b"401")


def test_people_do_not_get_pinned_certificates(world, tmp_path):
    cert, _ = make_cert(tmp_path, "staff-cert")
    with pytest.raises(AdminError, match="machine accounts"):
        world.admin.add_account("staff-cert", "staff", password="a long password 1", client_certs=[cert.read_text()])


def test_windows_probes_the_server_root(world):
    base = f"https://127.0.0.1:{world.dav_port}"
    r = subprocess.run(["curl", "-sk", "-i", "-X", "OPTIONS", base + "/"], capture_output=True, timeout=30)
    assert b" 200 " in r.stdout.split(b"\r\n")[0] and b"MS-Author-Via: DAV" in r.stdout
    r = subprocess.run(["curl", "-sk", "-X", "PROPFIND", "-H", "Depth: 1", base + "/"], capture_output=True,
                       timeout=30)
    assert b"<D:href>/dav/</D:href>" in r.stdout and b"<D:collection/>" in r.stdout
