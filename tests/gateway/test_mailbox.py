"""The core service, constructed directly (no protocol), on SQLite and on PostgreSQL."""
from __future__ import annotations

import hashlib

import pytest

from auth.authenticator import PasswordCredentials, PublicKeyCredentials
from storage.errors import (AdminError, AlreadyExists, AuthenticationFailed, ContentRefused, InstitutionNotActive,
                            NotFound, PermissionDenied, TooLarge)
from tests import pdfsamples
from tests.coretools import core_services, session

A, B, PAPER = "0212345668", "0207123407", "0207999969"


@pytest.fixture(params=["sqlite", "postgresql"])
def core(request, tmp_path):
    env = {"INSTPAGES_DOCUMENTS_MAX_SIZE": str(2 * 1024 * 1024), "INSTPAGES_AUTH_SECOND_FACTOR": "off",
           "INSTPAGES_AUTH_FAILURE_DELAY_BASE": "0"}
    services = core_services(request, tmp_path / "var", env)
    admin = services.administration(actor="test")
    admin.add_institution(A, "A", "active")
    admin.add_institution(B, "B", "active")
    admin.add_institution(PAPER, "P", "paper")
    admin.add_account("podmi", "uploader")
    admin.add_account("arch-a", "archiver", A)
    admin.add_account("staff", "staff", password="correct horse battery")
    admin.grant("staff", A)
    yield services
    services.close()


def upload(sess, path, data):
    up = sess.open_upload(path)
    up.append(data)
    return up.commit()


def download(sess, path) -> bytes:
    d = sess.open_download(path)
    out = b"".join(d.read(o, 65536) for o in range(0, d.size, 65536))
    d.close()
    return out


def test_deliver_fetch_archive_restore(core):
    pdf = pdfsamples.minimal_pdf("deliver")
    up, arch = session(core, "podmi"), session(core, "arch-a")
    entry = upload(up, f"/{A}/2026-11/report.pdf", pdf)
    assert entry.size == len(pdf) and entry.sha256 == hashlib.sha256(pdf).hexdigest()
    assert [e.name for e in arch.list(f"/{A}")] == ["2026-11"]
    assert [(e.name, e.size) for e in arch.list(f"/{A}/2026-11")] == [("report.pdf", len(pdf))]
    assert download(arch, f"/{A}/2026-11/report.pdf") == pdf
    arch.archive(f"/{A}/2026-11/report.pdf")
    assert arch.list(f"/{A}/2026-11") == []
    with pytest.raises(NotFound):
        arch.open_download(f"/{A}/2026-11/report.pdf")
    core.administration(actor="t").restore(A, "2026-11/report.pdf")
    assert download(arch, f"/{A}/2026-11/report.pdf") == pdf
    with core.repo.read() as c:
        doc = core.repo.visible_document(c, A, "2026-11", "report.pdf")
    assert doc.first_fetched_at is not None  # the receipt
    with core.repo.read() as c:
        assert core.repo.verify_audit_chain(c)[1] is None


def test_rules(core):
    up, arch, staff = session(core, "podmi"), session(core, "arch-a"), session(core, "staff")
    pdf = pdfsamples.minimal_pdf("one")
    upload(up, f"/{A}/x.pdf", pdf)
    upload(up, f"/{A}/x.pdf", pdf)  # identical: harmless
    assert len(arch.list(f"/{A}")) == 1
    with pytest.raises(AlreadyExists):
        upload(up, f"/{A}/x.pdf", pdfsamples.minimal_pdf("two"))
    assert download(arch, f"/{A}/x.pdf") == pdf
    with pytest.raises(ContentRefused, match="not a PDF"):
        upload(up, f"/{A}/y.pdf", pdfsamples.not_a_pdf_zip())
    with pytest.raises(ContentRefused, match="JavaScript"):
        upload(up, f"/{A}/js.pdf", pdfsamples.pdf_with_javascript())
    with pytest.raises(InstitutionNotActive, match="status: paper"):
        up.open_upload(f"/{PAPER}/z.pdf")
    with pytest.raises(TooLarge):
        upload(up, f"/{A}/big.pdf", b"%PDF-" + b"0" * (3 * 1024 * 1024))
    with pytest.raises(PermissionDenied):
        up.open_download(f"/{A}/x.pdf")
    with pytest.raises(PermissionDenied):
        staff.archive(f"/{A}/x.pdf")
    # another centre: exactly like a name that does not exist
    for sess in (arch, staff):
        with pytest.raises(NotFound) as hidden:
            sess.list(f"/{B}")
        with pytest.raises(NotFound) as missing:
            sess.list("/0000000097")
        assert hidden.value.message == missing.value.message
    assert [e.name for e in staff.list("/")] == [A]
    assert sorted(e.name for e in up.list("/")) == sorted([A, B])
    with core.repo.read() as c:
        states = {r.state for r in core.repo.documents_in(c, A, "")}
    assert states == {"committed"}
    # refused uploads left no blobs behind
    with core.repo.read() as c:
        live = core.repo.live_blob_ids(c)
    assert set(core.blobs.list_ids()) == live


