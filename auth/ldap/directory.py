"""People's first factor: the organisation's LDAP directory (:class:`Directory`), through python-ldap.

:class:`Directory` verifies a login + password against the directory and reads what the gateway needs of a person
(display name, e-mail, national register number, group DNs, enabled state).

- **Two ways to find the person.** Search-then-bind: a service account (``bind_dn``; anonymous when empty) searches
  ``user_base`` with ``user_filter``, then a *separate* connection binds as the entry found. Direct bind: the DN
  is ``user_dn_template`` with the login filled in, and the user's own connection reads the entry and groups.
- **Escaping, always** (:mod:`auth.ldap.search`): every filter and DN built from input is escaped, and only an
  entry whose ``attr_username`` equals the login is accepted.
- **Failures.** Wrong password, unknown, ambiguous or disabled entries raise
  :class:`storage.errors.AuthenticationFailed` (reason server-side only). An empty password is refused
  before any network traffic (an LDAP bind with a DN and no password is an *unauthenticated* bind that some
  servers accept). A directory that cannot be reached raises :class:`storage.errors.ServiceUnavailable`
  ("authentication service unavailable"), logged at WARNING without secrets; it is never a login.
- **Connections** (timeouts, failover, the service-account pool) are :mod:`auth.ldap.pool`'s.
- **Cache.** :meth:`Directory.lookup` and :meth:`Directory.lookup_by_nrn` trust an answer for ``cache_seconds``
  (so a disabled or deleted person loses access within that time); :meth:`Directory.authenticate` always binds
  (passwords are never cached) and refreshes the entry. :meth:`Directory.invalidate` forgets answers at once
  (``instpages reload`` calls it in every gateway process, through the ``trust`` cache epoch).
"""
from __future__ import annotations

import logging
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable

import ldap
import ldap.dn

from auth.ldap.person import DirectoryUser, centre_access
from auth.ldap.pool import UNAVAILABLE, Connections, unbind
from auth.ldap.search import AMBIGUOUS, EntrySearch
from auth.ldap.settings import LDAPSettings, validate
from storage.errors import AuthenticationFailed, ServiceUnavailable

log = logging.getLogger("instpages.ldap")

MAX_USERNAME = 256
CACHE_MAX_ENTRIES = 10_000


def _valid_login(username: str) -> bool:
    return (isinstance(username, str) and 0 < len(username) <= MAX_USERNAME
            and not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in username))


class Directory:
    def __init__(self, settings: LDAPSettings, clock: Callable[[], float] = time.monotonic):
        self._group_rx = validate(settings)
        self.settings = settings
        self._clock = clock
        self._conns = Connections(settings)
        self._search = EntrySearch(settings)
        # cache: key -> (expires, DirectoryUser | None)
        self._cache: dict[tuple[str, str], tuple[float, DirectoryUser | None]] = {}
        self._cache_lock = threading.Lock()
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
        self._conns.check_open()
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
        self._conns.check_open()
        if self.settings.user_dn_template:
            dn = self._search.template_dn(username)
            user = self._conns.service(lambda c: self._search.read_user(c, dn, username))
        else:
            user = self._conns.service(lambda c: self._search.find_and_read(c, username))
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
        self._conns.check_open()
        user = self._conns.service(lambda c: self._search.find_by_nrn(c, nrn))
        self._cache_put(key, user)
        if user is not None:
            self._cache_put(("u", user.username.casefold()), user)
        return user

    def centre_access(self, user: DirectoryUser) -> dict[str, str]:
        return centre_access(user.groups, self._group_rx)

    def stats(self) -> dict[str, int]:
        """Pool and connection counters: open and idle service connections, connections opened so far (service,
        user binds), connection attempts still hanging on a helper thread."""
        return self._conns.stats()

    def invalidate(self, username: str | None = None) -> None:
        """Forgets cached entries (all, or one person's)."""
        with self._cache_lock:
            if username is None:
                self._cache.clear()
            else:
                self._cache.pop(("u", username.casefold()), None)

    def close(self) -> None:
        self._conns.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------------------------------ the two flows
    def _authenticate_search(self, username: str, password: str) -> DirectoryUser:
        found = self._conns.service(lambda c: self._search.find(c, username))
        if found is AMBIGUOUS:
            log.warning("LDAP: the login matches several directory entries; refused")
            raise AuthenticationFailed("ambiguous login: several directory entries")
        if found is None:
            self._bind_nobody(password)  # the round trip a wrong password costs: the time says nothing
            raise AuthenticationFailed("unknown user", unknown_name=True)
        dn, _ = found
        try:
            conn = self._conns.bind_as(dn, password)
        except AuthenticationFailed:
            self._conns.service(lambda c: self._search.load(c, *found))  # the reads a right password costs
            raise
        unbind(conn.ldap)
        user = self._conns.service(lambda c: self._search.load(c, *found))
        if user is None:
            raise AuthenticationFailed("unknown user", unknown_name=True)  # deleted between search and read
        return user

    def _bind_nobody(self, password: str) -> None:
        """A bind as an entry that does not exist (refused by the directory like a wrong password)."""
        rdn = ldap.dn.escape_dn_chars(f"instpages-nobody-{self._nobody}")
        try:
            conn = self._conns.bind_as(f"{self.settings.attr_username}={rdn},{self.settings.user_base}", password)
        except AuthenticationFailed:
            return
        unbind(conn.ldap)  # pragma: no cover - a directory that accepts it

    def _authenticate_direct(self, username: str, password: str) -> DirectoryUser:
        dn = self._search.template_dn(username)
        conn = self._conns.bind_as(dn, password)
        try:
            user = self._search.read_user(conn.ldap, dn, username)
        except ldap.LDAPError as exc:
            self._conns.mark_failed(conn.uri, exc)
            raise ServiceUnavailable(UNAVAILABLE) from None
        finally:
            unbind(conn.ldap)
        if user is None:
            raise AuthenticationFailed("unknown user (entry not readable or login spelled differently)")
        return user

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
