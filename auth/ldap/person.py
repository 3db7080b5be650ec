"""A directory entry as a person: :class:`DirectoryUser`, and the centre access its group DNs grant."""
from __future__ import annotations

import re
from dataclasses import dataclass

from auth.ldap.settings import LDAPSettings

ACCESS_RANK = {"staff": 1, "remove": 2, "admin": 3}


def centre_access(groups: tuple[str, ...] | list[str], pattern: str | re.Pattern) -> dict[str, str]:
    """Institution id -> "staff" | "remove" | "admin" from group DNs matching ``pattern`` (case-insensitive; named
    groups ``institution`` and ``access``). Several groups for one centre give the highest (staff < remove <
    admin)."""
    rx = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern, re.IGNORECASE)
    out: dict[str, str] = {}
    for dn in groups:
        m = rx.search(dn)
        if not m:
            continue
        inst, access = m.group("institution"), m.group("access").lower()
        if access not in ACCESS_RANK:
            continue
        if ACCESS_RANK[access] > ACCESS_RANK.get(out.get(inst, ""), 0):
            out[inst] = access
    return out


@dataclass(frozen=True)
class DirectoryUser:
    dn: str
    username: str                         # as the directory spells it (use this, not the typed login)
    display_name: str
    email: str
    nrn: str
    groups: tuple[str, ...]               # group DNs
    enabled: bool

    def centre_access(self, pattern: str | re.Pattern = LDAPSettings.group_pattern) -> dict[str, str]:
        return centre_access(self.groups, pattern)


def first_value(attrs: dict[str, list[bytes]], name: str) -> str:
    """The first value of attribute ``name`` (matched case-insensitively) as text, or ""."""
    for k, values in attrs.items():
        if k.lower() == name.lower() and values:
            return values[0].decode("utf-8", "replace")
    return ""


def all_values(attrs: dict[str, list[bytes]], name: str) -> list[str]:
    """Every value of attribute ``name`` (matched case-insensitively) as text."""
    for k, values in attrs.items():
        if k.lower() == name.lower():
            return [v.decode("utf-8", "replace") for v in values]
    return []


def person(s: LDAPSettings, dn: str, attrs: dict, groups: tuple[str, ...], enabled: bool) -> DirectoryUser:
    """The entry ``dn`` with attributes ``attrs`` read through the attribute names of ``s``."""
    return DirectoryUser(
        dn=dn, username=first_value(attrs, s.attr_username), display_name=first_value(attrs, s.attr_display_name),
        email=first_value(attrs, s.attr_email), nrn=first_value(attrs, s.attr_nrn), groups=groups, enabled=enabled,
    )
