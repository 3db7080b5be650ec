"""Documents, as administration sees them: a centre's catalogue (documents filed by kind, legislation and
period, each with its receipt) and archived documents -- names and dates, never content -- and restoring one to
where it was; how many documents in the mailboxes no filing rule filed (the security cell's count of unclassified
documents)."""
from __future__ import annotations

from auth.policy import AdminAction
from gateway.admin.base import AdminBase
from gateway.core import path as vpath
from gateway.core.catalogue import UNCLASSIFIED, DocumentFilter
from storage.errors import AdminConflict, AdminError, AdminForbidden, AdminNotFound, NotFound
from storage.repository import CatalogueQuery, CatalogueRow


#: documents refiled in one transaction
REFILE_BATCH = 1000


class DocumentAdmin(AdminBase):
    """The catalogue and receipts; archived documents and their restoring."""

    def catalogue(self, raw_id: str, flt: DocumentFilter = DocumentFilter()) -> list[CatalogueRow]:
        """The centre's documents matching ``flt`` (checked by :func:`gateway.core.catalogue.document_filter`),
        newest first, each with its receipt. The read is on the record."""
        inst = self._centre(raw_id, AdminAction.CATALOGUE)
        unclassified = flt.kind == UNCLASSIFIED
        q = CatalogueQuery(kind=None if unclassified else flt.kind, unclassified=unclassified,
                           legislation=flt.legislation, period=flt.period, since=flt.since,
                           states=("archived",) if flt.archived else ("committed",), limit=flt.limit,
                           offset=flt.offset)
        with self.repo.read() as c:
            rows = self.repo.catalogue(c, inst.id, q)
        shown = ", ".join(f"{k}={v}" for k, v in (("kind", flt.kind), ("legislation", flt.legislation),
                                                   ("period", flt.period)) if v)
        with self.repo.write() as c:
            self._audit(c, "list", inst.id, detail=f"catalogue: {len(rows)} documents"
                        f"{' (' + shown + ')' if shown else ''}{' archived' if flt.archived else ''}")
        return rows

    def receipt(self, institution: str, raw_path: str) -> CatalogueRow:
        """The receipt of the document at ``raw_path`` (as :meth:`restore` takes it): the one in the mailbox,
        else the one last archived from there. The read is on the record."""
        inst_id = self._centre(institution, AdminAction.CATALOGUE).id
        path = self._document_path(inst_id, raw_path)
        with self.repo.read() as c:
            rows = self.repo.catalogue_by_name(c, inst_id, path.folder, path.name)
        row = next((r for r in rows if r.state == "committed"), rows[0] if rows else None)
        with self.repo.write() as c:
            if row is None:
                self._audit(c, "receipt", inst_id, str(path), detail="no such document", outcome="denied")
            else:
                self._audit(c, "receipt", inst_id, str(path), document_id=row.id)
        if row is None:
            raise AdminNotFound(f"no document {path}")
        return row

    def _document_path(self, inst_id: str, raw_path: str) -> vpath.VPath:
        """A document's path inside the centre's mailbox, given with or without ``/<centre>/`` in front."""
        rel = raw_path if raw_path.startswith("/" + inst_id) else "/" + inst_id + "/" + raw_path.lstrip("/")
        try:
            path = vpath.parse(rel)
        except NotFound:
            raise AdminError(f"not a document path: {raw_path}") from None
        if not path.parts or path.institution != inst_id:
            raise AdminError("give the document's path inside the mailbox")
        return path

    def archived(self, raw_id: str, limit: int = 500) -> list:
        """Archived documents of a centre (names and dates; restorable)."""
        inst = self._centre(raw_id, AdminAction.RESTORE)
        with self.repo.read() as c:
            return self.repo.archived_in(c, inst.id, limit)

    def unclassified(self) -> list[tuple[str, str, int]]:
        """Per centre, how many documents in its mailbox no filing rule filed: (centre id, name, count), by id,
        centres with none left out. Counts only -- no names: the security cell, who sees this, does not read
        mailboxes; anyone else is refused, on the record."""
        if not self.may(AdminAction.UNCLASSIFIED):
            raise self._refuse(AdminAction.UNCLASSIFIED, None, AdminForbidden(
                f"{self.actor} may not see the counts of unclassified documents (the security cell does)"))
        with self.repo.read() as c:
            counts = self.repo.unclassified_counts(c)
            names = {r.id: r.name for r in self.repo.institutions(c, [cid for cid, _ in counts])} if counts else {}
        return [(cid, names.get(cid, ""), n) for cid, n in counts]

    def refile(self, institution: str | None = None, *, everything: bool = False) -> dict[str, int]:
        """File delivered documents again by the current filing rules (``[documents] filing_rules``): the
        unclassified ones (documents delivered before filing existed, or before a rule that files them), or with
        ``everything`` every one, after a change of the rules. Names only, never content; the operator's task, on
        the record (one event per centre whose documents changed). Returns the counts."""
        inst_id = self._institution_id(institution) if institution is not None else None
        if not self.may(AdminAction.REFILE, inst_id):
            raise self._refuse(AdminAction.REFILE, inst_id, AdminForbidden(
                f"{self.actor} may not refile documents (the operator does, from the gateway host)"))
        counts = {"examined": 0, "changed": 0, "unclassified": 0}
        changed: dict[str, int] = {}
        after = 0
        while True:
            with self.repo.write() as c:
                rows = self.repo.filings_after(c, after, REFILE_BATCH, institution_id=inst_id,
                                               unclassified_only=not everything)
                for doc_id, centre, folder, name, old in rows:
                    new = self.mailbox.filing.classify(f"{folder}/{name}" if folder else name)
                    filed = tuple(new) if new is not None else None
                    if filed != old:
                        self.repo.set_filing(c, doc_id, *(filed or (None, None, None)))
                        changed[centre] = changed.get(centre, 0) + 1
                    counts["unclassified"] += filed is None
                counts["examined"] += len(rows)
            if len(rows) < REFILE_BATCH:
                break
            after = rows[-1][0]
        counts["changed"] = sum(changed.values())
        with self.repo.write() as c:
            for centre, n in sorted(changed.items()):
                self._audit(c, "refile", centre, detail=f"{n} documents filed again by the current rules")
        return counts

    def restore(self, institution: str, raw_path: str) -> int:
        inst_id = self._centre(institution, AdminAction.RESTORE).id
        path = self._document_path(inst_id, raw_path)
        with self.repo.write() as c:
            archived = self.repo.archived_documents(c, inst_id, path.folder, path.name)
            if not archived:
                raise AdminNotFound(f"no archived document {path}")
            if self.repo.visible_document(c, inst_id, path.folder, path.name) is not None:
                raise AdminConflict(f"{path} holds another document now; restoring would overwrite it")
            doc = archived[0]
            if path.folder:
                self.repo.create_folders(c, inst_id, path.folder, self.actor)
            self.repo.set_state(c, doc.id, ("archived",), "committed", archived_at=None, archived_by=None)
            self._audit(c, "restore", inst_id, str(path), document_id=doc.id)
        return doc.id
