"""The institutional page in a real browser: Debian's headless Chromium driven by Playwright, with JavaScript OFF and
ON (the page carries no script: both must work with links and forms alone), against a real gateway.

A staff member opens the server's root, logs in with password + token code, filters by legislation and period,
downloads one PDF and a ZIP of a month (bytes compared with what POD MI uploaded), and sees the receipt change after
the download. Screenshots of each page, in Dutch and French, go to ``test-artifacts/page/``."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from tests import pdfsamples
from tests.browser import chromium
from tests.conftest import CENTRE_A, STAFF_PASSWORD, populate, start_gateway, token_card
from tests.coretools import deliver, session

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "page"
#: each run (JavaScript off, on) has its own month, so that each sees its own first fetches
MONTHS = {False: "2026-10", True: "2026-11"}
#: a document name with markup in it (POD MI's names are theirs; the page shows them as text)
MARKUP = '<b onmouseover="x()">brief<b>.pdf'


def documents(month: str) -> dict[str, bytes]:
    """What POD MI delivers for a month: path in the mailbox -> content."""
    return {
        f"ris/maandstaat/{month}/maandstaat-{month}.pdf": pdfsamples.minimal_pdf(f"ris statement {month}"),
        f"ris/accepted-forms/{month}/aanvaard-{month}.pdf": pdfsamples.minimal_pdf(f"ris accepted {month}"),
        f"law1965/refused-forms/{month}/geweigerd-{month}.pdf": pdfsamples.minimal_pdf(f"1965 refused {month}"),
    }


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    d = tmp_path_factory.mktemp("page-browser")
    g = start_gateway(d / "var")
    try:
        populate(g, d)
        g.cards = {"staff-a": token_card(g, "staff-a")}
        g.root = f"https://127.0.0.1:{g.dav_port}"
        g.ids = {}
        up = session(g.services, "podmi")
        deliveries = {p: data for month in MONTHS.values() for p, data in documents(month).items()}
        deliveries["maintenance/annual-settlement/2025/afrekening-2025.pdf"] = pdfsamples.minimal_pdf("settlement")
        deliveries[MARKUP] = pdfsamples.minimal_pdf("markup")
        for path, data in deliveries.items():
            g.ids[path] = deliver(up, f"/{CENTRE_A}/{path}", data).document_id
        yield g
    finally:
        g.stop()
        g.services.close()


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(params=[False, True], ids=["javascript-off", "javascript-on"])
def page(request, browser):
    context = browser.new_context(ignore_https_errors=True, java_script_enabled=request.param, locale="nl-BE",
                                  viewport={"width": 1366, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    pg.javascript = request.param
    yield pg
    context.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    js = "js-on" if page.javascript else "js-off"
    path = ARTIFACTS / f"{name}-{js}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def in_both_languages(page, name: str, url: str = "") -> None:
    """Screenshots of the page shown, in French and in Dutch (by the language links of the page itself, or for an
    error page, which links to the start, by ``url?lang=``); ends in Dutch."""
    for lang in ("fr", "nl"):
        if url:
            page.goto(f"{url}?lang={lang}")
        else:
            page.click(f"nav.langs a[lang={lang}]")
        assert page.get_attribute("html", "lang") == lang
        shot(page, f"{name}-{lang}")


def login(page, gw) -> None:
    page.goto(gw.root + "/")  # the server's root, as staff type it
    assert page.url == gw.root + "/page/login"
    assert page.get_attribute("html", "lang") == "nl"  # the browser's language
    in_both_languages(page, "login")
    page.fill("#login input[name=username]", "staff-a")
    page.click("#login button[type=submit]")
    number = int(page.get_attribute("#login input[name=number]", "value"))
    assert f"Code nummer {number} van uw token" in page.text_content("#login")
    page.fill("#login input[name=password]", STAFF_PASSWORD)
    page.fill("#login input[name=code]", gw.cards["staff-a"][number])
    shot(page, "login-code-nl")
    with page.expect_navigation():
        page.click("#login button[type=submit]")
    # one centre granted: straight into its mailbox
    assert page.url == f"{gw.root}/page/centres/{CENTRE_A}", page.content()[:2000]
    assert "Aangemeld als staff-a" in " ".join(page.text_content("header").split())


def shown(page) -> list[int]:
    return [int(r.get_attribute("data-id")) for r in page.query_selector_all("#document-table tbody tr")]


def fetched_text(page, gw, doc: int) -> str:
    """The receipt's first fetch, read again until it names one (the server records a download as it finishes
    sending it, which may be a moment after the browser has the file)."""
    for _ in range(100):
        page.goto(f"{gw.root}/page/centres/{CENTRE_A}/documents/{doc}")
        text = page.text_content("#receipt-fetched")
        if "nog niet" not in text:
            return text
        page.wait_for_timeout(100)
    return text


def test_staff_filter_download_and_see_the_receipt(gw, page):
    month = MONTHS[page.javascript]
    wanted = documents(month)
    login(page, gw)
    assert len(shown(page)) == len(gw.ids)
    assert page.text_content(f"#doc-{gw.ids[MARKUP]} td.name") == MARKUP  # shown as text
    assert page.query_selector("#document-table b") is None
    in_both_languages(page, "centre")
    # filter by legislation and period (the GET form)
    page.select_option("#filter select[name=legislation]", "ris")
    page.fill("#filter input[name=period]", month)
    page.click("#filter button[type=submit]")
    assert "legislation=ris" in page.url and f"period={month}" in page.url
    ris = [p for p in wanted if p.startswith("ris/")]
    assert sorted(shown(page)) == sorted(gw.ids[p] for p in ris)
    assert {page.text_content(f"#doc-{gw.ids[p]} td.legislation").strip() for p in ris} == {
        "Recht op maatschappelijke integratie"}
    shot(page, "centre-filtered-nl")
    # the receipt before, one download, the receipt after
    statement = f"ris/maandstaat/{month}/maandstaat-{month}.pdf"
    doc = gw.ids[statement]
    page.click(f"#doc-{doc} a.receipt")
    assert page.text_content("#receipt-fetched") == "nog niet opgehaald"
    assert page.text_content("#receipt-sender") == "podmi"
    in_both_languages(page, "receipt-before")
    with page.expect_download() as info:
        page.click("#receipt-download")
    download = info.value
    assert download.suggested_filename == f"maandstaat-{month}.pdf"
    assert Path(download.path()).read_bytes() == wanted[statement]
    text = fetched_text(page, gw, doc)
    assert "door staff-a via webpagina" in text, text
    receipt_url = page.url.split("?")[0]
    in_both_languages(page, "receipt-after", receipt_url)
    page.goto(receipt_url + "?lang=fr")
    assert "par staff-a via page web" in page.text_content("#receipt-fetched")
    page.goto(receipt_url + "?lang=nl")
    # a ZIP of the whole month (every legislation): the period's form
    page.click("a#nav-mailboxes")  # one centre: back to it
    page.fill("#filter input[name=period]", month)
    page.click("#filter button[type=submit]")
    assert sorted(shown(page)) == sorted(gw.ids[p] for p in wanted)
    with page.expect_download() as info:
        page.click("#zip-period button[type=submit]")
    assert info.value.suggested_filename == f"{CENTRE_A}-{month}.zip"
    with zipfile.ZipFile(io.BytesIO(Path(info.value.path()).read_bytes())) as z:
        assert z.testzip() is None
        assert {name: z.read(name) for name in z.namelist()} == wanted
    # every document of the month now has its first fetch, by this person over the web page
    page.reload()
    for p in wanted:
        if p == statement:
            continue
        for _ in range(100):
            if "staff-a" in page.text_content(f"#doc-{gw.ids[p]} td.fetched"):
                break
            page.wait_for_timeout(100)
            page.reload()
        assert "door staff-a via webpagina" in page.text_content(f"#doc-{gw.ids[p]} td.fetched")
    shot(page, "centre-after-zip-nl")
    # a selection of two (checkboxes)
    pick = [gw.ids[p] for p in wanted][:2]
    for d in pick:
        page.check(f"#doc-{d} input[type=checkbox]")
    with page.expect_download() as info:
        page.click("#zip-selected button[type=submit]")
    with zipfile.ZipFile(io.BytesIO(Path(info.value.path()).read_bytes())) as z:
        assert sorted(z.read(n) for n in z.namelist()) == sorted(wanted[p] for p in wanted if gw.ids[p] in pick)


def test_errors_are_pages_in_both_languages(gw, page):
    login(page, gw)
    resp = page.goto(f"{gw.root}/page/centres/{CENTRE_A}?legislation=tax")
    assert resp.status == 400 and "ris, law1965, maintenance" in page.text_content("#message")
    assert page.text_content("h1") == "Onbekende filterwaarde"
    shot(page, "error-filter-nl")
    page.goto(f"{gw.root}/page/centres/{CENTRE_A}?legislation=tax&lang=fr")
    assert page.text_content("h1") == "Valeur de filtre inconnue"
    shot(page, "error-filter-fr")
    resp = page.goto(f"{gw.root}/page/centres/0207123407")  # centre B, not granted: as none
    assert resp.status == 404 and page.text_content("h1") == "Introuvable"
    in_both_languages(page, "error-not-found", f"{gw.root}/page/centres/0207123407")
    assert page.text_content("h1") == "Niet gevonden"
