"""Turning credentials into an authenticated account.

The authenticator is pluggable (LDAP and second factors arrive as further implementations); the core service
calls :meth:`Authenticator.authenticate` from its one ``login`` and builds the :class:`~auth.principal.Principal`.
Failures raise :class:`AuthenticationFailed` whose ``message`` is always the same generic text; the precise
reason travels in ``reason`` for the audit record only.
"""
from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Protocol

import argon2

from auth.principal import Role
from gateway.errors import AuthenticationFailed as _GenericFailure
from storage.repository import Repository


class AuthenticationFailed(_GenericFailure):
    def __init__(self, reason: str):
        super().__init__()  # generic message for the client
        self.reason = reason  # server-side only


@dataclass(frozen=True)
class PublicKeyCredentials:
    """A public key whose possession the protocol layer has already verified (SSH signature)."""

    username: str
    fingerprint: str


@dataclass(frozen=True)
class CertificateCredentials:
    """An OpenSSH user certificate the protocol layer verified against a trusted user CA (validity and
    principal checked there)."""

    username: str
    ca_fingerprint: str
    key_id: str = ""


@dataclass(frozen=True)
class ClientCertificateCredentials:
    """An X.509 client certificate the TLS layer verified (chain and validity); pinned to a machine account by
    the SHA-256 fingerprint of its DER encoding."""

    fingerprint: str
    username: str = ""


@dataclass(frozen=True)
class PasswordCredentials:
    username: str
    password: str = field(repr=False)


Credentials = PublicKeyCredentials | CertificateCredentials | ClientCertificateCredentials | PasswordCredentials


@dataclass(frozen=True)
class Authenticated:
    account_id: int
    method: str


class Authenticator(Protocol):
    def authenticate(self, creds: Credentials) -> Authenticated: ...

    def accepts_public_key(self, username: str, fingerprint: str) -> bool: ...


_HASHER = argon2.PasswordHasher()
_dummy_hash: str | None = None


def _dummy() -> str:
    """A hash verified against when the account does not exist, so that the answer takes as long either way."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = _HASHER.hash("not-a-real-password-0f4c2")
    return _dummy_hash


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


class LocalAuthenticator:
    """Accounts, keys and password hashes in the gateway's own database."""

    def __init__(self, repo: Repository, trusted_ca_fingerprints: frozenset[str] = frozenset()):
        self.repo = repo
        self.trusted_ca_fingerprints = trusted_ca_fingerprints

    def accepts_public_key(self, username: str, fingerprint: str) -> bool:
        with self.repo.read() as c:
            acc = self.repo.account_for_key(c, fingerprint)
        return bool(acc and acc.enabled and hmac.compare_digest(acc.name, username))

    def authenticate(self, creds: Credentials) -> Authenticated:
        if isinstance(creds, PublicKeyCredentials):
            with self.repo.read() as c:
                acc = self.repo.account_for_key(c, creds.fingerprint)
            if acc is None or acc.name != creds.username:
                raise AuthenticationFailed("public key not registered for this account")
            if not acc.enabled:
                raise AuthenticationFailed("account disabled")
            return Authenticated(acc.id, "publickey")

        if isinstance(creds, CertificateCredentials):
            if creds.ca_fingerprint not in self.trusted_ca_fingerprints:
                raise AuthenticationFailed("certificate from an untrusted CA")
            with self.repo.read() as c:
                acc = self.repo.account_by_name(c, creds.username)
            if acc is None:
                raise AuthenticationFailed("certificate principal names no account")
            if not acc.enabled:
                raise AuthenticationFailed("account disabled")
            if not Role(acc.role).is_machine:
                raise AuthenticationFailed("certificates are for machine accounts")
            return Authenticated(acc.id, "certificate")

        if isinstance(creds, ClientCertificateCredentials):
            with self.repo.read() as c:
                acc = self.repo.account_for_certificate(c, creds.fingerprint)
            if acc is None:
                raise AuthenticationFailed("client certificate not registered")
            if not acc.enabled:
                raise AuthenticationFailed("account disabled")
            if not Role(acc.role).is_machine:
                raise AuthenticationFailed("pinned client certificates are for machine accounts")
            return Authenticated(acc.id, "client-certificate")

        if isinstance(creds, PasswordCredentials):
            if not creds.password:
                raise AuthenticationFailed("empty password")
            with self.repo.read() as c:
                acc = self.repo.account_by_name(c, creds.username)
            stored = acc.password_hash if acc is not None and acc.password_hash else _dummy()
            try:
                ok = _HASHER.verify(stored, creds.password)
            except (argon2.exceptions.VerifyMismatchError, argon2.exceptions.InvalidHashError):
                ok = False
            if acc is None:
                raise AuthenticationFailed("unknown account")
            if not ok or not acc.password_hash:
                raise AuthenticationFailed("wrong password")
            if not acc.enabled:
                raise AuthenticationFailed("account disabled")
            if Role(acc.role).is_machine:
                raise AuthenticationFailed("machine accounts log in with keys")
            return Authenticated(acc.id, "password")

        raise AuthenticationFailed("unsupported credentials")  # pragma: no cover
