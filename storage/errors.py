"""The one error tree of the gateway, and the one lookup every front-end uses to translate it.

Why here: this module sits at the bottom of the dependency graph. It imports nothing of the project, and
``storage/`` is the lowest package (``auth/`` already imports ``storage``, ``gateway/`` imports both), so
``storage/``, ``auth/`` and ``gateway/`` can all raise these without importing upwards. (``auth/errors.py`` would
not do: ``storage/`` may not import ``auth/``.)

Every layer raises these; each protocol front-end (SFTP, WebDAV, REST API, console, account page) maps them to
its own answers through ONE table looked up along the exception's MRO with :func:`lookup`. ``message`` is safe
to show to the client: it never contains secrets, and for anything the caller may not know about it is
identical to the message for a name that does not exist. What is for the record only (``reason``...) is kept in
attributes of its own.

The tree::

    GatewayError
    ├── NotFound                  no such file or folder (also: anything the caller may not see)
    │   └── DocumentNotFound      no such document id in a centre the caller sees (the catalogue)
    ├── PermissionDenied          the caller sees the object but may not do this to it
    ├── AuthenticationFailed      the one generic login failure; ``reason``... for the record only
    ├── Throttled (= Banned)      a login refused before its credentials were looked at (auth.throttle)
    ├── AlreadyExists             a committed document already holds this name
    │   └── AlreadyDelivered      the same document was delivered before and archived since
    ├── ContentRefused            the bytes break a content rule (not a PDF, active content...)
    ├── InstitutionNotActive      uploads into a centre that has not switched over, or is suspended
    ├── TooLarge                  document over the maximum size
    ├── InvalidName               a name that is not acceptable
    ├── Unsupported               an operation the gateway does not offer
    ├── IntegrityFailure          stored bytes do not match their hash or tag (a server fault)
    ├── MalformedRequest          the request itself is broken (400)
    │   ├── MalformedCredentials  credentials not even well-formed; ``reason`` for the record
    │   └── UploadFinished        bytes for, or a commit of, an upload already committed or dropped
    ├── ServiceUnavailable        a backend (directory, database) is unreachable
    ├── ConfigError               bad configuration; the message names the key
    ├── Conflict                  a uniqueness rule of the database refused a change (storage.repository)
    └── AdminError                a refused administrative request; the message says why
        ├── AdminNotFound         no such centre or account (or not the caller's to know about)
        │   └── CentreNotFound    the one answer for a centre that is not there, not an id, or not the caller's
        ├── AdminForbidden        the caller may not do this
        └── AdminConflict         the request does not fit the current state
            └── IllegalTransition a centre status change the lifecycle does not allow (also a ValueError)
"""
from __future__ import annotations

from typing import Mapping, TypeVar

T = TypeVar("T")


class GatewayError(Exception):
    """Base class. ``message`` is what the client is told."""

    default_message = "operation failed"

    def __init__(self, message: str | None = None):
        self.message = message or self.default_message
        super().__init__(self.message)


def lookup(table: Mapping[type[BaseException], T], exc: BaseException) -> T | None:
    """The front-end's answer for ``exc``: the entry of its nearest class along the MRO (Starlette's way)."""
    for cls in type(exc).__mro__:
        if cls in table:
            return table[cls]
    return None


class NotFound(GatewayError):
    """No such file or folder -- also the answer for anything the caller may not see."""

    default_message = "no such file or folder"


class DocumentNotFound(NotFound):
    """No such document of that centre: a document id the caller may not see, of another centre, or of none (the
    centre itself was found; a front-end that names what it did not find says "document", not "centre")."""

    default_message = "no such document"


class PermissionDenied(GatewayError):
    """The caller can see the object but may not do this to it."""

    default_message = "permission denied"


class AuthenticationFailed(GatewayError):
    """Generic login failure; the client is told only "authentication failed", never which part was wrong.
    ``reason`` and the other attributes are for the record and for the front-end's timing."""

    default_message = "authentication failed"

    def __init__(self, reason: str = "", *, unknown_name: bool = False):
        super().__init__()  # generic message for the client
        self.reason = reason  # server-side only
        #: the name is no account (it scores higher against the source address: auth.throttle)
        self.unknown_name = unknown_name
        #: refused before the credentials were looked at: the name or the address is in its delay or banned
        self.throttled = False
        #: seconds a front-end that holds no thread (SFTP, asyncio) may wait before answering; web front-ends
        #: answer at once
        self.delay = 0.0
        #: seconds until the name or address may try again (HTTP Retry-After of a throttled refusal)
        self.retry_after = 0.0
        #: the canonical account refused, when known (for the record)
        self.account = ""


class Throttled(GatewayError):
    """A login refused before its credentials were looked at; ``until`` is when ``key`` may try again.
    The core turns it into a throttled :class:`AuthenticationFailed`; ``key`` is for the record only."""

    default_message = "too many failed logins; try again later"

    def __init__(self, key: str, until: float, banned: bool):
        super().__init__()
        self.args = (key,)  # str(exc) is the key, as before (the record's wording)
        self.key = key
        self.until = until
        self.banned = banned


# the name older code and callers use
Banned = Throttled


class AlreadyExists(GatewayError):
    """A committed document (or folder) already holds this name with other content."""

    default_message = "a document with this name already exists and documents cannot be overwritten"


class AlreadyDelivered(AlreadyExists):
    """The same content under the same name was delivered before and the centre has archived it since: nothing is
    stored again, and the sender is told when (not a silent no-op: it must know the centre took it out)."""

    default_message = "this document was already delivered and has been archived by the centre"


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


class MalformedCredentials(MalformedRequest):
    """Credentials that are not even well-formed; ``reason`` is for the record."""

    def __init__(self, reason: str):
        super().__init__("authentication failed")
        self.reason = reason


class UploadFinished(MalformedRequest):
    """Bytes for an upload, or its commit, after it was committed, refused or aborted (a client that goes on
    writing to a handle whose upload is over): a request out of order, not a server fault."""

    default_message = "upload already finished"


class ServiceUnavailable(GatewayError):
    default_message = "service temporarily unavailable"


class ConfigError(GatewayError):
    """Bad configuration; the message names the key."""


class Conflict(GatewayError):
    """A uniqueness rule of the database refused the change (the caller decides what it means)."""

    default_message = "conflicting change"


class AdminError(GatewayError):
    """A refused administrative request; the message says why."""


class AdminNotFound(AdminError):
    """No such centre (or account) -- also the answer for a centre the caller may not know about."""


class CentreNotFound(AdminNotFound):
    """The one answer for a centre that does not exist, is not an id, or is not the caller's to know about."""


class AdminForbidden(AdminError):
    """The caller may not do this."""

    default_message = "not allowed"


class AdminConflict(AdminError):
    """The request does not fit the current state (an illegal transition, a concurrent change)."""


class IllegalTransition(AdminConflict, ValueError):
    """A centre status change the lifecycle (gateway.core.lifecycle) does not allow; the message says why."""
