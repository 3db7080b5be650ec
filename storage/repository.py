"""The metadata repository: every row the gateway reads or writes goes through here.

SQLAlchemy Core statements only (bound parameters, never string-built SQL). The same code runs on SQLite and
PostgreSQL. Methods that change state take an open connection from :meth:`Repository.write` so that a state
change and its audit event commit together.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from storage import db
from storage.errors import Conflict
from storage.models import (Account, AuditEvent, AuditHead, ClientCertificate, DevicePassword, Document, Folder, Grant,
                            Institution, LoginFailure, OutboxMessage, SSHKey, StatusChange, TokenCard, TokenChallenge,
                            TokenCode)
from storage.models import DavLock

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

GENESIS = "0" * 64


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class DocumentRow:
    id: int
    institution_id: str
    folder: str
    name: str
    state: str
    blob_id: str
    size: int
    sha256: str
    key_id: str
    wrapped_key: bytes
    content_type: str
    uploaded_by: int
    created_at: datetime
    committed_at: datetime | None
    archived_at: datetime | None
    first_fetched_at: datetime | None

    @classmethod
    def from_row(cls, r) -> "DocumentRow":
        return cls(r.id, r.institution_id, r.folder, r.name, r.state, r.blob_id, r.size, r.sha256, r.key_id,
                   bytes(r.wrapped_key or b""), r.content_type, r.uploaded_by, as_utc(r.created_at),
                   as_utc(r.committed_at), as_utc(r.archived_at), as_utc(r.first_fetched_at))


_DOC_COLS = (D.c.id, D.c.institution_id, D.c.folder, D.c.name, D.c.state, D.c.blob_id, D.c.size, D.c.sha256,
             D.c.key_id, D.c.wrapped_key, D.c.content_type, D.c.uploaded_by, D.c.created_at, D.c.committed_at,
             D.c.archived_at, D.c.first_fetched_at)


# Hot statements, built once with bound parameters: building a Core statement per call (and generating its
# cache key) cost more than running it on SQLite.
_B = sa.bindparam
_Q_VISIBLE_DOC = sa.select(*_DOC_COLS).where(D.c.institution_id == _B("i"), D.c.folder == _B("f"),
                                             D.c.name == _B("n"), D.c.state.in_(("committed", "staged")))
_Q_LISTING = sa.select(D.c.id, D.c.name, D.c.size, D.c.committed_at, D.c.sha256, D.c.content_type, D.c.state,
                       D.c.uploaded_by).where(D.c.institution_id == _B("i"), D.c.folder == _B("f"),
                                              D.c.state.in_(("committed", "staged")))
_Q_FOLDER = sa.select(F).where(F.c.institution_id == _B("i"), F.c.path == _B("p"))
_Q_ACCOUNT = sa.select(A).where(A.c.id == _B("a"))
_Q_ACCOUNT_BY_NAME = sa.select(A).where(A.c.name == _B("n"))
_Q_DIRECTORY_ACCOUNTS_BY_LOWER_NAME = sa.select(A).where(A.c.source == "ldap", sa.func.lower(A.c.name) == _B("n"))
_Q_GRANTS = sa.select(G.c.institution_id, G.c.can_remove, G.c.can_write, G.c.expires_at).where(
    G.c.account_id == _B("a"))
_Q_INSTITUTION = sa.select(I).where(I.c.id == _B("i"))
_Q_AUDIT_HEAD = sa.select(H.c.hash).where(H.c.id == 1).with_for_update()
_Q_AUDIT_INSERT = E.insert()
_Q_AUDIT_HEAD_UPDATE = H.update().where(H.c.id == 1).values(last_id=_B("last_id"), hash=_B("h"))
_Q_MARK_FETCHED = (D.update().where(D.c.id == _B("d"), D.c.first_fetched_at.is_(None))
                   .values(first_fetched_at=_B("t"), first_fetched_by=_B("by")))


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


class Repository:
    def __init__(self, engine: Engine):
        self.engine = engine

    # -- transactions ----------------------------------------------------------------------------------------
    def write(self):
        return db.write_tx(self.engine)

    def read(self):
        return db.read_tx(self.engine)

    def initialize(self) -> None:
        """Migrate the schema to the newest revision and make sure the audit chain has its head row."""
        db.migrate(self.engine)
        with self.write() as c:
            if c.execute(sa.select(H.c.id).where(H.c.id == 1)).first() is None:
                c.execute(H.insert().values(id=1, last_id=0, hash=GENESIS))

    # -- institutions ----------------------------------------------------------------------------------------
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

    def archived_in(self, c: Connection, institution_id: str, limit: int = 500) -> list:
        """Archived documents of a centre, newest first: names and dates only."""
        return list(c.execute(sa.select(D.c.id, D.c.folder, D.c.name, D.c.size, D.c.committed_at, D.c.archived_at,
                                        D.c.archived_by)
                              .where(D.c.institution_id == institution_id, D.c.state == "archived")
                              .order_by(D.c.archived_at.desc(), D.c.id.desc()).limit(limit)))

    # -- digests and the outbox ----------------------------------------------------------------------------------
    def digest_candidates(self, c: Connection) -> list:
        """Active centres with contacts and at least one document newer than their digest cursor."""
        newer = sa.select(D.c.id).where(D.c.institution_id == I.c.id, D.c.state == "committed",
                                        D.c.id > I.c.digest_cursor).exists()
        return list(c.execute(sa.select(I.c.id, I.c.digest_cursor, I.c.last_digest_at)
                              .where(I.c.status == "active", I.c.contacts != "", newer)))

    def documents_after(self, c: Connection, institution_id: str, cursor: int, limit: int = 1000) -> list:
        return list(c.execute(sa.select(D.c.id, D.c.folder, D.c.name, D.c.size, D.c.committed_at)
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

    def configure_institution(self, c: Connection, id: str, **values) -> bool:
        return c.execute(I.update().where(I.c.id == id).values(**values)).rowcount == 1

    def institution(self, c: Connection, id: str):
        return c.execute(_Q_INSTITUTION, {"i": id}).first()

    def institutions(self, c: Connection, ids: Iterable[str] | None = None) -> list:
        q = sa.select(I).order_by(I.c.id)
        if ids is not None:
            q = q.where(I.c.id.in_(list(ids)))
        return list(c.execute(q))

    # -- accounts --------------------------------------------------------------------------------------------
    def add_account(self, c: Connection, name: str, role: str, institution_id: str | None,
                    password_hash: str | None = None, display_name: str = "", **extra) -> int:
        try:
            with c.begin_nested():
                return c.execute(A.insert().values(name=name, role=role, institution_id=institution_id,
                                                   password_hash=password_hash, display_name=display_name,
                                                   email="", enabled=True, created_at=utcnow(), **extra)
                                 ).inserted_primary_key[0]
        except IntegrityError:
            raise Conflict(f"account {name} already exists") from None

    def account_by_name(self, c: Connection, name: str):
        return c.execute(_Q_ACCOUNT_BY_NAME, {"n": name}).first()

    def directory_accounts_named(self, c: Connection, name: str) -> list:
        """Directory (LDAP) accounts whose name is ``name`` in another case (ASCII case-insensitive candidates;
        the caller applies the directory's own folding)."""
        return list(c.execute(_Q_DIRECTORY_ACCOUNTS_BY_LOWER_NAME, {"n": name.lower()}))

    def account(self, c: Connection, account_id: int):
        return c.execute(_Q_ACCOUNT, {"a": account_id}).first()

    def accounts(self, c: Connection) -> list:
        return list(c.execute(sa.select(A).order_by(A.c.name)))

    def add_ssh_key(self, c: Connection, account_id: int, fingerprint: str, public_key: str, comment: str) -> None:
        try:
            with c.begin_nested():
                c.execute(K.insert().values(account_id=account_id, fingerprint=fingerprint, public_key=public_key,
                                            comment=comment, created_at=utcnow()))
        except IntegrityError:
            raise Conflict(f"SSH key {fingerprint} is already registered") from None

    def account_for_key(self, c: Connection, fingerprint: str):
        return c.execute(sa.select(A).join(K, K.c.account_id == A.c.id).where(K.c.fingerprint == fingerprint)).first()

    def add_client_certificate(self, c: Connection, account_id: int, fingerprint: str, pem: str, subject: str) -> None:
        try:
            with c.begin_nested():
                c.execute(CC.insert().values(account_id=account_id, fingerprint=fingerprint, pem=pem, subject=subject,
                                             created_at=utcnow()))
        except IntegrityError:
            raise Conflict(f"certificate {fingerprint} is already registered") from None

    def account_for_certificate(self, c: Connection, fingerprint: str):
        return c.execute(sa.select(A).join(CC, CC.c.account_id == A.c.id).where(CC.c.fingerprint == fingerprint)).first()

    def client_certificate_pems(self, c: Connection) -> list[str]:
        return [r.pem for r in c.execute(sa.select(CC.c.pem))]

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

    # -- folders ---------------------------------------------------------------------------------------------
    def folder_exists(self, c: Connection, institution_id: str, path: str) -> bool:
        if path == "":
            return True
        return c.execute(_Q_FOLDER, {"i": institution_id, "p": path}).first() is not None

    def folder_row(self, c: Connection, institution_id: str, path: str):
        return c.execute(_Q_FOLDER, {"i": institution_id, "p": path}).first()

    def create_folders(self, c: Connection, institution_id: str, path: str, created_by: str) -> bool:
        """Create ``path`` and its missing parents; returns False if ``path`` already existed."""
        parts = path.split("/")
        created = False
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            if not self.folder_exists(c, institution_id, sub):
                try:
                    with c.begin_nested():
                        c.execute(F.insert().values(institution_id=institution_id, path=sub, created_by=created_by,
                                                    created_at=utcnow()))
                    created = created or i == len(parts)
                except IntegrityError:  # created concurrently: fine
                    pass
        return created

    def child_folders(self, c: Connection, institution_id: str, parent: str) -> list:
        """Folders directly below ``parent`` ("" = top level)."""
        q = sa.select(F.c.path, F.c.created_at).where(F.c.institution_id == institution_id)
        if parent:
            q = q.where(F.c.path.startswith(parent + "/", autoescape=True))
        rows = c.execute(q).all()
        depth = 0 if not parent else parent.count("/") + 1
        return [r for r in rows if r.path.count("/") == depth]

    def move_tree(self, c: Connection, institution_id: str, src: str, dst: str) -> None:
        """Rename folder ``src`` (and everything below it) to ``dst``, documents included."""
        rows = c.execute(sa.select(F.c.id, F.c.path).where(F.c.institution_id == institution_id, sa.or_(
            F.c.path == src, F.c.path.startswith(src + "/", autoescape=True)))).all()
        for r in rows:
            c.execute(F.update().where(F.c.id == r.id).values(path=dst + r.path[len(src):]))
        docs = c.execute(sa.select(D.c.id, D.c.folder).where(D.c.institution_id == institution_id, sa.or_(
            D.c.folder == src, D.c.folder.startswith(src + "/", autoescape=True)))).all()
        for r in docs:
            c.execute(D.update().where(D.c.id == r.id).values(folder=dst + r.folder[len(src):]))

    def move_document(self, c: Connection, document_id: int, folder: str, name: str) -> None:
        try:
            with c.begin_nested():
                c.execute(D.update().where(D.c.id == document_id).values(folder=folder, name=name))
        except IntegrityError:
            raise Conflict("name taken") from None

    def folders_below(self, c: Connection, institution_id: str, path: str) -> list[str]:
        return [r.path for r in c.execute(sa.select(F.c.path).where(
            F.c.institution_id == institution_id, F.c.path.startswith(path + "/", autoescape=True)))]

    def documents_below(self, c: Connection, institution_id: str, path: str) -> list[DocumentRow]:
        """Visible documents in folder ``path`` and every folder below it."""
        q = sa.select(*_DOC_COLS).where(D.c.institution_id == institution_id, D.c.state == "committed", sa.or_(
            D.c.folder == path, D.c.folder.startswith(path + "/", autoescape=True)))
        return [DocumentRow.from_row(r) for r in c.execute(q)]

    def delete_folder(self, c: Connection, institution_id: str, path: str) -> None:
        c.execute(F.delete().where(F.c.institution_id == institution_id, F.c.path == path))

    # -- documents -------------------------------------------------------------------------------------------
    def visible_document(self, c: Connection, institution_id: str, folder: str, name: str) -> DocumentRow | None:
        r = c.execute(_Q_VISIBLE_DOC, {"i": institution_id, "f": folder, "n": name}).first()
        return DocumentRow.from_row(r) if r else None

    def document(self, c: Connection, document_id: int) -> DocumentRow | None:
        r = c.execute(sa.select(*_DOC_COLS).where(D.c.id == document_id)).first()
        return DocumentRow.from_row(r) if r else None

    def documents_in(self, c: Connection, institution_id: str, folder: str,
                     uploaded_by: int | None = None) -> list[DocumentRow]:
        q = sa.select(*_DOC_COLS).where(D.c.institution_id == institution_id, D.c.folder == folder,
                                        D.c.state.in_(("committed", "staged")))
        if uploaded_by is not None:
            q = q.where(D.c.uploaded_by == uploaded_by)
        return [DocumentRow.from_row(r) for r in c.execute(q)]

    def listing(self, c: Connection, institution_id: str, folder: str) -> list:
        """The columns a directory listing shows, for every visible document of a folder (no key material, no
        per-row objects: a 10,000-document folder is listed often)."""
        return c.execute(_Q_LISTING, {"i": institution_id, "f": folder}).all()

    def has_children(self, c: Connection, institution_id: str, folder: str) -> bool:
        if c.execute(sa.select(D.c.id).where(D.c.institution_id == institution_id, D.c.folder == folder,
                                             D.c.state.in_(("committed", "staged"))).limit(1)).first():
            return True
        return c.execute(sa.select(F.c.id).where(F.c.institution_id == institution_id,
                                                 F.c.path.startswith(folder + "/", autoescape=True)).limit(1)).first() is not None

    def create_pending(self, c: Connection, *, institution_id: str, folder: str, name: str, blob_id: str,
                       uploaded_by: int, node_id: str) -> int:
        return c.execute(D.insert().values(institution_id=institution_id, folder=folder, name=name, state="pending",
                                           blob_id=blob_id, size=0, sha256="", key_id="", wrapped_key=b"",
                                           content_type="", uploaded_by=uploaded_by, node_id=node_id,
                                           created_at=utcnow())).inserted_primary_key[0]

    def finish_document(self, c: Connection, document_id: int, *, state: str, size: int, sha256: str, key_id: str,
                        wrapped_key: bytes, content_type: str, folder: str | None = None,
                        name: str | None = None) -> None:
        """pending -> committed|staged. Raises Conflict when the name is taken by a visible document."""
        values = dict(state=state, size=size, sha256=sha256, key_id=key_id, wrapped_key=wrapped_key,
                      content_type=content_type, committed_at=utcnow())
        if folder is not None:
            values["folder"] = folder
        if name is not None:
            values["name"] = name
        try:
            with c.begin_nested():
                n = c.execute(D.update().where(D.c.id == document_id, D.c.state == "pending").values(**values)).rowcount
        except IntegrityError:
            raise Conflict("name taken") from None
        if n != 1:
            raise Conflict("upload is no longer pending")

    def promote_staged(self, c: Connection, document_id: int, folder: str, name: str) -> None:
        try:
            with c.begin_nested():
                n = c.execute(D.update().where(D.c.id == document_id, D.c.state == "staged").values(
                    state="committed", folder=folder, name=name, committed_at=utcnow())).rowcount
        except IntegrityError:
            raise Conflict("name taken") from None
        if n != 1:
            raise Conflict("staged upload is gone")

    def set_state(self, c: Connection, document_id: int, from_states: Sequence[str], to_state: str, **extra) -> bool:
        return c.execute(D.update().where(D.c.id == document_id, D.c.state.in_(list(from_states)))
                         .values(state=to_state, **extra)).rowcount == 1

    def archived_documents(self, c: Connection, institution_id: str, folder: str, name: str) -> list[DocumentRow]:
        q = (sa.select(*_DOC_COLS).where(D.c.institution_id == institution_id, D.c.folder == folder,
                                         D.c.name == name, D.c.state == "archived").order_by(D.c.archived_at.desc()))
        return [DocumentRow.from_row(r) for r in c.execute(q)]

    def same_content_exists(self, c: Connection, institution_id: str, folder: str, name: str, sha256: str,
                            size: int) -> bool:
        """An identical document (same name and content) was delivered before, visible or archived."""
        return c.execute(sa.select(D.c.id).where(
            D.c.institution_id == institution_id, D.c.folder == folder, D.c.name == name, D.c.sha256 == sha256,
            D.c.size == size, D.c.state.in_(("committed", "archived"))).limit(1)).first() is not None

    def mark_fetched(self, c: Connection, document_id: int, by: str) -> None:
        c.execute(_Q_MARK_FETCHED, {"d": document_id, "t": utcnow(), "by": by})

    def pending_of_node(self, c: Connection, node_id: str) -> list[tuple[int, str]]:
        return [(r.id, r.blob_id) for r in c.execute(sa.select(D.c.id, D.c.blob_id).where(
            D.c.state == "pending", D.c.node_id == node_id))]

    def stale(self, c: Connection, state: str, before: datetime) -> list[tuple[int, str]]:
        return [(r.id, r.blob_id) for r in c.execute(sa.select(D.c.id, D.c.blob_id).where(
            D.c.state == state, D.c.created_at < before))]

    def live_blob_ids(self, c: Connection) -> set[str]:
        return {r[0] for r in c.execute(sa.select(D.c.blob_id).where(D.c.state != "aborted"))}

    # -- WebDAV locks (their rows are written by gateway.davstate) ----------------------------------------------
    def dav_locks_held(self, c: Connection, principal: str, now: float) -> int:
        """Live WebDAV locks held by the account named ``principal`` (kept in each lock's JSON record; locks
        are few, every account's being bounded). A negative expiry never ends."""
        rows = c.execute(sa.select(DL.c.data).where(sa.or_(DL.c.expire < 0, DL.c.expire >= now)))
        return sum(1 for r in rows if json.loads(r.data).get("principal") == principal)

    # -- people: token cards, challenges, device passwords ----------------------------------------------------
    def set_account(self, c: Connection, account_id: int, **values) -> None:
        c.execute(A.update().where(A.c.id == account_id).values(**values))

    def revoke_token_cards(self, c: Connection, account_id: int) -> int:
        return c.execute(TC.update().where(TC.c.account_id == account_id, TC.c.revoked_at.is_(None))
                         .values(revoked_at=utcnow())).rowcount

    def add_token_card(self, c: Connection, account_id: int, code_hashes: dict[int, str]) -> int:
        card = c.execute(TC.insert().values(account_id=account_id, created_at=utcnow())).inserted_primary_key[0]
        for number, h in code_hashes.items():
            c.execute(TK.insert().values(card_id=card, number=number, code_hash=h))
        c.execute(TCH.delete().where(TCH.c.account_id == account_id))
        return card

    def token_code_hash(self, c: Connection, account_id: int, number: int) -> str | None:
        return c.execute(sa.select(TK.c.code_hash).join(TC, TC.c.id == TK.c.card_id).where(
            TC.c.account_id == account_id, TC.c.revoked_at.is_(None), TK.c.number == number)).scalar()

    def has_token_card(self, c: Connection, account_id: int) -> bool:
        return c.execute(sa.select(TC.c.id).where(TC.c.account_id == account_id, TC.c.revoked_at.is_(None))
                         .limit(1)).first() is not None

    def token_challenge(self, c: Connection, account_id: int):
        return c.execute(sa.select(TCH.c.number, TCH.c.expires_at).where(TCH.c.account_id == account_id)).first()

    def set_token_challenge(self, c: Connection, account_id: int, number: int, expires_at: float) -> None:
        c.execute(TCH.delete().where(TCH.c.account_id == account_id))
        c.execute(TCH.insert().values(account_id=account_id, number=number, expires_at=expires_at))

    def clear_token_challenge(self, c: Connection, account_id: int, number: int | None = None) -> bool:
        q = TCH.delete().where(TCH.c.account_id == account_id)
        if number is not None:
            q = q.where(TCH.c.number == number)
        return c.execute(q).rowcount > 0

    def add_device_password(self, c: Connection, account_id: int, label: str, lookup: str, secret_hash: str,
                            expires_at: datetime, kind: str = "webdav") -> int:
        return c.execute(DP.insert().values(account_id=account_id, label=label, lookup=lookup, kind=kind,
                                            secret_hash=secret_hash, created_at=utcnow(), expires_at=expires_at)
                         ).inserted_primary_key[0]

    def device_passwords(self, c: Connection, account_id: int | None, lookup: str | None = None,
                         kind: str = "webdav") -> list:
        """Device passwords ("webdav") or API tokens ("api") of an account, or (account None) by lookup."""
        q = sa.select(DP).where(DP.c.kind == kind).order_by(DP.c.id)
        if account_id is not None:
            q = q.where(DP.c.account_id == account_id)
        if lookup is not None:
            q = q.where(DP.c.lookup == lookup)
        return list(c.execute(q))

    def revoke_device_password(self, c: Connection, account_id: int, device_id: int, kind: str = "webdav") -> bool:
        return c.execute(DP.update().where(DP.c.id == device_id, DP.c.account_id == account_id, DP.c.kind == kind,
                                           DP.c.revoked_at.is_(None)).values(revoked_at=utcnow())).rowcount == 1

    def touch_device_password(self, c: Connection, device_id: int) -> None:
        c.execute(DP.update().where(DP.c.id == device_id).values(last_used_at=utcnow()))

    # -- failed logins -----------------------------------------------------------------------------------------
    def failure(self, c: Connection, key: str):
        return c.execute(sa.select(LF).where(LF.c.key == key)).first()

    def failures(self, c: Connection, keys: Iterable[str]) -> dict:
        keys = list(keys)
        return {r.key: r for r in c.execute(sa.select(LF).where(LF.c.key.in_(keys)))} if keys else {}

    def record_failure(self, c: Connection, key: str, now: float, window: float, ban_after: int,
                       ban_seconds: float, weight: int = 1) -> tuple[int, float]:
        """Add ``weight`` to ``key``'s count; returns (count in the window, banned until). The count starts again
        after ``window`` seconds, and after a ban has run out. Reaching ``ban_after`` (0: never) bans the key for
        ``ban_seconds``; a ban that is running is never extended."""
        row = c.execute(sa.select(LF).where(LF.c.key == key).with_for_update()).first()
        served = row is not None and 0 < row.banned_until <= now
        if row is None or now - row.first_at > window or served:
            count, first = weight, now
        else:
            count, first = row.count + weight, row.first_at
        banned = row.banned_until if row is not None and row.banned_until > now else 0.0
        if not banned and ban_after and count >= ban_after:
            banned = now + ban_seconds
        if row is None:
            try:
                with c.begin_nested():
                    c.execute(LF.insert().values(key=key, count=count, first_at=first, last_at=now, banned_until=banned))
            except IntegrityError:  # a concurrent first failure: count on top of it
                return self.record_failure(c, key, now, window, ban_after, ban_seconds, weight)
        else:
            c.execute(LF.update().where(LF.c.key == key).values(count=count, first_at=first, last_at=now,
                                                                banned_until=banned))
        return count, banned

    def clear_failures(self, c: Connection, key: str) -> bool:
        return c.execute(LF.delete().where(LF.c.key == key)).rowcount > 0

    def clear_failures_under(self, c: Connection, prefix: str) -> int:
        return c.execute(LF.delete().where(LF.c.key.startswith(prefix, autoescape=True))).rowcount

    def failure_rows(self, c: Connection, prefixes: Sequence[str], now: float, counting_since: float | None = None
                     ) -> list:
        """Rows under these key prefixes banned at ``now`` (and, with ``counting_since``, those whose last failure
        came after it), the longest ban first."""
        live = LF.c.banned_until > now
        if counting_since is not None:
            live = sa.or_(live, LF.c.last_at > counting_since)
        return list(c.execute(sa.select(LF).where(
            sa.or_(*[LF.c.key.startswith(p, autoescape=True) for p in prefixes]), live)
            .order_by(LF.c.banned_until.desc(), LF.c.key)))

    def purge_failures(self, c: Connection, before: float) -> int:
        """Forget counts whose last failure and ban both ended before ``before``."""
        return c.execute(LF.delete().where(LF.c.last_at < before, LF.c.banned_until < before)).rowcount

    # -- audit -----------------------------------------------------------------------------------------------
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

