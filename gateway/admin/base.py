"""What every topic of the administration shares: who acts, the collaborators it is given, the record, and the
delegation checks.

:class:`AdminBase` holds the acting person (``principal`` None is the operator on the gateway host: the CLI,
holding the data folder and the master key) and puts every change and every refused attempt on the record.
Every delegated operation asks :func:`auth.policy.decide_admin` first (:meth:`AdminBase._centre`); operations kept
for the operator go through :meth:`AdminBase._operator`. The topic modules (``centres``, ``delegation``,
``accounts``, ``credentials``, ``grants``, ``documents``, ``record``) each add their operations on top, and
:class:`gateway.admin.service.Administration` is all of them.
"""
from __future__ import annotations

import getpass
from dataclasses import dataclass, field

from auth.interfaces import (AccountProvisioner, ApiTokenService, DevicePasswordService,
                             DirectoryService, TokenCardService)
from auth.networks import parse_networks
from auth.policy import AdminAction, Decision, decide_admin
from auth.principal import Principal, Role
from gateway.core import enterprise
from gateway.core.mailbox import Mailbox
from storage.errors import AdminError, AdminForbidden, AdminNotFound, CentreNotFound
from storage.repository import AuditRecord, Repository


@dataclass(frozen=True)
class Collaborators:
    """The services of ``auth/`` the administration uses besides the core: built once in ``gateway/services.py``
    (the same objects the authenticator is given) and passed to every :class:`Administration`."""

    tokens: TokenCardService
    devices: DevicePasswordService
    api_tokens: ApiTokenService
    #: provisions directory people designated or given access before their first login
    provisioner: AccountProvisioner
    #: the organisation's directory; None when none is configured
    directory: DirectoryService | None = None


@dataclass
class AdminBase:
    mailbox: Mailbox
    actor: str = ""
    protocol: str = "cli"
    source: str = "local"
    #: who acts, for delegated operations; None = the operator on the gateway host
    principal: Principal | None = None
    #: the auth services it uses, given by the one factory (:meth:`gateway.services.Services.administration`)
    collaborators: Collaborators = field(kw_only=True, repr=False)

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

    # -- delegation checks -----------------------------------------------------------------------------------
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

    # -- lookups the topics share ------------------------------------------------------------------------------
    def _institution_id(self, raw_id: str) -> str:
        try:
            inst_id = enterprise.normalize(raw_id)
        except ValueError as exc:
            raise AdminError(str(exc)) from None
        with self.repo.read() as c:
            if self.repo.institution(c, inst_id) is None:
                raise AdminError(f"no centre {inst_id}")
        return inst_id

    def _account(self, c, name: str):
        acc = self.repo.account_by_name(c, name)
        if acc is None:
            raise AdminError(f"no account {name}")
        return acc

    def _person(self, c, name: str, action: AdminAction, inst_id: str):
        """The person's account to designate or give access to; a directory person gets one on first sight."""
        acc = self.repo.account_by_name(c, name)
        if acc is None:
            directory = self.collaborators.directory
            user = directory.lookup(name) if directory is not None and name else None
            if user is not None and user.enabled:
                acc = self.collaborators.provisioner.provision(user)
        if acc is not None and Role(acc.role) not in (Role.STAFF, Role.LOCAL_ADMIN) and self.principal is None:
            raise AdminError(f"only people (staff, local administrators) are given access or designated; {name} "
                             f"is {acc.role}")
        if acc is None or Role(acc.role) not in (Role.STAFF, Role.LOCAL_ADMIN):
            raise self._refuse(action, inst_id, AdminNotFound(f"no person account {name[:64]!r}"))
        return acc

    @staticmethod
    def _networks(text: str) -> str:
        try:
            return ",".join(str(n) for n in parse_networks(text or ""))
        except ValueError as exc:
            raise AdminError(str(exc)) from None
