"""The mailbox core service: the one place where a principal is authorized and every operation is recorded.

Both protocol front-ends (SFTP, WebDAV) turn their requests into calls on :class:`Mailbox` and
:class:`MailboxSession` and nothing else. Everything here is synchronous and thread-safe per session; the asyncio
front-end runs it in worker threads so that database, disk and crypto never stall its event loop.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from auth.authenticator import (Authenticator, CertificateCredentials, ClientCertificateCredentials, Credentials,
                                EidCredentials, PasswordCredentials, PublicKeyCredentials, TokenCredentials)
from auth.networks import in_networks, parse_networks, source_refusal
from auth.throttle import LoginThrottle
from auth.policy import (Action, Decision, LockTarget, decide, decide_lock, held_back_by_others_locks,
                         sees_only_own_documents)
from auth.principal import Grant, Principal, Role
from gateway.core import path as vpath
from gateway.config import Config
from gateway.core.content import ContentPolicy, check_content
from gateway.core.path import VPath
from storage.blobs.store import BlobRef, BlobStore
from storage.errors import (AlreadyExists, AuthenticationFailed, Conflict, ContentRefused, GatewayError,
                            InstitutionNotActive, InvalidName, NotFound, PermissionDenied, ServiceUnavailable,
                            Throttled, TooLarge)
from storage.repository import AuditRecord, DocumentRow, Repository, as_utc, utcnow

log = logging.getLogger("instpages.mailbox")

FOLDER_MODE_READ = 0o550
FOLDER_MODE_WRITE = 0o750
DOCUMENT_MODE = 0o440


#: possession proven by a signature (SSH key, SSH user certificate, TLS client certificate): nothing to guess, so
#: never throttled and never refused because of anyone's failed logins
PROVEN_BY_SIGNATURE = (PublicKeyCredentials, CertificateCredentials, ClientCertificateCredentials)
#: logins that prove the account's password: only they start the name's failure count again
PASSWORD_PROVEN = (PasswordCredentials, TokenCredentials, EidCredentials)


def _throttle(repo: Repository, config: Config) -> LoginThrottle:
    a = config.auth
    return LoginThrottle(repo, window=a.failure_window_seconds, delay_base=a.failure_delay_base,
                         delay_max=a.failure_delay_max, ban_after=a.ban_after, ban_seconds=a.ban_seconds,
                         source_ban_score=a.source_ban_score, score_unknown_name=a.source_score_unknown_name,
                         score_known_name=a.source_score_known_name,
                         exempt_networks=parse_networks(a.source_exempt_networks))


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    is_folder: bool
    size: int = 0
    mtime: float = 0.0
    mode: int = FOLDER_MODE_READ
    document_id: int | None = None
    sha256: str = ""
    content_type: str = ""
    display_name: str = ""  # centres: their name


def _epoch(dt: datetime | None) -> float:
    return dt.timestamp() if dt else 0.0


def _refused(acc, reason: str) -> AuthenticationFailed:
    exc = AuthenticationFailed(reason)
    exc.account = acc.name if acc is not None else ""
    return exc


class Mailbox:
    """Factory of sessions, owner of shared state (repository, blob store, caches)."""

    #: seconds a session trusts the grants it loaded at login before reading them again
    PRINCIPAL_TTL = 30.0
    #: seconds the status of a centre is cached
    INSTITUTION_TTL = 2.0

    def __init__(self, config: Config, repo: Repository, blobs: BlobStore, authenticator: Authenticator,
                 clock: Callable[[], float] = time.monotonic, throttle: LoginThrottle | None = None):
        self.config = config
        self.repo = repo
        self.blobs = blobs
        self.authenticator = authenticator
        self.clock = clock
        self.node_id = config.effective_node_id
        self.throttle = throttle or _throttle(repo, config)
        self._inst_cache: dict[str, tuple[float, object]] = {}
        self._logins: dict[bytes, tuple] = {}  # key -> (verified at, account, method, device, principal, loaded)
        self._login_locks: dict[bytes, threading.Lock] = {}
        self._login_locks_guard = threading.Lock()
        self._secret = os.urandom(32)
        self._inst_lock = threading.Lock()
        #: gateway.admin.notify.Notifier, when the services wiring made one (activation notices, test mails)
        self.notifier = None

    # -- login -----------------------------------------------------------------------------------------------
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

    def login(self, creds: Credentials, *, protocol: str, source: str,
              reuse_seconds: float = 0) -> "MailboxSession":
        """The one login of every front-end.

        In order: for guessable credentials (not keys or certificates) the throttle (a ban of the account name
        or the source address, or the name's delay after failures: refused at once, nothing looked at, nothing
        counted), the source networks of the account and its centres, the credentials (``auth.authenticator``,
        which also applies the per-kind factor policy). Every failure is recorded with its reason; failures of
        guessable credentials are counted. The raised AuthenticationFailed says whether it was throttled and when
        the client may try again (``auth.throttle``). ``reuse_seconds`` > 0 lets a protocol that sends the same
        credentials with every request (HTTP Basic) skip re-verifying them for that long: the proof is remembered
        under an HMAC of the credentials, in memory only, and the login is recorded once. Every reuse still checks
        the account (enabled, its ranges) at once and its centres' ranges within ``INSTITUTION_TTL``; grants and
        the directory are read again every ``PRINCIPAL_TTL``."""
        key = None
        if reuse_seconds > 0:
            key = self._credential_key(creds, protocol, source)
            hit = self._remembered(key, reuse_seconds, source)
            if hit is not None:
                return MailboxSession(self, hit, protocol, source)
            # one verification per credential at a time: identical requests arriving together wait for it
            with self._login_locks_guard:
                lock = self._login_locks.setdefault(key, threading.Lock())
            with lock:
                hit = self._remembered(key, reuse_seconds, source)
                if hit is not None:
                    return MailboxSession(self, hit, protocol, source)
                return self._login(creds, protocol, source, key)
        return self._login(creds, protocol, source, None)

    def _remembered(self, key: bytes, reuse_seconds: float, source: str) -> Principal | None:
        hit = self._logins.get(key)
        now = self.clock()
        if hit is None or now - hit[0] >= reuse_seconds:
            return None
        _, account_id, method, device_id, principal, loaded = hit
        if device_id is not None:
            secrets_of_kind = (self.authenticator.api_tokens if method == "api-token" else self.authenticator.devices)
            if not secrets_of_kind.is_live(account_id, device_id):
                return None
        try:
            if now - loaded >= self.PRINCIPAL_TTL:
                principal = self.load_principal(account_id, method, source)
                self._logins[key] = (hit[0], account_id, method, device_id, principal, now)
            else:
                self._still_admitted(principal, source)
        except AuthenticationFailed:
            # disabled, bound to other ranges...: forgotten; the full login that follows refuses on the record
            self._logins.pop(key, None)
            return None
        return principal

    def _still_admitted(self, principal: Principal, source: str) -> None:
        """The cheap check of every remembered login between two full loads: the account row (enabled, its
        ranges: at once) and the ranges of the centres it was admitted to (the centre cache: within
        ``INSTITUTION_TTL``). Raises AuthenticationFailed."""
        with self.repo.read() as c:
            acc = self.repo.account(c, principal.account_id)
        if acc is None or not acc.enabled:
            raise _refused(acc, "account gone or disabled")
        centres = self._centres(acc, {g.institution_id for g in principal.grants}, principal.administers)
        refusal, _ = self._range_refusal(acc, centres, source, cached=True)
        if refusal:
            raise _refused(acc, refusal)

    def _login(self, creds: Credentials, protocol: str, source: str, key: bytes | None) -> "MailboxSession":
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
            now = self.clock()
            if len(self._logins) > 10000:  # drop the oldest half rather than everything at once
                for k, _ in sorted(self._logins.items(), key=lambda kv: kv[1][0])[:5000]:
                    self._logins.pop(k, None)
                    self._login_locks.pop(k, None)
            self._logins[key] = (now, result.account_id, result.method, result.device_id, principal, now)
        return MailboxSession(self, principal, protocol, source)

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

    def _stored_access(self, c, acc) -> tuple[dict[str, Grant], set[str]]:
        """The grants (not past their end) and administered centres the gateway's database gives ``acc``."""
        now = utcnow()
        grants = {g.institution_id: Grant(g.institution_id, bool(g.can_remove), bool(g.can_write))
                  for g in self.repo.grants_of(c, acc.id) if g.expires_at is None or as_utc(g.expires_at) > now}
        administers = set(self.repo.consulted_centres(c, acc.id))
        if Role(acc.role).is_machine or Role(acc.role) is Role.SECURITY_CELL:
            administers = set()
        return grants, administers

    def token_challenge(self, username: str) -> int:
        """The token card code number to ask of ``username`` (a stable made-up number for unknown names)."""
        acc = self.authenticator.account(username)
        return self.authenticator.tokens.challenge(acc.id if acc is not None else None, username)

    def _credential_key(self, creds: Credentials, protocol: str, source: str) -> bytes:
        parts = [type(creds).__name__, protocol, source] + [str(v) for v in vars(creds).values()]
        return hmac.new(self._secret, "\0".join(parts).encode(), hashlib.sha256).digest()

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

    def end_sessions(self, account_id: int, *, protocol: str, source: str) -> None:
        """Logout: every console / API session of the account issued until now ends, on every gateway process."""
        with self.repo.write() as c:
            acc = self.repo.account(c, account_id)
            if acc is None:
                return
            self.repo.set_account(c, account_id, sessions_after=time.time())
            self.repo.audit(c, AuditRecord("logout", "ok", acc.name, protocol, source, acc.institution_id))

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
            directory = getattr(self.authenticator, "directory", None)
            user = directory.lookup(acc.name) if directory is not None else None
            if user is None or not user.enabled:
                raise _refused(acc, "removed or disabled in the directory")
            for inst_id, access in directory.centre_access(user).items():
                if access == "admin":
                    administers.add(inst_id)
                old = grants.get(inst_id)
                grants[inst_id] = Grant(inst_id, (old.can_remove if old else False) or access in ("remove", "admin"),
                                        old.can_write if old else False)
        if source:
            refusal, admitted = self._range_refusal(acc, self._centres(acc, grants, administers), source)
            if refusal:
                raise _refused(acc, refusal)
            grants = {i: g for i, g in grants.items() if i in admitted}
            administers = administers & admitted
        return Principal(acc.id, acc.name, Role(acc.role), acc.institution_id, frozenset(grants.values()), method,
                         frozenset(administers))

    # -- shared lookups --------------------------------------------------------------------------------------
    def institution(self, institution_id: str):
        now = self.clock()
        with self._inst_lock:
            hit = self._inst_cache.get(institution_id)
            if hit and now - hit[0] < self.INSTITUTION_TTL:
                return hit[1]
        with self.repo.read() as c:
            row = self.repo.institution(c, institution_id)
        with self._inst_lock:
            self._inst_cache[institution_id] = (now, row)
        return row

    def forget_logins(self, account_id: int | None = None) -> None:
        """Forget remembered logins (of one account, or all), so that changed grants or designations apply to
        the next request rather than after the remembered principal's lifetime."""
        for k, hit in list(self._logins.items()):
            if account_id is None or hit[1] == account_id:
                self._logins.pop(k, None)

    def forget_institution(self, institution_id: str) -> None:
        with self._inst_lock:
            self._inst_cache.pop(institution_id, None)

    def content_policy(self, inst) -> ContentPolicy:
        types = frozenset(t.strip() for t in (inst.content_types or "application/pdf").split(",") if t.strip())
        return ContentPolicy(allowed_types=types, allow_active_content=self.config.documents.allow_active_content)

    # -- crash recovery and housekeeping ---------------------------------------------------------------------
    def recover(self) -> dict[str, int]:
        """Run at start: uploads this node had in flight when it stopped leave nothing behind."""
        report = {"aborted_uploads": 0, "temporary_blobs": 0, "orphan_blobs": 0, "expired_staged": 0}
        report["aborted_uploads"] = self._abort_uploads(
            lambda c: self.repo.pending_of_node(c, self.node_id), "pending",
            "interrupted by a server stop; nothing kept")
        report["temporary_blobs"] = self.blobs.sweep_temporary(older_than=0)
        report["expired_staged"] = self.expire_staged()
        with self.repo.read() as c:
            live = self.repo.live_blob_ids(c)
        for blob_id in list(self.blobs.list_ids()):
            if blob_id not in live:
                self.blobs.delete(blob_id)
                report["orphan_blobs"] += 1
        if any(report.values()):
            log.info("recovery: %s", report)
        return report

    def expire_staged(self) -> int:
        before = utcnow() - timedelta(hours=self.config.documents.staged_ttl_hours)
        return self._abort_uploads(lambda c: self.repo.stale(c, "staged", before), "staged",
                                   "staged upload never renamed; expired")

    def _abort_uploads(self, find, state: str, detail: str) -> int:
        """Abort the uploads ``find(connection)`` lists as ``(document id, blob id)``, each in ``state``, on the
        record with ``detail``; their blobs are deleted once that is committed. Returns how many."""
        with self.repo.write() as c:
            found = find(c)
            for doc_id, _ in found:
                self.repo.set_state(c, doc_id, (state,), "aborted")
                self.repo.audit(c, AuditRecord("upload", "aborted", "", "", "", document_id=doc_id, detail=detail))
        for _, blob_id in found:
            self.blobs.delete(blob_id)
        return len(found)


