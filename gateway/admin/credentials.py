"""Credentials beyond the first factor: people's token cards (issued and revoked by the operator), device
passwords and API tokens (each person manages their own; the operator anyone's; the security cell those of POD MI's
uploaders, which read receipts through the REST API with them).

The services that make and keep them (:mod:`auth.secondfactor`) are the administration's collaborators
(:class:`gateway.admin.base.Collaborators`), declared in :mod:`auth.interfaces`; secrets are shown once and only
their hashes kept. Every creation and revocation, and every refused attempt on someone else's, is on the record.
"""
from __future__ import annotations

from auth.principal import Role
from gateway.admin.base import AdminBase
from storage.errors import AdminError, AdminForbidden, AdminNotFound


class CredentialAdmin(AdminBase):
    """Token cards, device passwords, API tokens."""

    # -- token cards (the operator's) --------------------------------------------------------------------------
    def issue_token_card(self, name: str) -> list[tuple[int, str]]:
        self._operator("this")
        with self.repo.read() as c:
            acc = self._account(c, name)
        if Role(acc.role).is_machine:
            raise AdminError("token cards are for people")
        card = self.collaborators.tokens.issue(acc.id)
        with self.repo.write() as c:
            self._audit(c, "token-issue", acc.institution_id, detail=f"account={name} codes={len(card)}")
        return card

    def revoke_token_card(self, name: str) -> None:
        self._operator("this")
        with self.repo.read() as c:
            acc = self._account(c, name)
        if not self.collaborators.tokens.revoke(acc.id):
            raise AdminError(f"{name} has no token card")
        with self.repo.write() as c:
            self._audit(c, "token-revoke", acc.institution_id, detail=f"account={name}")

    # -- device passwords (a person's own) ---------------------------------------------------------------------
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
        device_id, secret = self.collaborators.devices.create(acc.id, label, days)
        with self.repo.write() as c:
            self._audit(c, "device-password-create", acc.institution_id,
                        detail=f"account={name} id={device_id} label={label!r}")
        return device_id, secret

    def device_passwords(self, name: str) -> list:
        with self.repo.read() as c:
            acc = self._account(c, name)
        self._own(acc, "device-password-list")
        return self.collaborators.devices.list(acc.id)

    def revoke_device_password(self, name: str, device_id: int) -> None:
        with self.repo.read() as c:
            acc = self._account(c, name)
        self._own(acc, "device-password-revoke")
        if not self.collaborators.devices.revoke(acc.id, device_id):
            raise AdminError(f"{name} has no live device password {device_id}")
        with self.repo.write() as c:
            self._audit(c, "device-password-revoke", acc.institution_id, detail=f"account={name} id={device_id}")

    # -- API tokens (a person's own; POD MI's uploaders', from the security cell) -------------------------------
    def _token_holder(self, account: str, action: str, uploader: bool):
        """The account whose API tokens the caller manages: a person their own (the operator anyone's); an
        uploader's -- a machine that cannot log in strongly to make its own -- the security cell's or the
        operator's, and its own to list and revoke. ``uploader``: the account must be an uploader (any other
        name answers as one that does not exist). A refusal is on the record. Whoever may not manage uploaders'
        tokens is refused before the name is looked up, whatever it is: the refusal does not tell which names are
        POD MI's machine accounts."""
        p = self.principal
        if uploader and p is not None and p.role is not Role.SECURITY_CELL and \
                not (p.role is Role.UPLOADER and p.name == account):
            exc = AdminForbidden("the security cell manages the API tokens of POD MI's uploaders")
            with self.repo.write() as c:
                self._audit(c, action, None, detail=f"account={account[:64]}; {exc.message}", outcome="denied")
            raise exc
        with self.repo.read() as c:
            acc = self.repo.account_by_name(c, account)
        if uploader and (acc is None or Role(acc.role) is not Role.UPLOADER):
            raise AdminNotFound(f"no uploader account {account[:64]!r}")
        if acc is None:
            raise AdminError(f"no account {account}")
        role = Role(acc.role)
        if role is Role.ARCHIVER:
            raise AdminError("API tokens are for people and POD MI's uploaders")
        if p is None or p.account_id == acc.id:
            return acc
        if role is Role.UPLOADER and p.role is Role.SECURITY_CELL:
            return acc
        exc = AdminForbidden("the security cell manages the API tokens of POD MI's uploaders" if role is Role.UPLOADER
                             else "people manage their own API tokens")
        with self.repo.write() as c:
            self._audit(c, action, acc.institution_id, detail=f"account={acc.name}; {exc.message}", outcome="denied")
        raise exc

    def create_api_token(self, account: str, label: str = "", days: int | None = None, *,
                         uploader: bool = False) -> tuple[int, str]:
        acc = self._token_holder(account, "api-token-create", uploader)
        if days is not None and not 1 <= days <= 365:
            raise AdminError("an API token lives 1 to 365 days")
        token_id, secret = self.collaborators.api_tokens.create(acc.id, label, days or 90)
        with self.repo.write() as c:
            self._audit(c, "api-token-create", acc.institution_id, detail=f"account={acc.name} id={token_id} "
                                                                           f"label={label[:100]!r}")
        return token_id, secret

    def api_tokens(self, account: str, *, uploader: bool = False) -> list:
        acc = self._token_holder(account, "api-token-list", uploader)
        return self.collaborators.api_tokens.list(acc.id)

    def revoke_api_token(self, account: str, token_id: int, *, uploader: bool = False) -> None:
        acc = self._token_holder(account, "api-token-revoke", uploader)
        if not self.collaborators.api_tokens.revoke(acc.id, token_id):
            raise AdminNotFound(f"no live API token {token_id}")
        with self.repo.write() as c:
            self._audit(c, "api-token-revoke", acc.institution_id, detail=f"account={acc.name} id={token_id}")
