"""The metadata repository: every row the gateway reads or writes goes through here.

:class:`Repository` is composed of one mixin per aggregate, each in its own module of :mod:`storage.repo`
(institutions, grants, accounts, credentials, folders, documents, notifications, WebDAV state, failed logins,
cache epochs, audit) over the shared transactions of :mod:`storage.repo.base`. Callers hold one ``Repository``
and call ``repo.method(c, ...)`` with a connection from :meth:`~storage.repo.base.RepositoryBase.write` or
``read``, so that a state change and its audit event commit together.
"""
from __future__ import annotations

import sqlalchemy as sa

from storage import db
from storage.repo.accounts import AccountsRepo
from storage.repo.audit import GENESIS, AuditRecord, AuditRepo
from storage.repo.base import (CC, DL, DP, LF, OB, SC, TC, TCH, TK, A, Conflict, D, E, F, G, H, I, K, RepositoryBase,
                               as_utc, utcnow)
from storage.repo.catalogue import CatalogueQuery, CatalogueRepo, CatalogueRow
from storage.repo.credentials import CredentialsRepo
from storage.repo.davstate import DavStateRepo
from storage.repo.documents import DocumentRow, DocumentsRepo
from storage.repo.epochs import EpochsRepo
from storage.repo.failures import FailuresRepo
from storage.repo.folders import FoldersRepo
from storage.repo.grants import GrantsRepo
from storage.repo.institutions import InstitutionsRepo
from storage.repo.notifications import NotificationsRepo

__all__ = ["Repository", "AuditRecord", "DocumentRow", "CatalogueQuery", "CatalogueRow", "Conflict", "GENESIS", "as_utc", "utcnow",
           "A", "CC", "D", "DL", "DP", "E", "F", "G", "H", "I", "K", "LF", "OB", "SC", "TC", "TCH", "TK"]


class Repository(InstitutionsRepo, GrantsRepo, AccountsRepo, CredentialsRepo, FoldersRepo, DocumentsRepo, CatalogueRepo,
                 NotificationsRepo, DavStateRepo, FailuresRepo, EpochsRepo, AuditRepo, RepositoryBase):
    """All aggregates over one engine (each mixin's methods are named apart; tests/storage checks it)."""

    def initialize(self) -> None:
        """Migrate the schema to the newest revision and make sure the audit chain has its head row. (Events a
        process left unsealed when it stopped are sealed by the next write, from any process.)"""
        db.migrate(self.engine)
        with self.write() as c:
            if c.execute(sa.select(H.c.id).where(H.c.id == 1)).first() is None:
                c.execute(H.insert().values(id=1, last_id=0, hash=GENESIS))
