"""Who is acting: the frozen result of a successful authentication."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    UPLOADER = "uploader"          # POD MI machine account: writes into every active centre, reads nothing
    ARCHIVER = "archiver"          # one centre's machine account: list, download, remove (= archive)
    STAFF = "staff"                # a person: list and download in granted centres (remove if granted)
    LOCAL_ADMIN = "local-admin"    # a person: like staff for their own centre, and manages its grants
    SECURITY_CELL = "security-cell"  # POD MI: administers; never reads document content

    @property
    def is_machine(self) -> bool:
        return self in (Role.UPLOADER, Role.ARCHIVER)


@dataclass(frozen=True, slots=True)
class Grant:
    institution_id: str
    can_remove: bool = False
    can_write: bool = False


@dataclass(frozen=True, slots=True)
class Principal:
    account_id: int
    name: str
    role: Role
    #: the account's own centre (archiver, local-admin), if any
    institution_id: str | None = None
    grants: frozenset[Grant] = field(default_factory=frozenset)
    #: how the login was proven: "publickey", "certificate", "password"
    method: str = ""
    #: centres this person administers besides their own local-admin centre: as the centre's security
    #: consultant while it has no local administrator, or through a directory "admin" group
    administers: frozenset[str] = field(default_factory=frozenset)

    def is_admin_of(self, institution_id: str | None) -> bool:
        """A local administrator of this centre (designated, acting consultant, or by directory group)."""
        if institution_id is None:
            return False
        return institution_id in self.administers or (
            self.role is Role.LOCAL_ADMIN and self.institution_id == institution_id)

    def administered(self) -> frozenset[str]:
        own = {self.institution_id} if self.role is Role.LOCAL_ADMIN and self.institution_id else set()
        return frozenset(self.administers | own)

    def grant_for(self, institution_id: str) -> Grant | None:
        for g in self.grants:
            if g.institution_id == institution_id:
                return g
        return None
