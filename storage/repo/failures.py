"""Failed logins: the counting and ban rows of the throttle, one per key (a name, an address, a network)."""
from __future__ import annotations

from typing import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from storage.repo.base import LF


class FailuresRepo:
    """Failure counts and bans, by key; the throttle in auth/ decides what they mean."""

    def failure(self, c: Connection, key: str):
        return c.execute(sa.select(LF).where(LF.c.key == key)).first()

    def failures(self, c: Connection, keys: Iterable[str]) -> dict:
        keys = list(keys)
        return {r.key: r for r in c.execute(sa.select(LF).where(LF.c.key.in_(keys)))} if keys else {}

    def record_failure(self, c: Connection, key: str, now: float, window: float, ban_after: int,
                       ban_seconds: float, weight: int = 1) -> tuple[int, float]:
        """Add ``weight`` to ``key``'s count; returns (count in the window, banned until). The count starts again
        after ``window`` seconds, and after a ban has run out. Reaching ``ban_after`` (0: never) bans the key for
        ``ban_seconds``; a ban that is running is never extended."""
        row = c.execute(sa.select(LF).where(LF.c.key == key).with_for_update()).first()
        served = row is not None and 0 < row.banned_until <= now
        if row is None or now - row.first_at > window or served:
            count, first = weight, now
        else:
            count, first = row.count + weight, row.first_at
        banned = row.banned_until if row is not None and row.banned_until > now else 0.0
        if not banned and ban_after and count >= ban_after:
            banned = now + ban_seconds
        if row is None:
            try:
                with c.begin_nested():
                    c.execute(LF.insert().values(key=key, count=count, first_at=first, last_at=now, banned_until=banned))
            except IntegrityError:  # a concurrent first failure: count on top of it
                return self.record_failure(c, key, now, window, ban_after, ban_seconds, weight)
        else:
            c.execute(LF.update().where(LF.c.key == key).values(count=count, first_at=first, last_at=now,
                                                                banned_until=banned))
        return count, banned

    def clear_failures(self, c: Connection, key: str) -> bool:
        return c.execute(LF.delete().where(LF.c.key == key)).rowcount > 0

    def clear_failures_under(self, c: Connection, prefix: str) -> int:
        return c.execute(LF.delete().where(LF.c.key.startswith(prefix, autoescape=True))).rowcount

    def failure_rows(self, c: Connection, prefixes: Sequence[str], now: float, counting_since: float | None = None
                     ) -> list:
        """Rows under these key prefixes banned at ``now`` (and, with ``counting_since``, those whose last failure
        came after it), the longest ban first."""
        live = LF.c.banned_until > now
        if counting_since is not None:
            live = sa.or_(live, LF.c.last_at > counting_since)
        return list(c.execute(sa.select(LF).where(
            sa.or_(*[LF.c.key.startswith(p, autoescape=True) for p in prefixes]), live)
            .order_by(LF.c.banned_until.desc(), LF.c.key)))

    def purge_failures(self, c: Connection, before: float) -> int:
        """Forget counts whose last failure and ban both ended before ``before``."""
        return c.execute(LF.delete().where(LF.c.last_at < before, LF.c.banned_until < before)).rowcount
