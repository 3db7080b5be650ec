"""What every aggregate of the repository shares: the tables, the transactions, the time helpers, ``Conflict``.

SQLAlchemy Core statements only (bound parameters, never string-built SQL); the same code runs on SQLite and
PostgreSQL. Methods that change state take an open connection from :meth:`RepositoryBase.write` so that a
state change and its audit event commit together; work that must follow the commit (sealing the audit
record) is registered on the connection with :func:`after_commit` and runs once the transaction committed.

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


def after_commit(c: Connection, fn: Callable[[Connection], object], *, also_on_rollback: bool = False) -> None:
    """Call ``fn(c)`` once after the :meth:`RepositoryBase.write` transaction of ``c`` commits (or ends in any
    way, ``also_on_rollback``), on the same connection, outside that transaction. ``fn`` must not raise."""
    hooks = c.info.setdefault(_AFTER_COMMIT, {})
    hooks[fn] = hooks.get(fn, False) or also_on_rollback


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

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with db.write_connection(self.engine) as c:
            c.info.pop(_AFTER_COMMIT, None)
            committed = False
            try:
                with c.begin():
                    yield c
                committed = True
            finally:
                for fn, always in c.info.pop(_AFTER_COMMIT, {}).items():
                    if committed or always:
                        fn(c)

    def read(self):
        return db.read_tx(self.engine)
