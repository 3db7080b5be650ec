"""The services of ``auth/`` as their callers see them: one protocol per collaborator.

The core (:class:`gateway.core.mailbox.Mailbox`) holds an :class:`Authenticator`; the administration
(:mod:`gateway.admin`) is given the second-factor services, the directory and the provisioning of directory
people. Both are built in one place, ``gateway/services.py``, which passes the same objects to everyone who needs
them. The implementations satisfy these protocols structurally:

- :class:`TokenCardService` -- :class:`auth.secondfactor.TokenCards`
- :class:`DevicePasswordService` -- :class:`auth.secondfactor.DevicePasswords`
- :class:`ApiTokenService` -- :class:`auth.secondfactor.ApiTokens`
- :class:`DirectoryService` -- :class:`auth.ldap.directory.Directory` (the organisation's LDAP directory)
- :class:`AccountProvisioner` and :class:`Authenticator` -- :class:`auth.authenticator.GatewayAuthenticator`

Modelled on warehouse's ``accounts/interfaces.py``; plain :class:`typing.Protocol`, nothing to register.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from auth.authenticator import Authenticated, Credentials
    from auth.ldap.person import DirectoryUser
    from auth.secondfactor import DevicePasswordInfo
    from storage.models import Account


class TokenCardService(Protocol):
    """The civil-servant token card of a person: numbered codes, one number asked per login."""

    def issue(self, account_id: int) -> list[tuple[int, str]]:
        """A new card (the old one revoked): (number, code) pairs, shown once."""

    def revoke(self, account_id: int) -> bool:
        """False when the person had no card."""

    def challenge(self, account_id: int | None, username: str) -> int:
        """The code number to ask (a stable made-up one for unknown names)."""

    def check(self, account_id: int | None, number: int, code: str) -> bool:
        """Does ``code`` answer the open challenge ``number``? Always the same work, whatever is wrong."""

    def consume(self, account_id: int, number: int) -> bool:
        """Close the answered challenge; False when another login closed it first."""


class SecretService(Protocol):
    """Secrets shown once, kept as hashes, scoped to one account, revocable, with an expiry."""

    def create(self, account_id: int, label: str = "", days: int | None = None) -> tuple[int, str]:
        """(id, secret); the secret is shown once."""

    def list(self, account_id: int) -> list[DevicePasswordInfo]:
        """The account's secrets (never the secrets themselves)."""

    def revoke(self, account_id: int, device_id: int) -> bool:
        """False when the account has no such live secret."""

    def find(self, account_id: int | None, secret: str) -> tuple[int, int] | None:
        """(id, account id) of the live secret, or None."""

    def is_live(self, account_id: int, device_id: int) -> bool:
        """Not revoked, not expired (no hashing: for logins remembered a short while)."""


class DevicePasswordService(SecretService, Protocol):
    """A drive mount's password, accepted on WebDAV only."""

    def verify(self, account_id: int | None, secret: str) -> int | None:
        """The id of the live device password ``secret`` is, or None."""


class ApiTokenService(SecretService, Protocol):
    """A script's token for the REST API (``Authorization: Bearer ipat-...``), never a WebDAV password."""


class DirectoryService(Protocol):
    """The organisation's directory of people (LDAP)."""

    def authenticate(self, username: str, password: str) -> DirectoryUser:
        """The person's fresh entry when the password is right; raises AuthenticationFailed otherwise."""

    def lookup(self, username: str) -> DirectoryUser | None:
        """The person's entry (enabled or not), or None."""

    def centre_access(self, user: DirectoryUser) -> dict[str, str]:
        """Centre id -> "read", "remove" or "admin", from the person's groups."""

    def invalidate(self, username: str | None = None) -> None:
        """Forget cached entries (all, or one person's): ``instpages reload`` on every gateway process."""


class AccountProvisioner(Protocol):
    """Accounts for directory people, made on first sight (a login, or being designated or given access)."""

    def provision(self, user: DirectoryUser) -> Account | None:
        """The account row of ``user`` (role staff, source ldap), created when there is none yet."""


class Authenticator(AccountProvisioner, Protocol):
    """Turning credentials into an authenticated account: what the core calls, at login and for the logins it
    remembers (whether a device password or an API token is still live), and the token card number to ask."""

    tokens: TokenCardService
    devices: DevicePasswordService
    api_tokens: ApiTokenService
    #: None when no directory is configured
    directory: DirectoryService | None

    def authenticate(self, creds: Credentials, protocol: str = "sftp") -> Authenticated:
        """The account and method, or raises AuthenticationFailed."""

    def account(self, username: str) -> Account | None:
        """The canonical account a login name stands for, or None."""

    def pinned_account(self, certificate: str | bytes) -> Account | None:
        """The account a TLS client certificate is pinned to, or None."""

    def eid_nrn(self, certificate: str | bytes) -> str:
        """The national register number of a valid eID certificate, else ""."""

    def accepts_public_key(self, username: str, fingerprint: str) -> bool:
        """Would this SSH key log ``username`` in (asked before the signature is checked)?"""