class MailboxSession:
    """One logged-in connection (SFTP) or request (WebDAV)."""

    def __init__(self, mailbox: Mailbox, principal: Principal, protocol: str, source: str):
        self.mailbox = mailbox
        self.repo = mailbox.repo
        self._principal = principal
        self._loaded = mailbox.clock()
        self._ended: AuthenticationFailed | None = None
        self.protocol = protocol
        self.source = source

    # -- identity --------------------------------------------------------------------------------------------
    @property
    def principal(self) -> Principal:
        """Who acts; re-read (account, grants, source ranges) at most ``PRINCIPAL_TTL`` seconds after the last
        time, so a disabled account or a new range ends an open session within that bound, on the record."""
        if self._ended is not None:
            raise self._ended
        if self.mailbox.clock() - self._loaded > self.mailbox.PRINCIPAL_TTL:
            p = self._principal
            try:
                self._principal = self.mailbox.resume_session(p.account_id, p.name, None, method=p.method,
                                                              source=self.source, protocol=self.protocol)
            except AuthenticationFailed as exc:
                self._ended = exc
                raise
            self._loaded = self.mailbox.clock()
        return self._principal

    def _audit(self, c, action: str, outcome: str, path: VPath | None = None, *, document_id: int | None = None,
               nbytes: int | None = None, detail: str = "") -> None:
        p = self._principal
        self.repo.audit(c, AuditRecord(action, outcome, p.name, self.protocol, self.source,
                                       path.institution if path else None, str(path) if path else "",
                                       document_id, nbytes, detail))

    def _audit_now(self, action: str, outcome: str, path: VPath | None = None, **kw) -> None:
        with self.repo.write() as c:
            self._audit(c, action, outcome, path, **kw)

    # -- authorization -----------------------------------------------------------------------------------------
    def _authorize(self, action: Action, path: VPath, *, audit_denial: bool = False):
        """Return the centre row if ``action`` is allowed on ``path``'s centre; raise otherwise.

        A centre the caller may not see answers exactly like one that does not exist.
        """
        inst = self.mailbox.institution(path.institution)
        if inst is None:
            raise NotFound()
        d = decide(self.principal, action, inst.id, inst.status)
        if d is Decision.ALLOWED:
            return inst
        if d is Decision.HIDDEN:
            raise NotFound()
        if d is Decision.NOT_ACTIVE:
            err: GatewayError = InstitutionNotActive(inst.id, inst.status)
        else:
            err = PermissionDenied(f"permission denied: your account may not {action.value} here")
        if audit_denial:
            self._audit_now(action.value, "denied", path, detail=err.message)
        raise err

    def _parse(self, raw: str | bytes | VPath) -> VPath:
        return raw if isinstance(raw, VPath) else vpath.parse(raw)

    def _item(self, raw, on_mailbox: GatewayError, on_root: GatewayError | None = None) -> VPath:
        """A path below a mailbox (a folder or document). For a mailbox itself, ``on_mailbox`` is raised -- after
        checking the caller may see it, so a hidden centre still answers as a missing name; for the root,
        ``on_root`` (default: the same error)."""
        path = self._parse(raw)
        if path.is_mailbox:
            self._authorize(Action.SEE, path)
            raise on_mailbox
        if path.is_root:
            raise on_root or on_mailbox
        return path

    def _visible_doc(self, path: VPath) -> DocumentRow | None:
        """The document at ``path`` as this caller may see it (uploaders: only their own)."""
        with self.repo.read() as c:
            doc = self.repo.visible_document(c, path.institution, path.folder, path.name)
        if doc is None:
            return None
        own = doc.uploaded_by == self._principal.account_id
        if doc.state == "staged" and not own:
            return None
        if sees_only_own_documents(self._principal) and not own:
            return None
        return doc

    def _document(self, path: VPath) -> DocumentRow:
        """The document at ``path`` as this caller sees it; a folder there is 'this is a folder', else NotFound."""
        doc = self._visible_doc(path)
        if doc is None:
            with self.repo.read() as c:
                if self.repo.folder_exists(c, path.institution, path.relpath):
                    raise PermissionDenied("this is a folder")
            raise NotFound()
        return doc

    def _entry_for_doc(self, doc: DocumentRow) -> Entry:
        return Entry(doc.name, False, doc.size, _epoch(doc.committed_at), DOCUMENT_MODE, doc.id, doc.sha256,
                     doc.content_type)

    def _folder_mode(self, inst) -> int:
        d = decide(self._principal, Action.UPLOAD, inst.id, inst.status)
        return FOLDER_MODE_WRITE if d is Decision.ALLOWED else FOLDER_MODE_READ

    # -- reading the tree --------------------------------------------------------------------------------------
    def stat(self, raw) -> Entry:
        path = self._parse(raw)
        if path.is_root:
            return Entry("/", True, mode=FOLDER_MODE_READ)
        inst = self._authorize(Action.SEE, path)
        if path.is_mailbox:
            return Entry(inst.id, True, mtime=_epoch(inst.status_changed_at), mode=self._folder_mode(inst),
                         display_name=inst.name)
        if self._principal.role is Role.SECURITY_CELL:
            raise PermissionDenied("the security cell does not read mailbox contents")
        self._authorize(Action.LIST, path)
        doc = self._visible_doc(path)  # documents first: most stats are of documents (a get, an ls -l)
        if doc is not None:
            return self._entry_for_doc(doc)
        with self.repo.read() as c:
            folder = self.repo.folder_row(c, inst.id, path.relpath)
        if folder is None:
            raise NotFound()
        return Entry(path.name, True, mtime=_epoch(folder.created_at), mode=self._folder_mode(inst))

    def list(self, raw) -> list[Entry]:
        path = self._parse(raw)
        p = self.principal
        if path.is_root:
            return self._list_root(path)
        inst = self._authorize(Action.LIST, path, audit_denial=True)
        entries: list[Entry] = []
        with self.repo.read() as c:
            if not path.is_mailbox and not self.repo.folder_exists(c, inst.id, path.relpath):
                doc = self.repo.visible_document(c, inst.id, path.folder, path.name)
                if doc is not None and self._visible_doc(path) is not None:
                    raise NotFound("not a folder")
                raise NotFound()
            mode = self._folder_mode(inst)
            for f in self.repo.child_folders(c, inst.id, path.relpath):
                entries.append(Entry(f.path.rsplit("/", 1)[-1], True, mtime=_epoch(f.created_at), mode=mode))
            own_only = sees_only_own_documents(p)
            me = p.account_id
            for r in self.repo.listing(c, inst.id, path.relpath):
                if (own_only or r.state == "staged") and r.uploaded_by != me:
                    continue
                entries.append(Entry(r.name, False, r.size, _epoch(as_utc(r.committed_at)), DOCUMENT_MODE, r.id,
                                     r.sha256, r.content_type))
            self._audit_now("list", "ok", path, detail=f"{len(entries)} entries")
        entries.sort(key=lambda e: e.name)
        return entries

    def _list_root(self, path: VPath) -> list[Entry]:
        p = self.principal
        with self.repo.read() as c:
            if p.role in (Role.UPLOADER, Role.SECURITY_CELL):
                rows = self.repo.institutions(c)
            else:
                ids = {g.institution_id for g in p.grants}
                if p.institution_id:
                    ids.add(p.institution_id)
                rows = self.repo.institutions(c, ids)
        entries = []
        for inst in rows:
            if decide(p, Action.SEE, inst.id, inst.status) is Decision.ALLOWED:
                entries.append(Entry(inst.id, True, mtime=_epoch(inst.status_changed_at),
                                     mode=self._folder_mode(inst), display_name=inst.name))
        self._audit_now("list", "ok", path, detail=f"{len(entries)} centres")
        return entries

    # -- downloads ----------------------------------------------------------------------------------------------
    def open_download(self, raw) -> "Download":
        path = self._parse(raw)
        if path.is_root or path.is_mailbox:
            raise PermissionDenied("this is a folder")
        self._authorize(Action.READ, path, audit_denial=True)
        doc = self._document(path)
        if doc.state != "committed":
            raise NotFound()
        ref = BlobRef(doc.blob_id, doc.size, doc.sha256, doc.key_id, doc.wrapped_key)
        reader = self.mailbox.blobs.open(ref, verify=True)
        return Download(self, path, doc, reader)

    # -- uploads ------------------------------------------------------------------------------------------------
    def _is_temporary_name(self, name: str) -> bool:
        docs = self.mailbox.config.documents
        return vpath.is_temporary_name(name, suffixes=docs.temporary_suffixes, patterns=docs.temporary_patterns)

    def _upload_target(self, raw) -> tuple[VPath, object]:
        """What an upload starts with, every refusal recorded: a document's name inside a mailbox the caller may
        write to, valid as a new name. Returns the path and the centre."""
        path = self._parse(raw)
        if path.is_root or path.is_mailbox:
            err = PermissionDenied("uploads go into a centre's mailbox, as a document")
            self._audit_now("upload", "denied", path, detail=err.message)
            raise err
        inst = self._authorize(Action.UPLOAD, path, audit_denial=True)
        self._check_new_name("upload", path, is_folder=False)
        return path, inst

    def _check_new_name(self, action: str, path: VPath, *, is_folder: bool) -> None:
        """The naming rules for something about to be created; a refusal is recorded under ``action``."""
        cfg = self.mailbox.config.documents
        try:
            vpath.check_new_name(path, max_depth=cfg.max_depth, max_name_length=cfg.max_name_length,
                                 is_folder=is_folder)
        except InvalidName as exc:
            self._audit_now(action, "refused", path, detail=exc.message)
            raise

    def may_upload(self, raw) -> None:
        """The checks :meth:`open_upload` starts with (refusals recorded), for a front-end whose server looks the
        name up before it would upload (WebDAV): the refusal is then the core's, on the record, as over SFTP."""
        self._upload_target(raw)

    def open_upload(self, raw) -> "Upload":
        path, inst = self._upload_target(raw)
        with self.repo.read() as c:
            if self.repo.folder_exists(c, inst.id, path.relpath):
                raise AlreadyExists("a folder with this name exists")
            for i in range(1, len(path.parts)):
                if self.repo.visible_document(c, inst.id, "/".join(path.parts[:i - 1]), path.parts[i - 1]):
                    raise NotFound()
        writer = self.mailbox.blobs.create()
        try:
            with self.repo.write() as c:
                doc_id = self.repo.create_pending(c, institution_id=inst.id, folder=path.folder, name=path.name,
                                                  blob_id=writer.blob_id, uploaded_by=self._principal.account_id,
                                                  node_id=self.mailbox.node_id)
        except Exception:
            writer.abort()
            raise
        return Upload(self, path, doc_id, writer, staged=self._is_temporary_name(path.name))

    # -- folders ------------------------------------------------------------------------------------------------
    def _mkdir_target(self, raw) -> tuple[VPath, object]:
        """What a mkdir starts with (refusals recorded): a new folder's name below a mailbox the caller may write
        to. Returns the path and the centre."""
        path = self._item(raw, AlreadyExists("this folder already exists"), PermissionDenied())
        inst = self._authorize(Action.MKDIR, path, audit_denial=True)
        self._check_new_name("mkdir", path, is_folder=True)
        return path, inst

    def may_mkdir(self, raw) -> None:
        """The checks :meth:`mkdir` starts with (refusals recorded); see :meth:`may_upload`."""
        self._mkdir_target(raw)

    def mkdir(self, raw) -> None:
        path, inst = self._mkdir_target(raw)
        with self.repo.write() as c:
            for i in range(1, len(path.parts) + 1):
                if self.repo.visible_document(c, inst.id, "/".join(path.parts[:i - 1]), path.parts[i - 1]):
                    raise AlreadyExists("a document with this name exists")
            if not self.repo.create_folders(c, inst.id, path.relpath, self._principal.name):
                raise AlreadyExists("this folder already exists")
            self._audit(c, "mkdir", "ok", path)

    def rmdir(self, raw) -> None:
        path = self._removal_path(raw)
        inst = self._authorize(Action.ARCHIVE, path, audit_denial=True)
        with self.repo.write() as c:
            if not self.repo.folder_exists(c, inst.id, path.relpath):
                raise NotFound()
            if self.repo.has_children(c, inst.id, path.relpath):
                raise PermissionDenied("the folder is not empty")
            self.repo.delete_folder(c, inst.id, path.relpath)
            self._audit(c, "rmdir", "ok", path)

    # -- removal = archive -----------------------------------------------------------------------------------
    def _removal_path(self, raw) -> VPath:
        """A path below a mailbox, to remove: a mailbox itself (or the root) is refused on the record -- a
        WebDAV DELETE of a mailbox would otherwise remove every document in it, one by one, before failing."""
        path = self._parse(raw)
        if path.is_root or path.is_mailbox:
            if path.is_mailbox:
                self._authorize(Action.SEE, path)  # a hidden centre answers as a missing one
            err = PermissionDenied("a centre's mailbox cannot be removed")
            self._audit_now("archive", "denied", path, detail=err.message)
            raise err
        return path

    def _removal_target(self, raw) -> tuple[VPath, DocumentRow | None]:
        """What a removal (archive, rmdir) starts with (refusals recorded): a path below a mailbox and the right to
        remove there -- or an uploader's own staged upload, returned, which it may always cancel."""
        path = self._removal_path(raw)
        if self.principal.role is Role.UPLOADER:
            doc = self._visible_doc(path)  # only its own uploads are visible to an uploader
            if doc is not None and doc.state == "staged":
                return path, doc
        self._authorize(Action.ARCHIVE, path, audit_denial=True)
        return path, None

    def may_remove(self, raw) -> None:
        """The checks :meth:`archive` and :meth:`rmdir` start with (refusals recorded); see :meth:`may_upload`."""
        self._removal_target(raw)

    def archive(self, raw) -> None:
        path, staged = self._removal_target(raw)
        if staged is not None:
            # cancelling its own unfinished upload (WinSCP removes its .filepart)
            with self.repo.write() as c:
                if self.repo.set_state(c, staged.id, ("staged",), "aborted"):
                    self._audit(c, "upload", "aborted", path, document_id=staged.id, detail="staged upload removed")
            self.mailbox.blobs.delete(staged.blob_id)
            return
        doc = self._document(path)
        with self.repo.write() as c:
            if not self.repo.set_state(c, doc.id, ("committed",), "archived", archived_at=utcnow(),
                                       archived_by=self._principal.name):
                raise NotFound()
            self._audit(c, "archive", "ok", path, document_id=doc.id, nbytes=doc.size)

    # -- rename: only a staged upload onto its final name ----------------------------------------------------
    def rename(self, raw_src, raw_dst) -> None:
        src, dst = self._parse(raw_src), self._parse(raw_dst)
        if self.principal.role is not Role.UPLOADER:
            self.stat(src)  # not visible -> NotFound, exactly as a missing name
            raise self._no_rename(src, dst)
        doc = self._visible_doc(src) if not (src.is_root or src.is_mailbox) else None
        if doc is None:
            raise NotFound()
        if doc.state != "staged":
            raise self._no_rename(src, dst)
        if dst.is_root or dst.is_mailbox or dst.institution != src.institution:
            raise PermissionDenied("a staged upload can only be renamed within its centre")
        inst = self._authorize(Action.UPLOAD, dst, audit_denial=True)
        cfg = self.mailbox.config.documents
        vpath.check_new_name(dst, max_depth=cfg.max_depth, max_name_length=cfg.max_name_length, is_folder=False)
        if self._is_temporary_name(dst.name):
            raise InvalidName("the final name may not end in a temporary-upload suffix")
        refused: GatewayError | None = None
        drop_blob = False
        with self.repo.write() as c:
            if self.repo.folder_exists(c, inst.id, dst.relpath):
                raise AlreadyExists("a folder with this name exists")
            existing = self.repo.visible_document(c, inst.id, dst.folder, dst.name)
            if self._delivered_before(c, inst, dst, doc.sha256, doc.size, existing):
                self.repo.set_state(c, doc.id, ("staged",), "aborted")
                self._audit(c, "upload", "ok", dst, document_id=existing.id if existing else None,
                            nbytes=doc.size, detail="identical document already delivered; nothing stored")
                drop_blob = True
            elif existing is not None:
                refused = AlreadyExists()
                self._audit(c, "upload", "refused", dst, nbytes=doc.size, detail="name exists with different content")
            else:
                if dst.folder:
                    self.repo.create_folders(c, inst.id, dst.folder, self._principal.name)
                try:
                    self.repo.promote_staged(c, doc.id, dst.folder, dst.name)
                except Conflict:
                    raise AlreadyExists() from None
                self._audit(c, "upload", "committed", dst, document_id=doc.id, nbytes=doc.size,
                            detail=f"sha256={doc.sha256}; renamed from {src.name}")
        if refused is not None:
            raise refused
        if drop_blob:
            self.mailbox.blobs.delete(doc.blob_id)

    def _no_rename(self, src: VPath, dst: VPath) -> PermissionDenied:
        """The refusal of renaming a committed document (SFTP rename, WebDAV MOVE), recorded; returned to raise."""
        err = PermissionDenied("documents cannot be renamed or moved; a correction is sent as a new document")
        self._audit_now("move", "denied", src, detail=f"{err.message}; to {dst}")
        return err

    def _delivered_before(self, c, inst, path: VPath, sha256: str, size: int, existing: DocumentRow | None) -> bool:
        """Re-sending identical content under the same name is harmless: it matches the visible document, or,
        when the name is free, a document of that name the centre already archived (so a retry does not bring
        back what the centre's archive system already took). Mutable (scratch) centres only look at the
        visible document."""
        if existing is not None:
            return existing.state == "committed" and existing.sha256 == sha256 and existing.size == size
        if inst.mutable:
            return False
        return self.repo.same_content_exists(c, inst.id, path.folder, path.name, sha256, size)

    # -- copy and move (WebDAV) --------------------------------------------------------------------------------
    def _same_centre(self, src: VPath, dst: VPath, action: str) -> None:
        if src.is_root or src.is_mailbox or dst.is_root or dst.is_mailbox or src.institution != dst.institution:
            err = PermissionDenied("documents can only be copied or moved inside one centre's mailbox")
            self._audit_now(action, "denied", src, detail=f"{err.message}; to {dst}")
            raise err

    def may_copy_or_move(self, raw_src, raw_dst, *, move: bool) -> None:
        """The checks :meth:`copy_document` and :meth:`move` start with: a source the caller sees, a destination
        in the same centre (refused on the record); see :meth:`may_upload`."""
        src, dst = self._parse(raw_src), self._parse(raw_dst)
        self.stat(src)  # hidden -> NotFound
        self._same_centre(src, dst, "move" if move else "copy")

    def copy_document(self, raw_src, raw_dst) -> Entry:
        """A new document with the content of ``src`` (a correction or duplicate is always a new document)."""
        src, dst = self._parse(raw_src), self._parse(raw_dst)
        self.stat(src)  # hidden -> NotFound
        self._same_centre(src, dst, "copy")
        download = self.open_download(src)
        try:
            upload = self.open_upload(dst)
            try:
                for offset in range(0, download.size, 1024 * 1024):
                    upload.append(download.read(offset, 1024 * 1024))
            except BaseException:
                upload.abort("copy failed")
                raise
        finally:
            download.close()
        return upload.commit()

    def move(self, raw_src, raw_dst) -> None:
        """Move a document or folder to a free name in a mutable (scratch) centre; a staged upload onto its final
        name anywhere. Immutable centres never rename committed documents."""
        src, dst = self._parse(raw_src), self._parse(raw_dst)
        entry = self.stat(src)  # hidden -> NotFound
        self._same_centre(src, dst, "move")
        doc = None if entry.is_folder else self._visible_doc(src)
        if doc is not None and doc.state == "staged":
            return self.rename(src, dst)
        inst = self._authorize(Action.UPLOAD, dst, audit_denial=True)
        self._authorize(Action.ARCHIVE, src, audit_denial=True)
        if not inst.mutable:
            raise self._no_rename(src, dst)
        cfg = self.mailbox.config.documents
        vpath.check_new_name(dst, max_depth=cfg.max_depth, max_name_length=cfg.max_name_length,
                             is_folder=entry.is_folder)
        if entry.is_folder and (dst.parts[:len(src.parts)] == src.parts):
            raise PermissionDenied("a folder cannot be moved into itself")
        with self.repo.write() as c:
            if self.repo.folder_exists(c, inst.id, dst.relpath) or \
                    self.repo.visible_document(c, inst.id, dst.folder, dst.name):
                raise AlreadyExists("the destination exists")
            if dst.folder and not self.repo.folder_exists(c, inst.id, dst.folder):
                raise NotFound("the destination folder does not exist")
            if entry.is_folder:
                self.repo.move_tree(c, inst.id, src.relpath, dst.relpath)
            else:
                try:
                    self.repo.move_document(c, doc.id, dst.folder, dst.name)
                except Conflict:
                    raise AlreadyExists("the destination exists") from None
            self._audit(c, "move", "ok", src, document_id=doc.id if doc else None, detail=f"to {dst}")

    def check_writable(self, raw) -> None:
        """Metadata writes (WebDAV PROPPATCH) need the right to write in the centre (refusals recorded)."""
        path = self._parse(raw)
        if path.is_root:
            err = PermissionDenied()
            self._audit_now("upload", "denied", path, detail=f"properties: {err.message}")
            raise err
        self._authorize(Action.UPLOAD, path, audit_denial=True)

    # -- WebDAV locks: a write permission ------------------------------------------------------------------------
    _LOCK_REFUSALS = {
        LockTarget.ROOT: "the top level holds the centres' mailboxes only; nothing there can be locked",
        LockTarget.MAILBOX: "permission denied: your account may not write in this mailbox, so it may not lock it",
        LockTarget.FOLDER: "permission denied: your account may not write here, so it may not lock here",
        LockTarget.FREE_NAME: "permission denied: your account may not create this name, so it may not lock it",
        LockTarget.DOCUMENT: "permission denied: your account may neither write nor remove here, so it may not "
                             "lock this document",
    }

    def authorize_lock(self, raw, *, depth: str, timeout: float | None, owner: str | None = None) -> int:
        """May the caller lock ``raw`` (``owner``: who holds the lock a refresh extends; None for a new lock)?
        Returns the seconds the lock may last: the asked ``timeout`` (None: none asked; negative: infinite) capped
        to webdav.lock_max_seconds. Refused, on the record with the reason: what :func:`decide_lock` refuses, a new
        lock beyond webdav.locks_per_account, a refresh of another account's lock."""
        target, path, inst = self._lock_target(raw)
        cfg = self.mailbox.config.webdav
        d = decide_lock(self.principal, target, inst.id if inst else None, inst.status if inst else "")
        if d is Decision.HIDDEN:
            raise NotFound()
        if d is Decision.NOT_ACTIVE:
            err: GatewayError = InstitutionNotActive(inst.id, inst.status)
        elif d is not Decision.ALLOWED:
            err = PermissionDenied(self._LOCK_REFUSALS[target])
        elif owner is not None and owner != self.principal.name:
            err = PermissionDenied("permission denied: a lock is refreshed only by the account that holds it")
        elif owner is None and self._locks_held() >= cfg.locks_per_account:
            err = PermissionDenied(f"too many locks: an account holds at most {cfg.locks_per_account} at once; "
                                   "unlock some or let them expire")
        else:
            return cfg.lock_max_seconds if timeout is None or timeout < 0 else \
                max(1, min(int(timeout), cfg.lock_max_seconds))
        asked = vpath.normalize(str(raw)) if target is LockTarget.ROOT else str(path)
        self._audit_now("lock", "denied", path, detail=f"{err.message}; {target.value} {asked}, depth {depth}, "
                                                       f"{'refresh' if owner is not None else 'new lock'}")
        raise err

    def _lock_target(self, raw) -> tuple[LockTarget, VPath, object]:
        """What a lock on ``raw`` would cover, the path and its centre. A top-level name that is no centre the
        caller sees (a hidden centre, a missing one, any other name) is the top level itself, so that all of them
        get the same answer."""
        try:
            path = self._parse(raw)
        except NotFound:
            if vpath.normalize(raw).count("/") > 1:
                raise
            return LockTarget.ROOT, vpath.ROOT, None
        if path.is_root:
            return LockTarget.ROOT, path, None
        inst = self.mailbox.institution(path.institution)
        seen = inst is not None and decide(self.principal, Action.SEE, inst.id, inst.status) is not Decision.HIDDEN
        if path.is_mailbox:
            return (LockTarget.MAILBOX, path, inst) if seen else (LockTarget.ROOT, vpath.ROOT, None)
        if not seen:
            raise NotFound()
        if self._visible_doc(path) is not None:
            return LockTarget.DOCUMENT, path, inst
        with self.repo.read() as c:
            folder = self.repo.folder_exists(c, inst.id, path.relpath)
        return (LockTarget.FOLDER if folder else LockTarget.FREE_NAME), path, inst

    def _locks_held(self) -> int:
        with self.repo.read() as c:
            return self.repo.dav_locks_held(c, self.principal.name, time.time())

    def held_back_by_others_locks(self) -> bool:
        """Whether other accounts' WebDAV locks hold this caller's writes back (never POD MI's deliveries)."""
        return held_back_by_others_locks(self.principal)

    def setstat_allowed(self, raw) -> None:
        """Clients set times after an upload (WinSCP, rsync-like tools). Documents keep their delivery time; the
        request is accepted and ignored for what the caller may see, refused as not found otherwise."""
        self.stat(raw)

    def close(self) -> None:
        pass