def test_aborted_upload_leaves_nothing(core):
    up, arch = session(core, "podmi"), session(core, "arch-a")
    u = up.open_upload(f"/{A}/cut.pdf")
    u.append(pdfsamples.minimal_pdf("cut")[:300])
    u.abort("connection lost")
    assert arch.list(f"/{A}") == []
    assert list(core.blobs.list_ids()) == []
    events = [(e.action, e.outcome) for e in core.repo.audit_events(core.repo.engine.connect(), limit=3)]
    assert ("upload", "aborted") in events


def test_recovery_after_a_crash(core):
    up = session(core, "podmi")
    u = up.open_upload(f"/{A}/inflight.pdf")
    u.append(pdfsamples.minimal_pdf("inflight"))
    # the process dies here: nothing is committed; a restart recovers
    report = core.mailbox.recover()
    assert report["aborted_uploads"] == 1 and report["temporary_blobs"] >= 1
    assert session(core, "arch-a").list(f"/{A}") == []
    with core.repo.read() as c:
        assert core.repo.pending_of(c, core.mailbox.node_id) == []


def test_staged_upload_then_rename(core):
    up, arch = session(core, "podmi"), session(core, "arch-a")
    pdf = pdfsamples.minimal_pdf("staged")
    upload(up, f"/{A}/s.pdf.filepart", pdf)
    assert arch.list(f"/{A}") == []  # never visible to readers
    assert [e.name for e in up.list(f"/{A}")] == ["s.pdf.filepart"]
    up.rename(f"/{A}/s.pdf.filepart", f"/{A}/s.pdf")
    assert download(arch, f"/{A}/s.pdf") == pdf
    with pytest.raises(PermissionDenied):
        up.rename(f"/{A}/s.pdf", f"/{A}/t.pdf")


def test_rclone_partial_names_are_staged_uploads_too(core):
    """rclone uploads to NAME.<random>.partial and renames: the core (behind SFTP and WebDAV alike) stages it."""
    up, arch = session(core, "podmi"), session(core, "arch-a")
    pdf = pdfsamples.minimal_pdf("staged by rclone")
    upload(up, f"/{A}/r.pdf.Xy12ab3Z.partial", pdf)
    assert arch.list(f"/{A}") == []
    up.rename(f"/{A}/r.pdf.Xy12ab3Z.partial", f"/{A}/r.pdf")
    assert [e.name for e in arch.list(f"/{A}")] == ["r.pdf"] and download(arch, f"/{A}/r.pdf") == pdf


def test_login(core):
    mb = core.mailbox
    s = mb.login(PasswordCredentials("staff", "correct horse battery"), protocol="test", source="127.0.0.1")
    assert s.principal.name == "staff"
    for creds in (PasswordCredentials("staff", "wrong"), PasswordCredentials("nobody", "x"),
                  PasswordCredentials("staff", ""), PublicKeyCredentials("podmi", "SHA256:nope")):
        with pytest.raises(AuthenticationFailed) as exc:
            mb.login(creds, protocol="test", source="127.0.0.1")
        assert exc.value.message == "authentication failed"
    with core.repo.read() as c:
        failed = core.repo.audit_events(c, action="login")
    assert sum(1 for e in failed if e.outcome == "failed") == 4
    assert all("wrong" not in e.detail or "password" in e.detail for e in failed)


def test_admin_refusals(core):
    admin = core.administration(actor="t")
    with pytest.raises(AdminError, match="check digits"):
        admin.add_institution("0212345678", "x")
    with pytest.raises(AdminError, match="belongs to one centre"):
        admin.add_account("arch-x", "archiver")
    with pytest.raises(AdminError, match="machine accounts"):
        admin.add_account("up-x", "uploader", password="long enough password")
    with pytest.raises(AdminError, match="only people"):
        admin.grant("podmi", A)
