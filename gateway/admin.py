"""Administration as a core service: centres, accounts, keys, grants, restores, the audit record.

The CLI (and later the REST API and web console) call these; every change is put on the record here.
"""
from __future__ import annotations

import getpass
from dataclasses import dataclass

import asyncssh
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from auth.authenticator import hash_password
from auth.policy import STATUSES
from auth.principal import Role
from gateway import enterprise
from gateway import path as vpath
from auth.networks import parse_networks
from gateway.content import ContentPolicy
from gateway.errors import GatewayError, NotFound
from gateway.mailbox import Mailbox
from storage.repository import AuditRecord, Conflict, Repository


class AdminError(GatewayError):
    """A refused administrative request; the message says why."""


@dataclass
class Administration:
    mailbox: Mailbox
    actor: str = ""
    protocol: str = "cli"
    source: str = "local"

    def __post_init__(self):
        if not self.actor:
            try:
                self.actor = "cli:" + getpass.getuser()
            except Exception:  # pragma: no cover - no passwd entry
                self.actor = "cli"

    @property
    def repo(self) -> Repository:
        return self.mailbox.repo

    def _audit(self, c, action: str, institution_id: str | None = None, path: str = "", detail: str = "",
               document_id: int | None = None) -> None:
        self.repo.audit(c, AuditRecord(action, "ok", self.actor, self.protocol, self.source, institution_id, path,
                                       document_id, None, detail))

    # -- centres ---------------------------------------------------------------------------------------------
    def add_institution(self, raw_id: str, name: str, status: str = "paper", content_types: str | None = None,
                        mutable: bool = False) -> str:
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

    def set_status(self, raw_id: str, status: str) -> str:
        inst_id = self._institution_id(raw_id)
        if status not in STATUSES:
            raise AdminError(f"unknown status {status!r} (one of {', '.join(STATUSES)})")
        with self.repo.write() as c:
            old = self.repo.set_institution_status(c, inst_id, status)
            if old is None:
                raise AdminError(f"no centre {inst_id}")
            self._audit(c, "institution-status", inst_id, detail=f"{old} -> {status}")
        self.mailbox.forget_institution(inst_id)
        return old

    def institutions(self) -> list:
        with self.repo.read() as c:
            return self.repo.institutions(c)

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
        nets = self._networks(networks)
        with self.repo.write() as c:
            acc = self._account(c, name)
            self.repo.set_account(c, acc.id, networks=nets)
            self._audit(c, "account-networks", acc.institution_id, detail=f"account={name} networks={nets or 'any'}")

    def set_institution_networks(self, raw_id: str, networks: str) -> None:
        inst_id = self._institution_id(raw_id)
        nets = self._networks(networks)
        with self.repo.write() as c:
            self.repo.configure_institution(c, inst_id, networks=nets)
            self._audit(c, "institution-networks", inst_id, detail=f"networks={nets or 'any'}")
        self.mailbox.forget_institution(inst_id)

    def set_account_enabled(self, name: str, enabled: bool) -> None:
        with self.repo.write() as c:
            acc = self._account(c, name)
            self.repo.set_account(c, acc.id, enabled=enabled)
            self._audit(c, "account-enable" if enabled else "account-disable", acc.institution_id,
                        detail=f"account={name}")

    # -- second factors ----------------------------------------------------------------------------------------
    def issue_token_card(self, name: str) -> list[tuple[int, str]]:
        with self.repo.read() as c:
            acc = self._account(c, name)
        if Role(acc.role).is_machine:
            raise AdminError("token cards are for people")
        card = self.mailbox.authenticator.tokens.issue(acc.id)
        with self.repo.write() as c:
            self._audit(c, "token-issue", acc.institution_id, detail=f"account={name} codes={len(card)}")
        return card

    def revoke_token_card(self, name: str) -> None:
        with self.repo.read() as c:
            acc = self._account(c, name)
        if not self.mailbox.authenticator.tokens.revoke(acc.id):
            raise AdminError(f"{name} has no token card")
        with self.repo.write() as c:
            self._audit(c, "token-revoke", acc.institution_id, detail=f"account={name}")

    def create_device_password(self, name: str, label: str = "", days: int | None = None) -> tuple[int, str]:
        with self.repo.read() as c:
            acc = self._account(c, name)
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
        return self.mailbox.authenticator.devices.list(acc.id)

    def revoke_device_password(self, name: str, device_id: int) -> None:
        with self.repo.read() as c:
            acc = self._account(c, name)
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
    def grant(self, account: str, institution: str, can_remove: bool = False, can_write: bool = False) -> None:
        inst_id = self._institution_id(institution)
        with self.repo.write() as c:
            acc = self._account(c, account)
            if Role(acc.role) not in (Role.STAFF, Role.LOCAL_ADMIN):
                raise AdminError(f"grants are for staff and local administrators; {account} is {acc.role}")
            self.repo.set_grant(c, acc.id, inst_id, can_remove, self.actor, can_write)
            self._audit(c, "grant", inst_id, detail=f"account={account} remove={'yes' if can_remove else 'no'} "
                                                    f"write={'yes' if can_write else 'no'}")

    def revoke(self, account: str, institution: str) -> None:
        inst_id = self._institution_id(institution)
        with self.repo.write() as c:
            acc = self._account(c, account)
            if not self.repo.revoke_grant(c, acc.id, inst_id):
                raise AdminError(f"{account} has no grant on {inst_id}")
            self._audit(c, "revoke", inst_id, detail=f"account={account}")

    # -- documents -------------------------------------------------------------------------------------------
    def restore(self, institution: str, raw_path: str) -> int:
        inst_id = self._institution_id(institution)
        rel = raw_path if raw_path.startswith("/" + inst_id) else "/" + inst_id + "/" + raw_path.lstrip("/")
        try:
            path = vpath.parse(rel)
        except NotFound:
            raise AdminError(f"not a document path: {raw_path}") from None
        if not path.parts:
            raise AdminError("give the document's path inside the mailbox")
        with self.repo.write() as c:
            archived = self.repo.archived_documents(c, inst_id, path.folder, path.name)
            if not archived:
                raise AdminError(f"no archived document {path}")
            if self.repo.visible_document(c, inst_id, path.folder, path.name) is not None:
                raise AdminError(f"{path} holds another document now; restoring would overwrite it")
            doc = archived[0]
            if path.folder:
                self.repo.create_folders(c, inst_id, path.folder, self.actor)
            self.repo.set_state(c, doc.id, ("archived",), "committed", archived_at=None, archived_by=None)
            self._audit(c, "restore", inst_id, str(path), document_id=doc.id)
        return doc.id

    # -- record ----------------------------------------------------------------------------------------------
    def audit_list(self, institution: str | None = None, limit: int = 50) -> list:
        inst_id = self._institution_id(institution) if institution else None
        with self.repo.read() as c:
            return self.repo.audit_events(c, institution_id=inst_id, limit=limit)

    def audit_verify(self) -> tuple[int, int | None]:
        with self.repo.read() as c:
            return self.repo.verify_audit_chain(c)

