"""Answers a session gives from memory (gateway.core.known): what it was just shown, for a short while, and
never past the rules -- a revoked grant, a disabled account or another uploader's document get nothing from
memory, and the ordinary call then answers as it always did."""
from __future__ import annotations

import pytest

from storage.errors import AuthenticationFailed, NotFound
from tests import pdfsamples
from tests.coretools import core_services, session

A = "0212345668"


@pytest.fixture(params=["sqlite", "postgresql"])
def core(request, tmp_path):
    # the cache epochs are read every 60 s here, not every second: a memory answer is withheld while a read is due,
    # and on a loaded machine the reader thread can fall behind between two lines of a test; the changes made
    # below reach the session in this process at once, without that read
    env = {"INSTPAGES_AUTH_SECOND_FACTOR": "off", "INSTPAGES_AUTH_FAILURE_DELAY_BASE": "0",
           "INSTPAGES_STORAGE_CACHE_SYNC_SECONDS": "60"}
    services = core_services(request, tmp_path / "var", env)
    admin = services.administration(actor="test")
    admin.add_institution(A, "A", "active")
    admin.add_account("podmi", "uploader")
    admin.add_account("podmi-2", "uploader")
    admin.add_account("staff", "staff", password="correct horse battery")
    admin.grant("staff", A)
    yield services
    services.close()


def deliver(services, path: str, data: bytes) -> None:
    up = session(services, "podmi").open_upload(path)
    up.append(data)
    up.commit()


def downloads(services, path: str) -> list:
    with services.repo.read() as c:
        return [(e.outcome, e.bytes) for e in services.repo.audit_events(c, action="download") if e.path == path]


def test_a_listed_document_is_stated_and_downloaded_from_memory_and_recorded(core):
    pdf = pdfsamples.minimal_pdf("known")
    deliver(core, f"/{A}/2026-11/a.pdf", pdf)
    staff = session(core, "staff")
    assert staff.stat_known(f"/{A}/2026-11/a.pdf") is None  # nothing shown yet: the database is asked
    [listed] = staff.list(f"/{A}/2026-11")
    entry = staff.stat_known(f"/{A}/2026-11/a.pdf")
    assert entry == listed and entry.size == len(pdf)
    assert staff.open_download_known(f"/{A}/2026-11/a.pdf") is None  # a listing holds no key: looked up once
    assert staff.stat(f"/{A}/2026-11/a.pdf") == listed
    staff.open_download(f"/{A}/2026-11/a.pdf").close(aborted=True)
    d = staff.open_download_known(f"/{A}/2026-11/a.pdf")
    assert d is not None and d.fetch(0, len(pdf)) == pdf
    d.served(0, len(pdf))
    d.close()
    assert downloads(core, f"/{A}/2026-11/a.pdf") == [("complete", len(pdf)), ("aborted", 0)]
    with core.repo.read() as c:
        assert core.repo.visible_document(c, A, "2026-11", "a.pdf").first_fetched_at is not None


@pytest.mark.parametrize("change", ["revoke", "disable"])
def test_a_revoked_grant_or_disabled_account_gets_nothing_from_memory(core, change):
    deliver(core, f"/{A}/b.pdf", pdfsamples.minimal_pdf("revoked"))
    staff = session(core, "staff")
    staff.stat(f"/{A}/b.pdf")  # looked up once: its row is known
    assert staff.stat_known(f"/{A}/b.pdf") is not None and staff.open_download_known(f"/{A}/b.pdf") is not None
    admin = core.administration(actor="test")
    if change == "revoke":
        admin.revoke("staff", A)
    else:
        admin.set_account_enabled("staff", False)
    assert staff.stat_known(f"/{A}/b.pdf") is None
    assert staff.open_download_known(f"/{A}/b.pdf") is None
    with pytest.raises(NotFound if change == "revoke" else AuthenticationFailed):
        staff.stat(f"/{A}/b.pdf")
    with pytest.raises(NotFound if change == "revoke" else AuthenticationFailed):
        staff.open_download(f"/{A}/b.pdf")


def test_another_uploaders_document_is_not_answered_from_memory(core):
    deliver(core, f"/{A}/c.pdf", pdfsamples.minimal_pdf("other uploader"))
    other = session(core, "podmi-2")
    with pytest.raises(NotFound):
        other.stat(f"/{A}/c.pdf")  # the row was read (and kept), but it is not this uploader's
    assert other.stat_known(f"/{A}/c.pdf") is None
    assert other.open_download_known(f"/{A}/c.pdf") is None


def test_memory_lasts_only_its_bound_and_a_change_by_the_session_itself_ends_it(core, monkeypatch):
    deliver(core, f"/{A}/d.pdf", pdfsamples.minimal_pdf("d"))
    deliver(core, f"/{A}/e.pdf", pdfsamples.minimal_pdf("e"))
    staff = session(core, "staff")
    staff.list(f"/{A}")
    assert staff.stat_known(f"/{A}/d.pdf") is not None
    admin = core.administration(actor="test")
    admin.grant("staff", A, can_remove=True)  # a grant change: the principal is read again, memory dropped
    assert staff.stat_known(f"/{A}/d.pdf") is None
    staff.list(f"/{A}")
    staff.archive(f"/{A}/d.pdf")  # this session changed the tree: it looks names up again
    assert staff.stat_known(f"/{A}/e.pdf") is None
    staff.list(f"/{A}")
    assert staff.stat_known(f"/{A}/e.pdf") is not None
    now = staff.known._clock()
    monkeypatch.setattr(staff.known, "_clock", lambda: now + staff.known.ttl)
    assert staff.stat_known(f"/{A}/e.pdf") is None  # older than the bound: asked again


def test_a_session_going_through_a_folder_reads_the_next_rows_ahead(core):
    for name in ("f1.pdf", "f2.pdf", "f3.pdf", "f4.pdf"):
        deliver(core, f"/{A}/run/{name}", pdfsamples.minimal_pdf(name))
    staff = session(core, "staff")
    with core.repo.write() as c:  # f3 leaves the mailbox behind the session's back
        doc = core.repo.visible_document(c, A, "run", "f3.pdf")
        core.repo.set_state(c, doc.id, ("committed",), "archived")
    staff.stat(f"/{A}/run/f1.pdf")  # the first name of a folder: that row alone
    assert staff.stat_known(f"/{A}/run/f2.pdf") is None
    staff.stat(f"/{A}/run/f2.pdf")  # the second: the rows from there on come along
    assert staff.stat_known(f"/{A}/run/f4.pdf").name == "f4.pdf"
    assert staff.stat_known(f"/{A}/run/f3.pdf") is None  # only visible documents are read ahead
    with pytest.raises(NotFound):
        staff.stat(f"/{A}/run/f3.pdf")
