"""TLS client certificates on the HTTPS port, judged in auth/ (issue 9, items 6 and 17), with curl:

- a certificate pinned to a machine account is that machine and nothing else: it never issues a certificate
  anyone is believed about (a v3 certificate with keyCertSign and no basicConstraints, a version 1 certificate),
  and its own subject serialNumber never makes it a person's eID -- not over WebDAV, not on the REST API's or the
  account page's strong login;
- a person's eID is believed only when its chain verifies against the configured eID trust anchors;
- a certificate pinned with the CLI while the gateway runs works within ``webdav.trust_refresh_seconds``, no restart.
"""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.conftest import CENTRE_A, CENTRE_B, cli
from tests.people import JAN_NRN, JAN_PW, curl, logins, start_people_gateway
from tests.pki import EidPki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = EidPki(tmp_path_factory.mktemp("pki"))
    p.jan = p.person("jan", "Jan", "Peeters", JAN_NRN)
    p.write_crl([])
    return p


@pytest.fixture(scope="module")
def gw(tmp_path_factory, pki):
    """Second factor required, the eID trust anchors and a CRL; Jan Peeters (centre A) with his NRN."""
    g = start_people_gateway(tmp_path_factory.mktemp("client-certs"), pki)
    yield g
    g.stop()
    g.services.close()


def pin(gw, account: str, cert, centre: str = CENTRE_B) -> None:
    """An archiver of ``centre`` with ``cert`` pinned to it, trusted by the running gateway."""
    gw.admin.add_account(account, "archiver", centre, client_certs=[cert.cert.read_text()])
    gw._server.https.refresh_trust()


def curl_json(gw, path: str, body: dict, cert=None) -> tuple[int, dict]:
    """POST a JSON body to the gateway's /api/ with curl (checking the server's certificate)."""
    cmd = ["curl", "-sS", "--max-time", "30", "--cacert", str(gw.config.tls_cert_path), "-o", "-", "-w",
           "\n%{http_code}", "-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
    if cert is not None:
        cmd += ["--cert", str(cert.cert), "--key", str(cert.key)]
    p = subprocess.run(cmd + [f"https://127.0.0.1:{gw.dav_port}/api{path}"], capture_output=True, timeout=60)
    out, _, code = p.stdout.rpartition(b"\n")
    return int(code or 0), json.loads(out) if out.strip().startswith(b"{") else {}


# -- item 6: pinned certificates issue nothing and are no eID -------------------------------------------------
@pytest.mark.parametrize("version1", [False, True], ids=["keycertsign-without-basic-constraints", "version-1"])
def test_a_pinned_certificate_issues_no_eid(gw, pki, version1):
    kind = "v1" if version1 else "kcs"
    issuer, pinned = pki.pinnable_issuer(f"pinned-issuer-{kind}", version1=version1)
    pin(gw, f"arch-issuer-{kind}", pinned)
    # the leaf it signed carries Jan's national register number, as his eID does
    forged = pki.person(f"forged-jan-{kind}", "Jan", "Peeters", JAN_NRN, issuer=issuer)
    ok_before = len(logins(gw, "jan.peeters", "ok"))

    r = curl(gw, "/", user="jan.peeters", secret=JAN_PW, cert=forged)
    assert r.failed or r.code == 401, f"a leaf issued by a pinned certificate opened Jan's drive: {r}"
    status, _ = curl_json(gw, "/session", {"username": "jan.peeters", "password": JAN_PW}, cert=forged)
    assert status in (0, 401), status
    assert len(logins(gw, "jan.peeters", "ok")) == ok_before
    # nor is the forged leaf the machine: only the pinned certificate itself is
    r = curl(gw, "/", cert=forged)
    assert r.failed or r.code == 401, r
    r = curl(gw, "/", cert=pinned)
    assert r.code == 200 and CENTRE_B in r.body and CENTRE_A not in r.body, r


def test_a_pinned_certificate_with_a_national_register_number_is_no_eid(gw, pki, tmp_path):
    pinned = pki.self_signed("pinned-with-nrn", "Jan Peeters (Authentication)", nrn=JAN_NRN)
    pin(gw, "arch-with-nrn", pinned)
    ok_before = len(logins(gw, "jan.peeters", "ok"))

    # the REST API's strong login: with this certificate and Jan's password, no token code -> refused
    status, body = curl_json(gw, "/session", {"username": "jan.peeters", "password": JAN_PW}, cert=pinned)
    assert status == 401, f"a pinned certificate stood in for Jan's eID on the API: {status} {body}"
    # the account page's login: the certificate is not taken for an eID (the form asks for the token card)
    p = subprocess.run(["curl", "-sS", "--max-time", "30", "--cacert", str(gw.config.tls_cert_path),
                        "--cert", str(pinned.cert), "--key", str(pinned.key), "-o", "-", "-w", "\n%{http_code}",
                        "--data-urlencode", "username=jan.peeters", "--data-urlencode", f"password={JAN_PW}",
                        f"https://127.0.0.1:{gw.dav_port}/account/login"], capture_output=True, timeout=60)
    page, _, code = p.stdout.rpartition(b"\n")
    assert code == b"401", (code, page[-300:])
    # WebDAV: the certificate logs in its machine account (centre B), never Jan (centre A)
    r = curl(gw, "/", user="jan.peeters", secret=JAN_PW, cert=pinned)
    assert r.code == 200 and CENTRE_B in r.body and CENTRE_A not in r.body, r
    assert len(logins(gw, "jan.peeters", "ok")) == ok_before
    assert "method=client-certificate" in [e.detail for e in logins(gw, "arch-with-nrn", "ok")]


def test_the_real_eid_still_opens_the_drive_and_the_api(gw, pki):
    r = curl(gw, "/", user="jan.peeters", secret=JAN_PW, cert=pki.jan)
    assert r.code == 200 and CENTRE_A in r.body and CENTRE_B not in r.body, r
    status, body = curl_json(gw, "/session", {"username": "jan.peeters", "password": JAN_PW}, cert=pki.jan)
    assert status == 201 and body["second_factor"] == "eid", body
    assert "method=password+eid" in [e.detail for e in logins(gw, "jan.peeters", "ok")]


# -- item 17: a certificate pinned while the gateway runs ------------------------------------------------------
def test_a_certificate_pinned_with_the_cli_works_without_a_restart(gw, pki):
    bound = gw.config.webdav.trust_refresh_seconds
    assert bound <= 5, "README documents at most 5 seconds"
    cert = pki.self_signed("pinned-live")
    assert curl(gw, "/", cert=cert).code != 200  # not yet pinned
    p = cli("account", "add", "arch-live", "--role", "archiver", "--institution", CENTRE_A,
            "--client-cert", str(cert.cert), data_dir=gw.data_dir)
    assert p.returncode == 0, p.stderr
    pinned_at = time.monotonic()
    while True:
        r = curl(gw, "/", cert=cert)
        waited = time.monotonic() - pinned_at
        if r.code == 200 or waited > bound + 3:
            break
        time.sleep(0.25)
    assert r.code == 200 and CENTRE_A in r.body, f"not trusted {waited:.1f} s after pinning (bound {bound} s): {r}"
    assert waited <= bound + 3
