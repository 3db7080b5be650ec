"""Brute-force protection: failed logins counted per account name and per source address, in the database so
that every gateway process sees them. Failures are answered after an exponential delay; too many inside the
window ban the name or the address for a while. Bans are checked before any credential."""
from __future__ import annotations

import time

from storage.repository import Repository


class Banned(Exception):
    def __init__(self, key: str, until: float):
        super().__init__(key)
        self.key = key
        self.until = until


class LoginThrottle:
    def __init__(self, repo: Repository, *, window: float = 900, delay_base: float = 0.25, delay_max: float = 4.0,
                 ban_after: int = 10, ban_seconds: float = 900, clock=time.time):
        self.repo = repo
        self.window = window
        self.delay_base = delay_base
        self.delay_max = delay_max
        self.ban_after = ban_after
        self.ban_seconds = ban_seconds
        self.clock = clock

    @staticmethod
    def _keys(username: str, source: str) -> list[str]:
        keys = [f"source:{source}"] if source else []
        if username:
            keys.append(f"account:{username[:64].lower()}")
        return keys

    def check(self, username: str, source: str) -> None:
        """Raise Banned when the account name or the source address is banned right now."""
        now = self.clock()
        with self.repo.read() as c:
            for key in self._keys(username, source):
                row = self.repo.failure(c, key)
                if row is not None and row.banned_until > now:
                    raise Banned(key, row.banned_until)

    def failed(self, username: str, source: str) -> float:
        """Count a failure; returns the delay (seconds) to wait before answering."""
        now = self.clock()
        worst = 0
        with self.repo.write() as c:
            for key in self._keys(username, source):
                count, _ = self.repo.record_failure(c, key, now, self.window, self.ban_after, self.ban_seconds)
                worst = max(worst, count)
        if worst <= 1:
            return self.delay_base if worst else 0.0
        return min(self.delay_max, self.delay_base * 2 ** (worst - 1))

    def succeeded(self, username: str) -> None:
        with self.repo.write() as c:
            self.repo.clear_failures(c, f"account:{username[:64].lower()}")
