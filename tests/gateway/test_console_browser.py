"""The web console in a real browser: Debian's headless Chromium driven by Playwright, JavaScript switched OFF (the
console must work with forms and links alone), against a real gateway with a real SMTP server.

Screenshots of the main pages go to ``test-artifacts/console/`` under the repository root."""
from __future__ import annotations

import base64
import re
import ssl
import urllib.error
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests import pdfsamples
from tests.browser import chromium
from tests.conftest import (CENTRE_A, CENTRE_B, CENTRE_PAPER, STAFF_PASSWORD, populate, start_gateway,
                            token_card)
from tests.coretools import session

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
CTX = ssl._create_unverified_context()


@pytest.fixture(scope="module")
def gw(tmp_path_factory, smtp):
    d = tmp_path_factory.mktemp("console-browser")
    g = start_gateway(d / "var", env=smtp.env())
    try:
        populate(g, d)
        g.cards = {name: token_card(g, name) for name in ("cell", "admin-a")}
        g.base = f"https://127.0.0.1:{g.dav_port}/console"
        yield g
    finally:
        g.stop()
        g.services.close()


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser):
    # no JavaScript at all: every step below is a link or a form
    context = browser.new_context(ignore_https_errors=True, java_script_enabled=False, locale="en-GB",
                                  viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    yield pg
    context.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def login(page, gw, name: str, *, screenshot: str = "") -> None:
    resp = page.goto(gw.base + "/")
    assert resp.status == 200 and page.url == gw.base + "/login"  # after the redirect
    page.fill("#login input[name=username]", name)
    if screenshot:
        shot(page, screenshot)
    page.click("#login button[type=submit]")
    label = page.text_content("#login")
    number = int(re.search(r"Code number (\d+) of your token card", label).group(1))
    assert page.get_attribute("#login input[name=number]", "value") == str(number)
    page.fill("#login input[name=password]", STAFF_PASSWORD)
    page.fill("#login input[name=code]", gw.cards[name][number])
    if screenshot:
        shot(page, screenshot + "-code")
    with page.expect_navigation():
        page.click("#login button[type=submit]")
    assert page.url == gw.base + "/", page.content()[:2000]
    assert f"Logged in as {name}" in " ".join(page.text_content("header").split())


def deliver(gw, path: str, data: bytes) -> None:
    up = session(gw.services, "podmi").open_upload(path)
    up.append(data)
    up.commit()


def dav_get(gw, user: str, path: str) -> tuple[int, bytes]:
    req = urllib.request.Request(gw.dav_url + path)
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{STAFF_PASSWORD}".encode()).decode())
    try:
        with urllib.request.urlopen(req, context=CTX, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_security_cell_switches_a_centre_over_and_the_centre_gets_its_mail(gw, smtp, page):
    login(page, gw, "cell", screenshot="login")
    # the centres with their statuses
    statuses = {}
    for cid in (CENTRE_A, CENTRE_B, CENTRE_PAPER):
        statuses[cid] = page.get_attribute(f"#centre-{cid} .status", "data-status")
    assert statuses == {CENTRE_A: "active", CENTRE_B: "active", CENTRE_PAPER: "paper"}
    assert "suspended (1)" in page.text_content(".filters")
    shot(page, "centres-list")
    page.click(f"#centre-{CENTRE_PAPER} a >> nth=0")
    assert page.url == f"{gw.base}/centres/{CENTRE_PAPER}"
    assert page.get_attribute("#status", "data-status") == "paper"
    # the centre's contacts first (French)
    page.fill("#contacts-addresses", "contact@ocmw-papier.test")
    page.select_option("#contacts select[name=language]", "fr")
    page.click("#contacts button[type=submit]")
    assert "The notification settings were saved." in page.text_content(".flash")
    # the centre's request, with its reference
    assert page.query_selector("#transition-activate") is None  # not offered before the request
    page.fill("#transition-request input[name=reference]", "request letter 2026-11-12")
    page.click("#transition-request button[type=submit]")
    assert page.get_attribute("#status", "data-status") == "requested"
    assert "request letter 2026-11-12" in page.text_content("#history")
    # activation: all three legislations at once, with the reference of the signed forms
    page.fill("#transition-activate input[name=reference]", "forms received 2026-11-20")
    page.click("#transition-activate button[type=submit]")
    assert page.get_attribute("#status", "data-status") == "active"
    assert "Its contacts will receive the notice" in page.text_content(".flash")
    assert "forms received 2026-11-20" in page.text_content("#facts")
    centre = gw.admin.centre(CENTRE_PAPER)
    assert centre.status == "active" and centre.status_changed_by == "cell"
    # the server sends the notice within notifications.poll_seconds
    mails = [m for m in smtp.wait_for(1) if "contact@ocmw-papier.test" in str(m["To"])]
    assert len(mails) == 1
    msg = mails[0]
    assert str(msg["To"]) == "contact@ocmw-papier.test"
    assert "votre page institutionnelle est prête" in str(msg["Subject"]) and "OCMW Papier" in str(msg["Subject"])
    body = msg.get_body(preferencelist=("plain",)).get_content()
    assert CENTRE_PAPER in body and "forms received 2026-11-20" in body
    assert not msg.is_multipart() and list(msg.iter_attachments()) == []
    # the page shows the mail as sent
    for _ in range(50):
        page.reload()
        if "sent" in (page.text_content("#outbox") or ""):
            break
        page.wait_for_timeout(200)
    outbox = page.text_content("#outbox")
    assert "activation notice" in outbox and "contact@ocmw-papier.test" in outbox and "sent" in outbox
    shot(page, "centre-security-cell")
    # the cell never gets a document list or a grant form
    assert page.query_selector("#archived") is None and page.query_selector("#grant") is None
    assert page.query_selector("#access") is not None


def test_local_admin_grants_access_and_the_staff_member_downloads(gw, page):
    pdf = pdfsamples.minimal_pdf("console-browser")
    deliver(gw, f"/{CENTRE_A}/2026-11/doc.pdf", pdf)
    gw.admin.add_account("staff-new", "staff", None, [], STAFF_PASSWORD)
    status, _ = dav_get(gw, "staff-new", f"/{CENTRE_A}/2026-11/doc.pdf")
    assert status in (401, 403, 404)
    login(page, gw, "admin-a")
    # a local administrator sees their own centre only
    assert page.query_selector(f"#centre-{CENTRE_A}") is not None
    assert page.query_selector(f"#centre-{CENTRE_B}") is None
    page.click(f"#centre-{CENTRE_A} a >> nth=0")
    assert page.query_selector("#transition-suspend") is None and page.query_selector("#designate") is None
    until = (date.today() + timedelta(days=60)).isoformat()
    page.fill("#grant input[name=account]", "staff-new")
    page.check("#grant input[name=rights][value=read]")
    page.fill("#grant input[name=until]", until)
    page.click("#grant button[type=submit]")
    assert "Access was granted." in page.text_content(".flash")
    row = " ".join(page.text_content('#access-table tr[data-account="staff-new"]').split())
    assert "staff-new" in row and "read" in row and "remove" not in row and "admin-a" in row and until in row
    shot(page, "centre-local-admin")
    status, data = dav_get(gw, "staff-new", f"/{CENTRE_A}/2026-11/doc.pdf")
    assert status == 200 and data == pdf
    # and revoking from the page ends it
    page.click('#access-table tr[data-account="staff-new"] button')
    assert "Access was revoked." in page.text_content(".flash")
    status, _ = dav_get(gw, "staff-new", f"/{CENTRE_A}/2026-11/doc.pdf")
    assert status in (401, 403, 404)


def test_local_admin_cannot_reach_another_centre_by_editing_urls(gw, page):
    login(page, gw, "admin-a")
    before_b = sorted((g.name, bool(g.can_remove)) for g in gw.admin.access(CENTRE_B))
    centre_b = gw.admin.centre(CENTRE_B)
    csrf = page.get_attribute("#logout input[name=csrf]", "value")
    bodies = []
    for raw in (CENTRE_B, "0000000000", "abc"):
        resp = page.goto(f"{gw.base}/centres/{raw}")
        assert resp.status == 404, raw
        assert page.text_content("h1") == "Not found"
        assert raw not in page.text_content("main")
        bodies.append(resp.body())
    assert bodies[0] == bodies[1] == bodies[2]
    forged = [
        ("grant", {"account": "staff-a", "rights": "remove"}),
        ("revoke", {"account": "staff-ab"}),
        ("contacts", {"contacts": "attacker@evil.test", "language": "fr"}),
        ("restore", {"path": "2026-11/doc.pdf"}),
        ("notify-test", {}),
        ("transition", {"verb": "suspend", "reference": "forged"}),
        ("designate", {"account": "staff-a"}),
    ]
    for target in (CENTRE_B, "0000000000", "abc"):
        for action, form in forged:
            resp = page.request.post(f"{gw.base}/centres/{target}/{action}", form={"csrf": csrf, **form},
                                     max_redirects=0)
            assert resp.status == 404, (target, action, resp.text()[:300])
            assert resp.body() == bodies[0], (target, action)
    # the same token on their own centre does work: the refusals above were about the centre, not the form
    resp = page.request.post(f"{gw.base}/centres/{CENTRE_A}/contacts", form={"csrf": csrf, "language": "nl"},
                             max_redirects=0)
    assert resp.status == 303
    assert sorted((g.name, bool(g.can_remove)) for g in gw.admin.access(CENTRE_B)) == before_b
    after = gw.admin.centre(CENTRE_B)
    assert (after.status, after.contacts, after.language) == (centre_b.status, centre_b.contacts, centre_b.language)
    with gw.repo.read() as c:
        assert [a.name for a in gw.repo.local_admins(c, CENTRE_B)] == []
    denied = [e for e in gw.audit(limit=200) if e.actor == "admin-a" and e.outcome == "denied"]
    assert len(denied) >= 3 * len(forged)


def test_pages_in_french_and_dutch(gw, page):
    login(page, gw, "admin-a")
    page.click("nav.langs a[lang=fr]")
    assert page.get_attribute("html", "lang") == "fr"
    assert "Centres" in page.text_content("h1")
    page.click(f"#centre-{CENTRE_A} a >> nth=0")
    assert page.get_attribute("html", "lang") == "fr"  # remembered
    assert "Qui a accès à la boîte aux lettres" in page.text_content("#access h2")
    shot(page, "centre-local-admin-fr")
    page.click("nav.langs a[lang=nl]")
    assert page.get_attribute("html", "lang") == "nl"
    assert "Wie heeft toegang tot de mailbox" in page.text_content("#access h2")
    page.click("#logout button")
    assert page.url == gw.base + "/login" and page.get_attribute("html", "lang") == "nl"
    assert page.goto(gw.base + "/").url == gw.base + "/login"


def test_local_admin_sends_a_test_mail(gw, smtp, page):
    login(page, gw, "admin-a")
    page.goto(f"{gw.base}/centres/{CENTRE_A}?lang=nl")
    page.fill("#contacts-addresses", "ict@ocmw-aalst.test, directie@ocmw-aalst.test")
    page.select_option("#contacts select[name=language]", "nl")
    page.click("#contacts button[type=submit]")
    assert "De meldingsinstellingen zijn opgeslagen." in page.text_content(".flash")
    assert gw.admin.centre(CENTRE_A).contacts == "ict@ocmw-aalst.test,directie@ocmw-aalst.test"
    page.click("#notify-test button")
    assert "Het testbericht staat in de wachtrij." in page.text_content(".flash")
    # (a digest of the documents delivered earlier may come too, now that the centre has addresses)
    mails: list = []
    for _ in range(100):
        mails = [m for m in smtp.messages if "testbericht" in str(m["Subject"])]
        if mails:
            break
        page.wait_for_timeout(100)
    assert len(mails) == 1 and "testbericht voor OCMW Aalst-test" in str(mails[0]["Subject"])
    assert "ict@ocmw-aalst.test" in str(mails[0]["To"]) and "directie@ocmw-aalst.test" in str(mails[0]["To"])
