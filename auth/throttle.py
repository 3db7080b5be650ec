"""Brute-force protection that a shared network (Publilink, VERA: many people and machines behind few addresses)
can live with. Counts live in the database, so that every gateway process sees them.

- Only what can be guessed is throttled: passwords, token codes, device passwords, API tokens. A key or a
  certificate (SSH public key, SSH user certificate, pinned TLS client certificate) proves possession by a
  signature; it is never throttled nor refused because of anyone's failures (the caller skips this class).
- Per account name: every failure counts. After the n-th failure inside ``window`` the name waits
  ``delay_base * 2^(n-1)`` seconds (capped at ``delay_max``) before its next attempt is looked at, and
  ``ban_after`` failures ban the name for ``ban_seconds``. Unknown names are counted alike, so that the
  answers never tell whether a name exists.
- Per source address: only what says "someone is trying many names from here" scores, with a weight per kind
  of event (after SFTPGo's defender): an unknown name ``score_unknown_name``; the first failure of a known name
  from this address inside the window ``score_known_name``; further failures of that same name nothing (they
  are the name's business). ``source_ban_score`` bans the address for ``ban_seconds``: then every guessable
  login from it is refused, keys and certificates still are not. Addresses in ``exempt_networks`` never score
  (after OpenSSH's PerSourcePenaltyExemptList); IPv6 addresses count per /64 (after PerSourceNetBlockSize).
- A refusal because of a delay or a ban is answered at once, is not counted and never extends a ban (an
  attempt during a ban looks at no credential, so there is nothing to punish); the caller learns when the name
  or address may try again (``Throttled.until``), for Retry-After.
"""
from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from typing import Iterable

from auth.networks import Network, in_networks
from storage.errors import Throttled
from storage.repository import Repository

ACCOUNT = "account:"
SOURCE = "source:"
SEEN = "seen:"  # "seen:<address>|<name>": a known name already failed from this address inside the window


@dataclass(frozen=True)
class Ban:
    """A row of ``instpages ban list``: an account name or a source address, its count (failures of the name, or
    the address's score) in the current window, and its ban (0 = none)."""

    kind: str  # "account" or "address"
    subject: str
    count: int
    last_at: float
    banned_until: float


@dataclass(frozen=True)
class Failure:
    """What a counted failure means for the client: ``delay`` seconds a front-end that holds no thread may wait
    before answering (SFTP); ``until`` the moment the name or address may try again."""

    delay: float
    until: float


def source_subject(source: str) -> str:
    """The address as counted: IPv4-mapped IPv6 as IPv4, IPv6 by its /64, anything unparsable as given."""
    try:
        addr = ipaddress.ip_address(source.split("%", 1)[0].strip())
    except ValueError:
        return source.strip()[:100]
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped:
            return str(addr.ipv4_mapped)
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)


def account_subject(username: str) -> str:
    return username[:64].lower()


