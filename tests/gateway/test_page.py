"""The institutional page (/page/) at the protocol level: a real gateway on HTTPS, driven with http.client as a
browser without JavaScript would, and checked against the database and the record.

What a staff member of centre A can do to reach centre B (URLs, form fields, forged ids) answers exactly as a centre
or document that does not exist; bad input (unknown filter values, a ZIP over its limits, a form without its CSRF
token) gets a clear answer, changes nothing, and is on the record."""
from __future__ import annotations

import io
import re
import time
import zipfile
from datetime import date

import pytest

from gateway.core.enterprise import with_check
from gateway.web import page as page_module
from gateway.web.zipstream import member_names
from tests import pdfsamples
from tests.conftest import CENTRE_A, CENTRE_B, STAFF_PASSWORD, populate, start_gateway, token_card
from tests.coretools import deliver as core_deliver
from tests.coretools import session
from tests.gateway.test_console import CSP, csrf_of, minted
from tests.pki import EidPki, national_register_number
from tests.webclient import Client

XSS = '<img src=x onerror="alert(1)">'
NOWHERE = with_check("09999999")  # a well-formed centre id no centre has


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    d = tmp_path_factory.mktemp("page")
    g = start_gateway(d / "var")
    try:
        populate(g, d)
        g.cards = {"staff-ab": token_card(g, "staff-ab")}
        g.docs = {}
        for key, path in [("a1", f"/{CENTRE_A}/ris/maandstaat/2026-10/statement.pdf"),
                          ("a2", f"/{CENTRE_A}/law1965/refused-forms/2026-10/refused.pdf"),
                          ("a3", f"/{CENTRE_A}/maintenance/annual-settlement/2025/settlement.pdf"),
                          ("xss", f"/{CENTRE_A}/{XSS}.pdf"),
                          ("b1", f"/{CENTRE_B}/ris/maandstaat/2026-10/secret-of-b.pdf")]:
            g.docs[key] = deliver(g, path, pdfsamples.minimal_pdf(key))
        yield g
    finally:
        g.stop()
        g.services.close()


def deliver(gw, path: str, data: bytes) -> int:
    return core_deliver(session(gw.services, "podmi"), path, data).document_id


def staff(gw, name: str = "staff-a") -> Client:
    c = Client(gw)
    c.jar["ip_page"] = minted(gw, name)
    return c


def fetched(gw, doc_id: int, timeout: float = 10.0):
    """The receipt once it names its first fetch: the server records a download as it finishes sending, which
    may be a moment after the client has every byte."""
    deadline = time.monotonic() + timeout
    row = receipt(gw, doc_id)
    while row.first_fetched_at is None and time.monotonic() < deadline:
        time.sleep(0.05)
        row = receipt(gw, doc_id)
    return row


def receipt(gw, doc_id: int):
    """The document's receipt as stored (read here without a session: nothing on the record)."""
    with gw.repo.read() as c:
        return gw.repo.catalogue_entry(c, CENTRE_B if doc_id == gw.docs["b1"] else CENTRE_A, doc_id)


def events(gw, actor: str, since: int = 0) -> list:
    with gw.repo.read() as c:
        return [e for e in reversed(gw.repo.audit_events(c, limit=2000)) if e.actor == actor and e.id > since]


def last_event_id(gw) -> int:
    with gw.repo.read() as c:
        rows = gw.repo.audit_events(c, limit=1)
    return rows[0].id if rows else 0


def message(text: str) -> str:
    m = re.search(r'id="message">(.*?)</p>', text, re.S)
    return m.group(1) if m else ""


