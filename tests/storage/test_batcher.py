"""Group commit of the record (storage.repo.batcher) on SQLite and PostgreSQL.

What a user of the record checks: every event of concurrent callers on the record exactly once and in one
verified chain; a caller returns only once its event is committed; a failing transaction fails every caller of
its group and leaves nothing of it; a failing piece fails only its own caller; stopping commits what is queued.
"""
from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import sqlalchemy as sa

from storage.db import create_engine
from storage.errors import ServiceUnavailable
from storage.repo.batcher import RecordBatcher
from storage.repository import AuditRecord, E, Repository

THREADS, EACH = 32, 15


@pytest.fixture(params=["sqlite", "postgresql"])
def repo(request, tmp_path):
    url = f"sqlite:///{tmp_path}/record.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    r = Repository(create_engine(url, pool_size=THREADS + 4))
    r.initialize()
    yield r
    r.close()
    r.engine.dispose()


def _event(repo: Repository, actor: str, detail: str = ""):
    def work(c):
        return repo.audit(c, AuditRecord("download", "complete", actor, detail=detail))
    return work


def _actors(repo: Repository) -> Counter:
    with repo.read() as c:
        return Counter(r.actor for r in repo.audit_events(c, limit=100_000))


def _hold(batcher: RecordBatcher):
    """Keep the committer busy until the returned event is set (the callers queued meanwhile form one group)."""
    release, started = threading.Event(), threading.Event()

    def work(c):
        started.set()
        assert release.wait(30)

    def hold():
        try:
            batcher.run(work)
        except ServiceUnavailable:  # a test with a short wait: the holder gives up too
            pass
    holder = threading.Thread(target=hold)
    holder.start()
    assert started.wait(10)
    return release, holder


def _wait_queued(batcher: RecordBatcher, n: int) -> None:
    deadline = time.monotonic() + 10
    while len(batcher._queue) < n:
        assert time.monotonic() < deadline, "callers did not queue"
        time.sleep(0.01)


def _callers(n: int, fn):
    errors: list = [None] * n
    results: list = [None] * n

    def call(i):
        try:
            results[i] = fn(i)
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertions
            errors[i] = exc
    threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return threads, results, errors


def test_concurrent_callers_are_all_on_the_record_once_in_one_chain(repo):
    def caller(i):
        for k in range(EACH):
            event_id = repo.grouped.run(_event(repo, f"t{i}-{k}"))
            with repo.read() as c:  # returned: committed, visible to anybody
                assert c.execute(sa.select(E.c.actor).where(E.c.id == event_id)).scalar() == f"t{i}-{k}"
        return True

    threads, results, errors = _callers(THREADS, caller)
    for t in threads:
        t.join(120)
    assert errors == [None] * THREADS and all(results)
    seen = _actors(repo)
    assert set(seen) == {f"t{i}-{k}" for i in range(THREADS) for k in range(EACH)} and max(seen.values()) == 1
    with repo.read() as c:
        check = repo.verify_audit_chain(c)
    assert check == (THREADS * EACH, None) and check.unsealed == 0
    assert repo.grouped.pieces == THREADS * EACH


def test_callers_queued_together_are_committed_in_one_group(repo):
    b = repo.grouped
    release, holder = _hold(b)
    threads, results, errors = _callers(20, lambda i: b.run(_event(repo, f"q{i}")))
    _wait_queued(b, 20)
    assert set(_actors(repo)) == set(), "nothing is visible before its group commits"
    groups = b.groups
    release.set()
    for t in threads + [holder]:
        t.join(30)
    assert errors == [None] * 20 and len(set(results)) == 20
    assert b.groups - groups == 2  # the holder's group, then all twenty together
    with repo.read() as c:
        assert repo.verify_audit_chain(c) == (20, None)


def test_a_failing_piece_fails_only_its_caller(repo):
    b = repo.grouped
    release, holder = _hold(b)

    def bad(c):
        repo.audit(c, AuditRecord("download", "complete", "bad"))
        raise ValueError("this piece breaks a rule")
    threads, _, errors = _callers(10, lambda i: b.run(bad if i == 3 else _event(repo, f"ok{i}")))
    _wait_queued(b, 10)
    release.set()
    for t in threads + [holder]:
        t.join(30)
    assert isinstance(errors[3], ValueError) and [e for i, e in enumerate(errors) if i != 3] == [None] * 9
    assert set(_actors(repo)) == {f"ok{i}" for i in range(10) if i != 3}
    with repo.read() as c:
        assert repo.verify_audit_chain(c) == (9, None)


def test_a_failing_transaction_fails_every_caller_and_writes_nothing(repo):
    """PostgreSQL: the group's COMMIT is refused (a deferred constraint); SQLite: the group cannot begin (another
    process holds the write lock past the busy timeout)."""
    pg = repo.engine.dialect.name == "postgresql"
    if pg:
        with repo.write() as c:
            c.execute(sa.text("CREATE TABLE once (x int UNIQUE DEFERRABLE INITIALLY DEFERRED)"))
        b = RecordBatcher(repo.write)
        release, holder = _hold(b)
    else:
        import sqlite3

        busy = Repository(create_engine(repo.engine.url.render_as_string(), busy_timeout=0.3))
        b = RecordBatcher(busy.write)
        other = sqlite3.connect(repo.engine.url.database, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process's long write transaction

    def piece(i):
        def work(c):
            repo.audit(c, AuditRecord("download", "complete", f"f{i}"))
            if pg:
                c.execute(sa.text("INSERT INTO once VALUES (1)"))  # refused only when the group commits
        return work
    threads, _, errors = _callers(8, lambda i: b.run(piece(i)))
    if pg:
        _wait_queued(b, 8)
        release.set()
        holder.join(30)
    for t in threads:
        t.join(30)
    if not pg:
        other.execute("COMMIT")
        other.close()
    assert all(isinstance(e, sa.exc.IntegrityError if pg else ServiceUnavailable) for e in errors), errors
    assert not any(a.startswith("f") for a in _actors(repo))
    with repo.read() as c:
        check = repo.verify_audit_chain(c)
    assert check == (0, None) and check.unsealed == 0
    b.run(piece(99))  # the database is back: the next group commits
    b.close()
    assert "f99" in _actors(repo)
    if not pg:
        busy.engine.dispose()


def test_closing_commits_what_is_queued_then_writes_in_the_callers_thread(repo):
    b = repo.grouped
    release, holder = _hold(b)
    threads, _, errors = _callers(12, lambda i: b.run(_event(repo, f"s{i}")))
    _wait_queued(b, 12)
    closer = threading.Thread(target=b.close)
    closer.start()
    time.sleep(0.2)
    assert closer.is_alive(), "close waits for the queued writes"
    release.set()
    for t in threads + [holder, closer]:
        t.join(30)
    assert errors == [None] * 12 and {f"s{i}" for i in range(12)} <= set(_actors(repo))
    assert not (b._thread and b._thread.is_alive())
    b.run(_event(repo, "after"))  # stopped: written by the caller itself
    assert "after" in _actors(repo)
    with repo.read() as c:
        assert repo.verify_audit_chain(c) == (13, None)


def test_a_caller_waits_a_bounded_time(repo):
    b = RecordBatcher(repo.write, wait=0.3)
    release, holder = _hold(b)
    with pytest.raises(ServiceUnavailable) as caught:
        b.run(_event(repo, "late"))
    assert "try again" in caught.value.message
    release.set()
    holder.join(30)
    b.close()
    assert "late" in _actors(repo)  # it was committed after its caller stopped waiting: never the reverse
