"""The REST API under /api/, over real HTTPS: strong login and session tokens, API tokens for scripts, the
console's cookie with its CSRF header, bodies and headers, and the administration calls end to end (the
activation notice reaches a real SMTP server).

One gateway (with an aiosmtpd server) is shared by the module; tests that change what others look at restore it
or use centres and accounts of their own.
"""
from __future__ import annotations

import http.client
import json
import ssl
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

from gateway.core.enterprise import with_check
from gateway.core.session import MailboxSession
from gateway.web.websession import SessionSigner
from tests.conftest import (CENTRE_A, CENTRE_B, CENTRE_PAPER, STAFF_PASSWORD, SMTPCapture, populate,
                            start_gateway, token_card)
from tests.pdfsamples import minimal_pdf
from tests.pki import EidPki, national_register_number

JSON_TYPE = "application/json; charset=utf-8"
JAN_NRN = national_register_number(date(1985, 7, 30), 33)
OTHER_NRN = national_register_number(date(1990, 1, 2), 117)


# -- a small client, shared with the other API test modules ------------------------------------------------------
@dataclass
class Answer:
    status: int
    headers: dict
    raw: bytes

    @property
    def json(self):
        return json.loads(self.raw.decode("utf-8"))


def call(port: int, method: str, path: str, body=None, *, token: str | None = None, headers: dict | None = None,
         raw: bytes | None = None, content_type: str = "application/json", cert=None) -> Answer:
    """One request on a fresh TLS connection (the gateway's certificate is self-signed); ``cert``: a client
    certificate (tests.pki.ClientCert) to present in the handshake."""
    context = ssl._create_unverified_context()
    if cert is not None:
        context.load_cert_chain(str(cert.chain), str(cert.key))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    hdrs = dict(headers or {})
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
    if data is not None:
        hdrs.setdefault("Content-Type", content_type)
    try:
        conn.request(method, "/api" + path, body=data, headers=hdrs)
        r = conn.getresponse()
        return Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def card_of(gw, name: str) -> dict[int, str]:
    cards = gw.__dict__.setdefault("cards", {})
    if name not in cards:
        cards[name] = token_card(gw, name)
    return cards[name]


def login(gw, name: str, password: str = STAFF_PASSWORD) -> str:
    """A session token after a strong login (password + the code the challenge asks)."""
    card = card_of(gw, name)
    a = call(gw.dav_port, "GET", f"/session/challenge?username={name}")
    assert a.status == 200, a.raw
    number = a.json["number"]
    a = call(gw.dav_port, "POST", "/session", {"username": name, "password": password, "number": number,
                                               "code": card[number]})
    assert a.status == 201, a.raw
    return a.json["token"]


def api_token(gw, session: str, label: str = "script") -> tuple[int, str]:
    a = call(gw.dav_port, "POST", "/tokens", {"label": label, "days": 30}, token=session)
    assert a.status == 201, a.raw
    return a.json["id"], a.json["token"]


def account_id(gw, name: str) -> int:
    with gw.repo.read() as c:
        return gw.repo.account_by_name(c, name).id


def core_session(gw, name: str) -> MailboxSession:
    mb = gw.services.mailbox
    return MailboxSession(mb, mb.load_principal(account_id(gw, name), "test"), "test", "127.0.0.1")


def archive_document(gw, centre: str, relpath: str, text: str) -> None:
    """Deliver a PDF as podmi and archive it as the centre's archiver, in the core."""
    up = core_session(gw, "podmi").open_upload(f"/{centre}/{relpath}")
    up.append(minimal_pdf(text))
    up.commit()
    core_session(gw, "arch-a").archive(f"/{centre}/{relpath}")


def start_api_gateway(d: Path, smtp: SMTPCapture | None = None, pki: EidPki | None = None):
    # token cards of 4 codes (every code is an argon2 hash, made when the card is issued)
    env = dict(smtp.env() if smtp else {}, INSTPAGES_AUTH_SECOND_FACTOR="required", INSTPAGES_AUTH_TOKEN_CODES="4")
    if pki is not None:
        env["INSTPAGES_WEBDAV_CLIENT_CA_FILE"] = str(pki.ca_bundle)
    gw = start_gateway(d / "var", env=env)
    populate(gw, d)
    return gw


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = EidPki(tmp_path_factory.mktemp("pki"))
    p.jan = p.person("jan", "Jan", "Peeters", JAN_NRN)
    p.other_jan = p.person("other-jan", "Jan", "Peeters", OTHER_NRN)  # same name, another person
    return p


