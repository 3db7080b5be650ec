"""The catalogue in the core (no protocol), on SQLite and PostgreSQL: documents filed by kind, legislation and
period as they are delivered, filters, receipts (delivered, first fetched, archived), who sees what, and a re-send of
an archived document."""
from __future__ import annotations

import pytest

from gateway.core.catalogue import document_filter
from storage.repo.base import D, utcnow
from storage.errors import AlreadyDelivered, InstitutionNotActive, MalformedRequest, NotFound, PermissionDenied
from tests import pdfsamples
from tests.coretools import core_services, deliver, session

A, B = "0212345668", "0207123407"


@pytest.fixture(params=["sqlite", "postgresql"])
def core(request, tmp_path):
    env = {"INSTPAGES_AUTH_SECOND_FACTOR": "off", "INSTPAGES_AUTH_FAILURE_DELAY_BASE": "0"}
    services = core_services(request, tmp_path / "var", env)
    admin = services.administration(actor="test")
    admin.add_institution(A, "A", "active")
    admin.add_institution(B, "B", "active")
    admin.add_account("podmi", "uploader")
    admin.add_account("podmi2", "uploader")
    admin.add_account("cell", "security-cell")
    admin.add_account("staff", "staff", password="correct horse battery")
    admin.add_account("staff-b", "staff", password="correct horse battery")
    admin.grant("staff", A, can_remove=True)
    admin.grant("staff-b", B)
    yield services
    services.close()




def fetch(sess, path) -> bytes:
    d = sess.open_download(path)
    out = d.read(0, d.size)
    d.close()
    return out


def events(core, action):
    with core.repo.read() as c:
        return list(reversed(core.repo.audit_events(c, action=action, limit=1000)))


def test_documents_are_filed_by_the_default_conventions_and_filtered(core):
    up, staff = session(core, "podmi"), session(core, "staff")
    deliver(up, f"/{A}/ris/maandstaat/2026-10/statement.pdf", pdfsamples.minimal_pdf("1"))
    deliver(up, f"/{A}/law1965/refused-forms/2026-09/refused.pdf", pdfsamples.minimal_pdf("2"))
    deliver(up, f"/{A}/maintenance_afrekening_2025.pdf", pdfsamples.minimal_pdf("3"))
    deliver(up, f"/{A}/misc/letter.pdf", pdfsamples.minimal_pdf("4"))
    every = staff.documents(A).documents
    assert [(d.name, d.kind, d.legislation, d.period) for d in every] == [
        ("letter.pdf", None, None, None),
        ("maintenance_afrekening_2025.pdf", "annual-settlement", "maintenance", "2025"),
        ("refused.pdf", "refused-forms", "law1965", "2026-09"),
        ("statement.pdf", "monthly-statement", "ris", "2026-10"),
    ]  # newest first
    assert [d.name for d in staff.documents(A, document_filter(legislation="ris")).documents] == ["statement.pdf"]
    assert [d.name for d in staff.documents(A, document_filter(period="2026")).documents] == [
        "refused.pdf", "statement.pdf"]
    assert [d.name for d in staff.documents(A, document_filter(period="2026-09")).documents] == ["refused.pdf"]
    assert [d.name for d in staff.documents(A, document_filter(kind="unclassified")).documents] == ["letter.pdf"]
    with core.repo.read() as c:
        assert core.repo.unclassified_counts(c) == [(A, 1)]
    lists = [e for e in events(core, "list") if e.actor == "staff"]
    assert len(lists) == 5 and "legislation=ris" in lists[1].detail


@pytest.mark.parametrize("bad", [dict(kind="memo"), dict(legislation="tax"), dict(period="2026-13"),
                                 dict(period="26-10"), dict(period="2026-10-01"), dict(limit=0),
                                 dict(kind="<script>")])
def test_an_unknown_filter_value_is_a_clear_refusal(bad):
    with pytest.raises(MalformedRequest) as exc:
        document_filter(**bad)
    assert "one of" in exc.value.message or "period" in exc.value.message or "limit" in exc.value.message


def test_the_receipt_follows_delivery_first_fetch_and_archive(core):
    up, staff = session(core, "podmi"), session(core, "staff")
    staff.protocol = "web"
    path = f"/{A}/ris/monthly-statement/2026-10/s.pdf"
    entry = deliver(up, path, pdfsamples.minimal_pdf("r"))
    r = staff.receipt(A, entry.document_id)
    assert r.sender == "podmi" and r.delivered_at is not None and r.first_fetched_at is None
    fetch(staff, path)
    fetch(session(core, "staff"), path)  # a second fetch does not move the receipt
    r = staff.receipt(A, entry.document_id)
    assert (r.first_fetched_by, r.first_fetched_protocol) == ("staff", "web")
    staff.archive(path)
    r = up.receipt_at(path)  # the sender, by path, after the archive
    assert r.archived_by == "staff" and r.archived_at >= r.first_fetched_at >= r.delivered_at
    assert [e.outcome for e in events(core, "receipt")] == ["ok", "ok", "ok"]


