"""Notifications: the digest cursors of the centres and the outbox of mail messages that processes claim,
send and retry (delivering the mail is not done here)."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from storage.repo.base import D, I, OB, utcnow


class NotificationsRepo:
    """Digest cursors (compare-and-set) and the outbox (claimed by one process at a time)."""

    def digest_candidates(self, c: Connection) -> list:
        """Active centres with contacts and at least one document newer than their digest cursor."""
        newer = sa.select(D.c.id).where(D.c.institution_id == I.c.id, D.c.state == "committed",
                                        D.c.id > I.c.digest_cursor).exists()
        return list(c.execute(sa.select(I.c.id, I.c.digest_cursor, I.c.last_digest_at)
                              .where(I.c.status == "active", I.c.contacts != "", newer)))

    def documents_after(self, c: Connection, institution_id: str, cursor: int, limit: int = 1000) -> list:
        return list(c.execute(sa.select(D.c.id, D.c.folder, D.c.name, D.c.size, D.c.committed_at, D.c.kind,
                                        D.c.legislation)
                              .where(D.c.institution_id == institution_id, D.c.state == "committed",
                                     D.c.id > cursor).order_by(D.c.id).limit(limit)))

    def newest_document_id(self, c: Connection, institution_id: str) -> int:
        return c.execute(sa.select(sa.func.max(D.c.id)).where(D.c.institution_id == institution_id)).scalar() or 0

    def advance_digest(self, c: Connection, institution_id: str, old_cursor: int, new_cursor: int,
                       at: datetime) -> bool:
        """Compare-and-set: only one process moves a centre's cursor from ``old_cursor``."""
        return c.execute(I.update().where(I.c.id == institution_id, I.c.digest_cursor == old_cursor)
                         .values(digest_cursor=new_cursor, last_digest_at=at)).rowcount == 1

    def enqueue(self, c: Connection, kind: str, institution_id: str | None, recipients: str, subject: str,
                body: str) -> int:
        return c.execute(OB.insert().values(kind=kind, institution_id=institution_id, recipients=recipients,
                                            subject=subject, body=body, created_at=utcnow(), attempts=0,
                                            next_attempt_at=0.0, claimed_by="", claimed_until=0.0, last_error="")
                         ).inserted_primary_key[0]

    def due_messages(self, c: Connection, now: float, limit: int = 20) -> list[int]:
        return [r[0] for r in c.execute(sa.select(OB.c.id).where(OB.c.sent_at.is_(None), OB.c.next_attempt_at <= now,
                                                                OB.c.claimed_until <= now).order_by(OB.c.id)
                                        .limit(limit))]

    def claim_message(self, c: Connection, message_id: int, node: str, now: float, until: float):
        """The message, if this process won it (unsent, due, not claimed by a live process)."""
        won = c.execute(OB.update().where(OB.c.id == message_id, OB.c.sent_at.is_(None), OB.c.next_attempt_at <= now,
                                          OB.c.claimed_until <= now)
                        .values(claimed_by=node, claimed_until=until)).rowcount == 1
        return c.execute(sa.select(OB).where(OB.c.id == message_id)).first() if won else None

    def message_sent(self, c: Connection, message_id: int) -> None:
        c.execute(OB.update().where(OB.c.id == message_id).values(sent_at=utcnow(), claimed_until=0.0,
                                                                  attempts=OB.c.attempts + 1, last_error=""))

    def message_failed(self, c: Connection, message_id: int, next_attempt_at: float, error: str) -> None:
        c.execute(OB.update().where(OB.c.id == message_id).values(
            attempts=OB.c.attempts + 1, next_attempt_at=next_attempt_at, claimed_until=0.0, last_error=error[:500]))

    def outbox(self, c: Connection, institution_id: str | None = None, limit: int = 100) -> list:
        q = sa.select(OB).order_by(OB.c.id.desc()).limit(limit)
        if institution_id is not None:
            q = q.where(OB.c.institution_id == institution_id)
        return list(c.execute(q))