@pytest.fixture(scope="module")
def gw(tmp_path_factory, smtp, pki):
    g = start_api_gateway(tmp_path_factory.mktemp("api"), smtp, pki)
    yield g
    g.stop()
    g.services.close()


@pytest.fixture(scope="module")
def cell(gw):
    return login(gw, "cell")


@pytest.fixture(scope="module")
def admin_a(gw):
    return login(gw, "admin-a")


# -- the document, headers, routing -------------------------------------------------------------------------------
def test_openapi_document_is_served_without_login_and_covers_every_route(gw):
    from gateway.web.api.routes import ROUTES

    a = call(gw.dav_port, "GET", "/openapi.json")
    assert a.status == 200 and a.headers["content-type"] == JSON_TYPE
    doc = a.json
    assert doc["openapi"].startswith("3.1") and doc["servers"] == [{"url": "/api"}]
    documented = {(p, m.upper()) for p, ops in doc["paths"].items() for m in ops}
    served = {("/" + "/".join(pattern), m) for pattern, methods in ROUTES for m in methods}
    assert documented == served
    # every error answer is documented with the one error shape
    assert doc["components"]["schemas"]["Error"]["required"] == ["error"]


def test_headers_unknown_paths_and_methods(gw, cell):
    port = gw.dav_port
    for a in (call(port, "GET", "/me", token=cell), call(port, "GET", "/nothing-here", token=cell),
              call(port, "GET", "/institutions/", token=cell), call(port, "GET", ""),
              call(port, "PATCH", "/me", token=cell)):
        assert a.headers["content-type"] == JSON_TYPE
        assert a.headers["cache-control"] == "no-store" and a.headers["x-content-type-options"] == "nosniff"
        assert b"cheroot" not in a.raw.lower() and b"python" not in a.raw.lower()
    assert call(port, "GET", "/nothing-here", token=cell).status == 404
    assert call(port, "GET", "/institutions/", token=cell).status == 404
    assert call(port, "GET", "/institutions/x/y/z/w/v", token=cell).status == 404
    a = call(port, "PATCH", "/me", token=cell)
    assert a.status == 405 and a.headers["allow"] == "GET, OPTIONS" and "error" in a.json
    a = call(port, "DELETE", f"/institutions/{CENTRE_A}/access", token=cell)
    assert a.status == 405 and a.headers["allow"] == "GET, OPTIONS"
    a = call(port, "OPTIONS", f"/institutions/{CENTRE_A}/access/staff-a")
    assert a.status == 204 and a.headers["allow"] == "PUT, DELETE, OPTIONS" and a.raw == b""
    # unknown paths answer 404 whether or not the caller is logged in; known ones need a login
    assert call(port, "GET", "/nothing-here").status == 404
    a = call(port, "GET", "/me")
    assert a.status == 401 and a.json == {"error": "authentication required"}
    assert a.headers["www-authenticate"].startswith("Bearer")


