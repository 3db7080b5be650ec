"""The audit trail: an append-only chain of events, each hashed over the previous one, and its check."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from storage.repo.base import E, H, _B, as_utc, utcnow

GENESIS = "0" * 64

_Q_AUDIT_HEAD = sa.select(H.c.hash).where(H.c.id == 1).with_for_update()
_Q_AUDIT_INSERT = E.insert()
_Q_AUDIT_HEAD_UPDATE = H.update().where(H.c.id == 1).values(last_id=_B("last_id"), hash=_B("h"))


@dataclass(frozen=True, slots=True)
class AuditRecord:
    action: str
    outcome: str
    actor: str = ""
    protocol: str = ""
    source: str = ""
    institution_id: str | None = None
    path: str = ""
    document_id: int | None = None
    bytes: int | None = None
    detail: str = ""


def _event_hash(prev: str, ts: datetime, rec: AuditRecord) -> str:
    body = json.dumps({
        "prev": prev, "ts": ts.isoformat(), "actor": rec.actor, "protocol": rec.protocol, "source": rec.source,
        "action": rec.action, "outcome": rec.outcome, "institution": rec.institution_id, "path": rec.path,
        "document": rec.document_id, "bytes": rec.bytes, "detail": rec.detail,
    }, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


class AuditRepo:
    """Appending to and reading the audit chain (inside the caller's transaction)."""

    def audit(self, c: Connection, rec: AuditRecord) -> int:
        """Append one event to the hash chain (inside the caller's transaction)."""
        head = c.execute(_Q_AUDIT_HEAD).scalar()
        if head is None:
            c.execute(H.insert().values(id=1, last_id=0, hash=GENESIS))
            head = GENESIS
        ts = utcnow()
        h = _event_hash(head, ts, rec)
        event_id = c.execute(_Q_AUDIT_INSERT, {
            "ts": ts, "actor": rec.actor, "protocol": rec.protocol, "source": rec.source, "action": rec.action,
            "outcome": rec.outcome, "institution_id": rec.institution_id, "path": rec.path,
            "document_id": rec.document_id, "bytes": rec.bytes, "detail": rec.detail, "prev_hash": head,
            "hash": h}).inserted_primary_key[0]
        c.execute(_Q_AUDIT_HEAD_UPDATE, {"last_id": event_id, "h": h})
        return event_id

    def audit_events(self, c: Connection, *, institution_id: str | None = None, limit: int = 100,
                     action: str | None = None) -> list:
        q = sa.select(E).order_by(E.c.id.desc()).limit(limit)
        if institution_id:
            q = q.where(E.c.institution_id == institution_id)
        if action:
            q = q.where(E.c.action == action)
        return list(c.execute(q))

    def verify_audit_chain(self, c: Connection) -> tuple[int, int | None]:
        """Walk the chain; returns (events checked, id of the first broken event or None)."""
        prev = GENESIS
        n = 0
        for r in c.execute(sa.select(E).order_by(E.c.id)):
            rec = AuditRecord(r.action, r.outcome, r.actor, r.protocol, r.source, r.institution_id, r.path,
                              r.document_id, r.bytes, r.detail)
            if r.prev_hash != prev or _event_hash(prev, as_utc(r.ts), rec) != r.hash:
                return n, r.id
            prev = r.hash
            n += 1
        head = c.execute(sa.select(H.c.hash).where(H.c.id == 1)).scalar()
        if head is not None and head != prev:
            return n, -1
        return n, None
