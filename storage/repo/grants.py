"""Grants: which account may reach which centre's mailbox, with which rights, until when."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from storage.repo.base import A, G, _B, utcnow

_Q_GRANTS = sa.select(G.c.institution_id, G.c.can_remove, G.c.can_write, G.c.expires_at).where(
    G.c.account_id == _B("a"))


class GrantsRepo:
    """Access of accounts to centres, seen from the account and from the centre."""

    def grants_of(self, c: Connection, account_id: int) -> list:
        return list(c.execute(_Q_GRANTS, {"a": account_id}))

    def set_grant(self, c: Connection, account_id: int, institution_id: str, can_remove: bool, granted_by: str,
                  can_write: bool = False, expires_at: datetime | None = None) -> None:
        existing = c.execute(sa.select(G.c.id).where(G.c.account_id == account_id,
                                                     G.c.institution_id == institution_id)).scalar()
        if existing is None:
            c.execute(G.insert().values(account_id=account_id, institution_id=institution_id, can_remove=can_remove,
                                        can_write=can_write, granted_by=granted_by, created_at=utcnow(),
                                        expires_at=expires_at))
        else:
            c.execute(G.update().where(G.c.id == existing).values(can_remove=can_remove, can_write=can_write,
                                                                  granted_by=granted_by, expires_at=expires_at))

    def revoke_grant(self, c: Connection, account_id: int, institution_id: str) -> bool:
        return c.execute(G.delete().where(G.c.account_id == account_id,
                                          G.c.institution_id == institution_id)).rowcount > 0

    def grants_on(self, c: Connection, institution_id: str) -> list:
        """Who has access to the centre: account name, display name, rights, since, by whom, until."""
        return list(c.execute(
            sa.select(A.c.name, A.c.display_name, A.c.role, A.c.enabled, G.c.can_remove, G.c.can_write,
                      G.c.granted_by, G.c.created_at, G.c.expires_at)
            .join(A, A.c.id == G.c.account_id).where(G.c.institution_id == institution_id).order_by(A.c.name)))

    def expired_grants(self, c: Connection, now: datetime) -> list:
        return list(c.execute(sa.select(G.c.id, G.c.institution_id, A.c.name).join(A, A.c.id == G.c.account_id)
                              .where(G.c.expires_at.is_not(None), G.c.expires_at <= now)))

    def delete_grant(self, c: Connection, grant_id: int) -> bool:
        return c.execute(G.delete().where(G.c.id == grant_id)).rowcount == 1
