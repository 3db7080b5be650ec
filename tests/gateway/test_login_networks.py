"""Source networks on every login kind and every resumed session (issue 9, item 7), with real clients against a
real gateway: the ranges of the account and of its centres apply to API tokens, pinned TLS client certificates,
remembered WebDAV logins and API sessions alike, also to tokens and sessions made before the operator bound the
account (with the CLI, in another process), and every refusal is on the record.

127.0.0.1 is a trusted proxy here, so a request with ``X-Forwarded-For: 10.9.1.2`` comes from inside the range
and one without comes from 127.0.0.1, outside it. (Directory names in another case: tests/gateway/
test_login_ldap.py.)
"""
from __future__ import annotations

import contextlib
import time

import pytest

from gateway.core.enterprise import with_check
from tests.conftest import CENTRE_A, CENTRE_B, cli, start_gateway
from tests.gateway.test_api import api_token, call, card_of, login
from tests.people import curl, logins
from tests.pki import EidPki

NET = "10.9.0.0/16"
INSIDE = "10.9.1.2"
FROM_INSIDE = {"X-Forwarded-For": INSIDE}
CENTRE_C = with_check("02033333")  # bound to NET by some tests, and restored
PW = "net-person-passw0rd"
OUTSIDE_REASON = "source address 127.0.0.1 is outside the account's networks"


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    d = tmp_path_factory.mktemp("networks")
    g = start_gateway(d / "var", env={"INSTPAGES_AUTH_SECOND_FACTOR": "required", "INSTPAGES_AUTH_TOKEN_CODES": "4",
                                      "INSTPAGES_AUTH_TRUSTED_PROXIES": "127.0.0.1"})
    a = g.admin
    for centre, name in ((CENTRE_A, "OCMW A"), (CENTRE_B, "CPAS B"), (CENTRE_C, "OCMW C")):
        a.add_institution(centre, name, "active")
    for name, centre in (("net-api", CENTRE_B), ("net-dav", CENTRE_B), ("net-centre", CENTRE_C)):
        a.add_account(name, "staff", password=PW)
        a.grant(name, centre)
    g.pki = EidPki(d / "pki")
    g.certs = {"net-podmi": g.pki.self_signed("net-podmi"), "net-arch": g.pki.self_signed("net-arch")}
    a.add_account("net-podmi", "uploader", client_certs=[g.certs["net-podmi"].cert.read_text()])
    a.add_account("net-arch", "archiver", CENTRE_C, client_certs=[g.certs["net-arch"].cert.read_text()])
    g._server.https.refresh_trust()
    yield g
    g.stop()
    g.services.close()


def operator(gw, *args: str) -> None:
    """The operator's CLI, a process of its own next to the running gateway (which it cannot tell to forget)."""
    r = cli(*args, data_dir=gw.data_dir)
    assert r.returncode == 0, (args, r.stderr)


@contextlib.contextmanager
def limited(gw, command: str, subject: str):
    """The account or centre ``subject`` limited to NET inside the block (its limit lifted after); yields the id
    of the last event before."""
    mark = last_event_id(gw)
    operator(gw, command, "set-networks", subject, NET)
    try:
        yield mark
    finally:
        operator(gw, command, "set-networks", subject, "")


def refused(gw, actor: str, since: int = 0) -> list:
    return [e for e in logins(gw, actor, "failed") if e.id > since]


def last_event_id(gw) -> int:
    events = gw.audit(limit=1)
    return events[0].id if events else 0


