"""Connections to the LDAP directory: opening them (timeouts, TLS), failover between URIs, binding, and the
bounded pool of service-account connections.

- **Timeouts and failover.** URIs are tried in order (recently failed ones last). Every connection has
  ``OPT_NETWORK_TIMEOUT`` and ``OPT_TIMEOUT`` and every synchronous call a client-side timeout. libldap does not
  apply either timeout to a TLS handshake (an ``ldaps://`` server that accepts and then hangs blocks forever), so
  connections are opened on a short-lived helper thread that the caller stops waiting for after ``timeout``;
  a helper still stuck is left to finish or fail on its own and closes what it opened (at most a few per URI).
- **Pool.** Service-account connections live in a bounded, thread-safe pool; a connection that fails is dropped
  (with the idle ones to the same URI) and the operation retried on a fresh one, so a restarted server costs no
  login.
- **Failures.** A directory that cannot be reached raises :class:`storage.errors.ServiceUnavailable`
  ("authentication service unavailable"), logged at WARNING without secrets; it is never a login.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass

import ldap

from auth.ldap.settings import LDAPSettings
from storage.errors import AuthenticationFailed, ServiceUnavailable

log = logging.getLogger("instpages.ldap")

UNAVAILABLE = "authentication service unavailable"
RETRY_FAILED_AFTER = 30.0  # seconds a failed URI is tried after the others

# errors that say "this server, now" rather than "this request"
_DOWN = (ldap.SERVER_DOWN, ldap.TIMEOUT, ldap.CONNECT_ERROR, ldap.UNAVAILABLE, ldap.BUSY, ldap.TIMELIMIT_EXCEEDED,
         ldap.ADMINLIMIT_EXCEEDED, ldap.OTHER, ldap.LOCAL_ERROR, ldap.PROTOCOL_ERROR, ldap.DECODING_ERROR,
         ldap.ENCODING_ERROR)


def describe(exc: BaseException) -> str:
    """A log-safe description of an LDAP error (python-ldap's info dict never carries credentials)."""
    if isinstance(exc, ldap.LDAPError) and exc.args and isinstance(exc.args[0], dict):
        d = exc.args[0]
        parts = [type(exc).__name__, str(d.get("desc", ""))]
        if d.get("info"):
            parts.append(str(d["info"]))
        return ": ".join(p for p in parts if p)
    return f"{type(exc).__name__}: {exc}"


def unbind(conn) -> None:
    """Closes a python-ldap connection, broken or not."""
    with contextlib.suppress(Exception):  # closing a broken connection
        conn.unbind_ext_s()


class _URIDown(Exception):
    def __init__(self, uri: str, why: str, timed_out: bool = False):
        super().__init__(f"{uri}: {why}")
        self.uri, self.why, self.timed_out = uri, why, timed_out


class _NoServer(Exception):
    """Every URI failed while opening a service connection."""


@dataclass(eq=False)
class Conn:
    """A python-ldap connection and the URI it goes to."""

    uri: str
    ldap: object


class Connections:
    """Every connection the directory opens: pooled service-account ones (:meth:`service`) and binds as a person
    (:meth:`bind_as`), with the health of each URI."""

    def __init__(self, settings: LDAPSettings):
        self.settings = settings
        # pool
        self._lock = threading.Condition()
        self._idle: list[Conn] = []
        self._open_count = 0
        self._closed = False
        # URI health
        self._failed_at: dict[str, float] = {}
        self._stuck: dict[str, int] = {}          # helper threads still blocked in a connection attempt
        self._max_stuck = max(4, settings.pool_size)
        self._opened = {"service": 0, "user": 0}  # connections opened, for stats()

    def stats(self) -> dict[str, int]:
        """Pool and connection counters: open and idle service connections, connections opened so far (service,
        user binds), connection attempts still hanging on a helper thread."""
        with self._lock:
            return {"open": self._open_count, "idle": len(self._idle), "service_opened": self._opened["service"],
                    "user_opened": self._opened["user"], "stuck": sum(self._stuck.values())}

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open_count -= len(idle)
            self._lock.notify_all()
        for c in idle:
            unbind(c.ldap)

    # -- binding as the person ------------------------------------------------------------------------------
    def bind_as(self, dn: str, password: str) -> Conn:
        """A fresh connection bound as ``dn`` (tried on each URI in turn), or AuthenticationFailed /
        ServiceUnavailable."""
        failures = []
        for uri in self._uri_order():
            try:
                return Conn(uri, self._open(uri, dn, password, "user"))
            except ldap.INVALID_CREDENTIALS:
                raise AuthenticationFailed("wrong password" if not self.settings.user_dn_template
                                           else "wrong password or unknown user") from None
            except (ldap.UNWILLING_TO_PERFORM, ldap.INAPPROPRIATE_AUTH, ldap.INVALID_DN_SYNTAX,
                    ldap.CONSTRAINT_VIOLATION) as exc:
                raise AuthenticationFailed(f"bind refused by the directory ({type(exc).__name__})") from None
            except _URIDown as exc:
                failures.append(exc)
            except ldap.LDAPError as exc:
                self.mark_failed(uri, exc)
                failures.append(_URIDown(uri, describe(exc)))
        self._give_up(failures)

    # -- service connections -------------------------------------------------------------------------------
    def service(self, op):
        """Runs ``op(ldap_connection)`` on a pooled service connection, replacing broken ones and failing over."""
        excluded: set[str] = set()
        failures: list[_URIDown] = []
        for _ in range(2 * len(self.settings.uris) + 2):
            try:
                conn, reused = self._acquire(excluded, failures)
            except _NoServer:
                break
            try:
                result = op(conn.ldap)
            except ldap.LDAPError as exc:
                self._discard(conn)
                self.mark_failed(conn.uri, exc)
                failures.append(_URIDown(conn.uri, describe(exc), isinstance(exc, ldap.TIMEOUT)))
                if not reused or not isinstance(exc, ldap.SERVER_DOWN):
                    excluded.add(conn.uri)  # a stale pooled connection is retried once, fresh, on the same URI
                continue
            except BaseException:
                self._discard(conn)
                raise
            self._release(conn)
            return result
        self._give_up(failures)

    def _acquire(self, excluded: set[str], failures: list) -> tuple[Conn, bool]:
        deadline = time.monotonic() + self.settings.timeout
        victim = None
        with self._lock:
            while True:
                if self._closed:
                    raise ServiceUnavailable(UNAVAILABLE)
                for i, c in enumerate(self._idle):
                    if c.uri not in excluded:
                        return self._idle.pop(i), True
                if self._open_count < self.settings.pool_size:
                    self._open_count += 1
                    break
                if self._idle:
                    # only connections to URIs that just failed: make room for a fresh one
                    victim = self._idle.pop(0)
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    log.warning("LDAP: all %d pooled connections busy for %.1fs", self.settings.pool_size,
                                self.settings.timeout)
                    raise ServiceUnavailable(UNAVAILABLE)
                self._lock.wait(left)
        # a slot is reserved: open outside the lock
        if victim is not None:
            unbind(victim.ldap)
        s = self.settings
        try:
            for uri in self._uri_order():
                if uri in excluded:
                    continue
                try:
                    return Conn(uri, self._open(uri, s.bind_dn, s.bind_password, "service")), False
                except _URIDown as exc:
                    failures.append(exc)
                except ldap.LDAPError as exc:  # e.g. the service account's bind refused
                    self.mark_failed(uri, exc)
                    failures.append(_URIDown(uri, describe(exc)))
                excluded.add(uri)
        except BaseException:
            self._free_slot()
            raise
        self._free_slot()
        raise _NoServer()

    def _free_slot(self) -> None:
        with self._lock:
            self._open_count -= 1
            self._lock.notify()

    def _release(self, conn: Conn) -> None:
        with self._lock:
            if self._closed:
                self._open_count -= 1
                close = True
            else:
                self._idle.append(conn)
                close = False
            self._lock.notify()
        if close:
            unbind(conn.ldap)

    def _discard(self, conn: Conn) -> None:
        """Drops a connection that failed, and the idle ones to the same server (likely as dead)."""
        with self._lock:
            same = [c for c in self._idle if c.uri == conn.uri]
            self._idle = [c for c in self._idle if c.uri != conn.uri]
            self._open_count -= 1 + len(same)
            self._lock.notify_all()
        for c in (conn, *same):
            unbind(c.ldap)

    # ------------------------------------------------------------------------------------------ connections
    def _open(self, uri: str, who: str, cred: str, kind: str):
        """Connects (StartTLS where configured) and binds, on a helper thread the caller waits for at most
        ``timeout`` seconds. Raises the bind's LDAPError, or _URIDown when the server cannot be used."""
        timeout = self.settings.timeout
        with self._lock:
            if self._stuck.get(uri, 0) >= self._max_stuck:
                raise _URIDown(uri, f"{self._stuck[uri]} earlier connection attempts still hang", True)
        state = {"conn": None, "error": None, "delivered": False, "abandoned": False}
        done = threading.Event()

        def attempt():
            conn = error = None
            try:
                conn = self._connect(uri, who, cred)
            except BaseException as exc:  # noqa: BLE001 -- handed to the waiting caller
                error = exc
            with self._lock:
                late = state["abandoned"]
                if late:
                    self._stuck[uri] -= 1
                else:
                    state.update(conn=conn, error=error, delivered=True)
            if late and conn is not None:
                unbind(conn)
            done.set()

        threading.Thread(target=attempt, name=f"ldap-connect {uri}", daemon=True).start()
        done.wait(timeout * 1.1 + 0.1)
        with self._lock:
            if not state["delivered"]:
                state["abandoned"] = True
                self._stuck[uri] = self._stuck.get(uri, 0) + 1
        if state["abandoned"]:
            exc = ldap.TIMEOUT({"desc": "connection attempt timed out", "info": f"no answer in {timeout:g}s"})
            self.mark_failed(uri, exc)
            raise _URIDown(uri, describe(exc), True)
        if state["error"] is not None:
            err = state["error"]
            if isinstance(err, _DOWN):
                self.mark_failed(uri, err)
                raise _URIDown(uri, describe(err), isinstance(err, ldap.TIMEOUT))
            raise err
        with self._lock:
            self._failed_at.pop(uri, None)
            self._opened[kind] += 1
        return state["conn"]

    def _connect(self, uri: str, who: str, cred: str):
        s = self.settings
        conn = ldap.initialize(uri)
        try:
            conn.set_option(ldap.OPT_PROTOCOL_VERSION, ldap.VERSION3)
            conn.set_option(ldap.OPT_REFERRALS, 0)
            conn.set_option(ldap.OPT_NETWORK_TIMEOUT, float(s.timeout))
            conn.set_option(ldap.OPT_TIMEOUT, float(s.timeout))
            conn.timeout = s.timeout  # python-ldap's wait for each synchronous result
            for opt, value in (("OPT_X_KEEPALIVE_IDLE", 30), ("OPT_X_KEEPALIVE_PROBES", 3),
                               ("OPT_X_KEEPALIVE_INTERVAL", 10)):
                if hasattr(ldap, opt):
                    conn.set_option(getattr(ldap, opt), value)
            tls = uri.lower().startswith("ldaps://") or s.start_tls
            if tls:
                if s.ca_file:
                    conn.set_option(ldap.OPT_X_TLS_CACERTFILE, s.ca_file)
                conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
                conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)  # last: builds the TLS context from the options above
            if uri.lower().startswith("ldap://") and s.start_tls:
                conn.start_tls_s()
            conn.simple_bind_s(who or "", cred or "")
            return conn
        except BaseException:
            unbind(conn)
            raise

    # -- URI health -----------------------------------------------------------------------------------------
    def _uri_order(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            failed = {u for u, t in self._failed_at.items() if now - t < RETRY_FAILED_AFTER}
        uris = list(self.settings.uris)
        return [u for u in uris if u not in failed] + [u for u in uris if u in failed]

    def mark_failed(self, uri: str, exc: BaseException) -> None:
        with self._lock:
            self._failed_at[uri] = time.monotonic()
        log.warning("LDAP server %s failed: %s", uri, describe(exc))

    def _give_up(self, failures: list[_URIDown]):
        tried = "; ".join(f"{f.uri} ({f.why})" for f in failures) or "no server could be tried"
        log.warning("%s: %s", UNAVAILABLE, tried)
        raise ServiceUnavailable(UNAVAILABLE)

    def check_open(self) -> None:
        if self._closed:
            raise ServiceUnavailable(UNAVAILABLE)
