"""``reload``: every gateway process, on every node, reads its trust material again -- pinned client certificates,
the eID trust anchors and CRLs, SSH user CAs and revoked keys -- and forgets cached directory entries, within
``storage.cache_sync_seconds`` (it raises the ``trust`` cache epoch: :mod:`gateway.core.epochs`). On the record."""
from __future__ import annotations

from gateway.commands.base import command
from gateway.config import Config
from gateway.core.epochs import TRUST
from storage.repository import AuditRecord


def add_reload(sub, common) -> None:
    command(sub, common, "reload", reload, help="every gateway process reads its trust material again (certificates, "
                                                "CAs, CRLs, revoked keys)")


def reload(args, cfg: Config) -> int:
    from gateway.admin.service import Administration
    from gateway.services import build

    services = build(cfg)
    try:
        admin = Administration(services.mailbox)  # only for who acts: the operator as every command names them
        services.mailbox.epochs.bump(TRUST, AuditRecord("trust-reload", "ok", admin.actor, admin.protocol,
                                                        admin.source, detail="instpages reload"))
    finally:
        services.close()
    print(f"trust material is read again by every gateway process within {cfg.storage.cache_sync_seconds:g} s")
    return 0
