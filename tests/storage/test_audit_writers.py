"""One audit record with many writers: processes appending at once on SQLite (WAL file) and PostgreSQL.

What a user of the record checks: every event there exactly once, the chain verifying with nothing left
unsealed, and no error reaching the writer (no "database is locked"). Also: the sealing hand-over between
writers, events that were never sealed, revision 0006 over a record written before it.
"""
from __future__ import annotations

import contextlib
import threading
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from storage.db import alembic_config, create_engine
from storage.errors import ServiceUnavailable
from storage.repo.audit import _event_hash
from storage.repository import AuditRecord, E, H, Repository, utcnow
from tests.storage.chainload import load_events, run_load

WRITERS, EVENTS = 4, 250


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    return f"sqlite:///{tmp_path}/record.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")


@pytest.fixture
def repo(url):
    r = Repository(create_engine(url))
    r.initialize()
    yield r
    r.engine.dispose()


def _check(url):
    r = Repository(create_engine(url, pool_size=1))
    try:
        with r.read() as c:
            return r.verify_audit_chain(c)
    finally:
        r.engine.dispose()


@pytest.mark.parametrize("mode", ["bare", "download", "upload"])
def test_processes_appending_at_once_keep_one_chain(url, mode):
    result = run_load(url, writers=WRITERS, events=EVENTS, mode=mode, hold_ms=0.5 if mode == "download" else 0)
    assert result["errors"] == [] and result["exitcodes"] == [0] * WRITERS
    seen = Counter(load_events(url))
    assert set(seen) == {(f"w{k}", str(i)) for k in range(WRITERS) for i in range(EVENTS)}
    assert max(seen.values()) == 1
    check = _check(url)
    assert check == (WRITERS * EVENTS, None)
    assert check.unsealed == 0, "every writer has returned: nothing may be left unsealed"


@pytest.mark.parametrize("a_ends", ["commit", "rollback"])
def test_event_committed_while_another_holds_the_head_is_sealed_by_it(pg_url, a_ends):
    """Writer B commits while A's transaction holds the chain head: B does not wait, and A seals B's event
    once it lets go of the head, whether A's own operation commits or fails."""
    repo = Repository(create_engine(pg_url))
    repo.initialize()
    holding, go_on = threading.Event(), threading.Event()

    def a():
        with contextlib.suppress(RuntimeError), repo.write() as c:
            repo.audit(c, AuditRecord("download", "ok", "a"))
            holding.set()
            go_on.wait(30)
            if a_ends == "rollback":
                raise RuntimeError("the operation failed after its event")

    t = threading.Thread(target=a)
    t.start()
    assert holding.wait(30)
    with repo.write() as c:
        repo.audit(c, AuditRecord("download", "ok", "b"))
    with repo.read() as c:
        assert [r.actor for r in repo.audit_events(c)] == ["b"], "B's operation is done, A's is not"
        assert repo.verify_audit_chain(c).unsealed == 1, "B could not seal: A holds the head"
    go_on.set()
    t.join(30)
    with repo.read() as c:
        actors = [r.actor for r in repo.audit_events(c)]
        check = repo.verify_audit_chain(c)
    assert actors == (["b", "a"] if a_ends == "commit" else ["b"])
    assert check == (len(actors), None) and check.unsealed == 0
    repo.engine.dispose()


def test_an_event_never_sealed_is_reported(repo):
    with repo.write() as c:
        for i in range(3):
            repo.audit(c, AuditRecord("login", "ok", f"u{i}"))
    # an event written around the chain, an hour ago (or left by a sealer that stopped working)
    with repo.engine.begin() as c:
        stray = c.execute(E.insert().values(ts=utcnow() - timedelta(hours=1), action="login", outcome="ok",
                                            actor="ghost", protocol="", source="", path="", detail="")
                          ).inserted_primary_key[0]
    with repo.read() as c:
        check = repo.verify_audit_chain(c)
        assert [r.actor for r in repo.audit_events(c, limit=1)] == ["ghost"], "the record still shows it"
    assert check == (3, None) and check.stale == 1 and check.oldest_stale == stray
    # a fresh unsealed event is no fault yet, only counted
    with repo.engine.begin() as c:
        c.execute(sa.update(E).where(E.c.id == stray).values(ts=utcnow()))
    with repo.read() as c:
        check = repo.verify_audit_chain(c)
    assert check == (3, None) and (check.unsealed, check.stale) == (1, 0)
    # the next append seals it into the chain
    with repo.write() as c:
        repo.audit(c, AuditRecord("login", "ok", "u3"))
    with repo.read() as c:
        check = repo.verify_audit_chain(c)
    assert check == (5, None) and check.unsealed == 0


