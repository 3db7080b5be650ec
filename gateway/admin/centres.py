"""Centres: adding and configuring them, their switch-over lifecycle (request, activate, suspend, and the
operator's override), what their console page shows, their notification contacts and language, their source
networks.

The lifecycle itself (which verb leads where) is :func:`gateway.core.lifecycle.next_status`; every change is on
the record and in the centre's history, and an activation queues the notice to the centre's contacts in the same
transaction.
"""
from __future__ import annotations

import re

from auth.policy import STATUSES, AdminAction, Decision, decide_admin
from auth.principal import Role
from gateway.admin.base import AdminBase
from gateway.admin.notify import LANGUAGES
from gateway.core import enterprise
from gateway.core.content import ContentPolicy
from gateway.core.lifecycle import next_status
from storage.errors import AdminConflict, AdminError, AdminForbidden, Conflict, GatewayError, IllegalTransition

#: the e-mail address rule (the REST API's document, gateway/web/api/openapi.py, states it for every regex dialect)
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")


def parse_contacts(text: str | list[str]) -> list[str]:
    items = text if isinstance(text, list) else re.split(r"[,;\s]+", text or "")
    out: list[str] = []
    for raw in items:
        addr = (raw or "").strip()
        if not addr:
            continue
        if len(addr) > 254 or not _EMAIL.match(addr):
            raise AdminError(f"not an e-mail address: {addr[:80]!r}")
        if addr.lower() not in (a.lower() for a in out):
            out.append(addr)
    if len(out) > 20:
        raise AdminError("at most 20 notification addresses per centre")
    return out


