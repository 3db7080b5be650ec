"""Cache epochs: one version per cache scope, raised when what the scope caches changes, read by every gateway
process to know which of its caches to drop (the rule and the bound: :mod:`gateway.core.epochs`)."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from storage.models import CacheEpoch

CE = CacheEpoch.__table__

#: the scope a pinned client certificate raises, in the transaction that pins it (the other scopes are the core's)
PINS = "pins"

_UPSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


class EpochsRepo:
    """The ``cache_epochs`` rows."""

    def bump_epoch(self, c: Connection, scope: str) -> int:
        """Raise ``scope``'s version by one (its row made at 1 the first time); returns the new version. The row
        stays locked until ``c`` commits, so two raisers never both see the same old version."""
        insert = _UPSERT[c.dialect.name](CE).values(scope=scope, version=1)
        c.execute(insert.on_conflict_do_update(index_elements=[CE.c.scope], set_={"version": CE.c.version + 1}))
        return c.execute(sa.select(CE.c.version).where(CE.c.scope == scope)).scalar_one()

    def cache_epochs(self, c: Connection) -> dict[str, int]:
        """Every scope's version (a scope never raised has no row: version 0)."""
        return {r.scope: r.version for r in c.execute(sa.select(CE.c.scope, CE.c.version))}
