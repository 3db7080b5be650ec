"""Finding and reading people's entries: the searches, every filter and DN built from input escaped.

Every filter and DN built from input goes through ``ldap.filter.escape_filter_chars`` or
``ldap.dn.escape_dn_chars``; templates are filled by plain replacement of ``{username}`` / ``{dn}`` with the
escaped value (never ``str.format`` on input). A result is only accepted when exactly one entry matches and its
``attr_username`` equals the login (case-insensitively): slapd's matching rules also fold compatibility
characters and spaces (``"ａｌｉｃｅ"`` and ``"alice "`` find ``uid=alice``), which must not become a second spelling
of an account.
"""
from __future__ import annotations

import logging

import ldap
import ldap.dn
import ldap.filter

from auth.ldap.person import DirectoryUser, all_values, person
from auth.ldap.settings import LDAPSettings

log = logging.getLogger("instpages.ldap")


class _Ambiguous:
    pass


AMBIGUOUS = _Ambiguous()  # several entries matched: none is used


def fill(template: str, key: str, escaped: str) -> str:
    """Puts an already escaped value into a filter or DN template (plain replacement, no format mini-language)."""
    return template.replace(key, escaped)


class EntrySearch:
    """The searches the directory runs, each on a python-ldap connection it is handed."""

    def __init__(self, settings: LDAPSettings):
        s = self.settings = settings
        self._attrs = sorted({s.attr_username, s.attr_display_name, s.attr_email, s.attr_nrn})

    def template_dn(self, username: str) -> str:
        return fill(self.settings.user_dn_template, "{username}", ldap.dn.escape_dn_chars(username))

    def people_base(self) -> str:
        s = self.settings
        if s.user_base:
            return s.user_base
        rdns = ldap.dn.str2dn(s.user_dn_template.replace("{username}", "x"))
        return ldap.dn.dn2str(rdns[1:])

    def matches_login(self, attrs: dict, username: str) -> bool:
        want = username.casefold()
        return any(v.casefold() == want for v in all_values(attrs, self.settings.attr_username))

    def search_one(self, conn, base: str, flt: str):
        """(dn, attrs) of the single entry matching, None, or AMBIGUOUS."""
        t = self.settings.timeout
        try:
            res = conn.search_ext_s(base, ldap.SCOPE_SUBTREE, flt, self._attrs, timeout=t, sizelimit=2)
        except ldap.SIZELIMIT_EXCEEDED:
            return AMBIGUOUS
        entries = [(dn, attrs) for dn, attrs in res if dn]  # drop search references
        if len(entries) > 1:
            return AMBIGUOUS
        return entries[0] if entries else None

    def find(self, conn, username: str):
        """(dn, attrs) of the entry whose login is ``username``, None, or AMBIGUOUS."""
        s = self.settings
        flt = fill(s.user_filter, "{username}", ldap.filter.escape_filter_chars(username))
        found = self.search_one(conn, s.user_base, flt)
        if found is None or found is AMBIGUOUS:
            return found
        if not self.matches_login(found[1], username):
            return None  # found only through the server's folding (compatibility characters, spaces)
        return found

    def find_and_read(self, conn, username: str) -> DirectoryUser | None:
        found = self.find(conn, username)
        if found is AMBIGUOUS:
            log.warning("LDAP: the login matches several directory entries; treated as absent")
            return None
        return None if found is None else self.load(conn, *found)

    def find_by_nrn(self, conn, nrn: str) -> DirectoryUser | None:
        """The one person whose ``attr_nrn`` equals ``nrn``; None when none, or when several claim it."""
        s = self.settings
        objects = fill(s.user_filter, "{username}", "*") if "{username}" in s.user_filter else s.user_filter
        flt = f"(&{objects}({s.attr_nrn}={ldap.filter.escape_filter_chars(nrn)}))"
        found = self.search_one(conn, self.people_base(), flt)
        if found is AMBIGUOUS:
            log.warning("LDAP: several entries carry the national register number asked for; none is used")
            return None
        if found is None:
            return None
        return self.load(conn, *found)

    def read_user(self, conn, dn: str, username: str) -> DirectoryUser | None:
        try:
            res = conn.search_ext_s(dn, ldap.SCOPE_BASE, "(objectClass=*)", self._attrs,
                                    timeout=self.settings.timeout)
        except (ldap.NO_SUCH_OBJECT, ldap.INVALID_DN_SYNTAX):
            return None
        entries = [(d, a) for d, a in res if d]
        if len(entries) != 1 or not self.matches_login(entries[0][1], username):
            return None
        return self.load(conn, *entries[0])

    def load(self, conn, dn: str, attrs: dict) -> DirectoryUser | None:
        """Completes an entry with its enabled state and groups; None when it vanished meanwhile."""
        s, t = self.settings, self.settings.timeout
        enabled = True
        if s.disabled_filter:
            try:
                res = conn.search_ext_s(dn, ldap.SCOPE_BASE, s.disabled_filter, ["1.1"], timeout=t)
            except ldap.NO_SUCH_OBJECT:
                return None
            enabled = not any(d for d, _ in res)
        groups: tuple[str, ...] = ()
        if s.group_base:
            flt = fill(s.group_filter, "{dn}", ldap.filter.escape_filter_chars(dn))
            res = conn.search_ext_s(s.group_base, ldap.SCOPE_SUBTREE, flt, ["1.1"], timeout=t)
            groups = tuple(sorted(d for d, _ in res if d))
        return person(s, dn, attrs, groups, enabled)
