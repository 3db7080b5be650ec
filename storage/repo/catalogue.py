"""The catalogue: a centre's documents as the institutional page, the API and the CLI show them -- filed by kind,
legislation and period, newest first, each with its receipt (delivered when and by whom, first fetched when, by
whom and how, archived when and by whom) -- and the staff's visits of the page."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from storage.models import PageVisit
from storage.repo.base import A, D, _B, as_utc

PV = PageVisit.__table__

#: what the catalogue shows: delivered documents, in the mailbox or archived out of it
SHOWN_STATES = ("committed", "archived")
#: a visit of the page lasts this long: opening it again within it does not move "my last visit"
VISIT_SECONDS = 30 * 60


@dataclass(frozen=True, slots=True)
class CatalogueRow:
    """A document and its receipt."""
    id: int
    institution_id: str
    folder: str
    name: str
    state: str
    size: int
    sha256: str
    kind: str | None
    legislation: str | None
    period: str | None
    uploaded_by: int
    sender: str
    delivered_at: datetime | None
    first_fetched_at: datetime | None
    first_fetched_by: str | None
    first_fetched_protocol: str | None
    archived_at: datetime | None
    archived_by: str | None

    @property
    def relpath(self) -> str:
        return f"{self.folder}/{self.name}" if self.folder else self.name


@dataclass(frozen=True, slots=True)
class CatalogueQuery:
    """Filters, all optional; ``period``: ``YYYY`` (that year, and its months) or ``YYYY-MM``; ``since``: delivered
    after that moment; ``ids``: only these documents."""
    kind: str | None = None
    #: only the documents no filing rule filed
    unclassified: bool = False
    legislation: str | None = None
    period: str | None = None
    since: datetime | None = None
    ids: tuple[int, ...] | None = None
    states: tuple[str, ...] = ("committed",)
    uploaded_by: int | None = None
    limit: int = 1000
    offset: int = 0


_COLS = (D.c.id, D.c.institution_id, D.c.folder, D.c.name, D.c.state, D.c.size, D.c.sha256, D.c.kind,
         D.c.legislation, D.c.period, D.c.uploaded_by, sa.func.coalesce(A.c.name, ""), D.c.committed_at,
         D.c.first_fetched_at, D.c.first_fetched_by, D.c.first_fetched_protocol, D.c.archived_at, D.c.archived_by)
_FROM = D.outerjoin(A, A.c.id == D.c.uploaded_by)


def _row(r) -> CatalogueRow:
    return CatalogueRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], as_utc(r[12]),
                        as_utc(r[13]), r[14], r[15], as_utc(r[16]), r[17])


class CatalogueRepo:
    """Catalogue queries, filing values and page visits."""

    def catalogue(self, c: Connection, institution_id: str, q: CatalogueQuery) -> list[CatalogueRow]:
        """The documents of a centre matching ``q``, newest delivery first."""
        stmt = sa.select(*_COLS).select_from(_FROM).where(D.c.institution_id == institution_id,
                                                          D.c.state.in_(q.states))
        if q.kind is not None:
            stmt = stmt.where(D.c.kind == q.kind)
        if q.unclassified:
            stmt = stmt.where(D.c.kind.is_(None))
        if q.legislation is not None:
            stmt = stmt.where(D.c.legislation == q.legislation)
        if q.period is not None:
            stmt = stmt.where(sa.or_(D.c.period == q.period, D.c.period.startswith(q.period + "-", autoescape=True)))
        if q.since is not None:
            stmt = stmt.where(D.c.committed_at > q.since)
        if q.ids is not None:
            stmt = stmt.where(D.c.id.in_(q.ids))
        if q.uploaded_by is not None:
            stmt = stmt.where(D.c.uploaded_by == q.uploaded_by)
        stmt = stmt.order_by(D.c.committed_at.desc(), D.c.id.desc()).limit(q.limit).offset(q.offset)
        return [_row(r) for r in c.execute(stmt)]

    def catalogue_entry(self, c: Connection, institution_id: str, document_id: int) -> CatalogueRow | None:
        """One delivered document of a centre (in the mailbox or archived), or None."""
        r = c.execute(sa.select(*_COLS).select_from(_FROM).where(
            D.c.id == document_id, D.c.institution_id == institution_id, D.c.state.in_(SHOWN_STATES))).first()
        return _row(r) if r else None

    def catalogue_by_name(self, c: Connection, institution_id: str, folder: str, name: str) -> list[CatalogueRow]:
        """The delivered documents of that name (the visible one, archived ones), newest first."""
        return [_row(r) for r in c.execute(sa.select(*_COLS).select_from(_FROM).where(
            D.c.institution_id == institution_id, D.c.folder == folder, D.c.name == name,
            D.c.state.in_(SHOWN_STATES)).order_by(D.c.committed_at.desc(), D.c.id.desc()))]

    def set_filing(self, c: Connection, document_id: int, kind: str | None, legislation: str | None,
                   period: str | None) -> None:
        c.execute(D.update().where(D.c.id == document_id).values(kind=kind, legislation=legislation, period=period))

    def filings_after(self, c: Connection, after_id: int, limit: int, *, institution_id: str | None = None,
                      unclassified_only: bool = True) -> list[tuple[int, str, str, str, tuple | None]]:
        """Delivered documents (in the mailbox or archived) by id after ``after_id``, at most ``limit``: (id, centre,
        folder, name, (kind, legislation, period) or None) -- what refiling goes through in batches."""
        q = (sa.select(D.c.id, D.c.institution_id, D.c.folder, D.c.name, D.c.kind, D.c.legislation, D.c.period)
             .where(D.c.id > after_id, D.c.state.in_(SHOWN_STATES)).order_by(D.c.id).limit(limit))
        if institution_id is not None:
            q = q.where(D.c.institution_id == institution_id)
        if unclassified_only:
            q = q.where(D.c.kind.is_(None))
        return [(r[0], r[1], r[2], r[3], (r[4], r[5], r[6]) if r[4] is not None else None) for r in c.execute(q)]

    def unclassified_counts(self, c: Connection) -> list[tuple[str, int]]:
        """Per centre, how many documents in the mailboxes no filing rule filed."""
        return [(r[0], r[1]) for r in c.execute(
            sa.select(D.c.institution_id, sa.func.count()).where(D.c.state == "committed", D.c.kind.is_(None))
            .group_by(D.c.institution_id).order_by(D.c.institution_id))]

    def visit(self, c: Connection, account_id: int, institution_id: str, now: datetime) -> datetime | None:
        """Note that the account opens the centre's page now; the end of its visit before this one (None: the
        first). Opening it again within :data:`VISIT_SECONDS` is the same visit."""
        r = c.execute(sa.select(PV.c.previous_at, PV.c.seen_at).where(PV.c.account_id == _B("a"),
                                                                      PV.c.institution_id == _B("i")),
                      {"a": account_id, "i": institution_id}).first()
        if r is None:
            try:
                with c.begin_nested():
                    c.execute(PV.insert().values(account_id=account_id, institution_id=institution_id,
                                                 previous_at=None, seen_at=now))
            except IntegrityError:  # the same account's other request inserted it meanwhile: that visit
                pass
            return None
        previous, seen = as_utc(r[0]), as_utc(r[1])
        if now - seen > timedelta(seconds=VISIT_SECONDS):
            previous = seen
        c.execute(PV.update().where(PV.c.account_id == account_id, PV.c.institution_id == institution_id)
                  .values(previous_at=previous, seen_at=now))
        return previous