def test_an_unsealed_event_removed_leaves_a_missing_id(repo):
    """What the chain cannot prove (an event deleted before it was sealed) still shows as a missing id."""
    with repo.write() as c:
        repo.audit(c, AuditRecord("login", "ok", "first"))
    with repo.engine.begin() as c:  # two events committed, not sealed yet
        gone, _kept = (c.execute(E.insert().values(ts=utcnow(), action="upload", outcome="committed", actor=a,
                                                   protocol="", source="", path="", detail="")).inserted_primary_key[0]
                       for a in ("gone", "kept"))
        c.execute(sa.delete(E).where(E.c.id == gone))
    with repo.write() as c:
        repo.audit(c, AuditRecord("login", "ok", "last"))
    with repo.read() as c:
        check = repo.verify_audit_chain(c)
        assert [r.actor for r in repo.audit_events(c)] == ["last", "kept", "first"]
    assert check == (3, None) and check.missing_ids == 1 and check.unsealed == 0


def test_a_sealed_event_edited_or_moved_breaks_the_chain(repo):
    with repo.write() as c:
        for i in range(4):
            repo.audit(c, AuditRecord("list", "ok", f"u{i}"))
    with repo.read() as c:
        ids = sorted(r.id for r in repo.audit_events(c, limit=10))
    with repo.engine.begin() as c:  # swap the places of two events
        seqs = dict(c.execute(sa.select(E.c.id, E.c.seq).where(E.c.id.in_(ids[1:3]))).all())
        c.execute(sa.update(E).where(E.c.id == ids[1]).values(seq=-1))
        c.execute(sa.update(E).where(E.c.id == ids[2]).values(seq=seqs[ids[1]]))
        c.execute(sa.update(E).where(E.c.id == ids[1]).values(seq=seqs[ids[2]]))
    with repo.read() as c:
        assert repo.verify_audit_chain(c)[1] == ids[2]


def test_a_writer_kept_waiting_too_long_on_sqlite_is_told_to_try_again(tmp_path):
    import sqlite3

    repo = Repository(create_engine(f"sqlite:///{tmp_path}/busy.db", busy_timeout=0.3))
    repo.initialize()
    other = sqlite3.connect(tmp_path / "busy.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's long write transaction
    with pytest.raises(ServiceUnavailable) as caught, repo.write() as c:
        repo.audit(c, AuditRecord("login", "ok", "late"))
    assert "try again" in caught.value.message
    other.execute("COMMIT")
    with repo.write() as c:
        repo.audit(c, AuditRecord("login", "ok", "later"))
    with repo.read() as c:
        assert [r.actor for r in repo.audit_events(c)] == ["later"] and repo.verify_audit_chain(c) == (1, None)
    other.close()
    repo.engine.dispose()


def test_revision_0006_keeps_a_record_written_before_it(url):
    """Events hashed by the first rule (ids with a gap, as PostgreSQL leaves after a rollback) verify after the
    upgrade; new events chain on; editing an old one is still found."""
    from alembic import command

    engine = create_engine(url)
    with engine.connect() as conn, conn.begin():
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0005")
    prev, ts = "0" * 64, utcnow()
    with engine.begin() as c:
        for event_id in (1, 2, 5):
            rec = AuditRecord("login", "ok", f"old{event_id}")
            h = _event_hash(prev, ts, rec)
            c.execute(sa.text("INSERT INTO audit_events (id, ts, actor, protocol, source, action, outcome, path, "
                              "detail, prev_hash, hash) VALUES (:i, :ts, :a, '', '', 'login', 'ok', '', '', :p, :h)"),
                      {"i": event_id, "ts": ts, "a": rec.actor, "p": prev, "h": h})
            prev = h
        c.execute(sa.text("INSERT INTO audit_head (id, last_id, hash) VALUES (1, 5, :h)"), {"h": prev})
        if c.dialect.name == "postgresql":  # the ids were given here, not drawn from the sequence
            c.execute(sa.text("SELECT setval(pg_get_serial_sequence('audit_events', 'id'), 5)"))
    repo = Repository(engine)
    repo.initialize()
    with repo.read() as c:
        check = repo.verify_audit_chain(c)
        assert check == (3, None) and check.missing_ids == 2
        assert c.execute(sa.select(H.c.last_id, H.c.v1_through)).one() == (3, 3)
    with repo.write() as c:
        repo.audit(c, AuditRecord("login", "ok", "new"))
    with repo.read() as c:
        assert repo.verify_audit_chain(c) == (4, None)
    with engine.begin() as c:
        c.execute(sa.update(E).where(E.c.id == 2).values(actor="mallory"))
    with repo.read() as c:
        assert repo.verify_audit_chain(c) == (1, 2)
    engine.dispose()
