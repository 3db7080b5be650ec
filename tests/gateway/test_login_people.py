"""People log in with two factors, as the circulars require (issue 4), against a real gateway with
``auth.second_factor = required``:

- the civil-servant token card over SFTP, driven by OpenSSH ``sftp`` (SSH_ASKPASS answers the password and the
  code whose number the server asks) and by the asyncssh client; the same number is asked again until it is
  answered or expires; a revoked card is refused, a reissued one works; bare keys of people only where an
  administrator allowed them; a password alone is never enough;
- the eID card over WebDAV with ``curl``: a verified client certificate (tests/pki.py builds the "Belgium Root
  CA" -> "Citizen CA" chain) plus the account's password; expired, untrusted, serverAuth-only and revoked
  certificates fail the TLS handshake; the person is identified by the certificate's serialNumber (the national
  register number), never by its common name;
- device passwords (WebDAV only) with ``curl`` and ``rclone``: created, listed with their last use, revoked,
  expired;
- machine accounts: keys and certificates only, a password is refused everywhere.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import time
from pathlib import Path

import asyncssh
import pytest

from auth.authenticator import hash_password
from storage.errors import AdminError
from storage.repository import DP, TCH
from tests import pdfsamples
from tests.conftest import CENTRE_A, CENTRE_B, SFTP_OPTS, keygen, ssh_env, start_gateway
from tests.people import (GENERIC_SSH_REFUSAL, JAN_NRN, JAN_PW, OTHER_JAN_NRN, OTHER_JAN_PW, PEOPLE_ENV, TOKEN_CODES,
                          account_id, add_person, challenge_row, curl, kbd_login, logins, openssh_token_sftp, run,
                          start_people_gateway, wait_logins, wrong_card)
from tests.pki import SERVER_AUTH, EidPki


# -- fixtures -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = EidPki(tmp_path_factory.mktemp("pki"))
    p.jan = p.person("jan", "Jan", "Peeters", JAN_NRN)
    p.jan_lost = p.person("jan-lost-card", "Jan", "Peeters", JAN_NRN)       # his previous card: revoked
    p.jan_expired = p.person("jan-expired", "Jan", "Peeters", JAN_NRN, expired=True)
    p.jan_lookalike = p.person("jan-lookalike", "Jan", "Peeters", JAN_NRN, issuer=p.lookalike())
    p.jan_server_only = p.person("jan-server-eku", "Jan", "Peeters", JAN_NRN, eku=[SERVER_AUTH])
    p.other_jan = p.person("other-jan", "Jan", "Peeters", OTHER_JAN_NRN)  # same CN, another serialNumber
    p.write_crl([p.jan_lost])
    return p


@pytest.fixture(scope="module")
def gw(tmp_path_factory, pki):
    """One gateway for this module: second factor required, the eID trust anchors and the Citizen CA's CRL."""
    g = start_people_gateway(tmp_path_factory.mktemp("people"), pki)
    add_person(g, "jan.peeters2", OTHER_JAN_PW, CENTRE_B, nrn=OTHER_JAN_NRN)
    yield g
    g.stop()
    g.services.close()


@pytest.fixture(scope="module")
def gw_without_crl(tmp_path_factory, pki):
    """The same eID trust anchors, no CRL: centre A and Jan Peeters only."""
    g = start_gateway(tmp_path_factory.mktemp("people-nocrl") / "var",
                      env=dict(PEOPLE_ENV, INSTPAGES_WEBDAV_CLIENT_CA_FILE=str(pki.ca_bundle)))
    g.admin.add_institution(CENTRE_A, "OCMW Aalst-test", "active")
    add_person(g, "jan.peeters", JAN_PW, CENTRE_A, nrn=JAN_NRN)
    yield g
    g.stop()
    g.services.close()


