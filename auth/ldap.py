"""People's first factor: the organisation's LDAP directory, through python-ldap.

:class:`Directory` verifies a login + password against the directory and reads what the gateway needs of a person
(display name, e-mail, national register number, group DNs, enabled state).

- **Two ways to find the person.** Search-then-bind: a service account (``bind_dn``; anonymous when empty) searches
  ``user_base`` with ``user_filter``, then a *separate* connection binds as the entry found. Direct bind: the DN
  is ``user_dn_template`` with the login filled in, and the user's own connection reads the entry and groups.
- **Escaping, always.** Every filter and DN built from input goes through ``ldap.filter.escape_filter_chars`` or
  ``ldap.dn.escape_dn_chars``; templates are filled by plain replacement of ``{username}`` / ``{dn}`` with the
  escaped value (never ``str.format`` on input). A result is only accepted when exactly one entry matches and
  its ``attr_username`` equals the login (case-insensitively): slapd's matching rules also fold compatibility
  characters and spaces (``"ａｌｉｃｅ"`` and ``"alice "`` find ``uid=alice``), which must not become a second spelling
  of an account.
- **Failures.** Wrong password, unknown, ambiguous or disabled entries raise
  :class:`storage.errors.AuthenticationFailed` (reason server-side only). An empty password is refused
  before any network traffic (an LDAP bind with a DN and no password is an *unauthenticated* bind that some
  servers accept). A directory that cannot be reached raises :class:`storage.errors.ServiceUnavailable`
  ("authentication service unavailable"), logged at WARNING without secrets; it is never a login.
- **Timeouts and failover.** URIs are tried in order (recently failed ones last). Every connection has
  ``OPT_NETWORK_TIMEOUT`` and ``OPT_TIMEOUT`` and every synchronous call a client-side timeout. libldap does not
  apply either timeout to a TLS handshake (an ``ldaps://`` server that accepts and then hangs blocks forever), so
  connections are opened on a short-lived helper thread that the caller stops waiting for after ``timeout``;
  a helper still stuck is left to finish or fail on its own and closes what it opened (at most a few per URI).
- **Pool.** Service-account connections live in a bounded, thread-safe pool; a connection that fails is dropped
  (with the idle ones to the same URI) and the operation retried on a fresh one, so a restarted server costs no
  login.
- **Cache.** :meth:`Directory.lookup` and :meth:`Directory.lookup_by_nrn` trust an answer for ``cache_seconds``
  (so a disabled or deleted person loses access within that time); :meth:`Directory.authenticate` always binds
  (passwords are never cached) and refreshes the entry.
"""
from __future__ import annotations

import logging
import re
import secrets
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Callable

import ldap
import ldap.dn
import ldap.filter

from storage.errors import AuthenticationFailed, ConfigError, ServiceUnavailable

log = logging.getLogger("instpages.ldap")

UNAVAILABLE = "authentication service unavailable"
ACCESS_RANK = {"staff": 1, "remove": 2, "admin": 3}
MAX_USERNAME = 256
RETRY_FAILED_AFTER = 30.0  # seconds a failed URI is tried after the others
CACHE_MAX_ENTRIES = 10_000

# errors that say "this server, now" rather than "this request"
_DOWN = (ldap.SERVER_DOWN, ldap.TIMEOUT, ldap.CONNECT_ERROR, ldap.UNAVAILABLE, ldap.BUSY, ldap.TIMELIMIT_EXCEEDED,
         ldap.ADMINLIMIT_EXCEEDED, ldap.OTHER, ldap.LOCAL_ERROR, ldap.PROTOCOL_ERROR, ldap.DECODING_ERROR,
         ldap.ENCODING_ERROR)


