"""Institutions (the centres): their rows, status transitions and history, settings, local administrators."""
from __future__ import annotations

from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from storage.repo.base import A, I, SC, Conflict, _B, utcnow

_Q_INSTITUTION = sa.select(I).where(I.c.id == _B("i"))


class InstitutionsRepo:
    """A centre's own row and its status history."""

    def add_institution(self, c: Connection, id: str, name: str, status: str) -> None:
        now = utcnow()
        try:
            with c.begin_nested():
                c.execute(I.insert().values(id=id, name=name, status=status, created_at=now, status_changed_at=now,
                                            content_types="application/pdf", language="nl"))
        except IntegrityError:
            raise Conflict(f"centre {id} already exists") from None

    def set_institution_status(self, c: Connection, id: str, status: str) -> str | None:
        old = c.execute(sa.select(I.c.status).where(I.c.id == id)).scalar()
        if old is None:
            return None
        c.execute(I.update().where(I.c.id == id).values(status=status, status_changed_at=utcnow()))
        return old

    def transition_institution(self, c: Connection, id: str, from_status: str, to_status: str, actor: str,
                               reference: str) -> bool:
        """Moves the centre from ``from_status`` only (a concurrent change makes this return False) and writes
        the history row."""
        now = utcnow()
        done = c.execute(I.update().where(I.c.id == id, I.c.status == from_status).values(
            status=to_status, status_changed_at=now, status_changed_by=actor, status_reference=reference)).rowcount
        if done != 1:
            return False
        c.execute(SC.insert().values(institution_id=id, from_status=from_status, to_status=to_status, actor=actor,
                                     reference=reference, at=now))
        return True

    def status_history(self, c: Connection, id: str) -> list:
        return list(c.execute(sa.select(SC).where(SC.c.institution_id == id).order_by(SC.c.id)))

    def local_admins(self, c: Connection, id: str) -> list:
        """Enabled accounts designated local administrator of the centre."""
        return list(c.execute(sa.select(A).where(A.c.institution_id == id, A.c.role == "local-admin",
                                                 A.c.enabled.is_(True)).order_by(A.c.name)))

    def consulted_centres(self, c: Connection, account_id: int) -> list[str]:
        """Centres whose security consultant this account is and which have no enabled local administrator."""
        admins = sa.select(A.c.id).where(A.c.institution_id == I.c.id, A.c.role == "local-admin",
                                         A.c.enabled.is_(True)).exists()
        return [r[0] for r in c.execute(sa.select(I.c.id).where(I.c.security_consultant_id == account_id, ~admins))]

    def configure_institution(self, c: Connection, id: str, **values) -> bool:
        return c.execute(I.update().where(I.c.id == id).values(**values)).rowcount == 1

    def institution(self, c: Connection, id: str):
        return c.execute(_Q_INSTITUTION, {"i": id}).first()

    def institutions(self, c: Connection, ids: Iterable[str] | None = None) -> list:
        q = sa.select(I).order_by(I.c.id)
        if ids is not None:
            q = q.where(I.c.id.in_(list(ids)))
        return list(c.execute(q))
