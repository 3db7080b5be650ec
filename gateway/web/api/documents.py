"""The REST API's documents of a centre, as administration sees them: ``/institutions/{id}/archived`` (names and
dates, never content) and ``/institutions/{id}/restore``."""
from __future__ import annotations

import re

from gateway.web.api.openapi import DOCUMENT_PATH
from gateway.web.api.request import ApiError, Handlers, Reply, Request, fields, iso, required, text

# the OpenAPI document's path pattern: the server accepts exactly what the document describes
_PATH = re.compile(DOCUMENT_PATH)


class DocumentHandlers(Handlers):
    """``/institutions/{id}/archived`` and ``/institutions/{id}/restore``."""

    def _archived(self, req: Request) -> Reply:
        rows = self._admin(req).archived(req.params["id"])
        return Reply(200, [{"id": d.id, "path": f"{d.folder}/{d.name}" if d.folder else d.name, "size": d.size,
                            "delivered_at": iso(d.committed_at), "archived_at": iso(d.archived_at),
                            "archived_by": d.archived_by or ""} for d in rows])

    def _restore(self, req: Request) -> Reply:
        fields(req.body, {"path"})
        path = text(required(req.body, "path"), "path", max_len=1000)
        if not _PATH.fullmatch(path):
            raise ApiError(400, "give the document's path inside the mailbox, e.g. 2026-11/report.pdf "
                                "(no empty, '.' or '..' components)")
        document_id = self._admin(req).restore(req.params["id"], path)
        return Reply(200, {"document_id": document_id})
