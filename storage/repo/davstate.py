"""WebDAV state as the core sees it: how many live locks an account holds (the lock and property rows
themselves are written by the WebDAV front-end's lock storage and property manager)."""
from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from storage.repo.base import DL


class DavStateRepo:
    """Reads over the WebDAV lock rows."""

    def dav_locks_held(self, c: Connection, principal: str, now: float) -> int:
        """Live WebDAV locks held by the account named ``principal`` (kept in each lock's JSON record; locks
        are few, every account's being bounded). A negative expiry never ends."""
        rows = c.execute(sa.select(DL.c.data).where(sa.or_(DL.c.expire < 0, DL.c.expire >= now)))
        return sum(1 for r in rows if json.loads(r.data).get("principal") == principal)