@pytest.fixture(scope="module")
def documents(gw, tmp_path_factory):
    """Two documents POD MI delivered into centre A's mailbox (folder "dp"), by SFTP with its key."""
    docs = {"maandstaat-2026-01.pdf": pdfsamples.minimal_pdf("maandstaat januari"),
            "lijst geweigerd.pdf": pdfsamples.minimal_pdf("lijst geweigerde formulieren", pages=3)}

    async def deliver():
        async with gw.connect("podmi") as conn, conn.start_sftp_client() as s:
            await s.mkdir(f"/{CENTRE_A}/dp")
            for name, data in docs.items():
                async with s.open(f"/{CENTRE_A}/dp/{name}", "wb") as f:
                    await f.write(data)

    run(deliver())
    return docs


# -- token card over SFTP -------------------------------------------------------------------------------------
def test_token_card_with_openssh_sftp_asks_the_same_number_until_answered(gw, tmp_path):
    add_person(gw, "tok-an", "an-token-passw0rd", CENTRE_A)
    card = gw.admin.issue_token_card("tok-an")
    assert sorted(n for n, _ in card) == list(range(1, TOKEN_CODES + 1))
    assert all(re.fullmatch(r"\d{6}", code) for _, code in card)

    # a wrong code: refused with the generic SSH answer; the server asked the password, then one code by number
    first = openssh_token_sftp(gw, "tok-an", "an-token-passw0rd", wrong_card(card), tmp_path)
    assert first.rc == 255, first
    assert GENERIC_SSH_REFUSAL in first.stderr and "token" not in first.stderr.lower()
    assert "Password" in first.prompts[0] and len(first.numbers) == 1, first.prompts
    number = first.numbers[0]
    row = challenge_row(gw, "tok-an")
    assert (row.number, row.expires_at > time.time()) == (number, True)

    # a second wrong answer: the very same challenge (same number, not re-drawn: same expiry)
    second = openssh_token_sftp(gw, "tok-an", "an-token-passw0rd", wrong_card(card), tmp_path)
    assert second.rc == 255 and second.numbers == [number], second
    assert tuple(challenge_row(gw, "tok-an")) == tuple(row)

    # the right code for that number: in, and the person sees the centre it was granted, only that one
    ok = openssh_token_sftp(gw, "tok-an", "an-token-passw0rd", card, tmp_path)
    assert ok.rc == 0, ok
    assert ok.numbers == [number]
    listed = [ln.strip().strip("/") for ln in ok.stdout.splitlines() if ln.strip() and not ln.startswith("sftp>")]
    assert listed == [CENTRE_A], ok.stdout
    assert challenge_row(gw, "tok-an") is None  # answered: closed

    failed = logins(gw, "tok-an", "failed")
    assert len(failed) == 2 and all(f"wrong or expired token code (number {number})" in e.detail for e in failed)
    assert [e.detail for e in logins(gw, "tok-an", "ok")] == ["method=password+token"]


