"""The REST API's catalogue and receipts over real HTTPS (issue 13): ``GET /institutions/{id}/documents`` with its
filters and ``GET /institutions/{id}/documents/{doc}/receipt``, as staff, as the security cell, and as POD MI's
uploader with the API token the security cell issued it (``/uploaders/{account}/tokens``): it reads the receipts
of what it sent, never another sender's, never another centre's; the receipt's first fetch changes after a real
SFTP download."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from gateway.core.enterprise import with_check
from tests.conftest import CENTRE_A, CENTRE_B, CENTRE_PAPER
from tests.gateway.test_api import call, core_session, login, start_api_gateway
from tests.pdfsamples import minimal_pdf

GHOST = with_check("09999999")  # well formed; no centre has it
NO_SUCH_CENTRE = b'{"error":"no such centre"}'
NO_SUCH_DOCUMENT = b'{"error":"no such document"}'
#: what podmi delivers into centre A, oldest first: (path, kind, legislation, period)
DELIVERED = [
    ("ris/maandstaat/2026-10/statement.pdf", "monthly-statement", "ris", "2026-10"),
    ("law1965/refused-forms/2026-09/refused.pdf", "refused-forms", "law1965", "2026-09"),
    ("maintenance_afrekening_2025.pdf", "annual-settlement", "maintenance", "2025"),
    ("misc/letter.pdf", None, None, None),
]


def deliver(gw, uploader: str, centre: str, relpath: str, text: str) -> int:
    up = core_session(gw, uploader).open_upload(f"/{centre}/{relpath}")
    up.append(minimal_pdf(text))
    return up.commit().document_id


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    g = start_api_gateway(tmp_path_factory.mktemp("apidocs"))
    g.ids = {path: deliver(g, "podmi", CENTRE_A, path, path) for path, *_ in DELIVERED}
    g.other_sender = deliver(g, "podmi2", CENTRE_A, "ris/maandstaat/2026-10/other-sender.pdf", "podmi2")
    g.centre_b = deliver(g, "podmi", CENTRE_B, "ris/maandstaat/2026-10/b.pdf", "centre b")
    yield g
    g.stop()
    g.services.close()


@pytest.fixture(scope="module")
def staff(gw):
    return login(gw, "staff-a")


@pytest.fixture(scope="module")
def cell(gw):
    return login(gw, "cell")


def documents(gw, token, query: str = "", centre: str = CENTRE_A):
    return call(gw.dav_port, "GET", f"/institutions/{centre}/documents{query}", token=token)


def test_catalogue_lists_filed_documents_newest_first_with_receipts(gw, staff):
    a = documents(gw, staff)
    assert a.status == 200, a.raw
    rows = a.json
    assert [r["path"] for r in rows] == ["ris/maandstaat/2026-10/other-sender.pdf",
                                         *[p for p, *_ in reversed(DELIVERED)]]
    mine = {r["path"]: r for r in rows}
    for path, kind, legislation, period in DELIVERED:
        r = mine[path]
        assert (r["kind"], r["legislation"], r["period"]) == (kind, legislation, period), path
        assert r["id"] == gw.ids[path] and r["name"] == path.rsplit("/", 1)[-1] and r["sender"] == "podmi"
        assert r["size"] == len(minimal_pdf(path)) and len(r["sha256"]) == 64 and r["archived"] is False
        assert r["delivered_at"].endswith("Z") and r["first_fetched_at"] is None and r["archived_at"] is None
    assert mine["ris/maandstaat/2026-10/other-sender.pdf"]["sender"] == "podmi2"
    # the read is on the record, in the core, with the filter
    assert documents(gw, staff, "?legislation=law1965").status == 200
    listed = [e for e in gw.audit("list", limit=10) if e.actor == "staff-a" and e.protocol == "api"]
    assert listed and listed[0].detail == "catalogue: 1 documents (legislation=law1965)"


@pytest.mark.parametrize("query, expected", [
    ("?kind=monthly-statement", ["ris/maandstaat/2026-10/other-sender.pdf", "ris/maandstaat/2026-10/statement.pdf"]),
    ("?legislation=law1965", ["law1965/refused-forms/2026-09/refused.pdf"]),
    ("?period=2026", ["ris/maandstaat/2026-10/other-sender.pdf", "law1965/refused-forms/2026-09/refused.pdf",
                      "ris/maandstaat/2026-10/statement.pdf"]),
    ("?period=2026-09", ["law1965/refused-forms/2026-09/refused.pdf"]),
    ("?kind=unclassified", ["misc/letter.pdf"]),
    ("?kind=annual-settlement&legislation=maintenance&period=2025", ["maintenance_afrekening_2025.pdf"]),
    ("?kind=monthly-statement&legislation=law1965", []),
    ("?limit=2&offset=1", ["misc/letter.pdf", "maintenance_afrekening_2025.pdf"]),
    ("?since=2000-01-01T00:00:00Z&archived=false", None),  # everything
    ("?since=2999-01-01T00:00:00%2B01:00", []),
])
def test_filters(gw, staff, query, expected):
    a = documents(gw, staff, query)
    assert a.status == 200, a.raw
    every = [r["path"] for r in documents(gw, staff).json]
    assert [r["path"] for r in a.json] == (every if expected is None else expected)


def test_since_is_a_moment(gw, staff):
    cutoff = datetime.now(timezone.utc)
    deliver(gw, "podmi2", CENTRE_A, "ris/maandstaat/2026-11/late.pdf", "late")
    a = documents(gw, staff, "?since=" + cutoff.isoformat().replace("+00:00", "Z"))
    assert a.status == 200 and [r["path"] for r in a.json] == ["ris/maandstaat/2026-11/late.pdf"]
    brussels = cutoff.astimezone(timezone(timedelta(hours=1))).isoformat().replace("+", "%2B")
    assert [r["path"] for r in documents(gw, staff, "?since=" + brussels).json] == ["ris/maandstaat/2026-11/late.pdf"]


@pytest.mark.parametrize("query, message", [
    ("?kind=memo", "unknown kind; one of: monthly-statement"),
    ("?legislation=ocmw", "unknown legislation; one of: ris, law1965, maintenance"),
    ("?period=2026-13", "a period is a year (2026) or a month (2026-10)"),
    ("?period=26", "a period is a year"),
    ("?since=yesterday", "since is not a date-time"),
    ("?since=2026-11-01T00:00:00", "since is not a date-time"),  # no offset: which moment?
    ("?since=2026-02-30T00:00:00Z", "since is not a date-time"),
    ("?archived=yes", "archived is true or false"),
    ("?limit=0", "limit is between 1 and 5000"),
    ("?limit=5001", "limit is between 1 and 5000"),
    ("?limit=ten", "limit is a whole number"),
    ("?offset=-1", "offset is a whole number"),
    ("?kinds=monthly-statement", "unknown query parameter 'kinds'"),
    ("?kind=ris&kind=law1965", "kind is given more than once"),
    ("?period=", "period is empty; leave it out"),
])
def test_bad_filters_answer_400_with_what_is_accepted(gw, staff, query, message):
    a = documents(gw, staff, query)
    assert a.status == 400 and message in a.json["error"], (query, a.json)
    last = gw.audit("list", limit=1)[0]  # on the record, as the core's refusals are
    assert (last.actor, last.outcome, last.protocol, last.institution_id) == ("staff-a", "refused", "api", CENTRE_A)
    assert message in last.detail


def test_other_centres_forged_ids_and_the_security_cell(gw, staff, cell):
    # staff-a has access to A only: B, a centre nobody has, a malformed id -- one answer, byte for byte
    answers = {(a.status, a.raw, a.headers["content-length"]) for a in (
        documents(gw, staff, centre=CENTRE_B), documents(gw, staff, centre=GHOST), documents(gw, staff, centre="abc"),
        call(gw.dav_port, "GET", f"/institutions/{CENTRE_B}/documents/{gw.centre_b}/receipt", token=staff))}
    assert answers == {(404, NO_SUCH_CENTRE, str(len(NO_SUCH_CENTRE)))}
    # a document of B asked for under A, ids no document has: as a missing one
    for doc in (gw.centre_b, 999999, 0, 10 ** 30):
        a = call(gw.dav_port, "GET", f"/institutions/{CENTRE_A}/documents/{doc}/receipt", token=staff)
        assert (a.status, a.raw) == (404, NO_SUCH_DOCUMENT), doc
    for doc in ("abc", "-1", "1.0", "%C2%B2"):
        a = call(gw.dav_port, "GET", f"/institutions/{CENTRE_A}/documents/{doc}/receipt", token=staff)
        assert a.status == 400 and "document id" in a.json["error"], doc
        last = gw.audit("receipt", limit=1)[0]
        assert (last.actor, last.outcome) == ("staff-a", "refused") and "document id" in last.detail, doc
    # the security cell reads no mailbox: the core refuses, on the record
    a = documents(gw, cell)
    assert a.status == 403 and "does not read mailbox contents" in a.json["error"]
    some = gw.ids["misc/letter.pdf"]
    assert call(gw.dav_port, "GET", f"/institutions/{CENTRE_A}/documents/{some}/receipt", token=cell).status == 403
    denied = [e for e in gw.audit(limit=40) if e.actor == "cell" and e.outcome == "denied"]
    assert {"list", "receipt"} <= {e.action for e in denied}


def test_receipt_shows_the_first_fetch_after_a_download(gw, staff, tmp_path):
    path = "law1965/refused-forms/2026-09/refused.pdf"
    url = f"/institutions/{CENTRE_A}/documents/{gw.ids[path]}/receipt"
    before = call(gw.dav_port, "GET", url, token=staff)
    assert before.status == 200
    r = before.json
    assert set(r) == {"id", "path", "name", "sha256", "delivered_at", "sender", "first_fetched_at",
                      "first_fetched_by", "first_fetched_protocol", "archived_at", "archived_by"}
    assert (r["path"], r["sender"], r["first_fetched_at"], r["first_fetched_by"], r["archived_at"]) == \
        (path, "podmi", None, None, None)
    # the centre's archive system fetches it over SFTP, twice: the receipt keeps the first
    for _ in range(2):
        done = gw.sftp("arch-a", f"get /{CENTRE_A}/{path} {tmp_path}/x.pdf\n")
        assert done.returncode == 0, done.stderr
    after = call(gw.dav_port, "GET", url, token=staff).json
    assert (after["first_fetched_by"], after["first_fetched_protocol"]) == ("arch-a", "sftp")
    fetched = datetime.fromisoformat(after["first_fetched_at"].replace("Z", "+00:00"))
    assert timedelta(0) <= datetime.now(timezone.utc) - fetched < timedelta(minutes=5)
    assert {k: v for k, v in after.items() if not k.startswith("first_fetched")} == \
        {k: v for k, v in r.items() if not k.startswith("first_fetched")}
    row = next(d for d in documents(gw, staff).json if d["path"] == path)
    assert row["first_fetched_by"] == "arch-a"
    # archived: the receipt says when and by whom; the catalogue lists it under archived=true
    core_session(gw, "arch-a").archive(f"/{CENTRE_A}/{path}")
    gone = call(gw.dav_port, "GET", url, token=staff).json
    assert gone["archived_by"] == "arch-a" and gone["archived_at"] is not None
    assert path not in [d["path"] for d in documents(gw, staff).json]
    archived = documents(gw, staff, "?archived=true").json
    assert [(d["path"], d["archived"]) for d in archived] == [(path, True)]
    receipts = [e for e in gw.audit("receipt", limit=10) if e.actor == "staff-a"]
    assert receipts and receipts[0].document_id == gw.ids[path] and receipts[0].protocol == "api"


def test_uploader_reads_receipts_of_what_it_sent_with_a_token_from_the_security_cell(gw, staff, cell):
    port = gw.dav_port
    # a machine account cannot log in strongly: the security cell issues its token (with a session only)
    cell_token = call(port, "POST", "/tokens", {"label": "cell script"}, token=cell).json["token"]
    assert call(port, "POST", "/uploaders/podmi/tokens", {"label": "x"}, token=cell_token).status == 403
    assert call(port, "POST", "/uploaders/podmi/tokens", {"label": "x"}, token=staff).status == 403
    admin_a = login(gw, "admin-a")
    assert call(port, "GET", "/uploaders/podmi/tokens", token=admin_a).status == 403
    # to anyone but the cell, an uploader's name and any other name answer alike: nothing tells them apart
    answers = {call(port, "GET", f"/uploaders/{name}/tokens", token=admin_a).raw
               for name in ("podmi", "staff-a", "nobody-here")}
    answers |= {call(port, "POST", f"/uploaders/{name}/tokens", {}, token=staff).raw
                for name in ("podmi", "staff-a", "nobody-here")}
    assert len(answers) == 1 and b"security cell" in answers.pop()
    for name in ("staff-a", "arch-a", "nobody-here"):  # only uploaders have tokens issued to them
        assert call(port, "POST", f"/uploaders/{name}/tokens", {}, token=cell).status == 404, name
    a = call(port, "POST", "/uploaders/podmi/tokens", {"label": "receipts", "days": 30}, token=cell)
    assert a.status == 201 and a.json["token"].startswith("ipat-"), a.raw
    token_id, podmi = a.json["id"], a.json["token"]
    listed = call(port, "GET", "/uploaders/podmi/tokens", token=cell).json
    assert [(t["id"], t["label"]) for t in listed] == [(token_id, "receipts")]
    assert ("api-token-create", "cell") in [(e.action, e.actor) for e in gw.audit(limit=30)]
    me = call(port, "GET", "/me", token=podmi).json
    assert me == {"name": "podmi", "role": "uploader", "administers": [], "authenticated_by": "api-token"}
    # its own documents only, with their receipts
    rows = documents(gw, podmi).json
    assert {r["path"] for r in rows} == {p for p, *_ in DELIVERED} - {"law1965/refused-forms/2026-09/refused.pdf"}
    assert all(r["sender"] == "podmi" for r in rows)
    own = gw.ids["misc/letter.pdf"]
    a = call(port, "GET", f"/institutions/{CENTRE_A}/documents/{own}/receipt", token=podmi)
    assert a.status == 200 and a.json["sender"] == "podmi" and a.json["id"] == own
    fetched = gw.ids["law1965/refused-forms/2026-09/refused.pdf"]  # archived by now: its receipt still answers
    a = call(port, "GET", f"/institutions/{CENTRE_A}/documents/{fetched}/receipt", token=podmi)
    assert a.status == 200 and a.json["first_fetched_by"] == "arch-a" and a.json["archived_by"] == "arch-a"
    # another sender's document, another centre's under A, ids no document has: one answer
    for doc in (gw.other_sender, gw.centre_b, 999999):
        a = call(port, "GET", f"/institutions/{CENTRE_A}/documents/{doc}/receipt", token=podmi)
        assert (a.status, a.raw) == (404, NO_SUCH_DOCUMENT), doc
    # its own delivery into B, under B
    assert call(port, "GET", f"/institutions/{CENTRE_B}/documents/{gw.centre_b}/receipt", token=podmi).status == 200
    # a centre on paper: the receipts of what it sent there stay readable (none); administration and minting
    # tokens stay closed to it
    a = documents(gw, podmi, centre=CENTRE_PAPER)
    assert (a.status, a.json) == (200, [])
    assert call(port, "GET", f"/institutions/{CENTRE_A}", token=podmi).status == 403
    assert call(port, "GET", "/institutions", token=podmi).status == 403
    assert call(port, "POST", "/tokens", {}, token=podmi).status == 403
    # revoked by the security cell: refused at the next call
    assert call(port, "DELETE", f"/uploaders/podmi/tokens/{token_id}", token=cell).status == 204
    assert call(port, "GET", "/me", token=podmi).status == 401
    assert call(port, "DELETE", f"/uploaders/podmi/tokens/{token_id}", token=cell).status == 404
