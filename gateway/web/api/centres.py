"""The REST API's ``/institutions``: the centres the caller administers, one centre's overview, its switch-over
lifecycle (request, activate, suspend), its designations (local administrators, the security consultant), its
notification contacts and language, its record, and the test mail."""
from __future__ import annotations

import re

from auth.policy import STATUSES
from gateway.web.api.openapi import EMAIL, REFERENCE
from gateway.web.api.request import ApiError, Handlers, Reply, Request, fields, iso, query, required, text

# the patterns of the OpenAPI document: the server accepts exactly what the document describes
_REFERENCE, _EMAIL = re.compile(REFERENCE), re.compile(EMAIL)


def _overview_json(o: dict) -> dict:
    c = o["centre"]
    consultant = o["consultant"]
    return {
        "id": c.id, "name": c.name, "status": c.status, "status_reference": c.status_reference or "",
        "status_changed_at": iso(c.status_changed_at), "status_changed_by": c.status_changed_by or "",
        "language": c.language,
        "contacts": [a.strip() for a in (c.contacts or "").split(",") if a.strip()],
        "local_admins": [a.name for a in o["local_admins"]],
        "security_consultant": consultant.name if consultant is not None else None,
        "acting_consultant": bool(o["acting_consultant"]),
        "history": [{"from": h.from_status, "to": h.to_status, "actor": h.actor, "reference": h.reference or "",
                     "at": iso(h.at)} for h in o["history"]],
        "outbox": [{"id": m.id, "kind": m.kind, "created_at": iso(m.created_at), "sent_at": iso(m.sent_at),
                    "attempts": m.attempts, "last_error": m.last_error or ""} for m in o["outbox"]],
    }


def _contacts(value) -> list[str]:
    if not isinstance(value, list):
        raise ApiError(400, "contacts must be a list of e-mail addresses")
    if len(value) > 20:
        raise ApiError(400, "at most 20 notification addresses per centre")
    contacts = []
    for item in value:
        addr = text(item, "a contact", max_len=254)
        if not _EMAIL.fullmatch(addr):
            raise ApiError(400, f"not an e-mail address: {addr[:80]!r}")
        contacts.append(addr)
    return contacts


class CentreHandlers(Handlers):
    """``/institutions`` and ``/institutions/{id}`` with its lifecycle, designations, contacts, audit and
    notify-test."""

    def _institutions(self, req: Request) -> Reply:
        status = query(req, "status")
        if status is not None and status not in STATUSES:
            raise ApiError(400, f"status must be one of {', '.join(STATUSES)}")
        rows = self._admin(req).institutions()
        return Reply(200, [{"id": i.id, "name": i.name, "status": i.status, "language": i.language,
                            "status_changed_at": iso(i.status_changed_at),
                            "status_changed_by": i.status_changed_by or ""}
                           for i in rows if status is None or i.status == status])

    def _overview(self, req: Request) -> Reply:
        return Reply(200, _overview_json(self._admin(req).centre_overview(req.params["id"])))

    # -- the lifecycle -------------------------------------------------------------------------------------
    def _transition(self, req: Request, verb: str) -> Reply:
        fields(req.body, {"reference"})
        reference = text(required(req.body, "reference"), "reference", max_len=500)
        if not _REFERENCE.fullmatch(reference):
            raise ApiError(400, "a reference is required (e.g. the date and number of the request, or of the "
                                "signed forms received)")
        old, new, outbox_id = self._admin(req).transition(req.params["id"], verb, reference)
        return Reply(200, {"from": old, "to": new, "notice_queued": outbox_id is not None, "outbox_id": outbox_id})

    def _request(self, req: Request) -> Reply:
        return self._transition(req, "request")

    def _activate(self, req: Request) -> Reply:
        return self._transition(req, "activate")

    def _suspend(self, req: Request) -> Reply:
        return self._transition(req, "suspend")

    # -- designations --------------------------------------------------------------------------------------
    def _set_local_admin(self, req: Request) -> Reply:
        self._admin(req).set_local_admin(req.params["id"], req.params["account"])
        return Reply(204)

    def _unset_local_admin(self, req: Request) -> Reply:
        self._admin(req).unset_local_admin(req.params["id"], req.params["account"])
        return Reply(204)

    def _security_consultant(self, req: Request) -> Reply:
        fields(req.body, {"account"})
        account = required(req.body, "account")
        if account is not None:
            account = text(account, "account", max_len=64)
            if not account:
                raise ApiError(400, "account must be a person's account name, or null to remove the consultant")
        self._admin(req).set_security_consultant(req.params["id"], account)
        return Reply(204)

    # -- contacts, record, test mail -------------------------------------------------------------------------
    def _contacts(self, req: Request) -> Reply:
        body = req.body
        fields(body, {"contacts", "language"})
        contacts = language = None
        if "contacts" in body:
            contacts = _contacts(body["contacts"])
        if "language" in body:
            language = text(body["language"], "language", max_len=2)
        if contacts is None and language is None:
            raise ApiError(400, "give contacts, language or both")
        self._admin(req).set_contacts(req.params["id"], contacts=contacts, language=language)
        return Reply(204)

    def _audit(self, req: Request) -> Reply:
        raw = query(req, "limit")
        limit = 50
        if raw is not None:
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 10 and 1 <= int(raw) <= 500):
                raise ApiError(400, "limit must be an integer between 1 and 500")
            limit = int(raw)
        events = self._admin(req).audit_list(req.params["id"], limit)
        return Reply(200, [{"id": e.id, "ts": iso(e.ts), "actor": e.actor or "", "protocol": e.protocol or "",
                            "action": e.action, "outcome": e.outcome, "path": e.path or "",
                            "detail": e.detail or ""} for e in events])

    def _notify_test(self, req: Request) -> Reply:
        outbox_id = self._admin(req).notify_test(req.params["id"])
        return Reply(202, {"outbox_id": outbox_id})
