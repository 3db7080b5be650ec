"""Logins and the sessions they open: who a client is, proven once and re-checked on every use.

:class:`Logins` is the one login of every front-end (throttle, source ranges, credentials, the record), the
remembered logins of protocols that send their credentials with every request (HTTP Basic), the resumed sessions
of the web front-ends, and :meth:`Logins.load_principal`, which every login and every resumed session goes
through. The :class:`~gateway.core.mailbox.Mailbox` composes one and hands its answers to the front-ends.

What this process remembers (logins, the principals behind them) is dropped by :meth:`Logins.forget_logins` here,
and in every other process when the ``logins`` cache epoch moves (:mod:`gateway.core.epochs`): then every
remembered login and open session loads its principal again on its next use (credentials are not asked again).
"""
from __future__ import annotations

import hashlib
import hmac
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from auth.authenticator import (CertificateCredentials, ClientCertificateCredentials, Credentials,
                                EidCredentials, PasswordCredentials, PublicKeyCredentials, TokenCredentials)
from auth.interfaces import Authenticator
from auth.networks import in_networks, parse_networks, source_refusal
from auth.principal import Grant, Principal, Role
from auth.throttle import LoginThrottle
from gateway.config import Config
from gateway.core.epochs import LOGINS, CacheEpochs
from storage.errors import AuthenticationFailed, ServiceUnavailable, Throttled
from storage.repository import AuditRecord, Repository, as_utc, utcnow

log = logging.getLogger("instpages.mailbox")

#: possession proven by a signature (SSH key, SSH user certificate, TLS client certificate): nothing to guess, so
#: never throttled and never refused because of anyone's failed logins
PROVEN_BY_SIGNATURE = (PublicKeyCredentials, CertificateCredentials, ClientCertificateCredentials)
#: logins that prove the account's password: only they start the name's failure count again
PASSWORD_PROVEN = (PasswordCredentials, TokenCredentials, EidCredentials)
#: remembered logins kept at most; beyond, the oldest half is dropped
REMEMBERED_MAX = 10000


def login_throttle(repo: Repository, config: Config) -> LoginThrottle:
    """The throttle of failed logins as ``config.auth`` sets it up."""
    a = config.auth
    return LoginThrottle(repo, window=a.failure_window_seconds, delay_base=a.failure_delay_base,
                         delay_max=a.failure_delay_max, ban_after=a.ban_after, ban_seconds=a.ban_seconds,
                         source_ban_score=a.source_ban_score, score_unknown_name=a.source_score_unknown_name,
                         score_known_name=a.source_score_known_name,
                         exempt_networks=parse_networks(a.source_exempt_networks))


def _refused(acc, reason: str) -> AuthenticationFailed:
    exc = AuthenticationFailed(reason)
    exc.account = acc.name if acc is not None else ""
    return exc