def test_token_card_with_asyncssh_expiry_revocation_and_reissue(gw):
    add_person(gw, "tok-bo", "bo-token-passw0rd", CENTRE_B)
    card = gw.admin.issue_token_card("tok-bo")

    client, res = run(kbd_login(gw, "tok-bo", "bo-token-passw0rd", wrong_card(card)))
    assert isinstance(res, asyncssh.PermissionDenied), res
    assert client.prompts[0] == "Password: " and len(client.numbers) == 1, client.prompts
    number = client.numbers[0]

    # the open challenge expires: the next login is asked a freshly drawn challenge
    with gw.repo.write() as c:
        c.execute(TCH.update().where(TCH.c.account_id == account_id(gw, "tok-bo")).values(expires_at=time.time() - 1))
    client, res = run(kbd_login(gw, "tok-bo", "bo-token-passw0rd", card))
    assert res == [CENTRE_B], res
    assert client.prompts == ["Password: ", f"Code number {client.numbers[0]} of your token: "]
    assert any(e.detail == "method=password+token" for e in logins(gw, "tok-bo", "ok"))

    # a wrong password never reaches the code: refused all the same, with the same answer
    client, res = run(kbd_login(gw, "tok-bo", "not-bo-s-passw0rd", card))
    assert isinstance(res, asyncssh.PermissionDenied), res
    assert "wrong password" in logins(gw, "tok-bo", "failed")[0].detail

    # the card is revoked: its right answers no longer open anything
    gw.admin.revoke_token_card("tok-bo")
    client, res = run(kbd_login(gw, "tok-bo", "bo-token-passw0rd", card))
    assert isinstance(res, asyncssh.PermissionDenied), res
    assert client.numbers, client.prompts  # asked as usual: the refusal says nothing about the card
    assert "wrong or expired token code" in logins(gw, "tok-bo", "failed")[0].detail

    # a new card: its codes work, the old card's still do not
    new_card = gw.admin.issue_token_card("tok-bo")
    n_ok = len(logins(gw, "tok-bo", "ok"))
    client, res = run(kbd_login(gw, "tok-bo", "bo-token-passw0rd", new_card))
    assert res == [CENTRE_B], res
    assert len(logins(gw, "tok-bo", "ok")) == n_ok + 1
    if dict(new_card)[client.numbers[0]] != dict(card)[client.numbers[0]]:  # (1 in a million: same code)
        client, res = run(kbd_login(gw, "tok-bo", "bo-token-passw0rd", card))
        assert isinstance(res, asyncssh.PermissionDenied), res


def test_a_persons_bare_ssh_key_is_refused_unless_an_administrator_allows_it(gw, tmp_path):
    key = keygen(tmp_path / "key-ci")
    gw.admin.add_account("key-ci", "staff", password="ci-key-passw0rd", ssh_keys=[key.with_suffix(".pub").read_text()])
    gw.admin.grant("key-ci", CENTRE_A)
    gw.keys["key-ci"] = key
    p = gw.sftp("key-ci", "ls /\n")
    assert p.returncode == 255 and GENERIC_SSH_REFUSAL in p.stderr, p
    failed = wait_logins(gw, "key-ci", "failed")
    assert failed and "no accepted key" in failed[0].detail

    async def with_key():
        async with gw.connect("key-ci") as conn:
            return conn

    with pytest.raises(asyncssh.PermissionDenied):
        run(with_key())
    assert not logins(gw, "key-ci", "ok")

    # staff-a's key was allowed by an administrator (populate: allow_keys=True): that one works
    p = gw.sftp("staff-a", "ls -1 /\n")
    assert p.returncode == 0, p.stderr
    assert CENTRE_A in p.stdout and CENTRE_B not in p.stdout
    assert logins(gw, "staff-a", "ok")[0].detail == "method=publickey"


def test_a_password_alone_is_never_enough_and_not_even_offered(gw, tmp_path):
    async def password_only():
        async with asyncssh.connect("127.0.0.1", gw.port, username="staff-b-pw", password="b-only-passw0rd",
                                    known_hosts=None, agent_path=None, client_keys=None,
                                    preferred_auth="password"):
            pass

    add_person(gw, "staff-b-pw", "b-only-passw0rd", CENTRE_B)
    with pytest.raises(asyncssh.PermissionDenied):
        run(password_only())
    # OpenSSH lists the methods the server offers: no "password" among them
    env = ssh_env()
    env.update(SSH_ASKPASS="/bin/false", SSH_ASKPASS_REQUIRE="force")
    p = subprocess.run(["sftp", *SFTP_OPTS, "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no",
                        "-o", "BatchMode=no", "-P", str(gw.port), "-b", "-", "staff-b-pw@127.0.0.1"], input="ls\n",
                       capture_output=True, text=True, env=env, timeout=60, start_new_session=True)
    assert p.returncode == 255
    offered = re.search(r"Permission denied \(([^)]*)\)", p.stderr)
    assert offered, p.stderr
    assert "password" not in offered.group(1).split(","), offered.group(0)
    assert "keyboard-interactive" in offered.group(1).split(","), offered.group(0)
    assert not logins(gw, "staff-b-pw", "ok")