class Download:
    """An open document. ``read`` may be called with any offset; the record says complete or aborted."""

    def __init__(self, session: MailboxSession, path: VPath, doc: DocumentRow, reader):
        self.session = session
        self.path = path
        self.doc = doc
        self.size = doc.size
        self._reader = reader
        self._served = 0          # bytes handed out (may exceed size on re-reads)
        self._contiguous = 0      # highest offset such that [0, offset) was handed out
        self._closed = False
        self.failure: str | None = None

    @property
    def entry(self) -> Entry:
        return self.session._entry_for_doc(self.doc)

    def read(self, offset: int, size: int) -> bytes:
        """Bytes handed to the client: fetched and counted."""
        data = self.fetch(offset, size)
        self.served(offset, len(data))
        return data

    def fetch(self, offset: int, size: int) -> bytes:
        """Decrypt ``[offset, offset + size)`` without counting it as served (read-ahead)."""
        if offset >= self.size or size <= 0:
            return b""
        try:
            return self._reader.read_range(offset, min(size, self.size - offset))
        except GatewayError as exc:
            self.failure = exc.message
            raise

    def served(self, offset: int, n: int) -> None:
        """Record that the client was sent ``n`` bytes at ``offset`` (the record says complete or aborted)."""
        self._served += n
        if offset <= self._contiguous < offset + n:
            self._contiguous = offset + n

    def close(self, aborted: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._reader.close()
        finally:
            complete = not aborted and self.failure is None and self._contiguous >= self.size
            s = self.session
            with s.repo.write() as c:
                s._audit(c, "download", "complete" if complete else "aborted", self.path, document_id=self.doc.id,
                         nbytes=min(self._served, self.size),
                         detail=self.failure or ("" if complete else "client stopped before the end"))
                if complete:
                    s.repo.mark_fetched(c, self.doc.id, s._principal.name)


class Upload:
    """An upload in progress: bytes go straight into an encrypted temporary blob; nothing is visible until
    :meth:`commit` has validated and committed it. :meth:`abort` (dropped connection) leaves nothing."""

    def __init__(self, session: MailboxSession, path: VPath, doc_id: int, writer, staged: bool):
        self.session = session
        self.path = path
        self.doc_id = doc_id
        self._writer = writer
        self.staged = staged
        self.max_size = session.mailbox.config.documents.max_size
        self._done = False

    @property
    def size(self) -> int:
        return self._writer.size

    def append(self, data: bytes) -> None:
        """Sequential bytes (the front-end puts out-of-order writes back in order)."""
        if self._done:
            raise GatewayError("upload already finished")
        if self._writer.size + len(data) > self.max_size:
            raise self.refuse(TooLarge(f"document exceeds the maximum size of {self.max_size} bytes"))
        self._writer.write(data)

    def abort(self, reason: str = "upload interrupted") -> None:
        if self._done:
            return
        self._done = True
        s = self.session
        try:
            self._writer.abort()
        finally:
            with s.repo.write() as c:
                s.repo.set_state(c, self.doc_id, ("pending",), "aborted")
                s._audit(c, "upload", "aborted", self.path, document_id=self.doc_id, nbytes=self._writer.size,
                         detail=reason)

    def refuse(self, err: GatewayError) -> GatewayError:
        """The upload breaks a rule (size, content, name...): drop it and record the refusal with its reason.
        Returns ``err`` for the caller to raise."""
        if self._done:
            return err
        self._done = True
        s = self.session
        self._writer.abort()
        with s.repo.write() as c:
            s.repo.set_state(c, self.doc_id, ("pending",), "aborted")
            s._audit(c, "upload", "refused", self.path, document_id=self.doc_id, nbytes=self._writer.size,
                     detail=err.message)
        return err

    def commit(self) -> Entry:
        """Finish, validate and commit. Returns the visible entry; raises (after cleaning up) on refusal."""
        if self._done:
            raise GatewayError("upload already finished")
        s = self.session
        path = self.path
        ref = self._writer.finish()
        inst = s.mailbox.institution(path.institution)
        if inst is None or inst.status != "active":
            raise self.refuse(InstitutionNotActive(path.institution, inst.status if inst else "unknown"))

        if not self.staged:
            with s.repo.read() as c:
                existing = s.repo.visible_document(c, inst.id, path.folder, path.name)
                same = s._delivered_before(c, inst, path, ref.sha256, ref.size, existing)
            if same:
                return self._noop(existing)
            if existing is not None and not inst.mutable:
                raise self.refuse(AlreadyExists())
        try:
            reader = self._writer.open_reader()
            try:
                content_type = check_content(reader, ref.size, s.mailbox.content_policy(inst))
            finally:
                reader.close()
        except ContentRefused as exc:
            raise self.refuse(exc)
        self._writer.commit()
        state = "staged" if self.staged else "committed"
        try:
            with s.repo.write() as c:
                if self.staged:
                    old = s.repo.visible_document(c, inst.id, path.folder, path.name)
                    if old is not None and old.state == "staged" and old.uploaded_by == s._principal.account_id:
                        s.repo.set_state(c, old.id, ("staged",), "aborted")
                        replaced = old.blob_id
                    else:
                        replaced = None
                if path.folder:
                    s.repo.create_folders(c, inst.id, path.folder, s._principal.name)
                if inst.mutable and not self.staged:
                    old = s.repo.visible_document(c, inst.id, path.folder, path.name)
                    if old is not None and old.state == "committed":
                        s.repo.set_state(c, old.id, ("committed",), "archived", archived_at=utcnow(),
                                         archived_by=s._principal.name)
                        s._audit(c, "archive", "ok", path, document_id=old.id, nbytes=old.size,
                                 detail="replaced by a new version")
                s.repo.finish_document(c, self.doc_id, state=state, size=ref.size, sha256=ref.sha256,
                                       key_id=ref.key_id, wrapped_key=ref.wrapped_key, content_type=content_type)
                s._audit(c, "upload", "staged" if self.staged else "committed", path, document_id=self.doc_id,
                         nbytes=ref.size, detail=f"sha256={ref.sha256}")
        except Conflict:
            # someone committed the same name meanwhile
            s.mailbox.blobs.delete(ref.blob_id)
            with s.repo.read() as c:
                existing = s.repo.visible_document(c, inst.id, path.folder, path.name)
                same = s._delivered_before(c, inst, path, ref.sha256, ref.size, existing)
            if same:
                return self._noop(existing)
            raise self.refuse(AlreadyExists())
        except BaseException:
            s.mailbox.blobs.delete(ref.blob_id)
            raise
        self._done = True
        if self.staged and replaced:
            s.mailbox.blobs.delete(replaced)
        return Entry(path.name, False, ref.size, time.time(), DOCUMENT_MODE, self.doc_id, ref.sha256, content_type)

    def _noop(self, existing: DocumentRow | None) -> Entry:
        self._done = True
        s = self.session
        size = self._writer.size
        self._writer.abort()
        with s.repo.write() as c:
            s.repo.set_state(c, self.doc_id, ("pending",), "aborted")
            s._audit(c, "upload", "ok", self.path, document_id=existing.id if existing else None, nbytes=size,
                     detail="identical document already delivered; nothing stored")
        if existing is not None and (existing.uploaded_by == s._principal.account_id
                                     or not sees_only_own_documents(s._principal)):
            return s._entry_for_doc(existing)
        return Entry(self.path.name, False, size, time.time(), DOCUMENT_MODE)
