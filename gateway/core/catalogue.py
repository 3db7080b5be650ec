"""A centre's documents as a catalogue: filed by kind, legislation and period, newest first, each with its receipt.

The institutional page, the REST API and the CLI show the same catalogue, and ask for it here, on a
:class:`~gateway.core.session.MailboxSession` (this module is one of its parts): a staff member sees the documents
of a centre that granted them access; POD MI's uploader sees the receipts of what it sent (never the content,
which it cannot download); the security cell, which does not read mailboxes, sees nothing here. A centre the caller
may not see answers as one that does not exist, and a document id of another centre -- or of none -- as an id
that does not exist. Every answer and every refusal is on the record.

Filters are checked here once, for every front-end: an unknown kind, legislation or period is a
:class:`~storage.errors.MalformedRequest` that names the values it takes.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

from auth.policy import Action, sees_only_own_documents
from auth.principal import Role
from gateway.core import enterprise
from gateway.core import filing as filings
from gateway.core.filing import Filing
from gateway.core.path import VPath
from storage.errors import DocumentNotFound, MalformedRequest, NotFound, PermissionDenied
from storage.repository import CatalogueQuery, CatalogueRow, utcnow

#: the kind filter for the documents no filing rule filed
UNCLASSIFIED = "unclassified"
#: documents one catalogue answer holds at most
MAX_ROWS = 5000


@dataclass(frozen=True, slots=True)
class DocumentFilter:
    """What a caller asks for, checked (:func:`document_filter`). ``new``: delivered since the caller's last visit
    of the page; ``since``: delivered after that moment."""
    kind: str | None = None
    legislation: str | None = None
    period: str | None = None
    new: bool = False
    since: datetime | None = None
    archived: bool = False
    limit: int = 1000
    offset: int = 0


def document_filter(*, kind: str | None = None, legislation: str | None = None, period: str | None = None,
                    new: bool = False, since: datetime | None = None, archived: bool = False, limit: int = 1000,
                    offset: int = 0) -> DocumentFilter:
    """The filter, or MalformedRequest naming what is accepted. Empty strings are "any"."""
    kind, legislation, period = kind or None, legislation or None, period or None
    if kind is not None and kind not in filings.KINDS and kind != UNCLASSIFIED:
        raise MalformedRequest(f"unknown kind; one of: {', '.join([*filings.KINDS, UNCLASSIFIED])}")
    if legislation is not None and legislation not in filings.LEGISLATIONS:
        raise MalformedRequest(f"unknown legislation; one of: {', '.join(filings.LEGISLATIONS)}")
    if period is not None and not filings.PERIOD.fullmatch(period):
        raise MalformedRequest("a period is a year (2026) or a month (2026-10)")
    if not 1 <= limit <= MAX_ROWS:
        raise MalformedRequest(f"limit is between 1 and {MAX_ROWS}")
    if offset < 0:
        raise MalformedRequest("offset is not negative")
    return DocumentFilter(kind, legislation, period, new, since, archived, limit, offset)


@dataclass(frozen=True, slots=True)
class Catalogue:
    """One answer: the documents, and the end of the caller's last visit (None: not asked, or the first)."""
    documents: list[CatalogueRow]
    last_visit: datetime | None = None


