"""Documents: their rows through the lifecycle (pending -> committed|staged -> archived|aborted), listings,
lookups by name, and the queries housekeeping and recovery run over them."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from storage.repo.base import D, F, Conflict, _B, as_utc, utcnow

#: a document's (kind, legislation, period), as gateway/core/filing.py files it; None: unclassified
Filing = tuple[str, str, str]


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
    #: its filing (gateway/core/filing.py); all None: unclassified
    kind: str | None = None
    legislation: str | None = None
    period: str | None = None

    @classmethod
    def from_row(cls, r) -> "DocumentRow":
        return cls(r.id, r.institution_id, r.folder, r.name, r.state, r.blob_id, r.size, r.sha256, r.key_id,
                   bytes(r.wrapped_key or b""), r.content_type, r.uploaded_by, as_utc(r.created_at),
                   as_utc(r.committed_at), as_utc(r.archived_at), as_utc(r.first_fetched_at), r.kind,
                   r.legislation, r.period)


_DOC_COLS = (D.c.id, D.c.institution_id, D.c.folder, D.c.name, D.c.state, D.c.blob_id, D.c.size, D.c.sha256,
             D.c.key_id, D.c.wrapped_key, D.c.content_type, D.c.uploaded_by, D.c.created_at, D.c.committed_at,
             D.c.archived_at, D.c.first_fetched_at, D.c.kind, D.c.legislation, D.c.period)

#: "a visible document (or staged upload)", its states as literals in the SQL, not parameters: only then can SQLite
#: and PostgreSQL prove that a lookup by name falls under the partial unique index ``uq_documents_visible_name``
#: (state IN ('committed', 'staged')) and use it; with parameters SQLite walked ``ix_documents_listing`` over every
#: visible document of the folder (2,000 rows for one name: 4 ms a GET). Constant literal columns, so that each
#: statement is compiled once (an expanding parameter rendered as literals costs 0.1 ms per execution).
_VISIBLE = D.c.state.in_((sa.literal_column("'committed'"), sa.literal_column("'staged'")))
_Q_VISIBLE_DOC = sa.select(*_DOC_COLS).where(D.c.institution_id == _B("i"), D.c.folder == _B("f"),
                                             D.c.name == _B("n"), _VISIBLE)
_Q_VISIBLE_FROM = (sa.select(*_DOC_COLS).where(D.c.institution_id == _B("i"), D.c.folder == _B("f"),
                                               D.c.name >= _B("n"), _VISIBLE)
                   .order_by(D.c.name).limit(_B("k")))


class SameContent(NamedTuple):
    """An earlier delivery of the same content under the same name."""
    id: int
    state: str
    committed_at: datetime | None
    archived_at: datetime | None


class _ListedTime(sa.types.TypeDecorator):
    """A document's time as a listing reads it: SQLite's text parsed by ``datetime.fromisoformat`` (in C; the generic
    DateTime processor took 1 us a row, 10 ms of a 10,000-document listing); a time without a zone is UTC. The
    driver's own value elsewhere (PostgreSQL's psycopg gives datetimes)."""
    impl = sa.DateTime
    cache_ok = True

    def result_processor(self, dialect, coltype):
        fromisoformat = datetime.fromisoformat
        return lambda value: fromisoformat(value) if value.__class__ is str else value


#: a document's filing as one column, "kind|legislation|period" (NULL when unclassified: NULL || text is NULL, in
#: SQLite and PostgreSQL): one column instead of three, in the listing a 10,000-document PROPFIND makes
_BAR = sa.literal_column("'|'", sa.String)
_FILED = (D.c.kind + _BAR + D.c.legislation + _BAR + D.c.period).label("filed")
# the listing's columns, in the order MailboxSession.list unpacks them (the filing last: WebDAV shows it)
_Q_LISTING = sa.select(D.c.id, D.c.name, D.c.size, sa.type_coerce(D.c.committed_at, _ListedTime()), D.c.sha256,
                       D.c.content_type, D.c.state, D.c.uploaded_by,
                       _FILED).where(D.c.institution_id == _B("i"), D.c.folder == _B("f"), _VISIBLE)
_Q_MARK_FETCHED = (D.update().where(D.c.id == _B("d"), D.c.first_fetched_at.is_(None))
                   .values(first_fetched_at=_B("t"), first_fetched_by=_B("by"), first_fetched_protocol=_B("pr")))
# every upload runs these (building a statement per call cost more than running it: storage/repo/base.py)
_Q_SAME_CONTENT = sa.select(D.c.id, D.c.state, D.c.committed_at, D.c.archived_at).where(
    D.c.institution_id == _B("i"), D.c.folder == _B("f"), D.c.name == _B("n"), D.c.sha256 == _B("h"),
    D.c.size == _B("s"), D.c.state.in_(("committed", "archived"))).order_by(
    D.c.archived_at.is_not(None), D.c.archived_at.desc()).limit(1)
_Q_CREATE_PENDING = D.insert().values(
    institution_id=_B("i"), folder=_B("f"), name=_B("n"), state="pending", blob_id=_B("b"), size=0, sha256="",
    key_id="", wrapped_key=b"", content_type="", uploaded_by=_B("by"), node_id=_B("node"), created_at=_B("t"))
_Q_FINISH_PENDING = D.update().where(D.c.id == _B("d"), D.c.state == "pending").values(
    state=_B("to"), size=_B("s"), sha256=_B("h"), key_id=_B("k"), wrapped_key=_B("w"), content_type=_B("ct"),
    committed_at=_B("t"), kind=_B("kind"), legislation=_B("leg"), period=_B("per"))


class DocumentsRepo:
    """Document rows; a name taken by a visible document raises :class:`Conflict`."""

    def visible_document(self, c: Connection, institution_id: str, folder: str, name: str) -> DocumentRow | None:
        r = c.execute(_Q_VISIBLE_DOC, {"i": institution_id, "f": folder, "n": name}).first()
        return DocumentRow.from_row(r) if r else None

    def visible_documents_from(self, c: Connection, institution_id: str, folder: str, name: str,
                               limit: int) -> list[DocumentRow]:
        """The visible documents of a folder from ``name`` on, in name order, at most ``limit`` (a read-ahead of
        the rows a client going through a folder will ask for next)."""
        return [DocumentRow.from_row(r) for r in c.execute(_Q_VISIBLE_FROM, {"i": institution_id, "f": folder,
                                                                             "n": name, "k": limit})]

    def document(self, c: Connection, document_id: int) -> DocumentRow | None:
        r = c.execute(sa.select(*_DOC_COLS).where(D.c.id == document_id)).first()
        return DocumentRow.from_row(r) if r else None

    def documents_in(self, c: Connection, institution_id: str, folder: str,
                     uploaded_by: int | None = None) -> list[DocumentRow]:
        q = sa.select(*_DOC_COLS).where(D.c.institution_id == institution_id, D.c.folder == folder,
                                        _VISIBLE)
        if uploaded_by is not None:
            q = q.where(D.c.uploaded_by == uploaded_by)
        return [DocumentRow.from_row(r) for r in c.execute(q)]

    def listing(self, c: Connection, institution_id: str, folder: str) -> list:
        """The columns a directory listing shows, for every visible document of a folder (no key material, no
        per-row objects: a 10,000-document folder is listed often)."""
        return c.execute(_Q_LISTING, {"i": institution_id, "f": folder}).all()

    def has_children(self, c: Connection, institution_id: str, folder: str) -> bool:
        if c.execute(sa.select(D.c.id).where(D.c.institution_id == institution_id, D.c.folder == folder,
                                             _VISIBLE).limit(1)).first():
            return True
        return c.execute(sa.select(F.c.id).where(F.c.institution_id == institution_id,
                                                 F.c.path.startswith(folder + "/", autoescape=True)).limit(1)).first() is not None

    def create_pending(self, c: Connection, *, institution_id: str, folder: str, name: str, blob_id: str,
                       uploaded_by: int, node_id: str) -> int:
        return c.execute(_Q_CREATE_PENDING, {"i": institution_id, "f": folder, "n": name, "b": blob_id,
                                             "by": uploaded_by, "node": node_id, "t": utcnow()}
                         ).inserted_primary_key[0]

    def finish_document(self, c: Connection, document_id: int, *, state: str, size: int, sha256: str, key_id: str,
                        wrapped_key: bytes, content_type: str, folder: str | None = None,
                        name: str | None = None, filing: Filing | None = None) -> None:
        """pending -> committed|staged, filed as ``filing`` (None: unclassified). Raises Conflict when the name is
        taken by a visible document."""
        now = utcnow()
        kind, leg, per = filing or (None, None, None)
        if folder is None and name is None:  # every upload: the statement built once
            stmt, params = _Q_FINISH_PENDING, {"d": document_id, "to": state, "s": size, "h": sha256, "k": key_id,
                                               "w": wrapped_key, "ct": content_type, "t": now, "kind": kind,
                                               "leg": leg, "per": per}
        else:
            values = dict(state=state, size=size, sha256=sha256, key_id=key_id, wrapped_key=wrapped_key,
                          content_type=content_type, committed_at=now, kind=kind, legislation=leg, period=per)
            if folder is not None:
                values["folder"] = folder
            if name is not None:
                values["name"] = name
            stmt, params = D.update().where(D.c.id == document_id, D.c.state == "pending").values(**values), None
        try:
            with c.begin_nested():
                n = c.execute(stmt, params).rowcount
        except IntegrityError:
            raise Conflict("name taken") from None
        if n != 1:
            raise Conflict("upload is no longer pending")

    def promote_staged(self, c: Connection, document_id: int, folder: str, name: str,
                       filing: Filing | None = None) -> None:
        """staged -> committed under its final name, filed by it."""
        kind, leg, per = filing or (None, None, None)
        try:
            with c.begin_nested():
                n = c.execute(D.update().where(D.c.id == document_id, D.c.state == "staged").values(
                    state="committed", folder=folder, name=name, committed_at=utcnow(), kind=kind,
                    legislation=leg, period=per)).rowcount
        except IntegrityError:
            raise Conflict("name taken") from None
        if n != 1:
            raise Conflict("staged upload is gone")

    def set_state(self, c: Connection, document_id: int, from_states: Sequence[str], to_state: str, **extra) -> bool:
        return c.execute(D.update().where(D.c.id == document_id, D.c.state.in_(list(from_states)))
                         .values(state=to_state, **extra)).rowcount == 1

    def move_document(self, c: Connection, document_id: int, folder: str, name: str,
                      filing: Filing | None = None) -> None:
        """A document under a new name, filed by it."""
        kind, leg, per = filing or (None, None, None)
        try:
            with c.begin_nested():
                c.execute(D.update().where(D.c.id == document_id).values(folder=folder, name=name, kind=kind,
                                                                          legislation=leg, period=per))
        except IntegrityError:
            raise Conflict("name taken") from None

    def documents_below(self, c: Connection, institution_id: str, path: str) -> list[DocumentRow]:
        """Visible documents in folder ``path`` and every folder below it."""
        q = sa.select(*_DOC_COLS).where(D.c.institution_id == institution_id, D.c.state == "committed", sa.or_(
            D.c.folder == path, D.c.folder.startswith(path + "/", autoescape=True)))
        return [DocumentRow.from_row(r) for r in c.execute(q)]

    def archived_documents(self, c: Connection, institution_id: str, folder: str, name: str) -> list[DocumentRow]:
        q = (sa.select(*_DOC_COLS).where(D.c.institution_id == institution_id, D.c.folder == folder,
                                         D.c.name == name, D.c.state == "archived").order_by(D.c.archived_at.desc()))
        return [DocumentRow.from_row(r) for r in c.execute(q)]

    def archived_in(self, c: Connection, institution_id: str, limit: int = 500) -> list:
        """Archived documents of a centre, newest first: names and dates only."""
        return list(c.execute(sa.select(D.c.id, D.c.folder, D.c.name, D.c.size, D.c.committed_at, D.c.archived_at,
                                        D.c.archived_by)
                              .where(D.c.institution_id == institution_id, D.c.state == "archived")
                              .order_by(D.c.archived_at.desc(), D.c.id.desc()).limit(limit)))

    def same_content(self, c: Connection, institution_id: str, folder: str, name: str, sha256: str, size: int):
        """An identical document (same name and content) delivered before, visible or archived (the visible one
        first, else the last archived): (id, state, committed_at, archived_at), or None."""
        r = c.execute(_Q_SAME_CONTENT, {"i": institution_id, "f": folder, "n": name, "h": sha256, "s": size}).first()
        return None if r is None else SameContent(r.id, r.state, as_utc(r.committed_at), as_utc(r.archived_at))

    def mark_fetched(self, c: Connection, document_id: int, by: str, protocol: str) -> None:
        """The receipt's first fetch (later fetches leave it as it is)."""
        c.execute(_Q_MARK_FETCHED, {"d": document_id, "t": utcnow(), "by": by, "pr": protocol})

    def pending_of(self, c: Connection, owner: str) -> list[tuple[int, str]]:
        """Uploads in progress of ``owner``: a node (all its workers') or ``"<node>/<worker>"``."""
        mine = sa.or_(D.c.node_id == owner, D.c.node_id.startswith(owner + "/", autoescape=True))
        return [(r.id, r.blob_id) for r in c.execute(sa.select(D.c.id, D.c.blob_id).where(
            D.c.state == "pending", mine))]

    def stale(self, c: Connection, state: str, before: datetime) -> list[tuple[int, str]]:
        return [(r.id, r.blob_id) for r in c.execute(sa.select(D.c.id, D.c.blob_id).where(
            D.c.state == state, D.c.created_at < before))]

    def live_blob_ids(self, c: Connection) -> set[str]:
        return {r[0] for r in c.execute(sa.select(D.c.blob_id).where(D.c.state != "aborted"))}