def test_a_browser_opening_the_server_lands_on_the_page_and_logs_in_strongly(gw):
    c = Client(gw)
    r = c.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert r.status == 302 and r.location == "/page/"
    assert c.get("/").location == "/dav/"  # not a browser: the WebDAV tree, as before
    assert c.request("OPTIONS", "/").headers["dav"] == "1, 2"
    assert c.request("PROPFIND", "/", headers={"Depth": "1"}).status == 207
    assert c.get("/dav/").status == 401
    r = c.get("/page/")
    assert r.status == 303 and r.location == "/page/login"
    page = c.get("/page/login")
    assert page.status == 200 and 'name="username"' in page.text and 'name="password"' not in page.text
    token = csrf_of(page.text)
    r = c.post("/page/login", csrf=token, step="username", username="staff-ab")
    number = int(re.search(r'name="number" value="(\d+)"', r.text).group(1))
    r = c.post("/page/login", csrf=token, username="staff-ab", password=STAFF_PASSWORD, number=number, code="0")
    assert r.status == 401 and "Login failed." in r.text and "ip_page" not in c.jar
    r = c.post("/page/login", csrf=token, username="staff-ab", password=STAFF_PASSWORD, number=number,
               code=gw.cards["staff-ab"][number])
    assert r.status == 303 and r.location == "/page/"
    cookie = next(x for x in r.cookies if x.startswith("ip_page="))
    for attr in ("Path=/page/", "HttpOnly", "SameSite=Strict", "Secure"):
        assert attr in cookie
    r = c.get("/page/")  # two centres: the list
    assert r.status == 200 and f'id="mailbox-{CENTRE_A}"' in r.text and f'id="mailbox-{CENTRE_B}"' in r.text
    for name, value in [("Content-Security-Policy", CSP), ("X-Content-Type-Options", "nosniff"),
                        ("X-Frame-Options", "DENY"), ("Cache-Control", "no-store")]:
        assert r.headers[name.lower()] == value
    assert "<script" not in r.text
    # one centre: straight into it
    one = staff(gw)
    r = one.get("/page/")
    assert r.status == 303 and r.location == f"/page/centres/{CENTRE_A}"
    assert ("login", "ok", "web") in [(e.action, e.outcome, e.protocol) for e in events(gw, "staff-ab")]


def test_the_list_filters_and_shows_receipts(gw):
    c = staff(gw)
    r = c.get(f"/page/centres/{CENTRE_A}")
    assert r.status == 200
    ids = [int(x) for x in re.findall(r'<tr id="doc-(\d+)"', r.text)]
    assert ids == sorted(ids, reverse=True) and gw.docs["b1"] not in ids  # newest first, A's only
    assert set(ids) == {gw.docs[k] for k in ("a1", "a2", "a3", "xss")}
    r = c.get(f"/page/centres/{CENTRE_A}?legislation=ris&period=2026-10&kind=")
    assert re.findall(r'<tr id="doc-(\d+)"', r.text) == [str(gw.docs["a1"])]
    assert 'data-kind="monthly-statement"' in r.text and "Right to social integration" in r.text
    r = c.get(f"/page/centres/{CENTRE_A}?period=2026-10&lang=fr")
    assert {int(x) for x in re.findall(r'<tr id="doc-(\d+)"', r.text)} == {gw.docs["a1"], gw.docs["a2"]}
    assert "Droit à l&#39;intégration sociale" in r.text and "État mensuel" in r.text and 'id="zip-period"' in r.text
    r = c.get(f"/page/centres/{CENTRE_A}?kind=unclassified&lang=nl")
    assert re.findall(r'<tr id="doc-(\d+)"', r.text) == [str(gw.docs["xss"])] and "Niet ingedeeld" in r.text
    lists = [e for e in events(gw, "staff-a") if e.action == "list" and e.outcome == "ok"]
    assert "legislation=ris" in lists[-3].detail and "period=2026-10" in lists[-3].detail


def test_a_name_with_markup_is_shown_as_text(gw):
    c = staff(gw)
    for path in (f"/page/centres/{CENTRE_A}", f"/page/centres/{CENTRE_A}/documents/{gw.docs['xss']}"):
        r = c.get(path)
        assert r.status == 200
        assert XSS not in r.text and "<img" not in r.text
        assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;.pdf" in r.text