# -- eID over WebDAV ---------------------------------------------------------------------------------------------
def test_eid_certificate_and_password_open_the_drive(gw, pki):
    r = curl(gw, "/", user="jan.peeters", secret=JAN_PW, cert=pki.jan)
    assert r.code == 200, r
    assert CENTRE_A in r.body and CENTRE_B not in r.body
    r = curl(gw, "/", user="jan.peeters", secret=JAN_PW, cert=pki.jan, method="PROPFIND", headers=("Depth: 1",))
    assert r.code == 207 and f"/dav/{CENTRE_A}/" in r.body and CENTRE_B not in r.body, r
    assert "method=password+eid" in [e.detail for e in logins(gw, "jan.peeters", "ok")]

    # the certificate is the second factor, not a replacement for the first
    r = curl(gw, "/", user="jan.peeters", secret="not-jans-passw0rd", cert=pki.jan)
    assert r.code == 401, r
    assert "wrong password" in logins(gw, "jan.peeters", "failed")[0].detail


@pytest.mark.parametrize("which", ["jan_expired", "jan_lookalike", "jan_server_only"])
def test_bad_eid_certificates_fail_the_tls_handshake(gw, pki, which):
    """Expired; issued by a look-alike "Citizen CA" (same names, other keys); serverAuth only. With TLS 1.3 the
    refusal shows on the first read, so this asserts "no HTTP answer at all", not a curl exit code."""
    before = len(logins(gw, "jan.peeters"))
    r = curl(gw, "/", user="jan.peeters", secret=JAN_PW, cert=getattr(pki, which))
    assert r.failed, r
    assert len(logins(gw, "jan.peeters")) == before  # never reached HTTP, so no login at all


def test_the_person_is_the_certificates_serial_number_never_its_common_name(gw, pki):
    assert pki.other_jan.common_name == pki.jan.common_name and pki.other_jan.nrn != pki.jan.nrn
    # the other Jan Peeters' card and our Jan's password: refused
    r = curl(gw, "/", user="jan.peeters", secret=JAN_PW, cert=pki.other_jan)
    assert r.code == 401, r
    assert "belongs to someone else" in logins(gw, "jan.peeters", "failed")[0].detail
    # with his own account and password it is his drive, centre B only
    r = curl(gw, "/", user="jan.peeters2", secret=OTHER_JAN_PW, cert=pki.other_jan)
    assert r.code == 200 and CENTRE_B in r.body and CENTRE_A not in r.body, r


def test_no_certificate_and_a_plain_password_gets_401(gw):
    r = curl(gw, "/", user="jan.peeters", secret=JAN_PW)
    assert r.code == 401, r
    assert "enough" not in r.body and "password" not in r.body.lower()  # generic answer, the reason kept inside
    assert "password is not enough for a staff account over webdav" in logins(gw, "jan.peeters", "failed")[0].detail


def test_a_revoked_eid_certificate_is_refused_once_the_crl_is_configured(gw, gw_without_crl, pki):
    """gateway/config.py: "when set, a revoked client certificate fails the handshake". A refusal after the
    handshake (401) would do as well; a login would not."""
    ok_before = len(logins(gw, "jan.peeters", "ok"))
    r = curl(gw, "/", user="jan.peeters", secret=JAN_PW, cert=pki.jan_lost)
    assert r.failed or r.code == 401, r
    assert len(logins(gw, "jan.peeters", "ok")) == ok_before
    # control: the same certificate on a gateway that trusts the same CAs but has no CRL opens the drive
    r = curl(gw_without_crl, "/", user="jan.peeters", secret=JAN_PW, cert=pki.jan_lost)
    assert r.code == 200 and CENTRE_A in r.body, r


