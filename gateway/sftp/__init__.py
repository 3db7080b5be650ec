"""The SFTP front-end over asyncssh: :mod:`~gateway.sftp.server` listens and authenticates each connection through
the core's login, :mod:`~gateway.sftp.handler` translates SFTP requests to core calls, and core errors become SFTP
status codes through the one table in :mod:`~gateway.sftp.errors`; :mod:`~gateway.sftp.sshcompat` keeps, in one
small module, the asyncssh internals it relies on (tests/gateway/test_sshcompat.py fails loudly if asyncssh changes
them)."""