class CentreAdmin(AdminBase):
    """The operations on centres."""

    def add_institution(self, raw_id: str, name: str, status: str = "paper", content_types: str | None = None,
                        mutable: bool = False) -> str:
        self._operator("this")
        try:
            inst_id = enterprise.normalize(raw_id)
        except ValueError as exc:
            raise AdminError(str(exc)) from None
        if status not in STATUSES:
            raise AdminError(f"unknown status {status!r} (one of {', '.join(STATUSES)})")
        if not name.strip():
            raise AdminError("a centre needs a name")
        with self.repo.write() as c:
            try:
                self.repo.add_institution(c, inst_id, name.strip(), status)
            except Conflict as exc:
                raise AdminError(str(exc)) from None
            self._audit(c, "institution-add", inst_id, detail=f"name={name.strip()!r} status={status}")
        if content_types is not None or mutable:
            self.configure(inst_id, content_types=content_types, mutable=mutable)
        return inst_id

    def configure(self, raw_id: str, *, content_types: str | None = None, mutable: bool | None = None) -> None:
        """Per-centre settings: accepted content types (default PDF only; ``*`` accepts anything) and, for
        scratch/test centres only, mutable documents (a new version archives the old one)."""
        self._operator("this")
        inst_id = self._institution_id(raw_id)
        values: dict = {}
        if content_types is not None:
            types = ",".join(t.strip().lower() for t in content_types.split(",") if t.strip())
            try:
                ContentPolicy(allowed_types=frozenset(types.split(",")))
            except GatewayError as exc:
                raise AdminError(f"content types: {exc.message}") from None
            values["content_types"] = types
        if mutable is not None:
            values["mutable"] = mutable
        if not values:
            raise AdminError("nothing to change")
        with self.repo.write() as c:
            self.repo.configure_institution(c, inst_id, **values)
            self._audit(c, "institution-configure", inst_id,
                        detail=" ".join(f"{k}={v}" for k, v in sorted(values.items())))
        self.mailbox.forget_institution(inst_id)

    def set_status(self, raw_id: str, status: str, reference: str = "") -> str:
        """The operator's override (``institution set-status``): any status, outside the lifecycle, on the record
        and in the centre's history. People use :meth:`transition`."""
        self._operator("setting a status outside the lifecycle")
        inst_id = self._institution_id(raw_id)
        if status not in STATUSES:
            raise AdminError(f"unknown status {status!r} (one of {', '.join(STATUSES)})")
        ref = (reference.strip() or "operator override (set-status)")[:500]
        with self.repo.write() as c:
            old = self.repo.institution(c, inst_id).status
            if old != status and not self.repo.transition_institution(c, inst_id, old, status, self.actor, ref):
                raise AdminConflict(f"centre {inst_id} changed meanwhile; try again")
            self._audit(c, "institution-status", inst_id, detail=f"{old} -> {status}; override; reference={ref!r}")
        self.mailbox.forget_institution(inst_id)
        return old

    # -- the switch-over lifecycle -----------------------------------------------------------------------------
    def transition(self, raw_id: str, verb: str, reference: str) -> tuple[str, str, int | None]:
        """request / activate / suspend, with who, when and a reference. Activation queues the notice to the
        centre's contacts in the same transaction. Returns (old status, new status, outbox id or None)."""
        inst = self._centre(raw_id, AdminAction.TRANSITION)
        ref = " ".join((reference or "").split())
        if not ref:
            raise AdminError("a reference is required (e.g. the date and number of the request, or of the signed "
                             "forms received)")
        if len(ref) > 500:
            raise AdminError("the reference is limited to 500 characters")
        try:
            new = next_status(inst.status, verb)
        except IllegalTransition as exc:
            raise self._refuse(AdminAction.TRANSITION, inst.id,
                               AdminConflict(f"centre {inst.id}: {exc}")) from None
        outbox_id = None
        with self.repo.write() as c:
            if not self.repo.transition_institution(c, inst.id, inst.status, new, self.actor, ref):
                raise AdminConflict(f"centre {inst.id} changed meanwhile; reload and try again")
            self._audit(c, "institution-status", inst.id, detail=f"{verb}: {inst.status} -> {new}; reference={ref!r}")
            notifier = self.mailbox.notifier
            if verb == "activate" and notifier is not None:
                centre = self.repo.institution(c, inst.id)
                outbox_id = notifier.queue(c, "activation", centre, reference=ref)
                if outbox_id is not None:
                    self._audit(c, "notify-queue", inst.id, detail=f"activation notice, outbox {outbox_id}")
        self.mailbox.forget_institution(inst.id)
        return inst.status, new, outbox_id

    def history(self, raw_id: str) -> list:
        inst = self._centre(raw_id, AdminAction.VIEW)
        with self.repo.read() as c:
            return self.repo.status_history(c, inst.id)

    # -- what people see -----------------------------------------------------------------------------------------
    def centre(self, raw_id: str):
        """One centre's row, for those who may see its administration."""
        return self._centre(raw_id, AdminAction.VIEW)

    def centre_overview(self, raw_id: str) -> dict:
        """Everything the centre's console page shows (no document content, no document names)."""
        inst = self._centre(raw_id, AdminAction.VIEW)
        with self.repo.read() as c:
            admins = self.repo.local_admins(c, inst.id)
            consultant = self.repo.account(c, inst.security_consultant_id) if inst.security_consultant_id else None
            history = self.repo.status_history(c, inst.id)
            outbox = self.repo.outbox(c, inst.id, limit=20)
        return {"centre": inst, "local_admins": admins, "consultant": consultant, "history": history,
                "outbox": outbox, "acting_consultant": consultant is not None and consultant.enabled and not admins}

    def institutions(self) -> list:
        """Every centre for the operator and the security cell; a local administrator's own centres otherwise."""
        if decide_admin(self.principal, AdminAction.LIST_ALL) is not Decision.ALLOWED:
            raise self._refuse(AdminAction.LIST_ALL, None, AdminForbidden("no centres to administer"))
        with self.repo.read() as c:
            if self.principal is None or self.principal.role is Role.SECURITY_CELL:
                return self.repo.institutions(c)
            return self.repo.institutions(c, self.principal.administered())

    # -- contacts, language, networks ------------------------------------------------------------------------------
    def set_contacts(self, raw_id: str, contacts: str | list[str] | None = None, language: str | None = None) -> None:
        inst = self._centre(raw_id, AdminAction.CONTACTS)
        values: dict = {}
        if contacts is not None:
            values["contacts"] = ",".join(parse_contacts(contacts))
        if language is not None:
            if language not in LANGUAGES:
                raise AdminError(f"language must be one of {', '.join(LANGUAGES)}")
            values["language"] = language
        if not values:
            raise AdminError("nothing to change")
        if values.get("contacts") and not inst.contacts:
            # digests announce what arrives from now on, not a centre's whole past
            with self.repo.read() as c:
                values["digest_cursor"] = self.repo.newest_document_id(c, inst.id)
        with self.repo.write() as c:
            self.repo.configure_institution(c, inst.id, **values)
            values.pop("digest_cursor", None)
            self._audit(c, "institution-contacts", inst.id,
                        detail=" ".join(f"{k}={v or '-'}" for k, v in sorted(values.items())))
        self.mailbox.forget_institution(inst.id)

    def notify_test(self, raw_id: str) -> int:
        inst = self._centre(raw_id, AdminAction.NOTIFY_TEST)
        notifier = self.mailbox.notifier
        if notifier is None or not notifier.enabled:
            raise AdminConflict("mail is not configured on this gateway (smtp.host)")
        if not inst.contacts:
            raise AdminConflict(f"centre {inst.id} has no notification addresses")
        with self.repo.write() as c:
            outbox_id = notifier.queue(c, "test", inst, actor=self.actor)
            self._audit(c, "notify-queue", inst.id, detail=f"test mail, outbox {outbox_id}")
        return outbox_id

    def set_institution_networks(self, raw_id: str, networks: str) -> None:
        self._operator("this")
        inst_id = self._institution_id(raw_id)
        nets = self._networks(networks)
        with self.repo.write() as c:
            self.repo.configure_institution(c, inst_id, networks=nets)
            self._audit(c, "institution-networks", inst_id, detail=f"networks={nets or 'any'}")
        self.mailbox.forget_institution(inst_id)
        self.mailbox.forget_logins()