# -- device passwords ------------------------------------------------------------------------------------------
def rclone(gw, user: str, secret: str, *args: str, home: Path) -> subprocess.CompletedProcess:
    home.mkdir(parents=True, exist_ok=True)
    obscured = subprocess.run(["rclone", "obscure", secret], capture_output=True, text=True, check=True).stdout.strip()
    env = dict(os.environ, HOME=str(home), RCLONE_CONFIG=str(home / "rclone.conf"), RCLONE_CONFIG_X_TYPE="webdav",
               RCLONE_CONFIG_X_URL=gw.dav_url, RCLONE_CONFIG_X_VENDOR="other", RCLONE_CONFIG_X_USER=user,
               RCLONE_CONFIG_X_PASS=obscured)
    return subprocess.run(["rclone", "--ca-cert", str(gw.config.tls_cert_path), "--retries", "1",
                           "--low-level-retries", "1", *args], env=env, capture_output=True, text=True, timeout=90)


def test_device_password_works_with_curl_and_rclone_but_not_over_sftp(gw, documents, tmp_path):
    add_person(gw, "dev-di", "di-device-passw0rd", CENTRE_A)
    add_person(gw, "dev-ev", "ev-device-passw0rd", CENTRE_A)
    card = gw.admin.issue_token_card("dev-di")
    device_id, secret = gw.admin.create_device_password("dev-di", "laptop davfs2", days=30)
    assert secret.startswith("ipdp-")
    unused_id, _ = gw.admin.create_device_password("dev-di", "never used", days=30)

    r = curl(gw, "/", user="dev-di", secret=secret)
    assert r.code == 200 and CENTRE_A in r.body and CENTRE_B not in r.body, r
    assert "method=device-password" in [e.detail for e in logins(gw, "dev-di", "ok")]
    # scoped to its person: with another account name it opens nothing
    r = curl(gw, "/", user="dev-ev", secret=secret)
    assert r.code == 401, r

    ls = rclone(gw, "dev-di", secret, "lsf", "X:", home=tmp_path / "home")
    assert ls.returncode == 0, ls.stderr
    assert ls.stdout.split() == [f"{CENTRE_A}/"], ls.stdout
    out = tmp_path / "out"
    cp = rclone(gw, "dev-di", secret, "copy", f"X:{CENTRE_A}/dp", str(out), home=tmp_path / "home")
    assert cp.returncode == 0, cp.stderr
    assert {f.name: f.read_bytes() for f in out.iterdir()} == documents

    # WebDAV only: over SFTP the device password is not the person's password, even with the right token code
    s = openssh_token_sftp(gw, "dev-di", secret, card, tmp_path / "ssh")
    assert s.rc == 255, s
    client, res = run(kbd_login(gw, "dev-di", secret, card))
    assert isinstance(res, asyncssh.PermissionDenied), res
    assert not [e for e in logins(gw, "dev-di", "ok") if e.protocol == "sftp"]

    # the listing shows the last use of each device password, and which were never used
    listing = {d.id: d for d in gw.admin.device_passwords("dev-di")}
    used, unused = listing[device_id], listing[unused_id]
    assert used.label == "laptop davfs2" and not used.revoked
    assert used.last_used_at is not None
    assert abs((dt.datetime.now(dt.timezone.utc) - used.last_used_at).total_seconds()) < 300
    assert 29 <= (used.expires_at - used.created_at).days <= 30
    assert unused.last_used_at is None


def test_a_revoked_device_password_is_refused_at_once(gw):
    add_person(gw, "dev-fa", "fa-device-passw0rd", CENTRE_A)
    device_id, secret = gw.admin.create_device_password("dev-fa", "windows explorer")
    assert curl(gw, "/", user="dev-fa", secret=secret).code == 200
    gw.admin.revoke_device_password("dev-fa", device_id)
    assert [d.revoked for d in gw.admin.device_passwords("dev-fa")] == [True]
    r = curl(gw, "/", user="dev-fa", secret=secret)
    assert r.code == 401, f"a revoked device password still opens the drive: {r}"
    with pytest.raises(AdminError):
        gw.admin.revoke_device_password("dev-fa", device_id)  # already revoked


