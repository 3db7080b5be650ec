"""The one error hierarchy of the gateway.

Every layer raises these; each protocol front-end maps them to its own status codes through one table.
Messages are safe to show to the client: they never contain secrets, and for anything the caller may not
know about they are identical to the message for a name that does not exist.
"""
from __future__ import annotations


class GatewayError(Exception):
    """Base class. ``message`` is what the client is told."""

    default_message = "operation failed"

    def __init__(self, message: str | None = None):
        self.message = message or self.default_message
        super().__init__(self.message)


class NotFound(GatewayError):
    """No such file or folder -- also the answer for anything the caller may not see."""

    default_message = "no such file or folder"


class PermissionDenied(GatewayError):
    """The caller can see the object but may not do this to it."""

    default_message = "permission denied"


class AuthenticationFailed(GatewayError):
    """Generic login failure; never says which part was wrong."""

    default_message = "authentication failed"


class AlreadyExists(GatewayError):
    """A committed document (or folder) already holds this name with other content."""

    default_message = "a document with this name already exists and documents cannot be overwritten"


class ContentRefused(GatewayError):
    """The uploaded bytes break a content rule (not a PDF, damaged, active content...)."""

    default_message = "content refused"


class InstitutionNotActive(GatewayError):
    """Uploads into a centre that has not switched over, or is suspended."""

    def __init__(self, institution_id: str, status: str):
        self.institution_id = institution_id
        self.status = status
        super().__init__(
            f"centre {institution_id} does not receive electronic documents (status: {status}); "
            "send on paper"
        )


class TooLarge(GatewayError):
    default_message = "document exceeds the maximum size"


class InvalidName(GatewayError):
    """A name the caller may create is not acceptable (bad characters, too deep...)."""

    default_message = "invalid name"


class Unsupported(GatewayError):
    default_message = "operation not supported"


class IntegrityFailure(GatewayError):
    """Stored bytes do not match their recorded hash or authentication tag."""

    default_message = "stored document failed its integrity check"


class MalformedRequest(GatewayError):
    """The request itself is broken (framing of its body, bytes that are no text where text is due): 400."""

    default_message = "malformed request"


class ServiceUnavailable(GatewayError):
    default_message = "service temporarily unavailable"


class ConfigError(GatewayError):
    """Bad configuration; the message names the key."""
