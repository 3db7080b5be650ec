"""The LDAP directory's settings (a frozen dataclass the factory fills from the configuration) and their checks."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from storage.errors import ConfigError

log = logging.getLogger("instpages.ldap")


@dataclass(frozen=True)
class LDAPSettings:
    uris: tuple[str, ...]                 # tried in order; ldap:// or ldaps://
    start_tls: bool = True                # for ldap:// URIs
    ca_file: str = ""                     # CA bundle to verify the server (system store when empty)
    bind_dn: str = ""                     # service account for search-then-bind (anonymous when empty) ...
    bind_password: str = field(default="", repr=False)
    user_dn_template: str = ""            # ... or direct bind, e.g. "uid={username},ou=people,dc=example,dc=test"
    user_base: str = ""
    user_filter: str = "(&(objectClass=inetOrgPerson)(uid={username}))"
    disabled_filter: str = ""             # entries matching it are disabled, e.g. "(employeeType=disabled)"
    attr_username: str = "uid"
    attr_display_name: str = "cn"
    attr_email: str = "mail"
    attr_nrn: str = "serialNumber"        # national register number
    group_base: str = ""                  # no group lookup when empty
    group_filter: str = "(member={dn})"
    group_pattern: str = r"^cn=ocmw-(?P<institution>\d{10})-(?P<access>staff|remove|admin),"
    timeout: float = 5.0                  # network + operation timeout, seconds (per URI)
    cache_seconds: float = 300.0          # how long a looked-up entry (enabled state, groups) is trusted
    pool_size: int = 4                    # pooled service-account connections


def validate(s: LDAPSettings) -> re.Pattern:
    """Refuses unusable settings (ConfigError naming the key), warns about clear-text URIs; returns the compiled
    ``group_pattern``."""
    if isinstance(s.uris, str) or not s.uris:
        raise ConfigError("ldap.uris: give one or more ldap:// or ldaps:// URIs")
    for uri in s.uris:
        if not re.match(r"^ldaps?://[^/?#]+/?$", uri, re.IGNORECASE):
            raise ConfigError(f"ldap.uris: {uri!r} is not an ldap:// or ldaps:// URI")
    if not s.user_dn_template and not s.user_base:
        raise ConfigError("ldap: set user_base (search-then-bind) or user_dn_template (direct bind)")
    if s.user_dn_template and "{username}" not in s.user_dn_template:
        raise ConfigError("ldap.user_dn_template must contain {username}")
    if not s.user_dn_template and "{username}" not in s.user_filter:
        raise ConfigError("ldap.user_filter must contain {username}")
    if s.group_base and "{dn}" not in s.group_filter:
        raise ConfigError("ldap.group_filter must contain {dn}")
    if s.timeout <= 0 or s.pool_size < 1 or s.cache_seconds < 0:
        raise ConfigError("ldap: timeout and pool_size must be positive, cache_seconds not negative")
    try:
        group_rx = re.compile(s.group_pattern, re.IGNORECASE)
    except re.error as exc:
        raise ConfigError(f"ldap.group_pattern: {exc}") from None
    for uri in s.uris:
        if uri.lower().startswith("ldap://") and not s.start_tls:
            log.warning("LDAP %s is used without TLS: passwords cross the network in clear", uri)
    return group_rx