def test_who_sees_which_receipts(core):
    up, other, staff = session(core, "podmi"), session(core, "podmi2"), session(core, "staff")
    entry = deliver(up, f"/{A}/x.pdf", pdfsamples.minimal_pdf("mine"))
    assert up.receipt(A, entry.document_id).name == "x.pdf"
    with pytest.raises(NotFound):
        other.receipt(A, entry.document_id)  # another sender: as if there were none
    assert other.documents(A).documents == []
    with pytest.raises(NotFound):
        session(core, "staff-b").receipt(A, entry.document_id)  # a centre not granted: as if none
    with pytest.raises(NotFound):
        session(core, "staff-b").documents(A)
    with pytest.raises(NotFound):
        session(core, "staff-b").receipt(B, entry.document_id)  # its own centre, another centre's id
    with pytest.raises(NotFound):
        staff.receipt(A, 987654)  # a forged id
    with pytest.raises(NotFound):
        staff.document_path(A, 987654)
    with pytest.raises(PermissionDenied):
        session(core, "cell").documents(A)
    denied = [e for e in events(core, "receipt") + events(core, "list") if e.outcome == "denied"]
    assert len(denied) >= 5


def test_resending_an_archived_document_tells_the_sender_when(core):
    up, staff = session(core, "podmi"), session(core, "staff")
    pdf = pdfsamples.minimal_pdf("again")
    path = f"/{A}/ris/monthly-statement/2026-10/again.pdf"
    deliver(up, path, pdf)
    deliver(up, path, pdf)  # still in the mailbox: harmless, silent
    staff.archive(path)
    with pytest.raises(AlreadyDelivered) as exc:
        deliver(up, path, pdf)
    assert "already delivered on" in exc.value.message and "archived on" in exc.value.message
    assert staff.documents(A).documents == []  # nothing came back
    outcomes = [(e.outcome, e.detail) for e in events(core, "upload") if e.actor == "podmi"]
    assert [o for o, _ in outcomes] == ["committed", "ok", "refused"]
    assert "already delivered on" in outcomes[-1][1]


def test_a_staged_upload_is_filed_by_its_final_name(core):
    up, staff = session(core, "podmi"), session(core, "staff")
    deliver(up, f"/{A}/ris/accepted-forms/2026-11/list.pdf.filepart", pdfsamples.minimal_pdf("staged"))
    up.rename(f"/{A}/ris/accepted-forms/2026-11/list.pdf.filepart", f"/{A}/ris/accepted-forms/2026-11/list.pdf")
    [d] = staff.documents(A).documents
    assert (d.name, d.kind, d.legislation, d.period) == ("list.pdf", "accepted-forms", "ris", "2026-11")


def test_new_since_my_last_visit(core):
    from datetime import timedelta

    from storage.repo import catalogue as repo_catalogue

    up, staff = session(core, "podmi"), session(core, "staff")
    deliver(up, f"/{A}/old.pdf", pdfsamples.minimal_pdf("old"))
    first = staff.documents(A, visit=True)
    assert first.last_visit is None
    # the visit ends: its time, and the old document's, moved back beyond a visit's length
    back = timedelta(seconds=repo_catalogue.VISIT_SECONDS + 60)
    with core.repo.write() as c:
        c.execute(repo_catalogue.PV.update().values(seen_at=utcnow() - back))
        c.execute(D.update().values(committed_at=utcnow() - 2 * back))
    deliver(up, f"/{A}/new.pdf", pdfsamples.minimal_pdf("new"))
    again = staff.documents(A, document_filter(new=True), visit=True)
    assert again.last_visit is not None
    assert [d.name for d in again.documents] == ["new.pdf"]


@pytest.mark.parametrize("centre", ["", "12345", "0212345668x", "x" * 300, "../0212345668", "0207123407"])
def test_a_centre_not_to_be_seen_answers_as_none_and_is_recorded(core, centre):
    staff = session(core, "staff")
    with pytest.raises(NotFound):
        staff.documents(centre)
    with pytest.raises(NotFound):
        staff.receipt(centre, 1)
    denied = [e for e in events(core, "list") + events(core, "receipt") if e.outcome == "denied"]
    assert len(denied) == 2 and all(e.detail == "no such centre" for e in denied)


def test_a_sender_still_proves_delivery_after_the_centre_is_suspended(core):
    up = session(core, "podmi")
    entry = deliver(up, f"/{A}/ris/monthly-statement/2026-10/s.pdf", pdfsamples.minimal_pdf("suspended"))
    core.administration(actor="test").set_status(A, "suspended", "test")
    up = session(core, "podmi")
    assert up.receipt(A, entry.document_id).sender == "podmi"
    assert [d.id for d in up.documents(A).documents] == [entry.document_id]
    with pytest.raises(InstitutionNotActive):
        deliver(up, f"/{A}/more.pdf", pdfsamples.minimal_pdf("no"))
