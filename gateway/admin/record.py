"""The record, as administration reads it: a centre's audit events (or the whole record, for the operator) and
the verification of its hash chain."""
from __future__ import annotations

from auth.policy import AdminAction
from gateway.admin.base import AdminBase


class RecordAdmin(AdminBase):
    """Reading and verifying the audit record."""

    def audit_list(self, institution: str | None = None, limit: int = 50) -> list:
        if institution:
            inst_id = self._centre(institution, AdminAction.AUDIT).id
        else:
            self._operator("reading the whole record")
            inst_id = None
        with self.repo.read() as c:
            return self.repo.audit_events(c, institution_id=inst_id, limit=limit)

    def audit_verify(self) -> tuple[int, int | None]:
        self._operator("verifying the record")
        with self.repo.read() as c:
            return self.repo.verify_audit_chain(c)
