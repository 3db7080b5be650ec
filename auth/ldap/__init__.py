"""The organisation's LDAP directory as people's first factor (through python-ldap).

- :mod:`auth.ldap.directory` -- :class:`~auth.ldap.directory.Directory`: password checks, look-ups, the cache;
- :mod:`auth.ldap.settings`  -- :class:`~auth.ldap.settings.LDAPSettings` and their validation;
- :mod:`auth.ldap.search`    -- finding and reading entries, every filter and DN escaped;
- :mod:`auth.ldap.person`    -- an entry as a :class:`~auth.ldap.person.DirectoryUser`, its groups as centre access;
- :mod:`auth.ldap.pool`      -- connections: opening with timeouts and TLS, failover, binding, the service pool.
"""
