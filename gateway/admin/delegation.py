"""Delegation: designating a centre's local administrators and its security consultant.

Who may designate is decided by :func:`auth.policy.decide_admin` (:meth:`AdminBase._centre`); a directory person
designated before their first login gets an account (:meth:`AdminBase._person`). Remembered logins are forgotten
at once so that a designation, or its end, applies to the very next request.
"""
from __future__ import annotations

from auth.policy import AdminAction
from auth.principal import Role
from gateway.admin.base import AdminBase
from storage.errors import AdminConflict, AdminNotFound


class DelegationAdmin(AdminBase):
    """The designations of a centre."""

    def set_local_admin(self, raw_id: str, account: str) -> None:
        inst = self._centre(raw_id, AdminAction.DESIGNATE)
        with self.repo.read() as c:
            acc = self._person(c, account, AdminAction.DESIGNATE, inst.id)
        if Role(acc.role) is Role.LOCAL_ADMIN and acc.institution_id and acc.institution_id != inst.id:
            raise AdminConflict(f"{acc.name} is local administrator of centre {acc.institution_id}; "
                                "remove that designation first")
        with self.repo.write() as c:
            self.repo.set_account(c, acc.id, role=Role.LOCAL_ADMIN.value, institution_id=inst.id)
            self._audit(c, "local-admin-set", inst.id, detail=f"account={acc.name}")
        self.mailbox.forget_logins()

    def unset_local_admin(self, raw_id: str, account: str) -> None:
        inst = self._centre(raw_id, AdminAction.DESIGNATE)
        with self.repo.write() as c:
            acc = self.repo.account_by_name(c, account)
            if acc is None or Role(acc.role) is not Role.LOCAL_ADMIN or acc.institution_id != inst.id:
                raise AdminNotFound(f"{account[:64]} is not a local administrator of centre {inst.id}")
            self.repo.set_account(c, acc.id, role=Role.STAFF.value, institution_id=None)
            self._audit(c, "local-admin-unset", inst.id, detail=f"account={acc.name}")
        self.mailbox.forget_logins()

    def set_security_consultant(self, raw_id: str, account: str | None) -> None:
        inst = self._centre(raw_id, AdminAction.DESIGNATE)
        acc = None
        if account:
            with self.repo.read() as c:
                acc = self._person(c, account, AdminAction.DESIGNATE, inst.id)
        with self.repo.write() as c:
            self.repo.configure_institution(c, inst.id, security_consultant_id=acc.id if acc else None)
            self._audit(c, "security-consultant-set", inst.id, detail=f"account={acc.name if acc else '-'}")
        self.mailbox.forget_logins()
