"""How many tries one connection gets to log in, and for how long (OpenSSH's MaxAuthTries and LoginGraceTime).

A protocol that keeps one connection open across login attempts (SSH) reports each refused attempt here and
drops the connection when told to, so one connection cannot answer password prompts without end; and it drops a
connection that has not logged in ``grace_seconds`` after it was accepted. The throttle (``auth.throttle``)
counts failures across connections; this counts them within one.
"""
from __future__ import annotations


class ConnectionAttempts:
    def __init__(self, max_tries: int, grace_seconds: float):
        self.max_tries = max_tries
        self.grace_seconds = grace_seconds
        self.failures = 0
        self._probes = 0

    def refused(self, *, method_ran: bool) -> bool:
        """Count one refused request; True when it was the last this connection gets.

        A request that ran no method the server offers is free once: clients start with the "none" method to
        learn which methods there are. Further ones count like any other refusal, as in OpenSSH."""
        if not method_ran:
            self._probes += 1
            if self._probes == 1:
                return False
        self.failures += 1
        return self.failures >= self.max_tries

    @property
    def too_many(self) -> str:
        """The reason for the record when :meth:`refused` said stop."""
        return f"too many authentication attempts on one connection ({self.failures}, at most {self.max_tries})"

    @property
    def too_slow(self) -> str:
        """The reason for the record when the grace time ran out."""
        return f"no login within {self.grace_seconds:g} s of connecting"
