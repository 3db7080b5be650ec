"""The SFTP front-end: :mod:`~gateway.sftp.frontend` serves SFTP over asyncssh and only translates the protocol to
core calls and core errors to SFTP status codes; :mod:`~gateway.sftp.sshcompat` keeps, in one small module, the
asyncssh internals it relies on (tests/gateway/test_sshcompat.py fails loudly if asyncssh changes them)."""
