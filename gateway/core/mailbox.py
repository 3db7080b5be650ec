"""The mailbox core service: the one place where a principal is authorized and every operation is recorded.

Both protocol front-ends (SFTP, WebDAV) and the web front-ends turn their requests into calls on :class:`Mailbox`
and the :class:`~gateway.core.session.MailboxSession` its login opens, and nothing else. The mailbox is the facade
over the core's parts: logins and resumed sessions (:mod:`gateway.core.login`), crash recovery and housekeeping
(:mod:`gateway.core.housekeeping`), the tree operations of a session (:mod:`gateway.core.session`) and its
transfers (:mod:`gateway.core.transfer`); it keeps what they share: the configuration, repository, blob store,
the centre cache, the cache epochs (:mod:`gateway.core.epochs`: a change made by any process reaches this one's
caches within ``storage.cache_sync_seconds``) and the content policy of a centre. Everything here is synchronous and thread-safe per session;
the asyncio front-end runs it in worker threads so that database, disk and crypto never stall its event loop.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from auth.authenticator import Credentials
from auth.interfaces import Authenticator
from auth.principal import Principal
from auth.throttle import LoginThrottle
from gateway.config import Config
from gateway.core.content import ContentPolicy
from gateway.core.epochs import CENTRES, LOGINS, CacheEpochs
from gateway.core.filing import FilingRules
from gateway.core.housekeeping import Housekeeping
from gateway.core.login import Logins, login_throttle
from gateway.core.session import MailboxSession
from storage.blobs.store import BlobStore
from storage.repository import Repository


class Mailbox:
    """Factory of sessions, owner of shared state (repository, blob store, caches)."""

    #: seconds a session trusts the grants it loaded at login before reading them again, when no change was
    #: announced (changes made through the core are announced: :mod:`gateway.core.epochs`)
    PRINCIPAL_TTL = 30.0
    #: seconds the status of a centre is cached, when no change was announced
    INSTITUTION_TTL = 2.0

    def __init__(self, config: Config, repo: Repository, blobs: BlobStore, authenticator: Authenticator,
                 clock: Callable[[], float] = time.monotonic, throttle: LoginThrottle | None = None,
                 worker: str = "0"):
        self.config = config
        self.repo = repo
        self.blobs = blobs
        self.authenticator = authenticator
        self.clock = clock
        self.node_id = config.effective_node_id
        self.throttle = throttle or login_throttle(repo, config)
        self._inst_cache: dict[str, tuple[float, object]] = {}
        self._inst_lock = threading.Lock()
        #: the versions of the shared caches (a server starts its poller thread: ``epochs.start()``)
        self.epochs = CacheEpochs(repo, interval=config.storage.cache_sync_seconds)
        self.epochs.on_change(CENTRES, self._forget_institutions)
        self.logins = Logins(repo, authenticator, self.throttle, institution=self.institution, clock=clock,
                             principal_ttl=self.PRINCIPAL_TTL, epochs=self.epochs)
        #: what each delivered document is (kind, legislation, period), by its path
        self.filing = FilingRules(config.documents.filing_rules)
        self.housekeeping = Housekeeping(repo, blobs, node_id=self.node_id, worker=worker,
                                         staged_ttl_hours=config.documents.staged_ttl_hours,
                                         abandoned_hours=config.storage.abandoned_hours)
        #: whose uploads this process's are: ``"<node>/<worker>"`` (recovery removes only what its owner left)
        self.owner = self.housekeeping.owner
        #: gateway.admin.notify.Notifier, when the services wiring made one (activation notices, test mails)
        self.notifier = None

    # -- login (gateway.core.login) --------------------------------------------------------------------------
    def login(self, creds: Credentials, *, protocol: str, source: str, reuse_seconds: float = 0) -> MailboxSession:
        """The one login of every front-end (:meth:`Logins.login <gateway.core.login.Logins.login>`: throttle,
        source ranges, credentials, the record); a session for the principal the credentials prove."""
        principal = self.logins.login(creds, protocol=protocol, source=source, reuse_seconds=reuse_seconds)
        return MailboxSession(self, principal, protocol, source)

    def accepts_public_key(self, username: str, fingerprint: str) -> bool:
        """Protocol pre-check (SSH's key query); proves nothing, records nothing."""
        return self.logins.accepts_public_key(username, fingerprint)

    def knows_client_certificate(self, certificate: str | bytes) -> bool:
        """Is this TLS client certificate pinned to an account? (a pre-check; records nothing)"""
        return self.logins.knows_client_certificate(certificate)

    def presents_eid(self, certificate: str | bytes) -> bool:
        """Is this TLS client certificate a valid eID? (a pre-check to choose the login kind; records nothing)"""
        return self.logins.presents_eid(certificate)

    def token_challenge(self, username: str) -> int:
        """The token card code number to ask of ``username`` (a stable made-up number for unknown names)."""
        return self.logins.token_challenge(username)

    def source_allowed(self, username: str, source: str) -> bool:
        """Checked before any credential (SFTP asks when authentication starts; every login does)."""
        return self.logins.source_allowed(username, source)

    def source_refusal(self, username: str, source: str) -> str | None:
        """Why ``source`` is refused for ``username`` before any credential, or None
        (:meth:`Logins.source_refusal <gateway.core.login.Logins.source_refusal>`)."""
        return self.logins.source_refusal(username, source)

    def load_principal(self, account_id: int, method: str, source: str = "",
                       session_issued: float | None = None) -> Principal:
        """Who the account is now, limited to the centres whose ranges admit ``source`` (empty: an internal
        caller); raises AuthenticationFailed (:meth:`Logins.load_principal
        <gateway.core.login.Logins.load_principal>`)."""
        return self.logins.load_principal(account_id, method, source, session_issued)

    def resume_session(self, account_id: int, name: str, issued: float | None, *, method: str, source: str,
                       protocol: str = "web") -> Principal:
        """The principal behind a resumed session, re-checked on every request; raises AuthenticationFailed on
        the record (:meth:`Logins.resume_session <gateway.core.login.Logins.resume_session>`)."""
        return self.logins.resume_session(account_id, name, issued, method=method, source=source,
                                          protocol=protocol)

    def end_sessions(self, account_id: int, *, protocol: str, source: str) -> None:
        """Logout: every console / API session of the account issued until now ends, on every gateway process."""
        self.logins.end_sessions(account_id, protocol=protocol, source=source)

    def forget_logins(self, account_id: int | None = None) -> None:
        """Forget remembered logins (of one account, or all), so that changed grants or designations apply to
        the next request rather than after the remembered principal's lifetime: in this process at once, in every
        other process on every node within ``storage.cache_sync_seconds`` (the ``logins`` epoch)."""
        self.logins.forget_logins(account_id)
        self.epochs.bump(LOGINS)

    def principal_epoch(self, poll: bool = True) -> int:
        """A number that changes whenever principals loaded before may be out of date (a change announced by
        any process); an open session compares it with the one it loaded its principal under."""
        return self.logins.generation(poll)

    def record_failed_login(self, username: str, protocol: str, source: str, method: str, reason: str) -> None:
        """A refused login or resumed session a front-end decided on its own (a bad cookie...): on the record."""
        self.logins.record_failed_login(username, protocol, source, method, reason)

    def record_disconnect(self, username: str, protocol: str, source: str, reason: str) -> None:
        """A connection dropped before it logged in (too many attempts, too slow): on the record."""
        self.logins.record_disconnect(username, protocol, source, reason)

    # -- shared lookups --------------------------------------------------------------------------------------
    def institution(self, institution_id: str):
        """The centre row (None: no such centre), cached for ``INSTITUTION_TTL`` seconds, or until a change is
        announced by any process (the ``centres`` epoch)."""
        self.epochs.check()
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

    def known_institution(self, institution_id: str):
        """The centre row as :meth:`institution` would return it now, if that needs no database read (cached,
        fresh, no cache epoch due); else None. For answers given from memory (:mod:`gateway.core.known`)."""
        if self.epochs.due():
            return None
        with self._inst_lock:
            hit = self._inst_cache.get(institution_id)
        if hit is None or self.clock() - hit[0] >= self.INSTITUTION_TTL:
            return None
        return hit[1]

    def forget_institution(self, institution_id: str) -> None:
        """The centre changed: read it again, in this process at once, in every other process on every node
        within ``storage.cache_sync_seconds`` (the ``centres`` epoch)."""
        with self._inst_lock:
            self._inst_cache.pop(institution_id, None)
        self.epochs.bump(CENTRES)

    def _forget_institutions(self) -> None:
        with self._inst_lock:
            self._inst_cache.clear()

    def content_policy(self, inst) -> ContentPolicy:
        types = frozenset(t.strip() for t in (inst.content_types or "application/pdf").split(",") if t.strip())
        return ContentPolicy(allowed_types=types, allow_active_content=self.config.documents.allow_active_content)

    # -- crash recovery and housekeeping (gateway.core.housekeeping) -----------------------------------------
    def recover(self) -> dict[str, int]:
        """Run when the node starts: uploads this node had in flight when it stopped leave nothing behind."""
        return self.housekeeping.recover()

    def recover_worker(self) -> dict[str, int]:
        """Run when a worker starts in a running node: only what this worker's predecessor left goes."""
        return self.housekeeping.recover_worker()

    def sweep_abandoned(self) -> dict[str, int]:
        """Hourly: anybody's uploads pending longer than ``storage.abandoned_hours`` go, on the record."""
        return self.housekeeping.sweep_abandoned()

    def expire_staged(self) -> int:
        """Abort the staged uploads never renamed in time. Returns how many."""
        return self.housekeeping.expire_staged()
