"""What every aggregate of the repository shares: the tables, the transactions, the time helpers, ``Conflict``.

SQLAlchemy Core statements only (bound parameters, never string-built SQL); the same code runs on SQLite and
PostgreSQL. Methods that change state take an open connection from :meth:`RepositoryBase.write` so that a
state change and its audit event commit together.

Hot statements are built once per module with bound parameters (``_B``): building a Core statement per call
(and generating its cache key) cost more than running it on SQLite.
"""
from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Engine

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

    def write(self):
        return db.write_tx(self.engine)

    def read(self):
        return db.read_tx(self.engine)
