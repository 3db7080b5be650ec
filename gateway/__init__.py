"""The gateway: the core mailbox service (``core/``), its protocol front-ends (``sftp/``, ``dav/``, ``web/``),
administration (``admin/``), and the wiring that builds and serves them (services, server, supervisor, CLI)."""
