"""Turning credentials into an authenticated account.

The core service calls :meth:`GatewayAuthenticator.authenticate` from its one ``login`` and builds the
:class:`~auth.principal.Principal`. Failures raise :class:`AuthenticationFailed` whose ``message`` is always the
same generic text; the precise reason travels in ``reason`` for the audit record only.

First factors: SSH keys and certificates (proven by the SSH layer), pinned TLS client certificates, passwords
(argon2 hashes here, or the organisation's LDAP directory). Second factors: token card codes, the eID
certificate (its subject serialNumber must be the person's national register number), device passwords.
Which combinations each kind of account needs is decided by :func:`auth.factors.method_allowed`.

:class:`GatewayAuthenticator` satisfies :class:`auth.interfaces.Authenticator` (the protocol the core holds) and
:class:`auth.interfaces.AccountProvisioner`; the second-factor services and the directory it is given are declared
there too, and built in ``gateway/services.py``.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Set
from dataclasses import dataclass, field
import argon2

from auth import clientcert
from auth.clientcert import ClientCertificates, NotAnEid
from auth.factors import method_allowed
from auth.interfaces import ApiTokenService, DevicePasswordService, DirectoryService, TokenCardService
from auth.principal import Role
from auth.secondfactor import ApiTokens, DevicePasswords, TokenCards
from storage.errors import AuthenticationFailed, Conflict, ServiceUnavailable
from storage.repository import Repository


@dataclass(frozen=True)
class PublicKeyCredentials:
    """A public key whose possession the protocol layer has already verified (SSH signature)."""

    username: str
    fingerprint: str


@dataclass(frozen=True)
class CertificateCredentials:
    """An OpenSSH user certificate the protocol layer verified against a trusted user CA (signature and validity
    dates checked there). ``principals`` are the names the certificate was issued for: it logs in only an account
    it names, as OpenSSH requires; a certificate naming no principal names no account."""

    username: str
    ca_fingerprint: str
    key_id: str = ""
    principals: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClientCertificateCredentials:
    """The TLS client certificate (PEM or DER) whose key the client proved in the handshake; it logs in the machine
    account it is pinned to, matched exactly by fingerprint (:mod:`auth.clientcert`)."""

    certificate: str | bytes
    username: str = ""


@dataclass(frozen=True)
class PasswordCredentials:
    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class TokenCredentials:
    """Password, then the code with number ``number`` of the person's token card."""

    username: str
    password: str = field(repr=False)
    number: int = 0
    code: str = field(default="", repr=False)


@dataclass(frozen=True)
class EidCredentials:
    """Password, and the client certificate (PEM or DER) of the TLS handshake, which must be an eID authentication
    certificate: verified here against the eID trust anchors only, its subject serialNumber then the person's
    national register number (:mod:`auth.clientcert`)."""

    username: str
    password: str = field(repr=False)
    certificate: str | bytes = ""


@dataclass(frozen=True)
class DevicePasswordCredentials:
    username: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class ApiTokenCredentials:
    """``Authorization: Bearer ipat-...`` on the REST API; the token names its account."""

    secret: str = field(repr=False)
    username: str = ""


Credentials = (ApiTokenCredentials | PublicKeyCredentials | CertificateCredentials | ClientCertificateCredentials | PasswordCredentials
               | TokenCredentials | EidCredentials | DevicePasswordCredentials)


@dataclass(frozen=True)
class Authenticated:
    account_id: int
    method: str
    #: the device password used, so a remembered login can check it is still live
    device_id: int | None = None


_HASHER = argon2.PasswordHasher()
_dummy_hash: str | None = None


