"""Crash recovery and housekeeping of uploads: what a stopped server or an abandoned upload left behind goes,
on the record. Run by the :class:`~gateway.core.mailbox.Mailbox` at start (:meth:`Housekeeping.recover`) and
periodically by the server (:meth:`Housekeeping.expire_staged`)."""
from __future__ import annotations

import logging
from datetime import timedelta

from storage.blobs.store import BlobStore
from storage.repository import AuditRecord, Repository, utcnow

log = logging.getLogger("instpages.mailbox")


class Housekeeping:
    """Cleans up the uploads of node ``node_id``: the repository holds their rows, ``blobs`` their bytes; staged
    uploads never renamed expire after ``staged_ttl_hours``."""

    def __init__(self, repo: Repository, blobs: BlobStore, *, node_id: str, staged_ttl_hours: float):
        self.repo = repo
        self.blobs = blobs
        self.node_id = node_id
        self.staged_ttl_hours = staged_ttl_hours

    def recover(self) -> dict[str, int]:
        """Run at start: uploads this node had in flight when it stopped leave nothing behind."""
        report = {"aborted_uploads": 0, "temporary_blobs": 0, "orphan_blobs": 0, "expired_staged": 0}
        report["aborted_uploads"] = self._abort_uploads(
            lambda c: self.repo.pending_of_node(c, self.node_id), "pending",
            "interrupted by a server stop; nothing kept")
        report["temporary_blobs"] = self.blobs.sweep_temporary(owner=self.node_id, older_than=0)
        report["expired_staged"] = self.expire_staged()
        with self.repo.read() as c:
            live = self.repo.live_blob_ids(c)
        for blob_id in list(self.blobs.list_ids()):
            if blob_id not in live:
                self.blobs.delete(blob_id)
                report["orphan_blobs"] += 1
        if any(report.values()):
            log.info("recovery: %s", report)
        return report

    def expire_staged(self) -> int:
        """Abort the staged uploads never renamed within ``staged_ttl_hours``. Returns how many."""
        before = utcnow() - timedelta(hours=self.staged_ttl_hours)
        return self._abort_uploads(lambda c: self.repo.stale(c, "staged", before), "staged",
                                   "staged upload never renamed; expired")

    def _abort_uploads(self, find, state: str, detail: str) -> int:
        """Abort the uploads ``find(connection)`` lists as ``(document id, blob id)``, each in ``state``, on the
        record with ``detail``; their blobs are deleted once that is committed. Returns how many."""
        with self.repo.write() as c:
            found = find(c)
            for doc_id, _ in found:
                self.repo.set_state(c, doc_id, (state,), "aborted")
                self.repo.audit(c, AuditRecord("upload", "aborted", "", "", "", document_id=doc_id, detail=detail))
        for _, blob_id in found:
            self.blobs.delete(blob_id)
        return len(found)
