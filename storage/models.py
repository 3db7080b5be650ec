"""SQLAlchemy 2 models: the metadata of institutions, accounts, grants, folders, documents and the audit record.

Schema changes go through Alembic (``storage/migrations``); ``metadata`` here is what the migrations must match.
"""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from sqlalchemy import (BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, LargeBinary, MetaData, String,
                        Text, UniqueConstraint, false as sa_false, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# -- the columns many tables have (each call is a new column) ----------------------------------------------------
def serial_id(**kw):
    """An integer primary key the database numbers."""
    return mapped_column(Integer, primary_key=True, autoincrement=True, **kw)


class OfAccount:
    """A table of things an account has (keys, certificates, grants, secrets): each numbered, and gone when its
    account goes. These two columns come first, as the migrations made them."""

    id: Mapped[int] = serial_id(sort_order=-2)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True, sort_order=-1)


def moment(nullable: bool = False):
    """A point in time, with its time zone."""
    return mapped_column(DateTime(timezone=True), nullable=nullable)


class Institution(Base):
    __tablename__ = "institutions"

    id: Mapped[str] = mapped_column(String(10), primary_key=True)  # Belgian enterprise number, 10 digits
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="paper")  # paper|requested|active|suspended
    #: comma-separated content types accepted for uploads; "*" accepts anything
    content_types: Mapped[str] = mapped_column(String(200), default="application/pdf")
    language: Mapped[str] = mapped_column(String(2), default="nl")
    #: comma-separated CIDR ranges logins for this centre must come from (Publilink, VERA); empty = any
    networks: Mapped[str] = mapped_column(Text, default="", server_default="")
    #: False (the default): committed documents are immutable. True only for scratch/test centres, where a
    #: write onto an existing name archives the old document and commits the new one (nothing is lost)
    mutable: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    created_at: Mapped[datetime] = moment()
    status_changed_at: Mapped[datetime] = moment()
    #: who made the last status change, and the free-text reference they gave (e.g. the received forms)
    status_changed_by: Mapped[str] = mapped_column(String(64), default="", server_default="")
    status_reference: Mapped[str] = mapped_column(Text, default="", server_default="")
    #: comma-separated e-mail addresses that receive the activation notice and the new-document digests
    contacts: Mapped[str] = mapped_column(Text, default="", server_default="")
    #: the centre's security consultant (an account id; no foreign key, accounts and centres refer to each
    #: other already): acts as local administrator while none is designated
    security_consultant_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: the newest document id already announced in a digest, and when the last digest was queued
    digest_cursor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_digest_at: Mapped[datetime | None] = moment(nullable=True)


class StatusChange(Base):
    """The switch-over history of a centre: every transition with who, when and the reference given."""

    __tablename__ = "status_changes"

    id: Mapped[int] = serial_id()
    institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.id"), index=True)
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    reference: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = moment()