@dataclass(frozen=True)
class LDAPSettings:
    uris: tuple[str, ...]                 # tried in order; ldap:// or ldaps://
    start_tls: bool = True                # for ldap:// URIs
    ca_file: str = ""                     # CA bundle to verify the server (system store when empty)
    bind_dn: str = ""                     # service account for search-then-bind (anonymous when empty) ...
    bind_password: str = field(default="", repr=False)
    user_dn_template: str = ""            # ... or direct bind, e.g. "uid={username},ou=people,dc=example,dc=test"
    user_base: str = ""
    user_filter: str = "(&(objectClass=inetOrgPerson)(uid={username}))"
    disabled_filter: str = ""             # entries matching it are disabled, e.g. "(employeeType=disabled)"
    attr_username: str = "uid"
    attr_display_name: str = "cn"
    attr_email: str = "mail"
    attr_nrn: str = "serialNumber"        # national register number
    group_base: str = ""                  # no group lookup when empty
    group_filter: str = "(member={dn})"
    group_pattern: str = r"^cn=ocmw-(?P<institution>\d{10})-(?P<access>staff|remove|admin),"
    timeout: float = 5.0                  # network + operation timeout, seconds (per URI)
    cache_seconds: float = 300.0          # how long a looked-up entry (enabled state, groups) is trusted
    pool_size: int = 4                    # pooled service-account connections


def centre_access(groups: tuple[str, ...] | list[str], pattern: str | re.Pattern) -> dict[str, str]:
    """Institution id -> "staff" | "remove" | "admin" from group DNs matching ``pattern`` (case-insensitive; named
    groups ``institution`` and ``access``). Several groups for one centre give the highest (staff < remove <
    admin)."""
    rx = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, re.IGNORECASE)
    out: dict[str, str] = {}
    for dn in groups:
        m = rx.search(dn)
        if not m:
            continue
        inst, access = m.group("institution"), m.group("access").lower()
        if access not in ACCESS_RANK:
            continue
        if ACCESS_RANK[access] > ACCESS_RANK.get(out.get(inst, ""), 0):
            out[inst] = access
    return out


@dataclass(frozen=True)
class DirectoryUser:
    dn: str
    username: str                         # as the directory spells it (use this, not the typed login)
    display_name: str
    email: str
    nrn: str
    groups: tuple[str, ...]               # group DNs
    enabled: bool

    def centre_access(self, pattern: str | re.Pattern = LDAPSettings.group_pattern) -> dict[str, str]:
        return centre_access(self.groups, pattern)


# ------------------------------------------------------------------------------------------------ helpers
def _describe(exc: BaseException) -> str:
    """A log-safe description of an LDAP error (python-ldap's info dict never carries credentials)."""
    if isinstance(exc, ldap.LDAPError) and exc.args and isinstance(exc.args[0], dict):
        d = exc.args[0]
        parts = [type(exc).__name__, str(d.get("desc", ""))]
        if d.get("info"):
            parts.append(str(d["info"]))
        return ": ".join(p for p in parts if p)
    return f"{type(exc).__name__}: {exc}"


def _fill(template: str, key: str, escaped: str) -> str:
    """Puts an already escaped value into a filter or DN template (plain replacement, no format mini-language)."""
    return template.replace(key, escaped)


def _valid_login(username: str) -> bool:
    return (isinstance(username, str) and 0 < len(username) <= MAX_USERNAME
            and not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in username))


def _first(attrs: dict[str, list[bytes]], name: str) -> str:
    for k, values in attrs.items():
        if k.lower() == name.lower() and values:
            return values[0].decode("utf-8", "replace")
    return ""


def _all(attrs: dict[str, list[bytes]], name: str) -> list[str]:
    for k, values in attrs.items():
        if k.lower() == name.lower():
            return [v.decode("utf-8", "replace") for v in values]
    return []


class _URIDown(Exception):
    def __init__(self, uri: str, why: str, timed_out: bool = False):
        super().__init__(f"{uri}: {why}")
        self.uri, self.why, self.timed_out = uri, why, timed_out


@dataclass(eq=False)
class _Conn:
    uri: str
    ldap: object


class _Ambiguous:
    pass


AMBIGUOUS = _Ambiguous()