@dataclass(eq=False)
class Logins:
    """Proves who a client is and re-checks it on every use; every outcome on the record.

    Collaborators: the repository (accounts, grants, centres, the record), the authenticator (credentials), the
    throttle (failed logins), ``institution`` (the centre row by id, from the mailbox's short-lived cache: what a
    remembered login re-checks its centres' ranges against), ``clock`` (monotonic seconds) and ``epochs`` (the
    shared caches' versions). A remembered login's grants and directory verdict are read again every
    ``principal_ttl`` seconds, and on its next use after any process announced a change (:meth:`generation`)."""

    repo: Repository
    authenticator: Authenticator
    throttle: LoginThrottle
    institution: Callable[[str], object | None] = field(kw_only=True)
    clock: Callable[[], float] = field(kw_only=True)
    principal_ttl: float = field(kw_only=True)
    epochs: CacheEpochs = field(kw_only=True)
    # key -> (verified at, account, method, device, principal, loaded at, generation loaded under)
    _logins: dict[bytes, tuple] = field(default_factory=dict, init=False, repr=False)
    _login_locks: dict[bytes, threading.Lock] = field(default_factory=dict, init=False, repr=False)
    _login_locks_guard: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _secret: bytes = field(default_factory=lambda: os.urandom(32), init=False, repr=False)
    _generations: itertools.count = field(default_factory=lambda: itertools.count(1), init=False, repr=False)
    _generation: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        self.epochs.on_change(LOGINS, self._outdate)

    def generation(self, poll: bool = True) -> int:
        """Changes whenever principals loaded before may be out of date: a change announced here
        (:meth:`forget_logins`) or by another process (the ``logins`` epoch, read at most every
        ``storage.cache_sync_seconds``; ``poll=False``: as last read, for a caller that checked
        :meth:`CacheEpochs.due <gateway.core.epochs.CacheEpochs.due>` itself)."""
        if poll:
            self.epochs.check()
        return self._generation

    def _outdate(self) -> None:
        self._generation = next(self._generations)

    # -- pre-checks ------------------------------------------------------------------------------------------
    def accepts_public_key(self, username: str, fingerprint: str) -> bool:
        """Protocol pre-check (SSH's key query); proves nothing, records nothing."""
        return self.authenticator.accepts_public_key(username, fingerprint)

    def knows_client_certificate(self, certificate: str | bytes) -> bool:
        """Is this TLS client certificate (PEM or DER) pinned to an account, exactly? (a protocol pre-check before
        trying it; records nothing)"""
        return self.authenticator.pinned_account(certificate) is not None

    def presents_eid(self, certificate: str | bytes) -> bool:
        """Is this TLS client certificate a valid eID (chain to the eID trust anchors, not revoked, a national
        register number)? A pre-check to choose the login kind; proves nothing by itself, records nothing."""
        return bool(certificate) and bool(self.authenticator.eid_nrn(certificate))

    def token_challenge(self, username: str) -> int:
        """The token card code number to ask of ``username`` (a stable made-up number for unknown names)."""
        acc = self.authenticator.account(username)
        return self.authenticator.tokens.challenge(acc.id if acc is not None else None, username)

    # -- the login -------------------------------------------------------------------------------------------
    def login(self, creds: Credentials, *, protocol: str, source: str, reuse_seconds: float = 0) -> Principal:
        """The one login of every front-end; returns who the credentials prove.

        In order: for guessable credentials (not keys or certificates) the throttle (a ban of the account name
        or the source address, or the name's delay after failures: refused at once, nothing looked at, nothing
        counted), the source networks of the account and its centres, the credentials (``auth.authenticator``,
        which also applies the per-kind factor policy). Every failure is recorded with its reason; failures of
        guessable credentials are counted. The raised AuthenticationFailed says whether it was throttled and when
        the client may try again (``auth.throttle``). ``reuse_seconds`` > 0 lets a protocol that sends the same
        credentials with every request (HTTP Basic) skip re-verifying them for that long: the proof is remembered
        under an HMAC of the credentials, in memory only, and the login is recorded once. Every reuse still checks
        the account (enabled, its ranges) at once and its centres' ranges within the centre cache's lifetime;
        grants and the directory are read again every ``principal_ttl``."""
        if reuse_seconds <= 0:
            return self._login(creds, protocol, source, None)
        key = self._credential_key(creds, protocol, source)
        hit = self._remembered(key, reuse_seconds, source)
        if hit is not None:
            return hit
        # one verification per credential at a time: identical requests arriving together wait for it
        with self._login_locks_guard:
            lock = self._login_locks.setdefault(key, threading.Lock())
        with lock:
            hit = self._remembered(key, reuse_seconds, source)
            if hit is not None:
                return hit
            return self._login(creds, protocol, source, key)

    def _remembered(self, key: bytes, reuse_seconds: float, source: str) -> Principal | None:
        generation = self.generation()
        hit = self._logins.get(key)
        now = self.clock()
        if hit is None or now - hit[0] >= reuse_seconds:
            return None
        _, account_id, method, device_id, principal, loaded, loaded_under = hit
        if device_id is not None:
            secrets_of_kind = (self.authenticator.api_tokens if method == "api-token" else self.authenticator.devices)
            if not secrets_of_kind.is_live(account_id, device_id):
                return None
        try:
            if now - loaded >= self.principal_ttl or loaded_under != generation:
                principal = self.load_principal(account_id, method, source)
                self._logins[key] = (hit[0], account_id, method, device_id, principal, now, generation)
            else:
                self._still_admitted(principal, source)
        except AuthenticationFailed:
            # disabled, bound to other ranges...: forgotten; the full login that follows refuses on the record
            self._logins.pop(key, None)
            return None
        return principal

    def _still_admitted(self, principal: Principal, source: str) -> None:
        """The cheap check of every remembered login between two full loads: the account row (enabled, its
        ranges: at once) and the ranges of the centres it was admitted to (the centre cache: within its
        lifetime). Raises AuthenticationFailed."""
        with self.repo.read() as c:
            acc = self.repo.account(c, principal.account_id)
        if acc is None or not acc.enabled:
            raise _refused(acc, "account gone or disabled")
        centres = self._centres(acc, {g.institution_id for g in principal.grants}, principal.administers)
        refusal, _ = self._range_refusal(acc, centres, source, cached=True)
        if refusal:
            raise _refused(acc, refusal)

    def _login(self, creds: Credentials, protocol: str, source: str, key: bytes | None) -> Principal:
        generation = self._generation  # what is loaded below is at least this new
        username = getattr(creds, "username", "") or ""
        method = type(creds).__name__.replace("Credentials", "").lower()
        guessable = not isinstance(creds, PROVEN_BY_SIGNATURE)
        try:
            if guessable:
                self._throttle_check(username, source)
            refusal = self.source_refusal(username, source)
            if refusal:
                raise AuthenticationFailed(refusal)
            result = self.authenticator.authenticate(creds, protocol)
            # the ranges again, on the account the credentials proved (tokens and certificates name none)
            principal = self.load_principal(result.account_id, result.method, source)
        except AuthenticationFailed as exc:
            if guessable and not exc.throttled:
                counted = self.throttle.failed(username, source, unknown_name=exc.unknown_name)
                exc.delay, exc.retry_after = counted.delay, max(0.0, counted.until - self.throttle.clock())
            who = exc.account or username
            self.record_failed_login(who, protocol, source, method,
                                     exc.reason if who == username else f"{exc.reason}; login name {username[:64]!r}")
            raise
        except ServiceUnavailable as exc:
            self.record_failed_login(username, protocol, source, method, f"service unavailable: {exc.message}")
            raise
        if isinstance(creds, PASSWORD_PROVEN):  # not a device password or API token: the password was the guess
            self.throttle.succeeded(principal.name)
        with self.repo.write() as c:
            self.repo.audit(c, AuditRecord("login", "ok", principal.name, protocol, source,
                                           principal.institution_id, detail=f"method={result.method}"))
        if key is not None:
            self._remember(key, result, principal, generation)
        return principal

    def _remember(self, key: bytes, result, principal: Principal, generation: int) -> None:
        """Keep a verified login under ``key`` for :meth:`_remembered` (``result``: the authenticator's;
        ``generation``: the one the principal was loaded under)."""
        now = self.clock()
        if len(self._logins) > REMEMBERED_MAX:  # drop the oldest half rather than everything at once
            for k, _ in sorted(self._logins.items(), key=lambda kv: kv[1][0])[:REMEMBERED_MAX // 2]:
                self._logins.pop(k, None)
                self._login_locks.pop(k, None)
        self._logins[key] = (now, result.account_id, result.method, result.device_id, principal, now, generation)

    def _throttle_check(self, username: str, source: str) -> None:
        """Raise a throttled AuthenticationFailed when the name or the address may not try now."""
        try:
            self.throttle.check(username, source)
        except Throttled as exc:
            wait = max(0.0, exc.until - self.throttle.clock())
            why = f"is banned for {wait:.0f} s" if exc.banned else f"must wait {wait:.1f} s after failed logins"
            failure = AuthenticationFailed(f"{exc.key} {why}")
            failure.throttled = True
            failure.retry_after = wait
            failure.delay = min(wait, self.throttle.delay_max)
            raise failure from None

    def _credential_key(self, creds: Credentials, protocol: str, source: str) -> bytes:
        parts = [type(creds).__name__, protocol, source] + [str(v) for v in vars(creds).values()]
        return hmac.new(self._secret, "\0".join(parts).encode(), hashlib.sha256).digest()

    def forget_logins(self, account_id: int | None = None) -> None:
        """Forget remembered logins (of one account, or all), so that changed grants or designations apply to
        the next request rather than after the remembered principal's lifetime; open sessions of this process
        load their principal again on their next use. (Other processes: the mailbox raises the epoch.)"""
        for k, hit in list(self._logins.items()):
            if account_id is None or hit[1] == account_id:
                self._logins.pop(k, None)
        self._outdate()

    # -- source ranges ---------------------------------------------------------------------------------------
    def source_allowed(self, username: str, source: str) -> bool:
        """Checked before any credential (SFTP asks when authentication starts; every login does)."""
        return self.source_refusal(username, source) is None

    def source_refusal(self, username: str, source: str) -> str | None:
        """Why ``source`` is refused for the canonical account ``username`` stands for (``ALICE`` is the
        directory's ``alice``), before any credential: its own ranges and those of its centres in the gateway's
        database (a directory person's centres are only known after the password; load_principal, which every
        login and resumed session goes through, decides with all of them). Unknown names pass here and fail
        later with the same answer as a wrong password."""
        acc = self.authenticator.account(username) if username else None
        if acc is None:
            return None
        centres = None
        if acc.source != "ldap":
            with self.repo.read() as c:
                centres = self._centres(acc, *self._stored_access(c, acc))
        return self._range_refusal(acc, centres, source)[0]

    def _range_refusal(self, acc, centres: set[str] | None, source: str,
                       cached: bool = False) -> tuple[str | None, set[str]]:
        """(why ``source`` may not act for ``acc``, or None; the centres among ``centres`` whose ranges admit
        it). ``centres`` None: the account's own ranges only; ``cached``: centre rows from the centre cache.
        The one place the ranges are applied (the rule itself: auth.networks.source_refusal)."""
        nets: dict[str, str] = {}
        if centres and cached:
            nets = {i: row.networks or "" for i in centres if (row := self.institution(i)) is not None}
        elif centres:
            with self.repo.read() as c:
                nets = {i.id: i.networks or "" for i in self.repo.institutions(c, centres)}
        try:
            refusal = source_refusal(source, acc.networks or "", nets.values())
            admitted = {i for i in centres or () if not nets.get(i) or in_networks(source, parse_networks(nets[i]))}
        except ValueError:
            log.error("bad network list for %s or its centres: refusing", acc.name)
            return "a stored network list is not valid", set()
        return refusal, admitted

    @staticmethod
    def _centres(acc, grants, administers) -> set[str]:
        return set(grants) | set(administers) | ({acc.institution_id} if acc.institution_id else set())

    # -- who an account is now -------------------------------------------------------------------------------
    def _stored_access(self, c, acc) -> tuple[dict[str, Grant], set[str]]:
        """The grants (not past their end) and administered centres the gateway's database gives ``acc``."""
        now = utcnow()
        grants = {g.institution_id: Grant(g.institution_id, bool(g.can_remove), bool(g.can_write))
                  for g in self.repo.grants_of(c, acc.id) if g.expires_at is None or as_utc(g.expires_at) > now}
        administers = set(self.repo.consulted_centres(c, acc.id))
        if Role(acc.role).is_machine or Role(acc.role) is Role.SECURITY_CELL:
            administers = set()
        return grants, administers

    def load_principal(self, account_id: int, method: str, source: str = "",
                       session_issued: float | None = None) -> Principal:
        """Who the account is now: its grants (and, for directory people, the directory's verdict and group
        grants), limited to the centres whose networks admit ``source``. Raises AuthenticationFailed (naming the
        account) when it is disabled or gone, the session ended by a logout, or ``source`` is outside the ranges
        of the account or of all its centres -- every login and every resumed session comes through here, on the
        account itself, whatever name or secret led to it. ``source`` empty: an internal caller, no ranges."""
        with self.repo.read() as c:
            acc = self.repo.account(c, account_id)
            if acc is not None:
                # a grant with an end date stops at that moment (housekeeping then removes it, on the record)
                grants, administers = self._stored_access(c, acc)
        if acc is None or not acc.enabled:
            raise _refused(acc, "account gone or disabled")
        if session_issued is not None and session_issued <= (acc.sessions_after or 0.0):
            raise _refused(acc, "session ended by a logout")
        if acc.source == "ldap":
            self._directory_access(acc, grants, administers)
        if source:
            refusal, admitted = self._range_refusal(acc, self._centres(acc, grants, administers), source)
            if refusal:
                raise _refused(acc, refusal)
            grants = {i: g for i, g in grants.items() if i in admitted}
            administers = administers & admitted
        return Principal(acc.id, acc.name, Role(acc.role), acc.institution_id, frozenset(grants.values()), method,
                         frozenset(administers))

    def _directory_access(self, acc, grants: dict[str, Grant], administers: set[str]) -> None:
        """A directory person: the directory's verdict (raises AuthenticationFailed when removed or disabled
        there) and its group grants, added to ``grants`` and ``administers`` in place."""
        directory = self.authenticator.directory
        user = directory.lookup(acc.name) if directory is not None else None
        if user is None or not user.enabled:
            raise _refused(acc, "removed or disabled in the directory")
        for inst_id, access in directory.centre_access(user).items():
            if access == "admin":
                administers.add(inst_id)
            old = grants.get(inst_id)
            grants[inst_id] = Grant(inst_id, (old.can_remove if old else False) or access in ("remove", "admin"),
                                    old.can_write if old else False)

    # -- resumed sessions and the record ---------------------------------------------------------------------
    def resume_session(self, account_id: int, name: str, issued: float | None, *, method: str, source: str,
                       protocol: str = "web") -> Principal:
        """The principal behind a resumed session -- a console, account page or API session (a signed value the
        front-end verified), an API token, an open SFTP/WebDAV session re-reading who it is: still the same
        enabled account, not logged out since ``issued`` (None: not a logout-bound session), and the source
        address inside the ranges of the account and its centres. Raises AuthenticationFailed otherwise, on the
        record. Called on every request, so changes apply at once on every process."""
        try:
            principal = self.load_principal(account_id, method, source, session_issued=issued)
            if principal.name != name:
                raise AuthenticationFailed("the session names another account")
        except AuthenticationFailed as exc:
            self.record_failed_login(name, protocol, source, f"resumed {method}", exc.reason)
            raise
        return principal

    def end_sessions(self, account_id: int, *, protocol: str, source: str) -> None:
        """Logout: every console / API session of the account issued until now ends, on every gateway process."""
        with self.repo.write() as c:
            acc = self.repo.account(c, account_id)
            if acc is None:
                return
            self.repo.set_account(c, account_id, sessions_after=time.time())
            self.repo.audit(c, AuditRecord("logout", "ok", acc.name, protocol, source, acc.institution_id))

    def record_failed_login(self, username: str, protocol: str, source: str, method: str, reason: str) -> None:
        log.info("login failed for %r from %s over %s (%s)", username[:64], source, protocol, method)
        with self.repo.write() as c:
            self.repo.audit(c, AuditRecord("login", "failed", username[:64], protocol, source,
                                           detail=f"method={method}; {reason}"))

    def record_disconnect(self, username: str, protocol: str, source: str, reason: str) -> None:
        """A connection dropped before it logged in (too many attempts, too slow): on the record."""
        log.warning("dropped a %s connection from %s before login (%r): %s", protocol, source, username[:64], reason)
        with self.repo.write() as c:
            self.repo.audit(c, AuditRecord("login", "disconnected", username[:64], protocol, source, detail=reason))
