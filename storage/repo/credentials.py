"""Credentials of accounts: SSH keys, client certificates, token cards and their challenges, device passwords
and API tokens (the secrets themselves are stored hashed by auth/, never here in clear)."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from storage.repo.base import A, CC, DP, K, TC, TCH, TK, Conflict, utcnow
from storage.repo.epochs import PINS


class CredentialsRepo:
    """What an account proves itself with, besides its password."""

    def add_ssh_key(self, c: Connection, account_id: int, fingerprint: str, public_key: str, comment: str) -> None:
        try:
            with c.begin_nested():
                c.execute(K.insert().values(account_id=account_id, fingerprint=fingerprint, public_key=public_key,
                                            comment=comment, created_at=utcnow()))
        except IntegrityError:
            raise Conflict(f"SSH key {fingerprint} is already registered") from None

    def account_for_key(self, c: Connection, fingerprint: str):
        return c.execute(sa.select(A).join(K, K.c.account_id == A.c.id).where(K.c.fingerprint == fingerprint)).first()

    def add_client_certificate(self, c: Connection, account_id: int, fingerprint: str, pem: str, subject: str) -> None:
        try:
            with c.begin_nested():
                c.execute(CC.insert().values(account_id=account_id, fingerprint=fingerprint, pem=pem, subject=subject,
                                             created_at=utcnow()))
        except IntegrityError:
            raise Conflict(f"certificate {fingerprint} is already registered") from None
        self.bump_epoch(c, PINS)  # every gateway process lets it through its TLS handshakes (gateway.core.epochs)

    def account_for_certificate(self, c: Connection, fingerprint: str):
        return c.execute(sa.select(A).join(CC, CC.c.account_id == A.c.id).where(CC.c.fingerprint == fingerprint)).first()

    def client_certificate_pems(self, c: Connection) -> list[str]:
        return [r.pem for r in c.execute(sa.select(CC.c.pem))]

    def revoke_token_cards(self, c: Connection, account_id: int) -> int:
        return c.execute(TC.update().where(TC.c.account_id == account_id, TC.c.revoked_at.is_(None))
                         .values(revoked_at=utcnow())).rowcount

    def add_token_card(self, c: Connection, account_id: int, code_hashes: dict[int, str]) -> int:
        card = c.execute(TC.insert().values(account_id=account_id, created_at=utcnow())).inserted_primary_key[0]
        for number, h in code_hashes.items():
            c.execute(TK.insert().values(card_id=card, number=number, code_hash=h))
        c.execute(TCH.delete().where(TCH.c.account_id == account_id))
        return card

    def token_code_hash(self, c: Connection, account_id: int, number: int) -> str | None:
        return c.execute(sa.select(TK.c.code_hash).join(TC, TC.c.id == TK.c.card_id).where(
            TC.c.account_id == account_id, TC.c.revoked_at.is_(None), TK.c.number == number)).scalar()

    def has_token_card(self, c: Connection, account_id: int) -> bool:
        return c.execute(sa.select(TC.c.id).where(TC.c.account_id == account_id, TC.c.revoked_at.is_(None))
                         .limit(1)).first() is not None

    def token_challenge(self, c: Connection, account_id: int):
        return c.execute(sa.select(TCH.c.number, TCH.c.expires_at).where(TCH.c.account_id == account_id)).first()

    def set_token_challenge(self, c: Connection, account_id: int, number: int, expires_at: float) -> None:
        c.execute(TCH.delete().where(TCH.c.account_id == account_id))
        c.execute(TCH.insert().values(account_id=account_id, number=number, expires_at=expires_at))

    def clear_token_challenge(self, c: Connection, account_id: int, number: int | None = None) -> bool:
        q = TCH.delete().where(TCH.c.account_id == account_id)
        if number is not None:
            q = q.where(TCH.c.number == number)
        return c.execute(q).rowcount > 0

    def add_device_password(self, c: Connection, account_id: int, label: str, lookup: str, secret_hash: str,
                            expires_at: datetime, kind: str = "webdav") -> int:
        return c.execute(DP.insert().values(account_id=account_id, label=label, lookup=lookup, kind=kind,
                                            secret_hash=secret_hash, created_at=utcnow(), expires_at=expires_at)
                         ).inserted_primary_key[0]

    def device_passwords(self, c: Connection, account_id: int | None, lookup: str | None = None,
                         kind: str = "webdav") -> list:
        """Device passwords ("webdav") or API tokens ("api") of an account, or (account None) by lookup."""
        q = sa.select(DP).where(DP.c.kind == kind).order_by(DP.c.id)
        if account_id is not None:
            q = q.where(DP.c.account_id == account_id)
        if lookup is not None:
            q = q.where(DP.c.lookup == lookup)
        return list(c.execute(q))

    def revoke_device_password(self, c: Connection, account_id: int, device_id: int, kind: str = "webdav") -> bool:
        return c.execute(DP.update().where(DP.c.id == device_id, DP.c.account_id == account_id, DP.c.kind == kind,
                                           DP.c.revoked_at.is_(None)).values(revoked_at=utcnow())).rowcount == 1

    def touch_device_password(self, c: Connection, device_id: int) -> None:
        c.execute(DP.update().where(DP.c.id == device_id).values(last_used_at=utcnow()))
