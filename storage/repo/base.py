"""What every aggregate of the repository shares: the tables, the transactions, the time helpers, ``Conflict``.

SQLAlchemy Core statements only (bound parameters, never string-built SQL); the same code runs on SQLite and
PostgreSQL. Methods that change state take an open connection from :meth:`RepositoryBase.write` so that a
state change and its audit event commit together; work that must follow the commit (sealing the audit
record) is registered on the connection with :func:`after_commit` and runs once the transaction committed; work
that must end it (sealing a group of events) with :func:`before_commit`. :attr:`RepositoryBase.grouped` commits
the record writes of many threads together (:mod:`storage.repo.batcher`).

Hot statements are built once per module with bound parameters (``_B``): building a Core statement per call
(and generating its cache key) cost more than running it on SQLite.
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Callable, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from storage import db
from storage.errors import Conflict  # noqa: F401 - raised by every aggregate; the tree is storage.errors
from storage.models import (Account, AuditEvent, AuditHead, ClientCertificate, DavLock, DevicePassword, Document,
                            Folder, Grant, Institution, LoginFailure, OutboxMessage, SSHKey, StatusChange, TokenCard,
                            TokenChallenge, TokenCode)
from storage.repo.batcher import RecordBatcher

I = Institution.__table__
A = Account.__table__
K = SSHKey.__table__
G = Grant.__table__
F = Folder.__table__
D = Document.__table__
E = AuditEvent.__table__
H = AuditHead.__table__
CC = ClientCertificate.__table__
TC = TokenCard.__table__
TK = TokenCode.__table__
TCH = TokenChallenge.__table__
DP = DevicePassword.__table__
LF = LoginFailure.__table__
SC = StatusChange.__table__
OB = OutboxMessage.__table__
DL = DavLock.__table__

_B = sa.bindparam
_AFTER_COMMIT = "instpages.after_commit"
_BEFORE_COMMIT = "instpages.before_commit"


def after_commit(c: Connection, fn: Callable[[Connection], object], *, also_on_rollback: bool = False) -> None:
    """Call ``fn(c)`` once after the :meth:`RepositoryBase.write` transaction of ``c`` commits (or ends in any
    way, ``also_on_rollback``), on the same connection, outside that transaction. ``fn`` must not raise."""
    hooks = c.info.setdefault(_AFTER_COMMIT, {})
    hooks[fn] = hooks.get(fn, False) or also_on_rollback


def before_commit(c: Connection, fn: Callable[[Connection], object]) -> None:
    """Call ``fn(c)`` once at the end of the :meth:`RepositoryBase.write` transaction of ``c``, inside it, just
    before it commits (not when it rolls back); an exception from ``fn`` rolls the transaction back."""
    c.info.setdefault(_BEFORE_COMMIT, {})[fn] = True


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)


class RepositoryBase:
    """The engine and its transactions; the aggregates' mixins add the statements."""

    def __init__(self, engine: Engine):
        self.engine = engine
        #: record writes of this process's threads committed together (``repo.grouped.run(work)``)
        self.grouped = RecordBatcher(self.write)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with db.write_connection(self.engine) as c:
            c.info.pop(_AFTER_COMMIT, None)
            c.info.pop(_BEFORE_COMMIT, None)
            committed = False
            try:
                with db.write_turn(self.engine), c.begin():
                    yield c
                    for fn in list(c.info.pop(_BEFORE_COMMIT, {})):
                        fn(c)
                committed = True
            finally:
                c.info.pop(_BEFORE_COMMIT, None)
                for fn, always in c.info.pop(_AFTER_COMMIT, {}).items():
                    if committed or always:
                        fn(c)

    def read(self):
        return db.read_tx(self.engine)

    def close(self) -> None:
        """Commit the record writes still queued (their callers wait for them) and stop grouping: later ones are
        written by their callers' threads. The engine stays open."""
        self.grouped.close()
