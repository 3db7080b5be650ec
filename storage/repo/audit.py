"""The audit record: events appended in their operation's transaction, sealed into one hash chain, and its check.

Appending (:meth:`AuditRepo.audit`) inserts the event in the caller's transaction, so the event commits or
rolls back with the operation it records (it is durable when the operation's commit returns). Sealing gives
committed events their place in the chain: the next ``seq`` (1, 2, 3... with no gap), the hash of the event
before and their own hash. One sealer at a time holds the head row (``audit_head``) and seals what it sees
unsealed, in id order, in batches. No writer ever waits for the head: before revision 0006 every append locked
it until its operation's transaction ended, and on PostgreSQL 1, 2 and 4 writer processes all got about the
same events/s, each waiting longer for the lock (bench/audit_bench.py; numbers in the branch's report).

- PostgreSQL: the append tries the head (``FOR UPDATE SKIP LOCKED``). Free: it seals, in the operation's
  transaction, its own event and everything committed before; once that commits, it looks again for events
  committed meanwhile (their writers found the head taken) and seals them in short transactions of its own.
  Taken: after its commit the writer tries once more (:meth:`seal_audit`); taken again, it returns at once,
  because the holder's look after its release sees every event committed before that release, and a try can
  only fail before it. A sealing transaction of its own commits without waiting for the disk: losing it in a
  crash loses no event (they are committed, unsealed) and leaves the chain whole (the head goes with it).
- SQLite: writers hold the database's write lock for their whole transaction anyway (``BEGIN IMMEDIATE``), so
  the append seals inline, in the same transaction: on SQLite no committed event is ever unsealed.
- Grouped (:mod:`storage.repo.batcher`: the record writes of many threads in one transaction): the events of
  the group are sealed once, at the group's end, just before its commit, by the same rule as a single append.
- Events left unsealed (a process stopped between its commit and its seal; a sealing that failed) are sealed
  by the next append from any process.

The hash of an event covers its predecessor's hash, its time, its fields and (since revision 0006) its id and
seq; events up to ``audit_head.v1_through`` were hashed before that, without id and seq, and keep that rule.

What :meth:`verify_audit_chain` proves. The chain is keyless: it shows that nobody edited the record without
recomputing every later hash. Walking sealed events by ``seq``: an edited event, a deleted or inserted sealed
event, a reordering, or removing the newest sealed events (the head row no longer matches) is found and named.
Unsealed events carry no hash yet: a row edited or deleted between its commit and its sealing (milliseconds
while the gateway runs) cannot be proven altered. Two checks narrow that window: events still unsealed after
``UNSEALED_BOUND`` seconds are reported as a fault (the sealer is not running), and ids missing between the
lowest and the highest are counted. On SQLite an id gap is tampering (ids are not skipped there); on PostgreSQL
a rolled-back operation and a server crash also skip ids, so there a gap is reported but proves nothing.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from storage import db
from storage.repo.base import _B, E, H, after_commit, as_utc, before_commit, utcnow
from storage.repo.batcher import GROUPED

log = logging.getLogger(__name__)

GENESIS = "0" * 64
#: events sealed per sealing transaction, and sealing transactions per :meth:`AuditRepo.seal_audit` call
SEAL_BATCH = 500
SEAL_ROUNDS = 20
#: an event still unsealed this many seconds after it was appended is a fault ``audit verify`` reports
UNSEALED_BOUND = 60.0

_Q_INSERT = E.insert()
_Q_UNSEALED = sa.select(E).where(E.c.seq.is_(None)).order_by(E.c.id).limit(_B("n"))
_Q_ANY_UNSEALED = sa.select(E.c.id).where(E.c.seq.is_(None)).limit(1)
_Q_SEAL = E.update().where(E.c.id == _B("eid")).values(seq=_B("s_seq"), prev_hash=_B("s_prev"), hash=_B("s_hash"))
_Q_HEAD = sa.select(H.c.last_id, H.c.hash).where(H.c.id == 1)
_Q_ASYNC_COMMIT = sa.text("SET LOCAL synchronous_commit TO OFF")
_Q_HEAD_UPDATE = H.update().where(H.c.id == 1).values(last_id=_B("last_id"), hash=_B("h"))


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


class ChainCheck(tuple):
    """What :meth:`AuditRepo.verify_audit_chain` found. Unpacks and compares as the pair callers have always
    used, ``(sealed events checked, id of the first broken event, -1 when the head row does not match the last
    event, or None)``, and tells beside the chain: ``unsealed`` events, ``stale`` ones (older than the bound;
    ``oldest_stale`` is the first one's id) and ``missing_ids`` (ids absent between the lowest and highest)."""

    def __new__(cls, checked: int, broken: int | None, *, unsealed: int = 0, stale: int = 0,
                oldest_stale: int | None = None, missing_ids: int = 0, dialect: str = ""):
        self = super().__new__(cls, (checked, broken))
        self.checked, self.broken, self.unsealed, self.stale = checked, broken, unsealed, stale
        self.oldest_stale, self.missing_ids, self.dialect = oldest_stale, missing_ids, dialect
        return self


def _event_hash(prev: str, ts: datetime, rec: AuditRecord, event_id: int | None = None,
                seq: int | None = None) -> str:
    body = {
        "prev": prev, "ts": ts.isoformat(), "actor": rec.actor, "protocol": rec.protocol, "source": rec.source,
        "action": rec.action, "outcome": rec.outcome, "institution": rec.institution_id, "path": rec.path,
        "document": rec.document_id, "bytes": rec.bytes, "detail": rec.detail,
    }
    if seq is not None:  # the rule since revision 0006 binds the event's id and place too
        body.update(id=event_id, seq=seq)
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _record(r) -> AuditRecord:
    return AuditRecord(r.action, r.outcome, r.actor, r.protocol, r.source, r.institution_id, r.path,
                       r.document_id, r.bytes, r.detail)


def _seal_batch(c: Connection, limit: int, *, skip_locked: bool, own_tx: bool = False) -> int | None:
    """Seal up to ``limit`` unsealed events visible to ``c`` in id order; None when another sealer holds the
    head. ``own_tx``: the transaction does nothing else (its commit may skip waiting for the disk)."""
    head = c.execute(_Q_HEAD.with_for_update(skip_locked=skip_locked)).first()
    if head is None:
        if c.execute(_Q_HEAD).first() is not None:
            return None  # locked by the sealer at work
        c.execute(H.insert().values(id=1, last_id=0, hash=GENESIS))
        head = c.execute(_Q_HEAD.with_for_update()).first()
    rows = c.execute(_Q_UNSEALED, {"n": limit}).all()
    if not rows:
        return 0
    if own_tx and c.dialect.name == "postgresql":
        # a seal lost in a crash loses no event (they are committed, unsealed) and leaves the chain whole (the
        # head row goes with it): this commit need not wait for the disk
        c.execute(_Q_ASYNC_COMMIT)
    seq, prev = head.last_id, head.hash
    params = []
    for r in rows:
        seq += 1
        h = _event_hash(prev, as_utc(r.ts), _record(r), r.id, seq)
        params.append({"eid": r.id, "s_seq": seq, "s_prev": prev, "s_hash": h})
        prev = h
    c.execute(_Q_SEAL, params)
    c.execute(_Q_HEAD_UPDATE, {"last_id": seq, "h": prev})
    return len(rows)


class AuditRepo:
    """Appending to, sealing and reading the audit record."""

    def audit(self, c: Connection, rec: AuditRecord) -> int:
        """Append one event in the caller's transaction; it is sealed into the chain when that commits (SQLite:
        in the same transaction). Returns the event's id."""
        event_id = c.execute(_Q_INSERT, {
            "ts": utcnow(), "actor": rec.actor, "protocol": rec.protocol, "source": rec.source,
            "action": rec.action, "outcome": rec.outcome, "institution_id": rec.institution_id, "path": rec.path,
            "document_id": rec.document_id, "bytes": rec.bytes, "detail": rec.detail}).inserted_primary_key[0]
        if c.info.get(GROUPED):  # one sealing for the whole group, at its end
            before_commit(c, self._seal_appended)
        else:
            self._seal_appended(c)
        return event_id

    def _seal_appended(self, c: Connection) -> None:
        """Seal what the transaction ``c`` appended, inside it (SQLite), or as soon as the head allows."""
        if c.dialect.name == "sqlite":  # the write lock is held anyway: seal at once
            while _seal_batch(c, SEAL_BATCH, skip_locked=False) == SEAL_BATCH:
                pass
            return
        sealed = _seal_batch(c, SEAL_BATCH, skip_locked=True)
        if sealed is None:  # another transaction holds the head: try again once this one committed
            after_commit(c, self.seal_audit)
        else:  # sealed here: once the head is released (commit or rollback), seal what others committed meanwhile
            after_commit(c, self._seal_after_release, also_on_rollback=True)

    def _seal_after_release(self, c: Connection) -> int:
        return self.seal_audit(c, released=True)

    def seal_audit(self, c: Connection | None = None, rounds: int = SEAL_ROUNDS, *, released: bool = False) -> int:
        """Seal committed events, unless another process is sealing (it will see them), on ``c`` (outside any
        transaction) or a connection of its own; ``released``: this connection has just released the head, so
        look for events first. Returns how many this call sealed. Never raises: an event left unsealed is sealed
        by the next call, from any process."""
        if c is None:
            with db.write_connection(self.engine) as own:
                return self.seal_audit(own, rounds, released=released)
        total = 0
        try:
            for _ in range(rounds):
                if released:
                    with db.write_turn(self.engine), c.begin():  # anything committed while this process held the head?
                        if c.execute(_Q_ANY_UNSEALED).first() is None:
                            break
                with db.write_turn(self.engine), c.begin():
                    n = _seal_batch(c, SEAL_BATCH, skip_locked=True, own_tx=True)
                if n is None:
                    break
                total += n
                released = n < SEAL_BATCH
        except Exception:  # the operation is committed; its event waits for the next sealer
            log.warning("sealing the audit record failed; the next write retries", exc_info=True)
        return total

    def audit_events(self, c: Connection, *, institution_id: str | None = None, limit: int = 100,
                     action: str | None = None) -> list:
        """The newest events first (by id: sealed or not yet)."""
        q = sa.select(E).order_by(E.c.id.desc()).limit(limit)
        if institution_id:
            q = q.where(E.c.institution_id == institution_id)
        if action:
            q = q.where(E.c.action == action)
        return list(c.execute(q))

    def verify_audit_chain(self, c: Connection, *, bound: float = UNSEALED_BOUND) -> ChainCheck:
        """Walk the sealed events by chain position and look at the unsealed ones (see the module docstring)."""
        head = c.execute(sa.select(H.c.last_id, H.c.hash, H.c.v1_through).where(H.c.id == 1)).first()
        v1_through = head.v1_through if head is not None else 0
        prev, n, broken = GENESIS, 0, None
        for r in c.execute(sa.select(E).where(E.c.seq.is_not(None)).order_by(E.c.seq)):
            h = (_event_hash(prev, as_utc(r.ts), _record(r)) if r.seq <= v1_through
                 else _event_hash(prev, as_utc(r.ts), _record(r), r.id, r.seq))
            if r.seq != n + 1 or r.prev_hash != prev or r.hash != h:
                broken = r.id
                break
            prev = r.hash
            n += 1
        if broken is None and head is not None and (head.hash != prev or head.last_id != n):
            broken = -1
        unsealed = c.execute(sa.select(sa.func.count()).where(E.c.seq.is_(None))).scalar()
        stale, oldest_stale = c.execute(sa.select(sa.func.count(), sa.func.min(E.c.id)).where(
            E.c.seq.is_(None), E.c.ts < utcnow() - timedelta(seconds=bound))).one()
        total, lo, hi = c.execute(sa.select(sa.func.count(), sa.func.min(E.c.id), sa.func.max(E.c.id))).one()
        return ChainCheck(n, broken, unsealed=unsealed, stale=stale, oldest_stale=oldest_stale,
                          missing_ids=(hi - lo + 1 - total) if total else 0, dialect=c.dialect.name)
