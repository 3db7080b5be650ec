"""Crash recovery and housekeeping of uploads: what a stopped server or an abandoned upload left behind goes,
on the record, and nothing that belongs to an upload still in progress elsewhere.

Every upload in progress belongs to an owner, ``"<node>/<worker>"``: its document row (``documents.node_id``)
and its temporary blob carry it. Three sweeps, each removing only what is provably dead:

- :meth:`Housekeeping.recover` -- when a node starts, before any of its workers serves: the node's own
  uploads (every worker's) are aborted, its temporaries removed; committed blobs no row refers to are deleted
  (listed BEFORE the rows are read: a row is written before its blob exists, so a blob listed then with no row
  read after is nobody's). Other nodes' uploads are never touched.
- :meth:`Housekeeping.recover_worker` -- when a worker (re)starts inside a running node: only that worker's
  own uploads, which died with its predecessor.
- :meth:`Housekeeping.sweep_abandoned` -- hourly: uploads of ANY owner older than ``abandoned_hours`` (a node
  that died and never came back), their rows and their temporaries (S3 multipart uploads included).
"""
from __future__ import annotations

import logging
from datetime import timedelta

from storage.blobs.store import BlobStore, owner_tag
from storage.repository import AuditRecord, Repository, utcnow

log = logging.getLogger("instpages.mailbox")


class Housekeeping:
    """Cleans up the uploads of node ``node_id`` (worker ``worker`` of it); staged uploads never renamed expire
    after ``staged_ttl_hours``, anybody's upload still pending after ``abandoned_hours`` is abandoned."""

    def __init__(self, repo: Repository, blobs: BlobStore, *, node_id: str, worker: str = "0",
                 staged_ttl_hours: float, abandoned_hours: float = 24.0):
        self.repo = repo
        self.blobs = blobs
        self.node_id = node_id
        self.owner = owner_tag(node_id, worker)
        self.staged_ttl_hours = staged_ttl_hours
        self.abandoned_hours = abandoned_hours

    def recover(self) -> dict[str, int]:
        """Run when the node starts: the uploads its workers had in flight leave nothing behind."""
        report = {"aborted_uploads": 0, "temporary_blobs": 0, "orphan_blobs": 0, "expired_staged": 0}
        report["aborted_uploads"] = self._abort_uploads(
            lambda c: self.repo.pending_of(c, self.node_id), "pending", "interrupted by a server stop; nothing kept")
        report["temporary_blobs"] = self.blobs.sweep_temporary(owner=self.node_id, older_than=0)
        report["expired_staged"] = self.expire_staged()
        report["orphan_blobs"] = self._delete_orphans()
        if any(report.values()):
            log.info("recovery: %s", report)
        return report

    def recover_worker(self) -> dict[str, int]:
        """Run when a worker starts in a running node: what this worker's predecessor left goes, nothing else."""
        report = {"aborted_uploads": self._abort_uploads(
            lambda c: self.repo.pending_of(c, self.owner), "pending", "interrupted by a worker stop; nothing kept"),
            "temporary_blobs": self.blobs.sweep_temporary(owner=self.owner, older_than=0)}
        if any(report.values()):
            log.info("worker recovery (%s): %s", self.owner, report)
        return report

    def sweep_abandoned(self) -> dict[str, int]:
        """Hourly: uploads of any node or worker pending for ``abandoned_hours`` are abandoned (their node died
        and did not come back): rows aborted on the record, temporaries removed."""
        before = utcnow() - timedelta(hours=self.abandoned_hours)
        report = {"aborted_uploads": self._abort_uploads(
            lambda c: self.repo.stale(c, "pending", before), "pending",
            f"abandoned: still pending after {self.abandoned_hours:g} hours; nothing kept"),
            "temporary_blobs": self.blobs.sweep_temporary(owner=None, older_than=self.abandoned_hours * 3600.0)}
        if any(report.values()):
            log.info("abandoned uploads removed: %s", report)
        return report

    def _delete_orphans(self) -> int:
        """Delete the committed blobs no live row refers to. The blobs are listed first: a row exists before its
        blob is written, so a blob in this listing whose row is not in the later read has no row at all."""
        listed = list(self.blobs.list_ids())
        with self.repo.read() as c:
            live = self.repo.live_blob_ids(c)
        orphans = [blob_id for blob_id in listed if blob_id not in live]
        for blob_id in orphans:
            self.blobs.delete(blob_id)
        return len(orphans)

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