def test_a_download_is_the_document_and_moves_the_receipt(gw):
    doc = deliver(gw, f"/{CENTRE_A}/ris/accepted-forms/2026-09/accepted.pdf", pdfsamples.minimal_pdf("dl"))
    c = staff(gw)
    r = c.get(f"/page/centres/{CENTRE_A}/documents/{doc}")
    assert 'id="receipt-fetched">not fetched yet<' in r.text and 'id="receipt-sender">podmi<' in r.text
    r = c.get(f"/page/centres/{CENTRE_A}/documents/{doc}/download")
    assert r.status == 200 and r.headers["content-type"] == "application/pdf"
    assert r.raw == pdfsamples.minimal_pdf("dl")
    assert r.headers["content-disposition"].startswith('attachment; filename="accepted.pdf"')
    assert r.headers["x-content-type-options"] == "nosniff"
    row = fetched(gw, doc)
    assert (row.first_fetched_by, row.first_fetched_protocol) == ("staff-a", "web")
    r = c.get(f"/page/centres/{CENTRE_A}/documents/{doc}")
    assert re.search(r'id="receipt-fetched">\S+ \S+ by staff-a via web page<', r.text), r.text
    dl = [e for e in events(gw, "staff-a") if e.action == "download" and e.document_id == doc]
    assert [(e.outcome, e.protocol) for e in dl] == [("complete", "web")]


def test_editing_urls_and_forms_towards_another_centre_answers_as_nothing_there(gw):
    c = staff(gw)
    since = last_event_id(gw)
    csrf = csrf_of(c.get(f"/page/centres/{CENTRE_A}").text)
    b_doc, a_doc = gw.docs["b1"], gw.docs["a1"]
    before = receipt(gw, b_doc)
    bodies = {}
    for label, path in [
            ("centre B", f"/page/centres/{CENTRE_B}"),
            ("no centre", f"/page/centres/{NOWHERE}"),
            ("bad check", "/page/centres/0000000000"),
            ("not an id", "/page/centres/abc"),
            ("B filtered", f"/page/centres/{CENTRE_B}?legislation=ris"),
            ("B doc under A", f"/page/centres/{CENTRE_A}/documents/{b_doc}"),
            ("B doc under B", f"/page/centres/{CENTRE_B}/documents/{b_doc}"),
            ("A doc under B", f"/page/centres/{CENTRE_B}/documents/{a_doc}"),
            ("forged id", f"/page/centres/{CENTRE_A}/documents/987654"),
            ("not a number", f"/page/centres/{CENTRE_A}/documents/x1"),
            ("huge id", f"/page/centres/{CENTRE_A}/documents/99999999999999999999"),
            ("B download under A", f"/page/centres/{CENTRE_A}/documents/{b_doc}/download"),
            ("B download under B", f"/page/centres/{CENTRE_B}/documents/{b_doc}/download"),
            ("forged download", f"/page/centres/{CENTRE_A}/documents/987654/download")]:
        r = c.get(path)
        assert r.status == 404, (label, r.status, r.text[:500])
        bodies[label] = r.text
    posts = {
        "archive B doc under A": (f"/page/centres/{CENTRE_A}/documents/{b_doc}/archive", {}),
        "archive B doc under B": (f"/page/centres/{CENTRE_B}/documents/{b_doc}/archive", {}),
        "archive forged": (f"/page/centres/{CENTRE_A}/documents/987654/archive", {}),
        "zip B doc at A": (f"/page/centres/{CENTRE_A}/zip", {"doc": str(b_doc)}),
        "zip A and B docs at A": (f"/page/centres/{CENTRE_A}/zip", {"doc": [str(a_doc), str(b_doc)]}),
        "zip period at B": (f"/page/centres/{CENTRE_B}/zip", {"period": "2026-10"}),
        "zip B doc at B": (f"/page/centres/{CENTRE_B}/zip", {"doc": str(b_doc)}),
        "zip at no centre": (f"/page/centres/{NOWHERE}/zip", {"period": "2026-10"}),
    }
    for label, (path, form) in posts.items():
        r = c.request("POST", path, form={"csrf": csrf, **form})
        assert r.status == 404, (label, r.status, r.text[:500])
        bodies[label] = r.text
    assert len(set(bodies.values())) == 1, {k: message(v) for k, v in bodies.items()}
    text = next(iter(bodies.values()))
    assert "There is no such centre or document." in text
    assert CENTRE_B not in text and "secret-of-b" not in text and f"documents/{b_doc}" not in text
    after = receipt(gw, b_doc)
    assert after == before and after.state == "committed" and after.first_fetched_at is None
    denied = [e for e in events(gw, "staff-a", since) if e.outcome == "denied"]
    assert len(denied) >= len(bodies), [(e.action, e.detail) for e in denied]
    assert not [e for e in events(gw, "staff-a", since) if e.action in ("download", "archive") and e.outcome
                in ("ok", "complete", "aborted")]