def _dummy() -> str:
    """A hash verified against when the account does not exist, so that the answer takes as long either way."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _HASHER.hash("not-a-real-password-0f4c2")
    return _dummy_hash


def hash_password(password: str) -> str:
    with HASH_SLOTS:
        return _HASHER.hash(password)


# Each argon2 verification takes 64 MiB and a core for tens of milliseconds: unbounded, 200 clients whose
# remembered logins expire together took the process to 2.1 GB (WebDAV benchmark). At most this many run at once.
HASH_SLOTS = threading.BoundedSemaphore(max(2, os.cpu_count() or 2))


def _verify(stored: str | None, password: str) -> bool:
    try:
        with HASH_SLOTS:
            return _HASHER.verify(stored or _dummy(), password) and stored is not None
    except (argon2.exceptions.VerifyMismatchError, argon2.exceptions.InvalidHashError,
            argon2.exceptions.VerificationError):
        return False


class GatewayAuthenticator:
    def __init__(self, repo: Repository, trusted_ca_fingerprints: Set[str] = frozenset(), *,
                 tokens: TokenCardService | None = None, devices: DevicePasswordService | None = None,
                 directory: DirectoryService | None = None, second_factor_required: bool = True,
                 api_tokens: ApiTokenService | None = None, client_certs: ClientCertificates | None = None):
        self.repo = repo
        #: the eID trust anchors and CRLs that TLS client certificates are judged by
        self.client_certs = client_certs or ClientCertificates()
        #: the SSH user CAs' fingerprints (a live view: ``instpages reload`` changes them in place)
        self.trusted_ca_fingerprints = trusted_ca_fingerprints
        self.tokens: TokenCardService = tokens or TokenCards(repo)
        self.devices: DevicePasswordService = devices or DevicePasswords(repo)
        self.api_tokens: ApiTokenService = api_tokens or ApiTokens(repo, days=365)
        self.directory = directory  # auth.ldap.directory.Directory, or None
        self.second_factor_required = second_factor_required

    # -- lookups ---------------------------------------------------------------------------------------------
    def account(self, username: str):
        """The canonical account a login name stands for: the account of that exact name; else, when a directory
        is configured, the one directory account whose name equals it under the directory's matching rule
        (case-insensitive: ``ALICE`` and ``Alice`` are ``alice``, not a second spelling that escapes her
        settings). None for an unknown (or ambiguous) name."""
        with self.repo.read() as c:
            acc = self.repo.account_by_name(c, username)
            if acc is not None or self.directory is None or not username:
                return acc
            folded = username.casefold()
            same = [a for a in self.repo.directory_accounts_named(c, username) if a.name.casefold() == folded]
        return same[0] if len(same) == 1 else None

    def pinned_account(self, certificate: str | bytes):
        """The account a presented client certificate is pinned to (exactly, by fingerprint), or None."""
        cert = clientcert.load(certificate)
        if cert is None:
            return None
        with self.repo.read() as c:
            return self.repo.account_for_certificate(c, clientcert.fingerprint(cert))

    def eid_nrn(self, certificate: str | bytes) -> str:
        """The national register number of a presented client certificate that is a valid eID, else "".
        Front-ends ask it to choose the login kind (and the login form); it proves nothing by itself."""
        try:
            return self._eid(certificate)
        except AuthenticationFailed:
            return ""

    def _eid(self, certificate: str | bytes) -> str:
        cert = clientcert.load(certificate)
        if cert is None:
            raise AuthenticationFailed("no eID certificate in the TLS handshake")
        try:
            nrn = self.client_certs.eid_nrn(cert)
        except NotAnEid as exc:
            raise AuthenticationFailed(f"the client certificate is not a valid eID: {exc.reason}") from None
        if self.pinned_account(certificate) is not None:
            raise AuthenticationFailed("the client certificate is pinned to a machine account, not an eID")
        return nrn

    def accepts_public_key(self, username: str, fingerprint: str) -> bool:
        with self.repo.read() as c:
            acc = self.repo.account_for_key(c, fingerprint)
        if not (acc and acc.enabled and acc.name == username):
            return False
        return method_allowed(Role(acc.role), "publickey", "sftp", allow_keys=bool(acc.allow_keys))

    # -- the decision ----------------------------------------------------------------------------------------
    def _permit(self, acc, method: str, protocol: str) -> Authenticated:
        if not acc.enabled:
            raise AuthenticationFailed("account disabled")
        if not method_allowed(Role(acc.role), method, protocol, second_factor_required=self.second_factor_required,
                              allow_keys=bool(acc.allow_keys)):
            raise AuthenticationFailed(f"{method} is not enough for a {acc.role} account over {protocol}")
        return Authenticated(acc.id, method)

    def _first_factor(self, username: str, password: str):
        """The account whose password this is, verified locally or by the directory; or raise."""
        acc, failure = self._check_first_factor(username, password)
        if failure is not None:
            raise failure
        return acc

    def _check_first_factor(self, username: str, password: str) -> tuple:
        """(account or None, None when the password is right or the AuthenticationFailed saying why not).
        ServiceUnavailable is raised."""
        if not password:
            return None, AuthenticationFailed("empty password")
        acc = self.account(username)
        if acc is not None and acc.source == "ldap" or acc is None and self.directory is not None:
            if self.directory is None:
                return acc, AuthenticationFailed("directory account but no directory configured")
            try:
                user = self.directory.authenticate(username, password)
            except AuthenticationFailed as exc:
                return acc, exc
            acc = acc or self.account(user.username) or self.provision(user)
            if acc is None or acc.source != "ldap":
                return None, AuthenticationFailed(f"the directory's {user.username!r} is a local account's name")
            return acc, None
        if not _verify(acc.password_hash if acc is not None else None, password) or acc is None:
            return acc, AuthenticationFailed("unknown account" if acc is None else "wrong password",
                                             unknown_name=acc is None)
        return acc, None

    def provision(self, user):
        """A directory person seen for the first time (a login, or being designated or given access): an account
        row (role staff) to hang grants and records on. The account, created or found."""

        with self.repo.write() as c:
            try:
                self.repo.add_account(c, user.username, Role.STAFF.value, None, None, user.display_name[:200],
                                      source="ldap", nrn=(user.nrn or "")[:11])
            except Conflict:
                pass
        return self.account(user.username)

    def authenticate(self, creds: Credentials, protocol: str = "sftp") -> Authenticated:
        if isinstance(creds, PublicKeyCredentials):
            with self.repo.read() as c:
                acc = self.repo.account_for_key(c, creds.fingerprint)
            if acc is None or acc.name != creds.username:
                raise AuthenticationFailed("public key not registered for this account")
            return self._permit(acc, "publickey", protocol)

        if isinstance(creds, CertificateCredentials):
            if creds.ca_fingerprint not in self.trusted_ca_fingerprints:
                raise AuthenticationFailed("certificate from an untrusted CA")
            if creds.username not in creds.principals:
                raise AuthenticationFailed("certificate names no principal" if not creds.principals
                                           else "certificate does not name this account as a principal")
            acc = self.account(creds.username)
            if acc is None:
                raise AuthenticationFailed("certificate principal names no account")
            return self._permit(acc, "certificate", protocol)

        if isinstance(creds, ClientCertificateCredentials):
            cert = clientcert.load(creds.certificate)
            acc = self.pinned_account(creds.certificate)
            if acc is None:
                raise AuthenticationFailed("client certificate not registered")
            if self.client_certs.is_revoked(cert):
                raise AuthenticationFailed(f"client certificate revoked (serial {cert.serial_number:x})")
            return self._permit(acc, "client-certificate", protocol)

        if isinstance(creds, DevicePasswordCredentials):
            acc = self.account(creds.username)
            device_id = self.devices.verify(acc.id, creds.secret) if acc is not None else None
            if device_id is None:
                _verify(None, creds.secret)  # comparable timing
                raise AuthenticationFailed("unknown account" if acc is None else "not a valid device password",
                                           unknown_name=acc is None)
            permitted = self._permit(acc, "device-password", protocol)
            return Authenticated(permitted.account_id, permitted.method, device_id)

        if isinstance(creds, ApiTokenCredentials):
            found = self.api_tokens.find(None, creds.secret)
            if found is None:
                _verify(None, creds.secret)  # comparable timing
                raise AuthenticationFailed("not a valid API token", unknown_name=True)
            with self.repo.read() as c:
                acc = self.repo.account(c, found[1])
            permitted = self._permit(acc, "api-token", protocol)
            return Authenticated(permitted.account_id, permitted.method, found[0])

        if isinstance(creds, TokenCredentials):
            # the same work whatever is wrong: the password AND the code are verified, in this order, even after
            # the password failed, so that the time taken says nothing about which was right
            acc, failure = self._check_first_factor(creds.username, creds.password)
            code_ok = self.tokens.check(acc.id if acc is not None else None, creds.number, creds.code)
            if failure is not None:
                raise failure
            if not code_ok or not self.tokens.consume(acc.id, creds.number):
                raise AuthenticationFailed(f"wrong or expired token code (number {creds.number})")
            return self._permit(acc, "password+token", protocol)

        if isinstance(creds, EidCredentials):
            acc = self._first_factor(creds.username, creds.password)
            presented = self._eid(creds.certificate)
            nrn = acc.nrn
            if acc.source == "ldap" and self.directory is not None:
                user = self.directory.lookup(acc.name)
                nrn = user.nrn if user is not None else ""
            if not nrn or presented != nrn:
                raise AuthenticationFailed("the eID certificate belongs to someone else")
            return self._permit(acc, "password+eid", protocol)

        if isinstance(creds, PasswordCredentials):
            acc = self._first_factor(creds.username, creds.password)
            return self._permit(acc, "password", protocol)

        raise AuthenticationFailed("unsupported credentials")  # pragma: no cover


# the name the services wiring and older tests use
LocalAuthenticator = GatewayAuthenticator

__all__ = ["ApiTokenCredentials", "AuthenticationFailed", "Authenticated", "CertificateCredentials",
           "ClientCertificateCredentials", "DevicePasswordCredentials", "EidCredentials", "GatewayAuthenticator",
           "LocalAuthenticator", "PasswordCredentials", "PublicKeyCredentials", "ServiceUnavailable",
           "TokenCredentials", "hash_password"]
