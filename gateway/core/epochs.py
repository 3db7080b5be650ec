"""Cache epochs: how a change made in one gateway process reaches the caches of every worker on every node.

A few things are cached per process because every request needs them: remembered HTTP Basic logins and the
principals of open sessions (:mod:`gateway.core.login`, :mod:`gateway.core.session`), centre rows
(:meth:`Mailbox.institution <gateway.core.mailbox.Mailbox.institution>`), the TLS context that lets pinned client
certificates through the handshake (``gateway/web/https.py``), the eID trust anchors, CRLs and verdicts
(:mod:`auth.clientcert`), SSH user CAs and revoked keys (``gateway/sftp``), directory entries
(:mod:`auth.ldap.directory`). Sessions, logouts, bans, failed-login counts, locks and every row they are made
of live in the database and are read there on every use: they need nothing from here.

**The rule.** Whoever changes what a scope caches raises that scope's version in the ``cache_epochs`` table
(:meth:`CacheEpochs.bump`; the core's ``forget_*`` methods do it for every administration change, the repository
for a pinned certificate in the pinning transaction, ``instpages reload`` for trust material). Every process
reads the versions at most every ``storage.cache_sync_seconds`` (default 1 s) -- from a background thread
in a server (:meth:`CacheEpochs.start`), and from :meth:`CacheEpochs.check` on each cache access, which queries only
when the last read is older than that -- and runs the callbacks of each scope whose version moved.

**The bound.** A grant revocation or change, an account disable, a designation, a network change, a centre
suspension or any status change, a pin, and ``instpages reload`` take effect on every worker and node within
``cache_sync_seconds`` plus one poll's query (2 s by default, with margin) of the change's commit. Logouts, bans and
sessions are read from the database on every request: at once. Directory changes made outside the gateway
reach it within ``ldap.cache_seconds`` (or at ``instpages reload``). Should a raise itself fail (the database
went away just after the change), the caches' own lifetimes still end it: ``Mailbox.PRINCIPAL_TTL`` (30 s) for
principals and remembered logins, ``Mailbox.INSTITUTION_TTL`` (2 s) for centres, ``webdav.trust_refresh_seconds``
for pinned certificates.

**Granularity: per scope, not per key.** One row per scope, read whole by each poll: a poll stays one tiny
query however many accounts and centres there are, and a raised scope is never missed. (A global sequence read
as "everything above N" can skip a number whose transaction commits after a larger one -- PostgreSQL sequences
are not transactional -- and one row per account would make every poll read a table that grows with the
accounts.) The price is coarse invalidation: when ``logins`` moves, every remembered login and open session of
the process re-reads its principal (a few indexed reads) on its next use -- credentials are not verified again
-- and administration changes are rare, human operations.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

# PINS: pinned TLS client certificates, the HTTPS port's handshake context (raised by the repository as it pins one)
from storage.repo.epochs import PINS
from storage.repository import AuditRecord, Repository

log = logging.getLogger("instpages.epochs")

#: accounts, grants, designations and ranges: remembered logins and the principals of open sessions
LOGINS = "logins"
#: centre rows (status, ranges, content types): the mailbox's centre cache
CENTRES = "centres"
#: all trust material read from files or the directory (eID trust anchors and CRLs, SSH user CAs and revoked keys,
#: pinned certificates, cached directory entries): ``instpages reload``
TRUST = "trust"
SCOPES = (LOGINS, CENTRES, PINS, TRUST)


class CacheEpochs:
    """The versions this process has acted on, and what to run when another process raises one.

    ``interval``: ``storage.cache_sync_seconds``. Callbacks run in the thread that noticed the change (the
    poller, or a request's thread through :meth:`check`); they must be quick and thread-safe, and a failing one is
    logged, never raised into a request."""

    def __init__(self, repo: Repository, *, interval: float, clock: Callable[[], float] = time.monotonic):
        self.repo = repo
        self.interval = interval
        self.clock = clock
        self._callbacks: dict[str, list[Callable[[], None]]] = {s: [] for s in SCOPES}
        self._lock = threading.Lock()
        self._polled = float("-inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reads = 0  # of the versions, so far
        try:  # the versions as of now: what is cached from here on is newer
            self._seen = self._read()
            self._polled = self.clock()
        except Exception:  # the schema not made yet (a CLI command before init), the database away: the first
            log.debug("cache epochs not readable yet", exc_info=True)  # poll then counts every scope as moved,
            self._seen = {}  # which only costs a reload

    # -- raising -------------------------------------------------------------------------------------------------
    def bump(self, scope: str, record: AuditRecord | None = None) -> None:
        """Raise ``scope`` (and put ``record`` on the record in the same transaction): every other process drops
        what it caches for the scope within the bound. The caller has dropped its own entries already; a failure
        is logged, not raised (the change itself committed before this), and the caches' lifetimes end it."""
        try:
            with self.repo.write() as c:
                version = self.repo.bump_epoch(c, scope)
                if record is not None:
                    self.repo.audit(c, record)
        except Exception:
            if record is not None:
                raise  # an operator's command: say it did not happen
            log.exception("could not raise the %s cache epoch; other processes follow within their caches' "
                          "lifetimes", scope)
            return
        with self._lock:
            if self._seen.get(scope, 0) == version - 1:
                self._seen[scope] = version  # nobody else raised it meanwhile: nothing more to drop here

    # -- noticing ------------------------------------------------------------------------------------------------
    def on_change(self, scope: str, callback: Callable[[], None]) -> None:
        """Run ``callback`` whenever another process raised ``scope``."""
        self._callbacks[scope].append(callback)

    def check(self) -> None:
        """Called on cache access: read the versions when the last read is ``interval`` old or older."""
        if self.clock() - self._polled >= self.interval:
            self.poll(due_only=True)

    def due(self) -> bool:
        """Whether :meth:`check` would read the versions now: an answer from memory is then not given (the
        caller takes the ordinary path, which reads them)."""
        return self.clock() - self._polled >= self.interval

    def poll(self, due_only: bool = False) -> list[str]:
        """Read the versions now; run the callbacks of the scopes that moved. Returns those scopes."""
        with self._lock:
            if due_only and self.clock() - self._polled < self.interval:
                return []  # another thread read them while this one waited
            try:
                now = self._read()
            except Exception:
                log.warning("could not read the cache epochs; trying again", exc_info=True)
                return []
            finally:
                self._polled = self.clock()
            moved = [s for s, v in now.items() if self._seen.get(s, 0) != v]
            self._seen.update(now)
        for scope in moved:
            for callback in self._callbacks.get(scope, ()):
                try:
                    callback()
                except Exception:
                    log.exception("dropping the %s caches failed", scope)
        return moved

    def _read(self) -> dict[str, int]:
        self.reads += 1
        with self.repo.read() as c:
            return self.repo.cache_epochs(c)

    # -- the poller thread of a server ---------------------------------------------------------------------------
    def start(self) -> None:
        """Poll every ``interval`` from a daemon thread, so that caches nobody touches (the TLS context, SSH trust)
        follow too, and requests rarely pay for a read."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="cache-epochs", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(max(0.05, self.interval - (self.clock() - self._polled))):
            self.poll(due_only=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
