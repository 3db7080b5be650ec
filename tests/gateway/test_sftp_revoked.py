"""Machine accounts over SSH: OpenSSH user certificates from a trusted CA, and a revoked-keys list that refuses
a listed key bare or inside a still-valid certificate."""
from __future__ import annotations

import subprocess
import time

import pytest

from tests.conftest import CENTRE_A, SFTP_OPTS, keygen, ssh_env


@pytest.fixture
def setup(make_gateway, tmp_path):
    ca = keygen(tmp_path / "user_ca")
    revoked = tmp_path / "revoked_keys"
    revoked.write_text("")
    gw = make_gateway(populated=False, env={"INSTPAGES_SFTP_USER_CA_KEYS": f"{ca}.pub",
                                            "INSTPAGES_SFTP_REVOKED_KEYS": str(revoked)})
    gw.admin.add_institution(CENTRE_A, "A", "active")
    certified = keygen(tmp_path / "certified")
    subprocess.run(["ssh-keygen", "-q", "-s", str(ca), "-I", "podmi-cert", "-n", "podmi-cert", "-V", "-5m:+1h",
                    f"{certified}.pub"], check=True)
    gw.admin.add_account("podmi-cert", "uploader")          # no key of its own: the certificate proves it
    bare = keygen(tmp_path / "bare")
    gw.admin.add_account("podmi-bare", "uploader", ssh_keys=[(tmp_path / "bare.pub").read_text()])
    return gw, revoked, certified, bare


def sftp(gw, user, key, extra=()):
    return subprocess.run(["sftp", *SFTP_OPTS, "-o", "BatchMode=yes", "-o", "PreferredAuthentications=publickey",
                           "-i", str(key), *extra, "-P", str(gw.port), "-b", "-", f"{user}@127.0.0.1"],
                          input="ls /\n", capture_output=True, text=True, env=ssh_env(), timeout=60)


def test_certificate_then_revoked(setup):
    gw, revoked, certified, bare = setup
    cert_opt = ["-o", f"CertificateFile={certified}-cert.pub"]
    assert sftp(gw, "podmi-cert", certified, cert_opt).returncode == 0
    assert sftp(gw, "podmi-bare", bare).returncode == 0
    # the certificate's key and the bare key are revoked: both refused, though the certificate is still valid
    revoked.write_text((certified.parent / "certified.pub").read_text() + (bare.parent / "bare.pub").read_text())
    assert gw._server.sftp.reload_revoked() == 2
    r = sftp(gw, "podmi-cert", certified, cert_opt)
    assert r.returncode == 255 and "Permission denied" in r.stderr
    assert sftp(gw, "podmi-bare", bare).returncode == 255
    deadline = time.monotonic() + 10  # a refused key is recorded when the connection closes
    while True:
        failed = [e for e in gw.audit(action="login") if e.outcome == "failed"]
        if {e.actor for e in failed} >= {"podmi-cert", "podmi-bare"} or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert {e.actor for e in failed} >= {"podmi-cert", "podmi-bare"}
    assert any("revoked key" in e.detail for e in failed)