def eventually(check, timeout: float = 6.0):
    """``check()`` until it is true (centre rows are cached for Mailbox.INSTITUTION_TTL, 2 s)."""
    deadline = time.monotonic() + timeout
    while not (result := check()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return result


# -- API tokens and sessions -----------------------------------------------------------------------------------
def test_api_tokens_and_sessions_made_before_the_account_was_bound_are_refused_outside_it(gw):
    port = gw.dav_port
    session = login(gw, "net-api", PW)
    _, used = api_token(gw, session, "used before the binding")
    _, unused = api_token(gw, session, "first used after the binding")
    assert call(port, "GET", "/me", token=used).status == 200  # the core now remembers this token's login
    with limited(gw, "account", "net-api") as mark:
        for token in (used, unused, session):
            a = call(port, "GET", "/me", token=token)
            assert a.status == 401 and a.json == {"error": "authentication failed"}, a
            a = call(port, "GET", "/me", token=token, headers=FROM_INSIDE)
            assert a.status == 200 and a.json["name"] == "net-api", a
        # a new strong login from outside: refused as well
        number = call(port, "GET", "/session/challenge?username=net-api").json["number"]
        a = call(port, "POST", "/session", {"username": "net-api", "password": PW, "number": number,
                                            "code": card_of(gw, "net-api")[number]})
        assert a.status == 401, a
        events = refused(gw, "net-api", mark)
        assert len(events) == 4 and all(OUTSIDE_REASON in e.detail for e in events), [e.detail for e in events]
        assert all(e.protocol == "api" and e.source == "127.0.0.1" for e in events)
    assert call(port, "GET", "/me", token=used).status == 200


def test_a_centres_range_applies_to_the_api_tokens_of_its_staff(gw):
    """net-centre's only centre is C: bound to NET, net-centre may act from NET only -- with its token too."""
    port = gw.dav_port
    _, token = api_token(gw, login(gw, "net-centre", PW))
    assert call(port, "GET", "/me", token=token).status == 200
    with limited(gw, "institution", CENTRE_C) as mark:
        assert eventually(lambda: call(port, "GET", "/me", token=token).status == 401)
        assert call(port, "GET", "/me", token=token, headers=FROM_INSIDE).status == 200
        events = refused(gw, "net-centre", mark)
        assert events and all("outside the account's networks (those of its centres)" in e.detail
                              for e in events), [e.detail for e in events]


# -- pinned TLS client certificates ----------------------------------------------------------------------------
def test_a_pinned_certificate_is_refused_outside_the_accounts_range_at_once(gw):
    cert = gw.certs["net-podmi"]
    r = curl(gw, "/", cert=cert)
    assert r.code == 200 and CENTRE_A in r.body, r  # logged in, and remembered for the next requests
    with limited(gw, "account", "net-podmi") as mark:
        r = curl(gw, "/", cert=cert)
        assert r.code == 401, r
        r = curl(gw, "/", cert=cert, headers=(f"X-Forwarded-For: {INSIDE}",))
        assert r.code == 200 and CENTRE_A in r.body, r
        events = refused(gw, "net-podmi", mark)
        assert events and all(OUTSIDE_REASON in e.detail and "method=clientcertificate" in e.detail
                              for e in events), [e.detail for e in events]
        assert all(e.protocol == "webdav" and e.source == "127.0.0.1" for e in events)
    assert curl(gw, "/", cert=cert).code == 200


def test_a_pinned_certificate_of_an_archiver_is_refused_outside_its_centres_range(gw):
    cert = gw.certs["net-arch"]
    r = curl(gw, "/", cert=cert)
    assert r.code == 200 and CENTRE_C in r.body, r
    with limited(gw, "institution", CENTRE_C) as mark:
        assert eventually(lambda: curl(gw, "/", cert=cert).code == 401)
        r = curl(gw, "/", cert=cert, headers=(f"X-Forwarded-For: {INSIDE}",))
        assert r.code == 200 and CENTRE_C in r.body, r
        events = refused(gw, "net-arch", mark)
        assert events and all("outside the account's networks (those of its centres)" in e.detail
                              for e in events), [e.detail for e in events]


# -- remembered WebDAV logins ----------------------------------------------------------------------------------
def test_a_remembered_device_password_login_is_refused_outside_the_new_range_at_once(gw):
    _, secret = gw.admin.create_device_password("net-dav", "drive")
    r = curl(gw, "/", user="net-dav", secret=secret)
    assert r.code == 200 and CENTRE_B in r.body, r
    with limited(gw, "account", "net-dav") as mark:
        r = curl(gw, "/", user="net-dav", secret=secret)
        assert r.code == 401, r
        assert curl(gw, "/", user="net-dav", secret=secret, headers=(f"X-Forwarded-For: {INSIDE}",)).code == 200
        events = refused(gw, "net-dav", mark)
        assert events and all(OUTSIDE_REASON in e.detail for e in events), [e.detail for e in events]