class OutboxMessage(Base):
    """A mail to send. Written in the same transaction as what caused it (an activation, a digest's cursor),
    sent by whichever gateway claims it first, retried with back-off, marked sent once: nothing is lost, and a
    message is only sent again if a process died between the SMTP server's acceptance and the mark."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "sent_at", "next_attempt_at"),)

    id: Mapped[int] = serial_id()
    kind: Mapped[str] = mapped_column(String(16))  # activation|digest|test
    institution_id: Mapped[str | None] = mapped_column(String(10), nullable=True, index=True)
    recipients: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = moment()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(sa.Float, default=0.0)
    claimed_by: Mapped[str] = mapped_column(String(100), default="")
    claimed_until: Mapped[float] = mapped_column(sa.Float, default=0.0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime | None] = moment(nullable=True)


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = serial_id()
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # uploader|archiver|staff|local-admin|security-cell
    institution_id: Mapped[str | None] = mapped_column(ForeignKey("institutions.id"), nullable=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: "local" (password hash here) or "ldap" (the organisation's directory proves the password)
    source: Mapped[str] = mapped_column(String(8), default="local", server_default="local")
    #: national register number of a person (matched to the eID certificate's serialNumber)
    nrn: Mapped[str] = mapped_column(String(11), default="", server_default="")
    #: a person may log in with a bare SSH key only when an administrator enabled it
    allow_keys: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    #: comma-separated CIDR ranges this account's logins must come from; empty = any
    networks: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[datetime] = moment()
    #: console / API sessions issued at or before this moment (epoch seconds) are over: a logout, on every
    #: gateway process (sessions themselves are stateless signed values)
    sessions_after: Mapped[float] = mapped_column(sa.Float, default=0.0, server_default="0")


class SSHKey(OfAccount, Base):
    __tablename__ = "ssh_keys"

    fingerprint: Mapped[str] = mapped_column(String(100), unique=True)  # SHA256:...
    public_key: Mapped[str] = mapped_column(Text)  # OpenSSH one-line form
    comment: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = moment()


class ClientCertificate(OfAccount, Base):
    """An X.509 client certificate that logs a machine account in on the HTTPS port, pinned by fingerprint."""

    __tablename__ = "client_certificates"

    #: SHA-256 of the DER certificate, lower-case hex
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    pem: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = moment()


class Grant(OfAccount, Base):
    __tablename__ = "grants"
    __table_args__ = (UniqueConstraint("account_id", "institution_id"),)

    institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.id"), index=True)
    can_remove: Mapped[bool] = mapped_column(Boolean, default=False)
    #: may also upload and create folders (full rights), e.g. a centre's own test account
    can_write: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_false())
    granted_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = moment()
    #: the grant ends at this moment (None: until revoked)
    expires_at: Mapped[datetime | None] = moment(nullable=True)


class Folder(Base):
    __tablename__ = "folders"
    __table_args__ = (UniqueConstraint("institution_id", "path"),)

    id: Mapped[int] = serial_id()
    institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.id"))
    #: slash-joined components below the mailbox, e.g. "2026-11" or "2026-11/rmi"
    path: Mapped[str] = mapped_column(String(1100))
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = moment()


class Document(Base):
    """One upload. ``state`` walks pending -> committed -> archived (-> purged), or pending -> aborted;
    ``staged`` is a complete, validated upload under a temporary name (``*.filepart``) awaiting its rename."""

    __tablename__ = "documents"
    __table_args__ = (
        # at most one visible document (or staged upload) per name -- the database enforces immutability of names
        Index("uq_documents_visible_name", "institution_id", "folder", "name", unique=True,
              sqlite_where=text("state IN ('committed', 'staged')"),
              postgresql_where=text("state IN ('committed', 'staged')")),
        Index("ix_documents_listing", "institution_id", "folder", "state"),
        # lookups by name, whatever the state (an identical document archived before): revision 0008
        Index("ix_documents_name", "institution_id", "folder", "name"),
        Index("ix_documents_state_node", "state", "node_id"),
        # the institutional page and the API: a centre's documents newest first (revision 0009)
        Index("ix_documents_catalogue", "institution_id", "state", "committed_at"),
    )

    id: Mapped[int] = serial_id()
    institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.id"))
    folder: Mapped[str] = mapped_column(String(1100), default="")
    name: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))
    blob_id: Mapped[str] = mapped_column(String(64), unique=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    key_id: Mapped[str] = mapped_column(String(32), default="")
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    content_type: Mapped[str] = mapped_column(String(100), default="")
    uploaded_by: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    node_id: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = moment()
    committed_at: Mapped[datetime | None] = moment(nullable=True)
    archived_at: Mapped[datetime | None] = moment(nullable=True)
    archived_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    first_fetched_at: Mapped[datetime | None] = moment(nullable=True)
    first_fetched_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: over which protocol it was first fetched (sftp, webdav, web): the receipt
    first_fetched_protocol: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: what it is (gateway/core/filing.py), by the filing rules at delivery; all NULL: unclassified
    kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    legislation: Mapped[str | None] = mapped_column(String(16), nullable=True)
    period: Mapped[str | None] = mapped_column(String(7), nullable=True)


class AuditEvent(Base):
    """Append-only record. An event is inserted in its operation's transaction without a chain position
    (``seq`` NULL: unsealed); one sealer at a time gives it the next ``seq`` and its hashes: the SHA-256 of its
    predecessor's hash and its own canonical content, so any edit or deletion of a sealed event breaks the
    chain (``instpages audit verify``; storage/repo/audit.py says what exactly is proven)."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_institution", "institution_id", "id"),
                      Index("ix_audit_events_seq", "seq", unique=True),
                      # only the unsealed events: what the sealer looks for, without scanning the sealed ones
                      Index("ix_audit_unsealed", "id", postgresql_where=text("seq IS NULL"),
                            sqlite_where=text("seq IS NULL")))

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    #: the position in the chain, 1, 2, 3... in the order events were sealed; NULL until sealed
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    ts: Mapped[datetime] = moment()
    actor: Mapped[str] = mapped_column(String(64), default="")
    protocol: Mapped[str] = mapped_column(String(16), default="")
    source: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(16))
    institution_id: Mapped[str | None] = mapped_column(String(10), nullable=True)
    path: Mapped[str] = mapped_column(String(1400), default="")
    document_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AuditHead(Base):
    """One row: the newest sealed event's chain position (``last_id``, a ``seq``) and hash. Only the sealer locks
    it, in its own short transaction. Events up to ``v1_through`` were hashed by the first rule (no id, no seq)."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger, default=0)
    hash: Mapped[str] = mapped_column(String(64))
    v1_through: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class DavProperty(Base):
    """WebDAV dead properties (PROPPATCH), per path of the virtual tree."""

    __tablename__ = "dav_properties"
    __table_args__ = (UniqueConstraint("path", "name"),)

    id: Mapped[int] = serial_id()
    #: the normalized virtual path, e.g. "/0212345668/2026-11/report.pdf"
    path: Mapped[str] = mapped_column(String(1400), index=True)
    #: "{namespace}local" in Clark notation
    name: Mapped[str] = mapped_column(String(500))
    #: the property element serialized as XML
    value: Mapped[str] = mapped_column(Text)


class DavLock(Base):
    """WebDAV locks, shared by every gateway process and kept across restarts."""

    __tablename__ = "dav_locks"

    token: Mapped[str] = mapped_column(String(100), primary_key=True)
    root: Mapped[str] = mapped_column(String(1400), index=True)
    #: the lock record as JSON (owner, principal, scope, type, depth, timeout)
    data: Mapped[str] = mapped_column(Text)
    expire: Mapped[float] = mapped_column(sa.Float)


class TokenCard(OfAccount, Base):
    """A civil-servant token card: numbered one-time codes, stored as hashes only."""

    __tablename__ = "token_cards"

    created_at: Mapped[datetime] = moment()
    revoked_at: Mapped[datetime | None] = moment(nullable=True)


class TokenCode(Base):
    __tablename__ = "token_codes"
    __table_args__ = (UniqueConstraint("card_id", "number"),)

    id: Mapped[int] = serial_id()
    card_id: Mapped[int] = mapped_column(ForeignKey("token_cards.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    code_hash: Mapped[str] = mapped_column(String(200))


class TokenChallenge(Base):
    """The code number asked of an account: the same number is asked again until answered or expired."""

    __tablename__ = "token_challenges"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    number: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[float] = mapped_column(sa.Float)


class DevicePassword(OfAccount, Base):
    """A password for one drive mount (WebDAV only), created after a strong login, shown once."""

    __tablename__ = "device_passwords"

    #: "webdav" (a drive mount's password) or "api" (a script's token for the REST API)
    kind: Mapped[str] = mapped_column(String(8), default="webdav", server_default="webdav")
    label: Mapped[str] = mapped_column(String(100), default="")
    #: a short public prefix of the secret, to find the row without trying every hash
    lookup: Mapped[str] = mapped_column(String(16), index=True)
    secret_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = moment()
    expires_at: Mapped[datetime] = moment()
    revoked_at: Mapped[datetime | None] = moment(nullable=True)
    last_used_at: Mapped[datetime | None] = moment(nullable=True)


class LoginFailure(Base):
    """Failed logins counted per account name and per source address (shared by every gateway process);
    auth/throttle.py says what the keys and counts mean."""

    __tablename__ = "login_failures"

    #: "account:<name>", "source:<address>", or "seen:<address>|<name>" (a known name failed from there)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    #: failures of a name; the score of an address
    count: Mapped[int] = mapped_column(Integer, default=0)
    first_at: Mapped[float] = mapped_column(sa.Float)
    last_at: Mapped[float] = mapped_column(sa.Float)
    banned_until: Mapped[float] = mapped_column(sa.Float, default=0.0)


class CacheEpoch(Base):
    """A version per cache scope ("logins", "centres", "pins", "trust"), raised by whoever changes what that scope
    caches; every gateway process polls the versions and drops the scope's entries when one moved
    (gateway/core/epochs.py). One counter per scope, raised by an UPDATE of its row: concurrent raisers wait for
    each other's commit, so a reader never sees a later version before an earlier one."""

    __tablename__ = "cache_epochs"

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class PageVisit(Base):
    """When a staff member last opened a centre on the institutional page: "new since my last visit"."""

    __tablename__ = "page_visits"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    institution_id: Mapped[str] = mapped_column(ForeignKey("institutions.id", ondelete="CASCADE"), primary_key=True)
    #: the visit before the current one, and the current one
    previous_at: Mapped[datetime | None] = moment(nullable=True)
    seen_at: Mapped[datetime] = moment()
