"""Second factors of people: the civil-servant token card and device passwords.

Both keep hashes only. A token card is a set of numbered codes; a login is challenged with one number, and the
same number is asked again until it is answered or expires, so an attacker cannot cycle numbers until one they
know comes up. A device password is a long random secret for one drive mount, shown once, scoped to its
person, revocable, with an expiry; it is accepted on WebDAV only.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

import argon2

from storage.repository import Repository, as_utc, utcnow

_HASHER = argon2.PasswordHasher()


def _verify(stored: str, given: str) -> bool:
    from auth.authenticator import HASH_SLOTS  # one bound on argon2's memory for every verification

    try:
        with HASH_SLOTS:
            return _HASHER.verify(stored, given)
    except (argon2.exceptions.VerifyMismatchError, argon2.exceptions.InvalidHashError,
            argon2.exceptions.VerificationError):
        return False


_dummy_code: str | None = None


def _dummy_code_hash() -> str:
    """Verified against when there is no code to check, so that every answer costs one verification."""
    global _dummy_code
    if _dummy_code is None:
        _dummy_code = _HASHER.hash(f"{secrets.randbelow(10 ** 6):06d}-none")
    return _dummy_code


class TokenCards:
    def __init__(self, repo: Repository, *, codes: int = 24, challenge_seconds: float = 300,
                 clock=time.time):
        self.repo = repo
        self.codes = codes
        self.challenge_seconds = challenge_seconds
        self.clock = clock
        self._secret = os.urandom(32)

    def issue(self, account_id: int) -> list[tuple[int, str]]:
        """A new card (the old one is revoked). The codes are returned once and stored only as hashes."""
        card = [(n, f"{secrets.randbelow(10 ** 6):06d}") for n in range(1, self.codes + 1)]
        hashes = {n: _HASHER.hash(code) for n, code in card}
        with self.repo.write() as c:
            self.repo.revoke_token_cards(c, account_id)
            self.repo.add_token_card(c, account_id, hashes)
        return card

    def revoke(self, account_id: int) -> bool:
        with self.repo.write() as c:
            self.repo.clear_token_challenge(c, account_id)
            return self.repo.revoke_token_cards(c, account_id) > 0

    def has_card(self, account_id: int) -> bool:
        with self.repo.read() as c:
            return self.repo.has_token_card(c, account_id)

    def challenge(self, account_id: int | None, username: str) -> int:
        """The code number to ask. Unknown accounts get a stable made-up number, so the question itself says
        nothing about whether the account exists."""
        if account_id is None:
            digest = hmac.new(self._secret, username.encode("utf-8", "replace"), hashlib.sha256).digest()
            return int.from_bytes(digest[:4], "big") % self.codes + 1
        now = self.clock()
        with self.repo.write() as c:
            row = self.repo.token_challenge(c, account_id)
            if row is not None and row.expires_at > now:
                return row.number
            number = secrets.randbelow(self.codes) + 1
            self.repo.set_token_challenge(c, account_id, number, now + self.challenge_seconds)
            return number

    def verify(self, account_id: int, number: int, code: str) -> bool:
        """True when ``code`` answers the open challenge ``number``; an answered challenge is closed."""
        return self.check(account_id, number, code) and self.consume(account_id, number)

    def check(self, account_id: int | None, number: int, code: str) -> bool:
        """Does ``code`` answer the open challenge ``number``? Always one hash verification, whatever is wrong
        (no account, no open challenge, another number, no card), so that the time says nothing."""
        stored = None
        if account_id is not None:
            now = self.clock()
            with self.repo.read() as c:
                row = self.repo.token_challenge(c, account_id)
                stored = self.repo.token_code_hash(c, account_id, number)
            if row is None or row.number != number or row.expires_at <= now:
                stored = None
        matched = _verify(stored or _dummy_code_hash(), code.strip())
        return matched and stored is not None

    def consume(self, account_id: int, number: int) -> bool:
        """Close the answered challenge; False when another login closed it first (a code counts once)."""
        with self.repo.write() as c:
            return self.repo.clear_token_challenge(c, account_id, number)


@dataclass(frozen=True)
class DevicePasswordInfo:
    id: int
    label: str
    created_at: object
    expires_at: object
    revoked: bool
    last_used_at: object


class DevicePasswords:
    """Secrets shown once and kept as hashes: a drive mount's password (kind "webdav"), or, as
    :class:`ApiTokens`, a script's token for the REST API (kind "api"). Each kind is only ever accepted where
    it belongs."""

    PREFIX = "ipdp"
    KIND = "webdav"

    def __init__(self, repo: Repository, *, days: int = 90):
        self.repo = repo
        self.days = days

    def create(self, account_id: int, label: str = "", days: int | None = None) -> tuple[int, str]:
        """Returns (id, secret). The secret is shown once; only its hash is kept."""
        lookup = secrets.token_hex(4)
        secret = f"{self.PREFIX}-{lookup}-{secrets.token_urlsafe(24)}"
        expires = utcnow() + timedelta(days=days or self.days)
        with self.repo.write() as c:
            device_id = self.repo.add_device_password(c, account_id, label[:100], lookup, _HASHER.hash(secret),
                                                      expires, kind=self.KIND)
        return device_id, secret

    @classmethod
    def looks_like_one(cls, secret: str) -> bool:
        parts = secret.split("-", 2)
        return len(parts) == 3 and parts[0] == cls.PREFIX and len(parts[1]) == 8

    def verify(self, account_id: int | None, secret: str) -> int | None:
        """The id of the live secret ``secret`` is (of ``account_id``, or of anyone when None), or None."""
        found = self.find(account_id, secret)
        return found[0] if found else None

    def find(self, account_id: int | None, secret: str) -> tuple[int, int] | None:
        """(id, account id) of the live secret, or None."""
        if not self.looks_like_one(secret):
            return None
        lookup = secret.split("-", 2)[1]
        now = utcnow()
        with self.repo.read() as c:
            rows = self.repo.device_passwords(c, account_id, lookup, kind=self.KIND)
        for r in rows:
            if r.revoked_at is None and as_utc(r.expires_at) > now and _verify(r.secret_hash, secret):
                with self.repo.write() as c:
                    self.repo.touch_device_password(c, r.id)
                return r.id, r.account_id
        return None

    def is_live(self, account_id: int, device_id: int) -> bool:
        """Not revoked, not expired (no hashing: for logins remembered a short while)."""
        now = utcnow()
        with self.repo.read() as c:
            return any(r.id == device_id and r.revoked_at is None and as_utc(r.expires_at) > now
                       for r in self.repo.device_passwords(c, account_id, kind=self.KIND))

    def list(self, account_id: int) -> list[DevicePasswordInfo]:
        with self.repo.read() as c:
            return [DevicePasswordInfo(r.id, r.label, as_utc(r.created_at), as_utc(r.expires_at),
                                       r.revoked_at is not None, as_utc(r.last_used_at))
                    for r in self.repo.device_passwords(c, account_id, kind=self.KIND)]

    def revoke(self, account_id: int, device_id: int) -> bool:
        with self.repo.write() as c:
            return self.repo.revoke_device_password(c, account_id, device_id, kind=self.KIND)


class ApiTokens(DevicePasswords):
    """Tokens for scripts using the REST API (``Authorization: Bearer ipat-...``); never a WebDAV password."""

    PREFIX = "ipat"
    KIND = "api"
