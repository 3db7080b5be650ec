"""The REST API's documents of a centre: the catalogue ``/institutions/{id}/documents`` (filed by kind,
legislation and period, newest first, each with its receipt) and one document's receipt
``/institutions/{id}/documents/{doc}/receipt`` -- both asked of the core's catalogue on a
:class:`~gateway.core.session.MailboxSession` of the caller, which authorizes and records them (staff: a centre
that granted them access; POD MI's uploader: what it sent; the security cell: refused) -- and, as administration
sees them, ``/institutions/{id}/archived`` (names and dates, never content) and ``/institutions/{id}/restore``."""
from __future__ import annotations

import re
from datetime import datetime, timezone

from gateway.core import enterprise
from gateway.core.catalogue import DocumentFilter, document_filter
from gateway.core.session import MailboxSession
from gateway.web.api.openapi import DOCUMENT_PATH, SINCE
from gateway.web.api.request import ApiError, Handlers, Reply, Request, fields, iso, query, required, text
from storage.errors import CentreNotFound, DocumentNotFound, MalformedRequest, NotFound
from storage.repository import CatalogueRow

# the OpenAPI document's patterns: the server accepts exactly what the document describes
_PATH, _SINCE = re.compile(DOCUMENT_PATH), re.compile(SINCE)
#: the answer for a document id the core does not show this caller (DocumentNotFound; any other NotFound is about
#: the centre)
NO_SUCH_DOCUMENT = "no such document"
FILTERS = ("kind", "legislation", "period", "since", "archived", "limit", "offset")
DEFAULT_LIMIT = 100


def receipt_json(r: CatalogueRow) -> dict:
    return {"id": r.id, "path": r.relpath, "name": r.name, "sha256": r.sha256, "delivered_at": iso(r.delivered_at),
            "sender": r.sender, "first_fetched_at": iso(r.first_fetched_at), "first_fetched_by": r.first_fetched_by,
            "first_fetched_protocol": r.first_fetched_protocol, "archived_at": iso(r.archived_at),
            "archived_by": r.archived_by}


def document_json(r: CatalogueRow) -> dict:
    return {**receipt_json(r), "size": r.size, "kind": r.kind, "legislation": r.legislation, "period": r.period,
            "archived": r.state == "archived"}


def _since(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    moment = None
    if _SINCE.fullmatch(raw):
        try:
            moment = datetime.fromisoformat(raw.upper().replace("Z", "+00:00")).astimezone(timezone.utc)
        except (ValueError, OverflowError):
            moment = None
    if moment is None:
        raise ApiError(400, f"since is not a date-time with its offset (e.g. 2026-11-01T00:00:00Z): {raw[:40]!r}")
    return moment


def _number(raw: str | None, name: str, default: int) -> int:
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise ApiError(400, f"{name} is a whole number, not {raw[:20]!r}")
    return int(raw)


def _flag(raw: str | None, name: str) -> bool:
    if raw not in (None, "true", "false"):
        raise ApiError(400, f"{name} is true or false, not {raw[:20]!r}")
    return raw == "true"


def _document_id(raw: str) -> int:
    """A document id: a positive integer (anything else is malformed: 400); one no document can have answers as
    one that does not exist."""
    if not (raw.isascii() and raw.isdigit()):
        raise ApiError(400, f"a document id is a positive whole number, not {raw[:20]!r}")
    if len(raw) > 18 or int(raw) == 0:
        raise ApiError(404, NO_SUCH_DOCUMENT)
    return int(raw)


class DocumentHandlers(Handlers):
    """``/institutions/{id}/documents``, ``/institutions/{id}/documents/{doc}/receipt``,
    ``/institutions/{id}/archived`` and ``/institutions/{id}/restore``."""

    # -- the catalogue, in the core ---------------------------------------------------------------------------
    def _catalogue(self, req: Request, ask):
        """``ask(session, centre)`` on the caller's session in the core; a centre the caller may not see answers
        as one that does not exist (and as a malformed id)."""
        raw = req.params["id"]
        try:
            centre = enterprise.normalize(raw)
        except ValueError:
            centre = raw  # the core answers it as a centre that does not exist, on the record
        try:
            return ask(MailboxSession(self.mailbox, req.principal, "api", req.source), centre)
        except DocumentNotFound:
            raise ApiError(404, NO_SUCH_DOCUMENT) from None
        except NotFound:
            raise CentreNotFound() from None

    def _documents(self, req: Request) -> Reply:
        flt = self._recorded(req, "list", self._filter)
        rows = self._catalogue(req, lambda s, centre: s.documents(centre, flt).documents)
        return Reply(200, [document_json(r) for r in rows])

    def _receipt(self, req: Request) -> Reply:
        document_id = self._recorded(req, "receipt", lambda r: _document_id(r.params["doc"]))
        return Reply(200, receipt_json(self._catalogue(req, lambda s, centre: s.receipt(centre, document_id))))

    def _recorded(self, req: Request, action: str, parse):
        """``parse(req)``; a malformed request is refused (400) and, as the core's refusals are, on the record."""
        try:
            return parse(req)
        except (ApiError, MalformedRequest) as exc:
            session = MailboxSession(self.mailbox, req.principal, "api", req.source)
            session.record_refusal(action, req.params["id"], f"request refused: {exc.message}")
            raise

    @staticmethod
    def _filter(req: Request) -> DocumentFilter:
        unknown = sorted(set(req.query) - set(FILTERS))
        if unknown:
            raise ApiError(400, f"unknown query parameter {unknown[0][:40]!r}; filters: {', '.join(FILTERS)}")
        empty = [name for name in FILTERS if query(req, name) == ""]
        if empty:
            raise ApiError(400, f"{empty[0]} is empty; leave it out to take any")
        return document_filter(kind=query(req, "kind"), legislation=query(req, "legislation"),
                               period=query(req, "period"), since=_since(query(req, "since")),
                               archived=_flag(query(req, "archived"), "archived"),
                               limit=_number(query(req, "limit"), "limit", DEFAULT_LIMIT),
                               offset=_number(query(req, "offset"), "offset", 0))

    # -- archived documents, as administration ----------------------------------------------------------------
    def _archived(self, req: Request) -> Reply:
        rows = self._admin(req).archived(req.params["id"])
        return Reply(200, [{"id": d.id, "path": f"{d.folder}/{d.name}" if d.folder else d.name, "size": d.size,
                            "delivered_at": iso(d.committed_at), "archived_at": iso(d.archived_at),
                            "archived_by": d.archived_by or ""} for d in rows])

    def _restore(self, req: Request) -> Reply:
        fields(req.body, {"path"})
        path = text(required(req.body, "path"), "path", max_len=1000)
        if not _PATH.fullmatch(path):
            raise ApiError(400, "give the document's path inside the mailbox, e.g. 2026-11/report.pdf "
                                "(no empty, '.' or '..' components)")
        document_id = self._admin(req).restore(req.params["id"], path)
        return Reply(200, {"document_id": document_id})
