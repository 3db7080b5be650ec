"""Metadata tests, run on SQLite and on a real PostgreSQL ($DATABASE_URL's server, or a throwaway cluster)."""
from __future__ import annotations

import subprocess
import sys
import threading

import pytest
import sqlalchemy as sa

from alembic.script import ScriptDirectory

from storage.db import HEAD_REVISION, alembic_config, at_head, create_engine
from storage.models import Base
from storage.errors import Conflict
from storage.repository import AuditRecord, Repository

C1, C2 = "0212345668", "0207123407"


@pytest.fixture(params=["sqlite", "postgresql"])
def repo(request, tmp_path):
    url = f"sqlite:///{tmp_path}/m.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    r = Repository(create_engine(url))
    r.initialize()
    yield r
    r.engine.dispose()


def _account(repo, name="podmi", role="uploader", inst=None):
    with repo.write() as c:
        return repo.add_account(c, name, role, inst)


def test_migration_creates_the_model_schema(repo):
    insp = sa.inspect(repo.engine)
    assert set(Base.metadata.tables) <= set(insp.get_table_names())
    with repo.read() as c:
        head = ScriptDirectory.from_config(alembic_config(repo.engine)).get_current_head()
        assert c.execute(sa.text("select version_num from alembic_version")).scalar() == head
    assert HEAD_REVISION == head  # a start finding the database there skips Alembic: it must know the newest
    assert at_head(repo.engine)
    repo.initialize()  # idempotent


