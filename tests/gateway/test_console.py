"""The web console (/console/) at the protocol level: a real gateway on HTTPS, driven with http.client as a browser
without JavaScript would (forms, cookies, redirects), and checked against the database.

One gateway for the whole module; each test uses its own centres and accounts where it changes anything."""
from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from gateway.web import i18n
from gateway.core.enterprise import with_check
from gateway.web.websession import SessionSigner
from tests import pdfsamples
from tests.conftest import CENTRE_A, CENTRE_B, CENTRE_PAPER, STAFF_PASSWORD, populate, start_gateway, token_card
from tests.coretools import session
from tests.pki import EidPki, national_register_number
from tests.webclient import Resp
from tests.webclient import Client as WebClient

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
XSS = "<script>alert(1)</script>"

# centres of this module's own tests (besides conftest's)
CENTRE_XSS = with_check("02111111")
CENTRE_DESIG = with_check("02222222")
CENTRE_CONS = with_check("02333333")
CENTRE_TRANS = with_check("02444444")
CENTRE_GONE = with_check("02555555")


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    d = tmp_path_factory.mktemp("console")
    g = start_gateway(d / "var")
    try:
        populate(g, d)
        a = g.admin
        a.add_institution(CENTRE_XSS, XSS, "paper")
        a.add_institution(CENTRE_DESIG, "OCMW Aanduiding", "active")
        a.add_institution(CENTRE_CONS, "CPAS Conseiller", "active")
        a.add_institution(CENTRE_TRANS, "OCMW Overgang", "paper")
        a.add_institution(CENTRE_GONE, "OCMW Uitgeschakeld", "active")
        for name, role, inst in [("admin-gone", "local-admin", CENTRE_GONE), ("desig", "staff", None),
                                 ("consul", "staff", None), ("grantee", "staff", None)]:
            a.add_account(name, role, inst, password=STAFF_PASSWORD)
        # token cards cost ~2 s each (argon2 per code): the cell and admin-a log in for real, the others get the
        # very session a login issues (see minted())
        g.cards = {name: token_card(g, name) for name in ("cell", "admin-a")}
        yield g
    finally:
        g.stop()
        g.services.close()


class Client(WebClient):
    """The shared browser without JavaScript, with the console's two-step login."""

    def login(self, name: str, password: str = STAFF_PASSWORD) -> Resp:
        page = self.get("/console/login")
        assert page.status == 200, page.text
        r = self.post("/console/login", csrf=csrf_of(page.text), step="username", username=name)
        assert r.status == 200
        number = int(re.search(r'name="number" value="(\d+)"', r.text).group(1))
        r = self.post("/console/login", csrf=csrf_of(page.text), username=name, password=password, number=number,
                      code=self.gw.cards[name][number])
        assert r.status == 303 and r.location == "/console/", (r.status, r.text)
        return r

    def csrf(self, path: str = "/console/") -> str:
        return csrf_of(self.get(path).text)