def test_an_expired_device_password_is_refused(gw):
    add_person(gw, "dev-gu", "gu-device-passw0rd", CENTRE_A)
    expired_id, expired = gw.admin.create_device_password("dev-gu", "old phone", days=1)
    _, live = gw.admin.create_device_password("dev-gu", "new phone", days=1)
    with gw.repo.write() as c:  # a day later, give or take
        c.execute(DP.update().where(DP.c.id == expired_id)
                  .values(expires_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)))
    r = curl(gw, "/", user="dev-gu", secret=expired)
    assert r.code == 401, r
    assert "not a valid device password" in logins(gw, "dev-gu", "failed")[0].detail
    r = curl(gw, "/", user="dev-gu", secret=live)
    assert r.code == 200, r


# -- machine accounts -------------------------------------------------------------------------------------------
def test_machine_accounts_use_keys_and_certificates_never_a_password(gw, pki, tmp_path):
    with pytest.raises(AdminError, match="not passwords"):
        gw.admin.add_account("podmi-pw", "uploader", password="uploader-passw0rd")
    with pytest.raises(AdminError):
        gw.admin.create_device_password("podmi", "drive")
    with pytest.raises(AdminError):
        gw.admin.issue_token_card("podmi")

    # its key works (with the second factor required for people)
    p = gw.sftp("podmi", "ls -1 /\n")
    assert p.returncode == 0, p.stderr
    assert logins(gw, "podmi", "ok")[0].detail == "method=publickey"

    # a password that got into the database anyway (and a token card, a device password) opens nothing
    pid = account_id(gw, "podmi")
    with gw.repo.write() as c:
        gw.repo.set_account(c, pid, password_hash=hash_password("uploader-passw0rd"))
    card = gw.services.mailbox.authenticator.tokens.issue(pid)
    _, secret = gw.services.mailbox.authenticator.devices.create(pid, "sneaked in")

    client, res = run(kbd_login(gw, "podmi", "uploader-passw0rd", card))
    assert isinstance(res, asyncssh.PermissionDenied), res
    assert "password+token is not enough for a uploader account over sftp" in logins(gw, "podmi", "failed")[0].detail
    s = openssh_token_sftp(gw, "podmi", "uploader-passw0rd", card, tmp_path / "ssh")
    assert s.rc == 255, s

    r = curl(gw, "/", user="podmi", secret="uploader-passw0rd")
    assert r.code == 401, r
    assert "password is not enough for a uploader account over webdav" in logins(gw, "podmi", "failed")[0].detail
    r = curl(gw, "/", user="podmi", secret=secret)
    assert r.code == 401, r
    assert "device-password is not enough" in logins(gw, "podmi", "failed")[0].detail
    # nor a person's eID-style login, even with a matching certificate
    r = curl(gw, "/", user="podmi", secret="uploader-passw0rd", cert=pki.jan)
    assert r.code == 401, r


def test_a_machine_certificate_pinned_by_fingerprint_works_next_to_the_eid_crl(gw, gw_without_crl, pki):
    """The HTTPS port trusts the eID chain and, in addition, the certificates pinned to machine accounts. An
    archive system with its pinned certificate lists its centre over WebDAV -- also where the operator
    configured the Citizen CA's CRL (a CRL for the eID chain must not lock the machine accounts out)."""
    pinned = pki.self_signed("arch-a-dav")
    for g in (gw_without_crl, gw):
        g.admin.add_account("arch-a-dav", "archiver", CENTRE_A, client_certs=[pinned.cert.read_text()])
        g._server.https.refresh_trust()
    r = curl(gw_without_crl, "/", cert=pinned)
    assert r.code == 200 and CENTRE_A in r.body and CENTRE_B not in r.body, r
    r = curl(gw, "/", cert=pinned)
    assert r.code == 200 and CENTRE_A in r.body and CENTRE_B not in r.body, (
        f"with webdav.client_crl_files set, the pinned certificate of a machine account fails the TLS handshake "
        f"(server: 'unable to get certificate CRL'): {r}")
    assert "method=client-certificate" in [e.detail for e in logins(gw, "arch-a-dav", "ok")]