@pytest.mark.parametrize("query, accepted", [
    ("kind=memo", "monthly-statement, accepted-forms, refused-forms, legality-letter, annual-settlement, "
                  "settlement-annex, unclassified"),
    ("legislation=tax", "ris, law1965, maintenance"),
    ("period=2026-13", "a year (2026) or a month (2026-10)"),
    ("period=26-10", "a year (2026) or a month (2026-10)"),
    ("kind=%3Cscript%3E", "monthly-statement"),
    ("new=yes", "new is 1"),
    ("offset=-1", "offset is a number"),
])
def test_an_unknown_filter_value_is_a_clear_refusal_that_changes_nothing(gw, query, accepted):
    c = staff(gw, "staff-a-rm")
    since = last_event_id(gw)
    with gw.repo.read() as conn:
        visits = conn.execute(page_module_visits()).all()
    r = c.get(f"/page/centres/{CENTRE_A}?{query}&lang=nl")
    assert r.status == 400 and accepted in message(r.text)
    assert "Onbekende filterwaarde" in r.text and "<script>" not in r.text
    with gw.repo.read() as conn:
        assert conn.execute(page_module_visits()).all() == visits  # not even a visit
    refused = [(e.action, e.outcome) for e in events(gw, "staff-a-rm", since)]
    assert refused == [("list", "refused")]
    # the same for a ZIP of a period
    csrf = csrf_of(c.get(f"/page/centres/{CENTRE_A}").text)
    since = last_event_id(gw)
    field, _, value = query.partition("=")
    if field in ("kind", "legislation", "period"):
        r = c.post(f"/page/centres/{CENTRE_A}/zip", csrf=csrf, **{"period": "2026-10", field: value})
        assert r.status == 400 and accepted in message(r.text).replace("&lt;", "<")
        assert [(e.action, e.outcome) for e in events(gw, "staff-a-rm", since)] == [("download", "refused")]


def page_module_visits():
    from storage.repo.catalogue import PV
    return PV.select().order_by(PV.c.account_id, PV.c.institution_id)


def test_a_zip_of_a_selection_or_a_period_is_streamed_and_recorded(gw):
    docs = {deliver(gw, f"/{CENTRE_A}/ris/monthly-statement/2026-07/{n}.pdf", pdfsamples.minimal_pdf(n)): n
            for n in ("z1", "z2", "z3")}
    c = staff(gw, "staff-ab")
    csrf = csrf_of(c.get(f"/page/centres/{CENTRE_A}").text)
    since = last_event_id(gw)
    r = c.request("POST", f"/page/centres/{CENTRE_A}/zip", form={"csrf": csrf, "period": "2026-07"})
    assert r.status == 200 and r.headers["content-type"] == "application/zip"
    assert "content-length" not in r.headers and r.headers.get("transfer-encoding") == "chunked"  # streamed
    assert r.headers["content-disposition"].startswith(f'attachment; filename="{CENTRE_A}-2026-07.zip"')
    with zipfile.ZipFile(io.BytesIO(r.raw)) as z:
        assert z.testzip() is None
        got = {i.filename: (i.compress_type, z.read(i)) for i in z.infolist()}
    assert got == {f"ris/monthly-statement/2026-07/{n}.pdf": (zipfile.ZIP_STORED, pdfsamples.minimal_pdf(n))
                   for n in docs.values()}
    for doc in docs:
        assert fetched(gw, doc).first_fetched_by == "staff-ab"
    downloads = [e for e in events(gw, "staff-ab", since) if e.action == "download"]
    assert sorted(e.document_id for e in downloads) == sorted(docs) and {e.outcome for e in downloads} == {"complete"}
    # a selection, with an id twice
    first = next(iter(docs))
    r = c.request("POST", f"/page/centres/{CENTRE_A}/zip",
                  form={"csrf": csrf, "doc": [str(first), str(gw.docs["a3"]), str(first)]})
    assert r.status == 200
    with zipfile.ZipFile(io.BytesIO(r.raw)) as z:
        assert sorted(z.namelist()) == ["maintenance/annual-settlement/2025/settlement.pdf",
                                        "ris/monthly-statement/2026-07/z1.pdf"]
    # nothing asked
    r = c.request("POST", f"/page/centres/{CENTRE_A}/zip", form={"csrf": csrf})
    assert r.status == 400 and "Select documents in the list" in r.text


