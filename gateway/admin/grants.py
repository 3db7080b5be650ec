"""Grants: who has access to a centre's mailbox, with what, until when; giving, changing, revoking and expiring
that access.

A grant "until DATE" lasts through that day in Brussels (:func:`grant_end`); housekeeping removes grants whose end
passed (:meth:`GrantAdmin.expire_grants`), each on the record, though they stop working at their end already.
"""
from __future__ import annotations

from datetime import date, datetime, time as dtime, timedelta, timezone

from auth.policy import AdminAction
from gateway.admin.base import AdminBase
from gateway.core.localtime import BRUSSELS
from storage.errors import AdminError, AdminForbidden, AdminNotFound
from storage.repository import utcnow


def grant_end(until: date | str | None) -> datetime | None:
    """A grant "until DATE" lasts through that day in Brussels: it ends at the next local midnight."""
    if until is None or until == "":
        return None
    if isinstance(until, str):
        try:
            until = date.fromisoformat(until.strip())
        except ValueError:
            raise AdminError(f"not a date (YYYY-MM-DD): {until[:40]!r}") from None
    if until.year > utcnow().year + 10:
        raise AdminError("an end date is at most ten years ahead; leave it out for access until revoked")
    # stored in UTC: SQLite keeps the wall-clock time only
    end = datetime.combine(until + timedelta(days=1), dtime(0, 0), tzinfo=BRUSSELS).astimezone(timezone.utc)
    if end <= utcnow():
        raise AdminError(f"the end date {until.isoformat()} is in the past")
    if end > utcnow() + timedelta(days=3660):
        raise AdminError("an end date is at most ten years ahead; leave it out for access until revoked")
    return end


class GrantAdmin(AdminBase):
    """Access to centres' mailboxes."""

    def access(self, raw_id: str) -> list:
        """Who has access to the centre's mailbox, with what, since when, granted by whom, until when."""
        inst = self._centre(raw_id, AdminAction.VIEW_ACCESS)
        with self.repo.read() as c:
            return self.repo.grants_on(c, inst.id)

    def grant(self, account: str, institution: str, can_remove: bool = False, can_write: bool = False,
              until: date | str | None = None) -> None:
        inst = self._centre(institution, AdminAction.GRANT)
        if can_write and self.principal is not None:
            raise self._refuse(AdminAction.GRANT, inst.id,
                               AdminForbidden("write access (for test accounts) is granted by the operator only"))
        ends = grant_end(until)
        with self.repo.read() as c:
            acc = self._person(c, account, AdminAction.GRANT, inst.id)
        with self.repo.write() as c:
            if self.principal is not None:
                # a local administrator changing a grant keeps the write access only the operator gives
                can_write = any(g.institution_id == inst.id and g.can_write for g in self.repo.grants_of(c, acc.id))
            self.repo.set_grant(c, acc.id, inst.id, can_remove, self.actor, can_write, ends)
            self._audit(c, "grant", inst.id, detail=f"account={acc.name} remove={'yes' if can_remove else 'no'} "
                                                    f"write={'yes' if can_write else 'no'} "
                                                    f"until={ends.date().isoformat() if ends else '-'}")
        self.mailbox.forget_logins(acc.id)

    def revoke(self, account: str, institution: str) -> None:
        inst = self._centre(institution, AdminAction.GRANT)
        with self.repo.write() as c:
            acc = self.repo.account_by_name(c, account)
            if acc is None or not self.repo.revoke_grant(c, acc.id, inst.id):
                raise AdminNotFound(f"{account[:64]} has no access to {inst.id}")
            self._audit(c, "revoke", inst.id, detail=f"account={account}")
        self.mailbox.forget_logins(acc.id)

    def expire_grants(self) -> int:
        """Remove grants whose end date passed, each on the record (housekeeping)."""
        n = 0
        with self.repo.read() as c:  # runs every few seconds: take the write lock only when there is work
            if not self.repo.expired_grants(c, utcnow()):
                return 0
        with self.repo.write() as c:
            for g in self.repo.expired_grants(c, utcnow()):
                if self.repo.delete_grant(c, g.id):
                    self._audit(c, "grant-expire", g.institution_id, detail=f"account={g.name}")
                    n += 1
        return n
