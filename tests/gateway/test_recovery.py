"""Recovery per node and per worker (issue 11, part 4): a node or worker that starts removes only what it left
itself; anybody's upload is abandoned only after ``storage.abandoned_hours``. Two nodes here are two service
graphs with their own node ids over ONE database and ONE blob store, as in the scaled-out shape; on SQLite and
PostgreSQL, with the local folder and with S3 (SeaweedFS)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.config import load_config
from gateway.services import build
from storage.models import Document
from storage.repository import utcnow
from tests import pdfsamples
from tests.gateway.test_mailbox import A, download, session

PDF = pdfsamples.minimal_pdf("in flight")


@pytest.fixture(params=["sqlite-local", "postgresql-s3"])
def nodes(request, tmp_path):
    """``nodes(node, worker)``: the services of that node's worker, all over one database and blob store."""
    env = {"INSTPAGES_AUTH_SECOND_FACTOR": "off", "INSTPAGES_AUTH_FAILURE_DELAY_BASE": "0"}
    if request.param == "postgresql-s3":
        env["INSTPAGES_STORAGE_DATABASE_URL"] = request.getfixturevalue("pg_url")
        env.update(request.getfixturevalue("s3_server").env(prefix=f"recovery-{tmp_path.name}/"))
    built = []

    def make(node: str, worker: str = "0"):
        cfg = load_config(None, env=dict(env, INSTPAGES_NODE_ID=node),
                          overrides={"data_dir": str(tmp_path / "var")})
        services = build(cfg, worker=worker)
        built.append(services)
        return services

    first = make("node-a")
    admin = first.administration(actor="test")
    admin.add_institution(A, "A", "active")
    admin.add_account("podmi", "uploader")
    admin.add_account("arch-a", "archiver", A)
    yield make
    for services in built:
        services.close()


def in_flight(services, name: str, *, big: bool = False):
    """An upload under way; ``big``: past S3's first part (9 MiB), so that a temporary object exists there too."""
    u = session(services, "podmi").open_upload(f"/{A}/{name}")
    u.append(PDF[:200])
    if big:
        u.append(bytes(9 * 1024 * 1024))
    return u


def pending(services) -> set[str]:
    with services.repo.read() as c:
        return {r.node_id for r in c.execute(Document.__table__.select().where(Document.__table__.c.state == "pending"))}


def test_a_starting_node_never_touches_another_nodes_upload(nodes):
    a, b = nodes("node-a"), nodes("node-b")
    mine, theirs = in_flight(a, "a.pdf"), in_flight(b, "b.pdf")
    assert pending(a) == {"node-a/0", "node-b/0"}
    report = nodes("node-a").mailbox.recover()          # node A restarts while B is uploading
    assert report["aborted_uploads"] == 1 and report["orphan_blobs"] == 0
    assert pending(a) == {"node-b/0"}
    theirs.append(PDF[200:])
    assert theirs.commit().size == len(PDF)           # B's upload completes, byte for byte
    assert download(session(a, "arch-a"), f"/{A}/b.pdf") == PDF
    assert [e.name for e in session(a, "arch-a").list(f"/{A}")] == ["b.pdf"]
    with a.repo.read() as c:                           # A's own upload died with it, on the record
        row = c.execute(Document.__table__.select().where(Document.__table__.c.id == mine.doc_id)).one()
    assert row.state == "aborted"


def test_a_restarted_worker_clears_only_its_own_slot(nodes):
    w0, w1 = nodes("node-a", "0"), nodes("node-a", "1")
    in_flight(w0, "zero.pdf", big=True)
    in_flight(w1, "one.pdf", big=True)
    report = nodes("node-a", "1").mailbox.recover_worker()
    assert report["aborted_uploads"] == 1
    assert pending(w0) == {"node-a/0"}
    assert [t.owner for t in w0.blobs.list_temporary()] == ["node-a/0"]


def test_a_node_recovery_covers_every_worker_of_that_node_only(nodes):
    w0, w1, b = nodes("node-a", "0"), nodes("node-a", "1"), nodes("node-b")
    for services, name in ((w0, "zero.pdf"), (w1, "one.pdf"), (b, "b.pdf")):
        in_flight(services, name, big=True)
    report = nodes("node-a").mailbox.recover()
    assert report["aborted_uploads"] == 2
    assert [t.owner for t in w0.blobs.list_temporary()] == ["node-b/0"]
    assert pending(b) == {"node-b/0"}
    assert [t.owner for t in b.blobs.list_temporary()] == ["node-b/0"]


def test_anybody_s_upload_is_abandoned_only_after_the_bound(nodes):
    a, b = nodes("node-a"), nodes("node-b")
    in_flight(b, "young.pdf")
    old = in_flight(b, "old.pdf")
    assert a.mailbox.sweep_abandoned() == {"aborted_uploads": 0, "temporary_blobs": 0}
    with a.repo.write() as c:                          # the old one started a day and a minute ago
        c.execute(Document.__table__.update().where(Document.__table__.c.id == old.doc_id)
                  .values(created_at=utcnow() - timedelta(hours=24, minutes=1)))
    report = a.mailbox.sweep_abandoned()
    assert report["aborted_uploads"] == 1
    assert pending(a) == {"node-b/0"}
    events = [e for e in a.repo.audit_events(a.repo.engine.connect(), action="upload") if e.outcome == "aborted"]
    assert events and "abandoned" in events[0].detail