class LoginThrottle:
    def __init__(self, repo: Repository, *, window: float = 900, delay_base: float = 0.25, delay_max: float = 4.0,
                 ban_after: int = 10, ban_seconds: float = 900, source_ban_score: int = 30,
                 score_unknown_name: int = 3, score_known_name: int = 1,
                 exempt_networks: Iterable[Network] = (), clock=time.time):
        self.repo = repo
        self.window = window
        self.delay_base = delay_base
        self.delay_max = delay_max
        self.ban_after = ban_after
        self.ban_seconds = ban_seconds
        self.source_ban_score = source_ban_score
        self.score_unknown_name = score_unknown_name
        self.score_known_name = score_known_name
        self.exempt_networks = tuple(exempt_networks)
        self.clock = clock
        self._purged = 0.0

    # -- keys ------------------------------------------------------------------------------------------------
    @staticmethod
    def account_key(username: str) -> str:
        return ACCOUNT + account_subject(username)

    @staticmethod
    def source_key(source: str) -> str:
        return SOURCE + source_subject(source)

    def exempt(self, source: str) -> bool:
        return bool(self.exempt_networks) and in_networks(source, self.exempt_networks)

    def _source_key(self, source: str) -> str | None:
        return self.source_key(source) if source and not self.exempt(source) else None

    def delay(self, count: int) -> float:
        if count <= 0:
            return 0.0
        return min(self.delay_max, self.delay_base * 2 ** min(count - 1, 62))

    # -- the decision before credentials ---------------------------------------------------------------------
    def check(self, username: str, source: str) -> None:
        """Raise Throttled when the name or the address is banned, or the name is in its delay period."""
        now = self.clock()
        akey = self.account_key(username) if username else None
        skey = self._source_key(source)
        with self.repo.read() as c:
            rows = self.repo.failures(c, [k for k in (akey, skey) if k])
        for key in (akey, skey):
            row = rows.get(key)
            if row is not None and row.banned_until > now:
                raise Throttled(key, row.banned_until, banned=True)
        row = rows.get(akey)
        if row is not None:
            not_before = row.last_at + self.delay(row.count)
            if not_before > now:
                raise Throttled(akey, not_before, banned=False)

    # -- counting --------------------------------------------------------------------------------------------
    def failed(self, username: str, source: str, *, unknown_name: bool = False) -> Failure:
        """Count a failed login whose credentials were looked at."""
        now = self.clock()
        count, until = 0, now
        with self.repo.write() as c:
            if username:
                count, banned = self.repo.record_failure(c, self.account_key(username), now, self.window,
                                                         self.ban_after, self.ban_seconds)
                until = max(now + self.delay(count), banned)
            skey = self._source_key(source)
            weight = self._source_weight(c, username, source, unknown_name, now) if skey else 0
            if weight:
                _, banned = self.repo.record_failure(c, skey, now, self.window, self.source_ban_score,
                                                     self.ban_seconds, weight)
                until = max(until, banned)
            if now - self._purged > self.window:
                self._purged = now
                self.repo.purge_failures(c, now - self.window)
        return Failure(self.delay(count), until)

    def _source_weight(self, c, username: str, source: str, unknown_name: bool, now: float) -> int:
        if unknown_name or not username:
            return self.score_unknown_name
        seen_key = f"{SEEN}{source_subject(source)}|{account_subject(username)}"
        times, _ = self.repo.record_failure(c, seen_key, now, self.window, 0, 0)
        return self.score_known_name if times == 1 else 0

    def succeeded(self, username: str) -> None:
        """A guessable login succeeded: the name's count starts again (keys and certificates never clear it)."""
        with self.repo.write() as c:
            self.repo.clear_failures(c, self.account_key(username))

    # -- the operator's view ---------------------------------------------------------------------------------
    def bans(self, *, counting: bool = False) -> list[Ban]:
        """Banned names and addresses (``counting``: also those with failures inside the window)."""
        now = self.clock()
        with self.repo.read() as c:
            rows = self.repo.failure_rows(c, (ACCOUNT, SOURCE), now, now - self.window if counting else None)
        return [Ban("account" if r.key.startswith(ACCOUNT) else "address", r.key.split(":", 1)[1],
                    r.count, r.last_at, r.banned_until if r.banned_until > now else 0.0) for r in rows]

    @staticmethod
    def target_key(target: str) -> str:
        """``instpages ban lift`` takes a name or an address (IPv6: any address of the /64, or the /64)."""
        text = target.strip()
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return LoginThrottle.account_key(text)
        return SOURCE + source_subject(str(net.network_address))

    def lift(self, target: str) -> Ban | None:
        """Forget the ban and the count of a name or an address; returns what there was (None: nothing)."""
        key = self.target_key(target)
        now = self.clock()
        with self.repo.write() as c:
            row = self.repo.failure(c, key)
            self.repo.clear_failures(c, key)
            if key.startswith(SOURCE):
                self.repo.clear_failures_under(c, f"{SEEN}{key[len(SOURCE):]}|")
        if row is None:
            return None
        return Ban("account" if key.startswith(ACCOUNT) else "address", key.split(":", 1)[1], row.count,
                   row.last_at, row.banned_until if row.banned_until > now else 0.0)
