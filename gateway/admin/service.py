"""Administration as a core service: centres and their switch-over, delegation, accounts, keys, grants,
restores, notifications, the audit record.

The CLI, the REST API and the web console all call these; every change (and every refused attempt) is put on
the record here, and every delegated operation asks :func:`auth.policy.decide_admin` first. ``principal`` None
is the operator on the gateway host (the CLI, holding the data folder and the master key): everything.
"""
from __future__ import annotations

import getpass
import re
from dataclasses import dataclass
from datetime import date, datetime, time as dtime, timedelta, timezone

import asyncssh
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from auth.authenticator import hash_password
from auth.policy import STATUSES, AdminAction, Decision, decide_admin
from auth.principal import Principal, Role
from gateway.core import enterprise
from gateway.core import path as vpath
from auth.networks import parse_networks
from gateway.core.content import ContentPolicy
from gateway.core.lifecycle import next_status
from gateway.core.localtime import BRUSSELS
from gateway.core.mailbox import Mailbox
from storage.errors import (AdminConflict, AdminError, AdminForbidden, AdminNotFound, CentreNotFound, Conflict,
                            GatewayError, IllegalTransition, NotFound)
from storage.repository import AuditRecord, Repository, utcnow

_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
LANGUAGES = ("nl", "fr")


def grant_end(until: date | str | None) -> datetime | None:
    """A grant "until DATE" lasts through that day in Brussels: it ends at the next local midnight."""
    if until is None or until == "":
        return None
    if isinstance(until, str):
        try:
            until = date.fromisoformat(until.strip())
        except ValueError:
            raise AdminError(f"not a date (YYYY-MM-DD): {until[:40]!r}") from None
    if until.year > utcnow().year + 10:
        raise AdminError("an end date is at most ten years ahead; leave it out for access until revoked")
    # stored in UTC: SQLite keeps the wall-clock time only
    end = datetime.combine(until + timedelta(days=1), dtime(0, 0), tzinfo=BRUSSELS).astimezone(timezone.utc)
    if end <= utcnow():
        raise AdminError(f"the end date {until.isoformat()} is in the past")
    if end > utcnow() + timedelta(days=3660):
        raise AdminError("an end date is at most ten years ahead; leave it out for access until revoked")
    return end


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


