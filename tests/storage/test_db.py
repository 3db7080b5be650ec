"""Writers sharing one SQLite file take their turn on a file lock beside it (storage/db.py): a writer of another
process holding it makes this one wait, and give up with "try again" after the busy timeout, never an internal
error; the moment it is released, the write goes through."""
from __future__ import annotations

import fcntl
import os
import threading
import time

import pytest

from storage.db import create_engine, migrate
from storage.errors import ServiceUnavailable
from storage.repository import AuditRecord, Repository


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "meta.db"
    engine = create_engine(f"sqlite:///{path}", busy_timeout=0.5)
    migrate(engine)
    yield path, Repository(engine)
    engine.dispose()


def _append(repo: Repository, action: str) -> None:
    with repo.write() as c:
        repo.audit(c, AuditRecord(action, "ok"))


def _held(path):
    """The lock as another process's writer holds it (flock: another open file description conflicts)."""
    fd = os.open(f"{path}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_a_writer_waits_for_another_process_and_gives_up_with_try_again(db):
    path, repo = db
    _append(repo, "first")                                  # the lock file exists beside the database
    assert (path.parent / "meta.db-writer.lock").exists()
    fd = _held(path)
    try:
        t0 = time.monotonic()
        with pytest.raises(ServiceUnavailable, match="try again"):
            _append(repo, "refused")
        assert 0.4 < time.monotonic() - t0 < 5
    finally:
        os.close(fd)
    _append(repo, "after")
    with repo.read() as c:
        assert [e.action for e in repo.audit_events(c)] == ["after", "first"]


def test_a_released_lock_lets_the_waiting_writer_through_at_once(db):
    path, repo = db
    fd = _held(path)
    done = threading.Event()
    writer = threading.Thread(target=lambda: (_append(repo, "waited"), done.set()))
    writer.start()
    time.sleep(0.2)
    assert not done.is_set(), "the write did not wait for the other process's turn"
    os.close(fd)
    assert done.wait(0.3), "the write did not go through once the lock was released"
    writer.join(5)