def test_a_zip_over_its_limits_is_refused_before_anything_is_read(gw, monkeypatch):
    docs = [deliver(gw, f"/{CENTRE_A}/law1965/monthly-statement/2026-08/m{i}.pdf", pdfsamples.minimal_pdf(f"m{i}"))
            for i in range(3)]
    c = staff(gw, "staff-ab")
    csrf = csrf_of(c.get(f"/page/centres/{CENTRE_A}").text)
    monkeypatch.setattr(page_module, "ZIP_MAX_DOCUMENTS", 2)
    since = last_event_id(gw)
    r = c.request("POST", f"/page/centres/{CENTRE_A}/zip", form={"csrf": csrf, "period": "2026-08"})
    assert r.status == 413 and "A ZIP holds at most 2 documents; this request asks for 3" in message(r.text)
    r = c.request("POST", f"/page/centres/{CENTRE_A}/zip", form={"csrf": csrf, "doc": [str(d) for d in docs]})
    assert r.status == 413 and "at most 2 documents; this request asks for 3" in message(r.text)
    r = c.request("POST", f"/page/centres/{CENTRE_A}/zip?lang=fr", form={"csrf": csrf, "period": "2026-08"})
    assert r.status == 413 and "Un ZIP contient au plus 2 documents" in message(r.text)
    monkeypatch.setattr(page_module, "ZIP_MAX_DOCUMENTS", 500)
    monkeypatch.setattr(page_module, "ZIP_MAX_BYTES", 1000)
    r = c.request("POST", f"/page/centres/{CENTRE_A}/zip?lang=en",
                  form={"csrf": csrf, "doc": [str(d) for d in docs[:2]]})
    assert r.status == 413 and "A ZIP holds at most 1000 B" in message(r.text)
    mine = events(gw, "staff-ab", since)
    assert [(e.action, e.outcome) for e in mine if e.outcome != "ok"] == [("download", "refused")] * 4
    assert not [e for e in mine if e.action == "download" and e.outcome != "refused"]
    assert all(receipt(gw, d).first_fetched_at is None for d in docs)


def test_archive_needs_the_form_and_the_grant(gw):
    doc = deliver(gw, f"/{CENTRE_A}/ris/legality-letter/2026-10/letter.pdf", pdfsamples.minimal_pdf("arch"))
    reader, remover = staff(gw, "staff-a"), staff(gw, "staff-a-rm")
    r = reader.get(f"/page/centres/{CENTRE_A}/documents/{doc}")
    assert 'id="archive"' not in r.text  # read-only grant: no button
    r = remover.get(f"/page/centres/{CENTRE_A}/documents/{doc}")
    assert 'id="archive"' in r.text
    csrf = csrf_of(r.text)
    since = last_event_id(gw)
    for form in ({}, {"csrf": "0" * 64}, {"csrf": csrf_of(reader.get("/page/centres/" + CENTRE_A).text)}):
        r = remover.request("POST", f"/page/centres/{CENTRE_A}/documents/{doc}/archive", form=form)
        assert r.status == 403 and "The form expired" in message(r.text)
    assert receipt(gw, doc).state == "committed"
    csrf_reader = csrf_of(reader.get(f"/page/centres/{CENTRE_A}").text)
    r = reader.request("POST", f"/page/centres/{CENTRE_A}/documents/{doc}/archive", form={"csrf": csrf_reader})
    assert r.status == 403 and "may not archive" in message(r.text)
    assert receipt(gw, doc).state == "committed"
    r = remover.request("GET", f"/page/centres/{CENTRE_A}/documents/{doc}/archive")
    assert r.status == 405
    r = remover.request("POST", f"/page/centres/{CENTRE_A}/documents/{doc}/archive", form={"csrf": csrf})
    assert r.status == 303 and r.location == f"/page/centres/{CENTRE_A}?done=archived"
    assert "The document was archived." in remover.follow(r).text
    row = receipt(gw, doc)
    assert row.state == "archived" and row.archived_by == "staff-a-rm"
    r = remover.get(f"/page/centres/{CENTRE_A}/documents/{doc}")
    assert re.search(r'id="receipt-archived">\S+ \S+ by staff-a-rm<', r.text) and 'id="archive"' not in r.text
    refusals = [(e.actor, e.action, e.outcome, e.detail) for e in events(gw, "staff-a-rm", since)
                + events(gw, "staff-a", since) if e.outcome == "denied"]
    assert [r[:3] for r in refusals if r[0] == "staff-a-rm"] == [("staff-a-rm", "archive", "denied")] * 3
    assert all("CSRF" in r[3] for r in refusals if r[0] == "staff-a-rm")
    assert ("staff-a", "archive", "denied") in [r[:3] for r in refusals]


