"""``reload``: every gateway process, on every node, reads its trust material again -- pinned client certificates,
the eID trust anchors and CRLs, SSH user CAs and revoked keys -- and forgets cached directory entries, within
``storage.cache_sync_seconds`` (it raises the ``trust`` cache epoch: :mod:`gateway.core.epochs`). On the record."""
from __future__ import annotations

from gateway.admin.service import Administration
from gateway.commands.base import administration, command
from gateway.core.epochs import TRUST
from storage.repository import AuditRecord


def add_reload(sub, common) -> None:
    command(sub, common, "reload", reload, help="every gateway process reads its trust material again (certificates, "
                                                "CAs, CRLs, revoked keys)")


@administration
def reload(args, admin: Administration) -> int:
    mailbox = admin.mailbox
    mailbox.epochs.bump(TRUST, AuditRecord("trust-reload", "ok", admin.actor, admin.protocol, admin.source,
                                           detail="instpages reload"))
    print(f"trust material is read again by every gateway process within "
          f"{mailbox.config.storage.cache_sync_seconds:g} s")
    return 0