# -- login -----------------------------------------------------------------------------------------------------
def test_strong_login_failures_are_generic(gw):
    port = gw.dav_port
    card = card_of(gw, "staff-a")
    # an unknown name gets a stable made-up number, like a known one gets the same number until answered
    n1 = call(port, "GET", "/session/challenge?username=nobody-here").json["number"]
    assert call(port, "GET", "/session/challenge?username=nobody-here").json["number"] == n1
    number = call(port, "GET", "/session/challenge?username=staff-a").json["number"]
    assert call(port, "GET", "/session/challenge?username=staff-a").json["number"] == number
    wrong_code = str((int(card[number]) + 1) % 10 ** 6).zfill(6)
    answers = [
        call(port, "POST", "/session", {"username": "staff-a", "password": STAFF_PASSWORD, "number": number,
                                        "code": wrong_code}),
        call(port, "POST", "/session", {"username": "staff-a", "password": "wrong password!", "number": number,
                                        "code": card[number]}),
        call(port, "POST", "/session", {"username": "nobody-here", "password": STAFF_PASSWORD, "number": n1,
                                        "code": "123456"}),
        call(port, "POST", "/session", {"username": "staff-a", "password": STAFF_PASSWORD}),  # no second factor
        call(port, "POST", "/session", {"username": "podmi", "password": STAFF_PASSWORD, "number": 1,
                                        "code": "123456"}),  # a machine account
    ]
    assert [a.status for a in answers] == [401] * 5
    assert {a.raw for a in answers} == {b'{"error":"authentication failed"}'}
    # the challenge is still open (a failed answer does not consume it): the right code logs in
    a = call(port, "POST", "/session", {"username": "staff-a", "password": STAFF_PASSWORD, "number": number,
                                        "code": card[number]})
    assert a.status == 201 and a.json["account"] == "staff-a" and a.json["second_factor"] == "token"
    token = a.json["token"]
    assert call(port, "GET", "/me", token=token).json == {"name": "staff-a", "role": "staff", "administers": [],
                                                          "authenticated_by": "session"}
    # a used code is not accepted twice
    again = call(port, "POST", "/session", {"username": "staff-a", "password": STAFF_PASSWORD, "number": number,
                                            "code": card[number]})
    assert again.status == 401
    # a forged or tampered session token
    assert call(port, "GET", "/me", token=token[:-2] + ("00" if token[-2:] != "00" else "11")).status == 401
    assert call(port, "GET", "/me", token="abc.def").status == 401
    assert call(port, "GET", "/me", headers={"Authorization": "Basic c3RhZmYtYTp4"}).status == 401
    failed = [e for e in gw.audit("login", limit=20) if e.protocol == "api" and e.outcome == "failed"]
    assert len(failed) >= 5


def test_eid_certificate_is_the_second_factor(gw, pki):
    port = gw.dav_port
    gw.admin.add_account("jan.api", "staff", password="jan-api-passw0rd", nrn=JAN_NRN)
    a = call(port, "POST", "/session", {"username": "jan.api", "password": "jan-api-passw0rd"}, cert=pki.jan)
    assert a.status == 201 and a.json["second_factor"] == "eid" and a.json["account"] == "jan.api"
    assert call(port, "GET", "/me", token=a.json["token"]).json["name"] == "jan.api"
    # the certificate is not the first factor; another person's card (same name) is not his; no card, no code
    for body, cert in (({"username": "jan.api", "password": "not-jans-passw0rd"}, pki.jan),
                       ({"username": "jan.api", "password": "jan-api-passw0rd"}, pki.other_jan),
                       ({"username": "jan.api", "password": "jan-api-passw0rd"}, None)):
        a = call(port, "POST", "/session", body, cert=cert)
        assert a.status == 401 and a.raw == b'{"error":"authentication failed"}'
    assert "method=password+eid" in [e.detail for e in gw.audit("login", limit=20)
                                     if e.actor == "jan.api" and e.outcome == "ok"]


def test_bodies_must_be_small_json_objects(gw, cell):
    port = gw.dav_port
    path = f"/institutions/{CENTRE_B}/contacts"
    before = gw.admin.centre(CENTRE_B)
    a = call(port, "PUT", path, raw=b"contacts=a@b.be", token=cell, content_type="application/x-www-form-urlencoded")
    assert a.status == 415 and "application/json" in a.json["error"]
    a = call(port, "PUT", path, raw=b'{"language": "fr"}', token=cell, content_type="text/plain")
    assert a.status == 415
    a = call(port, "PUT", path, raw=b'{"language": "fr", "x": "' + b"y" * (64 * 1024) + b'"}', token=cell)
    assert a.status == 413
    a = call(port, "PUT", path, raw=b'{"language": "fr"', token=cell)
    assert a.status == 400 and a.json["error"].startswith("malformed JSON")
    a = call(port, "PUT", path, raw=b"[" * 5000 + b"]" * 5000, token=cell)
    assert a.status == 400
    a = call(port, "PUT", path, raw=b'["fr"]', token=cell)
    assert a.status == 400 and a.json == {"error": "the body must be a JSON object"}
    a = call(port, "PUT", path, raw=b'{"language": "fr", "language": "nl"}', token=cell)
    assert a.status == 400 and "duplicate" in a.json["error"]
    a = call(port, "PUT", path, raw=b'{"language": NaN}', token=cell)
    assert a.status == 400
    a = call(port, "PUT", path, {"language": "fr", "can_write": True}, token=cell)
    assert a.status == 400 and a.json == {"error": "unknown field: 'can_write'"}
    a = call(port, "PUT", path, {"language": "de"}, token=cell)
    assert a.status == 400 and "nl, fr" in a.json["error"]
    a = call(port, "PUT", path, {"contacts": ["not an address"]}, token=cell)
    assert a.status == 400 and "not an e-mail address" in a.json["error"]
    a = call(port, "PUT", path, {}, token=cell)
    assert a.status == 400
    a = call(port, "PUT", path, token=cell)
    assert a.status == 400 and "JSON object" in a.json["error"]
    a = call(port, "POST", f"/institutions/{CENTRE_B}/suspend", {"reference": " \u3000 "}, token=cell)
    assert a.status == 400 and "reference" in a.json["error"]
    a = call(port, "POST", f"/institutions/{CENTRE_B}/suspend", {"reference": "x\x00y"}, token=cell)
    assert a.status == 400 and "control characters" in a.json["error"]
    after = gw.admin.centre(CENTRE_B)
    assert (after.status, after.contacts, after.language) == (before.status, before.contacts, before.language)