def test_zip_member_names_are_safe_and_unique():
    names = member_names(["../../etc/passwd.pdf", "/abs.pdf", "a\\b.pdf", 'x/CON<1>:"?*|.pdf', "x/y.pdf",
                          "X/Y.pdf", "x/y.pdf", "..", "ok/..../v.pdf", "trail. ."])
    assert names == ["_/_/etc/passwd.pdf", "abs.pdf", "a_b.pdf", "x/CON_1______.pdf", "x/y.pdf", "X/Y (2).pdf",
                     "x/y (3).pdf", "_", "ok/_/v.pdf", "trail"]
    for n in names:
        assert not n.startswith("/") and ".." not in n.split("/") and "\\" not in n


def test_an_eid_card_and_the_password_open_the_page(make_gateway, tmp_path):
    pki = EidPki(tmp_path / "pki")
    nrn = national_register_number(date(1982, 3, 9), 57)
    card = pki.person("els", "Els", "Peeters", nrn=nrn)
    # the second factor required, as in production: the card is what makes the password enough
    g = make_gateway(env={"INSTPAGES_WEBDAV_CLIENT_CA_FILE": str(pki.ca_bundle),
                          "INSTPAGES_AUTH_SECOND_FACTOR": "required"})
    g.admin.add_account("els", "staff", password=STAFF_PASSWORD, nrn=nrn)
    g.admin.grant("els", CENTRE_A)
    doc = deliver(g, f"/{CENTRE_A}/ris/maandstaat/2026-11/eid.pdf", pdfsamples.minimal_pdf("eid"))
    c = Client(g, cert=card)
    page = c.get("/page/login")
    assert "Your eID card is the second factor." in page.text and 'name="code"' not in page.text
    r = c.post("/page/login", csrf=csrf_of(page.text), username="els", password=STAFF_PASSWORD)
    assert r.status == 303, r.text
    r = c.follow(r)
    assert r.status == 200 and "eid.pdf" in r.text  # straight into the one centre granted
    r = c.get(f"/page/centres/{CENTRE_A}/documents/{doc}/download")
    assert r.status == 200 and r.raw == pdfsamples.minimal_pdf("eid")
    deadline = time.monotonic() + 10  # recorded as the server finishes sending: a moment after the last byte
    while (row := receipt_of(g, doc)).first_fetched_at is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (row.first_fetched_by, row.first_fetched_protocol) == ("els", "web")
    assert "method=password+eid" in [e.detail for e in g.audit("login") if e.actor == "els" and e.outcome == "ok"]
    # without a card, the password alone is not enough: the page asks for a token code
    page = Client(g).get("/page/login")
    assert "Your eID card is the second factor." not in page.text and 'name="step" value="username"' in page.text
    # someone else's card with els's password is no second factor of els's
    other = Client(g, cert=pki.person("piet", "Piet", "Janssens", nrn=national_register_number(date(1975, 1, 2), 77)))
    page = other.get("/page/login")
    r = other.post("/page/login", csrf=csrf_of(page.text), username="els", password=STAFF_PASSWORD)
    assert r.status == 401 and "ip_page" not in other.jar


def receipt_of(gw, doc_id: int):
    with gw.repo.read() as c:
        return gw.repo.catalogue_entry(c, CENTRE_A, doc_id)