def csrf_of(text: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', text).group(1)


def logged_in(gw, name: str, **kw) -> Client:
    """A client after the real two-step login (the cell and admin-a), or holding the session cookie the login
    would have issued (signed with the gateway's key), for the other accounts."""
    c = Client(gw, **kw)
    if name in gw.cards:
        c.login(name)
    else:
        c.jar["ip_console"] = minted(gw, name)
    return c


def minted(gw, name: str, seconds: int = 900) -> str:
    with gw.repo.read() as conn:
        account_id = gw.repo.account_by_name(conn, name).id
    return SessionSigner(gw.services.keyring.derive(b"web-session"), seconds=seconds).issue(account_id, name).value


def grants(gw, centre: str) -> dict[str, tuple]:
    return {g.name: (bool(g.can_remove), g.granted_by, g.expires_at) for g in gw.admin.access(centre)}


def status_of(gw, centre: str) -> str:
    return gw.admin.centre(centre).status


# -- login and sessions --------------------------------------------------------------------------------------------
def test_two_step_strong_login_and_session_cookie(gw):
    c = Client(gw)
    r = c.get("/console/")
    assert r.status == 303 and r.location == "/console/login"
    assert c.get("/console").location == "/console/"
    page = c.get("/console/login")
    assert page.status == 200 and '<html lang="en">' in page.text
    assert 'name="password"' not in page.text  # first the user name
    login_cookie = next(x for x in page.cookies if x.startswith("ip_console_login="))
    assert "HttpOnly" in login_cookie and "SameSite=Strict" in login_cookie and "Secure" in login_cookie
    token = csrf_of(page.text)
    # the login form itself carries a CSRF token bound to the login cookie
    r = c.post("/console/login", step="username", username="cell")
    assert r.status == 403 and "The form expired" in r.text
    page = c.get("/console/login")
    token = csrf_of(page.text)
    r = c.post("/console/login", csrf=token, step="username", username="cell")
    assert r.status == 200
    number = int(re.search(r"Code number (\d+) of your token card", r.text).group(1))
    assert f'name="number" value="{number}"' in r.text and 'name="password"' in r.text
    # a wrong code: the same generic failure as a wrong password; no session
    r = c.post("/console/login", csrf=token, username="cell", password=STAFF_PASSWORD, number=number, code="000000x")
    assert r.status == 401 and "Login failed." in r.text and "ip_console" not in c.jar
    r = c.post("/console/login", csrf=token, username="cell", password="wrong password!", number=number,
               code=gw.cards["cell"][number])
    assert r.status == 401 and "Login failed." in r.text and "ip_console" not in c.jar
    # the number asked stays the same until answered
    assert f'name="number" value="{number}"' in r.text
    r = c.post("/console/login", csrf=token, username="cell", password=STAFF_PASSWORD, number=number,
               code=gw.cards["cell"][number])
    assert r.status == 303 and r.location == "/console/"
    session_cookie = next(x for x in r.cookies if x.startswith("ip_console="))
    for attr in ("Path=/console/", "HttpOnly", "SameSite=Strict", "Secure"):
        assert attr in session_cookie
    assert "ip_console_login" not in c.jar  # the login form's cookie is dropped
    r = c.get("/console/")
    assert r.status == 200 and "Logged in as <strong>cell</strong>" in r.text
    # the login page, once logged in, leads to the console
    assert c.get("/console/login").location == "/console/"
    events = [(e.action, e.outcome, e.protocol) for e in gw.audit("login", limit=20) if e.actor == "cell"]
    assert ("login", "ok", "web") in events and ("login", "failed", "web") in events


def test_eid_certificate_and_password_need_no_token_code(make_gateway, tmp_path):
    pki = EidPki(tmp_path / "pki")
    nrn = national_register_number(date(1980, 5, 17), 41)
    card = pki.person("els", "Els", "Peeters", nrn=nrn)
    g = make_gateway(env={"INSTPAGES_WEBDAV_CLIENT_CA_FILE": str(pki.ca_bundle)})
    g.admin.add_account("els", "local-admin", CENTRE_A, password=STAFF_PASSWORD, nrn=nrn)
    c = Client(g, cert=card)
    page = c.get("/console/login")
    assert "Your eID card is the second factor." in page.text
    assert 'name="password"' in page.text and 'name="code"' not in page.text and 'name="step"' not in page.text
    r = c.post("/console/login", csrf=csrf_of(page.text), username="els", password="not the password")
    assert r.status == 401 and "Login failed." in r.text
    r = c.post("/console/login", csrf=csrf_of(page.text), username="els", password=STAFF_PASSWORD)
    assert r.status == 303 and r.location == "/console/"
    page = c.get("/console/")
    assert page.status == 200 and f'id="centre-{CENTRE_A}"' in page.text
    assert "method=password+eid" in [e.detail for e in g.audit("login") if e.actor == "els" and e.outcome == "ok"]
    # someone else's card with els's password is not els's second factor
    other = pki.person("piet", "Piet", "Janssens", nrn=national_register_number(date(1975, 1, 2), 77))
    c = Client(g, cert=other)
    page = c.get("/console/login")
    r = c.post("/console/login", csrf=csrf_of(page.text), username="els", password=STAFF_PASSWORD)
    assert r.status == 401 and "ip_console" not in c.jar


def test_machine_accounts_cannot_log_in(gw):
    c = Client(gw)
    page = c.get("/console/login")
    r = c.post("/console/login", csrf=csrf_of(page.text), step="username", username="podmi")
    number = int(re.search(r'name="number" value="(\d+)"', r.text).group(1))
    r = c.post("/console/login", csrf=csrf_of(page.text), username="podmi", password=STAFF_PASSWORD, number=number,
               code="123456")
    assert r.status == 401 and "Login failed." in r.text and "ip_console" not in c.jar


def test_logout(gw):
    c = logged_in(gw, "admin-a")
    stolen = c.jar["ip_console"]
    csrf = c.csrf()
    # logging out is a change: without the token it is refused and the session goes on
    r = c.post("/console/logout")
    assert r.status == 403
    assert c.get("/console/").status == 200
    r = c.post("/console/logout", csrf=csrf)
    assert r.status == 303 and r.location == "/console/login"
    assert any(x.startswith("ip_console=;") and "Max-Age=0" in x for x in r.cookies)
    assert "ip_console" not in c.jar
    r = c.get("/console/")
    assert r.status == 303 and r.location.startswith("/console/login")
    # the logged-out cookie, replayed, is not a session any more
    thief = Client(gw)
    thief.jar["ip_console"] = stolen
    r = thief.get("/console/")
    assert r.status == 303 and r.location == "/console/login?ended=1"


def test_forged_and_expired_cookies_lead_to_the_login_page(gw):
    with gw.repo.read() as conn:
        cell_id = gw.repo.account_by_name(conn, "cell").id
    expired = minted(gw, "cell", seconds=-5)
    other_key = SessionSigner(b"not the gateway's key", seconds=900).issue(cell_id, "cell").value
    valid = minted(gw, "cell")
    assert Client(gw).get("/console/", headers={"Cookie": f"ip_console={valid}"}).status == 200
    tampered = valid[:-1] + ("0" if valid[-1] != "0" else "1")
    for value in (expired, other_key, tampered, "MXxjZWxsfDk5OTk5OTk5OTk.0000", "garbage"):
        c = Client(gw)
        c.jar["ip_console"] = value
        r = c.get(f"/console/centres/{CENTRE_A}")
        assert r.status == 303 and r.location == "/console/login?ended=1", value
        assert any(x.startswith("ip_console=;") and "Max-Age=0" in x for x in r.cookies)
        page = c.follow(r)
        assert page.status == 200 and "Your session ended" in page.text and 'name="username"' in page.text
        # a change with such a cookie is refused: the login page, nothing done
        c.jar["ip_console"] = value
        r = c.post(f"/console/centres/{CENTRE_A}/transition", csrf="0" * 64, verb="suspend", reference="x")
        assert r.status == 401 and 'name="username"' in r.text
    assert status_of(gw, CENTRE_A) == "active"


def test_a_disabled_accounts_session_stops_working(gw):
    c = logged_in(gw, "admin-gone")
    assert c.get(f"/console/centres/{CENTRE_GONE}").status == 200
    csrf, cookie = c.csrf(), c.jar["ip_console"]
    gw.admin.set_account_enabled("admin-gone", False)
    try:
        r = c.get(f"/console/centres/{CENTRE_GONE}")
        assert r.status == 303 and r.location == "/console/login?ended=1"
        assert "ip_console" not in c.jar  # the browser is told to drop it
        # the same cookie, kept and replayed with a valid token: the login page, nothing changed
        c.jar["ip_console"] = cookie
        r = c.post(f"/console/centres/{CENTRE_GONE}/grant", csrf=csrf, account="grantee", rights="read")
        assert r.status == 401 and 'name="username"' in r.text
        assert "grantee" not in grants(gw, CENTRE_GONE)
    finally:
        gw.admin.set_account_enabled("admin-gone", True)


def test_staff_without_admin_powers_get_nothing_to_administer(gw):
    c = logged_in(gw, "staff-a")
    for path in ("/console/", f"/console/centres/{CENTRE_A}", f"/console/centres/{CENTRE_A}/record",
                 "/console/centres/abc"):
        r = c.get(path)
        assert r.status == 403, path
        assert "Nothing to administer" in r.text and "Traceback" not in r.text
        assert 'action="/console/logout"' in r.text  # but they can log out
    r = c.post(f"/console/centres/{CENTRE_A}/grant", csrf=c.csrf("/console/"), account="grantee")
    assert r.status == 403 and "Nothing to administer" in r.text
    assert "grantee" not in grants(gw, CENTRE_A)


# -- headers, no JavaScript, languages --------------------------------------------------------------------------------
def test_security_headers_and_no_script_on_every_page(gw):
    cell, local = logged_in(gw, "cell"), logged_in(gw, "admin-a")
    pages = [
        (Client(gw), "GET", "/console/login", 200),
        (cell, "GET", "/console/", 200),
        (cell, "GET", "/console/?status=paper", 200),
        (cell, "GET", f"/console/centres/{CENTRE_PAPER}", 200),
        (cell, "GET", f"/console/centres/{CENTRE_A}/record", 200),
        (cell, "GET", "/console/centres/0000000000", 404),
        (cell, "GET", "/console/nothing-here", 404),
        (cell, "GET", "/console/?status=bogus", 400),
        (cell, "GET", f"/console/centres/{CENTRE_A}/grant", 405),
        (cell, "POST", f"/console/centres/{CENTRE_A}/grant", 403),  # no CSRF token
        (local, "GET", "/console/", 200),
        (local, "GET", f"/console/centres/{CENTRE_A}", 200),
        (local, "GET", f"/console/centres/{CENTRE_B}", 404),
    ]
    for client, method, path, status in pages:
        r = client.request(method, path, form={} if method == "POST" else None)
        assert r.status == status, (path, r.status, r.text[:300])
        h = r.headers
        assert h["content-security-policy"] == CSP, path
        assert h["x-content-type-options"] == "nosniff"
        assert h["referrer-policy"] == "no-referrer"
        assert h["cache-control"] == "no-store"
        assert h["content-type"] == "text/html; charset=utf-8"
        assert re.search(r'<html lang="(en|nl|fr)">', r.text), path
        check_no_script(r.text)
    css = cell.get("/console/static/console.css")
    assert css.status == 200 and css.headers["content-type"].startswith("text/css")
    assert css.headers["x-content-type-options"] == "nosniff"
    # redirects carry the headers too
    r = Client(gw).get("/console/")
    assert r.status == 303 and r.headers["cache-control"] == "no-store"


def check_no_script(text: str) -> None:
    low = text.lower()
    assert "<script" not in low and "javascript:" not in low
    assert not re.search(r"\son[a-z]+\s*=", low), "event handler attribute"
    assert "style=" not in low and "<style" not in low  # CSP: one external stylesheet, nothing inline
    for form in re.findall(r"<form[^>]*>", text):
        assert 'method="post"' in form and 'action="/console/' in form, form


def test_every_form_posts_with_a_csrf_token_and_a_task_works_with_forms_only(gw):
    """No JavaScript: the local administrator grants, sees and revokes access with plain form posts."""
    c = logged_in(gw, "admin-a")
    page = c.get(f"/console/centres/{CENTRE_A}")
    forms = re.findall(r"<form[^>]*>.*?</form>", page.text, re.S)
    assert len(forms) >= 5
    for form in forms:
        assert re.search(r'<input type="hidden" name="csrf" value="[0-9a-f]{64}">', form), form
    until = (date.today() + timedelta(days=30)).isoformat()
    r = c.post(f"/console/centres/{CENTRE_A}/grant", csrf=csrf_of(page.text), account="grantee", rights="remove",
               until=until)
    assert r.status == 303 and r.location == f"/console/centres/{CENTRE_A}?done=grant#access"
    page = c.follow(r)
    assert page.status == 200 and "Access was granted." in page.text
    row = re.search(r'<tr data-account="grantee">.*?</tr>', page.text, re.S).group(0)
    assert "read + remove" in row and "admin-a" in row and until in row and "Revoke" in row
    can_remove, by, ends = grants(gw, CENTRE_A)["grantee"]
    assert can_remove and by == "admin-a" and ends is not None
    # a date in the past: the core's reason, nothing changed
    r = c.post(f"/console/centres/{CENTRE_A}/grant", csrf=csrf_of(page.text), account="grantee", rights="read",
               until="2001-01-01")
    assert r.status == 400 and "the end date 2001-01-01 is in the past" in r.text
    assert grants(gw, CENTRE_A)["grantee"][0] is True
    r = c.post(f"/console/centres/{CENTRE_A}/revoke", csrf=csrf_of(page.text), account="grantee")
    assert r.status == 303
    page = c.follow(r)
    assert "Access was revoked." in page.text and 'data-account="grantee"' not in page.text
    assert "grantee" not in grants(gw, CENTRE_A)
    # revoking again: the core's message, 404
    r = c.post(f"/console/centres/{CENTRE_A}/revoke", csrf=csrf_of(page.text), account="grantee")
    assert r.status == 404 and f"grantee has no access to {CENTRE_A}" in r.text


def test_csrf_missing_or_wrong_is_refused_and_changes_nothing(gw):
    local, cell = logged_in(gw, "admin-a"), logged_in(gw, "cell")
    before = grants(gw, CENTRE_A)
    other_session_token = cell.csrf()
    path = f"/console/centres/{CENTRE_A}/grant"
    for token in (None, "", "0" * 64, other_session_token, local.csrf()[:-1] + "x"):
        form = {"account": "grantee", "rights": "remove"}
        if token is not None:
            form["csrf"] = token
        r = local.request("POST", path, form=form)
        assert r.status == 403 and "The form expired or did not come from this console" in r.text, token
    assert grants(gw, CENTRE_A) == before
    for token in (None, "f" * 64):
        form = {"verb": "suspend", "reference": "forged"} | ({"csrf": token} if token else {})
        r = cell.request("POST", f"/console/centres/{CENTRE_A}/transition", form=form)
        assert r.status == 403
    assert status_of(gw, CENTRE_A) == "active"


def test_language_selection(gw):
    # nothing said: English
    c = Client(gw)
    assert '<html lang="en">' in c.get("/console/login").text
    # the browser's preference
    fr = Client(gw, accept_language="fr-BE,fr;q=0.9,en;q=0.5")
    page = fr.get("/console/login")
    assert '<html lang="fr">' in page.text and "Connexion" in page.text and "Nom d&#39;utilisateur" in page.text
    nl = Client(gw, accept_language="de-DE,de;q=0.9,nl;q=0.8")
    assert '<html lang="nl">' in nl.get("/console/login").text
    # ?lang= wins and is remembered in a cookie
    r = fr.get("/console/login?lang=nl")
    assert '<html lang="nl">' in r.text and "Aanmelden" in r.text
    lang_cookie = next(x for x in r.cookies if x.startswith("ip_lang="))
    assert lang_cookie.startswith("ip_lang=nl;") and "Path=/console/" in lang_cookie
    assert '<html lang="nl">' in fr.get("/console/login").text  # still Accept-Language: fr
    assert '<html lang="en">' in fr.get("/console/login?lang=en").text
    assert '<html lang="en">' in fr.get("/console/login?lang=de").text  # unknown: ignored, cookie kept (en)
    # a logged-in page in French, with the links to the other languages
    fr.jar.pop("ip_lang", None)
    fr.login("admin-a")
    page = fr.get(f"/console/centres/{CENTRE_A}")
    assert '<html lang="fr">' in page.text and "Qui a accès à la boîte aux lettres" in page.text
    assert "Accorder l&#39;accès" in page.text
    assert f'href="/console/centres/{CENTRE_A}?lang=nl"' in page.text
    page = fr.get(f"/console/centres/{CENTRE_A}?lang=nl")
    assert '<html lang="nl">' in page.text and "Wie heeft toegang tot de mailbox" in page.text


def test_labels_fall_back_to_english(monkeypatch):
    monkeypatch.setitem(i18n.LABELS, "test.only-some", {"en": "Only in English", "nl": "Ook in het Nederlands"})
    assert i18n.t("test.only-some", "nl") == "Ook in het Nederlands"
    assert i18n.t("test.only-some", "fr") == "Only in English"
    assert i18n.t("test.only-some", "en") == "Only in English"
    monkeypatch.setitem(i18n.LABELS, "test.empty-fr", {"en": "English text", "fr": ""})
    assert i18n.t("test.empty-fr", "fr") == "English text"
    assert i18n.t("test.nobody-wrote-this", "fr") == "test.nobody-wrote-this"
    assert i18n.t("login.code", "fr", n=7) == "Code numéro 7 de votre carte token"
    # every label has its English text; the console's own labels are all translated
    for key, texts in i18n.LABELS.items():
        if key.startswith("test."):
            continue
        assert texts.get("en"), key
        assert texts.get("nl") and texts.get("fr"), key
    assert i18n.negotiate("fr-BE, nl;q=0.9") == "fr"
    assert i18n.negotiate("de, nl;q=0.2, fr;q=0.7") == "fr"
    assert i18n.negotiate("de, *;q=0.5") is None and i18n.negotiate("") is None and i18n.negotiate(None) is None
    assert i18n.negotiate("nl;q=0, en") == "en"


# -- what the core refuses, shown clearly ------------------------------------------------------------------------------
def test_illegal_transition_shows_the_cores_reason_with_409(gw):
    c = logged_in(gw, "cell")
    page = c.get(f"/console/centres/{CENTRE_TRANS}")
    assert 'id="transition-request"' in page.text and 'id="transition-activate"' not in page.text
    csrf = csrf_of(page.text)
    # a forged "activate" on a paper centre (the page offers only "request")
    r = c.post(f"/console/centres/{CENTRE_TRANS}/transition", csrf=csrf, verb="activate", reference="forms 12")
    assert r.status == 409
    assert (f"centre {CENTRE_TRANS}: cannot activate: the centre is paper; it has not asked to switch over yet; "
            "record its request first") in r.text
    assert f'href="/console/centres/{CENTRE_TRANS}"' in r.text  # back to the centre
    assert status_of(gw, CENTRE_TRANS) == "paper"
    # no reference: 400 with the core's words
    r = c.post(f"/console/centres/{CENTRE_TRANS}/transition", csrf=csrf, verb="request", reference="  ")
    assert r.status == 400 and "a reference is required" in r.text
    r = c.post(f"/console/centres/{CENTRE_TRANS}/transition", csrf=csrf, verb="paperize", reference="x")
    assert r.status == 400 and "unknown transition" in r.text
    # the legal path, with the history on the page
    r = c.post(f"/console/centres/{CENTRE_TRANS}/transition", csrf=csrf, verb="request", reference="letter 2026/77")
    assert r.status == 303 and r.location == f"/console/centres/{CENTRE_TRANS}?done=transition#switch-over"
    page = c.follow(r)
    assert 'data-status="requested"' in page.text and "letter 2026/77" in page.text
    assert 'id="transition-activate"' in page.text and 'id="transition-request"' not in page.text
    r = c.post(f"/console/centres/{CENTRE_TRANS}/transition", csrf=csrf, verb="activate", reference="forms in")
    assert r.status == 303 and "done=activated_nomail" in r.location  # no contacts, no mail configured
    page = c.follow(r)
    assert "no notice was queued" in page.text and 'id="transition-suspend"' in page.text
    r = c.post(f"/console/centres/{CENTRE_TRANS}/transition", csrf=csrf, verb="activate", reference="again")
    assert r.status == 409 and "it is already active" in r.text
    assert status_of(gw, CENTRE_TRANS) == "active"
    with gw.repo.read() as conn:
        hist = [(h.from_status, h.to_status, h.actor, h.reference) for h in gw.repo.status_history(conn, CENTRE_TRANS)]
    assert hist == [("paper", "requested", "cell", "letter 2026/77"), ("requested", "active", "cell", "forms in")]
    refused = [e for e in gw.audit("admin-transition", limit=10) if e.institution_id == CENTRE_TRANS]
    assert refused and refused[-1].outcome == "denied" and refused[-1].protocol == "web"


def test_centre_names_and_messages_are_escaped(gw):
    c = logged_in(gw, "cell")
    for path in ("/console/", f"/console/centres/{CENTRE_XSS}", f"/console/centres/{CENTRE_XSS}/record"):
        r = c.get(path)
        assert r.status == 200
        assert XSS not in r.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text, path
        check_no_script(r.text)
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt; - Institutional Pages</title>" in \
        c.get(f"/console/centres/{CENTRE_XSS}").text
    # the core's message echoes what was typed: escaped too
    evil = '"><img src=x onerror=alert(1)>'
    r = c.post(f"/console/centres/{CENTRE_XSS}/designate", csrf=c.csrf(), account=evil)
    assert r.status == 404 and "no person account" in r.text
    assert "<img" not in r.text and "&lt;img src=x onerror=alert(1)&gt;" in r.text
    r = c.post(f"/console/centres/{CENTRE_XSS}/contacts", csrf=c.csrf(), contacts="<b>x</b>@y", language="nl")
    assert r.status == 400 and "not an e-mail address" in r.text and "<b>" not in r.text


def test_not_found_pages_are_identical_for_every_unknown_or_hidden_centre(gw):
    c = logged_in(gw, "admin-a")
    bodies = set()
    for raw in (CENTRE_B, "0000000000", "abc", CENTRE_PAPER, "0212.345.668x", "%3Cscript%3E"):
        r = c.get(f"/console/centres/{raw}")
        assert r.status == 404, raw
        bodies.add(r.text)
        r = c.get(f"/console/centres/{raw}/record")
        assert r.status == 404
        bodies.add(r.text)
    assert len(bodies) == 1
    assert "There is no such centre or page." in bodies.pop()
    # the cell also gets the same page for an id that does not exist
    cell = logged_in(gw, "cell")
    assert cell.get("/console/centres/0000000000").status == 404


def test_security_cell_designates_administrators_and_consultant_but_does_not_grant(gw):
    cell = logged_in(gw, "cell")
    page = cell.get(f"/console/centres/{CENTRE_DESIG}")
    assert "No local administrator designated." in page.text
    assert 'id="grant"' not in page.text and 'id="archived"' not in page.text  # no grants, no documents
    csrf = csrf_of(page.text)
    r = cell.post(f"/console/centres/{CENTRE_DESIG}/designate", csrf=csrf, account="desig")
    assert r.status == 303 and "done=designate" in r.location
    page = cell.follow(r)
    assert "The local administrator was designated." in page.text
    assert re.search(r'<table id="local-admins">.*desig.*Remove designation', page.text, re.S)
    # the new local administrator sees that centre, and only that one
    desig = logged_in(gw, "desig")
    r = desig.get("/console/")
    assert r.status == 200 and CENTRE_DESIG in r.text and CENTRE_A not in r.text
    assert 'id="grant"' in desig.get(f"/console/centres/{CENTRE_DESIG}").text
    # the cell may not grant access itself
    r = cell.post(f"/console/centres/{CENTRE_DESIG}/grant", csrf=csrf, account="grantee")
    assert r.status == 403 and "cell may not grant here" in r.text
    assert "grantee" not in grants(gw, CENTRE_DESIG)
    r = cell.post(f"/console/centres/{CENTRE_DESIG}/undesignate", csrf=csrf, account="desig")
    assert r.status == 303
    assert "No local administrator designated." in cell.follow(r).text
    assert desig.get(f"/console/centres/{CENTRE_DESIG}").status == 403  # nothing to administer any more
    # the security consultant acts as local administrator while none is designated
    r = cell.post(f"/console/centres/{CENTRE_CONS}/consultant", csrf=csrf, account="consul")
    assert r.status == 303
    page = cell.follow(r)
    assert re.search(r'id="consultant-name">consul .*acts as local administrator', page.text)
    consul = logged_in(gw, "consul")
    page = consul.get(f"/console/centres/{CENTRE_CONS}")
    assert page.status == 200 and 'id="grant"' in page.text
    r = cell.post(f"/console/centres/{CENTRE_CONS}/consultant", csrf=csrf, clear="1")
    assert r.status == 303 and "None designated." in cell.follow(r).text
    assert consul.get(f"/console/centres/{CENTRE_CONS}").status == 403


def test_contacts_language_and_test_mail(gw):
    c = logged_in(gw, "admin-a")
    csrf = c.csrf()
    r = c.post(f"/console/centres/{CENTRE_A}/contacts", csrf=csrf, contacts="ict@ocmw-a.test\nhead@ocmw-a.test",
               language="fr")
    assert r.status == 303 and "done=contacts" in r.location
    page = c.follow(r)
    assert "ict@ocmw-a.test\nhead@ocmw-a.test</textarea>" in page.text
    assert '<option value="fr" selected>' in page.text
    centre = gw.admin.centre(CENTRE_A)
    assert centre.contacts == "ict@ocmw-a.test,head@ocmw-a.test" and centre.language == "fr"
    r = c.post(f"/console/centres/{CENTRE_A}/contacts", csrf=csrf, contacts="x", language="de")
    assert r.status == 400
    # this gateway has no SMTP relay: the core says so (409)
    r = c.post(f"/console/centres/{CENTRE_A}/notify-test", csrf=csrf)
    assert r.status == 409 and "mail is not configured on this gateway" in r.text
    # the cell sees the same settings read-write, the access read-only
    cell = logged_in(gw, "cell")
    page = cell.get(f"/console/centres/{CENTRE_A}")
    assert "ict@ocmw-a.test" in page.text and 'id="access-table"' in page.text
    assert "staff-a-rm" in page.text and ">Revoke<" not in page.text


def test_local_admin_restores_an_archived_document(gw):
    pdf = pdfsamples.minimal_pdf("console-restore")
    up = session(gw.services, "podmi").open_upload(f"/{CENTRE_A}/2026-11/console-restore.pdf")
    up.append(pdf)
    up.commit()
    session(gw.services, "arch-a").archive(f"/{CENTRE_A}/2026-11/console-restore.pdf")
    c = logged_in(gw, "admin-a")
    page = c.get(f"/console/centres/{CENTRE_A}")
    assert re.search(r"<td>2026-11/console-restore\.pdf</td>.*?arch-a", page.text, re.S)
    r = c.post(f"/console/centres/{CENTRE_A}/restore", csrf=csrf_of(page.text), path="2026-11/console-restore.pdf")
    assert r.status == 303 and "done=restore" in r.location
    page = c.follow(r)
    assert "The document was restored to the mailbox." in page.text and "console-restore.pdf" not in page.text
    with gw.repo.read() as conn:
        assert gw.repo.visible_document(conn, CENTRE_A, "2026-11", "console-restore.pdf") is not None
    r = c.post(f"/console/centres/{CENTRE_A}/restore", csrf=csrf_of(page.text), path="2026-11/console-restore.pdf")
    assert r.status == 404 and "no archived document" in r.text
    # on the record, and the record page shows it
    page = c.get(f"/console/centres/{CENTRE_A}/record")
    assert re.search(r"<td>admin-a</td><td>web</td><td>127\.0\.0\.1</td><td>restore</td><td>ok</td>", page.text)


def test_centres_list_and_filter(gw):
    c = logged_in(gw, "cell")
    page = c.get("/console/")
    for cid in (CENTRE_A, CENTRE_B, CENTRE_PAPER):
        assert f'id="centre-{cid}"' in page.text
    page = c.get("/console/?status=paper")
    assert f'id="centre-{CENTRE_PAPER}"' in page.text and f'id="centre-{CENTRE_A}"' not in page.text
    assert "<strong>paper (" in page.text
    local = logged_in(gw, "admin-a")
    page = local.get("/console/")
    assert f'id="centre-{CENTRE_A}"' in page.text and f'id="centre-{CENTRE_B}"' not in page.text
    # the console's only "script" is none; other methods are refused
    assert c.request("PUT", "/console/").status == 405
    assert c.request("DELETE", f"/console/centres/{CENTRE_A}").status == 405


CENTRE_UNCL = with_check("02666666")


def test_security_cell_sees_the_unclassified_documents_counted_per_centre(gw):
    gw.admin.add_institution(CENTRE_UNCL, "OCMW <Ongeklasseerd>", "active")
    up = session(gw.services, "podmi")
    for name in ("ris_maandstaat_2026-10.pdf", "brief.pdf", "2026-10/lijst.pdf", "ris_maandstaat_2026-13.pdf"):
        u = up.open_upload(f"/{CENTRE_UNCL}/{name}")
        u.append(pdfsamples.minimal_pdf(name))
        u.commit()
    with gw.repo.read() as conn:
        expected = dict(gw.repo.unclassified_counts(conn))
    assert expected[CENTRE_UNCL] == 3  # all but the one filed by the naming convention
    cell = logged_in(gw, "cell", accept_language="nl")
    assert 'href="/console/unclassified"' in cell.get("/console/").text
    page = cell.get("/console/unclassified")
    assert page.status == 200, page.text
    check_no_script(page.text)
    row = re.search(rf'<tr id="unclassified-{CENTRE_UNCL}">(.*?)</tr>', page.text).group(1)
    assert '<td class="count">3</td>' in row and "OCMW &lt;Ongeklasseerd&gt;" in row
    for cid, n in expected.items():  # every centre with some, as the database counts them
        assert re.search(rf'<tr id="unclassified-{cid}">.*?<td class="count">{n}</td>', page.text)
    assert f"In totaal: {sum(expected.values())}" in page.text
    explain = re.search(r'<p id="filing-conventions">(.*?)</p>', page.text).group(1)
    assert "&lt;wetgeving&gt;/&lt;soort&gt;/&lt;JJJJ-MM&gt;/naam.pdf" in explain and "niet geklasseerd" in explain
    assert "brief.pdf" not in page.text  # counts, never names
    # a local administrator, staff: refused; the local administrator's attempt is on the record
    local = logged_in(gw, "admin-a")
    assert "/console/unclassified" not in local.get("/console/").text
    r = local.get("/console/unclassified")
    assert r.status == 403 and "may not see the counts of unclassified documents" in r.text
    assert [e for e in gw.audit(limit=20) if e.action == "admin-unclassified" and e.actor == "admin-a"
            and e.outcome == "denied"]
    r = logged_in(gw, "staff-a").get("/console/unclassified")
    assert r.status == 403 and "Nothing to administer" in r.text
    assert cell.post("/console/unclassified", csrf=cell.csrf()).status == 405
