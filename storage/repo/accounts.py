"""Accounts: the people and machines that log in (local or from the directory), looked up by id or name."""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from storage.repo.base import A, Conflict, _B, utcnow

_Q_ACCOUNT = sa.select(A).where(A.c.id == _B("a"))
_Q_ACCOUNT_BY_NAME = sa.select(A).where(A.c.name == _B("n"))
_Q_DIRECTORY_ACCOUNTS_BY_LOWER_NAME = sa.select(A).where(A.c.source == "ldap", sa.func.lower(A.c.name) == _B("n"))


class AccountsRepo:
    """Account rows."""

    def add_account(self, c: Connection, name: str, role: str, institution_id: str | None,
                    password_hash: str | None = None, display_name: str = "", **extra) -> int:
        try:
            with c.begin_nested():
                return c.execute(A.insert().values(name=name, role=role, institution_id=institution_id,
                                                   password_hash=password_hash, display_name=display_name,
                                                   email="", enabled=True, created_at=utcnow(), **extra)
                                 ).inserted_primary_key[0]
        except IntegrityError:
            raise Conflict(f"account {name} already exists") from None

    def account_by_name(self, c: Connection, name: str):
        return c.execute(_Q_ACCOUNT_BY_NAME, {"n": name}).first()

    def directory_accounts_named(self, c: Connection, name: str) -> list:
        """Directory (LDAP) accounts whose name is ``name`` in another case (ASCII case-insensitive candidates;
        the caller applies the directory's own folding)."""
        return list(c.execute(_Q_DIRECTORY_ACCOUNTS_BY_LOWER_NAME, {"n": name.lower()}))

    def account(self, c: Connection, account_id: int):
        return c.execute(_Q_ACCOUNT, {"a": account_id}).first()

    def accounts(self, c: Connection) -> list:
        return list(c.execute(sa.select(A).order_by(A.c.name)))

    def set_account(self, c: Connection, account_id: int, **values) -> None:
        c.execute(A.update().where(A.c.id == account_id).values(**values))