# ------------------------------------------------------------------------------------------------ directory
class Directory:
    def __init__(self, settings: LDAPSettings, clock: Callable[[], float] = time.monotonic):
        s = settings
        if isinstance(s.uris, str) or not s.uris:
            raise ConfigError("ldap.uris: give one or more ldap:// or ldaps:// URIs")
        for uri in s.uris:
            if not re.match(r"^ldaps?://[^/?#]+/?$", uri, re.IGNORECASE):
                raise ConfigError(f"ldap.uris: {uri!r} is not an ldap:// or ldaps:// URI")
        if not s.user_dn_template and not s.user_base:
            raise ConfigError("ldap: set user_base (search-then-bind) or user_dn_template (direct bind)")
        if s.user_dn_template and "{username}" not in s.user_dn_template:
            raise ConfigError("ldap.user_dn_template must contain {username}")
        if not s.user_dn_template and "{username}" not in s.user_filter:
            raise ConfigError("ldap.user_filter must contain {username}")
        if s.group_base and "{dn}" not in s.group_filter:
            raise ConfigError("ldap.group_filter must contain {dn}")
        if s.timeout <= 0 or s.pool_size < 1 or s.cache_seconds < 0:
            raise ConfigError("ldap: timeout and pool_size must be positive, cache_seconds not negative")
        try:
            self._group_rx = re.compile(s.group_pattern, re.IGNORECASE)
        except re.error as exc:
            raise ConfigError(f"ldap.group_pattern: {exc}") from None
        for uri in s.uris:
            if uri.lower().startswith("ldap://") and not s.start_tls:
                log.warning("LDAP %s is used without TLS: passwords cross the network in clear", uri)
        self.settings = s
        self._clock = clock
        self._attrs = sorted({s.attr_username, s.attr_display_name, s.attr_email, s.attr_nrn})
        # pool
        self._lock = threading.Condition()
        self._idle: list[_Conn] = []
        self._open_count = 0
        self._closed = False
        # URI health
        self._failed_at: dict[str, float] = {}
        self._stuck: dict[str, int] = {}          # helper threads still blocked in a connection attempt
        self._max_stuck = max(4, s.pool_size)
        # cache: key -> (expires, DirectoryUser | None)
        self._cache: dict[tuple[str, str], tuple[float, DirectoryUser | None]] = {}
        self._cache_lock = threading.Lock()
        self._opened = {"service": 0, "user": 0}  # connections opened, for stats()
        self._nobody = secrets.token_hex(8)  # the entry unknown names are bound as (it does not exist)

    # ------------------------------------------------------------------------------------------ public API
    def authenticate(self, username: str, password: str) -> DirectoryUser:
        """Verifies the password by binding as the person; returns the fresh entry (and caches it)."""
        if not isinstance(password, str) or not password:
            raise AuthenticationFailed("empty password")
        try:
            password.encode("utf-8")
        except UnicodeEncodeError:
            raise AuthenticationFailed("password is not valid text") from None
        if not _valid_login(username):
            raise AuthenticationFailed("invalid username")
        self._check_open()
        if self.settings.user_dn_template:
            user = self._authenticate_direct(username, password)
        else:
            user = self._authenticate_search(username, password)
        self._cache_put(("u", username.casefold()), user)
        if not user.enabled:
            raise AuthenticationFailed("disabled in the directory")
        return user

    def lookup(self, username: str) -> DirectoryUser | None:
        """The person's entry (enabled or not), or None when there is none; trusted for ``cache_seconds``."""
        if not _valid_login(username):
            return None
        key = ("u", username.casefold())
        hit = self._cache_get(key)
        if hit is not None:
            return hit[0]
        self._check_open()
        if self.settings.user_dn_template:
            dn = self._template_dn(username)
            user = self._service(lambda c: self._read_user(c, dn, username))
        else:
            user = self._service(lambda c: self._find_and_read(c, username))
        self._cache_put(key, user)
        return user

    def lookup_by_nrn(self, nrn: str) -> DirectoryUser | None:
        """The one entry whose ``attr_nrn`` equals ``nrn`` (None when none, or when several claim it)."""
        if not _valid_login(nrn) or len(nrn) > 64:
            return None
        key = ("n", nrn)
        hit = self._cache_get(key)
        if hit is not None:
            return hit[0]
        self._check_open()
        s = self.settings
        objects = _fill(s.user_filter, "{username}", "*") if "{username}" in s.user_filter else s.user_filter
        flt = f"(&{objects}({s.attr_nrn}={ldap.filter.escape_filter_chars(nrn)}))"

        def op(conn):
            found = self._search_one(conn, self._people_base(), flt)
            if found is AMBIGUOUS:
                log.warning("LDAP: several entries carry the national register number asked for; none is used")
                return None
            if found is None:
                return None
            return self._load(conn, *found)

        user = self._service(op)
        self._cache_put(key, user)
        if user is not None:
            self._cache_put(("u", user.username.casefold()), user)
        return user

    def centre_access(self, user: DirectoryUser) -> dict[str, str]:
        return centre_access(user.groups, self._group_rx)

    def stats(self) -> dict[str, int]:
        """Pool and connection counters: open and idle service connections, connections opened so far (service,
        user binds), connection attempts still hanging on a helper thread."""
        with self._lock:
            return {"open": self._open_count, "idle": len(self._idle), "service_opened": self._opened["service"],
                    "user_opened": self._opened["user"], "stuck": sum(self._stuck.values())}

    def invalidate(self, username: str | None = None) -> None:
        """Forgets cached entries (all, or one person's)."""
        with self._cache_lock:
            if username is None:
                self._cache.clear()
            else:
                self._cache.pop(("u", username.casefold()), None)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open_count -= len(idle)
            self._lock.notify_all()
        for c in idle:
            self._unbind(c.ldap)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------------------------------ the two flows
    def _authenticate_search(self, username: str, password: str) -> DirectoryUser:
        found = self._service(lambda c: self._find(c, username))
        if found is AMBIGUOUS:
            log.warning("LDAP: the login matches several directory entries; refused")
            raise AuthenticationFailed("ambiguous login: several directory entries")
        if found is None:
            self._bind_nobody(password)  # the round trip a wrong password costs: the time says nothing
            raise AuthenticationFailed("unknown user", unknown_name=True)
        dn, _ = found
        try:
            conn = self._bind_as(dn, password)
        except AuthenticationFailed:
            self._service(lambda c: self._load(c, *found))  # the reads a right password costs
            raise
        self._unbind(conn.ldap)
        user = self._service(lambda c: self._load(c, *found))
        if user is None:
            raise AuthenticationFailed("unknown user", unknown_name=True)  # deleted between search and read
        return user

    def _bind_nobody(self, password: str) -> None:
        """A bind as an entry that does not exist (refused by the directory like a wrong password)."""
        rdn = ldap.dn.escape_dn_chars(f"instpages-nobody-{self._nobody}")
        try:
            conn = self._bind_as(f"{self.settings.attr_username}={rdn},{self.settings.user_base}", password)
        except AuthenticationFailed:
            return
        self._unbind(conn.ldap)  # pragma: no cover - a directory that accepts it

    def _authenticate_direct(self, username: str, password: str) -> DirectoryUser:
        dn = self._template_dn(username)
        conn = self._bind_as(dn, password)
        try:
            user = self._read_user(conn.ldap, dn, username)
        except ldap.LDAPError as exc:
            self._mark_failed(conn.uri, exc)
            raise ServiceUnavailable(UNAVAILABLE) from None
        finally:
            self._unbind(conn.ldap)
        if user is None:
            raise AuthenticationFailed("unknown user (entry not readable or login spelled differently)")
        return user

    # ------------------------------------------------------------------------------------------ reading entries
    def _template_dn(self, username: str) -> str:
        return _fill(self.settings.user_dn_template, "{username}", ldap.dn.escape_dn_chars(username))

    def _people_base(self) -> str:
        s = self.settings
        if s.user_base:
            return s.user_base
        rdns = ldap.dn.str2dn(s.user_dn_template.replace("{username}", "x"))
        return ldap.dn.dn2str(rdns[1:])

    def _matches_login(self, attrs: dict, username: str) -> bool:
        want = username.casefold()
        return any(v.casefold() == want for v in _all(attrs, self.settings.attr_username))

    def _search_one(self, conn, base: str, flt: str):
        """(dn, attrs) of the single entry matching, None, or AMBIGUOUS."""
        t = self.settings.timeout
        try:
            res = conn.search_ext_s(base, ldap.SCOPE_SUBTREE, flt, self._attrs, timeout=t, sizelimit=2)
        except ldap.SIZELIMIT_EXCEEDED:
            return AMBIGUOUS
        entries = [(dn, attrs) for dn, attrs in res if dn]  # drop search references
        if len(entries) > 1:
            return AMBIGUOUS
        return entries[0] if entries else None

    def _find(self, conn, username: str):
        s = self.settings
        flt = _fill(s.user_filter, "{username}", ldap.filter.escape_filter_chars(username))
        found = self._search_one(conn, s.user_base, flt)
        if found is None or found is AMBIGUOUS:
            return found
        if not self._matches_login(found[1], username):
            return None  # found only through the server's folding (compatibility characters, spaces)
        return found

    def _find_and_read(self, conn, username: str) -> DirectoryUser | None:
        found = self._find(conn, username)
        if found is AMBIGUOUS:
            log.warning("LDAP: the login matches several directory entries; treated as absent")
            return None
        return None if found is None else self._load(conn, *found)

    def _read_user(self, conn, dn: str, username: str) -> DirectoryUser | None:
        try:
            res = conn.search_ext_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", self._attrs,
                                    timeout=self.settings.timeout)
        except (ldap.NO_SUCH_OBJECT, ldap.INVALID_DN_SYNTAX):
            return None
        entries = [(d, a) for d, a in res if d]
        if len(entries) != 1 or not self._matches_login(entries[0][1], username):
            return None
        return self._load(conn, *entries[0])

    def _load(self, conn, dn: str, attrs: dict) -> DirectoryUser | None:
        """Completes an entry with its enabled state and groups; None when it vanished meanwhile."""
        s, t = self.settings, self.settings.timeout
        enabled = True
        if s.disabled_filter:
            try:
                res = conn.search_ext_s(dn, ldap.SCOPE_BASE, s.disabled_filter, ["1.1"], timeout=t)
            except ldap.NO_SUCH_OBJECT:
                return None
            enabled = not any(d for d, _ in res)
        groups: tuple[str, ...] = ()
        if s.group_base:
            flt = _fill(s.group_filter, "{dn}", ldap.filter.escape_filter_chars(dn))
            res = conn.search_ext_s(s.group_base, ldap.SCOPE_SUBTREE, flt, ["1.1"], timeout=t)
            groups = tuple(sorted(d for d, _ in res if d))
        return DirectoryUser(
            dn=dn, username=_first(attrs, s.attr_username), display_name=_first(attrs, s.attr_display_name),
            email=_first(attrs, s.attr_email), nrn=_first(attrs, s.attr_nrn), groups=groups, enabled=enabled,
        )

    # ------------------------------------------------------------------------------------------ binding as the user
    def _bind_as(self, dn: str, password: str) -> _Conn:
        """A fresh connection bound as ``dn`` (tried on each URI in turn), or AuthenticationFailed /
        ServiceUnavailable."""
        failures = []
        for uri in self._uri_order():
            try:
                return _Conn(uri, self._open(uri, dn, password, "user"))
            except ldap.INVALID_CREDENTIALS:
                raise AuthenticationFailed("wrong password" if not self.settings.user_dn_template
                                           else "wrong password or unknown user") from None
            except (ldap.UNWILLING_TO_PERFORM, ldap.INAPPROPRIATE_AUTH, ldap.INVALID_DN_SYNTAX,
                    ldap.CONSTRAINT_VIOLATION) as exc:
                raise AuthenticationFailed(f"bind refused by the directory ({type(exc).__name__})") from None
            except _URIDown as exc:
                failures.append(exc)
            except ldap.LDAPError as exc:
                self._mark_failed(uri, exc)
                failures.append(_URIDown(uri, _describe(exc)))
        self._give_up(failures)

    # ------------------------------------------------------------------------------------------ service connections
    def _service(self, op):
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
                self._mark_failed(conn.uri, exc)
                failures.append(_URIDown(conn.uri, _describe(exc), isinstance(exc, ldap.TIMEOUT)))
                if not reused or not isinstance(exc, ldap.SERVER_DOWN):
                    excluded.add(conn.uri)  # a stale pooled connection is retried once, fresh, on the same URI
                continue
            except BaseException:
                self._discard(conn)
                raise
            self._release(conn)
            return result
        self._give_up(failures)

    def _acquire(self, excluded: set[str], failures: list) -> tuple[_Conn, bool]:
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
            self._unbind(victim.ldap)
        s = self.settings
        try:
            for uri in self._uri_order():
                if uri in excluded:
                    continue
                try:
                    return _Conn(uri, self._open(uri, s.bind_dn, s.bind_password, "service")), False
                except _URIDown as exc:
                    failures.append(exc)
                except ldap.LDAPError as exc:  # e.g. the service account's bind refused
                    self._mark_failed(uri, exc)
                    failures.append(_URIDown(uri, _describe(exc)))
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

    def _release(self, conn: _Conn) -> None:
        with self._lock:
            if self._closed:
                self._open_count -= 1
                close = True
            else:
                self._idle.append(conn)
                close = False
            self._lock.notify()
        if close:
            self._unbind(conn.ldap)

    def _discard(self, conn: _Conn) -> None:
        """Drops a connection that failed, and the idle ones to the same server (likely as dead)."""
        with self._lock:
            same = [c for c in self._idle if c.uri == conn.uri]
            self._idle = [c for c in self._idle if c.uri != conn.uri]
            self._open_count -= 1 + len(same)
            self._lock.notify_all()
        for c in (conn, *same):
            self._unbind(c.ldap)

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
                self._unbind(conn)
            done.set()

        threading.Thread(target=attempt, name=f"ldap-connect {uri}", daemon=True).start()
        done.wait(timeout * 1.1 + 0.1)
        with self._lock:
            if not state["delivered"]:
                state["abandoned"] = True
                self._stuck[uri] = self._stuck.get(uri, 0) + 1
        if state["abandoned"]:
            exc = ldap.TIMEOUT({"desc": "connection attempt timed out", "info": f"no answer in {timeout:g}s"})
            self._mark_failed(uri, exc)
            raise _URIDown(uri, _describe(exc), True)
        if state["error"] is not None:
            err = state["error"]
            if isinstance(err, _DOWN):
                self._mark_failed(uri, err)
                raise _URIDown(uri, _describe(err), isinstance(err, ldap.TIMEOUT))
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
            self._unbind(conn)
            raise

    @staticmethod
    def _unbind(conn) -> None:
        try:
            conn.unbind_ext_s()
        except Exception:  # noqa: BLE001 -- closing a broken connection
            pass

    # ------------------------------------------------------------------------------------------ URI health
    def _uri_order(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            failed = {u for u, t in self._failed_at.items() if now - t < RETRY_FAILED_AFTER}
        uris = list(self.settings.uris)
        return [u for u in uris if u not in failed] + [u for u in uris if u in failed]

    def _mark_failed(self, uri: str, exc: BaseException) -> None:
        with self._lock:
            self._failed_at[uri] = time.monotonic()
        log.warning("LDAP server %s failed: %s", uri, _describe(exc))

    def _give_up(self, failures: list[_URIDown]):
        tried = "; ".join(f"{f.uri} ({f.why})" for f in failures) or "no server could be tried"
        log.warning("%s: %s", UNAVAILABLE, tried)
        raise ServiceUnavailable(UNAVAILABLE)

    def _check_open(self) -> None:
        if self._closed:
            raise ServiceUnavailable(UNAVAILABLE)

    # ------------------------------------------------------------------------------------------ cache
    def _cache_get(self, key):
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is None:
                return None
            if self._clock() >= hit[0]:
                del self._cache[key]
                return None
            return (hit[1],)

    def _cache_put(self, key, user: DirectoryUser | None) -> None:
        if self.settings.cache_seconds <= 0:
            return
        with self._cache_lock:
            self._cache.pop(key, None)
            self._cache[key] = (self._clock() + self.settings.cache_seconds, user)
            while len(self._cache) > CACHE_MAX_ENTRIES:
                self._cache.pop(next(iter(self._cache)))


class _NoServer(Exception):
    """Every URI failed while opening a service connection."""