# -- API tokens for scripts ------------------------------------------------------------------------------------
def test_api_token_for_scripts_cannot_mint_more_and_dies_when_revoked(gw):
    port = gw.dav_port
    session = login(gw, "staff-ab")
    token_id, secret = api_token(gw, session, "nightly export")
    assert secret.startswith("ipat-")
    me = call(port, "GET", "/me", token=secret)
    assert me.status == 200 and me.json["name"] == "staff-ab" and me.json["authenticated_by"] == "api-token"
    # a stolen token cannot mint more
    a = call(port, "POST", "/tokens", {"label": "more"}, token=secret)
    assert a.status == 403 and "strong login" in a.json["error"]
    listed = call(port, "GET", "/tokens", token=secret).json
    assert [(t["id"], t["label"], t["revoked"]) for t in listed] == [(token_id, "nightly export", False)]
    assert listed[0]["last_used_at"] is not None
    # nobody revokes another person's token
    other_session = login(gw, "staff-a-rm")
    assert call(port, "DELETE", f"/tokens/{token_id}", token=other_session).status == 404
    assert call(port, "GET", "/me", token=secret).status == 200
    # the token is not a password anywhere else: WebDAV refuses it
    import base64
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ssl._create_unverified_context(), timeout=30)
    conn.request("PROPFIND", "/dav/", headers={"Depth": "0", "Authorization": "Basic " + base64.b64encode(
        f"staff-ab:{secret}".encode()).decode()})
    assert conn.getresponse().status == 401
    conn.close()
    # revoked: refused at the next call
    assert call(port, "DELETE", f"/tokens/{token_id}", token=session).status == 204
    a = call(port, "GET", "/me", token=secret)
    assert a.status == 401 and a.json == {"error": "authentication failed"}
    assert call(port, "DELETE", f"/tokens/{token_id}", token=session).status == 404
    assert call(port, "GET", "/tokens", token=session).json[0]["revoked"] is True
    assert call(port, "GET", "/me", token="ipat-00000000-" + "x" * 32).status == 401
    actions = [(e.action, e.actor) for e in gw.audit(limit=60)]
    assert ("api-token-create", "staff-ab") in actions and ("api-token-revoke", "staff-ab") in actions


def test_console_cookie_needs_the_csrf_header_for_changes(gw, admin_a):
    port = gw.dav_port
    signer = SessionSigner(gw.services.keyring.derive(b"web-session"))
    session = signer.verify(admin_a)
    assert session is not None
    cookie = {"Cookie": f"ip_console={admin_a}"}
    a = call(port, "GET", f"/institutions/{CENTRE_A}", headers=cookie)
    assert a.status == 200 and a.json["id"] == CENTRE_A
    assert call(port, "GET", "/me", headers=cookie).json["authenticated_by"] == "cookie"
    path = f"/institutions/{CENTRE_A}/contacts"
    before = gw.admin.centre(CENTRE_A).language
    a = call(port, "PUT", path, {"language": "fr"}, headers=cookie)
    assert a.status == 403 and "CSRF" in a.json["error"]
    a = call(port, "PUT", path, {"language": "fr"}, headers={**cookie, "X-CSRF-Token": "0" * 64})
    assert a.status == 403
    assert gw.admin.centre(CENTRE_A).language == before
    a = call(port, "PUT", path, {"language": "fr"}, headers={**cookie, "X-CSRF-Token": signer.csrf(session)})
    assert a.status == 204 and gw.admin.centre(CENTRE_A).language == "fr"
    gw.admin.set_contacts(CENTRE_A, language=before)
    # a cookie session cannot be turned into tokens without its CSRF header either
    assert call(port, "POST", "/tokens", {}, headers=cookie).status == 403
    assert call(port, "GET", "/me", headers={"Cookie": "ip_console=forged.value"}).status == 401