class CatalogueViews:
    """The catalogue's part of :class:`~gateway.core.session.MailboxSession`."""

    def _filing(self, path: VPath) -> Filing | None:
        """What the document at ``path`` is, by the filing rules (None: unclassified)."""
        return self.mailbox.filing.classify(path.relpath)

    def _catalogue_centre(self, centre: str, action: str):
        """The centre row when the caller may read its catalogue (recorded refusal otherwise)."""
        if not enterprise.is_valid(centre):  # not even an enterprise number: as a centre that does not exist
            self._audit_now(action, "denied", None, detail="no such centre")
            raise NotFound()
        path = VPath(centre, ())
        p = self.principal
        if p.role is Role.SECURITY_CELL:
            self._authorize(Action.SEE, path)
            self._audit_now(action, "denied", path, detail="the security cell does not read mailbox contents")
            raise PermissionDenied("the security cell does not read mailbox contents")
        try:
            return self._authorize(Action.RECEIPTS, path, audit_denial=True)
        except NotFound:  # not there, or not this caller's to see: one answer, and on the record
            self._audit_now(action, "denied", path, detail="no such centre")
            raise NotFound() from None

    def documents(self, centre: str, flt: DocumentFilter = DocumentFilter(), *, visit: bool = False) -> Catalogue:
        """The centre's documents matching ``flt``, newest first (an uploader: only its own). ``visit``: this is
        the caller opening the centre's page (its last visit is returned, and ``flt.new`` uses it)."""
        inst = self._catalogue_centre(centre, "list")
        p = self.principal
        last = None
        if visit:
            with self.repo.write() as c:
                last = self.repo.visit(c, p.account_id, inst.id, utcnow())
        since = flt.since
        if flt.new and last is not None:
            since = max(since, last) if since is not None else last
        unclassified = flt.kind == UNCLASSIFIED
        q = CatalogueQuery(kind=None if unclassified else flt.kind, unclassified=unclassified,
                           legislation=flt.legislation, period=flt.period, since=since,
                           states=("archived",) if flt.archived else ("committed",),
                           uploaded_by=p.account_id if sees_only_own_documents(p) else None,
                           limit=flt.limit, offset=flt.offset)
        with self.repo.read() as c:
            rows = self.repo.catalogue(c, inst.id, q)
        self._audit_now("list", "ok", VPath(inst.id, ()), detail=f"catalogue: {len(rows)} documents"
                        f"{_described(flt)}")
        return Catalogue(rows, last)

    def receipt(self, centre: str, document_id: int) -> CatalogueRow:
        """The receipt of one document of the centre (in the mailbox or archived); an uploader: only of what it
        sent. Any other id answers NotFound."""
        inst = self._catalogue_centre(centre, "receipt")
        with self.repo.read() as c:
            row = self.repo.catalogue_entry(c, inst.id, document_id)
        return self._receipt_seen(inst.id, row)

    def receipt_at(self, raw) -> CatalogueRow:
        """The receipt of the document at a path (``/<centre>/<folder>/<name>``): the one in the mailbox, else the
        one last archived from there."""
        path = self._parse(raw)
        if path.is_root or path.is_mailbox:
            raise NotFound()
        inst = self._catalogue_centre(path.institution, "receipt")
        with self.repo.read() as c:
            rows = self.repo.catalogue_by_name(c, inst.id, path.folder, path.name)
        mine = [r for r in rows if self._may_see_receipt(r)]
        visible = [r for r in mine if r.state == "committed"]
        return self._receipt_seen(inst.id, (visible or mine or [None])[0])

    def _may_see_receipt(self, row: CatalogueRow) -> bool:
        return row.uploaded_by == self._principal.account_id or not sees_only_own_documents(self._principal)

    def _receipt_seen(self, centre: str, row: CatalogueRow | None) -> CatalogueRow:
        if row is None or not self._may_see_receipt(row):
            self._audit_now("receipt", "denied", VPath(centre, ()), detail="no such document")
            raise DocumentNotFound()
        self._audit_now("receipt", "ok", VPath(centre, tuple(row.relpath.split("/"))), document_id=row.id)
        return row

    def refuse_filing_change(self, raw, name: str) -> NoReturn:
        """A client asked to set or remove ``name``, one of a document's filing values (kind, legislation,
        period: WebDAV's properties in the gateway's namespace). They are what the filing rules made of the
        document's path when it was delivered -- a document is never changed -- so the request is refused for
        everyone, on the record as any refused write of properties."""
        path = self._parse(raw)
        err = PermissionDenied(f"{name[:80]} is set by the filing rules from the document's path; it cannot be "
                               "changed")
        self._audit_now("upload", "denied", path, detail=f"properties: {err.message}")
        raise err

    def document_path(self, centre: str, document_id: int) -> VPath:
        """Where a document of the centre's mailbox is, by its id (for a download or an archive by id: the
        operation itself is then authorized and recorded as any other); NotFound for any other id."""
        inst = self._catalogue_centre(centre, "read")
        with self.repo.read() as c:
            row = self.repo.catalogue_entry(c, inst.id, document_id)
        if row is None or row.state != "committed" or not self._may_see_receipt(row):
            self._audit_now("read", "denied", VPath(inst.id, ()), detail=f"no document {document_id} here")
            raise DocumentNotFound()
        return VPath(inst.id, tuple(row.relpath.split("/")))

    def record_refusal(self, action: str, centre: str | None, reason: str, *, outcome: str = "refused") -> None:
        """Put a front-end's own refusal of a request about a centre's documents on the record, as the core's
        refusals are: a malformed filter, a form without its CSRF token, a ZIP request over its limit. ``centre``:
        the id the request named (kept only when it has the form of an enterprise number)."""
        path = VPath(centre, ()) if centre and enterprise.is_valid(centre) else None
        self._audit_now(action, outcome, path, detail=reason[:500])


def _described(flt: DocumentFilter) -> str:
    parts = [f"{k}={v}" for k, v in (("kind", flt.kind), ("legislation", flt.legislation),
                                      ("period", flt.period)) if v]
    if flt.new:
        parts.append("new")
    if flt.archived:
        parts.append("archived")
    return f" ({', '.join(parts)})" if parts else ""
