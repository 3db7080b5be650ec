"""The WebDAV front-end's one translation of core errors: ``ERRORS`` (core error -> HTTP status, looked up along the
error's MRO), the plain-text DAV error every answer uses, and :func:`core_call`, through which the provider and the
middlewares call the core so that its errors become DAV answers. Importing it makes wsgidav render its own errors
as plain text as well (no HTML naming its version).
"""
from __future__ import annotations

from wsgidav import util
from wsgidav.dav_error import (HTTP_BAD_REQUEST, HTTP_CONFLICT, HTTP_FORBIDDEN, HTTP_INTERNAL_ERROR, HTTP_NOT_FOUND,
                               DAVError)

from storage import errors
from storage.errors import GatewayError, lookup

# The one translation table: core error (storage.errors) -> HTTP status, looked up along the error's MRO. The
# error's message becomes the plain-text body. tests/test_errors.py checks that it answers every error; only a
# server fault (damaged stored bytes, bad configuration) is a 500.
ERRORS: dict[type[GatewayError], int] = {
    errors.NotFound: HTTP_NOT_FOUND,
    errors.PermissionDenied: HTTP_FORBIDDEN,
    errors.InstitutionNotActive: HTTP_FORBIDDEN,
    errors.AlreadyExists: HTTP_CONFLICT,
    errors.ContentRefused: 415,
    errors.TooLarge: 413,
    errors.InvalidName: HTTP_BAD_REQUEST,
    errors.MalformedRequest: HTTP_BAD_REQUEST,
    errors.Unsupported: HTTP_FORBIDDEN,
    errors.IntegrityFailure: HTTP_INTERNAL_ERROR,
    errors.ServiceUnavailable: 503,
    errors.AuthenticationFailed: HTTP_FORBIDDEN,  # inside a session; the login itself answers its own 401
    errors.Throttled: HTTP_FORBIDDEN,
    errors.ConfigError: HTTP_INTERNAL_ERROR,
    errors.Conflict: HTTP_CONFLICT,
    errors.AdminError: HTTP_BAD_REQUEST,
    errors.AdminNotFound: HTTP_NOT_FOUND,
    errors.AdminForbidden: HTTP_FORBIDDEN,
    errors.AdminConflict: HTTP_CONFLICT,
}


class GatewayDAVError(DAVError):
    """A DAV error whose body is the plain-text reason (no server banner, no HTML)."""

    def __init__(self, status: int, message: str, headers: list[tuple[str, str]] | None = None):
        super().__init__(status, context_info=message, add_headers=headers)
        self.message = message


def _plain_error_page(self: DAVError):
    """Every error body is plain text: the status and the reason, no HTML, no server banner."""
    if self.err_condition:
        return "application/xml; charset=utf-8", self.err_condition.as_string().encode()
    reason = getattr(self, "message", None) or self.context_info or ""
    return "text/plain; charset=utf-8", f"{util.get_http_status_string(self.value)}\n{reason}\n".encode()


# wsgidav renders its own errors (409 for a missing parent, 423 Locked...) as HTML naming its version
DAVError.get_response_page = _plain_error_page


def to_dav_error(exc: GatewayError) -> DAVError:
    return GatewayDAVError(lookup(ERRORS, exc) or HTTP_INTERNAL_ERROR, exc.message)


def core_call(fn, *args):
    """``fn(*args)``, a core error raised as its DAV answer."""
    try:
        return fn(*args)
    except GatewayError as exc:
        raise to_dav_error(exc) from None