# -- delegation takes effect at once ---------------------------------------------------------------------------
def test_revoked_or_disabled_admin_loses_access_at_once(gw, cell):
    port = gw.dav_port
    gw.admin.add_account("admin-tmp", "local-admin", CENTRE_A, password=STAFF_PASSWORD)
    gw.admin.add_account("admin-off", "local-admin", CENTRE_A, password=STAFF_PASSWORD)
    session = login(gw, "admin-tmp")
    _, secret = api_token(gw, session)
    off_session = login(gw, "admin-off")
    _, off_secret = api_token(gw, off_session)
    for t in (session, secret, off_session, off_secret):
        assert call(port, "GET", f"/institutions/{CENTRE_A}/access", token=t).status == 200
    assert call(port, "GET", "/me", token=secret).json["administers"] == [CENTRE_A]
    # the security cell removes the designation through the API: the same session and token lose it at once
    assert call(port, "DELETE", f"/institutions/{CENTRE_A}/local-admins/admin-tmp", token=cell).status == 204
    for t in (session, secret):
        a = call(port, "GET", f"/institutions/{CENTRE_A}/access", token=t)
        assert a.status == 404 and a.json == {"error": "no such centre"}
        assert call(port, "GET", "/institutions", token=t).status == 403
        assert call(port, "GET", "/me", token=t).json["role"] == "staff"
    # the operator disables an account: its session and token stop working at once
    gw.admin.set_account_enabled("admin-off", False)
    for t in (off_session, off_secret):
        a = call(port, "GET", "/me", token=t)
        assert a.status == 401 and a.json == {"error": "authentication failed"}
    gw.admin.set_account_enabled("admin-off", True)
    assert call(port, "GET", "/me", token=off_secret).status == 200
    gw.admin.set_account_enabled("admin-off", False)  # leave it out of the way of the other tests