def test_a_start_on_a_current_database_does_not_load_alembic(repo):
    """Every worker process is forked from the one that ran the migration: Alembic, Mako and Pygments loaded
    there for nothing took 13 MB in each."""
    code = ("import sys; from storage.db import create_engine; from storage.repository import Repository; "
            f"r = Repository(create_engine({repo.engine.url.render_as_string(hide_password=False)!r})); "
            "r.initialize(); print(sorted({m.split('.')[0] for m in sys.modules} & {'alembic', 'mako'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_institutions_and_duplicates(repo):
    with repo.write() as c:
        repo.add_institution(c, C1, "OCMW A", "active")
    with pytest.raises(Conflict):
        with repo.write() as c:
            repo.add_institution(c, C1, "again", "paper")
    with repo.write() as c:
        assert repo.set_institution_status(c, C1, "suspended") == "active"
        assert repo.set_institution_status(c, "0000000097", "active") is None
    with repo.read() as c:
        assert repo.institution(c, C1).status == "suspended"


def test_one_visible_document_per_name_is_enforced_by_the_database(repo):
    with repo.write() as c:
        repo.add_institution(c, C1, "OCMW A", "active")
    acc = _account(repo)
    ids = []
    for blob in ("b1", "b2"):
        with repo.write() as c:
            ids.append(repo.create_pending(c, institution_id=C1, folder="f", name="x.pdf", blob_id=blob,
                                           uploaded_by=acc, node_id="n"))
    with repo.write() as c:
        repo.finish_document(c, ids[0], state="committed", size=3, sha256="aa", key_id="k", wrapped_key=b"w",
                             content_type="application/pdf")
    with pytest.raises(Conflict):
        with repo.write() as c:
            repo.finish_document(c, ids[1], state="committed", size=4, sha256="bb", key_id="k", wrapped_key=b"w",
                                 content_type="application/pdf")
    with repo.read() as c:
        doc = repo.visible_document(c, C1, "f", "x.pdf")
        assert doc.id == ids[0] and doc.sha256 == "aa" and doc.wrapped_key == b"w"
        assert [d.id for d in repo.documents_in(c, C1, "f")] == [ids[0]]
    # archived names are free again; the archived one stays findable for restore and idempotency
    with repo.write() as c:
        assert repo.set_state(c, ids[0], ("committed",), "archived")
        repo.finish_document(c, ids[1], state="committed", size=4, sha256="bb", key_id="k", wrapped_key=b"w",
                             content_type="application/pdf")
    with repo.read() as c:
        assert repo.visible_document(c, C1, "f", "x.pdf").id == ids[1]
        assert [d.id for d in repo.archived_documents(c, C1, "f", "x.pdf")] == [ids[0]]
        assert repo.same_content(c, C1, "f", "x.pdf", "aa", 3) is not None
        assert repo.same_content(c, C1, "f", "x.pdf", "cc", 3) is None


def test_folders(repo):
    with repo.write() as c:
        repo.add_institution(c, C1, "OCMW A", "active")
        assert repo.create_folders(c, C1, "2026/11/rmi", "t")
        assert not repo.create_folders(c, C1, "2026/11", "t")
        repo.create_folders(c, C1, "2026_x", "t")
    with repo.read() as c:
        assert sorted(r.path for r in repo.child_folders(c, C1, "")) == ["2026", "2026_x"]
        assert [r.path for r in repo.child_folders(c, C1, "2026")] == ["2026/11"]
        assert repo.folder_exists(c, C1, "2026/11/rmi") and not repo.folder_exists(c, C2, "2026")
        assert repo.has_children(c, C1, "2026") and not repo.has_children(c, C1, "2026/11/rmi")


def test_grants_and_keys(repo):
    with repo.write() as c:
        repo.add_institution(c, C1, "A", "active")
        repo.add_institution(c, C2, "B", "active")
    acc = _account(repo, "staff1", "staff")
    with repo.write() as c:
        repo.set_grant(c, acc, C1, False, "t")
        repo.set_grant(c, acc, C1, True, "t")  # update, not duplicate
        repo.set_grant(c, acc, C2, False, "t")
        repo.add_ssh_key(c, acc, "SHA256:abc", "ssh-ed25519 AAAA", "k")
    with pytest.raises(Conflict):
        with repo.write() as c:
            repo.add_ssh_key(c, acc, "SHA256:abc", "ssh-ed25519 AAAA", "k")
    with repo.read() as c:
        assert sorted((g.institution_id, g.can_remove) for g in repo.grants_of(c, acc)) == sorted(
            [(C1, True), (C2, False)])
        assert repo.account_for_key(c, "SHA256:abc").name == "staff1"
    with repo.write() as c:
        assert repo.revoke_grant(c, acc, C2)
        assert not repo.revoke_grant(c, acc, C2)


def test_audit_chain_detects_tampering(repo):
    with repo.write() as c:
        for i in range(5):
            repo.audit(c, AuditRecord("list", "ok", f"user{i}", "sftp", "127.0.0.1", C1, f"/{C1}", None, None, ""))
    with repo.read() as c:
        assert repo.verify_audit_chain(c) == (5, None)
    victim = 3
    with repo.engine.begin() as c:
        c.execute(sa.text("UPDATE audit_events SET actor = 'someone-else' WHERE id = :i"), {"i": victim})
    with repo.read() as c:
        n, broken = repo.verify_audit_chain(c)
    assert broken == victim and n == victim - 1


def test_audit_deletion_detected(repo):
    with repo.write() as c:
        for i in range(3):
            repo.audit(c, AuditRecord("login", "ok", f"u{i}"))
    with repo.engine.begin() as c:
        c.execute(sa.text("DELETE FROM audit_events WHERE id = (SELECT max(id) FROM audit_events)"))
    with repo.read() as c:
        assert repo.verify_audit_chain(c)[1] is not None


def test_concurrent_audit_writers_keep_one_chain(repo):
    def writer(k):
        for i in range(15):
            with repo.write() as c:
                repo.audit(c, AuditRecord("list", "ok", f"w{k}-{i}"))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    with repo.read() as c:
        assert repo.verify_audit_chain(c) == (60, None)


def test_upgrade_from_the_first_revision_keeps_data(tmp_path):
    """An installed gateway upgrades in place: rows written under revision 0001 survive every later migration."""
    from alembic import command

    engine = create_engine(f"sqlite:///{tmp_path}/old.db")
    command.upgrade(alembic_config(engine), "0001")
    with engine.begin() as c:
        c.execute(sa.text("INSERT INTO institutions (id, name, status, content_types, language, created_at, "
                          "status_changed_at) VALUES (:i, 'A', 'active', 'application/pdf', 'nl', "
                          "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"), {"i": C1})
        c.execute(sa.text("INSERT INTO accounts (name, role, institution_id, display_name, email, enabled, "
                          "created_at) VALUES ('arch', 'archiver', :i, '', '', 1, CURRENT_TIMESTAMP)"), {"i": C1})
    repo = Repository(engine)
    repo.initialize()
    with repo.read() as c:
        assert repo.institution(c, C1).mutable is False
        assert repo.account_by_name(c, "arch").institution_id == C1
        assert c.execute(sa.text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_failure_counts_bans_do_not_extend_and_end(repo):
    """The login throttle's rows (auth/throttle.py): weights add up, a running ban is never extended, counting
    starts again after the window and after a ban ran out; lifting and purging forget."""
    now = 1000.0
    with repo.write() as c:
        assert repo.record_failure(c, "source:192.0.2.1", now, 600, 12, 60, weight=3) == (3, 0.0)
        assert repo.record_failure(c, "source:192.0.2.1", now + 1, 600, 12, 60, weight=3) == (6, 0.0)
        assert repo.record_failure(c, "source:192.0.2.1", now + 2, 600, 12, 60, weight=6) == (12, now + 62)
        # inside the ban: counted, but the ban keeps its end
        assert repo.record_failure(c, "source:192.0.2.1", now + 30, 600, 12, 60, weight=3) == (15, now + 62)
        # the ban ran out: a fresh count
        assert repo.record_failure(c, "source:192.0.2.1", now + 70, 600, 12, 60, weight=3) == (3, 0.0)
        # ban_after 0: never banned; the window restarts the count
        assert repo.record_failure(c, "seen:192.0.2.1|jan", now, 600, 0, 0) == (1, 0.0)
        assert repo.record_failure(c, "seen:192.0.2.1|jan", now + 1, 600, 0, 0) == (2, 0.0)
        assert repo.record_failure(c, "seen:192.0.2.1|jan", now + 700, 600, 0, 0) == (1, 0.0)
        assert repo.record_failure(c, "account:jan_%", now, 600, 1, 60) == (1, now + 60)
    with repo.read() as c:
        assert set(repo.failures(c, ["account:jan_%", "source:192.0.2.1", "account:x"])) == {
            "account:jan_%", "source:192.0.2.1"}
        assert [r.key for r in repo.failure_rows(c, ["account:"], now + 10)] == ["account:jan_%"]
        assert [r.key for r in repo.failure_rows(c, ["source:"], now + 10)] == []
        assert [r.key for r in repo.failure_rows(c, ["source:"], now + 10, counting_since=now)] == [
            "source:192.0.2.1"]
    with repo.write() as c:
        # prefixes are literal: "_" and "%" match only themselves
        assert repo.clear_failures_under(c, "account:jan%") == 0
        assert repo.clear_failures_under(c, "seen:192.0.2.1|") == 1
        assert repo.purge_failures(c, now + 65) == 1  # the account row: last failure and ban both over
        assert repo.clear_failures(c, "source:192.0.2.1") and not repo.clear_failures(c, "source:192.0.2.1")
