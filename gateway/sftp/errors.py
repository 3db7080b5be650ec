"""The SFTP front-end's one translation of core errors: ``ERRORS`` (core error -> SFTP status, looked up along the
error's MRO) and :func:`to_sftp_error`, which the handler raises to the client.
"""
from __future__ import annotations

import asyncssh

from storage import errors
from storage.errors import GatewayError, lookup

# The one translation table: core error (storage.errors) -> SFTP status, looked up along the error's MRO. The
# message of the core error is sent as the reason. tests/test_errors.py checks that it answers every error.
ERRORS: dict[type[GatewayError], type[asyncssh.SFTPError]] = {
    errors.NotFound: asyncssh.SFTPNoSuchFile,
    errors.PermissionDenied: asyncssh.SFTPPermissionDenied,
    errors.InstitutionNotActive: asyncssh.SFTPPermissionDenied,
    errors.AlreadyExists: asyncssh.SFTPFileAlreadyExists,     # v3 clients see FX_FAILURE + the message
    errors.ContentRefused: asyncssh.SFTPFailure,
    errors.TooLarge: asyncssh.SFTPQuotaExceeded,
    errors.InvalidName: asyncssh.SFTPInvalidFilename,
    errors.Unsupported: asyncssh.SFTPOpUnsupported,
    errors.IntegrityFailure: asyncssh.SFTPFailure,
    errors.ServiceUnavailable: asyncssh.SFTPFailure,
    errors.AuthenticationFailed: asyncssh.SFTPPermissionDenied,
    errors.Throttled: asyncssh.SFTPPermissionDenied,
    errors.MalformedRequest: asyncssh.SFTPFailure,
    errors.ConfigError: asyncssh.SFTPFailure,
    errors.Conflict: asyncssh.SFTPFailure,
    errors.AdminError: asyncssh.SFTPFailure,
    errors.AdminNotFound: asyncssh.SFTPNoSuchFile,
    errors.AdminForbidden: asyncssh.SFTPPermissionDenied,
}


def to_sftp_error(exc: GatewayError) -> asyncssh.SFTPError:
    return (lookup(ERRORS, exc) or asyncssh.SFTPFailure)(exc.message)