# -- administration end to end ---------------------------------------------------------------------------------
def test_activation_through_the_api_mails_the_contacts(gw, cell, smtp):
    port = gw.dav_port
    centre = CENTRE_PAPER
    a = call(port, "PUT", f"/institutions/{centre}/contacts",
             {"contacts": ["secretariaat@ocmw-papier.test", "IT@ocmw-papier.test"], "language": "nl"}, token=cell)
    assert a.status == 204
    a = call(port, "POST", f"/institutions/{centre}/activate", {"reference": "too early"}, token=cell)
    assert a.status == 409 and "has not asked to switch over yet" in a.json["error"]
    a = call(port, "POST", f"/institutions/{centre}/request", {"reference": "letter of 2026-11-02, nr 17"},
             token=cell)
    assert a.status == 200 and a.json == {"from": "paper", "to": "requested", "notice_queued": False,
                                          "outbox_id": None}
    sent_before = len(smtp.messages)
    a = call(port, "POST", f"/institutions/{centre}/activate", {"reference": "signed forms received 2026-11-20"},
             token=cell)
    assert a.status == 200 and a.json["to"] == "active" and a.json["notice_queued"] is True
    messages = smtp.wait_for(sent_before + 1)
    msg = messages[sent_before]
    assert msg["To"] == "secretariaat@ocmw-papier.test, IT@ocmw-papier.test"
    assert msg["Message-ID"].startswith(f"<outbox-{a.json['outbox_id']}-")
    assert "signed forms received 2026-11-20" in msg.get_body(("plain",)).get_content()
    deadline = time.monotonic() + 10
    while True:
        o = call(port, "GET", f"/institutions/{centre}", token=cell).json
        if o["outbox"] and o["outbox"][0]["sent_at"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert o["status"] == "active" and o["status_reference"] == "signed forms received 2026-11-20"
    assert o["status_changed_by"] == "cell" and o["contacts"] == ["secretariaat@ocmw-papier.test",
                                                                   "IT@ocmw-papier.test"]
    assert [(h["from"], h["to"], h["actor"]) for h in o["history"]] == [("paper", "requested", "cell"),
                                                                        ("requested", "active", "cell")]
    assert o["outbox"][0]["kind"] == "activation" and o["outbox"][0]["sent_at"] is not None
    listed = call(port, "GET", "/institutions?status=active", token=cell).json
    assert centre in [i["id"] for i in listed] and all(i["status"] == "active" for i in listed)
    assert call(port, "GET", "/institutions?status=gone", token=cell).status == 400
    events = call(port, "GET", f"/institutions/{centre}/audit?limit=5", token=cell).json
    assert len(events) == 5 and events[0]["id"] > events[-1]["id"]
    assert {"institution-status", "notify-queue"} <= {e["action"] for e in events}
    assert all(e["protocol"] == "api" for e in events if e["action"] == "institution-status")
    assert call(port, "GET", f"/institutions/{centre}/audit?limit=0", token=cell).status == 400
    # a notice nobody can read is not sent: a test mail needs the contacts set above
    a = call(port, "POST", f"/institutions/{centre}/notify-test", token=cell)
    assert a.status == 202
    assert len(smtp.wait_for(sent_before + 2)) >= sent_before + 2
    assert call(port, "POST", f"/institutions/{CENTRE_B}/notify-test", token=cell).status == 409  # no contacts


def test_local_admin_grants_and_revokes_access(gw, admin_a, cell):
    port = gw.dav_port
    gw.admin.add_account("jan-api", "staff", password=STAFF_PASSWORD, display_name="Jan Peeters")
    base = f"/institutions/{CENTRE_A}/access"
    tomorrow = (date.today() + timedelta(days=2)).isoformat()

    def grants():
        return {g.name: (g.can_remove, g.can_write, g.expires_at) for g in gw.admin.access(CENTRE_A)}

    before = grants()
    for body, message in (({"until": (date.today() - timedelta(days=3)).isoformat()}, "in the past"),
                          ({"until": "2026-02-30"}, "not a date"), ({"until": "9999-12-31"}, "year 9000"),
                          ({"can_write": True}, "unknown field"), ({"can_remove": "yes"}, "true or false")):
        a = call(port, "PUT", f"{base}/jan-api", body, token=admin_a)
        assert a.status == 400 and message in a.json["error"], (body, a.json)
    # the security cell answers for access but does not grant it
    a = call(port, "PUT", f"{base}/jan-api", {}, token=cell)
    assert a.status == 403
    assert call(port, "PUT", f"{base}/nobody-at-all", {}, token=admin_a).status == 404
    assert call(port, "PUT", f"{base}/podmi", {}, token=admin_a).status == 404  # machine accounts get no grants
    assert grants() == before
    a = call(port, "PUT", f"{base}/jan-api", {"can_remove": True, "until": tomorrow}, token=admin_a)
    assert a.status == 204
    row = next(g for g in call(port, "GET", base, token=cell).json if g["account"] == "jan-api")
    assert row["display_name"] == "Jan Peeters" and row["can_remove"] is True and row["can_write"] is False
    assert row["until"] == tomorrow and row["granted_by"] == "admin-a"
    # the grant works: jan can now list the mailbox (in the core, as WebDAV/SFTP would)
    assert core_session(gw, "jan-api").list(f"/{CENTRE_A}") is not None
    assert call(port, "PUT", f"{base}/jan-api", token=admin_a).status == 204  # no body: plain read access
    row = next(g for g in call(port, "GET", base, token=admin_a).json if g["account"] == "jan-api")
    assert (row["can_remove"], row["until"]) == (False, None)
    assert call(port, "DELETE", f"{base}/jan-api", token=admin_a).status == 204
    assert call(port, "DELETE", f"{base}/jan-api", token=admin_a).status == 404
    assert grants() == before


def test_restore_an_archived_document(gw, admin_a, cell):
    port = gw.dav_port
    archive_document(gw, CENTRE_A, "2026-11/restore-me.pdf", "restore-me")
    listed = call(port, "GET", f"/institutions/{CENTRE_A}/archived", token=admin_a).json
    doc = next(d for d in listed if d["path"] == "2026-11/restore-me.pdf")
    assert doc["archived_by"] == "arch-a" and doc["size"] > 0 and doc["delivered_at"]
    assert call(port, "GET", f"/institutions/{CENTRE_A}/archived", token=cell).status == 403
    for path, status in (("../x.pdf", 400), ("2026-11//restore-me.pdf", 400), ("", 400),
                         ("2026-11/not-there.pdf", 404)):
        assert call(port, "POST", f"/institutions/{CENTRE_A}/restore", {"path": path},
                    token=admin_a).status == status, path
    a = call(port, "POST", f"/institutions/{CENTRE_A}/restore", {"path": "2026-11/restore-me.pdf"}, token=admin_a)
    assert a.status == 200 and a.json == {"document_id": doc["id"]}
    assert "restore-me.pdf" in [e.name for e in core_session(gw, "arch-a").list(f"/{CENTRE_A}/2026-11")]
    a = call(port, "POST", f"/institutions/{CENTRE_A}/restore", {"path": "2026-11/restore-me.pdf"}, token=admin_a)
    assert a.status == 404


def test_security_cell_designates_and_the_consultant_acts(gw, cell):
    port = gw.dav_port
    centre = gw.admin.add_institution(with_check("02012345"), "OCMW Consult", "paper")
    gw.admin.add_account("consultant-c", "staff", password=STAFF_PASSWORD)
    assert call(port, "PUT", f"/institutions/{centre}/security-consultant", {"account": ""}, token=cell).status == 400
    assert call(port, "PUT", f"/institutions/{centre}/security-consultant", {"account": "consultant-c"},
                token=cell).status == 204
    o = call(port, "GET", f"/institutions/{centre}", token=cell).json
    assert o["security_consultant"] == "consultant-c" and o["acting_consultant"] is True and o["local_admins"] == []
    consultant = login(gw, "consultant-c")
    assert call(port, "GET", "/me", token=consultant).json["administers"] == [centre]
    assert [i["id"] for i in call(port, "GET", "/institutions", token=consultant).json] == [centre]
    assert call(port, "PUT", f"/institutions/{centre}/access/staff-a", {}, token=consultant).status == 204
    # designating a local administrator ends the consultant's acting role at once
    assert call(port, "PUT", f"/institutions/{centre}/local-admins/staff-a-rm", token=cell).status == 204
    assert call(port, "GET", f"/institutions/{centre}", token=consultant).status == 404
    o = call(port, "GET", f"/institutions/{centre}", token=cell).json
    assert o["local_admins"] == ["staff-a-rm"] and o["acting_consultant"] is False
    # one centre per local administrator
    a = call(port, "PUT", f"/institutions/{CENTRE_B}/local-admins/staff-a-rm", token=cell)
    assert a.status == 409 and "remove that designation first" in a.json["error"]
    assert call(port, "DELETE", f"/institutions/{centre}/local-admins/staff-a-rm", token=cell).status == 204
    assert call(port, "DELETE", f"/institutions/{centre}/local-admins/staff-a-rm", token=cell).status == 404
    assert call(port, "PUT", f"/institutions/{centre}/security-consultant", {"account": None},
                token=cell).status == 204
    assert call(port, "GET", f"/institutions/{centre}", token=cell).json["security_consultant"] is None


def test_logout_ends_the_session_on_every_gateway_process(gw, tmp_path):
    token = login(gw, "staff-ab")
    assert call(gw.dav_port, "GET", "/me", token=token).status == 200
    # a second gateway process sharing the database (the scaled-out shape) accepts the same session ...
    other = start_gateway(tmp_path / "other", env={"INSTPAGES_STORAGE_DATABASE_URL": gw.config.database_url,
                                                   "INSTPAGES_STORAGE_KEY_DIR": str(gw.config.key_path),
                                                   "INSTPAGES_STORAGE_BLOB_DIR": str(gw.config.blob_path)})
    try:
        assert call(other.dav_port, "GET", "/me", token=token).status == 200
        assert call(gw.dav_port, "DELETE", "/session", token=token).status == 204
        # ... and after the logout on the first one, neither accepts it
        assert call(gw.dav_port, "GET", "/me", token=token).status == 401
        assert call(other.dav_port, "GET", "/me", token=token).status == 401
        assert gw.audit("logout", limit=1)[0].actor == "staff-ab"
        # a new strong login works again
        assert call(other.dav_port, "GET", "/me", token=login(gw, "staff-ab")).status == 200
    finally:
        other.stop()
        other.services.close()