@dataclass
class Administration:
    mailbox: Mailbox
    actor: str = ""
    protocol: str = "cli"
    source: str = "local"
    #: who acts, for delegated operations; None = the operator on the gateway host
    principal: Principal | None = None

    def __post_init__(self):
        if self.principal is not None and not self.actor:
            self.actor = self.principal.name
        if not self.actor:
            try:
                self.actor = "cli:" + getpass.getuser()
            except Exception:  # pragma: no cover - no passwd entry
                self.actor = "cli"

    @property
    def repo(self) -> Repository:
        return self.mailbox.repo

    def _audit(self, c, action: str, institution_id: str | None = None, path: str = "", detail: str = "",
               document_id: int | None = None, outcome: str = "ok") -> None:
        self.repo.audit(c, AuditRecord(action, outcome, self.actor, self.protocol, self.source, institution_id, path,
                                       document_id, None, detail))

    # -- delegation ------------------------------------------------------------------------------------------
    def _refuse(self, action: AdminAction, institution_id: str | None, exc: AdminError) -> AdminError:
        with self.repo.write() as c:
            self._audit(c, "admin-" + action.value, institution_id, detail=exc.message, outcome="denied")
        return exc

    def _centre(self, raw_id: str, action: AdminAction):
        """The centre row, if the caller may do ``action`` to it. A centre the caller may not know about answers
        exactly as one that does not exist -- malformed ids included."""
        shown = str(raw_id)[:40]
        try:
            inst_id = enterprise.normalize(str(raw_id))
        except ValueError:
            raise self._refuse(action, None, CentreNotFound(f"no centre {shown}")) from None
        decision = decide_admin(self.principal, action, inst_id)
        if decision is Decision.HIDDEN:
            raise self._refuse(action, inst_id, CentreNotFound(f"no centre {shown}"))
        if decision is not Decision.ALLOWED:
            raise self._refuse(action, inst_id, AdminForbidden(f"{self.actor} may not {action.value} here"))
        with self.repo.read() as c:
            inst = self.repo.institution(c, inst_id)
        if inst is None:
            raise CentreNotFound(f"no centre {shown}")
        return inst

    def _operator(self, what: str) -> None:
        """Operations kept for the operator on the host (accounts, keys, centre settings)."""
        if self.principal is not None:
            raise self._refuse(AdminAction.VIEW, None, AdminForbidden(f"{what} is done by the operator (CLI)"))

    def may(self, action: AdminAction, institution_id: str | None = None) -> bool:
        return decide_admin(self.principal, action, institution_id) is Decision.ALLOWED

    # -- centres ---------------------------------------------------------------------------------------------
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

    # -- delegation: local administrators and the security consultant -------------------------------------------
    def _person(self, c, name: str, action: AdminAction, inst_id: str):
        acc = self.repo.account_by_name(c, name)
        if acc is None:
            directory = getattr(self.mailbox.authenticator, "directory", None)
            user = directory.lookup(name) if directory is not None and name else None
            if user is not None and user.enabled:
                acc = self.mailbox.authenticator._provision(user)
        if acc is not None and Role(acc.role) not in (Role.STAFF, Role.LOCAL_ADMIN) and self.principal is None:
            raise AdminError(f"only people (staff, local administrators) are given access or designated; {name} "
                             f"is {acc.role}")
        if acc is None or Role(acc.role) not in (Role.STAFF, Role.LOCAL_ADMIN):
            raise self._refuse(action, inst_id, AdminNotFound(f"no person account {name[:64]!r}"))
        return acc

    def set_local_admin(self, raw_id: str, account: str) -> None:
        inst = self._centre(raw_id, AdminAction.DESIGNATE)
        with self.repo.read() as c:
            acc = self._person(c, account, AdminAction.DESIGNATE, inst.id)
        if Role(acc.role) is Role.LOCAL_ADMIN and acc.institution_id and acc.institution_id != inst.id:
            raise AdminConflict(f"{acc.name} is local administrator of centre {acc.institution_id}; "
                                "remove that designation first")
        with self.repo.write() as c:
            self.repo.set_account(c, acc.id, role=Role.LOCAL_ADMIN.value, institution_id=inst.id)
            self._audit(c, "local-admin-set", inst.id, detail=f"account={acc.name}")
        self.mailbox.forget_logins()

    def unset_local_admin(self, raw_id: str, account: str) -> None:
        inst = self._centre(raw_id, AdminAction.DESIGNATE)
        with self.repo.write() as c:
            acc = self.repo.account_by_name(c, account)
            if acc is None or Role(acc.role) is not Role.LOCAL_ADMIN or acc.institution_id != inst.id:
                raise AdminNotFound(f"{account[:64]} is not a local administrator of centre {inst.id}")
            self.repo.set_account(c, acc.id, role=Role.STAFF.value, institution_id=None)
            self._audit(c, "local-admin-unset", inst.id, detail=f"account={acc.name}")
        self.mailbox.forget_logins()

    def set_security_consultant(self, raw_id: str, account: str | None) -> None:
        inst = self._centre(raw_id, AdminAction.DESIGNATE)
        acc = None
        if account:
            with self.repo.read() as c:
                acc = self._person(c, account, AdminAction.DESIGNATE, inst.id)
        with self.repo.write() as c:
            self.repo.configure_institution(c, inst.id, security_consultant_id=acc.id if acc else None)
            self._audit(c, "security-consultant-set", inst.id, detail=f"account={acc.name if acc else '-'}")
        self.mailbox.forget_logins()

    # -- contacts and language -----------------------------------------------------------------------------------
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

    def institutions(self) -> list:
        """Every centre for the operator and the security cell; a local administrator's own centres otherwise."""
        if decide_admin(self.principal, AdminAction.LIST_ALL) is not Decision.ALLOWED:
            raise self._refuse(AdminAction.LIST_ALL, None, AdminForbidden("no centres to administer"))
        with self.repo.read() as c:
            if self.principal is None or self.principal.role is Role.SECURITY_CELL:
                return self.repo.institutions(c)
            return self.repo.institutions(c, self.principal.administered())

    def _institution_id(self, raw_id: str) -> str:
        try:
            inst_id = enterprise.normalize(raw_id)
        except ValueError as exc:
            raise AdminError(str(exc)) from None
        with self.repo.read() as c:
            if self.repo.institution(c, inst_id) is None:
                raise AdminError(f"no centre {inst_id}")
        return inst_id

    # -- accounts --------------------------------------------------------------------------------------------
    def add_account(self, name: str, role: str, institution: str | None = None, ssh_keys: list[str] = (),
                    password: str | None = None, display_name: str = "", client_certs: list[str] = (), *,
                    allow_keys: bool = False, ldap: bool = False, nrn: str = "", networks: str = "") -> int:
        self._operator("adding accounts")
        if not name or len(name) > 64 or not all(ch.isalnum() or ch in "-_.@" for ch in name):
            raise AdminError("account names are 1-64 letters, digits, '-', '_', '.', '@'")
        try:
            r = Role(role)
        except ValueError:
            raise AdminError(f"unknown role {role!r} (one of {', '.join(x.value for x in Role)})") from None
        inst_id = self._institution_id(institution) if institution else None
        if r in (Role.ARCHIVER, Role.LOCAL_ADMIN) and inst_id is None:
            raise AdminError(f"a {r.value} account belongs to one centre: give --institution")
        if r in (Role.UPLOADER, Role.SECURITY_CELL) and inst_id is not None:
            raise AdminError(f"a {r.value} account does not belong to a centre")
        if r.is_machine and password:
            raise AdminError("machine accounts log in with SSH keys or certificates, not passwords")
        if password is not None and len(password) < 12:
            raise AdminError("passwords must be at least 12 characters")
        if r.is_machine and (allow_keys or ldap or nrn):
            raise AdminError("--allow-keys, --ldap and --nrn are for people's accounts")
        if ldap and password:
            raise AdminError("a directory account's password is the directory's")
        if nrn and not (len(nrn) == 11 and nrn.isdigit()):
            raise AdminError("a national register number has 11 digits")
        networks = self._networks(networks)
        parsed = []
        for text in ssh_keys:
            try:
                key = asyncssh.import_public_key(text)
            except (asyncssh.KeyImportError, ValueError):
                raise AdminError("not an OpenSSH public key") from None
            parsed.append(key)
        certs = []
        for pem in client_certs:
            try:
                cert = x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
            except ValueError:
                raise AdminError("not a PEM X.509 certificate") from None
            if not r.is_machine:
                raise AdminError("pinned client certificates are for machine accounts (people use their eID)")
            try:
                ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
            except x509.ExtensionNotFound:
                ca = False
            if ca:
                # a pinned certificate becomes a trust anchor of the HTTPS port: a CA could issue any identity
                raise AdminError("a CA certificate cannot be pinned to an account")
            certs.append(cert)
        with self.repo.write() as c:
            try:
                account_id = self.repo.add_account(c, name, r.value, inst_id,
                                                   hash_password(password) if password else None, display_name,
                                                   allow_keys=allow_keys, source="ldap" if ldap else "local",
                                                   nrn=nrn, networks=networks)
                for key in parsed:
                    self.repo.add_ssh_key(c, account_id, key.get_fingerprint("sha256"),
                                          key.export_public_key().decode().strip(), key.get_comment() or "")
                for cert in certs:
                    self.repo.add_client_certificate(
                        c, account_id, cert.fingerprint(hashes.SHA256()).hex(),
                        cert.public_bytes(serialization.Encoding.PEM).decode(), cert.subject.rfc4514_string()[:500])
            except Conflict as exc:
                raise AdminError(str(exc)) from None
            self._audit(c, "account-add", inst_id,
                        detail=f"account={name} role={r.value} keys={len(parsed)} certificates={len(certs)}")
        return account_id

    @staticmethod
    def _networks(text: str) -> str:
        try:
            return ",".join(str(n) for n in parse_networks(text or ""))
        except ValueError as exc:
            raise AdminError(str(exc)) from None

    def set_account_networks(self, name: str, networks: str) -> None:
        self._operator("this")
        nets = self._networks(networks)
        with self.repo.write() as c:
            acc = self._account(c, name)
            self.repo.set_account(c, acc.id, networks=nets)
            self._audit(c, "account-networks", acc.institution_id, detail=f"account={name} networks={nets or 'any'}")
        # remembered logins of this process re-check at once; other processes within Mailbox.PRINCIPAL_TTL
        self.mailbox.forget_logins(acc.id)

    def set_institution_networks(self, raw_id: str, networks: str) -> None:
        self._operator("this")
        inst_id = self._institution_id(raw_id)
        nets = self._networks(networks)
        with self.repo.write() as c:
            self.repo.configure_institution(c, inst_id, networks=nets)
            self._audit(c, "institution-networks", inst_id, detail=f"networks={nets or 'any'}")
        self.mailbox.forget_institution(inst_id)
        self.mailbox.forget_logins()

    def set_account_enabled(self, name: str, enabled: bool) -> None:
        self._operator("this")
        with self.repo.write() as c:
            acc = self._account(c, name)
            self.repo.set_account(c, acc.id, enabled=enabled)
            self._audit(c, "account-enable" if enabled else "account-disable", acc.institution_id,
                        detail=f"account={name}")
        self.mailbox.forget_logins(acc.id)

    # -- second factors ----------------------------------------------------------------------------------------
    def issue_token_card(self, name: str) -> list[tuple[int, str]]:
        self._operator("this")
        with self.repo.read() as c:
            acc = self._account(c, name)
        if Role(acc.role).is_machine:
            raise AdminError("token cards are for people")
        card = self.mailbox.authenticator.tokens.issue(acc.id)
        with self.repo.write() as c:
            self._audit(c, "token-issue", acc.institution_id, detail=f"account={name} codes={len(card)}")
        return card

    def revoke_token_card(self, name: str) -> None:
        self._operator("this")
        with self.repo.read() as c:
            acc = self._account(c, name)
        if not self.mailbox.authenticator.tokens.revoke(acc.id):
            raise AdminError(f"{name} has no token card")
        with self.repo.write() as c:
            self._audit(c, "token-revoke", acc.institution_id, detail=f"account={name}")

    def _own(self, acc, action: str) -> None:
        """A person (``principal``) acts on their own account's device passwords only; a refusal is on the
        record."""
        if self.principal is not None and self.principal.account_id != acc.id:
            exc = AdminForbidden("people manage their own device passwords only")
            with self.repo.write() as c:
                self._audit(c, action, acc.institution_id, detail=f"account={acc.name}; {exc.message}",
                            outcome="denied")
            raise exc

    def create_device_password(self, name: str, label: str = "", days: int | None = None) -> tuple[int, str]:
        with self.repo.read() as c:
            acc = self._account(c, name)
        self._own(acc, "device-password-create")
        if Role(acc.role).is_machine:
            raise AdminError("device passwords are for people")
        device_id, secret = self.mailbox.authenticator.devices.create(acc.id, label, days)
        with self.repo.write() as c:
            self._audit(c, "device-password-create", acc.institution_id,
                        detail=f"account={name} id={device_id} label={label!r}")
        return device_id, secret

    def device_passwords(self, name: str) -> list:
        with self.repo.read() as c:
            acc = self._account(c, name)
        self._own(acc, "device-password-list")
        return self.mailbox.authenticator.devices.list(acc.id)

    def revoke_device_password(self, name: str, device_id: int) -> None:
        with self.repo.read() as c:
            acc = self._account(c, name)
        self._own(acc, "device-password-revoke")
        if not self.mailbox.authenticator.devices.revoke(acc.id, device_id):
            raise AdminError(f"{name} has no live device password {device_id}")
        with self.repo.write() as c:
            self._audit(c, "device-password-revoke", acc.institution_id, detail=f"account={name} id={device_id}")

    def accounts(self) -> list:
        with self.repo.read() as c:
            return self.repo.accounts(c)

    def _account(self, c, name: str):
        acc = self.repo.account_by_name(c, name)
        if acc is None:
            raise AdminError(f"no account {name}")
        return acc

    # -- grants ----------------------------------------------------------------------------------------------
    def access(self, raw_id: str) -> list:
        """Who has access to the centre's mailbox, with what, since when, granted by whom, until when."""
        inst = self._centre(raw_id, AdminAction.VIEW_ACCESS)
        with self.repo.read() as c:
            return self.repo.grants_on(c, inst.id)

    def grant(self, account: str, institution: str, can_remove: bool = False, can_write: bool = False,
              until: date | str | None = None) -> None:
        inst = self._centre(institution, AdminAction.GRANT)
        if can_write and self.principal is not None:
            raise self._refuse(AdminAction.GRANT, inst.id,
                               AdminForbidden("write access (for test accounts) is granted by the operator only"))
        ends = grant_end(until)
        with self.repo.read() as c:
            acc = self._person(c, account, AdminAction.GRANT, inst.id)
        with self.repo.write() as c:
            if self.principal is not None:
                # a local administrator changing a grant keeps the write access only the operator gives
                can_write = any(g.institution_id == inst.id and g.can_write for g in self.repo.grants_of(c, acc.id))
            self.repo.set_grant(c, acc.id, inst.id, can_remove, self.actor, can_write, ends)
            self._audit(c, "grant", inst.id, detail=f"account={acc.name} remove={'yes' if can_remove else 'no'} "
                                                    f"write={'yes' if can_write else 'no'} "
                                                    f"until={ends.date().isoformat() if ends else '-'}")
        self.mailbox.forget_logins(acc.id)

    def revoke(self, account: str, institution: str) -> None:
        inst = self._centre(institution, AdminAction.GRANT)
        with self.repo.write() as c:
            acc = self.repo.account_by_name(c, account)
            if acc is None or not self.repo.revoke_grant(c, acc.id, inst.id):
                raise AdminNotFound(f"{account[:64]} has no access to {inst.id}")
            self._audit(c, "revoke", inst.id, detail=f"account={account}")
        self.mailbox.forget_logins(acc.id)

    def expire_grants(self) -> int:
        """Remove grants whose end date passed, each on the record (housekeeping)."""
        n = 0
        with self.repo.read() as c:  # runs every few seconds: take the write lock only when there is work
            if not self.repo.expired_grants(c, utcnow()):
                return 0
        with self.repo.write() as c:
            for g in self.repo.expired_grants(c, utcnow()):
                if self.repo.delete_grant(c, g.id):
                    self._audit(c, "grant-expire", g.institution_id, detail=f"account={g.name}")
                    n += 1
        return n

    # -- API tokens (the caller's own) -------------------------------------------------------------------------
    def create_api_token(self, account: str, label: str = "", days: int | None = None) -> tuple[int, str]:
        with self.repo.read() as c:
            acc = self._account(c, account)
        if Role(acc.role).is_machine:
            raise AdminError("API tokens are for people")
        if self.principal is not None and self.principal.account_id != acc.id:
            raise AdminForbidden("people create their own API tokens")
        if days is not None and not 1 <= days <= 365:
            raise AdminError("an API token lives 1 to 365 days")
        token_id, secret = self.mailbox.authenticator.api_tokens.create(acc.id, label, days or 90)
        with self.repo.write() as c:
            self._audit(c, "api-token-create", acc.institution_id, detail=f"account={acc.name} id={token_id} "
                                                                           f"label={label[:100]!r}")
        return token_id, secret

    def api_tokens(self, account: str) -> list:
        with self.repo.read() as c:
            acc = self._account(c, account)
        if self.principal is not None and self.principal.account_id != acc.id:
            raise AdminForbidden("people see their own API tokens")
        return self.mailbox.authenticator.api_tokens.list(acc.id)

    def revoke_api_token(self, account: str, token_id: int) -> None:
        with self.repo.read() as c:
            acc = self._account(c, account)
        if self.principal is not None and self.principal.account_id != acc.id:
            raise AdminForbidden("people revoke their own API tokens")
        if not self.mailbox.authenticator.api_tokens.revoke(acc.id, token_id):
            raise AdminNotFound(f"no live API token {token_id}")
        with self.repo.write() as c:
            self._audit(c, "api-token-revoke", acc.institution_id, detail=f"account={acc.name} id={token_id}")

    # -- documents -------------------------------------------------------------------------------------------
    def archived(self, raw_id: str, limit: int = 500) -> list:
        """Archived documents of a centre (names and dates; restorable)."""
        inst = self._centre(raw_id, AdminAction.RESTORE)
        with self.repo.read() as c:
            return self.repo.archived_in(c, inst.id, limit)

    def restore(self, institution: str, raw_path: str) -> int:
        inst_id = self._centre(institution, AdminAction.RESTORE).id
        rel = raw_path if raw_path.startswith("/" + inst_id) else "/" + inst_id + "/" + raw_path.lstrip("/")
        try:
            path = vpath.parse(rel)
        except NotFound:
            raise AdminError(f"not a document path: {raw_path}") from None
        if not path.parts or path.institution != inst_id:
            raise AdminError("give the document's path inside the mailbox")
        with self.repo.write() as c:
            archived = self.repo.archived_documents(c, inst_id, path.folder, path.name)
            if not archived:
                raise AdminNotFound(f"no archived document {path}")
            if self.repo.visible_document(c, inst_id, path.folder, path.name) is not None:
                raise AdminConflict(f"{path} holds another document now; restoring would overwrite it")
            doc = archived[0]
            if path.folder:
                self.repo.create_folders(c, inst_id, path.folder, self.actor)
            self.repo.set_state(c, doc.id, ("archived",), "committed", archived_at=None, archived_by=None)
            self._audit(c, "restore", inst_id, str(path), document_id=doc.id)
        return doc.id

    # -- failed logins and bans ------------------------------------------------------------------------------
    def bans(self, counting: bool = False) -> list:
        """Banned account names and source addresses (``counting``: also those with failures in the window);
        looking is on the record too."""
        self._operator("the list of bans")
        rows = self.mailbox.throttle.bans(counting=counting)
        with self.repo.write() as c:
            self._audit(c, "ban-list", detail=f"{sum(1 for b in rows if b.banned_until)} banned, "
                                              f"{len(rows)} listed")
        return rows

    def lift_ban(self, target: str):
        """Lift the ban (and forget the count) of an account name or a source address."""
        self._operator("lifting a ban")
        target = target.strip()
        if not target or len(target) > 100 or any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
            raise AdminError("give an account name or an IP address")
        lifted = self.mailbox.throttle.lift(target)
        if lifted is None:
            raise AdminNotFound(f"no ban or failure count for {target}")
        left = lifted.banned_until - self.mailbox.throttle.clock()
        state = f"ban lifted ({left:.0f} s left)" if lifted.banned_until else "not banned"
        with self.repo.write() as c:
            self._audit(c, "ban-lift", detail=f"{lifted.kind} {lifted.subject}: {state}, count {lifted.count} "
                                              "forgotten")
        return lifted

    # -- record ----------------------------------------------------------------------------------------------
    def audit_list(self, institution: str | None = None, limit: int = 50) -> list:
        if institution:
            inst_id = self._centre(institution, AdminAction.AUDIT).id
        else:
            self._operator("reading the whole record")
            inst_id = None
        with self.repo.read() as c:
            return self.repo.audit_events(c, institution_id=inst_id, limit=limit)

    def audit_verify(self) -> tuple[int, int | None]:
        self._operator("verifying the record")
        with self.repo.read() as c:
            return self.repo.verify_audit_chain(c)

